//! Copy-up: bring a lower file or directory into the upper layer before it changes.
//!
//! Parents first (with their metadata), then the entry itself is built in
//! `workdir/layerfs-tmp/` — data by FICLONE, else copy_file_range over the data
//! extents (holes stay holes), else read/write — with owner, xattrs (security.capability
//! included), mode and times, optionally fsynced, and finally renamed into place. A crash
//! leaves at most a temp file in the workdir, which the next mount removes.

use super::nodes::Node;
use super::{Errno, IoOp, OverlayFs, Res};
use crate::format::{owner, whiteout};
use crate::sys;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::Arc;

/// Copy data from `src` to `dst` keeping holes; `size` is the source size.
pub fn copy_data(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, size: u64) -> io::Result<()> {
    if size == 0 {
        return Ok(());
    }
    if sys::ficlone(dst, src).is_ok() {
        return Ok(());
    }
    let mut off = 0u64;
    let mut use_cfr = true;
    while off < size {
        let data = match sys::seek_data_hole(src, off, true) {
            Ok(Some(d)) => d,
            Ok(None) => break,
            // No SEEK_DATA support: treat everything as data.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => off,
            Err(e) => return Err(e),
        };
        let hole = match sys::seek_data_hole(src, data, false) {
            Ok(Some(h)) => h.min(size),
            Ok(None) => size,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => size,
            Err(e) => return Err(e),
        };
        let mut pos = data;
        while pos < hole {
            let want = ((hole - pos) as usize).min(1 << 30);
            let n = if use_cfr {
                match sys::copy_file_range(src, pos, dst, pos, want) {
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EXDEV | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
                        ) =>
                    {
                        use_cfr = false;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            } else {
                let mut buf = vec![0u8; want.min(1 << 20)];
                let r = sys::pread(src, &mut buf, pos)?;
                let mut w = 0;
                while w < r {
                    w += sys::pwrite(dst, &buf[w..r], pos + w as u64)?;
                }
                r
            };
            if n == 0 {
                break; // the source shrank under us
            }
            pos += n as u64;
        }
        off = hole;
    }
    sys::ftruncate(dst, size)
}

/// Copy every xattr but the overlay-private ones (override_stat is kept: it is the
/// ownership record). Errors on individual names that the target refuses are ignored
/// only where the kernel would refuse them too (e.g. user.* on symlinks).
fn copy_xattrs(
    sdir: BorrowedFd<'_>,
    srel: &Path,
    ddir: BorrowedFd<'_>,
    drel: &Path,
) -> io::Result<()> {
    let names = match sys::list_xattr_at(sdir, srel) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(()),
        Err(e) => return Err(e),
    };
    for n in names {
        // Keep ordinary and escaped names and the ownership record; drop the markers.
        let keep = whiteout::shown_xattr_name(&n).is_some()
            || owner::OVERRIDE_XATTRS_READ
                .iter()
                .any(|x| OsStr::new(x) == n);
        if !keep {
            continue;
        }
        let Some(v) = sys::get_xattr_at(sdir, srel, &n)? else {
            continue;
        };
        match sys::set_xattr_at(ddir, drel, &n, &v, 0) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOTSUP)) => {
                log::debug!("copy-up: xattr {:?} not copied: {e}", n);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Rename the finished copy `tmp` in the workdir to `path` in the upper layer, keeping
/// the parent's timestamps as they were (the kernel does the same).
fn rename_keeping_parent_times(
    work: BorrowedFd<'_>,
    tmp: &Path,
    upper: BorrowedFd<'_>,
    path: &Path,
) -> io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new(""));
    let pst = sys::lstat_at(upper, parent).ok();
    sys::rename_at(work, tmp, upper, path, 0)?;
    if let Some(p) = pst {
        let _ = sys::utimens_at(
            upper,
            parent,
            sys::Time::At(p.st_atime, p.st_atime_nsec),
            sys::Time::At(p.st_mtime, p.st_mtime_nsec),
        );
    }
    Ok(())
}

impl OverlayFs {
    /// Make sure `node` exists in the upper layer (parents first). Idempotent; two
    /// threads copying the same node produce one copy.
    pub fn copy_up(&self, node: &Arc<Node>) -> Res<()> {
        self.copy_up_with(node, false)
    }

    /// Copy-up for an open with O_TRUNC: the data would be thrown away at once, so
    /// only the metadata is copied (an empty file), as kernel overlayfs does.
    pub fn copy_up_truncated(&self, node: &Arc<Node>) -> Res<()> {
        self.copy_up_with(node, true)
    }

    fn copy_up_with(&self, node: &Arc<Node>, no_data: bool) -> Res<()> {
        if node.snap().upper {
            return Ok(());
        }
        if self.read_only {
            return Err(Errno::EROFS);
        }
        let _g = node.copy_lock.lock().map_err(|_| Errno::EIO)?;
        let st = node.snap();
        if st.upper {
            return Ok(());
        }
        let (parent, _) = st.aliases.first().cloned().ok_or(Errno::ENOENT)?;
        let pnode = self.node(parent)?;
        self.copy_up(&pnode)?;
        let path = self.nodes.path_of(node.ino)?;
        let src = st.lowers.first().cloned().ok_or(Errno::EIO)?;
        self.copy_one(node, &src, &path, no_data)
    }

    /// Copy a lower file up for a writer while the kernel inode must stay on the lower
    /// file (FUSE passthrough readers hold it): the upper copy becomes a new inode that
    /// the next lookup finds, and this node stays the old lower file for its readers.
    /// The caller answers the open with ESTALE, so the kernel looks the name up again.
    pub fn copy_up_as_new_inode(&self, ino: u64) -> Res<()> {
        let node = self.node(ino)?;
        if node.snap().lowers.is_empty() {
            return Err(Errno::EIO); // never was a lower file: nothing to keep it on
        }
        self.copy_up(&node)?;
        let _g = node.copy_lock.lock().map_err(|_| Errno::EIO)?;
        let upper_backing = node.snap().backing;
        let lower = node.snap().lowers.first().cloned().ok_or(Errno::EIO)?;
        let lst = sys::lstat_at(self.stack.layers()[lower.0].fd(), &lower.1)
            .op("stat lower file", &lower.1)?;
        self.nodes.unmap_backing(upper_backing);
        self.nodes.drop_all_aliases(ino);
        node.update(|s| {
            s.upper = false;
            s.backing = (lst.st_dev, lst.st_ino);
        });
        Ok(())
    }

    fn copy_one(
        &self,
        node: &Arc<Node>,
        src: &crate::format::resolve::Loc,
        path: &Path,
        no_data: bool,
    ) -> Res<()> {
        let work = self.work()?;
        let upper = self.stack.layers()[0].fd();
        let sl = &self.stack.layers()[src.0];
        let sst = sys::lstat_at(sl.fd(), &src.1).op("copy-up: stat", &src.1)?;
        let tmp = self.tmp_name();
        let kind = sst.st_mode & libc::S_IFMT;
        let result = self
            .build_copy(&sst, sl.fd(), &src.1, work, &tmp, no_data)
            .and_then(|()| rename_keeping_parent_times(work, &tmp, upper, path));
        if let Err(e) = result {
            let _ = sys::remove_tree_at(work, &tmp);
            log::warn!("copy-up of {} failed: {e}", path.display());
            return Err(e.into());
        }
        let ust = sys::lstat_at(upper, path).op("copy-up: stat the copy", path)?;
        let backing = (ust.st_dev, ust.st_ino);
        self.nodes.map_backing(backing, node.ino);
        node.update(|s| {
            s.upper = true;
            s.backing = backing;
        });
        if self
            .nodes
            .give_own_number(node, self.stack.layers()[0].fs_index, ust.st_ino)
        {
            // The kernel must fetch the number again (stat would show the old one), and
            // list the directory again (its d_ino too).
            self.queue_inode_invalidation(node.ino);
            if let Some(parent) = node.with(|s| s.aliases.first().map(|a| a.0)) {
                self.queue_listing_invalidation(parent);
            }
        }
        // A lower file with several names: only this name now leads to the copy (kernel
        // overlayfs without an index breaks the link the same way). The other names are
        // nodes of their own (see `nodes`) and stay on the lower file.
        if kind == libc::S_IFDIR && ust.st_ino != sst.st_ino {
            // Upper + lower: a merged directory now, whose nlink reads 1.
            self.queue_inode_invalidation(node.ino);
        }
        Ok(())
    }

    /// Build the copy of the lower entry `srel` under `sdir` (its stat `sst`) at `tmp` in
    /// the workdir: data (unless `no_data`), then metadata; fsynced when asked.
    fn build_copy(
        &self,
        sst: &sys::Stat,
        sdir: BorrowedFd<'_>,
        srel: &Path,
        work: BorrowedFd<'_>,
        tmp: &Path,
        no_data: bool,
    ) -> io::Result<()> {
        match sst.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                sys::mkdir_at(work, tmp, 0o700)?;
                self.copy_meta(sst, sdir, srel, work, tmp, None)
            }
            libc::S_IFREG => {
                let sfd = sys::open_at(sdir, srel, libc::O_RDONLY | libc::O_NOFOLLOW, 0)?;
                let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
                let dfd = sys::open_at(work, tmp, flags, 0o600)?;
                if !no_data {
                    copy_data(sfd.as_fd(), dfd.as_fd(), sst.st_size as u64)?;
                }
                self.copy_meta(sst, sdir, srel, work, tmp, Some(dfd.as_fd()))?;
                if self.fsync {
                    sys::fsync(dfd.as_fd(), false)?;
                }
                Ok(())
            }
            libc::S_IFLNK => {
                let target = sys::readlink_at(sdir, srel)?;
                sys::symlink_at(&target, work, tmp)?;
                self.copy_meta(sst, sdir, srel, work, tmp, None)
            }
            _ => {
                match sys::mknod_at(work, tmp, sst.st_mode, sst.st_rdev) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                        // Unprivileged: a plain file stands in for the device.
                        let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY;
                        drop(sys::open_at(work, tmp, flags, 0o600)?);
                    }
                    Err(e) => return Err(e),
                }
                self.copy_meta(sst, sdir, srel, work, tmp, None)
            }
        }
    }

    /// Owner, xattrs, mode, times of a fresh copy `drel` under `ddir` from `sst`.
    fn copy_meta(
        &self,
        sst: &sys::Stat,
        sdir: BorrowedFd<'_>,
        srel: &Path,
        ddir: BorrowedFd<'_>,
        drel: &Path,
        fd: Option<BorrowedFd<'_>>,
    ) -> io::Result<()> {
        let kind = sst.st_mode & libc::S_IFMT;
        let is_link = kind == libc::S_IFLNK;
        // Owner first: chown clears setuid bits and security.capability.
        let owner_ok = match fd {
            Some(f) => sys::fchown(f, sst.st_uid, sst.st_gid),
            None => sys::chown_at(ddir, drel, sst.st_uid, sst.st_gid),
        }
        .is_ok();
        copy_xattrs(sdir, srel, ddir, drel)?;
        let mut mode = sst.st_mode & 0o7777;
        if !owner_ok && !is_link {
            // Unprivileged: keep the real mode usable by us, present the original.
            let has_override = owner::read_override(sdir, srel)?.is_some();
            let usable = if kind == libc::S_IFDIR {
                mode | 0o700
            } else {
                mode | 0o600
            };
            let owner_differs = sst.st_uid != sys::geteuid() || sst.st_gid != sys::getegid();
            if !has_override
                && (owner_differs
                    || usable != mode
                    || kind == libc::S_IFCHR
                    || kind == libc::S_IFBLK)
            {
                let v = owner::Override {
                    uid: sst.st_uid,
                    gid: sst.st_gid,
                    mode: sst.st_mode,
                    rdev: matches!(kind, libc::S_IFCHR | libc::S_IFBLK).then_some(sst.st_rdev),
                }
                .value();
                sys::set_xattr_at(
                    ddir,
                    drel,
                    OsStr::new(owner::OVERRIDE_XATTR),
                    v.as_bytes(),
                    0,
                )?;
            }
            mode = usable;
        }
        if !is_link {
            match fd {
                Some(f) => sys::fchmod(f, mode)?,
                None => sys::chmod_at(ddir, drel, mode)?,
            }
        }
        let at = sys::Time::At(sst.st_atime, sst.st_atime_nsec);
        let mt = sys::Time::At(sst.st_mtime, sst.st_mtime_nsec);
        match fd {
            Some(f) => sys::futimens(f, at, mt)?,
            None => sys::utimens_at(ddir, drel, at, mt)?,
        }
        Ok(())
    }
}
