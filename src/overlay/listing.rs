//! Directory listings without open directory handles: the kernel sends no OPENDIR or
//! RELEASEDIR (`FUSE_NO_OPENDIR_SUPPORT`) and caches the listing itself, so READDIR comes
//! with no handle. Each listing is a merged snapshot taken when a reader starts at offset
//! 0, named by the offsets it hands out (`id << 32 | index of the next entry`): the
//! reader's next READDIR finds the same snapshot, so offsets stay stable across getdents
//! calls and seekdir/telldir, as they did with one snapshot per open directory.

use super::{DirEntry, OverlayFs, Res};
use dashmap::DashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Snapshots kept for readers that have not reached the end (a reader that stops early,
/// `ls | head`, leaves one behind); the oldest go first beyond this many, or beyond this
/// many entries in all (a reader whose snapshot went finds a fresh one at its index).
const KEPT: usize = 1024;
const KEPT_ENTRIES: usize = 1 << 20;
/// Listing ids stay below 2^31, so an offset stays a positive `off_t`.
const ID_MASK: u64 = (1 << 31) - 1;

#[derive(Debug)]
struct Snapshot {
    ino: u64,
    entries: Arc<Vec<DirEntry>>,
}

/// The snapshots of the listings being read.
#[derive(Debug, Default)]
pub struct Listings {
    snaps: DashMap<u64, Snapshot, crate::fasthash::FastState>,
    next: AtomicU64,
    /// Entries in the kept snapshots.
    held: AtomicUsize,
}

/// What one READDIR answers from.
#[derive(Debug)]
pub struct Listing {
    pub entries: Arc<Vec<DirEntry>>,
    /// The index of the first entry to send.
    pub start: usize,
    id: u64,
}

impl Listing {
    /// The offset to send with entry `i`: where the next READDIR goes on.
    pub fn offset_after(&self, i: usize) -> u64 {
        (self.id << 32) | (i as u64 + 1)
    }
}

impl Listings {
    fn keep(&self, ino: u64, entries: Arc<Vec<DirEntry>>) -> u64 {
        let id = 1 + self.next.fetch_add(1, Ordering::Relaxed) % ID_MASK;
        let n = entries.len();
        while !self.snaps.is_empty()
            && (self.snaps.len() >= KEPT || self.held.load(Ordering::Relaxed) + n > KEPT_ENTRIES)
        {
            // Ids grow with time (until they wrap): the smallest distance back from this
            // one is the newest, the largest the oldest.
            let age = |k: u64| id.wrapping_sub(k) & ID_MASK;
            let oldest = self.snaps.iter().map(|e| *e.key()).max_by_key(|k| age(*k));
            match oldest {
                Some(k) => self.drop_snapshot(k),
                None => break,
            }
        }
        self.held.fetch_add(n, Ordering::Relaxed);
        if let Some(old) = self.snaps.insert(id, Snapshot { ino, entries }) {
            self.held.fetch_sub(old.entries.len(), Ordering::Relaxed);
        }
        id
    }

    fn drop_snapshot(&self, id: u64) {
        if let Some((_, s)) = self.snaps.remove(&id) {
            self.held.fetch_sub(s.entries.len(), Ordering::Relaxed);
        }
    }
}

impl OverlayFs {
    /// READDIR of directory `ino` at `offset`: offset 0 takes a fresh snapshot (so a
    /// rewind sees changes, as on other filesystems); any other goes on in the snapshot
    /// the offset came from, or, if that is gone, in a fresh one at the same index. The
    /// READDIR that finds nothing left (the one that ends every listing) lets it go.
    pub fn readdir(&self, ino: u64, offset: u64) -> Res<Listing> {
        let (id, index) = (offset >> 32, (offset & 0xffff_ffff) as usize);
        let kept = match offset {
            0 => None,
            _ => self
                .listings
                .snaps
                .get(&id)
                .filter(|s| s.ino == ino)
                .map(|s| Arc::clone(&s.entries)),
        };
        let (entries, id) = match kept {
            Some(e) => (e, id),
            None => {
                let node = self.node(ino)?;
                if !node.is_dir() {
                    return Err(super::Errno::ENOTDIR);
                }
                let e = Arc::new(self.snapshot_dir(&node)?);
                if index >= e.len() && offset != 0 {
                    (e, 0)
                } else {
                    let id = self.listings.keep(ino, Arc::clone(&e));
                    (e, id)
                }
            }
        };
        if index >= entries.len() {
            self.listings.drop_snapshot(id);
        }
        Ok(Listing {
            entries,
            start: if offset == 0 { 0 } else { index },
            id,
        })
    }

    /// OPENDIR, on kernels that still send it: nothing to set up, `ino` must be a
    /// directory.
    pub fn node_is_dir(&self, ino: u64) -> Res<()> {
        if self.node(ino)?.is_dir() {
            Ok(())
        } else {
            Err(super::Errno::ENOTDIR)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: &str) -> DirEntry {
        DirEntry {
            name: n.into(),
            ino: 1,
            dtype: libc::DT_REG,
            layer: 0,
        }
    }

    #[test]
    fn offsets_name_their_snapshot_and_the_oldest_goes_first() {
        let l = Listings::default();
        let first = l.keep(7, Arc::new(vec![entry("a")]));
        let listing = Listing {
            entries: Arc::new(Vec::new()),
            start: 0,
            id: first,
        };
        let off = listing.offset_after(4);
        assert_eq!((off >> 32, off & 0xffff_ffff), (first, 5));
        assert!(i64::try_from(off).is_ok(), "offsets are positive off_t");
        for i in 0..KEPT as u64 {
            l.keep(i, Arc::new(Vec::new()));
        }
        assert_eq!(l.snaps.len(), KEPT);
        assert!(
            !l.snaps.contains_key(&first),
            "the oldest snapshot is dropped first"
        );
    }

    #[test]
    fn entries_held_stay_under_the_bound() {
        let l = Listings::default();
        let big = |n: usize| Arc::new((0..n).map(|_| entry("x")).collect::<Vec<_>>());
        let a = l.keep(1, big(KEPT_ENTRIES / 2));
        let b = l.keep(2, big(KEPT_ENTRIES / 2));
        assert_eq!(l.held.load(Ordering::Relaxed), KEPT_ENTRIES);
        let c = l.keep(3, big(10));
        assert!(!l.snaps.contains_key(&a) && l.snaps.contains_key(&b) && l.snaps.contains_key(&c));
        assert_eq!(l.held.load(Ordering::Relaxed), KEPT_ENTRIES / 2 + 10);
        // One listing bigger than the bound is still kept (its reader needs it).
        let d = l.keep(4, big(KEPT_ENTRIES + 1));
        assert_eq!(l.snaps.len(), 1);
        assert!(l.snaps.contains_key(&d));
        l.drop_snapshot(d);
        assert_eq!(l.held.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn ids_wrap_below_2_pow_31() {
        let l = Listings::default();
        l.next.store(ID_MASK - 1, Ordering::Relaxed);
        let a = l.keep(1, Arc::new(Vec::new()));
        let b = l.keep(1, Arc::new(Vec::new()));
        assert_eq!((a, b), (ID_MASK, 1));
    }
}
