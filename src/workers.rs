//! A few worker threads over an index range: `f(0)`, `f(1)`, ... run on up to `threads`
//! threads, each taking the next index when it is done, results back in index order. The
//! store's layer intake and a push's layer uploads share it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `f(i)` for every `i` in `0..n`, on up to `threads` threads (at least one). A result is
/// `None` only if the thread that computed it could not hand it back (its slot's lock was
/// poisoned by a panic elsewhere).
pub fn map_indexed<T: Send>(
    n: usize,
    threads: usize,
    f: impl Fn(usize) -> T + Sync,
) -> Vec<Option<T>> {
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<T>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1).min(n) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        break;
                    }
                    let r = f(i);
                    if let Ok(mut g) = slots.lock() {
                        g[i] = Some(r);
                    }
                }
            });
        }
    });
    slots.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_index_once_in_order() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let out = super::map_indexed(100, 3, |i| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            i * 2
        });
        assert_eq!(calls.into_inner(), 100);
        assert_eq!(out, (0..100).map(|i| Some(i * 2)).collect::<Vec<_>>());
        assert!(super::map_indexed(0, 3, |i| i).is_empty());
        assert_eq!(super::map_indexed(2, 0, |i| i), vec![Some(0), Some(1)]);
    }
}
