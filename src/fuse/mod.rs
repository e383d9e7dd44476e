//! The thin FUSE adapter: a [`kernel::Handler`] over [`OverlayFs`]. Each request is
//! counted ([`stats`]), its arguments converted, the overlay called, and the answer sent.
//! The state kept here: FUSE passthrough bookkeeping ([`passthrough`]) and the counters.
//! Name operations are in `entries`, file, directory and xattr operations in `files`.

mod convert;
mod entries;
mod files;
mod passthrough;
pub mod stats;

use crate::kernel::abi::{self, Ttl, Writer};
use crate::kernel::{self, Header, InitIn, InitOut, Notifier, Op, Reply};
use crate::overlay::{Attr, Ctx, Errno, OverlayFs, Res};
use crate::sys;
use convert::{err, wire_attr};
use dashmap::DashMap;
use passthrough::Backing;
use stats::{Op as Counted, Stats};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// The FUSE face of an overlay.
pub struct LayerFs {
    fs: Arc<OverlayFs>,
    ttl: Ttl,
    want_passthrough: bool,
    passthrough: AtomicBool,
    /// Ask for FUSE over io_uring (offered when the fuse module's `enable_uring` is on).
    want_uring: bool,
    /// The kernel opens directories without OPENDIR (`FUSE_NO_OPENDIR_SUPPORT`) once
    /// one OPENDIR is answered ENOSYS.
    no_opendir: AtomicBool,
    /// The kernel leaves clearing set-id bits to us and says, on OPEN with O_TRUNC and
    /// SETATTR of a size, whether the caller lacks CAP_FSETID (`FUSE_HANDLE_KILLPRIV_V2`,
    /// kernels from 5.11). Without it those flags are never set.
    killpriv_v2: AtomicBool,
    backings: DashMap<u64, Backing>,
    /// fh -> ino for handles that hold a reference on a backing.
    fh_backing: DashMap<u64, u64>,
    /// Set once the session exists: for telling the kernel to drop stale attributes,
    /// and for passthrough registrations.
    notifier: Arc<OnceLock<Notifier>>,
    /// Request counters (`-o stats=FILE`, SIGUSR1).
    stats: Arc<Stats>,
}

impl LayerFs {
    pub fn new(
        fs: Arc<OverlayFs>,
        timeout: f64,
        passthrough: bool,
        uring: bool,
        notifier: Arc<OnceLock<Notifier>>,
        stats: Arc<Stats>,
    ) -> LayerFs {
        LayerFs {
            notifier,
            stats,
            fs,
            ttl: Ttl::from_secs_f64(timeout),
            want_passthrough: passthrough,
            want_uring: uring,
            passthrough: AtomicBool::new(false),
            no_opendir: AtomicBool::new(false),
            killpriv_v2: AtomicBool::new(false),
            backings: DashMap::new(),
            fh_backing: DashMap::new(),
        }
    }

    /// Tell the kernel which cached attributes a request changed as a side effect, before
    /// it is answered, so the caller's next stat sees them (negative offset: no page-cache
    /// work; a directory's listing: its cached pages too; never an inode lock). Names are
    /// never invalidated: a name's binding changes only by a request on that name (each
    /// name of a lower hard link is a node of its own).
    fn flush_invalidations(&self) {
        let stale = self.fs.take_inode_invalidations();
        if stale.is_empty() {
            return;
        }
        let Some(n) = self.notifier.get() else {
            return;
        };
        for i in stale {
            n.inval_inode(i.ino, if i.listing { 0 } else { -1 }, 0);
        }
    }

    /// What the kernel said about the caller's CAP_FSETID, where it said it: `kill` is
    /// its flag on a request that carries one (`applies`).
    fn no_fsetid(&self, applies: bool, kill: bool) -> Option<bool> {
        (applies && self.killpriv_v2.load(Ordering::Relaxed)).then_some(kill)
    }

    fn ctx(h: &Header, umask: u32) -> Ctx {
        Ctx {
            uid: h.uid,
            gid: h.gid,
            umask,
            pid: h.pid,
            no_fsetid: None,
        }
    }

    /// `struct fuse_entry_out` of a node: its id, and the number stat shows.
    fn entry_body(&self, w: &mut Writer, a: &Attr) {
        w.entry(a.ino, self.ttl, self.ttl, &wire_attr(a));
    }

    fn reply_entry(&self, r: Res<Attr>, reply: Reply<'_>) {
        match r {
            Ok(a) => {
                let mut w = Writer::with_capacity(abi::ENTRY_OUT);
                self.entry_body(&mut w, &a);
                reply.body(&w);
            }
            Err(e) => reply.error(err(e)),
        }
    }

    fn reply_attr(&self, r: Res<Attr>, reply: Reply<'_>) {
        match r {
            Ok(a) => {
                let mut w = Writer::with_capacity(104);
                w.attr_out(self.ttl, &wire_attr(&a));
                reply.body(&w);
            }
            Err(e) => reply.error(err(e)),
        }
    }

    /// Answer a request that returns nothing, after telling the kernel what it changed.
    fn flushed_empty(&self, r: Res<()>, reply: Reply<'_>) {
        self.flush_invalidations();
        empty(reply, r);
    }

    fn init_out(&self, init: &InitIn) -> InitOut {
        let _t = self.stats.start(Counted::Init);
        let mut flags = abi::ASYNC_READ
            | abi::BIG_WRITES
            | abi::MAX_PAGES
            | abi::DO_READDIRPLUS
            | abi::READDIRPLUS_AUTO
            | abi::PARALLEL_DIROPS
            | abi::CACHE_SYMLINKS
            | abi::HANDLE_KILLPRIV_V2
            // open(O_TRUNC) arrives as one OPEN, so a lower file is copied up empty.
            | abi::ATOMIC_O_TRUNC
            // No OPENDIR/RELEASEDIR round trips: two requests less per directory read.
            | abi::NO_OPENDIR_SUPPORT;
        self.no_opendir
            .store(init.flags & abi::NO_OPENDIR_SUPPORT != 0, Ordering::Relaxed);
        self.killpriv_v2
            .store(init.flags & abi::HANDLE_KILLPRIV_V2 != 0, Ordering::Relaxed);
        let passthrough = self.want_passthrough
            && sys::geteuid() == 0
            && init.flags & abi::PASSTHROUGH != 0
            && init.minor >= 40;
        if self.want_uring {
            flags |= kernel::OVER_IO_URING;
        }
        if passthrough {
            flags |= abi::PASSTHROUGH;
            self.passthrough.store(true, Ordering::Relaxed);
        }
        InitOut {
            flags,
            max_write: 1 << 20,
            max_stack_depth: 1,
        }
    }
}

impl kernel::Handler for LayerFs {
    fn init(&self, init: &InitIn) -> InitOut {
        self.init_out(init)
    }

    fn request(&self, h: &Header, op: Op<'_>, reply: Reply<'_>) {
        if h.ring {
            self.stats.via_ring();
        }
        match op {
            Op::Lookup(name) => self.lookup(h, name, reply),
            Op::Forget(n) => {
                let _t = self.stats.start(Counted::Forget);
                self.fs.forget(h.nodeid, n);
            }
            Op::BatchForget(v) => {
                let _t = self.stats.start(Counted::BatchForget);
                for (ino, n) in v {
                    self.fs.forget(ino, n);
                }
            }
            Op::Getattr { .. } => {
                let _t = self.stats.start(Counted::Getattr);
                let r = self.fs.getattr(h.nodeid);
                if r.is_err() {
                    _t.failed();
                }
                self.reply_attr(r, reply)
            }
            Op::Setattr(a) => self.setattr(h, a, reply),
            Op::Readlink => {
                let _t = self.stats.start(Counted::Readlink);
                match self.fs.readlink(h.nodeid) {
                    Ok(t) => reply.data(std::os::unix::ffi::OsStrExt::as_bytes(t.as_os_str())),
                    Err(e) => reply.error(err(e)),
                }
            }
            Op::Symlink { .. } | Op::Mknod { .. } | Op::Mkdir { .. } => {
                self.new_entry(h, op, reply)
            }
            Op::Unlink(name) => {
                let _t = self.stats.start(Counted::Unlink);
                let r = self.fs.unlink(h.nodeid, name);
                self.flushed_empty(r, reply);
            }
            Op::Rmdir(name) => {
                let _t = self.stats.start(Counted::Rmdir);
                let r = self.fs.rmdir(h.nodeid, name);
                self.flushed_empty(r, reply);
            }
            Op::Rename {
                name,
                newdir,
                newname,
                flags,
            } => {
                let _t = self.stats.start(Counted::Rename);
                let r = self.fs.rename(h.nodeid, name, newdir, newname, flags);
                self.flushed_empty(r, reply);
            }
            Op::Link { old, newname } => {
                let _t = self.stats.start(Counted::Link);
                let r = self.fs.link(old, h.nodeid, newname);
                self.flush_invalidations();
                self.reply_entry(r, reply);
            }
            Op::Statfs => self.statfs(reply),
            Op::Access => {
                let _t = self.stats.start(Counted::Access);
                // default_permissions: the kernel checks modes itself.
                reply.ok();
            }
            Op::Init(_) | Op::Destroy => reply.ok(),
            Op::Interrupt => reply.error(libc::ENOSYS),
            // FLUSH, locks, ioctl, poll, copy_file_range, tmpfile, statx...: ENOSYS, and
            // the kernel does without them (for FLUSH: one round trip less per close;
            // layerfs keeps no dirty state a close would need to push out).
            Op::Unsupported => reply.error(libc::ENOSYS),
            op => self.file_request(h, op, reply),
        }
    }
}

/// Answer a request that returns nothing.
fn empty(reply: Reply<'_>, r: Res<()>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(err(e)),
    }
}

/// The errno of a failed xattr request: with `noxattrs=1` ENOSYS, which the kernel
/// turns into EOPNOTSUPP for this call and every later one without asking again.
fn xattr_err(fs: &OverlayFs, e: Errno) -> i32 {
    if fs.no_xattrs && e == Errno::ENOTSUP {
        err(Errno::ENOSYS)
    } else {
        err(e)
    }
}
