//! Side effects queued by a request for the FUSE adapter to report before that request is
//! answered, kept per serving thread so one request's reply never waits on (or takes)
//! another's.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, ThreadId};

#[derive(Debug)]
pub struct PerRequest<T> {
    items: Mutex<Vec<(ThreadId, T)>>,
    /// Length of `items`, read without the lock (almost always 0).
    len: AtomicUsize,
}

impl<T> Default for PerRequest<T> {
    fn default() -> Self {
        PerRequest {
            items: Mutex::new(Vec::new()),
            len: AtomicUsize::new(0),
        }
    }
}

impl<T> PerRequest<T> {
    /// Queue `item` for the request this thread is serving.
    pub fn push(&self, item: T) {
        let mut g = self.items.lock().unwrap_or_else(|p| p.into_inner());
        g.push((thread::current().id(), item));
        self.len.store(g.len(), Ordering::Release);
    }

    /// What the request this thread is serving queued.
    pub fn take(&self) -> Vec<T> {
        if self.len.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        let me = thread::current().id();
        let mut g = self.items.lock().unwrap_or_else(|p| p.into_inner());
        let mut mine = Vec::new();
        for (t, item) in std::mem::take(&mut *g) {
            if t == me {
                mine.push(item);
            } else {
                g.push((t, item));
            }
        }
        self.len.store(g.len(), Ordering::Release);
        mine
    }
}

#[cfg(test)]
mod tests {
    use super::PerRequest;
    use std::sync::Arc;

    #[test]
    fn each_thread_takes_only_what_it_queued() {
        let q = Arc::new(PerRequest::default());
        q.push(1u64);
        let q2 = Arc::clone(&q);
        let other = std::thread::spawn(move || {
            q2.push(2);
            q2.take()
        })
        .join()
        .unwrap();
        assert_eq!(other, vec![2]);
        assert_eq!(q.take(), vec![1]);
        assert!(q.take().is_empty());
    }
}
