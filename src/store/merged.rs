//! Reading a stack of layer directories (top first) as one tree, with overlay rules:
//! whiteouts (char 0:0 devices or `.wh.NAME` files) hide lower entries, opaque dirs (xattr
//! or `.wh..wh..opq`) stop the merge, a directory carrying an overlay redirect xattr
//! continues in the lower layers at its old path. Used by `container diff/commit/export`,
//! so none of them needs a mount. Also turns an entry into a tar header with the owner, mode
//! and type it presents (`override_stat` xattrs and a layer's `root-ids` applied, plain-file
//! stand-ins written as what they stand for) and writes layer tars.

use crate::overlay::ownership;
use crate::overlay::whiteout::{self, NameClass};
use crate::sys::{self, Stat};
use std::collections::{BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One layer dir per element, top first.
pub struct Stack {
    pub layers: Vec<OwnedFd>,
    pub paths: Vec<PathBuf>,
    /// Per layer: the ids that stand for the image's 0:0 there (an unprivileged store's
    /// layers, see [`ownership::ROOT_IDS_FILE`]).
    pub root_ids: Vec<Option<(u32, u32)>>,
}

/// A resolved entry of the merged tree.
#[derive(Clone)]
pub struct Node {
    /// Path in the merged view (relative, no leading `/`).
    pub rel: PathBuf,
    /// The layer that supplies it and its path there.
    pub layer: usize,
    pub src: PathBuf,
    pub st: Stat,
    /// For directories: every (layer, path) that contributes children, top first.
    pub sources: Vec<(usize, PathBuf)>,
}

pub fn is_dir(st: &Stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

impl Stack {
    pub fn open(paths: &[PathBuf]) -> Result<Stack, String> {
        let mut layers = Vec::new();
        let mut root_ids = Vec::new();
        for p in paths {
            let fd = sys::open_dir(p)
                .map_err(|e| format!("cannot open layer dir {}: {e}", p.display()))?;
            root_ids.push(ownership::read_root_ids(fd.as_fd()).map_err(|e| {
                format!(
                    "cannot read {} beside {}: {e}",
                    ownership::ROOT_IDS_FILE,
                    p.display()
                )
            })?);
            layers.push(fd);
        }
        Ok(Stack {
            layers,
            paths: paths.to_vec(),
            root_ids,
        })
    }

    /// Owner, mode and type node `n` presents.
    pub fn presented(&self, n: &Node) -> Presented {
        presented(
            self.layers[n.layer].as_fd(),
            &n.src,
            &n.st,
            self.root_ids[n.layer],
        )
    }

    fn lstat(&self, i: usize, p: &Path) -> Option<Stat> {
        sys::lstat_at(self.layers[i].as_fd(), p).ok()
    }

    fn is_whiteout_at(&self, i: usize, dir: &Path, name: &OsStr) -> bool {
        if let Some(st) = self.lstat(i, &dir.join(name))
            && whiteout::is_whiteout_dev(st.st_mode, st.st_rdev)
        {
            return true;
        }
        self.lstat(i, &dir.join(whiteout::wh_name(name))).is_some()
    }

    pub fn is_opaque(&self, i: usize, p: &Path) -> bool {
        whiteout::has_opaque_xattr(self.layers[i].as_fd(), p).unwrap_or(false)
            || self
                .lstat(i, &p.join(OsStr::from_bytes(whiteout::OPAQUE_MARKER)))
                .is_some()
    }

    pub fn redirect(&self, i: usize, p: &Path, merged_parent: &Path) -> Option<PathBuf> {
        let r = whiteout::read_redirect(self.layers[i].as_fd(), p).ok()??;
        let s = OsStr::from_bytes(&r);
        // A redirect never leaves the layer: `..` components make it invalid.
        if r.split(|b| *b == b'/').any(|c| c == b"..") {
            return None;
        }
        Some(if r.starts_with(b"/") {
            PathBuf::from(OsStr::from_bytes(&r[1..]))
        } else {
            merged_parent.join(s)
        })
    }

    /// The root of the merged tree.
    pub fn root(&self) -> Result<Node, String> {
        let st = self
            .lstat(0, Path::new(""))
            .ok_or("cannot stat the top layer")?;
        let mut sources = Vec::new();
        for i in 0..self.layers.len() {
            sources.push((i, PathBuf::new()));
            if self.is_opaque(i, Path::new("")) {
                break;
            }
        }
        Ok(Node {
            rel: PathBuf::new(),
            layer: 0,
            src: PathBuf::new(),
            st,
            sources,
        })
    }

    /// Resolve `name` inside directory node `dir`.
    pub fn child(&self, dir: &Node, name: &OsStr) -> Option<Node> {
        if !matches!(whiteout::classify_name(name), NameClass::Normal) {
            return None;
        }
        let mut found: Option<Node> = None;
        for (i, rel) in &dir.sources {
            let p = rel.join(name);
            if self.is_whiteout_at(*i, rel, name) {
                return found;
            }
            let Some(st) = self.lstat(*i, &p) else {
                continue;
            };
            match &mut found {
                None => {
                    let mut n = Node {
                        rel: dir.rel.join(name),
                        layer: *i,
                        src: p.clone(),
                        st,
                        sources: Vec::new(),
                    };
                    if !is_dir(&st) {
                        return Some(n);
                    }
                    n.sources.push((*i, p.clone()));
                    if self.is_opaque(*i, &p) {
                        return Some(n);
                    }
                    if let Some(r) = self.redirect(*i, &p, &dir.rel) {
                        for j in i + 1..self.layers.len() {
                            match self.lstat(j, &r) {
                                Some(s)
                                    if is_dir(&s)
                                        && !whiteout::is_whiteout_dev(s.st_mode, s.st_rdev) =>
                                {
                                    n.sources.push((j, r.clone()));
                                    if self.is_opaque(j, &r) {
                                        break;
                                    }
                                }
                                Some(_) => break,
                                None => {}
                            }
                        }
                        return Some(n);
                    }
                    found = Some(n);
                }
                Some(n) => {
                    if !is_dir(&st) {
                        return found;
                    }
                    n.sources.push((*i, p.clone()));
                    if self.is_opaque(*i, &p) {
                        return found;
                    }
                }
            }
        }
        found
    }

    /// The merged children of a directory node, sorted by name.
    pub fn children(&self, dir: &Node) -> Result<Vec<Node>, String> {
        let mut names: BTreeSet<OsString> = BTreeSet::new();
        for (i, rel) in &dir.sources {
            let fd = sys::open_at(
                self.layers[*i].as_fd(),
                rel,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )
            .map_err(|e| format!("cannot open {}: {e}", self.paths[*i].join(rel).display()))?;
            names.extend(super::unpack::list_dir(fd.as_fd())?);
        }
        Ok(names.iter().filter_map(|n| self.child(dir, n)).collect())
    }

    /// Look a merged path up.
    pub fn lookup(&self, rel: &Path) -> Result<Option<Node>, String> {
        let mut n = self.root()?;
        for c in rel.components() {
            if !is_dir(&n.st) {
                return Ok(None);
            }
            match self.child(&n, c.as_os_str()) {
                Some(x) => n = x,
                None => return Ok(None),
            }
        }
        Ok(Some(n))
    }
}

/// Owner, mode (with type bits) and device type an entry presents.
#[derive(Debug, Clone, Copy)]
pub struct Presented {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
}

/// What an entry presents: its `override_stat` (`UID:GID:MODE[:TYPE]`, a plain file may
/// stand in for another type), else 0:0 when it is owned by the layer's `root_ids`, else
/// the real stat. The same rules as the mount's (`ownership::read_override`).
pub fn presented(
    dir: std::os::fd::BorrowedFd<'_>,
    rel: &Path,
    st: &Stat,
    root_ids: Option<(u32, u32)>,
) -> Presented {
    let mut p = Presented {
        uid: st.st_uid,
        gid: st.st_gid,
        mode: st.st_mode,
        rdev_major: sys::major(st.st_rdev),
        rdev_minor: sys::minor(st.st_rdev),
    };
    let over = ownership::read_override_xattr(dir, rel)
        .ok()
        .flatten()
        .or_else(|| ownership::root_override(st, root_ids));
    if let Some(o) = over {
        p.uid = o.uid;
        p.gid = o.gid;
        let real = st.st_mode & libc::S_IFMT;
        let ty = if real == libc::S_IFREG && o.mode & libc::S_IFMT != 0 {
            o.mode & libc::S_IFMT
        } else {
            real
        };
        p.mode = ty | (o.mode & 0o7777);
        if let Some(r) = o.rdev {
            p.rdev_major = sys::major(r);
            p.rdev_minor = sys::minor(r);
        }
    }
    p
}

/// Writes layer / export tars from layer dirs.
pub struct TarOut<W: Write> {
    pub b: tar::Builder<W>,
    /// (layer, dev, ino) -> first path written, for hard links.
    links: HashMap<(usize, u64, u64), PathBuf>,
    written: BTreeSet<PathBuf>,
}

impl<W: Write> TarOut<W> {
    pub fn new(w: W) -> Self {
        let mut b = tar::Builder::new(w);
        b.follow_symlinks(false);
        TarOut {
            b,
            links: HashMap::new(),
            written: BTreeSet::new(),
        }
    }

    fn err(p: &Path, e: std::io::Error) -> String {
        format!("cannot write tar entry {}: {e}", p.display())
    }

    /// An empty regular file (whiteouts and opaque markers).
    pub fn marker(&mut self, rel: &Path) -> Result<(), String> {
        if !self.written.insert(rel.to_path_buf()) {
            return Ok(());
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        // Written out (0:0): left empty, the fields are not numbers to strict readers.
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h.set_mtime(0);
        self.b
            .append_data(&mut h, rel, std::io::empty())
            .map_err(|e| Self::err(rel, e))
    }

    /// One entry copied from layer `li` path `src`, written as `rel`.
    pub fn entry(
        &mut self,
        stack: &Stack,
        li: usize,
        src: &Path,
        st: &Stat,
        rel: &Path,
    ) -> Result<(), String> {
        if !self.written.insert(rel.to_path_buf()) {
            return Ok(());
        }
        let dir = stack.layers[li].as_fd();
        let pr = presented(dir, src, st, stack.root_ids[li]);
        let ty = pr.mode & libc::S_IFMT;
        let mut h = tar::Header::new_gnu();
        h.set_uid(pr.uid as u64);
        h.set_gid(pr.gid as u64);
        h.set_mode(pr.mode & 0o7777);
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        // xattrs as PAX records (private overlay ones never leave the store).
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        if st.st_mode & libc::S_IFMT != libc::S_IFLNK
            && let Ok(names) = sys::list_xattr_at(dir, src)
        {
            for n in names {
                if whiteout::is_private_xattr(&n)
                    || n.as_bytes().starts_with(b"security.fuseoverlayfs.")
                {
                    continue;
                }
                if let Ok(Some(v)) = sys::get_xattr_at(dir, src, &n) {
                    pax.push((format!("SCHILY.xattr.{}", n.to_string_lossy()), v));
                }
            }
        }
        if !pax.is_empty() {
            self.b
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(|e| Self::err(rel, e))?;
        }
        let real_ty = st.st_mode & libc::S_IFMT;
        if real_ty != libc::S_IFDIR && st.st_nlink > 1 {
            let key = (li, st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key).cloned() {
                h.set_entry_type(tar::EntryType::Link);
                return self
                    .b
                    .append_link(&mut h, rel, &first)
                    .map_err(|e| Self::err(rel, e));
            }
            self.links.insert(key, rel.to_path_buf());
        }
        match (real_ty, ty) {
            (libc::S_IFDIR, _) => {
                h.set_entry_type(tar::EntryType::Directory);
                let mut p = rel.as_os_str().to_os_string();
                p.push("/");
                self.b
                    .append_data(&mut h, &p, std::io::empty())
                    .map_err(|e| Self::err(rel, e))
            }
            (libc::S_IFLNK, _) => {
                h.set_entry_type(tar::EntryType::Symlink);
                let t = sys::readlink_at(dir, src).map_err(|e| Self::err(rel, e))?;
                self.b
                    .append_link(&mut h, rel, Path::new(&t))
                    .map_err(|e| Self::err(rel, e))
            }
            (libc::S_IFREG, libc::S_IFREG) => {
                h.set_entry_type(tar::EntryType::Regular);
                let fd = sys::open_at(dir, src, libc::O_RDONLY | libc::O_NOFOLLOW, 0)
                    .map_err(|e| Self::err(rel, e))?;
                let f = std::fs::File::from(fd);
                let len = f.metadata().map_err(|e| Self::err(rel, e))?.len();
                h.set_size(len);
                self.b
                    .append_data(&mut h, rel, f.take(len))
                    .map_err(|e| Self::err(rel, e))
            }
            (libc::S_IFREG, libc::S_IFLNK) => {
                // A plain file standing in for a symlink: it holds the target.
                h.set_entry_type(tar::EntryType::Symlink);
                let t = ownership::read_standin_link(dir, src)
                    .map_err(|e| Self::err(rel, e))?
                    .ok_or_else(|| {
                        Self::err(rel, std::io::Error::other("symlink stand-in changed"))
                    })?;
                self.b
                    .append_link(&mut h, rel, Path::new(&t))
                    .map_err(|e| Self::err(rel, e))
            }
            (_, t) => {
                let et = match t {
                    libc::S_IFCHR => tar::EntryType::Char,
                    libc::S_IFBLK => tar::EntryType::Block,
                    libc::S_IFIFO => tar::EntryType::Fifo,
                    _ => return Ok(()), // sockets are not archived
                };
                h.set_entry_type(et);
                if matches!(t, libc::S_IFCHR | libc::S_IFBLK) {
                    let _ = h.set_device_major(pr.rdev_major);
                    let _ = h.set_device_minor(pr.rdev_minor);
                }
                self.b
                    .append_data(&mut h, rel, std::io::empty())
                    .map_err(|e| Self::err(rel, e))
            }
        }
    }

    /// A whole merged subtree below `node` (not the node itself).
    pub fn merged_subtree(&mut self, stack: &Stack, node: &Node) -> Result<(), String> {
        for c in stack.children(node)? {
            self.entry(stack, c.layer, &c.src, &c.st, &c.rel)?;
            if is_dir(&c.st) {
                self.merged_subtree(stack, &c)?;
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Result<W, String> {
        self.b
            .into_inner()
            .map_err(|e| format!("cannot finish tar: {e}"))
    }
}
