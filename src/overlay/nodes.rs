//! The inode table: ino -> node (names it is reachable by, where its data lives), lookup
//! counts and forget, and the mapping from real files to stable inode numbers.
//!
//! Inode numbers are derived from the real file: `((fs_index + 1) << 48) | st_ino`, so
//! they are unique across layers and the same every time a name is looked up. A copy-up
//! records `upper (dev, ino) -> original ino`, so copy-up never changes a file's number.
//!
//! Each name of a lower hard link is a node of its own (as each is an inode of its own in
//! kernel overlayfs without `index`): a node id per name, one number shown for all of
//! them ([`Node::shown`]). Copying one up breaks the link for that name only, so the
//! kernel may cache every name.

use super::{Errno, Handle, Res};
use crate::fasthash::FastState;
use crate::format::resolve::Loc;
use dashmap::DashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

pub const ROOT_INO: u64 = 1;
const FRESH_BASE: u64 = 0x7f00_0000_0000_0000;
const INO_MASK: u64 = (1 << 48) - 1;

/// Which node id a looked-up entry gets.
#[derive(Debug, Clone, Copy)]
pub enum NodeId {
    /// The file's own number (derived from its real inode, or remembered).
    Ino(u64),
    /// A name of a lower hard link: an id of its own, showing the file's number.
    Name { shown: u64 },
}

/// Where a node lives and by which names it is reachable.
#[derive(Debug, Clone, Default)]
pub struct NodeState {
    /// (parent ino, name) pairs; empty once every name is gone (unlinked but open).
    pub aliases: Vec<(u64, OsString)>,
    /// Present in the upper layer at its merged path.
    pub upper: bool,
    /// Directories: contributing lower dirs, top-first. Others: the lower origin (<= 1).
    pub lowers: Vec<Loc>,
    /// The real file currently shown: (st_dev, st_ino).
    pub backing: (u64, u64),
}

#[derive(Debug)]
pub struct Node {
    /// The node id the kernel knows it by.
    pub ino: u64,
    /// The inode number it shows (`st_ino`): `ino`, but for a lower hard link's name the
    /// number every name of that file shows (a number of its own once copied up).
    shown: AtomicU64,
    /// Known to have no `security.capability`: the kernel asks before every write and
    /// chown (FUSE clears its "no privileges to drop" flag on each attribute update),
    /// and a file gets one only by a SETXATTR through the mount (lower files never
    /// change; a copy-up copies what the lower file had; a chown drops it).
    pub caps_absent: std::sync::atomic::AtomicBool,
    /// S_IFMT bits; a node never changes type.
    pub kind: u32,
    pub state: RwLock<NodeState>,
    pub lookups: AtomicU64,
    /// Held while this node is being copied up (one copy, many waiters).
    pub copy_lock: Mutex<()>,
    /// Its open files: the way to reach it once every name is gone (unlinked or
    /// renamed over while open), as the kernel reaches an open inode.
    pub open: Mutex<Vec<Weak<Handle>>>,
    /// A directory removed from the upper layer while the kernel still holds it (an
    /// open fd, a working directory): the removed directory itself, still stat-able.
    pub removed_dir: std::sync::OnceLock<Arc<std::fs::File>>,
}

impl Node {
    /// The inode number it shows (`st_ino`).
    pub fn shown(&self) -> u64 {
        self.shown.load(Ordering::Relaxed)
    }

    pub fn is_dir(&self) -> bool {
        self.kind == libc::S_IFDIR
    }

    /// A snapshot of the state (short read lock).
    pub fn snap(&self) -> NodeState {
        match self.state.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Look at the state under a short read lock, without copying it.
    pub fn with<R>(&self, f: impl FnOnce(&NodeState) -> R) -> R {
        match self.state.read() {
            Ok(g) => f(&g),
            Err(p) => f(&p.into_inner()),
        }
    }

    /// Remember an open file of this node (dead entries are dropped on the way).
    pub fn add_open(&self, h: &Arc<Handle>) {
        let mut v = self.open.lock().unwrap_or_else(|p| p.into_inner());
        v.retain(|w| w.strong_count() > 0);
        v.push(Arc::downgrade(h));
    }

    /// An open file of this node; `upper` asks for one on its upper copy.
    pub fn open_file(&self, upper: bool) -> Option<Arc<Handle>> {
        let v = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let live = v.iter().filter_map(Weak::upgrade);
        let mut fallback = None;
        for h in live {
            if h.upper || h.upper_copy.get().is_some() {
                return Some(h);
            }
            fallback.get_or_insert(h);
        }
        if upper { None } else { fallback }
    }

    pub fn update<R>(&self, f: impl FnOnce(&mut NodeState) -> R) -> R {
        match self.state.write() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }
}

/// All live nodes.
#[derive(Debug, Default)]
pub struct NodeTable {
    nodes: DashMap<u64, Arc<Node>, FastState>,
    /// Real file (dev, ino) -> presented ino, for copied-up files and alias conflicts.
    ino_map: DashMap<(u64, u64), u64, FastState>,
    /// The other way round: a number some (dev, ino) holds through `ino_map`. A derived
    /// number held so (a copied-up file keeps its lower number) is never handed to
    /// another file, even while no node of it is alive.
    claimed: DashMap<u64, (u64, u64), FastState>,
    /// (parent ino, name) -> child ino, for the names the kernel knows.
    names: DashMap<(u64, OsString), u64, FastState>,
    /// The number shown by a node id that is not its own number and outlives its node:
    /// a lower hard link's name copied up (`ino_map` leads its copy back to that id).
    shown_of: DashMap<u64, u64, FastState>,
    fresh: AtomicU64,
    /// Nodes dropped so far (memory goes back to the system every so often).
    dropped: AtomicU64,
}

impl NodeTable {
    pub fn get(&self, ino: u64) -> Option<Arc<Node>> {
        self.nodes.get(&ino).map(|n| Arc::clone(&n))
    }

    /// The derived inode number of a real file in filesystem `fs_index`.
    pub fn derive(fs_index: u64, real_ino: u64) -> u64 {
        ((fs_index + 1) << 48) | (real_ino & INO_MASK)
    }

    /// The inode number to present for a real file, without creating a node.
    pub fn ino_for(&self, backing: (u64, u64), fs_index: u64) -> u64 {
        if let Some(i) = self.ino_map.get(&backing) {
            return *i;
        }
        let d = Self::derive(fs_index, backing.1);
        let taken = self.claimed.get(&d).is_some_and(|b| *b != backing)
            || self
                .nodes
                .get(&d)
                .is_some_and(|n| n.with(|s| s.backing) != backing);
        if !taken {
            return d;
        }
        // The derived number belongs to another file (a copied-up hard link keeps it):
        // give this one a number of its own, remembered for the mount's life.
        self.claim_fresh(backing, false)
    }

    /// The inode number for a file the upper filesystem has just made (create, mkdir,
    /// mknod, symlink). Its real inode number may be one the filesystem freed a moment
    /// ago, while the kernel still holds the old file's node (open, or its FORGET not
    /// yet here): a node id must name one file for as long as the kernel holds it, so
    /// when the derived number is taken, the new file gets a number of its own.
    pub fn ino_for_new(&self, backing: (u64, u64), fs_index: u64) -> u64 {
        let d = Self::derive(fs_index, backing.1);
        if !self.nodes.contains_key(&d)
            && !self.ino_map.contains_key(&backing)
            && !self.claimed.contains_key(&d)
        {
            return d;
        }
        // Whatever was mapped to this (dev, ino) before was another, dead file.
        self.claim_fresh(backing, true)
    }

    /// A new number for `backing`; unless `replace`, one another thread gave it first.
    fn claim_fresh(&self, backing: (u64, u64), replace: bool) -> u64 {
        let f = FRESH_BASE + self.fresh.fetch_add(1, Ordering::Relaxed);
        if replace {
            self.map_backing(backing, f);
            return f;
        }
        let got = *self.ino_map.entry(backing).or_insert(f);
        if got == f {
            self.claimed.insert(f, backing);
        }
        got
    }

    /// Remember that `backing` is shown as `ino` (after copy-up or create).
    pub fn map_backing(&self, backing: (u64, u64), ino: u64) {
        if let Some(old) = self.ino_map.insert(backing, ino)
            && old != ino
        {
            self.claimed.remove_if(&old, |_, b| *b == backing);
        }
        self.claimed.insert(ino, backing);
    }

    /// Forget that `backing` is shown as some ino (its next lookup derives a new one).
    pub fn unmap_backing(&self, backing: (u64, u64)) {
        if let Some((_, ino)) = self.ino_map.remove(&backing) {
            self.claimed.remove_if(&ino, |_, b| *b == backing);
        }
    }

    /// [`Self::unmap_backing`] only while `backing` is shown as `ino`.
    fn unmap_backing_of(&self, backing: (u64, u64), ino: u64) {
        if self.ino_map.remove_if(&backing, |_, v| *v == ino).is_some() {
            self.claimed.remove_if(&ino, |_, b| *b == backing);
        }
    }

    /// Detach a node from every name it had: the kernel will look the names up again.
    pub fn drop_all_aliases(&self, ino: u64) {
        if let Some(node) = self.get(ino) {
            let aliases = node.update(|s| std::mem::take(&mut s.aliases));
            for (p, n) in aliases {
                self.names.remove_if(&(p, n), |_, v| *v == ino);
            }
        }
    }

    /// Find or create the node for a looked-up entry and count the lookup. The count
    /// is taken under the table's lock for `ino`, as `forget` drops it, so a FORGET
    /// racing this lookup cannot remove the node this lookup hands to the kernel. A node
    /// found under `ino` that is another file (another type, or an upper file at another
    /// (dev, ino)) is never reused: the entry gets a number of its own.
    pub fn lookup_or_insert(
        &self,
        id: NodeId,
        kind: u32,
        parent: u64,
        name: &OsString,
        fresh: NodeState,
    ) -> Arc<Node> {
        let (mut ino, shown) = match id {
            NodeId::Ino(i) => (i, None),
            NodeId::Name { shown } => (self.name_id(parent, name, shown, &fresh), Some(shown)),
        };
        let node = loop {
            let entry = self.nodes.entry(ino).or_insert_with(|| {
                let shown = shown.or_else(|| self.shown_of.get(&ino).map(|s| *s));
                Arc::new(Node {
                    ino,
                    shown: AtomicU64::new(shown.unwrap_or(ino)),
                    caps_absent: Default::default(),
                    kind,
                    state: RwLock::new(fresh.clone()),
                    lookups: AtomicU64::new(0),
                    copy_lock: Mutex::new(()),
                    open: Mutex::new(Vec::new()),
                    removed_dir: std::sync::OnceLock::new(),
                })
            });
            let other_file = entry.kind != kind
                || entry.with(|s| s.upper && fresh.upper && s.backing != fresh.backing);
            if other_file && ino != ROOT_INO {
                drop(entry);
                log::debug!("node {ino:#x} is another file: a new number for {name:?}");
                ino = self.claim_fresh(fresh.backing, true);
                continue;
            }
            entry.lookups.fetch_add(1, Ordering::AcqRel);
            break Arc::clone(&entry);
        };
        self.names.insert((parent, name.clone()), ino);
        node.update(|s| {
            if !s.aliases.iter().any(|(p, n)| *p == parent && n == name) {
                s.aliases.push((parent, name.clone()));
            }
            // A lookup tells the truth about where the entry lives now.
            if s.backing != fresh.backing && !s.upper {
                s.upper = fresh.upper;
                s.lowers = fresh.lowers.clone();
                s.backing = fresh.backing;
                // Another file: what was known of the old one does not hold.
                node.caps_absent.store(false, Ordering::Relaxed);
            }
        });
        node
    }

    /// The node id of a lower hard link's name: the one it has while the kernel holds
    /// it, else a new one.
    fn name_id(&self, parent: u64, name: &OsString, shown: u64, fresh: &NodeState) -> u64 {
        let known = self.names.get(&(parent, name.clone())).map(|i| *i);
        if let Some(i) = known
            && self.get(i).is_some_and(|n| {
                i != shown
                    && n.shown() == shown
                    && n.with(|s| !s.upper && s.backing == fresh.backing)
            })
        {
            return i;
        }
        FRESH_BASE + self.fresh.fetch_add(1, Ordering::Relaxed)
    }

    /// A lower hard link's name was copied up as `copy` of filesystem `fs_index`: the
    /// copy is another file than the names left on the lower one, and shows a number of
    /// its own (as in kernel overlayfs), also once the kernel forgets the node and
    /// `ino_map` leads the copy back to its id. False for any other node.
    pub fn give_own_number(&self, node: &Node, fs_index: u64, copy: u64) -> bool {
        if node.shown() == node.ino {
            return false;
        }
        let own = Self::derive(fs_index, copy);
        node.shown.store(own, Ordering::Relaxed);
        self.shown_of.insert(node.ino, own);
        true
    }

    /// The number node id `ino` shows, whether or not its node is alive.
    pub fn shown_number(&self, ino: u64) -> u64 {
        self.shown_of.get(&ino).map_or(ino, |s| *s)
    }

    /// Insert the root node.
    pub fn insert_root(&self, st: NodeState) {
        self.nodes.insert(
            ROOT_INO,
            Arc::new(Node {
                ino: ROOT_INO,
                shown: AtomicU64::new(ROOT_INO),
                caps_absent: Default::default(),
                kind: libc::S_IFDIR,
                state: RwLock::new(st),
                lookups: AtomicU64::new(1),
                copy_lock: Mutex::new(()),
                open: Mutex::new(Vec::new()),
                removed_dir: std::sync::OnceLock::new(),
            }),
        );
    }

    /// Drop `n` lookups; the node goes away at zero. The count drops under the table's
    /// lock for `ino` (see `lookup_or_insert`).
    pub fn forget(&self, ino: u64, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        let removed = self.nodes.remove_if(&ino, |_, node| {
            let cur = node.lookups.load(Ordering::Acquire);
            node.lookups.store(cur.saturating_sub(n), Ordering::Release);
            if cur > n {
                return false;
            }
            // Its names go while the id is still locked: a lookup that makes a new node
            // under the same id (it waits for this lock) must keep the names it adds.
            for (p, n) in node.snap().aliases {
                self.names.remove_if(&(p, n), |_, v| *v == ino);
            }
            true
        });
        if removed.is_some() {
            // After the kernel forgets a big walk, hand the freed memory back.
            if self.dropped.fetch_add(1, Ordering::Relaxed) % 8192 == 8191 {
                // Hash tables keep their peak capacity: shrink them once mostly empty.
                if self.nodes.len() * 4 < self.nodes.capacity() {
                    self.nodes.shrink_to_fit();
                    self.names.shrink_to_fit();
                }
                crate::sys::malloc_trim();
            }
        }
    }

    /// The merged path of a node ("" for the root), through its first alias.
    pub fn path_of(&self, ino: u64) -> Res<PathBuf> {
        let mut names: Vec<OsString> = Vec::new();
        let mut cur = ino;
        let mut depth = 0;
        while cur != ROOT_INO {
            let node = self.get(cur).ok_or(Errno::ESTALE)?;
            let (parent, name) = node
                .with(|s| s.aliases.first().cloned())
                .ok_or(Errno::ENOENT)?;
            names.push(name);
            cur = parent;
            depth += 1;
            if depth > 4096 {
                return Err(Errno::ELOOP);
            }
        }
        let mut p = PathBuf::new();
        for n in names.iter().rev() {
            p.push(n);
        }
        Ok(p)
    }

    /// Rename bookkeeping: the alias (old_parent, old) becomes (new_parent, new).
    pub fn rename_alias(&self, ino: u64, old: (u64, &OsString), new: (u64, &OsString)) {
        if let Some(node) = self.get(ino) {
            node.update(|s| {
                s.aliases.retain(|(p, n)| !(*p == old.0 && n == old.1));
                s.aliases.insert(0, (new.0, new.1.clone()));
            });
        }
        self.names
            .remove_if(&(old.0, old.1.clone()), |_, v| *v == ino);
        self.names.insert((new.0, new.1.clone()), ino);
    }

    /// Unlink bookkeeping: the alias goes away. `last_link`: the real file had no other
    /// name (an upper hard link the kernel has not looked up keeps the file and its
    /// number).
    pub fn drop_alias(&self, ino: u64, parent: u64, name: &OsString, last_link: bool) {
        if let Some(node) = self.get(ino) {
            let gone = node.update(|s| {
                s.aliases.retain(|(p, n)| !(*p == parent && n == name));
                if s.aliases.is_empty() && s.upper && last_link {
                    // The upper file is gone (or going): its real inode number may be
                    // reused by a new file, which must not be mistaken for this node.
                    Some(std::mem::take(&mut s.backing))
                } else {
                    None
                }
            });
            if let Some(b) = gone {
                self.unmap_backing_of(b, ino);
            }
        }
        self.names
            .remove_if(&(parent, name.clone()), |_, v| *v == ino);
    }

    /// The live child node reachable as (parent, name), if the kernel knows it.
    pub fn child(&self, parent: u64, name: &OsString) -> Option<Arc<Node>> {
        let ino = *self.names.get(&(parent, name.clone()))?;
        self.get(ino)
    }
}
