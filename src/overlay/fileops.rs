//! File data and metadata: open (copying up for writes), read, write, fsync, setattr
//! (chmod/chown/truncate/utimens), setxattr/removexattr, fallocate, lseek.

use super::{Attr, Ctx, Errno, IoOp, OverlayFs, Res, errno_at};
use crate::format::owner;
use crate::sys;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

/// The result of OPEN.
#[derive(Debug, Clone, Copy)]
pub struct Opened {
    pub fh: u64,
    /// The file opened is the upper copy.
    pub upper: bool,
    /// Writes must reach the daemon (no passthrough): the file is set-user-ID or
    /// set-group-ID and the writer may not keep those bits, which the first write clears.
    pub via_daemon: bool,
}

/// A SETATTR request in plain terms.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<sys::Time>,
    pub mtime: Option<sys::Time>,
}

/// `mode` without set-user-ID, and without set-group-ID when it is group-executable or
/// `not_in_group` (the caller is neither in the file's group nor privileged), as the
/// kernel clears them on chown, and on writes and truncation by users without CAP_FSETID.
pub fn killed_sxid(mode: u32, not_in_group: bool) -> u32 {
    let mut m = mode & !libc::S_ISUID;
    if m & libc::S_IXGRP != 0 || not_in_group {
        m &= !libc::S_ISGID;
    }
    m
}

/// Set-user-ID or set-group-ID: a write by a user without CAP_FSETID may clear them.
fn has_sxid(mode: u32) -> bool {
    mode & (libc::S_ISUID | libc::S_ISGID) != 0
}

/// The supplementary groups of process `pid` (empty when it cannot be read).
fn caller_groups(pid: u32) -> Vec<u32> {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Vec::new();
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn wants_write(flags: i32) -> bool {
    flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0
}

impl OverlayFs {
    /// OPEN: a write open copies the file up first; reads of lower files stay on them.
    /// A caller without CAP_FSETID may not keep set-user-ID/set-group-ID bits: O_TRUNC
    /// clears them, and so will its writes.
    pub fn open(&self, ctx: &Ctx, ino: u64, flags: i32) -> Res<Opened> {
        let node = self.node(ino)?;
        if node.is_dir() {
            return Err(Errno::EISDIR);
        }
        if wants_write(flags) {
            if self.read_only {
                return Err(Errno::EROFS);
            }
            if flags & libc::O_TRUNC != 0 {
                self.copy_up_truncated(&node)?;
            } else {
                self.copy_up(&node)?;
            }
        }
        let st = node.snap();
        let loc = self.loc_of(&node)?;
        let keep = flags
            & (libc::O_ACCMODE
                | libc::O_APPEND
                | libc::O_TRUNC
                | libc::O_NOATIME
                | libc::O_DIRECT
                | libc::O_SYNC
                | libc::O_DSYNC);
        let fl = if st.upper {
            keep
        } else {
            libc::O_RDONLY | (keep & libc::O_NOATIME)
        };
        let fd = match sys::open_at(
            self.stack.layers()[loc.0].fd(),
            &loc.1,
            fl | libc::O_NOFOLLOW,
            0,
        ) {
            Ok(fd) => fd,
            // O_NOATIME is refused on files we do not own: drop it.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) && fl & libc::O_NOATIME != 0 => {
                sys::open_at(
                    self.stack.layers()[loc.0].fd(),
                    &loc.1,
                    (fl & !libc::O_NOATIME) | libc::O_NOFOLLOW,
                    0,
                )
                .op("open", &loc.1)?
            }
            Err(e) => return Err(errno_at("open", &loc.1, e)),
        };
        let file = File::from(fd);
        let mut via_daemon = false;
        if st.upper && wants_write(flags) {
            if flags & libc::O_TRUNC != 0 && ctx.lacks_fsetid() {
                self.kill_sxid(ctx, ino, file.as_fd(), Path::new(""))?;
            }
            // Later writes: only WRITE says whether the writer holds CAP_FSETID, and
            // passthrough writes never reach us, so a caller other than root writes
            // a set-id file through the daemon.
            if ctx.uid != 0 {
                via_daemon = has_sxid(self.shown_mode(file.as_fd(), Path::new(""))?);
            }
        }
        let fh = self.new_handle(ino, file, st.upper);
        Ok(Opened {
            fh,
            upper: st.upper,
            via_daemon,
        })
    }

    /// Is the caller in group `stored_gid` (as stored; mapped to what the mount shows),
    /// or root (taken as holding CAP_FSETID)?
    fn in_group(&self, ctx: &Ctx, stored_gid: u32) -> bool {
        let (_, gid) = self.ids.present(0, stored_gid);
        ctx.uid == 0 || ctx.gid == gid || caller_groups(ctx.pid).contains(&gid)
    }

    /// The mode the mount shows for the file at (`dir`, `rel`) (override xattr first).
    fn shown_mode(&self, dir: BorrowedFd<'_>, rel: &Path) -> Res<u32> {
        if self.use_override
            && let Some(o) = owner::read_override(dir, rel).op("read override_stat", rel)?
        {
            return Ok(o.mode);
        }
        Ok(sys::lstat_at(dir, rel).op("stat", rel)?.st_mode)
    }

    /// Clear set-user-ID (and set-group-ID when group-executable) of a regular file, as
    /// the kernel does when a user without CAP_FSETID writes or truncates it; the kernel
    /// is told to fetch the attributes again.
    fn kill_sxid(&self, ctx: &Ctx, ino: u64, dir: BorrowedFd<'_>, rel: &Path) -> Res<()> {
        // The kernel asks this on every write by such a caller: one fstat decides the
        // common case (no override to read, no set-id bit).
        if !self.use_override && !has_sxid(sys::lstat_at(dir, rel).op("stat", rel)?.st_mode) {
            return Ok(());
        }
        let over = if self.use_override {
            owner::read_override(dir, rel).op("read override_stat", rel)?
        } else {
            None
        };
        let st = sys::lstat_at(dir, rel).op("stat", rel)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Ok(());
        }
        let mode = over.map_or(st.st_mode, |o| o.mode);
        if !has_sxid(mode) {
            return Ok(());
        }
        let gid = over.map_or(st.st_gid, |o| o.gid);
        let lone_sgid = mode & (libc::S_ISGID | libc::S_IXGRP) == libc::S_ISGID;
        let new = killed_sxid(mode, lone_sgid && !self.in_group(ctx, gid));
        if new == mode {
            return Ok(());
        }
        match over {
            Some(o) => {
                let v = owner::Override { mode: new, ..o }.value();
                let name = OsStr::new(owner::OVERRIDE_XATTR);
                sys::set_xattr_at(dir, rel, name, v.as_bytes(), 0)
                    .op("clear set-id in override_stat", rel)?;
            }
            None => sys::chmod_at(dir, rel, new & 0o7777).op("clear set-id bits", rel)?,
        }
        self.queue_inode_invalidation(ino);
        Ok(())
    }

    /// A second fd on the node's current file, read-write when it is the upper copy
    /// (FUSE passthrough wants one backing file per inode for every open).
    pub fn backing_file(&self, ino: u64) -> Res<(File, bool)> {
        let node = self.node(ino)?;
        let st = node.snap();
        let loc = self.loc_of(&node)?;
        let fl = if st.upper {
            libc::O_RDWR
        } else {
            libc::O_RDONLY
        };
        let fd = sys::open_at(
            self.stack.layers()[loc.0].fd(),
            &loc.1,
            fl | libc::O_NOFOLLOW,
            0,
        )
        .op("open backing file", &loc.1)?;
        Ok((File::from(fd), st.upper))
    }

    /// CREATE + open.
    pub fn create(
        &self,
        ctx: &Ctx,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> Res<(Attr, Opened)> {
        let (attr, file) = self.create_entry(
            ctx,
            parent,
            name,
            super::dirops::NewKind::File { mode, flags },
        )?;
        let file = file.ok_or(Errno::EIO)?;
        let fh = self.new_handle(attr.ino, file, true);
        Ok((
            attr,
            Opened {
                fh,
                upper: true,
                via_daemon: false,
            },
        ))
    }

    /// The file a read on this handle should use: a lower handle follows its file to
    /// the upper layer once it has been copied up.
    fn read_file<'h>(&self, h: &'h super::Handle) -> Res<&'h File> {
        if h.upper {
            return Ok(&h.file);
        }
        if let Some(f) = h.upper_copy.get() {
            return Ok(f);
        }
        let Some(node) = self.nodes.get(h.ino) else {
            return Ok(&h.file);
        };
        if !node.with(|s| s.upper) {
            return Ok(&h.file);
        }
        let path = match self.nodes.path_of(h.ino) {
            Ok(p) => p,
            Err(_) => return Ok(&h.file), // renamed away or gone: keep what we have
        };
        let fd = sys::open_at(
            self.stack.layers()[0].fd(),
            &path,
            libc::O_RDONLY | libc::O_NOFOLLOW,
            0,
        )
        .op("open upper copy for a lower handle", &path)?;
        let _ = h.upper_copy.set(File::from(fd));
        Ok(h.upper_copy.get().unwrap_or(&h.file))
    }

    pub fn read(&self, fh: u64, offset: u64, size: u32) -> Res<Vec<u8>> {
        let h = self.handle(fh)?;
        let file = self.read_file(&h)?;
        let mut buf = vec![0u8; size as usize];
        let mut got = 0;
        while got < buf.len() {
            let n = sys::pread(file.as_fd(), &mut buf[got..], offset + got as u64)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        buf.truncate(got);
        Ok(buf)
    }

    /// WRITE; `kill_sxid`: the writer may not keep set-user-ID/set-group-ID bits.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8], kill_sxid: Option<&Ctx>) -> Res<u32> {
        let h = self.handle(fh)?;
        if !h.upper {
            return Err(Errno::EBADF);
        }
        if let Some(ctx) = kill_sxid {
            self.kill_sxid(ctx, h.ino, h.file.as_fd(), Path::new(""))?;
        }
        let n = sys::pwrite(h.file.as_fd(), data, offset)?;
        Ok(n as u32)
    }

    pub fn fsync(&self, fh: u64, datasync: bool) -> Res<()> {
        let h = self.handle(fh)?;
        if !h.upper {
            return Ok(());
        }
        Ok(sys::fsync(h.file.as_fd(), datasync)?)
    }

    pub fn fallocate(&self, fh: u64, mode: i32, offset: u64, len: u64) -> Res<()> {
        let h = self.handle(fh)?;
        if !h.upper {
            return Err(Errno::EBADF);
        }
        Ok(sys::fallocate(h.file.as_fd(), mode, offset, len)?)
    }

    pub fn lseek(&self, fh: u64, offset: i64, whence: i32) -> Res<i64> {
        let h = self.handle(fh)?;
        Ok(sys::lseek(h.file.as_fd(), offset, whence)?)
    }

    /// SETATTR: copy up, then apply each change to the upper file (through an open
    /// handle once every name of it is gone).
    pub fn setattr(&self, ctx: &Ctx, ino: u64, fh: Option<u64>, a: SetAttr) -> Res<Attr> {
        if self.read_only {
            return Err(Errno::EROFS);
        }
        let node = self.node(ino)?;
        if a.size == Some(0) {
            self.copy_up_truncated(&node)?;
        } else {
            self.copy_up(&node)?;
        }
        let place = self.place(&node, true)?;
        if place.layer() != 0 {
            return Err(Errno::EIO);
        }
        let (up, rel) = place.at(&self.stack);
        let kind = node.kind;
        if let Some(size) = a.size {
            if kind == libc::S_IFDIR {
                return Err(Errno::EISDIR);
            }
            let handle = fh.and_then(|f| self.handle(f).ok()).filter(|h| h.upper);
            match &handle {
                Some(h) if sys::ftruncate(h.file.as_fd(), size).is_ok() => {}
                _ => {
                    let fd = sys::reopen(up, rel, libc::O_WRONLY).op("open to truncate", rel)?;
                    sys::ftruncate(fd.as_fd(), size).op("truncate", rel)?;
                }
            }
            if ctx.lacks_fsetid() && a.mode.is_none() {
                self.kill_sxid(ctx, ino, up, rel)?;
            }
        }
        if a.uid.is_some() || a.gid.is_some() || a.mode.is_some() {
            self.set_owner_mode(ctx, up, rel, kind, &a)?;
        }
        if a.atime.is_some() || a.mtime.is_some() {
            let at = a.atime.unwrap_or(sys::Time::Omit);
            let mt = a.mtime.unwrap_or(sys::Time::Omit);
            sys::utimens_at(up, rel, at, mt).op("utimens", rel)?;
        }
        let nothing = a.mode.is_none()
            && a.uid.is_none()
            && a.gid.is_none()
            && a.size.is_none()
            && a.atime.is_none()
            && a.mtime.is_none();
        if nothing {
            // chown(f, -1, -1) changes nothing but the change time (as on the kernel).
            sys::chown_at(up, rel, u32::MAX, u32::MAX).op("touch ctime", rel)?;
        }
        self.getattr(ino)
    }

    /// chown/chmod of the upper file at (`up`, `rel`): real ids when the daemon may set
    /// them, else the override xattr.
    fn set_owner_mode(
        &self,
        ctx: &Ctx,
        up: BorrowedFd<'_>,
        rel: &Path,
        kind: u32,
        a: &SetAttr,
    ) -> Res<()> {
        let cur = sys::lstat_at(up, rel).op("stat", rel)?;
        let over = if self.use_override {
            owner::read_override(up, rel).op("read override_stat", rel)?
        } else {
            None
        };
        let (cu, cg, cm) = match over {
            // A stand-in keeps the type (and device number) its override gives it.
            Some(o) if o.mode & libc::S_IFMT != 0 => (o.uid, o.gid, o.mode),
            Some(o) => (
                o.uid,
                o.gid,
                (cur.st_mode & libc::S_IFMT) | (o.mode & 0o7777),
            ),
            None => (cur.st_uid, cur.st_gid, cur.st_mode),
        };
        let (su, sg) = match (a.uid, a.gid) {
            (None, None) => (cu, cg),
            (u, g) => {
                let (pu, pg) = self.ids.present(cu, cg);
                self.ids.store(u.unwrap_or(pu), g.unwrap_or(pg))
            }
        };
        let mut mode = a
            .mode
            .map(|m| (cm & libc::S_IFMT) | (m & 0o7777))
            .unwrap_or(cm);
        if (a.uid.is_some() || a.gid.is_some()) && a.mode.is_none() && kind != libc::S_IFDIR {
            // chown by anyone clears setuid; setgid when group-executable, or when the
            // caller is neither in the file's group nor privileged.
            let lone_sgid = mode & (libc::S_ISGID | libc::S_IXGRP) == libc::S_ISGID;
            mode = killed_sxid(mode, lone_sgid && !self.in_group(ctx, cg));
        }
        let mut use_xattr = over.is_some();
        if !use_xattr && (su, sg) != (cur.st_uid, cur.st_gid) {
            match sys::chown_at(up, rel, su, sg) {
                Ok(()) => {}
                Err(e)
                    if !self.privileged
                        && kind != libc::S_IFLNK
                        && matches!(e.raw_os_error(), Some(libc::EPERM | libc::EINVAL)) =>
                {
                    use_xattr = true;
                }
                Err(e) => return Err(errno_at("chown", rel, e)),
            }
        }
        if use_xattr {
            // Ownership lives in the override xattr (unprivileged mounts).
            let v = owner::Override {
                uid: su,
                gid: sg,
                mode,
                rdev: over.and_then(|o| o.rdev),
            }
            .value();
            sys::set_xattr_at(up, rel, OsStr::new(owner::OVERRIDE_XATTR), v.as_bytes(), 0)
                .op("set override_stat", rel)?;
            let usable = if kind == libc::S_IFDIR { 0o700 } else { 0o600 };
            let _ = sys::chmod_at(up, rel, (mode | usable) & 0o7777);
        } else if kind != libc::S_IFLNK {
            // The real chown cleared setuid/setgid of a file: read again what is there.
            let now = sys::lstat_at(up, rel).op("stat", rel)?.st_mode;
            if a.mode.is_some() || (mode & 0o7777) != (now & 0o7777) {
                sys::chmod_at(up, rel, mode & 0o7777).op("chmod", rel)?;
            }
        }
        Ok(())
    }

    pub fn setxattr(&self, ino: u64, name: &OsStr, value: &[u8], flags: i32) -> Res<()> {
        let stored = self.stored_xattr_name(name, Errno::EPERM)?;
        if self.read_only {
            return Err(Errno::EROFS);
        }
        let node = self.node(ino)?;
        self.copy_up(&node)?;
        let place = self.place(&node, true)?;
        let (fd, rel) = place.at(&self.stack);
        if std::os::unix::ffi::OsStrExt::as_bytes(name) == super::CAPS_XATTR {
            node.caps_absent
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
        sys::set_xattr_at(fd, rel, &stored, value, flags).op("setxattr", rel)
    }

    pub fn removexattr(&self, ino: u64, name: &OsStr) -> Res<()> {
        let stored = self.stored_xattr_name(name, Errno::ENODATA)?;
        if self.read_only {
            return Err(Errno::EROFS);
        }
        let node = self.node(ino)?;
        // Removing a name that is not there must not copy up (and says ENODATA).
        self.getxattr(ino, name)?;
        self.copy_up(&node)?;
        let place = self.place(&node, true)?;
        let (fd, rel) = place.at(&self.stack);
        sys::remove_xattr_at(fd, rel, &stored).op("removexattr", rel)
    }
}
