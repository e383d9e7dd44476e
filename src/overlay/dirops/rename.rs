//! RENAME (flags 0, RENAME_NOREPLACE, RENAME_EXCHANGE): the checks of the target, the
//! copy-ups before the move, the move itself with the whiteout it may leave behind, and
//! the redirect or opaque marker a moved directory needs, as kernel overlayfs writes them.

use super::{UpperAt, check_name};
use crate::format::resolve::{Found, s_isdir};
use crate::format::whiteout;
use crate::overlay::nodes::Node;
use crate::overlay::{Errno, IoOp, OverlayFs, Res, errno_at};
use crate::sys;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

/// One rename as resolved: the parents and names on both sides and what each name shows
/// (the target: nothing, or the entry the rename replaces or exchanges with).
struct Move<'a> {
    pn: &'a Arc<Node>,
    name: &'a OsStr,
    npn: &'a Arc<Node>,
    newname: &'a OsStr,
    sf: &'a Found,
    df: Option<&'a Found>,
}

impl OverlayFs {
    /// The node the kernel knows for (parent, name), or a temporary one.
    fn child_node(&self, parent: u64, name: &OsStr, f: &Found) -> Res<(Arc<Node>, bool)> {
        if let Some(n) = self.nodes.child(parent, &name.to_os_string()) {
            return Ok((n, false));
        }
        Ok((self.node_from_found(parent, name, f)?.0, true))
    }

    /// After a directory moved from `from` to `rel`, as kernel overlayfs records it: a
    /// moved lower/merged dir gets a redirect to its lower origin (relative when it moved
    /// within its directory from its origin name, else absolute); a pure upper dir moving
    /// into a merged directory becomes opaque, so no lower entry can show through it.
    fn fix_moved_dir(
        &self,
        node: &Node,
        from: &Path,
        rel: &Path,
        new_parent_merged: bool,
    ) -> Res<()> {
        let st = node.snap();
        if let Some(origin) = st.lowers.first() {
            let samedir = from.parent() == rel.parent();
            if samedir
                && origin.1 == from
                && let Some(n) = origin.1.file_name()
            {
                return self.set_redirect_value(rel, n.as_bytes());
            }
            self.set_redirect(rel, &origin.1)
        } else if new_parent_merged
            && !self
                .stack
                .res
                .dir_markers(&(0, rel.to_path_buf()))
                .op("read dir markers", rel)?
                .0
        {
            self.set_opaque(self.stack.layers()[0].fd(), rel)
        } else {
            Ok(())
        }
    }

    /// The redirect kernel overlayfs writes on a directory with lower contents before it
    /// tries to move it: its current place, as a name when the move stays in the parent,
    /// else as an absolute path. Kept when the move then fails.
    fn redirect_before_move(
        &self,
        node: &Node,
        parent: u64,
        name: &OsStr,
        newparent: u64,
    ) -> Res<()> {
        if !node.is_dir() || self.stack.forms.xattr_prefix.is_none() {
            return Ok(());
        }
        let Some(origin) = node.snap().lowers.first().cloned() else {
            return Ok(());
        };
        let here = self.nodes.path_of(parent)?.join(name);
        let samedir = parent == newparent;
        let existing = self
            .stack
            .res
            .dir_markers(&(0, here.clone()))
            .op("read dir markers", &here)?
            .1;
        if existing.is_some_and(|r| samedir || r.starts_with(b"/")) {
            return Ok(()); // as the kernel: a redirect that stays valid is kept
        }
        if samedir && origin.1 == here {
            self.set_redirect_value(&here, name.as_bytes())
        } else {
            self.set_redirect(&here, &origin.1)
        }
    }

    /// RENAME with flags 0, RENAME_NOREPLACE or RENAME_EXCHANGE.
    pub fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
    ) -> Res<()> {
        if self.read_only {
            return Err(Errno::EROFS);
        }
        let exchange = flags & sys::RENAME_EXCHANGE != 0;
        let noreplace = flags & sys::RENAME_NOREPLACE != 0;
        if flags & !(sys::RENAME_EXCHANGE | sys::RENAME_NOREPLACE) != 0 || (exchange && noreplace) {
            return Err(Errno::EINVAL);
        }
        check_name(newname)?;
        let pn = self.node(parent)?;
        let npn = self.node(newparent)?;
        let sf = self.resolve_child(&pn, name)?.ok_or(Errno::ENOENT)?;
        let df = self.resolve_child(&npn, newname)?;
        if noreplace && df.is_some() {
            return Err(Errno::EEXIST);
        }
        if exchange && df.is_none() {
            return Err(Errno::ENOENT);
        }
        let m = Move {
            pn: &pn,
            name,
            npn: &npn,
            newname,
            sf: &sf,
            df: df.as_ref(),
        };
        if !self.rename_target_ok(&m, exchange)? {
            return Ok(()); // same file (or hard links to one): nothing to do
        }
        let (snode, s_tmp) = self.child_node(parent, name, &sf)?;
        let mut cleanup: Vec<u64> = Vec::new();
        if s_tmp {
            cleanup.push(snode.ino);
        }
        let r = self.copy_up_for_move(&m, &snode).and_then(|()| {
            if exchange {
                self.rename_exchange(&m, &snode, &mut cleanup)
            } else {
                self.rename_replace(&m, &snode)
            }
        });
        for ino in cleanup {
            self.nodes.forget(ino, 1);
        }
        r
    }

    /// Whether rename `m` goes ahead (not when both names are one file), or the error its
    /// target makes: a directory over a non-directory or the other way round, or over a
    /// directory that is not empty.
    fn rename_target_ok(&self, m: &Move<'_>, exchange: bool) -> Res<bool> {
        let Some(d) = m.df else {
            return Ok(true);
        };
        if d.stat.st_dev == m.sf.stat.st_dev
            && d.stat.st_ino == m.sf.stat.st_ino
            && !self.stack.is_lower(m.sf.top.0)
        {
            // One upper file under both names: POSIX says nothing happens. Two names of a
            // lower hard link are two inodes here, as in kernel overlayfs (index=off): the
            // rename goes on (the source copied up, the target replaced).
            return Ok(false);
        }
        if exchange {
            return Ok(true);
        }
        let sdir = s_isdir(m.sf.stat.st_mode);
        let ddir = s_isdir(d.stat.st_mode);
        if sdir && !ddir {
            return Err(Errno::ENOTDIR);
        }
        if !sdir && ddir {
            return Err(Errno::EISDIR);
        }
        if ddir && !self.merged_empty(d)? {
            let pure_upper = self.stack.has_upper && d.top.0 == 0 && d.lower_dirs.is_empty();
            if pure_upper {
                // Kernel overlayfs leaves this check to the real rename when the target
                // exists only in the upper layer, after it has copied the source up: the
                // same side effect, so both show the same tree.
                self.copy_up(m.pn)?;
                self.copy_up(m.npn)?;
                let (snode, tmp) = self.child_node(m.pn.ino, m.name, m.sf)?;
                let r = self
                    .copy_up(&snode)
                    .and_then(|()| self.redirect_before_move(&snode, m.pn.ino, m.name, m.npn.ino));
                if tmp {
                    self.nodes.forget(snode.ino, 1);
                }
                r?;
            }
            return Err(Errno::ENOTEMPTY);
        }
        Ok(true)
    }

    /// Before rename `m`: both parents and the source in the upper layer. A directory
    /// with lower contents moves only where a redirect can be recorded: without xattrs,
    /// EXDEV (the caller, mv, falls back to copying).
    fn copy_up_for_move(&self, m: &Move<'_>, snode: &Arc<Node>) -> Res<()> {
        let sdir = s_isdir(m.sf.stat.st_mode);
        if sdir && !snode.snap().lowers.is_empty() && self.stack.forms.xattr_prefix.is_none() {
            return Err(Errno::EXDEV);
        }
        self.copy_up(m.pn)?;
        self.copy_up(m.npn)?;
        self.copy_up(snode)
    }

    /// RENAME_EXCHANGE: both entries (copied up) swap places; moved directories get
    /// their redirects or opaque markers.
    fn rename_exchange(&self, m: &Move<'_>, snode: &Arc<Node>, cleanup: &mut Vec<u64>) -> Res<()> {
        let (pn, npn) = (m.pn, m.npn);
        let d = m.df.ok_or(Errno::ENOENT)?;
        let (dnode, d_tmp) = self.child_node(npn.ino, m.newname, d)?;
        if d_tmp {
            cleanup.push(dnode.ino);
        }
        if dnode.is_dir()
            && !dnode.snap().lowers.is_empty()
            && self.stack.forms.xattr_prefix.is_none()
        {
            return Err(Errno::EXDEV);
        }
        self.copy_up(&dnode)?;
        let spath = self.nodes.path_of(pn.ino)?.join(m.name);
        let dpath = self.nodes.path_of(npn.ino)?.join(m.newname);
        let up = self.stack.layers()[0].fd();
        sys::rename_at(up, &spath, up, &dpath, sys::RENAME_EXCHANGE).op("exchange", &spath)?;
        if snode.is_dir() {
            self.fix_moved_dir(snode, &spath, &dpath, !npn.snap().lowers.is_empty())?;
        }
        if dnode.is_dir() {
            self.fix_moved_dir(&dnode, &dpath, &spath, !pn.snap().lowers.is_empty())?;
        }
        let (name, newname) = (m.name.to_os_string(), m.newname.to_os_string());
        self.nodes
            .rename_alias(snode.ino, (pn.ino, &name), (npn.ino, &newname));
        self.nodes
            .rename_alias(dnode.ino, (npn.ino, &newname), (pn.ino, &name));
        Ok(())
    }

    /// Rename (copied up) over whatever the target name shows: an upper directory there
    /// is emptied of its whiteouts first; a whiteout is left where a lower entry would
    /// show through the old name; the moved directory gets its redirect or opaque marker.
    fn rename_replace(&self, m: &Move<'_>, snode: &Arc<Node>) -> Res<()> {
        let (pn, npn, name, newname) = (m.pn, m.npn, m.name, m.newname);
        let sdir = s_isdir(m.sf.stat.st_mode);
        let ppath = self.nodes.path_of(pn.ino)?;
        let nppath = self.nodes.path_of(npn.ino)?;
        let spath = ppath.join(name);
        let dpath = nppath.join(newname);
        let up = self.stack.layers()[0].fd();
        let src_lower_has = self.lower_has(pn, name)?;
        let (name_o, newname_o): (OsString, OsString) =
            (name.to_os_string(), newname.to_os_string());
        let at = self.upper_at(&nppath, newname)?;
        if let UpperAt::Entry(mode) = at
            && s_isdir(mode)
        {
            self.clear_upper_dir(&dpath)?;
            if let Some(dn) = self.nodes.child(npn.ino, &newname_o) {
                self.keep_removed_dir(&dn, &dpath);
            }
        }
        if sdir && at == UpperAt::CharWhiteout {
            // A directory cannot replace a device: swap, then the whiteout sits at the
            // old name, which is just right when a lower entry needs hiding there.
            sys::rename_at(up, &spath, up, &dpath, sys::RENAME_EXCHANGE)
                .op("exchange dir with whiteout", &dpath)?;
            if !src_lower_has {
                sys::unlink_at(up, &spath, false).op("unlink", &spath)?;
            }
        } else if src_lower_has && self.stack.forms.chardev_whiteout {
            match sys::rename_at(up, &spath, up, &dpath, sys::RENAME_WHITEOUT) {
                Ok(()) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EPERM)) => {
                    sys::rename_at(up, &spath, up, &dpath, 0).op("rename", &spath)?;
                    self.make_whiteout(&ppath, name)?;
                }
                Err(e) => return Err(errno_at("rename with whiteout", &spath, e)),
            }
        } else {
            sys::rename_at(up, &spath, up, &dpath, 0).op("rename", &spath)?;
            if src_lower_has {
                self.make_whiteout(&ppath, name)?;
            }
        }
        if at == UpperAt::WhFile {
            sys::unlink_at(up, &nppath.join(whiteout::wh_name(newname)), false)
                .op("unlink whiteout", &dpath)?;
        }
        if sdir {
            self.fix_moved_dir(snode, &spath, &dpath, !npn.snap().lowers.is_empty())?;
        }
        if let Some(d) = m.df
            && let Some(dn) = self.nodes.child(npn.ino, &newname_o)
        {
            let last = s_isdir(d.stat.st_mode) || d.stat.st_nlink <= 1;
            self.nodes.drop_alias(dn.ino, npn.ino, &newname_o, last);
        }
        self.nodes
            .rename_alias(snode.ino, (pn.ino, &name_o), (npn.ino, &newname_o));
        Ok(())
    }
}
