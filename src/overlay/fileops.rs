//! File data and metadata: open (copying up for writes), read, write, fsync, setattr
//! (chmod/chown/truncate/utimens), setxattr/removexattr, fallocate, lseek.

use super::{Attr, Ctx, OverlayFs, Res, eno, ownership, whiteout};
use crate::sys;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsFd;

/// The result of OPEN.
#[derive(Debug, Clone, Copy)]
pub struct Opened {
    pub fh: u64,
    /// The file opened is the upper copy.
    pub upper: bool,
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

fn wants_write(flags: i32) -> bool {
    flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0
}

impl OverlayFs {
    /// OPEN: a write open copies the file up first; reads of lower files stay on them.
    pub fn open(&self, ino: u64, flags: i32) -> Res<Opened> {
        let node = self.node(ino)?;
        if node.is_dir() {
            return Err(libc::EISDIR);
        }
        if wants_write(flags) {
            if self.read_only {
                return Err(libc::EROFS);
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
            self.stack.layers[loc.0].fd(),
            &loc.1,
            fl | libc::O_NOFOLLOW,
            0,
        ) {
            Ok(fd) => fd,
            // O_NOATIME is refused on files we do not own: drop it.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) && fl & libc::O_NOATIME != 0 => {
                sys::open_at(
                    self.stack.layers[loc.0].fd(),
                    &loc.1,
                    (fl & !libc::O_NOATIME) | libc::O_NOFOLLOW,
                    0,
                )
                .map_err(eno)?
            }
            Err(e) => return Err(eno(e)),
        };
        let fh = self.new_handle(ino, File::from(fd), st.upper);
        Ok(Opened {
            fh,
            upper: st.upper,
        })
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
            self.stack.layers[loc.0].fd(),
            &loc.1,
            fl | libc::O_NOFOLLOW,
            0,
        )
        .map_err(eno)?;
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
        let file = file.ok_or(libc::EIO)?;
        let fh = self.new_handle(attr.ino, file, true);
        Ok((attr, Opened { fh, upper: true }))
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
            self.stack.layers[0].fd(),
            &path,
            libc::O_RDONLY | libc::O_NOFOLLOW,
            0,
        )
        .map_err(eno)?;
        let _ = h.upper_copy.set(File::from(fd));
        Ok(h.upper_copy.get().unwrap_or(&h.file))
    }

    pub fn read(&self, fh: u64, offset: u64, size: u32) -> Res<Vec<u8>> {
        let h = self.handle(fh)?;
        let file = self.read_file(&h)?;
        let mut buf = vec![0u8; size as usize];
        let mut got = 0;
        while got < buf.len() {
            let n = sys::pread(file.as_fd(), &mut buf[got..], offset + got as u64).map_err(eno)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        buf.truncate(got);
        Ok(buf)
    }

    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Res<u32> {
        let h = self.handle(fh)?;
        if !h.upper {
            return Err(libc::EBADF);
        }
        let n = sys::pwrite(h.file.as_fd(), data, offset).map_err(eno)?;
        Ok(n as u32)
    }

    pub fn fsync(&self, fh: u64, datasync: bool) -> Res<()> {
        let h = self.handle(fh)?;
        if !h.upper {
            return Ok(());
        }
        sys::fsync(h.file.as_fd(), datasync).map_err(eno)
    }

    pub fn fallocate(&self, fh: u64, mode: i32, offset: u64, len: u64) -> Res<()> {
        let h = self.handle(fh)?;
        if !h.upper {
            return Err(libc::EBADF);
        }
        sys::fallocate(h.file.as_fd(), mode, offset, len).map_err(eno)
    }

    pub fn lseek(&self, fh: u64, offset: i64, whence: i32) -> Res<i64> {
        let h = self.handle(fh)?;
        let r = unsafe { libc::lseek(std::os::fd::AsRawFd::as_raw_fd(&h.file), offset, whence) };
        if r < 0 {
            return Err(eno(std::io::Error::last_os_error()));
        }
        Ok(r)
    }

    /// SETATTR: copy up, then apply each change to the upper file.
    pub fn setattr(&self, ctx: &Ctx, ino: u64, fh: Option<u64>, a: SetAttr) -> Res<Attr> {
        let _ = ctx;
        if self.read_only {
            return Err(libc::EROFS);
        }
        let node = self.node(ino)?;
        if a.size == Some(0) {
            self.copy_up_truncated(&node)?;
        } else {
            self.copy_up(&node)?;
        }
        let loc = self.loc_of(&node);
        let up = self.stack.layers[0].fd();
        // An open upper handle works even when the name is gone.
        let handle = fh.and_then(|f| self.handle(f).ok()).filter(|h| h.upper);
        let rel = match (&loc, &handle) {
            (Ok(l), _) => l.1.clone(),
            (Err(_), Some(_)) => std::path::PathBuf::new(),
            (Err(e), None) => return Err(*e),
        };
        let via_fd = loc.is_err();
        let kind = node.kind;

        if let Some(size) = a.size {
            if kind == libc::S_IFDIR {
                return Err(libc::EISDIR);
            }
            match &handle {
                Some(h) if sys::ftruncate(h.file.as_fd(), size).is_ok() => {}
                _ => {
                    let fd = sys::open_at(up, &rel, libc::O_WRONLY | libc::O_NOFOLLOW, 0)
                        .map_err(eno)?;
                    sys::ftruncate(fd.as_fd(), size).map_err(eno)?;
                }
            }
        }
        if a.uid.is_some() || a.gid.is_some() || a.mode.is_some() {
            let cur = if via_fd {
                let h = handle.as_ref().ok_or(libc::ENOENT)?;
                sys::fstat(h.file.as_fd()).map_err(eno)?
            } else {
                sys::lstat_at(up, &rel).map_err(eno)?
            };
            let over = if via_fd || !self.use_override {
                None
            } else {
                ownership::read_override(up, &rel).map_err(eno)?
            };
            let (cu, cg, cm) = match over {
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
            if (su, sg) != (cu, cg) && a.mode.is_none() && kind != libc::S_IFDIR {
                // chown by anyone clears setuid; setgid too when group-executable.
                mode &= !libc::S_ISUID;
                if mode & libc::S_IXGRP != 0 {
                    mode &= !libc::S_ISGID;
                }
            }
            let mut use_xattr = over.is_some() && !via_fd;
            if !use_xattr && (su, sg) != (cur.st_uid, cur.st_gid) {
                let r = match &handle {
                    Some(h) if via_fd => sys::fchown(h.file.as_fd(), su, sg),
                    _ => sys::chown_at(up, &rel, su, sg),
                };
                match r {
                    Ok(()) => {}
                    Err(e)
                        if !self.privileged
                            && !via_fd
                            && kind != libc::S_IFLNK
                            && matches!(e.raw_os_error(), Some(libc::EPERM | libc::EINVAL)) =>
                    {
                        use_xattr = true;
                    }
                    Err(e) => return Err(eno(e)),
                }
            }
            if use_xattr {
                // Ownership lives in the override xattr (unprivileged mounts).
                let v = ownership::format_override(su, sg, mode);
                sys::set_xattr_at(
                    up,
                    &rel,
                    OsStr::new(ownership::OVERRIDE_XATTR),
                    v.as_bytes(),
                    0,
                )
                .map_err(eno)?;
                let usable = if kind == libc::S_IFDIR { 0o700 } else { 0o600 };
                let _ = sys::chmod_at(up, &rel, (mode | usable) & 0o7777);
            } else if kind != libc::S_IFLNK
                && (a.mode.is_some() || (mode & 0o7777) != (cur.st_mode & 0o7777))
            {
                match &handle {
                    Some(h) if via_fd => sys::fchmod(h.file.as_fd(), mode & 0o7777).map_err(eno)?,
                    _ => sys::chmod_at(up, &rel, mode & 0o7777).map_err(eno)?,
                }
            }
        }
        if a.atime.is_some() || a.mtime.is_some() {
            let at = a.atime.unwrap_or(sys::Time::Omit);
            let mt = a.mtime.unwrap_or(sys::Time::Omit);
            match (&handle, via_fd) {
                (Some(h), true) => sys::futimens(h.file.as_fd(), at, mt).map_err(eno)?,
                _ => sys::utimens_at(up, &rel, at, mt).map_err(eno)?,
            }
        }
        self.getattr(ino, fh)
    }

    pub fn setxattr(&self, ino: u64, name: &OsStr, value: &[u8], flags: i32) -> Res<()> {
        let stored = match whiteout::stored_xattr_name(name) {
            whiteout::StoredName::Plain => name.to_os_string(),
            whiteout::StoredName::Escaped(n) => n,
            whiteout::StoredName::Private => return Err(libc::EPERM),
        };
        if self.read_only {
            return Err(libc::EROFS);
        }
        let node = self.node(ino)?;
        self.copy_up(&node)?;
        let path = self.nodes.path_of(ino)?;
        sys::set_xattr_at(self.stack.layers[0].fd(), &path, &stored, value, flags).map_err(eno)
    }

    pub fn removexattr(&self, ino: u64, name: &OsStr) -> Res<()> {
        let stored = match whiteout::stored_xattr_name(name) {
            whiteout::StoredName::Plain => name.to_os_string(),
            whiteout::StoredName::Escaped(n) => n,
            whiteout::StoredName::Private => return Err(libc::ENODATA),
        };
        if self.read_only {
            return Err(libc::EROFS);
        }
        let node = self.node(ino)?;
        // Removing a name that is not there must not copy up (and says ENODATA).
        self.getxattr(ino, name)?;
        self.copy_up(&node)?;
        let path = self.nodes.path_of(ino)?;
        sys::remove_xattr_at(self.stack.layers[0].fd(), &path, &stored).map_err(eno)
    }
}
