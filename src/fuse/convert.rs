//! Conversions between the overlay's types and fuser's: attributes, file types, times,
//! errnos.

use crate::overlay::{self, Attr};
use crate::sys;
use fuser::{Errno, FileAttr, FileType, INodeNo, TimeOrNow};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Presented attributes as entry replies send them: fuser sends `ino` as the node id
/// too, so it is the node id.
pub(super) fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: to_time(a.atime),
        mtime: to_time(a.mtime),
        ctime: to_time(a.ctime),
        crtime: UNIX_EPOCH,
        kind: kind_of(a.mode),
        perm: (a.mode & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev as u32,
        blksize: a.blksize,
        flags: 0,
    }
}

/// Attributes as GETATTR and SETATTR replies send them: with the inode number shown,
/// which may differ from the node id ([`Attr::st_ino`]).
pub(super) fn stat_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.st_ino),
        ..file_attr(a)
    }
}

fn to_time((s, ns): (i64, i64)) -> SystemTime {
    if s >= 0 {
        UNIX_EPOCH + Duration::new(s as u64, ns as u32)
    } else {
        UNIX_EPOCH - Duration::new((-s) as u64, 0) + Duration::new(0, ns as u32)
    }
}

/// The attributes sent with a negative entry (ignored by the kernel: node id 0).
pub(super) const NEGATIVE: FileAttr = FileAttr {
    ino: INodeNo(0),
    size: 0,
    blocks: 0,
    atime: UNIX_EPOCH,
    mtime: UNIX_EPOCH,
    ctime: UNIX_EPOCH,
    crtime: UNIX_EPOCH,
    kind: FileType::RegularFile,
    perm: 0,
    nlink: 0,
    uid: 0,
    gid: 0,
    rdev: 0,
    blksize: 0,
    flags: 0,
};

fn kind_of(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

pub(super) fn dtype_kind(d: u8) -> FileType {
    match d {
        libc::DT_DIR => FileType::Directory,
        libc::DT_LNK => FileType::Symlink,
        libc::DT_CHR => FileType::CharDevice,
        libc::DT_BLK => FileType::BlockDevice,
        libc::DT_FIFO => FileType::NamedPipe,
        libc::DT_SOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

pub(super) fn time_arg(t: Option<TimeOrNow>) -> Option<sys::Time> {
    t.map(|t| match t {
        TimeOrNow::Now => sys::Time::Now,
        TimeOrNow::SpecificTime(st) => match st.duration_since(UNIX_EPOCH) {
            Ok(d) => sys::Time::At(d.as_secs() as i64, d.subsec_nanos() as i64),
            Err(e) => {
                let d = e.duration();
                let mut s = -(d.as_secs() as i64);
                let mut ns = -(d.subsec_nanos() as i64);
                if ns < 0 {
                    s -= 1;
                    ns += 1_000_000_000;
                }
                sys::Time::At(s, ns)
            }
        },
    })
}

/// The errno of a reply.
pub(super) fn err(e: overlay::Errno) -> Errno {
    Errno::from_i32(e.raw())
}
