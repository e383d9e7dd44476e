//! Conversions between the overlay's types and the wire's: attributes, times, errnos.

use crate::kernel::SetTime;
use crate::kernel::abi::WireAttr;
use crate::overlay::{self, Attr};
use crate::sys;

/// Attributes as every reply sends them: the number stat shows ([`Attr::st_ino`]),
/// which travels apart from the node id.
pub(super) fn wire_attr(a: &Attr) -> WireAttr {
    let t = |(s, ns): (i64, i64)| (s, ns as u32);
    WireAttr {
        ino: a.st_ino,
        size: a.size,
        blocks: a.blocks,
        atime: t(a.atime),
        mtime: t(a.mtime),
        ctime: t(a.ctime),
        mode: a.mode,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev as u32,
        blksize: a.blksize,
    }
}

pub(super) fn time_arg(t: Option<SetTime>) -> Option<sys::Time> {
    t.map(|t| match t {
        SetTime::Now => sys::Time::Now,
        SetTime::At(s, ns) => sys::Time::At(s, ns as i64),
    })
}

/// The errno of a reply (positive).
pub(super) fn err(e: overlay::Errno) -> i32 {
    e.raw()
}
