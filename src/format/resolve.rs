//! The one resolver of a layer stack: open layer roots, resolve a name top to bottom
//! through whiteouts, opaque dirs and redirects, and merge a directory listing. The mount
//! (`overlay/`, with its node cache) and the store (`store/merged.rs`, a tree walk for
//! diff, commit and export) both read layers through this code and nothing else.
//!
//! Layer indexes: `0` is the top layer (a mount's or a container's upper when there is
//! one); the others follow top-first.

use super::whiteout::{self, NameClass};
use crate::fasthash::FastState;
use crate::sys;
use dashmap::DashMap;
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One layer directory, opened before the mount so it stays reachable under it.
#[derive(Debug)]
pub struct Layer {
    pub root: OwnedFd,
    pub dev: u64,
    /// Small index per distinct st_dev, used to build unique inode numbers.
    pub fs_index: u64,
}

impl Layer {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }
}

/// A layer location: layer index and path relative to the layer root.
pub type Loc = (usize, PathBuf);

/// What a name resolves to in the stack.
#[derive(Debug, Clone)]
pub struct Found {
    /// Topmost location (the one whose attributes are shown).
    pub top: Loc,
    pub stat: sys::Stat,
    /// For directories: every contributing dir below `top`, top-first.
    pub lower_dirs: Vec<Loc>,
    /// The upper entry, when `top` is in the upper layer, is an opaque directory.
    pub opaque: bool,
}

/// The layers and what is known about the ones that do not change.
#[derive(Debug)]
pub struct Resolver {
    pub layers: Vec<Layer>,
    /// Layers from this index on never change while the resolver lives (a mount's lowers;
    /// every layer of a store walk): their markers and listings' facts are cached.
    cached_from: usize,
    /// What is known about those directories.
    lower_info: DashMap<Loc, LowerDirInfo, FastState>,
    indexer: index::Indexer,
}

/// Cached facts about one lower directory.
#[derive(Debug, Clone, Default)]
struct LowerDirInfo {
    /// (opaque, redirect), once read.
    pub markers: Option<(bool, Option<Vec<u8>>)>,
    /// Whether any `.wh.*` name is in it, once listed.
    pub has_wh: Option<bool>,
    /// Its names, once read (see [`index`]).
    pub index: Option<Arc<index::NameIndex>>,
    /// Lookups that found nothing here, until it is indexed; `u32::MAX`: read once, not
    /// indexed (too big, or the directory is not there).
    pub misses: u32,
}

pub fn s_isdir(mode: u32) -> bool {
    mode & libc::S_IFMT == libc::S_IFDIR
}

/// Where a lookup's walk down the layers is.
struct Walk<'a> {
    /// The merged parent's contributing dirs, top first, and the next one to look in.
    parent_dirs: &'a [Loc],
    idx: usize,
    /// The name looked up there (a relative redirect changes it).
    cur_name: OsString,
    /// After an absolute redirect: the path the layers from `next_layer` on are searched at.
    abs: Option<PathBuf>,
    next_layer: usize,
    /// An opaque directory on an absolute redirect's way: the current layer is the last.
    stop_after: bool,
}

/// Result of checking one name in one layer directory.
enum Probe {
    Absent,
    Whiteout,
    /// An ancestor of the path is not a directory in this layer: nothing below it in
    /// this chain can be reached (as kernel overlayfs stops a redirect lookup there).
    Blocked,
    Entry(sys::Stat),
}

impl Resolver {
    /// A resolver over `layers` (top first) whose layers from `cached_from` on never
    /// change while it lives.
    pub fn new(layers: Vec<Layer>, cached_from: usize) -> Resolver {
        Resolver {
            layers,
            cached_from,
            lower_info: DashMap::default(),
            indexer: index::Indexer::default(),
        }
    }

    /// The root of the merged tree: the top layer's root, and every layer root below it
    /// down to (and with) the first opaque one. (The top root's own opaque marker hides
    /// everything below, as a mount's opaque upper root does.)
    pub fn root(&self) -> io::Result<Found> {
        let top: Loc = (0, PathBuf::new());
        let stat = sys::lstat_at(self.layers[0].fd(), Path::new(""))?;
        let opaque = self.dir_markers(&top)?.0;
        let mut lower_dirs = Vec::new();
        if !opaque {
            for i in 1..self.layers.len() {
                lower_dirs.push((i, PathBuf::new()));
                if i + 1 < self.layers.len() && self.dir_markers(&(i, PathBuf::new()))?.0 {
                    break;
                }
            }
        }
        Ok(Found {
            top,
            stat,
            lower_dirs,
            opaque,
        })
    }

    fn probe(&self, layer: usize, dir: &Path, name: &OsStr) -> io::Result<Probe> {
        let l = &self.layers[layer];
        let key = self.is_cached(layer).then(|| (layer, dir.to_path_buf()));
        if let Some(k) = &key
            && let Some(i) = self.lower_info.get(k)
            && i.index
                .as_ref()
                .is_some_and(|x| x.knows(name) == index::Known::Absent)
        {
            return Ok(Probe::Absent);
        }
        let p = dir.join(name);
        match sys::lstat_at(l.fd(), &p) {
            Ok(st) => {
                if whiteout::is_whiteout_dev(st.st_mode, st.st_rdev) {
                    Ok(Probe::Whiteout)
                } else {
                    Ok(Probe::Entry(st))
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(Probe::Blocked),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                if let Some(k) = key {
                    let has_wh = self.missed(k)?;
                    if has_wh == Some(false) {
                        return Ok(Probe::Absent);
                    }
                }
                match sys::lstat_at(l.fd(), &dir.join(whiteout::wh_name(name))) {
                    Ok(_) => Ok(Probe::Whiteout),
                    Err(e) if absent(&e) => Ok(Probe::Absent),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// A lookup found nothing in lower directory `key`: after a few, its names are read
    /// and indexed, so the next lookups there need no syscall. Returns what is known of
    /// `.wh.` names in it.
    fn missed(&self, key: Loc) -> io::Result<Option<bool>> {
        {
            let mut i = self.lower_info.entry(key.clone()).or_default();
            i.misses = i.misses.saturating_add(1);
            if i.misses != index::MISSES_BEFORE_INDEX {
                return Ok(i.has_wh);
            }
        }
        let l = &self.layers[key.0];
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        let entries = match sys::open_at(l.fd(), &key.1, flags, 0) {
            Ok(fd) => sys::read_dir_fd(fd)?,
            Err(e) if absent(&e) => {
                // Not a directory of this layer: nothing to index (a lookup's answer
                // there, absent or blocked, comes from the layer each time).
                let mut i = self.lower_info.entry(key).or_default();
                i.misses = u32::MAX;
                return Ok(i.has_wh);
            }
            Err(e) => return Err(e),
        };
        Ok(self.note_names(key, &entries))
    }

    /// Record what a read of lower directory `key` found: whether it holds `.wh.` names,
    /// and its index. Returns the former.
    fn note_names(&self, key: Loc, entries: &[(OsString, u8, u64)]) -> Option<bool> {
        let has_wh = entries
            .iter()
            .any(|(name, _, _)| name.as_bytes().starts_with(whiteout::WH_PREFIX));
        let mut i = self.lower_info.entry(key).or_default();
        i.has_wh = Some(has_wh);
        if i.index.is_none() {
            i.index = self
                .indexer
                .build(entries.iter().map(|e| e.0.as_os_str()))
                .map(Arc::new);
            if i.index.is_none() {
                i.misses = u32::MAX;
            }
        }
        Some(has_wh)
    }

    /// Does layer `layer` never change (so facts about it may be cached)?
    pub fn is_cached(&self, layer: usize) -> bool {
        layer >= self.cached_from
    }

    /// Is the directory at `loc` opaque, and does it carry a redirect? (Cached for lower
    /// layers.)
    pub fn dir_markers(&self, loc: &Loc) -> io::Result<(bool, Option<Vec<u8>>)> {
        if !self.is_cached(loc.0) {
            return self.read_dir_markers(loc);
        }
        if let Some(m) = self.lower_info.get(loc).and_then(|i| i.markers.clone()) {
            return Ok(m);
        }
        let m = self.read_dir_markers(loc)?;
        self.lower_info.entry(loc.clone()).or_default().markers = Some(m.clone());
        Ok(m)
    }

    fn read_dir_markers(&self, loc: &Loc) -> io::Result<(bool, Option<Vec<u8>>)> {
        let l = &self.layers[loc.0];
        let names = match sys::list_xattr_at(l.fd(), &loc.1) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut opaque = false;
        let mut redirect = None;
        for n in &names {
            let s = n.as_bytes();
            if whiteout::OPAQUE_XATTRS.iter().any(|x| x.as_bytes() == s) {
                if let Some(v) = sys::get_xattr_at(l.fd(), &loc.1, n)? {
                    opaque |= whiteout::is_opaque_value(&v);
                }
            } else if whiteout::REDIRECT_XATTRS.iter().any(|x| x.as_bytes() == s)
                && redirect.is_none()
            {
                redirect = sys::get_xattr_at(l.fd(), &loc.1, n)?.filter(|v| !v.is_empty());
            }
        }
        if !opaque {
            let marker = loc.1.join(OsStr::from_bytes(whiteout::OPAQUE_MARKER));
            opaque = sys::lstat_at(l.fd(), &marker).is_ok();
        }
        Ok((opaque, redirect))
    }

    /// Resolve `name` inside a merged directory whose contributing dirs are `parent_dirs`
    /// (top-first). Returns `None` when absent or whited out.
    pub fn resolve(&self, parent_dirs: &[Loc], name: &OsStr) -> io::Result<Option<Found>> {
        let mut found: Option<Found> = None;
        let mut walk = Walk {
            parent_dirs,
            idx: 0,
            cur_name: name.to_os_string(),
            abs: None,
            next_layer: 0,
            stop_after: false,
        };
        while let Some((layer, dir, leaf)) = self.next_place(&mut walk, found.as_ref())? {
            match self.probe(layer, &dir, &leaf)? {
                Probe::Absent if walk.stop_after => break,
                Probe::Absent => continue,
                Probe::Whiteout | Probe::Blocked => break,
                Probe::Entry(st) => {
                    let more =
                        self.take_entry(&mut walk, &mut found, (layer, dir.join(&leaf)), st)?;
                    if !more {
                        break;
                    }
                }
            }
        }
        Ok(found)
    }

    /// The next (layer, dir, name) to probe: the parent's next contributing dir (below what
    /// was found), or, after an absolute redirect, the next layer at the recorded path.
    /// `None` when the walk is over.
    fn next_place(
        &self,
        w: &mut Walk<'_>,
        found: Option<&Found>,
    ) -> io::Result<Option<(usize, PathBuf, OsString)>> {
        if let Some(p) = &w.abs {
            let (Some(leaf), true) = (p.file_name(), w.next_layer < self.layers.len()) else {
                return Ok(None);
            };
            let l = w.next_layer;
            w.next_layer += 1;
            let dir = p.parent().unwrap_or(Path::new("")).to_path_buf();
            let (blocked, stop) = self.redirect_ancestors(l, &dir)?;
            w.stop_after = stop;
            return Ok((!blocked).then(|| (l, dir, leaf.to_os_string())));
        }
        // The lowest layer already merged: a parent dir at or above it has nothing new.
        let done = found.map(|f| f.lower_dirs.last().map_or(f.top.0, |x| x.0));
        while let Some((l, d)) = w.parent_dirs.get(w.idx).cloned() {
            w.idx += 1;
            if done.is_none_or(|done| l > done) {
                return Ok(Some((l, d, w.cur_name.clone())));
            }
        }
        Ok(None)
    }

    /// Record an entry found at `loc`; say whether the layers below may still add to it (a
    /// directory that is neither opaque nor the bottom), following its redirect if any.
    fn take_entry(
        &self,
        w: &mut Walk<'_>,
        found: &mut Option<Found>,
        loc: Loc,
        st: sys::Stat,
    ) -> io::Result<bool> {
        let is_dir = s_isdir(st.st_mode);
        let layer = loc.0;
        match found {
            None => {
                *found = Some(Found {
                    top: loc.clone(),
                    stat: st,
                    lower_dirs: Vec::new(),
                    opaque: false,
                });
            }
            // A non-directory below a directory is hidden, and ends the merge.
            Some(_) if !is_dir => return Ok(false),
            Some(f) => f.lower_dirs.push(loc.clone()),
        }
        if !is_dir || layer + 1 >= self.layers.len() {
            return Ok(false);
        }
        let (opaque, redirect) = self.dir_markers(&loc)?;
        if opaque {
            if let Some(f) = found.as_mut()
                && f.top.0 == layer
            {
                f.opaque = true;
            }
            return Ok(false);
        }
        if let Some(r) = redirect.filter(|r| valid_redirect(r)) {
            if let Some(a) = r.strip_prefix(b"/") {
                w.abs = Some(PathBuf::from(OsStr::from_bytes(a)));
                w.next_layer = layer + 1;
            } else {
                w.cur_name = OsStr::from_bytes(&r).to_os_string();
            }
        }
        Ok(!w.stop_after)
    }

    /// Kernel overlayfs follows an absolute redirect one component at a time in each
    /// lower layer: a whiteout or a non-directory on the way ends the search in that
    /// layer and below (`blocked`), an opaque directory on the way lets this layer count
    /// but ends the search after it (`stop_after`). Returns (blocked, stop_after) for the
    /// ancestors `dir` of the redirected name in `layer`.
    fn redirect_ancestors(&self, layer: usize, dir: &Path) -> io::Result<(bool, bool)> {
        let l = &self.layers[layer];
        let mut prefix = PathBuf::new();
        let mut stop_after = false;
        for c in dir.components() {
            prefix.push(c);
            match sys::lstat_at(l.fd(), &prefix) {
                Ok(st) if !s_isdir(st.st_mode) => return Ok((true, stop_after)),
                Ok(_) => stop_after |= self.dir_markers(&(layer, prefix.clone()))?.0,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    // A `.wh.` file deletes the component as a 0:0 device does; otherwise
                    // the layer has nothing here and the ones below may.
                    let wh = prefix.with_file_name(whiteout::wh_name(c.as_os_str()));
                    return match sys::lstat_at(l.fd(), &wh) {
                        Ok(_) => Ok((true, stop_after)),
                        Err(e) if absent(&e) => Ok((false, stop_after)),
                        Err(e) => Err(e),
                    };
                }
                Err(e) => return Err(e),
            }
        }
        Ok((false, stop_after))
    }

    /// Merge the listing of a directory made of `dirs` (top-first; the first may be the
    /// upper dir). Whiteouts and markers are dropped; the topmost entry of each name wins.
    /// Returns (name, d_type, layer, d_ino).
    pub fn list(&self, dirs: &[Loc]) -> io::Result<Vec<(OsString, u8, usize, u64)>> {
        let mut seen: HashSet<OsString, FastState> = HashSet::default();
        let merging = dirs.len() > 1;
        let mut out = Vec::new();
        for (n, (layer, rel)) in dirs.iter().enumerate() {
            let l = &self.layers[*layer];
            let fd = match sys::open_at(
                l.fd(),
                rel,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            ) {
                Ok(fd) => fd,
                Err(e) if n > 0 && e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(e),
            };
            let entries = sys::read_dir_fd(fd)?;
            if self.is_cached(*layer) {
                self.note_names((*layer, rel.clone()), &entries);
            }
            let last = n + 1 == dirs.len();
            for (name, dtype, dino) in entries {
                match whiteout::classify_name(&name) {
                    NameClass::OpaqueMarker => continue,
                    NameClass::WhiteoutOf(target) => {
                        if !last {
                            seen.insert(target.to_os_string());
                        }
                        continue;
                    }
                    NameClass::Normal => {}
                }
                if merging && n > 0 && seen.contains(&name) {
                    continue;
                }
                let mut dtype = dtype;
                if dtype == libc::DT_CHR || dtype == libc::DT_UNKNOWN {
                    let st = sys::lstat_at(l.fd(), &rel.join(&name))?;
                    if whiteout::is_whiteout_dev(st.st_mode, st.st_rdev) {
                        if !last {
                            seen.insert(name);
                        }
                        continue;
                    }
                    dtype = mode_to_dtype(st.st_mode);
                }
                if !last {
                    seen.insert(name.clone());
                }
                out.push((name, dtype, *layer, dino));
            }
        }
        Ok(out)
    }
}

/// What one layer directory records by itself (not merged with the layers below).
#[derive(Debug, Clone)]
pub enum Recorded {
    /// A whiteout (either form): `NAME` is deleted from the layers below.
    Deleted(OsString),
    /// An entry the layer holds.
    Entry(OsString, sys::Stat),
}

impl Resolver {
    /// The entries directory `rel` of layer `layer` records, sorted by name: whiteouts as
    /// [`Recorded::Deleted`], everything else as itself; the `.wh..wh..opq` marker is not an
    /// entry (it shows in [`Resolver::dir_markers`]).
    pub fn recorded(&self, layer: usize, rel: &Path) -> io::Result<Vec<Recorded>> {
        let fd = sys::open_at(
            self.layers[layer].fd(),
            rel,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )?;
        let mut names: Vec<OsString> = sys::read_dir_fd(fd)?.into_iter().map(|e| e.0).collect();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match whiteout::classify_name(&name) {
                NameClass::OpaqueMarker => continue,
                NameClass::WhiteoutOf(t) => {
                    out.push(Recorded::Deleted(t.to_os_string()));
                    continue;
                }
                NameClass::Normal => {}
            }
            let st = sys::lstat_at(self.layers[layer].fd(), &rel.join(&name))?;
            if whiteout::is_whiteout_dev(st.st_mode, st.st_rdev) {
                out.push(Recorded::Deleted(name));
            } else {
                out.push(Recorded::Entry(name, st));
            }
        }
        Ok(out)
    }
}

/// Does this error of a `.wh.NAME` probe mean "no such whiteout"? (A name of more than
/// NAME_MAX - 4 bytes has no `.wh.` form.)
fn absent(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG)
    )
}

/// A redirect stays inside the layer: an absolute path or a bare name, without `.` or `..`
/// components. Any other value is ignored (the directory merges as if it had none).
fn valid_redirect(r: &[u8]) -> bool {
    let path = r.strip_prefix(b"/");
    let body = path.unwrap_or(r);
    if path.is_none() && body.contains(&b'/') {
        return false;
    }
    !body.is_empty()
        && body
            .split(|b| *b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

pub fn mode_to_dtype(mode: u32) -> u8 {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => libc::DT_DIR,
        libc::S_IFREG => libc::DT_REG,
        libc::S_IFLNK => libc::DT_LNK,
        libc::S_IFCHR => libc::DT_CHR,
        libc::S_IFBLK => libc::DT_BLK,
        libc::S_IFIFO => libc::DT_FIFO,
        libc::S_IFSOCK => libc::DT_SOCK,
        _ => libc::DT_UNKNOWN,
    }
}

/// A layer root that cannot be opened: which one (`upperdir`, `lowerdir`), its path, why.
#[derive(Debug)]
pub struct OpenError {
    pub what: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = match self.source.raw_os_error() {
            Some(libc::ENOTDIR) => "not a directory".to_string(),
            Some(libc::ENOENT) => "no such directory".to_string(),
            Some(libc::EACCES) => "permission denied".to_string(),
            _ => self.source.to_string(),
        };
        write!(f, "{} {}: {why}", self.what, self.path.display())
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Open the layer roots (upper first, then the lowers top first).
pub fn open_layers(lowers: &[PathBuf], upper: Option<&Path>) -> Result<Vec<Layer>, OpenError> {
    let mut out = Vec::new();
    let mut devs: Vec<u64> = Vec::new();
    let all = upper
        .into_iter()
        .map(|u| (u, "upperdir"))
        .chain(lowers.iter().map(|l| (l.as_path(), "lowerdir")));
    for (path, what) in all {
        let err = |source| OpenError {
            what,
            path: path.to_path_buf(),
            source,
        };
        let fd = sys::open_dir(path).map_err(err)?;
        let st = sys::fstat(fd.as_fd()).map_err(err)?;
        let fs_index = match devs.iter().position(|d| *d == st.st_dev) {
            Some(i) => i as u64,
            None => {
                devs.push(st.st_dev);
                (devs.len() - 1) as u64
            }
        };
        out.push(Layer {
            root: fd,
            dev: st.st_dev,
            fs_index,
        });
    }
    Ok(out)
}

mod index;

#[cfg(test)]
mod tests;
