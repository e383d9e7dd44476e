//! Name indexes of lower directories: lower layers do not change under a resolver, so
//! once a directory's names are known (from a listing, or read after a few lookups that
//! found nothing there), a lookup of a name it does not hold, and of its `.wh.` form,
//! is answered from memory instead of by two failing `fstatat`s per layer.
//!
//! An index keeps 64-bit hashes of the names, sorted: a hash it lacks is a name the directory
//! lacks; a hash it has (a real name, or rarely another one's) sends the lookup to the
//! directory as before. Directories with many entries are not indexed (a lookup there
//! costs the same either way, the index would not), nor are names beyond a total cap.

use crate::fasthash::FastHasher;
use crate::format::whiteout::WH_PREFIX;
use std::ffi::OsStr;
use std::hash::Hasher;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Directories with more entries are not indexed.
pub const MAX_ENTRIES: usize = 4096;
/// Names indexed per resolver at most (8 bytes each, plus the table's slack).
const MAX_TOTAL: usize = 1 << 21;
/// Failed lookups in one directory before its names are read to index it.
pub const MISSES_BEFORE_INDEX: u32 = 3;

fn hash(name: &[u8]) -> u64 {
    let mut h = FastHasher::default();
    h.write(name);
    h.finish()
}

/// The names of one lower directory, as hashes, sorted (8 bytes a name; a hash table
/// took about 29 with its slack).
#[derive(Debug)]
pub struct NameIndex {
    hashes: Box<[u64]>,
}

/// What an index says of a name.
#[derive(Debug, PartialEq, Eq)]
pub enum Known {
    /// Neither the name nor its `.wh.` form is in the directory.
    Absent,
    /// Ask the directory.
    Maybe,
}

impl NameIndex {
    pub fn knows(&self, name: &OsStr) -> Known {
        let n = name.as_bytes();
        let has = |h: u64| self.hashes.binary_search(&h).is_ok();
        if has(hash(n)) || has(hash(&[WH_PREFIX, n].concat())) {
            Known::Maybe
        } else {
            Known::Absent
        }
    }
}

/// Builds indexes while the resolver's total stays under the cap.
#[derive(Debug, Default)]
pub struct Indexer {
    total: AtomicUsize,
}

impl Indexer {
    /// An index of `names`, or None for a directory too big or past the cap.
    pub fn build<'a>(&self, names: impl ExactSizeIterator<Item = &'a OsStr>) -> Option<NameIndex> {
        let n = names.len();
        if n > MAX_ENTRIES || self.total.fetch_add(n, Ordering::Relaxed) + n > MAX_TOTAL {
            return None;
        }
        let mut hashes: Vec<u64> = names.map(|name| hash(name.as_bytes())).collect();
        hashes.sort_unstable();
        hashes.dedup();
        Some(NameIndex {
            hashes: hashes.into_boxed_slice(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_only_when_neither_form_is_there() {
        let ix = Indexer::default();
        let names = [
            OsStr::new("a"),
            OsStr::new(".wh.gone"),
            OsStr::new("long-name-x"),
        ];
        let idx = ix.build(names.iter().copied()).expect("small dir indexed");
        assert_eq!(idx.knows(OsStr::new("a")), Known::Maybe);
        assert_eq!(
            idx.knows(OsStr::new("gone")),
            Known::Maybe,
            "its whiteout is there"
        );
        assert_eq!(idx.knows(OsStr::new("long-name-x")), Known::Maybe);
        assert_eq!(idx.knows(OsStr::new("b")), Known::Absent);
        assert_eq!(idx.knows(OsStr::new("long-name-y")), Known::Absent);
    }

    #[test]
    fn big_dirs_and_the_total_cap_are_not_indexed() {
        let ix = Indexer::default();
        let many: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("n{i}")).collect();
        assert!(ix.build(many.iter().map(OsStr::new)).is_none());
        ix.total.store(MAX_TOTAL, Ordering::Relaxed);
        assert!(ix.build([OsStr::new("x")].into_iter()).is_none());
    }
}
