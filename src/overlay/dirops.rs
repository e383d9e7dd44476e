//! Namespace changes: create, mkdir, mknod, symlink, link, unlink, rmdir, rename (in
//! `rename.rs`) — with the whiteouts, opaque markers and redirects that keep lower
//! entries hidden or found.

use super::nodes::Node;
use super::{Attr, Ctx, Errno, IoOp, OverlayFs, Res, errno_at};
use crate::format::resolve::{Found, s_isdir};
use crate::format::{owner, whiteout};
use crate::sys;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

mod rename;

/// What the upper layer holds at a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UpperAt {
    Absent,
    CharWhiteout,
    WhFile,
    Entry(u32),
}

/// What to create.
pub enum NewKind<'a> {
    File { mode: u32, flags: i32 },
    Dir { mode: u32 },
    Node { mode: u32, rdev: u64 },
    Symlink { target: &'a OsStr },
}

impl NewKind<'_> {
    /// Make the entry at (`dir`, `p`) with the caller's `umask` applied: the open file of
    /// a new regular file, and the mode made.
    fn make(&self, umask: u32, dir: BorrowedFd<'_>, p: &Path) -> io::Result<(Option<File>, u32)> {
        match self {
            NewKind::File { mode, flags } => {
                let m = mode & !umask & 0o7777;
                let keep = flags
                    & (libc::O_ACCMODE
                        | libc::O_APPEND
                        | libc::O_NOATIME
                        | libc::O_DIRECT
                        | libc::O_SYNC
                        | libc::O_DSYNC);
                let mut acc = keep;
                if acc & libc::O_ACCMODE == libc::O_RDONLY {
                    acc = (acc & !libc::O_ACCMODE) | libc::O_RDWR;
                }
                let fd: OwnedFd = sys::open_at(
                    dir,
                    p,
                    acc | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    m,
                )?;
                Ok((Some(File::from(fd)), libc::S_IFREG | m))
            }
            NewKind::Dir { mode } => {
                let m = mode & !umask & 0o7777;
                // The daemon runs with umask 0: the mode is exact, and a setgid parent
                // passes its bit on as the filesystem does it.
                sys::mkdir_at(dir, p, m)?;
                Ok((None, libc::S_IFDIR | m))
            }
            NewKind::Node { mode, rdev } => {
                let m = (mode & libc::S_IFMT) | (mode & !umask & 0o7777);
                sys::mknod_at(dir, p, m, *rdev)?;
                Ok((None, m))
            }
            NewKind::Symlink { target } => {
                sys::symlink_at(target, dir, p)?;
                Ok((None, libc::S_IFLNK | 0o777))
            }
        }
    }
}

fn check_name(name: &OsStr) -> Res<()> {
    if name.is_empty() || name.as_bytes().contains(&b'/') {
        return Err(Errno::EINVAL);
    }
    if name.len() > 255 {
        return Err(Errno::ENAMETOOLONG);
    }
    if whiteout::classify_name(name) != whiteout::NameClass::Normal {
        // `.wh.*` names are whiteouts in the on-disk format: they cannot be files too.
        return Err(Errno::EINVAL);
    }
    Ok(())
}

impl OverlayFs {
    fn upper_at(&self, ppath: &Path, name: &OsStr) -> Res<UpperAt> {
        let up = self.stack.layers()[0].fd();
        match sys::lstat_at(up, &ppath.join(name)) {
            Ok(st) if whiteout::is_whiteout_dev(st.st_mode, st.st_rdev) => {
                Ok(UpperAt::CharWhiteout)
            }
            Ok(st) => Ok(UpperAt::Entry(st.st_mode)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                match sys::lstat_at(up, &ppath.join(whiteout::wh_name(name))) {
                    Ok(_) => Ok(UpperAt::WhFile),
                    // A name of more than NAME_MAX - 4 bytes has no `.wh.` form.
                    Err(e)
                        if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENAMETOOLONG)) =>
                    {
                        Ok(UpperAt::Absent)
                    }
                    Err(e) => Err(errno_at("stat", &ppath.join(whiteout::wh_name(name)), e)),
                }
            }
            Err(e) => Err(errno_at("stat", &ppath.join(name), e)),
        }
    }

    /// Does a lower layer show `name` inside directory node `parent`?
    fn lower_has(&self, parent: &Node, name: &OsStr) -> Res<bool> {
        let lowers = parent.with(|s| s.lowers.clone());
        Ok(self
            .stack
            .res
            .resolve(&lowers, name)
            .map_err(|e| errno_at("lookup in lower dirs", Path::new(name), e))?
            .is_some())
    }

    /// Put a whiteout at `ppath/name` in the upper layer, replacing a non-directory there.
    fn make_whiteout(&self, ppath: &Path, name: &OsStr) -> Res<()> {
        let up = self.stack.layers()[0].fd();
        let rel = ppath.join(name);
        if self.stack.forms.chardev_whiteout {
            let work = self.work()?;
            let tmp = self.tmp_name();
            sys::mknod_at(work, &tmp, libc::S_IFCHR, 0).op("mknod whiteout", &tmp)?;
            if let Err(e) = sys::rename_at(work, &tmp, up, &rel, 0) {
                let _ = sys::unlink_at(work, &tmp, false);
                return Err(errno_at("rename whiteout into place", &rel, e));
            }
        } else {
            let wh = ppath.join(whiteout::wh_name(name));
            drop(
                sys::open_at(up, &wh, libc::O_CREAT | libc::O_WRONLY, 0)
                    .op("create whiteout", &wh)?,
            );
            match sys::unlink_at(up, &rel, false) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(errno_at("unlink", &rel, e)),
            }
        }
        Ok(())
    }

    /// Mark a directory opaque in the form this upper filesystem permits.
    fn set_opaque(&self, dir: BorrowedFd<'_>, rel: &Path) -> Res<()> {
        match self.stack.forms.xattr_prefix {
            Some(p) => {
                let name = format!("{p}opaque");
                sys::set_xattr_at(dir, rel, OsStr::new(&name), b"y", 0).op("set opaque xattr", rel)
            }
            None => {
                let m = rel.join(OsStr::from_bytes(whiteout::OPAQUE_MARKER));
                drop(
                    sys::open_at(dir, &m, libc::O_CREAT | libc::O_WRONLY, 0)
                        .op("create opaque marker", &m)?,
                );
                Ok(())
            }
        }
    }

    fn set_redirect(&self, rel: &Path, origin: &Path) -> Res<()> {
        let mut v = b"/".to_vec();
        v.extend_from_slice(origin.as_os_str().as_bytes());
        self.set_redirect_value(rel, &v)
    }

    fn set_redirect_value(&self, rel: &Path, v: &[u8]) -> Res<()> {
        let p = self.stack.forms.xattr_prefix.ok_or(Errno::EXDEV)?;
        let name = format!("{p}redirect");
        sys::set_xattr_at(self.stack.layers()[0].fd(), rel, OsStr::new(&name), v, 0)
            .op("set redirect", rel)
    }

    /// Give a new entry the caller's ownership (setgid directories pass their group on).
    fn set_owner(
        &self,
        ctx: &Ctx,
        parent_attr: &Attr,
        dir: BorrowedFd<'_>,
        rel: &Path,
        mode: u32,
    ) -> Res<()> {
        let gid = if parent_attr.mode & libc::S_ISGID != 0 {
            parent_attr.gid
        } else {
            ctx.gid
        };
        let (uid, gid) = self.ids.store(ctx.uid, gid);
        let st = sys::lstat_at(dir, rel).op("stat new entry", rel)?;
        if st.st_uid == uid && st.st_gid == gid {
            return Ok(());
        }
        match sys::chown_at(dir, rel, uid, gid) {
            Ok(()) => {
                // chown clears setuid/setgid of non-directories: put back what was asked.
                let kind = mode & libc::S_IFMT;
                if mode & (libc::S_ISUID | libc::S_ISGID) != 0
                    && kind != libc::S_IFDIR
                    && kind != libc::S_IFLNK
                {
                    let now = sys::lstat_at(dir, rel).op("stat new entry", rel)?;
                    let want = (now.st_mode & 0o7777) | (mode & (libc::S_ISUID | libc::S_ISGID));
                    sys::chmod_at(dir, rel, want).op("chmod new entry", rel)?;
                }
                Ok(())
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EINVAL)) => {
                if mode & libc::S_IFMT == libc::S_IFLNK {
                    return Ok(()); // symlinks carry no user xattrs
                }
                let v = owner::Override::new(uid, gid, mode).value();
                sys::set_xattr_at(dir, rel, OsStr::new(owner::OVERRIDE_XATTR), v.as_bytes(), 0)
                    .op("set override_stat", rel)
            }
            Err(e) => Err(errno_at("chown new entry", rel, e)),
        }
    }

    /// Create a new entry named `name` in `parent`.
    pub fn create_entry(
        &self,
        ctx: &Ctx,
        parent: u64,
        name: &OsStr,
        kind: NewKind<'_>,
    ) -> Res<(Attr, Option<File>)> {
        if self.read_only {
            return Err(Errno::EROFS);
        }
        check_name(name)?;
        let pnode = self.node(parent)?;
        if !pnode.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        // The kernel holds the parent locked and has just looked the name up and found
        // nothing (every change goes through us), so only the upper layer needs a look:
        // a whiteout there decides how to create.
        self.copy_up(&pnode)?;
        let pattr = self.getattr(parent)?;
        let ppath = self.nodes.path_of(parent)?;
        let rel = ppath.join(name);
        let up = self.stack.layers()[0].fd();
        let at = self.upper_at(&ppath, name)?;
        if let UpperAt::Entry(_) = at {
            return Err(Errno::EEXIST);
        }
        let is_dir = matches!(kind, NewKind::Dir { .. });
        let file = self.place_new(ctx, &pattr, &ppath, name, &kind, at)?;
        // A new entry lives in the upper layer only: nothing below shows through it
        // (where a lower one was deleted, the whiteout made it opaque).
        let stat = sys::lstat_at(up, &rel).op("stat new entry", &rel)?;
        let f = Found {
            top: (0, rel),
            stat,
            lower_dirs: Vec::new(),
            opaque: is_dir && at != UpperAt::Absent,
        };
        let (node, attr) = self.node_from_new(parent, name, &f)?;
        // Made just now: no file capability until one is set through the mount.
        node.caps_absent
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok((attr, file))
    }

    /// Make the new entry `ppath/name` in the upper layer, where `at` is what is there
    /// now: over a whiteout device it is built in the workdir and renamed (a directory
    /// exchanged) over the device; a `.wh.` file is removed once the entry exists. A
    /// directory that hides a deleted lower one is opaque.
    fn place_new(
        &self,
        ctx: &Ctx,
        pattr: &Attr,
        ppath: &Path,
        name: &OsStr,
        kind: &NewKind<'_>,
        at: UpperAt,
    ) -> Res<Option<File>> {
        let up = self.stack.layers()[0].fd();
        let rel = ppath.join(name);
        let is_dir = matches!(kind, NewKind::Dir { .. });
        match at {
            UpperAt::CharWhiteout => {
                let work = self.work()?;
                let tmp = self.tmp_name();
                let (file, mode) = kind
                    .make(ctx.umask, work, &tmp)
                    .op("create in workdir", &tmp)?;
                let done = (|| -> Res<()> {
                    if is_dir {
                        self.set_opaque(work, &tmp)?;
                    }
                    self.set_owner(ctx, pattr, work, &tmp, mode)?;
                    if is_dir {
                        sys::rename_at(work, &tmp, up, &rel, sys::RENAME_EXCHANGE)
                            .op("rename new dir into place", &rel)?;
                        let _ = sys::unlink_at(work, &tmp, false);
                    } else {
                        sys::rename_at(work, &tmp, up, &rel, 0)
                            .op("rename new entry into place", &rel)?;
                    }
                    Ok(())
                })();
                if let Err(e) = done {
                    let _ = sys::remove_tree_at(work, &tmp);
                    return Err(e);
                }
                Ok(file)
            }
            UpperAt::WhFile | UpperAt::Absent => {
                let (file, mode) = kind.make(ctx.umask, up, &rel).op("create", &rel)?;
                let done = (|| -> Res<()> {
                    if is_dir && at == UpperAt::WhFile {
                        self.set_opaque(up, &rel)?;
                    }
                    self.set_owner(ctx, pattr, up, &rel, mode)?;
                    if at == UpperAt::WhFile {
                        sys::unlink_at(up, &ppath.join(whiteout::wh_name(name)), false)
                            .op("unlink whiteout", &rel)?;
                    }
                    Ok(())
                })();
                if let Err(e) = done {
                    let _ = sys::remove_tree_at(up, &rel);
                    return Err(e);
                }
                Ok(file)
            }
            UpperAt::Entry(_) => Err(Errno::EEXIST),
        }
    }

    /// LINK: a new name for `ino` in `newparent`.
    pub fn link(&self, ino: u64, newparent: u64, newname: &OsStr) -> Res<Attr> {
        if self.read_only {
            return Err(Errno::EROFS);
        }
        check_name(newname)?;
        let node = self.node(ino)?;
        if node.is_dir() {
            return Err(Errno::EPERM);
        }
        let pnode = self.node(newparent)?;
        if self.resolve_child(&pnode, newname)?.is_some() {
            return Err(Errno::EEXIST);
        }
        self.copy_up(&node)?;
        self.copy_up(&pnode)?;
        let src = self.nodes.path_of(ino)?;
        let ppath = self.nodes.path_of(newparent)?;
        let rel = ppath.join(newname);
        let up = self.stack.layers()[0].fd();
        match self.upper_at(&ppath, newname)? {
            UpperAt::Entry(_) => return Err(Errno::EEXIST),
            UpperAt::CharWhiteout => {
                let work = self.work()?;
                let tmp = self.tmp_name();
                sys::link_at(up, &src, work, &tmp).op("link in workdir", &src)?;
                if let Err(e) = sys::rename_at(work, &tmp, up, &rel, 0) {
                    let _ = sys::unlink_at(work, &tmp, false);
                    return Err(errno_at("rename link into place", &rel, e));
                }
            }
            UpperAt::WhFile => {
                sys::link_at(up, &src, up, &rel).op("link", &rel)?;
                sys::unlink_at(up, &ppath.join(whiteout::wh_name(newname)), false)
                    .op("unlink whiteout", &rel)?;
            }
            UpperAt::Absent => sys::link_at(up, &src, up, &rel).op("link", &rel)?,
        }
        let f = self.resolve_child(&pnode, newname)?.ok_or(Errno::EIO)?;
        let (_, attr) = self.node_from_found(newparent, newname, &f)?;
        Ok(attr)
    }

    /// UNLINK a non-directory.
    pub fn unlink(&self, parent: u64, name: &OsStr) -> Res<()> {
        if self.read_only {
            return Err(Errno::EROFS);
        }
        let pnode = self.node(parent)?;
        let f = self.resolve_child(&pnode, name)?.ok_or(Errno::ENOENT)?;
        if s_isdir(f.stat.st_mode) {
            return Err(Errno::EISDIR);
        }
        self.copy_up(&pnode)?;
        let ppath = self.nodes.path_of(parent)?;
        let in_upper = self.stack.has_upper && f.top.0 == 0;
        let lower_has = !in_upper || self.lower_has(&pnode, name)?;
        if lower_has {
            self.make_whiteout(&ppath, name)?;
        } else if in_upper {
            let p = ppath.join(name);
            sys::unlink_at(self.stack.layers()[0].fd(), &p, false).op("unlink", &p)?;
        }
        if let Some(child) = self.nodes.child(parent, &name.to_os_string()) {
            self.nodes.drop_alias(
                child.ino,
                parent,
                &name.to_os_string(),
                f.stat.st_nlink <= 1,
            );
        }
        Ok(())
    }

    fn dirs_of_found(&self, f: &Found) -> Vec<crate::format::resolve::Loc> {
        let mut v = vec![f.top.clone()];
        v.extend(f.lower_dirs.iter().cloned());
        v
    }

    fn merged_empty(&self, f: &Found) -> Res<bool> {
        Ok(self
            .stack
            .res
            .list(&self.dirs_of_found(f))
            .op("readdir", &f.top.1)?
            .is_empty())
    }

    /// Remove the (whiteout-only) contents of an upper directory.
    fn clear_upper_dir(&self, rel: &Path) -> Res<()> {
        let up = self.stack.layers()[0].fd();
        let fd = sys::open_at(
            up,
            rel,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )
        .op("open dir to clear", rel)?;
        for (n, _, _) in sys::read_dir_fd(fd).op("read dir to clear", rel)? {
            sys::remove_tree_at(up, &rel.join(n)).op("clear dir", rel)?;
        }
        Ok(())
    }

    /// Before the upper directory `rel` of `node` goes away (rmdir, or replaced by a
    /// rename): the kernel may go on using it (an open fd, a working directory), so keep
    /// it reachable for stat, as the kernel keeps the removed inode. Best effort: a
    /// directory we may not open (EACCES, EMFILE) is removed all the same; only a later
    /// stat of it would say ENOENT.
    fn keep_removed_dir(&self, node: &Node, rel: &Path) {
        if node.removed_dir.get().is_some() {
            return;
        }
        let up = self.stack.layers()[0].fd();
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        if let Ok(fd) = sys::open_at(up, rel, flags, 0) {
            let _ = node.removed_dir.set(Arc::new(File::from(fd)));
        }
    }

    /// RMDIR: only when empty in the merged view.
    pub fn rmdir(&self, parent: u64, name: &OsStr) -> Res<()> {
        if self.read_only {
            return Err(Errno::EROFS);
        }
        let pnode = self.node(parent)?;
        let f = self.resolve_child(&pnode, name)?.ok_or(Errno::ENOENT)?;
        if !s_isdir(f.stat.st_mode) {
            return Err(Errno::ENOTDIR);
        }
        if !self.merged_empty(&f)? {
            return Err(Errno::ENOTEMPTY);
        }
        self.copy_up(&pnode)?;
        let ppath = self.nodes.path_of(parent)?;
        let rel = ppath.join(name);
        let in_upper = self.stack.has_upper && f.top.0 == 0;
        // As the kernel (ovl_lower_positive): only the name in the parent's lower dirs
        // counts, not where a redirected directory's contents came from (that origin was
        // whited out when the directory was renamed).
        let lower_has = !in_upper || self.lower_has(&pnode, name)?;
        let up = self.stack.layers()[0].fd();
        let work = self.work()?;
        let child = self.nodes.child(parent, &name.to_os_string());
        if in_upper {
            // The kernel may go on using the directory (an open fd, a working directory):
            // keep it reachable for stat, as the kernel keeps the removed inode.
            if let Some(c) = &child {
                self.keep_removed_dir(c, &rel);
            }
            let tmp = self.tmp_name();
            if lower_has && self.stack.forms.chardev_whiteout {
                sys::mknod_at(work, &tmp, libc::S_IFCHR, 0).op("mknod whiteout", &tmp)?;
                if let Err(e) = sys::rename_at(work, &tmp, up, &rel, sys::RENAME_EXCHANGE) {
                    let _ = sys::unlink_at(work, &tmp, false);
                    return Err(errno_at("exchange dir with whiteout", &rel, e));
                }
            } else {
                if lower_has {
                    let wh = ppath.join(whiteout::wh_name(name));
                    drop(
                        sys::open_at(up, &wh, libc::O_CREAT | libc::O_WRONLY, 0)
                            .op("create whiteout", &wh)?,
                    );
                }
                sys::rename_at(up, &rel, work, &tmp, 0).op("move dir to workdir", &rel)?;
            }
            sys::remove_tree_at(work, &tmp).op("remove dir in workdir", &tmp)?;
        } else if lower_has {
            self.make_whiteout(&ppath, name)?;
        }
        if let Some(child) = child {
            self.nodes
                .drop_alias(child.ino, parent, &name.to_os_string(), true);
        }
        Ok(())
    }
}
