//! Name operations of the adapter: LOOKUP, the entry-making requests, SETATTR and
//! STATFS.

use super::LayerFs;
use super::convert::{err, time_arg};
use super::stats::Op as Counted;
use crate::kernel::abi::{Ttl, WireAttr, Writer};
use crate::kernel::{Header, Op, Reply, SetattrIn};
use crate::overlay::dirops::NewKind;
use crate::overlay::fileops::SetAttr;
use crate::overlay::{Ctx, Errno};
use std::ffi::OsStr;

impl LayerFs {
    pub(super) fn lookup(&self, h: &Header, name: &OsStr, reply: Reply<'_>) {
        let _t = self.stats.start(Counted::Lookup);
        match self.fs.lookup(h.nodeid, name) {
            // A name that is not there stays absent until a request through this mount
            // creates it (the layers below do not change under a mount, and every change
            // layerfs makes goes through the kernel's dentry cache), so the kernel may
            // cache the miss: node id 0 with a timeout is a negative entry. Creation with
            // O_EXCL, mkdir, mknod and rename targets revalidate it anyway.
            Err(Errno::ENOENT) => {
                _t.failed();
                let mut w = Writer::default();
                w.entry(0, self.ttl, Ttl::ZERO, &WireAttr::default());
                reply.body(&w);
            }
            r => {
                if r.is_err() {
                    _t.failed();
                }
                self.reply_entry(r, reply)
            }
        }
    }

    /// MKNOD, MKDIR, SYMLINK: make the entry, then answer with it.
    pub(super) fn new_entry(&self, h: &Header, op: Op<'_>, reply: Reply<'_>) {
        let (counted, umask, name, kind) = match op {
            Op::Mknod {
                name,
                mode,
                rdev,
                umask,
            } => {
                let rdev = rdev as u64;
                (Counted::Mknod, umask, name, NewKind::Node { mode, rdev })
            }
            Op::Mkdir { name, mode, umask } => (Counted::Mkdir, umask, name, NewKind::Dir { mode }),
            Op::Symlink { name, target } => {
                (Counted::Symlink, 0, name, NewKind::Symlink { target })
            }
            _ => return reply.error(libc::ENOSYS),
        };
        let _t = self.stats.start(counted);
        let r = self
            .fs
            .create_entry(&Self::ctx(h, umask), h.nodeid, name, kind);
        self.flush_invalidations();
        self.reply_entry(r.map(|(a, _)| a), reply);
    }

    pub(super) fn setattr(&self, h: &Header, a: SetattrIn, reply: Reply<'_>) {
        let _t = self.stats.start(Counted::Setattr);
        let s = SetAttr {
            mode: a.mode,
            uid: a.uid,
            gid: a.gid,
            size: a.size,
            atime: time_arg(a.atime),
            mtime: time_arg(a.mtime),
        };
        // A size change: the kernel says whether the caller lacks CAP_FSETID (with a
        // chown beside it the flag is always set, and chown clears the bits anyway).
        let ctx = Ctx {
            no_fsetid: self.no_fsetid(a.size.is_some(), a.kill_suidgid),
            ..Self::ctx(h, 0)
        };
        let r = self.fs.setattr(&ctx, h.nodeid, a.fh, s);
        self.flush_invalidations();
        self.reply_attr(r, reply);
    }

    pub(super) fn statfs(&self, reply: Reply<'_>) {
        let _t = self.stats.start(Counted::Statfs);
        match self.fs.statfs() {
            Ok(s) => {
                let mut w = Writer::with_capacity(80);
                w.u64(s.f_blocks).u64(s.f_bfree).u64(s.f_bavail);
                w.u64(s.f_files).u64(s.f_ffree);
                w.u32(s.f_bsize as u32).u32(s.f_namemax as u32);
                w.u32(s.f_frsize as u32).u32(0).bytes(&[0u8; 24]);
                reply.body(&w);
            }
            Err(e) => reply.error(err(e)),
        }
    }
}
