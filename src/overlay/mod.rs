//! The union filesystem, free of FUSE types: an [`OverlayFs`] answers inode-level
//! requests (lookup, getattr, readdir, create, rename, open, read, write, xattrs ...)
//! with plain Rust values and errno codes. `crate::fuse` adapts it to the kernel.
//!
//! ```text
//! OverlayFs
//!  ├─ stack   (layers.rs)   upper + lowers, name resolution, merged listings
//!  ├─ nodes   (nodes.rs)    ino -> where the file lives, lookup counts
//!  ├─ handles               open files; listings (listing.rs): directory snapshots
//!  └─ copy-up (copy_up.rs)  lower -> workdir -> rename into upper
//! namespace changes: dirops.rs   file data and metadata: fileops.rs
//! ```

pub mod copy_up;
pub mod dirops;
mod errno;
pub mod fileops;
pub mod layers;
mod listing;
pub mod nodes;
mod pending;
mod setup;

pub use errno::{Errno, IoOp, Res, errno_at};
pub use listing::Listing;

use crate::format::idmap::IdMapper;
use crate::format::resolve::Loc;
use crate::format::{owner, whiteout};
use crate::sys;
use dashmap::DashMap;
use layers::Stack;
use nodes::{Node, NodeId, NodeState, NodeTable, ROOT_INO};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The path of `name` in the topmost of `dirs` (for messages).
fn path_in(dirs: &[Loc], name: &OsStr) -> PathBuf {
    dirs.first().map(|d| d.1.join(name)).unwrap_or_default()
}

/// The xattr the kernel asks for before writes, chowns and execs (see
/// [`nodes::Node::caps_absent`]).
const CAPS_XATTR: &[u8] = b"security.capability";

/// Name of the scratch directory layerfs keeps inside the workdir.
pub const WORK_SUBDIR: &str = "layerfs-tmp";

/// What to mount and how.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Top-most first.
    pub lowers: Vec<PathBuf>,
    pub upper: Option<PathBuf>,
    pub work: Option<PathBuf>,
    pub read_only: bool,
    /// fsync copied-up files before the rename into place.
    pub fsync: bool,
    pub ids: IdMapper,
    /// Write only the OCI forms (`.wh.NAME`, `.wh..wh..opq`), never devices or xattrs.
    pub oci_whiteouts: bool,
    /// Show no xattrs and take none (`noxattrs=1`): every xattr call says EOPNOTSUPP.
    pub no_xattrs: bool,
    /// Ownership in override xattrs even where real chown works (`xattr_permissions=1`).
    pub xattr_permissions: bool,
}

/// Who is asking (from the request header).
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub uid: u32,
    pub gid: u32,
    pub umask: u32,
    /// The calling process (its supplementary groups decide some set-group-ID rules).
    pub pid: u32,
    /// What the kernel said of the caller's CAP_FSETID for this request (OPEN with
    /// O_TRUNC, SETATTR of the size): `Some(true)` lacks it. `None`: not said.
    pub no_fsetid: Option<bool>,
}

impl Ctx {
    /// The caller may not keep set-user-ID/set-group-ID bits on truncation: as the
    /// kernel said, else (not said) any caller other than root.
    pub fn lacks_fsetid(&self) -> bool {
        self.no_fsetid.unwrap_or(self.uid != 0)
    }
}

/// Attributes as presented through the mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// The node id.
    pub ino: u64,
    /// The inode number shown (`st_ino`): `ino`, but for a name of a lower hard link the
    /// number all its names show ([`nodes::Node::shown`]).
    pub st_ino: u64,
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    pub blocks: u64,
    pub blksize: u32,
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

/// What a request made stale in the kernel's caches as a side effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalidation {
    pub ino: u64,
    /// Also its cached pages: a directory's cached listing.
    pub listing: bool,
}

/// An open file.
#[derive(Debug)]
pub struct Handle {
    pub ino: u64,
    pub file: File,
    /// The file is the upper copy (else a lower file, opened read-only).
    pub upper: bool,
    /// For a lower handle whose file was copied up since: the upper copy, so reads see
    /// what writers wrote (as with kernel overlayfs).
    pub upper_copy: std::sync::OnceLock<File>,
}

/// See [`OverlayFs::place`].
#[derive(Debug)]
pub(crate) enum Place {
    Path(Loc),
    Open(Arc<Handle>),
    RemovedDir(Arc<File>),
}

impl Place {
    /// A `(dir fd, relative path)` pair for the `sys::*_at` calls; an open file is the
    /// fd itself with the empty path.
    pub(crate) fn at<'a>(&'a self, stack: &'a Stack) -> (std::os::fd::BorrowedFd<'a>, &'a Path) {
        match self {
            Place::Path((l, rel)) => (stack.layers()[*l].fd(), rel.as_path()),
            Place::Open(h) => {
                let f = match (h.upper, h.upper_copy.get()) {
                    (false, Some(c)) => c,
                    _ => &h.file,
                };
                (f.as_fd(), Path::new(""))
            }
            Place::RemovedDir(f) => (f.as_fd(), Path::new("")),
        }
    }

    /// The layer holding the file (0 = upper).
    pub(crate) fn layer(&self) -> usize {
        match self {
            Place::Path((l, _)) => *l,
            Place::Open(h) if h.upper || h.upper_copy.get().is_some() => 0,
            Place::RemovedDir(_) => 0,
            Place::Open(_) => usize::MAX,
        }
    }
}

/// One entry of a directory snapshot.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: OsString,
    /// The number stat shows (d_ino).
    pub ino: u64,
    pub dtype: u8,
    /// Topmost layer holding the entry (`usize::MAX` for "." and "..").
    pub layer: usize,
}

/// The union filesystem.
#[derive(Debug)]
pub struct OverlayFs {
    pub stack: Stack,
    pub nodes: NodeTable,
    handles: DashMap<u64, Arc<Handle>, crate::fasthash::FastState>,
    listings: listing::Listings,
    next_fh: AtomicU64,
    tmp_counter: AtomicU64,
    pub read_only: bool,
    /// See [`Config::no_xattrs`].
    pub no_xattrs: bool,
    fsync: bool,
    ids: IdMapper,
    /// Can set real ownership (root, or CAP_CHOWN in our namespace).
    privileged: bool,
    /// Read override_stat xattrs (unprivileged mounts, where ownership lives there).
    use_override: bool,
    /// Inodes whose cached attributes went stale by a side effect (a directory that a
    /// copy-up made a merged one reports nlink 1 from then on).
    pending_inval: pending::PerRequest<Invalidation>,
}

impl OverlayFs {
    pub(crate) fn node(&self, ino: u64) -> Res<Arc<Node>> {
        self.nodes.get(ino).ok_or(Errno::ESTALE)
    }

    /// Where a node's shown data lives now.
    pub(crate) fn loc_of(&self, node: &Node) -> Res<Loc> {
        // Read under the lock without copying the whole state (hot: every data request).
        let (upper, lower) = node.with(|s| {
            (
                s.upper,
                if s.upper {
                    None
                } else {
                    s.lowers.first().cloned()
                },
            )
        });
        if upper {
            Ok((0, self.nodes.path_of(node.ino)?))
        } else {
            lower.ok_or(Errno::ENOENT)
        }
    }

    /// Where a request reaches a node's file: its layer and path, or, once every name of
    /// it is gone (unlinked or renamed over while open), one of its open files, as the
    /// kernel reaches an open inode. `write` asks for the upper file (callers copy up
    /// first).
    pub(crate) fn place(&self, node: &Node, write: bool) -> Res<Place> {
        match self.loc_of(node) {
            Ok(loc) => Ok(Place::Path(loc)),
            Err(Errno::ENOENT) => {
                if let Some(d) = node.removed_dir.get() {
                    return Ok(Place::RemovedDir(Arc::clone(d)));
                }
                node.open_file(write).map(Place::Open).ok_or(Errno::ENOENT)
            }
            Err(e) => Err(e),
        }
    }

    /// The directories that make up a merged directory node, top-first.
    pub(crate) fn dirs_of(&self, node: &Node) -> Res<Vec<Loc>> {
        let (upper, mut v) = node.with(|s| {
            let mut v = Vec::with_capacity(s.lowers.len() + 1);
            v.extend(s.lowers.iter().cloned());
            (s.upper, v)
        });
        if upper {
            v.insert(0, (0, self.nodes.path_of(node.ino)?));
        }
        Ok(v)
    }

    pub(crate) fn tmp_name(&self) -> PathBuf {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        PathBuf::from(format!("t{}-{n}", std::process::id()))
    }

    pub(crate) fn work(&self) -> Res<std::os::fd::BorrowedFd<'_>> {
        self.stack
            .work
            .as_ref()
            .map(|w| w.as_fd())
            .ok_or(Errno::EROFS)
    }

    /// Build presented attributes from a real stat at `loc`.
    pub(crate) fn attr_from(
        &self,
        node: &Node,
        st: &sys::Stat,
        loc: &Loc,
        merged_dir: bool,
    ) -> Res<Attr> {
        let over = if self.use_override {
            let l = &self.stack.layers()[loc.0];
            owner::read_override(l.fd(), &loc.1).op("read override_stat", &loc.1)?
        } else {
            None
        };
        Ok(self.present(node, st, over, merged_dir))
    }

    /// Apply an ownership override and id mapping to a real stat.
    fn present(
        &self,
        node: &Node,
        st: &sys::Stat,
        over: Option<owner::Override>,
        merged_dir: bool,
    ) -> Attr {
        let mut mode = st.st_mode;
        let (mut uid, mut gid) = (st.st_uid, st.st_gid);
        let mut rdev = st.st_rdev;
        if let Some(o) = over {
            uid = o.uid;
            gid = o.gid;
            let real_ty = mode & libc::S_IFMT;
            // Only a plain file may stand in for another type (a device, a fifo).
            let ty = if real_ty == libc::S_IFREG && o.mode & libc::S_IFMT != 0 {
                o.mode & libc::S_IFMT
            } else {
                real_ty
            };
            mode = ty | (o.mode & 0o7777);
            if let Some(r) = o.rdev {
                rdev = r;
            }
        }
        let (uid, gid) = self.ids.present(uid, gid);
        let nlink = if merged_dir { 1 } else { st.st_nlink as u32 };
        Attr {
            ino: node.ino,
            st_ino: node.shown(),
            mode,
            nlink,
            uid,
            gid,
            rdev,
            size: st.st_size as u64,
            blocks: st.st_blocks as u64,
            blksize: st.st_blksize as u32,
            atime: (st.st_atime, st.st_atime_nsec),
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }

    fn is_merged_dir(st: &NodeState, kind: u32) -> bool {
        kind == libc::S_IFDIR && (usize::from(st.upper) + st.lowers.len()) > 1
    }

    /// Attributes of a node, from its current location (or an open handle).
    pub fn getattr(&self, ino: u64) -> Res<Attr> {
        let node = self.node(ino)?;
        let merged = node.with(|st| Self::is_merged_dir(st, node.kind));
        match self.place(&node, false)? {
            Place::Path(loc) => {
                let s =
                    sys::lstat_at(self.stack.layers()[loc.0].fd(), &loc.1).op("getattr", &loc.1)?;
                self.attr_from(&node, &s, &loc, merged)
            }
            open => {
                // Every name is gone: what the kernel shows for an open unlinked inode.
                let (fd, _) = open.at(&self.stack);
                let s = sys::fstat(fd)?;
                let over = if self.use_override {
                    owner::read_override_fd(fd)?
                } else {
                    None
                };
                Ok(self.present(&node, &s, over, merged))
            }
        }
    }

    /// Resolve a child of a directory node without touching the node table.
    pub(crate) fn resolve_child(
        &self,
        parent: &Node,
        name: &OsStr,
    ) -> Res<Option<crate::format::resolve::Found>> {
        if !parent.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if whiteout::classify_name(name) != whiteout::NameClass::Normal {
            return Ok(None);
        }
        let dirs = self.dirs_of(parent)?;
        self.stack
            .res
            .resolve(&dirs, name)
            .map_err(|e| errno_at("lookup", &path_in(&dirs, name), e))
    }

    /// Turn a resolved entry into a node (counting one lookup) and its attributes.
    pub(crate) fn node_from_found(
        &self,
        parent: u64,
        name: &OsStr,
        f: &crate::format::resolve::Found,
    ) -> Res<(Arc<Node>, Attr)> {
        self.node_for(parent, name, f, false)
    }

    /// [`Self::node_from_found`] for an entry this request has just created.
    pub(crate) fn node_from_new(
        &self,
        parent: u64,
        name: &OsStr,
        f: &crate::format::resolve::Found,
    ) -> Res<(Arc<Node>, Attr)> {
        self.node_for(parent, name, f, true)
    }

    /// The node id a resolved entry gets: its file's number, or, for a name of a lower
    /// file with several names, an id of its own (see `nodes`).
    fn node_id(&self, f: &crate::format::resolve::Found, new: bool) -> NodeId {
        let layer = &self.stack.layers()[f.top.0];
        let backing = (f.stat.st_dev, f.stat.st_ino);
        let ino = if new {
            self.nodes.ino_for_new(backing, layer.fs_index)
        } else {
            self.nodes.ino_for(backing, layer.fs_index)
        };
        let in_upper = self.stack.has_upper && f.top.0 == 0;
        if !in_upper && !crate::format::resolve::s_isdir(f.stat.st_mode) && f.stat.st_nlink > 1 {
            NodeId::Name { shown: ino }
        } else {
            NodeId::Ino(ino)
        }
    }

    fn node_for(
        &self,
        parent: u64,
        name: &OsStr,
        f: &crate::format::resolve::Found,
        new: bool,
    ) -> Res<(Arc<Node>, Attr)> {
        let id = self.node_id(f, new);
        self.node_with_id(parent, name, f, id)
    }

    fn node_with_id(
        &self,
        parent: u64,
        name: &OsStr,
        f: &crate::format::resolve::Found,
        id: NodeId,
    ) -> Res<(Arc<Node>, Attr)> {
        let backing = (f.stat.st_dev, f.stat.st_ino);
        let in_upper = self.stack.has_upper && f.top.0 == 0;
        let kind = f.stat.st_mode & libc::S_IFMT;
        let lowers = if kind == libc::S_IFDIR {
            if in_upper {
                f.lower_dirs.clone()
            } else {
                let mut v = vec![f.top.clone()];
                v.extend(f.lower_dirs.iter().cloned());
                v
            }
        } else if in_upper {
            Vec::new()
        } else {
            vec![f.top.clone()]
        };
        let fresh = NodeState {
            aliases: Vec::new(),
            upper: in_upper,
            lowers,
            backing,
        };
        let name = name.to_os_string();
        let node = self.nodes.lookup_or_insert(id, kind, parent, &name, fresh);
        let merged = node.with(|s| Self::is_merged_dir(s, kind));
        let loc = self.loc_of(&node).unwrap_or_else(|_| f.top.clone());
        let attr = if loc == f.top {
            self.attr_from(&node, &f.stat, &loc, merged)
        } else {
            sys::lstat_at(self.stack.layers()[loc.0].fd(), &loc.1)
                .op("lookup", &loc.1)
                .and_then(|s| self.attr_from(&node, &s, &loc, merged))
        };
        match attr {
            Ok(a) => Ok((node, a)),
            Err(e) => {
                // The kernel gets no entry, so it will never forget the reference.
                self.nodes.forget(node.ino, 1);
                Err(e)
            }
        }
    }

    /// LOOKUP: find `name` in directory `parent`; counts one kernel reference.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Res<Attr> {
        let p = self.node(parent)?;
        let f = self.resolve_child(&p, name)?.ok_or(Errno::ENOENT)?;
        Ok(self.node_from_found(parent, name, &f)?.1)
    }

    /// LOOKUP for READDIRPLUS of an entry a directory snapshot found in lower layer
    /// `layer` (the layers between the upper and `layer` are known to hold neither it nor
    /// a whiteout).
    pub fn lookup_listed(&self, parent: u64, name: &OsStr, layer: usize) -> Res<Attr> {
        let p = self.node(parent)?;
        if !p.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let mut dirs = self.dirs_of(&p)?;
        dirs.retain(|(l, _)| !self.stack.is_lower(*l) || *l >= layer);
        let f = self
            .stack
            .res
            .resolve(&dirs, name)
            .map_err(|e| errno_at("lookup", &path_in(&dirs, name), e))?
            .ok_or(Errno::ENOENT)?;
        let id = self.node_id(&f, false);
        let (_, attr) = self.node_with_id(parent, name, &f, id)?;
        Ok(attr)
    }

    /// FORGET: the kernel dropped `n` references.
    pub fn forget(&self, ino: u64, n: u64) {
        self.nodes.forget(ino, n);
    }

    pub fn readlink(&self, ino: u64) -> Res<OsString> {
        let node = self.node(ino)?;
        let loc = self.loc_of(&node)?;
        let dir = self.stack.layers()[loc.0].fd();
        match sys::readlink_at(dir, &loc.1) {
            // A plain file standing in for a symlink (override type `symlink`): its content.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && self.use_override => {
                owner::read_standin_link(dir, &loc.1)
                    .op("readlink", &loc.1)?
                    .ok_or(Errno::EINVAL)
            }
            r => r.op("readlink", &loc.1),
        }
    }

    fn snapshot_dir(&self, node: &Node) -> Res<Vec<DirEntry>> {
        let dirs = self.dirs_of(node)?;
        let list = self
            .stack
            .res
            .list(&dirs)
            .map_err(|e| errno_at("readdir", &path_in(&dirs, OsStr::new("")), e))?;
        let parent = node
            .with(|s| s.aliases.first().map(|a| a.0))
            .unwrap_or(ROOT_INO);
        let mut out = Vec::with_capacity(list.len() + 2);
        // The numbers stat shows, as for every entry.
        let parent = self.nodes.get(parent).map_or(parent, |n| n.shown());
        out.push(DirEntry {
            name: OsString::from("."),
            ino: node.shown(),
            dtype: libc::DT_DIR,
            layer: usize::MAX,
        });
        out.push(DirEntry {
            name: OsString::from(".."),
            ino: parent,
            dtype: libc::DT_DIR,
            layer: usize::MAX,
        });
        for (name, dtype, layer, dino) in list {
            let l = &self.stack.layers()[layer];
            let id = self.nodes.ino_for((l.dev, dino), l.fs_index);
            // The number stat shows (a copied-up hard link's name: not its node id).
            let ino = self.nodes.shown_number(id);
            out.push(DirEntry {
                name,
                ino,
                dtype,
                layer,
            });
        }
        Ok(out)
    }

    pub fn statfs(&self) -> Res<libc::statvfs> {
        Ok(sys::fstatvfs(self.stack.layers()[0].fd())?)
    }

    /// The name an xattr given through the mount is stored under; `private` is the error
    /// for a name private to overlay implementations (each call answers its own).
    fn stored_xattr_name(&self, name: &OsStr, private: Errno) -> Res<OsString> {
        if self.no_xattrs {
            return Err(Errno::ENOTSUP);
        }
        match whiteout::stored_xattr_name(name) {
            whiteout::StoredName::Plain => Ok(name.to_os_string()),
            whiteout::StoredName::Escaped(n) => Ok(n),
            whiteout::StoredName::Private => Err(private),
        }
    }

    pub fn getxattr(&self, ino: u64, name: &OsStr) -> Res<Vec<u8>> {
        let stored = self.stored_xattr_name(name, Errno::ENODATA)?;
        let node = self.node(ino)?;
        let caps = name.as_bytes() == CAPS_XATTR;
        if caps && node.caps_absent.load(Ordering::Relaxed) {
            return Err(Errno::ENODATA);
        }
        let place = self.place(&node, false)?;
        let (fd, rel) = place.at(&self.stack);
        match sys::get_xattr_at(fd, rel, &stored) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => {
                if caps {
                    node.caps_absent.store(true, Ordering::Relaxed);
                }
                Err(Errno::ENODATA)
            }
            Err(e) => Err(errno_at("getxattr", rel, e)),
        }
    }

    /// Names, NUL-separated, as shown through the mount (private ones left out,
    /// escaped ones unescaped).
    pub fn listxattr(&self, ino: u64) -> Res<Vec<u8>> {
        if self.no_xattrs {
            return Err(Errno::ENOTSUP);
        }
        let node = self.node(ino)?;
        let place = self.place(&node, false)?;
        let (fd, rel) = place.at(&self.stack);
        let names = match sys::list_xattr_at(fd, rel) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Vec::new(),
            Err(e) => return Err(errno_at("listxattr", rel, e)),
        };
        let mut out = Vec::new();
        for n in names {
            if let Some(shown) = whiteout::shown_xattr_name(&n) {
                out.extend_from_slice(shown.as_bytes());
                out.push(0);
            }
        }
        Ok(out)
    }

    pub(crate) fn new_handle(&self, ino: u64, file: File, upper: bool) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let h = Arc::new(Handle {
            ino,
            file,
            upper,
            upper_copy: std::sync::OnceLock::new(),
        });
        if let Some(n) = self.nodes.get(ino) {
            n.add_open(&h);
        }
        self.handles.insert(fh, h);
        fh
    }

    pub fn handle(&self, fh: u64) -> Res<Arc<Handle>> {
        self.handles
            .get(&fh)
            .map(|h| Arc::clone(&h))
            .ok_or(Errno::EBADF)
    }

    pub fn release(&self, fh: u64) {
        self.handles.remove(&fh);
    }

    /// Inodes whose attributes the kernel should fetch again, queued by the request
    /// this thread is serving.
    pub fn take_inode_invalidations(&self) -> Vec<Invalidation> {
        self.pending_inval.take()
    }

    pub(crate) fn queue_inode_invalidation(&self, ino: u64) {
        self.pending_inval.push(Invalidation {
            ino,
            listing: false,
        });
    }

    /// The kernel's cached listing of directory `ino` went stale (an entry in it shows
    /// another inode number now).
    pub(crate) fn queue_listing_invalidation(&self, ino: u64) {
        self.pending_inval.push(Invalidation { ino, listing: true });
    }

    /// Does the node show its upper copy now?
    pub fn is_upper(&self, ino: u64) -> bool {
        self.nodes.get(ino).is_some_and(|n| n.with(|s| s.upper))
    }
}
