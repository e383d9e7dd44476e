//! The thin FUSE adapter: `impl fuser::Filesystem` over [`OverlayFs`]. Each method
//! counts the request ([`stats`]), converts arguments, calls the overlay, and replies.
//! The state kept here: FUSE passthrough bookkeeping ([`passthrough`]) and the counters.

mod convert;
mod passthrough;
pub mod stats;

use crate::overlay::fileops::SetAttr;
use crate::overlay::{Attr, Ctx, Errno, Listed, OverlayFs, Res};
use crate::sys;
use convert::{NEGATIVE, dtype_kind, err, file_attr, stat_attr, time_arg};
use dashmap::DashMap;
use fuser::{
    AccessFlags, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig,
    LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use passthrough::Backing;
use stats::{Op, Stats};
use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// The FUSE face of an overlay.
pub struct LayerFs {
    fs: Arc<OverlayFs>,
    ttl: Duration,
    want_passthrough: bool,
    passthrough: AtomicBool,
    /// The kernel opens directories without OPENDIR (`FUSE_NO_OPENDIR_SUPPORT`).
    no_opendir: AtomicBool,
    backings: DashMap<u64, Backing>,
    /// fh -> ino for handles that hold a reference on a backing.
    fh_backing: DashMap<u64, u64>,
    /// Set once the session exists: for telling the kernel to drop stale names.
    notifier: Arc<std::sync::OnceLock<fuser::Notifier>>,
    /// Request counters (`-o stats=FILE`, SIGUSR1).
    stats: Arc<Stats>,
}

impl LayerFs {
    pub fn new(
        fs: Arc<OverlayFs>,
        timeout: f64,
        passthrough: bool,
        notifier: Arc<std::sync::OnceLock<fuser::Notifier>>,
        stats: Arc<Stats>,
    ) -> LayerFs {
        LayerFs {
            notifier,
            stats,
            fs,
            ttl: Duration::from_secs_f64(timeout),
            want_passthrough: passthrough,
            passthrough: AtomicBool::new(false),
            no_opendir: AtomicBool::new(false),
            backings: DashMap::new(),
            fh_backing: DashMap::new(),
        }
    }

    /// How long the kernel may keep the attributes an entry reply carries: fuser sends
    /// the node id as their inode number, so a node that shows another number (a lower
    /// hard link's name) has them fetched again at once by GETATTR, which shows it. A
    /// stand-in entry (READDIRPLUS) is not kept at all.
    fn entry_attr_ttl(&self, a: &Attr) -> &Duration {
        const NONE: Duration = Duration::ZERO;
        if a.st_ino != a.ino || a.stand_in {
            &NONE
        } else {
            &self.ttl
        }
    }

    /// Answer a request that returns nothing, after telling the kernel what it changed.
    fn flushed_empty(&self, r: Res<()>, reply: ReplyEmpty) {
        self.flush_invalidations();
        empty(reply, r);
    }

    /// MKNOD, MKDIR, SYMLINK: make the entry, then answer with it.
    fn new_entry(
        &self,
        ctx: &Ctx,
        parent: INodeNo,
        name: &OsStr,
        kind: crate::overlay::dirops::NewKind<'_>,
        reply: ReplyEntry,
    ) {
        let r = self.fs.create_entry(ctx, parent.0, name, kind);
        self.flush_invalidations();
        self.reply_entry(r.map(|(a, _)| a), reply);
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
            let offset = if i.listing { 0 } else { -1 };
            if let Err(e) = n.inval_inode(INodeNo(i.ino), offset, 0) {
                log::debug!("inval_inode {:#x}: {e}", i.ino);
            }
        }
    }

    fn ctx(req: &Request, umask: u32) -> Ctx {
        Ctx {
            uid: req.uid(),
            gid: req.gid(),
            umask,
            pid: req.pid(),
        }
    }

    fn reply_entry(&self, r: Res<Attr>, reply: ReplyEntry) {
        match r {
            Ok(a) => reply.entry_with_ttls(
                self.entry_attr_ttl(&a),
                &self.ttl,
                &file_attr(&a),
                Generation(0),
            ),
            Err(e) => reply.error(err(e)),
        }
    }
}

/// The errno of a failed xattr request: with `noxattrs=1` ENOSYS, which the kernel
/// turns into EOPNOTSUPP for this call and every later one without asking again.
fn xattr_err(fs: &OverlayFs, e: Errno) -> fuser::Errno {
    if fs.no_xattrs && e == Errno::ENOTSUP {
        err(Errno::ENOSYS)
    } else {
        err(e)
    }
}

/// getxattr/listxattr replies: size 0 asks for the length; a short buffer is ERANGE.
fn reply_xattr(fs: &OverlayFs, r: Res<Vec<u8>>, size: u32, reply: ReplyXattr) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(err(Errno::ERANGE)),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(xattr_err(fs, e)),
    }
}

impl Filesystem for LayerFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let _t = self.stats.start(Op::Init);
        let _ = config.set_max_write(1 << 20);
        let _ = config.add_capabilities(
            InitFlags::FUSE_DO_READDIRPLUS
                | InitFlags::FUSE_READDIRPLUS_AUTO
                | InitFlags::FUSE_PARALLEL_DIROPS
                | InitFlags::FUSE_CACHE_SYMLINKS
                | InitFlags::FUSE_HANDLE_KILLPRIV_V2
                // open(O_TRUNC) arrives as one OPEN, so a lower file is copied up empty.
                | InitFlags::FUSE_ATOMIC_O_TRUNC,
        );
        // No OPENDIR/RELEASEDIR round trips: two requests less per directory read.
        let no_opendir = config
            .capabilities()
            .contains(InitFlags::FUSE_NO_OPENDIR_SUPPORT);
        self.no_opendir.store(no_opendir, Ordering::Relaxed);
        if self.want_passthrough
            && sys::geteuid() == 0
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(1).is_ok()
        {
            self.passthrough.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _t = self.stats.start(Op::Lookup);
        match self.fs.lookup(parent.0, name) {
            // A name that is not there stays absent until a request through this mount
            // creates it (the layers below do not change under a mount, and every change
            // layerfs makes goes through the kernel's dentry cache), so the kernel may
            // cache the miss: node id 0 with a timeout is a negative entry. Creation with
            // O_EXCL, mkdir, mknod and rename targets revalidate it anyway.
            Err(Errno::ENOENT) => {
                _t.failed();
                reply.entry(&self.ttl, &NEGATIVE, Generation(0))
            }
            r => {
                if r.is_err() {
                    _t.failed();
                }
                self.reply_entry(r, reply)
            }
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let _t = self.stats.start(Op::Forget);
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let _t = self.stats.start(Op::Getattr);
        match self.fs.getattr(ino.0) {
            Ok(a) => reply.attr(&self.ttl, &stat_attr(&a)),
            Err(e) => {
                _t.failed();
                reply.error(err(e))
            }
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let _t = self.stats.start(Op::Setattr);
        let a = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: time_arg(atime),
            mtime: time_arg(mtime),
        };
        let r = self
            .fs
            .setattr(&Self::ctx(req, 0), ino.0, fh.map(|f| f.0), a);
        self.flush_invalidations();
        match r {
            Ok(a) => reply.attr(&self.ttl, &stat_attr(&a)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let _t = self.stats.start(Op::Readlink);
        match self.fs.readlink(ino.0) {
            Ok(t) => reply.data(std::os::unix::ffi::OsStrExt::as_bytes(t.as_os_str())),
            Err(e) => reply.error(err(e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let _t = self.stats.start(Op::Mknod);
        self.new_entry(
            &Self::ctx(req, umask),
            parent,
            name,
            crate::overlay::dirops::NewKind::Node {
                mode,
                rdev: rdev as u64,
            },
            reply,
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let _t = self.stats.start(Op::Mkdir);
        self.new_entry(
            &Self::ctx(req, umask),
            parent,
            name,
            crate::overlay::dirops::NewKind::Dir { mode },
            reply,
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _t = self.stats.start(Op::Unlink);
        let r = self.fs.unlink(parent.0, name);
        self.flushed_empty(r, reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _t = self.stats.start(Op::Rmdir);
        let r = self.fs.rmdir(parent.0, name);
        self.flushed_empty(r, reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let _t = self.stats.start(Op::Symlink);
        let kind = crate::overlay::dirops::NewKind::Symlink {
            target: target.as_os_str(),
        };
        self.new_entry(&Self::ctx(req, 0), parent, link_name, kind, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let _t = self.stats.start(Op::Rename);
        let r = self
            .fs
            .rename(parent.0, name, newparent.0, newname, flags.bits());
        self.flushed_empty(r, reply);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let _t = self.stats.start(Op::Link);
        let r = self.fs.link(ino.0, newparent.0, newname);
        self.flush_invalidations();
        self.reply_entry(r, reply);
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _t = self.stats.start(Op::Open);
        let write = flags.0 & libc::O_ACCMODE != libc::O_RDONLY || flags.0 & libc::O_TRUNC != 0;
        let pinned_lower = self.backings.get(&ino.0).is_some_and(|b| !b.upper);
        if pinned_lower && (write || self.fs.is_upper(ino.0)) {
            // Passthrough readers pin this inode to the lower file; the kernel allows one
            // backing file per inode. The copy becomes a new inode and ESTALE makes the
            // kernel look the name up again and open that one.
            let r = self.fs.copy_up_as_new_inode(ino.0);
            self.flush_invalidations();
            match r {
                Ok(()) => reply.error(err(Errno::ESTALE)),
                Err(e) => reply.error(err(e)),
            }
            return;
        }
        // With FUSE_HANDLE_KILLPRIV_V2 the daemon clears set-id bits; fuser does not show
        // the kernel's "caller lacks CAP_FSETID" flags of OPEN and SETATTR, so a caller
        // other than root is taken as lacking it (WRITE carries its flag).
        let r = self.fs.open(&Self::ctx(req, 0), ino.0, flags.0);
        self.flush_invalidations();
        match r {
            // Writes that clear set-id bits must reach the daemon: no passthrough (direct
            // I/O is allowed beside other opens' passthrough).
            Ok(o) if o.via_daemon && self.passthrough.load(Ordering::Relaxed) => {
                reply.opened(FileHandle(o.fh), FopenFlags::FOPEN_DIRECT_IO)
            }
            Ok(o) => self.reply_open(ino.0, o.fh, o.upper, reply),
            Err(e) => reply.error(err(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let _t = self.stats.start(Op::Read);
        match self.fs.read(fh.0, offset, size) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(err(e)),
        }
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let _t = self.stats.start(Op::Write);
        let kill = write_flags
            .contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID)
            .then(|| Self::ctx(req, 0));
        let r = self.fs.write(fh.0, offset, data, kill.as_ref());
        self.flush_invalidations();
        match r {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(err(e)),
        }
    }

    // No `flush`: fuser answers ENOSYS and the kernel stops sending FLUSH (one round trip
    // less per close); layerfs keeps no dirty state that a close would need to push out.

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let _t = self.stats.start(Op::Release);
        self.detach_backing(fh.0);
        self.fs.release(fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _t = self.stats.start(Op::Fsync);
        empty(reply, self.fs.fsync(fh.0, datasync))
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _t = self.stats.start(Op::Opendir);
        if self.no_opendir.load(Ordering::Relaxed) {
            // The kernel then opens directories without asking (nor RELEASEDIR), with
            // FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR, as below: READDIR needs no handle.
            return reply.error(err(Errno::ENOSYS));
        }
        match self.fs.node_is_dir(ino.0) {
            // The kernel may cache listings: every change goes through us, and it drops
            // a directory's cache when one of our replies changes that directory.
            Ok(()) => reply.opened(
                FileHandle(0),
                FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Err(e) => reply.error(err(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let _t = self.stats.start(Op::Readdir);
        let l = match self.fs.readdir(ino.0, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(err(e)),
        };
        for (i, e) in l.entries.iter().enumerate().skip(l.start) {
            if reply.add(
                INodeNo(e.ino),
                l.offset_after(i),
                dtype_kind(e.dtype),
                &e.name,
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let _t = self.stats.start(Op::Readdirplus);
        let l = match self.fs.readdir(ino.0, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(err(e)),
        };
        let mut sent = 0;
        for (i, e) in l.entries.iter().enumerate().skip(l.start) {
            let dots = e.name == "." || e.name == "..";
            let a = if dots {
                self.fs.getattr(e.ino)
            } else {
                match self.fs.lookup_listed(ino.0, &e.name, e.layer, sent == 0) {
                    Ok(Listed::Later) => break,
                    Ok(Listed::Entry(a)) => Ok(a),
                    Err(e) => Err(e),
                }
            };
            let Ok(a) = a else {
                continue; // vanished since the snapshot
            };
            let full = reply.add(
                INodeNo(a.ino),
                l.offset_after(i),
                &e.name,
                // One ttl for the name and the attributes here (see `entry_attr_ttl`).
                self.entry_attr_ttl(&a),
                &file_attr(&a),
                Generation(0),
            );
            if full {
                if !dots {
                    self.fs.forget(a.ino, 1);
                }
                break;
            }
            sent += 1;
        }
        self.stats.plus_entries(sent);
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let _t = self.stats.start(Op::Releasedir);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _t = self.stats.start(Op::Fsyncdir);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let _t = self.stats.start(Op::Statfs);
        match self.fs.statfs() {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(err(e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let _t = self.stats.start(Op::Setxattr);
        let r = self.fs.setxattr(ino.0, name, value, flags);
        self.flush_invalidations();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(xattr_err(&self.fs, e)),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let _t = self.stats.start(Op::Getxattr);
        let r = self.fs.getxattr(ino.0, name);
        if r.is_err() {
            _t.failed();
        }
        reply_xattr(&self.fs, r, size, reply);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let _t = self.stats.start(Op::Listxattr);
        reply_xattr(&self.fs, self.fs.listxattr(ino.0), size, reply);
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _t = self.stats.start(Op::Removexattr);
        let r = self.fs.removexattr(ino.0, name);
        self.flush_invalidations();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(xattr_err(&self.fs, e)),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        let _t = self.stats.start(Op::Access);
        // default_permissions: the kernel checks modes itself.
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let _t = self.stats.start(Op::Create);
        let r = self
            .fs
            .create(&Self::ctx(req, umask), parent.0, name, mode, flags);
        self.flush_invalidations();
        match r {
            Ok((a, o)) => {
                let attr = file_attr(&a);
                if self.passthrough.load(Ordering::Relaxed) {
                    let r = self.attach_backing(a.ino, o.fh, true, |f| reply.open_backing(f));
                    if let Ok(true) = r
                        && let Some(b) = self.backings.get(&a.ino)
                    {
                        reply.created_passthrough(
                            &self.ttl,
                            &attr,
                            Generation(0),
                            FileHandle(o.fh),
                            FopenFlags::empty(),
                            &b.id,
                        );
                        return;
                    }
                    self.detach_backing(o.fh);
                    let direct = if matches!(r, Ok(false)) {
                        FopenFlags::FOPEN_DIRECT_IO
                    } else {
                        FopenFlags::FOPEN_KEEP_CACHE
                    };
                    reply.created(&self.ttl, &attr, Generation(0), FileHandle(o.fh), direct);
                    return;
                }
                reply.created(
                    &self.ttl,
                    &attr,
                    Generation(0),
                    FileHandle(o.fh),
                    FopenFlags::FOPEN_KEEP_CACHE,
                );
            }
            Err(e) => reply.error(err(e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let _t = self.stats.start(Op::Fallocate);
        empty(reply, self.fs.fallocate(fh.0, mode, offset, length))
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let _t = self.stats.start(Op::Lseek);
        match self.fs.lseek(fh.0, offset, whence) {
            Ok(o) => reply.offset(o),
            Err(e) => reply.error(err(e)),
        }
    }
}

/// Answer a request that returns nothing.
fn empty(reply: ReplyEmpty, r: Res<()>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(err(e)),
    }
}
