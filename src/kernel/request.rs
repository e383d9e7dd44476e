//! Requests as the kernel sends them: the header, and each opcode's arguments parsed
//! out of the bytes (borrowed, nothing copied).

use super::abi::{self, Reader};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// `struct fuse_in_header`.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub len: u32,
    pub opcode: u32,
    pub unique: u64,
    pub nodeid: u64,
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    /// It came through an io_uring queue, not the device fd.
    pub ring: bool,
}

/// A time argument of SETATTR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    Now,
    At(i64, u32),
}

/// SETATTR's arguments: only the fields the kernel marked valid.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetattrIn {
    pub fh: Option<u64>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
    /// FATTR_KILL_SUIDGID: sent for a chown of a non-directory, and for a size change
    /// by a caller without CAP_FSETID.
    pub kill_suidgid: bool,
}

/// INIT's arguments.
#[derive(Debug, Clone, Copy)]
pub struct InitIn {
    pub major: u32,
    pub minor: u32,
    pub max_readahead: u32,
    /// flags, with flags2 in the upper 32 bits when the kernel sent them.
    pub flags: u64,
}

/// One request's operation and arguments.
#[derive(Debug)]
pub enum Op<'a> {
    Init(InitIn),
    Destroy,
    Lookup(&'a OsStr),
    Forget(u64),
    BatchForget(Vec<(u64, u64)>),
    Getattr {
        fh: Option<u64>,
    },
    Setattr(SetattrIn),
    Readlink,
    Symlink {
        name: &'a OsStr,
        target: &'a OsStr,
    },
    Mknod {
        name: &'a OsStr,
        mode: u32,
        rdev: u32,
        umask: u32,
    },
    Mkdir {
        name: &'a OsStr,
        mode: u32,
        umask: u32,
    },
    Unlink(&'a OsStr),
    Rmdir(&'a OsStr),
    Rename {
        name: &'a OsStr,
        newdir: u64,
        newname: &'a OsStr,
        flags: u32,
    },
    Link {
        old: u64,
        newname: &'a OsStr,
    },
    /// `kill_suidgid`: FUSE_OPEN_KILL_SUIDGID (O_TRUNC by a caller without CAP_FSETID).
    Open {
        flags: i32,
        kill_suidgid: bool,
    },
    Read {
        fh: u64,
        offset: u64,
        size: u32,
    },
    Write {
        fh: u64,
        offset: u64,
        data: &'a [u8],
        flags: u32,
    },
    Statfs,
    Release {
        fh: u64,
    },
    Fsync {
        fh: u64,
        datasync: bool,
    },
    Setxattr {
        name: &'a OsStr,
        value: &'a [u8],
        flags: i32,
    },
    Getxattr {
        name: &'a OsStr,
        size: u32,
    },
    Listxattr {
        size: u32,
    },
    Removexattr(&'a OsStr),
    Opendir,
    Readdir {
        offset: u64,
        size: u32,
        plus: bool,
    },
    Releasedir,
    Fsyncdir,
    Access,
    Create {
        name: &'a OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    },
    Interrupt,
    Fallocate {
        fh: u64,
        offset: u64,
        length: u64,
        mode: i32,
    },
    Lseek {
        fh: u64,
        offset: i64,
        whence: i32,
    },
    /// An opcode we do not serve: answered ENOSYS, and the kernel stops sending most.
    Unsupported,
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// Parse one request (`buf` holds exactly its `len` bytes). None: malformed.
pub fn parse(buf: &[u8]) -> Option<(Header, Op<'_>)> {
    let mut r = Reader::new(buf);
    let h = Header {
        len: r.u32()?,
        opcode: r.u32()?,
        unique: r.u64()?,
        nodeid: r.u64()?,
        uid: r.u32()?,
        gid: r.u32()?,
        pid: r.u32()?,
        ring: false,
    };
    r.skip(4)?; // total_extlen, padding
    let op = parse_op(h.opcode, &mut r)?;
    Some((h, op))
}

fn parse_op<'a>(opcode: u32, r: &mut Reader<'a>) -> Option<Op<'a>> {
    use abi::*;
    Some(match opcode {
        INIT => Op::Init(InitIn {
            major: r.u32()?,
            minor: r.u32()?,
            max_readahead: r.u32()?,
            flags: {
                let lo = r.u32()? as u64;
                let hi = r.u32().unwrap_or(0) as u64;
                if lo & INIT_EXT != 0 {
                    lo | (hi << 32)
                } else {
                    lo
                }
            },
        }),
        DESTROY => Op::Destroy,
        LOOKUP => Op::Lookup(os(r.name()?)),
        FORGET => Op::Forget(r.u64()?),
        BATCH_FORGET => {
            let n = r.u32()?;
            r.skip(4)?;
            // No more room than the request holds, whatever its count says.
            let mut v = Vec::with_capacity((n as usize).min(r.remaining() / 16));
            for _ in 0..n {
                v.push((r.u64()?, r.u64()?));
            }
            Op::BatchForget(v)
        }
        GETATTR => {
            let flags = r.u32()?;
            r.skip(4)?;
            let fh = r.u64()?;
            Op::Getattr {
                fh: (flags & GETATTR_FH != 0).then_some(fh),
            }
        }
        SETATTR => Op::Setattr(setattr(r)?),
        READLINK => Op::Readlink,
        SYMLINK => Op::Symlink {
            name: os(r.name()?),
            target: os(r.name()?),
        },
        MKNOD => {
            let (mode, rdev, umask) = (r.u32()?, r.u32()?, r.u32()?);
            r.skip(4)?;
            Op::Mknod {
                mode,
                rdev,
                umask,
                name: os(r.name()?),
            }
        }
        MKDIR => Op::Mkdir {
            mode: r.u32()?,
            umask: r.u32()?,
            name: os(r.name()?),
        },
        UNLINK => Op::Unlink(os(r.name()?)),
        RMDIR => Op::Rmdir(os(r.name()?)),
        RENAME | RENAME2 => {
            let newdir = r.u64()?;
            let flags = if opcode == RENAME2 {
                let f = r.u32()?;
                r.skip(4)?;
                f
            } else {
                0
            };
            Op::Rename {
                newdir,
                flags,
                name: os(r.name()?),
                newname: os(r.name()?),
            }
        }
        LINK => Op::Link {
            old: r.u64()?,
            newname: os(r.name()?),
        },
        OPEN => Op::Open {
            flags: r.u32()? as i32,
            kill_suidgid: r.u32()? & OPEN_KILL_SUIDGID != 0,
        },
        READ => {
            let (fh, offset, size) = (r.u64()?, r.u64()?, r.u32()?);
            Op::Read { fh, offset, size }
        }
        WRITE => {
            let (fh, offset, size, flags) = (r.u64()?, r.u64()?, r.u32()?, r.u32()?);
            r.skip(16)?; // lock_owner, flags, padding
            let data = r.rest();
            Op::Write {
                fh,
                offset,
                flags,
                data: data.get(..size as usize)?,
            }
        }
        STATFS => Op::Statfs,
        RELEASE => Op::Release { fh: r.u64()? },
        FSYNC => {
            let fh = r.u64()?;
            Op::Fsync {
                fh,
                datasync: r.u32()? & FSYNC_FDATASYNC != 0,
            }
        }
        FSYNCDIR => Op::Fsyncdir,
        SETXATTR => {
            // Without FUSE_SETXATTR_EXT (we do not ask for it) the struct is 8 bytes.
            let (size, flags) = (r.u32()?, r.u32()? as i32);
            let name = os(r.name()?);
            Op::Setxattr {
                name,
                flags,
                value: r.rest().get(..size as usize)?,
            }
        }
        GETXATTR => {
            let size = r.u32()?;
            r.skip(4)?;
            Op::Getxattr {
                size,
                name: os(r.name()?),
            }
        }
        LISTXATTR => Op::Listxattr { size: r.u32()? },
        REMOVEXATTR => Op::Removexattr(os(r.name()?)),
        OPENDIR => Op::Opendir,
        READDIR | READDIRPLUS => {
            let (_fh, offset, size) = (r.u64()?, r.u64()?, r.u32()?);
            Op::Readdir {
                offset,
                size,
                plus: opcode == READDIRPLUS,
            }
        }
        RELEASEDIR => Op::Releasedir,
        ACCESS => Op::Access,
        CREATE => Op::Create {
            flags: r.u32()? as i32,
            mode: r.u32()?,
            umask: r.u32()?,
            name: {
                r.skip(4)?; // open_flags
                os(r.name()?)
            },
        },
        INTERRUPT => Op::Interrupt,
        FALLOCATE => {
            let (fh, offset, length) = (r.u64()?, r.u64()?, r.u64()?);
            Op::Fallocate {
                fh,
                offset,
                length,
                mode: r.u32()? as i32,
            }
        }
        LSEEK => {
            let (fh, offset) = (r.u64()?, r.u64()? as i64);
            Op::Lseek {
                fh,
                offset,
                whence: r.u32()? as i32,
            }
        }
        _ => Op::Unsupported,
    })
}

fn time(secs: u64, nsec: u32, now: bool) -> SetTime {
    if now {
        SetTime::Now
    } else {
        SetTime::At(secs as i64, nsec)
    }
}

fn setattr(r: &mut Reader<'_>) -> Option<SetattrIn> {
    use abi::*;
    let valid = r.u32()?;
    r.skip(4)?;
    let fh = r.u64()?;
    let size = r.u64()?;
    r.skip(8)?; // lock_owner
    let (atime, mtime, _ctime) = (r.u64()?, r.u64()?, r.u64()?);
    let (atimensec, mtimensec, _ctimensec) = (r.u32()?, r.u32()?, r.u32()?);
    let mode = r.u32()?;
    r.skip(4)?;
    let (uid, gid) = (r.u32()?, r.u32()?);
    let has = |bit: u32| valid & bit != 0;
    Some(SetattrIn {
        fh: has(FATTR_FH).then_some(fh),
        mode: has(FATTR_MODE).then_some(mode),
        uid: has(FATTR_UID).then_some(uid),
        gid: has(FATTR_GID).then_some(gid),
        size: has(FATTR_SIZE).then_some(size),
        atime: has(FATTR_ATIME).then(|| time(atime, atimensec, has(FATTR_ATIME_NOW))),
        mtime: has(FATTR_MTIME).then(|| time(mtime, mtimensec, has(FATTR_MTIME_NOW))),
        kill_suidgid: has(FATTR_KILL_SUIDGID),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(opcode: u32, body: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        let len = (abi::IN_HEADER + body.len()) as u32;
        for v in [len, opcode] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&9u64.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        for v in [1000u32, 1000, 42, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn parses_a_rename2() {
        let mut body = Vec::new();
        body.extend_from_slice(&5u64.to_le_bytes());
        body.extend_from_slice(&2u32.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(b"a\0b\0");
        let b = request(abi::RENAME2, &body);
        let (h, op) = parse(&b).expect("parses");
        assert_eq!((h.unique, h.nodeid, h.uid, h.pid), (9, 1, 1000, 42));
        match op {
            Op::Rename {
                name,
                newdir,
                newname,
                flags,
            } => assert_eq!((name, newdir, newname, flags), (os(b"a"), 5, os(b"b"), 2)),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn a_short_request_is_refused() {
        let b = request(abi::LOOKUP, b"no-nul");
        assert!(parse(&b).is_none());
        let b = request(abi::WRITE, &[0u8; 10]);
        assert!(parse(&b).is_none());
    }
}
