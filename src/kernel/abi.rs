//! The FUSE wire format (the kernel's `include/uapi/linux/fuse.h`, protocol 7.40+):
//! opcodes, flag bits, and safe little-endian readers and writers of its structs.

/// The protocol version we speak; the kernel answers with the lower of its and ours.
pub const MAJOR: u32 = 7;
pub const MINOR: u32 = 40;

pub const IN_HEADER: usize = 40;
pub const OUT_HEADER: usize = 16;

// Opcodes.
pub const LOOKUP: u32 = 1;
pub const FORGET: u32 = 2;
pub const GETATTR: u32 = 3;
pub const SETATTR: u32 = 4;
pub const READLINK: u32 = 5;
pub const SYMLINK: u32 = 6;
pub const MKNOD: u32 = 8;
pub const MKDIR: u32 = 9;
pub const UNLINK: u32 = 10;
pub const RMDIR: u32 = 11;
pub const RENAME: u32 = 12;
pub const LINK: u32 = 13;
pub const OPEN: u32 = 14;
pub const READ: u32 = 15;
pub const WRITE: u32 = 16;
pub const STATFS: u32 = 17;
pub const RELEASE: u32 = 18;
pub const FSYNC: u32 = 20;
pub const SETXATTR: u32 = 21;
pub const GETXATTR: u32 = 22;
pub const LISTXATTR: u32 = 23;
pub const REMOVEXATTR: u32 = 24;
pub const INIT: u32 = 26;
pub const OPENDIR: u32 = 27;
pub const READDIR: u32 = 28;
pub const RELEASEDIR: u32 = 29;
pub const FSYNCDIR: u32 = 30;
pub const ACCESS: u32 = 34;
pub const CREATE: u32 = 35;
pub const INTERRUPT: u32 = 36;
pub const DESTROY: u32 = 38;
pub const BATCH_FORGET: u32 = 42;
pub const FALLOCATE: u32 = 43;
pub const READDIRPLUS: u32 = 44;
pub const RENAME2: u32 = 45;
pub const LSEEK: u32 = 46;

// INIT flags (flags2 bits are shifted up by 32).
pub const ASYNC_READ: u64 = 1 << 0;
pub const ATOMIC_O_TRUNC: u64 = 1 << 3;
pub const BIG_WRITES: u64 = 1 << 5;
pub const DO_READDIRPLUS: u64 = 1 << 13;
pub const READDIRPLUS_AUTO: u64 = 1 << 14;
pub const ASYNC_DIO: u64 = 1 << 15;
pub const PARALLEL_DIROPS: u64 = 1 << 18;
pub const MAX_PAGES: u64 = 1 << 22;
pub const CACHE_SYMLINKS: u64 = 1 << 23;
pub const NO_OPENDIR_SUPPORT: u64 = 1 << 24;
pub const HANDLE_KILLPRIV_V2: u64 = 1 << 28;
pub const INIT_EXT: u64 = 1 << 30;
pub const PASSTHROUGH: u64 = 1 << 37;

// SETATTR valid bits.
pub const FATTR_MODE: u32 = 1 << 0;
pub const FATTR_UID: u32 = 1 << 1;
pub const FATTR_GID: u32 = 1 << 2;
pub const FATTR_SIZE: u32 = 1 << 3;
pub const FATTR_ATIME: u32 = 1 << 4;
pub const FATTR_MTIME: u32 = 1 << 5;
pub const FATTR_FH: u32 = 1 << 6;
pub const FATTR_ATIME_NOW: u32 = 1 << 7;
pub const FATTR_MTIME_NOW: u32 = 1 << 8;
pub const FATTR_KILL_SUIDGID: u32 = 1 << 11;

/// OPEN/CREATE: the caller lacks CAP_FSETID (sent with O_TRUNC only).
pub const OPEN_KILL_SUIDGID: u32 = 1 << 0;

pub const GETATTR_FH: u32 = 1 << 0;
pub const WRITE_KILL_SUIDGID: u32 = 1 << 2;
pub const FSYNC_FDATASYNC: u32 = 1 << 0;

// Open reply flags.
pub const FOPEN_DIRECT_IO: u32 = 1 << 0;
pub const FOPEN_KEEP_CACHE: u32 = 1 << 1;
pub const FOPEN_CACHE_DIR: u32 = 1 << 3;
pub const FOPEN_PASSTHROUGH: u32 = 1 << 7;

// Notifications (sent with unique 0, the code in the error field).
pub const NOTIFY_INVAL_INODE: i32 = 2;

pub const ENTRY_OUT: usize = 40 + ATTR;
pub const ATTR: usize = 88;
pub const OPEN_OUT: usize = 16;
pub const DIRENT: usize = 24;

/// A reader over a request's bytes: fixed-size fields, then NUL-terminated names.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Some(a)
    }

    pub fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(drop)
    }

    /// A NUL-terminated name (the NUL is consumed, not returned).
    pub fn name(&mut self) -> Option<&'a [u8]> {
        let end = self.buf.iter().position(|&c| c == 0)?;
        let n = self.take(end + 1)?;
        Some(&n[..end])
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
}

/// The attributes of `struct fuse_attr`, as a reply sends them.
#[derive(Debug, Clone, Copy, Default)]
pub struct WireAttr {
    pub ino: u64,
    pub size: u64,
    pub blocks: u64,
    pub atime: (i64, u32),
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
}

/// A writer of reply bodies.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }

    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// Zero bytes up to a multiple of 8 (directory entries are aligned so).
    pub fn pad8(&mut self) -> &mut Self {
        let n = self.buf.len().next_multiple_of(8) - self.buf.len();
        self.buf.extend_from_slice(&[0u8; 8][..n]);
        self
    }

    /// `struct fuse_attr`.
    pub fn attr(&mut self, a: &WireAttr) -> &mut Self {
        self.u64(a.ino).u64(a.size).u64(a.blocks);
        self.u64(a.atime.0 as u64)
            .u64(a.mtime.0 as u64)
            .u64(a.ctime.0 as u64);
        self.u32(a.atime.1).u32(a.mtime.1).u32(a.ctime.1);
        self.u32(a.mode).u32(a.nlink).u32(a.uid).u32(a.gid);
        self.u32(a.rdev).u32(a.blksize).u32(0)
    }

    /// `struct fuse_entry_out`: node id 0 is a negative entry (cached for `entry_ttl`).
    pub fn entry(&mut self, node: u64, entry_ttl: Ttl, attr_ttl: Ttl, a: &WireAttr) -> &mut Self {
        self.u64(node).u64(0);
        self.u64(entry_ttl.secs).u64(attr_ttl.secs);
        self.u32(entry_ttl.nanos).u32(attr_ttl.nanos);
        self.attr(a)
    }

    /// `struct fuse_attr_out`.
    pub fn attr_out(&mut self, ttl: Ttl, a: &WireAttr) -> &mut Self {
        self.u64(ttl.secs).u32(ttl.nanos).u32(0);
        self.attr(a)
    }

    /// `struct fuse_open_out`.
    pub fn open_out(&mut self, fh: u64, flags: u32, backing: u32) -> &mut Self {
        self.u64(fh).u32(flags).u32(backing)
    }

    /// `struct fuse_dirent` and its name.
    pub fn dirent(&mut self, ino: u64, off: u64, dtype: u8, name: &[u8]) -> &mut Self {
        self.u64(ino)
            .u64(off)
            .u32(name.len() as u32)
            .u32(dtype as u32);
        self.bytes(name).pad8()
    }
}

/// A cache time as the wire carries it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ttl {
    pub secs: u64,
    pub nanos: u32,
}

impl Ttl {
    pub const ZERO: Ttl = Ttl { secs: 0, nanos: 0 };

    pub fn from_secs_f64(s: f64) -> Ttl {
        let d = std::time::Duration::from_secs_f64(s.max(0.0));
        Ttl {
            secs: d.as_secs(),
            nanos: d.subsec_nanos(),
        }
    }
}

/// The size of a dirent record with a name of `n` bytes.
pub fn dirent_size(n: usize) -> usize {
    (DIRENT + n).next_multiple_of(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_the_kernel_sizes() {
        let a = WireAttr::default();
        assert_eq!(Writer::default().attr(&a).buf.len(), ATTR);
        assert_eq!(
            Writer::default()
                .entry(1, Ttl::ZERO, Ttl::ZERO, &a)
                .buf
                .len(),
            ENTRY_OUT
        );
        assert_eq!(Writer::default().attr_out(Ttl::ZERO, &a).buf.len(), 104);
        assert_eq!(Writer::default().open_out(1, 0, 0).buf.len(), OPEN_OUT);
        let d = Writer::default().dirent(1, 2, 4, b"abc").buf.clone();
        assert_eq!(d.len(), dirent_size(3));
        assert_eq!(d.len(), 32);
    }

    #[test]
    fn reader_takes_fields_then_names() {
        let mut b = Vec::new();
        b.extend_from_slice(&7u32.to_le_bytes());
        b.extend_from_slice(b"old\0new\0");
        let mut r = Reader::new(&b);
        assert_eq!(r.u32(), Some(7));
        assert_eq!(r.name(), Some(&b"old"[..]));
        assert_eq!(r.name(), Some(&b"new"[..]));
        assert_eq!(r.name(), None);
        assert_eq!(r.u64(), None);
    }
}
