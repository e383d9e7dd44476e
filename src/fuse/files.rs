//! File, directory and xattr operations of the adapter: OPEN/CREATE (with passthrough),
//! READ/WRITE, READDIR/READDIRPLUS from the overlay's listing snapshots, and xattrs.

use super::convert::err;
use super::stats::Op as Counted;
use super::{LayerFs, empty, xattr_err};
use crate::kernel::abi::{self, FOPEN_CACHE_DIR, FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE, Writer};
use crate::kernel::{Header, Op, Reply};
use crate::overlay::{Ctx, Errno, Res};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::Ordering;

impl LayerFs {
    pub(super) fn file_request(&self, h: &Header, op: Op<'_>, reply: Reply<'_>) {
        match op {
            Op::Open {
                flags,
                kill_suidgid,
            } => self.open(h, flags, kill_suidgid, reply),
            Op::Create {
                name,
                mode,
                umask,
                flags,
            } => {
                let _t = self.stats.start(Counted::Create);
                let r = self
                    .fs
                    .create(&Self::ctx(h, umask), h.nodeid, name, mode, flags);
                self.flush_invalidations();
                match r {
                    Ok((a, o)) => {
                        let (flags, backing) = self.open_mode(a.ino, o.fh, true);
                        let mut w = Writer::with_capacity(abi::ENTRY_OUT + abi::OPEN_OUT);
                        self.entry_body(&mut w, &a);
                        w.open_out(o.fh, flags, backing);
                        reply.body(&w);
                    }
                    Err(e) => reply.error(err(e)),
                }
            }
            Op::Read { fh, offset, size } => {
                let _t = self.stats.start(Counted::Read);
                match self.fs.read(fh, offset, size) {
                    Ok(d) => reply.data(&d),
                    Err(e) => reply.error(err(e)),
                }
            }
            Op::Write {
                fh,
                offset,
                data,
                flags,
            } => {
                let _t = self.stats.start(Counted::Write);
                let kill = (flags & abi::WRITE_KILL_SUIDGID != 0).then(|| Self::ctx(h, 0));
                let r = self.fs.write(fh, offset, data, kill.as_ref());
                self.flush_invalidations();
                match r {
                    Ok(n) => {
                        let mut w = Writer::with_capacity(8);
                        w.u32(n).u32(0);
                        reply.body(&w);
                    }
                    Err(e) => reply.error(err(e)),
                }
            }
            Op::Release { fh } => {
                let _t = self.stats.start(Counted::Release);
                self.detach_backing(fh);
                self.fs.release(fh);
                reply.ok();
            }
            Op::Fsync { fh, datasync } => {
                let _t = self.stats.start(Counted::Fsync);
                empty(reply, self.fs.fsync(fh, datasync))
            }
            Op::Fallocate {
                fh,
                offset,
                length,
                mode,
            } => {
                let _t = self.stats.start(Counted::Fallocate);
                empty(reply, self.fs.fallocate(fh, mode, offset, length))
            }
            Op::Lseek { fh, offset, whence } => {
                let _t = self.stats.start(Counted::Lseek);
                match self.fs.lseek(fh, offset, whence) {
                    Ok(o) => reply.data(&o.to_le_bytes()),
                    Err(e) => reply.error(err(e)),
                }
            }
            Op::Opendir => {
                let _t = self.stats.start(Counted::Opendir);
                if self.no_opendir.load(Ordering::Relaxed) {
                    // The kernel then opens directories without asking (nor RELEASEDIR),
                    // with FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR, as below.
                    return reply.error(libc::ENOSYS);
                }
                // The kernel may cache listings: every change goes through us, and it
                // drops a directory's cache when one of our replies changes it.
                match self.fs.node_is_dir(h.nodeid) {
                    Ok(()) => {
                        let mut w = Writer::with_capacity(abi::OPEN_OUT);
                        w.open_out(0, FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE, 0);
                        reply.body(&w);
                    }
                    Err(e) => reply.error(err(e)),
                }
            }
            Op::Readdir { offset, size, plus } => self.readdir(h.nodeid, offset, size, plus, reply),
            Op::Releasedir => {
                let _t = self.stats.start(Counted::Releasedir);
                reply.ok();
            }
            Op::Fsyncdir => {
                let _t = self.stats.start(Counted::Fsyncdir);
                reply.ok();
            }
            op => self.xattr_request(h, op, reply),
        }
    }

    fn open(&self, h: &Header, flags: i32, kill_suidgid: bool, reply: Reply<'_>) {
        let _t = self.stats.start(Counted::Open);
        let ino = h.nodeid;
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        let pinned_lower = self.backings.get(&ino).is_some_and(|b| !b.upper);
        if pinned_lower && (write || self.fs.is_upper(ino)) {
            // Passthrough readers pin this inode to the lower file; the kernel allows one
            // backing file per inode. The copy becomes a new inode and ESTALE makes the
            // kernel look the name up again and open that one.
            let r = self.fs.copy_up_as_new_inode(ino);
            self.flush_invalidations();
            return reply.error(err(r.err().unwrap_or(Errno::ESTALE)));
        }
        // With FUSE_HANDLE_KILLPRIV_V2 the daemon clears set-id bits: with O_TRUNC the
        // kernel says whether the caller lacks CAP_FSETID (WRITE carries its own flag).
        let ctx = Ctx {
            no_fsetid: self.no_fsetid(flags & libc::O_TRUNC != 0, kill_suidgid),
            ..Self::ctx(h, 0)
        };
        let r = self.fs.open(&ctx, ino, flags);
        self.flush_invalidations();
        let (fh, flags, backing) = match r {
            // Writes that clear set-id bits must reach the daemon: no passthrough (direct
            // I/O is allowed beside other opens' passthrough).
            Ok(o) if o.via_daemon && self.passthrough.load(Ordering::Relaxed) => {
                (o.fh, FOPEN_DIRECT_IO, 0)
            }
            Ok(o) => {
                let (flags, backing) = self.open_mode(ino, o.fh, o.upper);
                (o.fh, flags, backing)
            }
            Err(e) => return reply.error(err(e)),
        };
        let mut w = Writer::with_capacity(abi::OPEN_OUT);
        w.open_out(fh, flags, backing);
        reply.body(&w);
    }

    /// READDIR and READDIRPLUS from the directory's snapshot; entries go out until the
    /// next would not fit in `size` bytes.
    fn readdir(&self, dir: u64, offset: u64, size: u32, plus: bool, reply: Reply<'_>) {
        let _t = self.stats.start(if plus {
            Counted::Readdirplus
        } else {
            Counted::Readdir
        });
        let l = match self.fs.readdir(dir, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(err(e)),
        };
        let size = size as usize;
        let mut w = Writer::with_capacity(size.min(64 * 1024));
        let mut sent = 0;
        for (i, e) in l.entries.iter().enumerate().skip(l.start) {
            let name = e.name.as_bytes();
            let need = abi::dirent_size(name.len()) + if plus { abi::ENTRY_OUT } else { 0 };
            if w.buf.len() + need > size {
                break;
            }
            if !plus {
                w.dirent(e.ino, l.offset_after(i), e.dtype, name);
                continue;
            }
            if e.name == "." || e.name == ".." {
                // The kernel takes no reference on these (node id 0) and reads none of
                // their attributes; the number is the node's, as READDIR sends it.
                let none = abi::WireAttr::default();
                w.entry(0, abi::Ttl::ZERO, abi::Ttl::ZERO, &none);
                w.dirent(e.ino, l.offset_after(i), e.dtype, name);
                continue;
            }
            let Ok(a) = self.fs.lookup_listed(dir, &e.name, e.layer) else {
                continue; // vanished since the snapshot
            };
            self.entry_body(&mut w, &a);
            w.dirent(a.st_ino, l.offset_after(i), e.dtype, name);
            sent += 1;
        }
        self.stats.plus_entries(sent);
        reply.body(&w);
    }

    fn xattr_request(&self, h: &Header, op: Op<'_>, reply: Reply<'_>) {
        let ino = h.nodeid;
        match op {
            Op::Setxattr { name, value, flags } => {
                let _t = self.stats.start(Counted::Setxattr);
                let r = self.fs.setxattr(ino, name, value, flags);
                self.flush_invalidations();
                match r {
                    Ok(()) => reply.ok(),
                    Err(e) => reply.error(xattr_err(&self.fs, e)),
                }
            }
            Op::Getxattr { name, size } => {
                let _t = self.stats.start(Counted::Getxattr);
                let r = self.fs.getxattr(ino, name);
                if r.is_err() {
                    _t.failed();
                }
                self.reply_xattr(r, size, reply);
            }
            Op::Listxattr { size } => {
                let _t = self.stats.start(Counted::Listxattr);
                self.reply_xattr(self.fs.listxattr(ino), size, reply);
            }
            Op::Removexattr(name) => {
                let _t = self.stats.start(Counted::Removexattr);
                let r = self.fs.removexattr(ino, name);
                self.flush_invalidations();
                match r {
                    Ok(()) => reply.ok(),
                    Err(e) => reply.error(xattr_err(&self.fs, e)),
                }
            }
            _ => reply.error(libc::ENOSYS),
        }
    }

    /// getxattr/listxattr replies: size 0 asks for the length; a short buffer is ERANGE.
    fn reply_xattr(&self, r: Res<Vec<u8>>, size: u32, reply: Reply<'_>) {
        match r {
            Ok(v) if size == 0 => {
                let mut w = Writer::with_capacity(8);
                w.u32(v.len() as u32).u32(0);
                reply.body(&w);
            }
            Ok(v) if v.len() > size as usize => reply.error(err(Errno::ERANGE)),
            Ok(v) => reply.data(&v),
            Err(e) => reply.error(xattr_err(&self.fs, e)),
        }
    }
}
