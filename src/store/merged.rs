//! A container's or an image's layer dirs (top first) read as one tree, through the one
//! resolver the mount uses ([`crate::format::resolve`]): `container diff`, `commit` and
//! `export` see exactly what a mount of the same layers shows, without mounting. Also the
//! walk of a container's upper dir that turns its records into changes (diff) and into a
//! layer tar (commit).

use super::error::{Error, Result, ResultExt};
use super::tarout::TarOut;
use crate::format::owner::{self, Presented};
use crate::format::resolve::{self, Found, Loc, Recorded, Resolver};
use crate::sys::Stat;
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One layer dir per element, top first.
pub struct Stack {
    pub res: Resolver,
    pub paths: Vec<PathBuf>,
    /// Per layer: the ids that stand for the image's 0:0 there (an unprivileged store's
    /// layers, see [`owner::ROOT_IDS_FILE`]).
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
    pub sources: Vec<Loc>,
}

pub fn is_dir(st: &Stat) -> bool {
    resolve::s_isdir(st.st_mode)
}

impl Node {
    fn from_found(rel: PathBuf, f: Found) -> Node {
        let mut sources = Vec::new();
        if is_dir(&f.stat) {
            sources.push(f.top.clone());
            sources.extend(f.lower_dirs);
        }
        Node {
            rel,
            layer: f.top.0,
            src: f.top.1,
            st: f.stat,
            sources,
        }
    }
}

/// One line of `container diff`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub path: String,
    pub kind: char,
}

fn change(p: &Path, kind: char) -> Change {
    Change {
        path: format!("/{}", p.display()),
        kind,
    }
}

/// The image's entry `name` in its directory `below`, if that is a directory and has one.
fn image_child(lower: &Stack, below: Option<&Node>, name: &OsStr) -> Result<Option<Node>> {
    match below.filter(|b| is_dir(&b.st)) {
        Some(b) => lower.child(b, name),
        None => Ok(None),
    }
}

/// Whether `here` (an entry of a container's stack: its upper on top of the image) is the
/// image's entry `image` itself: the same layer file at the same path, and for a directory
/// the same contributing dirs (the image's stack is the container's minus its upper).
fn same_entry(here: &Node, image: &Node) -> bool {
    here.layer == image.layer + 1
        && here.src == image.src
        && here.sources.len() == image.sources.len()
        && here
            .sources
            .iter()
            .zip(&image.sources)
            .all(|(h, i)| h.0 == i.0 + 1 && h.1 == i.1)
}

/// An entry of the upper dir that the merged view no longer has: the container changed
/// while it was read.
fn vanished(upper: &Path, rel: &Path) -> Error {
    Error::invalid(format!(
        "{} vanished while it was read (is the container still being written?)",
        upper.join(rel).display()
    ))
}

impl Stack {
    /// Open `paths` (top first). `top_changes`: the top layer is a container's upper dir,
    /// which may change while we read (nothing of it is cached).
    pub fn open(paths: &[PathBuf], top_changes: bool) -> Result<Stack> {
        let layers = resolve::open_layers(paths, None)
            .map_err(|e| Error::io("opening the layer dir", e.path, e.source))?;
        let mut root_ids = Vec::new();
        for (l, p) in layers.iter().zip(paths) {
            root_ids.push(owner::read_root_ids(l.fd()).io("reading the root-ids beside", p)?);
        }
        Ok(Stack {
            res: Resolver::new(layers, usize::from(top_changes)),
            paths: paths.to_vec(),
            root_ids,
        })
    }

    fn err(&self, op: &'static str, loc: &Loc, e: std::io::Error) -> Error {
        Error::io(op, self.paths[loc.0].join(&loc.1), e)
    }

    /// Owner, mode and type node `n` presents.
    pub fn presented(&self, n: &Node) -> Result<Presented> {
        self.presented_at(n.layer, &n.src, &n.st)
    }

    /// Owner, mode and type of entry `src` of layer `li` (stat `st`).
    pub fn presented_at(&self, li: usize, src: &Path, st: &Stat) -> Result<Presented> {
        owner::presented(self.res.layers[li].fd(), src, st, self.root_ids[li])
            .map_err(|e| self.err("reading the owner of", &(li, src.to_path_buf()), e))
    }

    /// The root of the merged tree.
    pub fn root(&self) -> Result<Node> {
        let f = self
            .res
            .root()
            .map_err(|e| self.err("reading", &(0, PathBuf::new()), e))?;
        Ok(Node::from_found(PathBuf::new(), f))
    }

    /// Resolve `name` inside directory node `dir`.
    pub fn child(&self, dir: &Node, name: &OsStr) -> Result<Option<Node>> {
        let f = self.res.resolve(&dir.sources, name).map_err(|e| {
            let (layer, path) = dir.sources.first().cloned().unwrap_or_default();
            self.err("looking up", &(layer, path.join(name)), e)
        })?;
        Ok(f.map(|f| Node::from_found(dir.rel.join(name), f)))
    }

    /// The merged children of a directory node, sorted by name.
    pub fn children(&self, dir: &Node) -> Result<Vec<Node>> {
        let mut names: Vec<_> = self
            .res
            .list(&dir.sources)
            .map_err(|e| {
                let top = dir.sources.first().cloned().unwrap_or_default();
                self.err("listing", &top, e)
            })?
            .into_iter()
            .map(|e| e.0)
            .collect();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            // Listed a moment ago: only a concurrent change of the upper makes it vanish.
            if let Some(c) = self.child(dir, &n)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Look a merged path up.
    pub fn lookup(&self, rel: &Path) -> Result<Option<Node>> {
        let mut n = self.root()?;
        for c in rel.components() {
            if !is_dir(&n.st) {
                return Ok(None);
            }
            match self.child(&n, c.as_os_str())? {
                Some(x) => n = x,
                None => return Ok(None),
            }
        }
        Ok(Some(n))
    }

    /// What directory `rel` of the top layer records, and its (opaque, redirected) markers.
    fn top_records(&self, rel: &Path) -> Result<Vec<Recorded>> {
        self.res
            .recorded(0, rel)
            .map_err(|e| self.err("listing", &(0, rel.to_path_buf()), e))
    }

    fn top_markers(&self, rel: &Path) -> Result<(bool, bool)> {
        let loc = (0, rel.to_path_buf());
        let (opaque, redirect) = self
            .res
            .dir_markers(&loc)
            .map_err(|e| self.err("reading the overlay xattrs of", &loc, e))?;
        Ok((opaque, redirect.is_some()))
    }

    fn must_lookup(&self, rel: &Path) -> Result<Node> {
        self.lookup(rel)?
            .ok_or_else(|| vanished(&self.paths[0], rel))
    }

    /// `container diff` of this stack (top = the container's upper) against `lower` (the
    /// image alone): A/C/D per path, sorted. Every path of the image the container no
    /// longer shows is D at its topmost such ancestor; a renamed directory is A (C over an
    /// image entry) and what it shows is set against the image at its new path (its old
    /// path is D by the rule before).
    pub fn diff(&self, lower: &Stack) -> Result<Vec<Change>> {
        let mut out = Vec::new();
        let (here, below) = (self.root()?, lower.root()?);
        self.hidden_children(lower, Some(&below), &here, &mut out)?;
        self.diff_dir(lower, &here, Some(&below), &mut out)?;
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The changes under directory `dir` of this stack; `below` is the image's entry at
    /// the same path, if any (both walked down together, never looked up from the root).
    fn diff_dir(
        &self,
        lower: &Stack,
        dir: &Node,
        below: Option<&Node>,
        out: &mut Vec<Change>,
    ) -> Result<()> {
        for r in self.top_records(&dir.rel)? {
            // A deletion's D comes from the directory's hidden children.
            let Recorded::Entry(name, st) = r else {
                continue;
            };
            let p = dir.rel.join(&name);
            let here = self
                .child(dir, &name)?
                .ok_or_else(|| vanished(&self.paths[0], &p))?;
            let under = image_child(lower, below, &name)?;
            // What the image had in a directory here and the container no longer shows:
            // whited out, or hidden without a whiteout per name (an opaque or renamed dir,
            // a dir inside one, a non-directory put in its place).
            self.hidden_children(lower, under.as_ref(), &here, out)?;
            out.push(change(&p, if under.is_some() { 'C' } else { 'A' }));
            if !is_dir(&st) {
                continue;
            }
            if self.top_markers(&p)?.1 {
                // Renamed here (or left marked by a rename that failed, as the kernel
                // leaves it): its children come from wherever it came from.
                self.diff_merged(lower, &here, under.as_ref(), out)?;
            } else {
                self.diff_dir(lower, &here, under.as_ref(), out)?;
            }
        }
        Ok(())
    }

    /// The changes under `dir`, a directory of a redirected subtree: its children may come
    /// from any path of the lower layers, so every merged child is set against the image's
    /// entry at the same path (`below`), not only what the upper records.
    fn diff_merged(
        &self,
        lower: &Stack,
        dir: &Node,
        below: Option<&Node>,
        out: &mut Vec<Change>,
    ) -> Result<()> {
        for c in self.children(dir)? {
            let under = image_child(lower, below, c.rel.file_name().unwrap_or_default())?;
            if under.as_ref().is_some_and(|u| same_entry(&c, u)) {
                // The image's own entry at its own path, and so all under it.
                continue;
            }
            self.hidden_children(lower, under.as_ref(), &c, out)?;
            out.push(change(&c.rel, if under.is_some() { 'C' } else { 'A' }));
            if is_dir(&c.st) {
                self.diff_merged(lower, &c, under.as_ref(), out)?;
            }
        }
        Ok(())
    }

    /// D for every child the image's directory `below` had that `here` (this stack's entry
    /// at the same path) no longer shows.
    fn hidden_children(
        &self,
        lower: &Stack,
        below: Option<&Node>,
        here: &Node,
        out: &mut Vec<Change>,
    ) -> Result<()> {
        let Some(below) = below.filter(|b| is_dir(&b.st)) else {
            return Ok(());
        };
        for c in lower.children(below)? {
            if self
                .child(here, c.rel.file_name().unwrap_or_default())?
                .is_none()
            {
                out.push(change(&c.rel, 'D'));
            }
        }
        Ok(())
    }

    /// The top layer's changes as a layer tar (OCI whiteouts for deletions,
    /// `.wh..wh..opq` for opaque dirs). A layer tar has no redirects, so a renamed
    /// directory is written as an opaque dir with its whole merged contents; its old path
    /// is deleted by the whiteout the rename left there.
    pub fn layer_tar<W: Write>(&self, rel: &Path, t: &mut TarOut<W>) -> Result<()> {
        for r in self.top_records(rel)? {
            let (name, st) = match r {
                Recorded::Deleted(n) => {
                    t.whiteout(&rel.join(n))?;
                    continue;
                }
                Recorded::Entry(n, st) => (n, st),
            };
            let p = rel.join(&name);
            t.entry(self, 0, &p, &st, &p)?;
            if !is_dir(&st) {
                continue;
            }
            let (opaque, redirected) = self.top_markers(&p)?;
            if redirected {
                t.opaque(&p)?;
                t.merged_subtree(self, &self.must_lookup(&p)?)?;
                continue;
            }
            if opaque {
                t.opaque(&p)?;
            }
            self.layer_tar(&p, t)?;
        }
        Ok(())
    }
}
