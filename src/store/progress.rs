//! How the store tells the user how far a long step is, without printing: the CLI passes
//! a reporter (a bar on a terminal); tests, pipes and library callers get [`Silent`].

use std::io::Read;
use std::sync::Arc;

/// Receives progress of long steps (`image load`) and waits (the store lock).
pub trait Progress: Send + Sync {
    /// A step starts: `what` says which ("Loading 2 layer(s)"), `total` is its size in
    /// bytes when known.
    fn start(&self, what: &str, total: Option<u64>);
    /// `n` more bytes of the step are done (called from several threads at once).
    fn advance(&self, n: u64);
    /// The step is over, done or failed.
    fn finish(&self);
    /// The command cannot go on until `what` happens ("another layerfs command to finish
    /// with this store").
    fn waiting(&self, what: &str);
    /// What happens to one layer of an image coming in; `key` is its blob's name in the
    /// source (an archive member, or the blob digest of a registry's layer).
    fn layer(&self, _key: &str, _event: LayerEvent) {}
}

/// One layer's steps, as `docker pull` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerEvent {
    /// It will be fetched ("Pulling fs layer"); its size when known.
    Queued(Option<u64>),
    /// Already in the store: nothing to fetch.
    Exists,
    /// `n` more bytes of it arrived.
    Bytes(u64),
    /// Fetched, verified and unpacked ("Pull complete").
    Done,
    /// It failed (the whole image fails with it).
    Failed,
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _what: &str, _total: Option<u64>) {}
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
    fn waiting(&self, _what: &str) {}
}

/// A reader that reports every byte read through it as progress.
pub struct Reporting<R> {
    inner: R,
    progress: Arc<dyn Progress>,
    key: Option<String>,
}

impl<R> Reporting<R> {
    pub fn new(inner: R, progress: Arc<dyn Progress>) -> Self {
        Reporting {
            inner,
            progress,
            key: None,
        }
    }
    /// Also report the bytes as [`LayerEvent::Bytes`] of the layer `key`.
    pub fn of_layer(mut self, key: &str) -> Self {
        self.key = Some(key.to_string());
        self
    }
}

impl<R: Read> Read for Reporting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        if let Some(k) = &self.key {
            self.progress.layer(k, LayerEvent::Bytes(n as u64));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Default)]
    struct Count(AtomicU64);
    impl Progress for Count {
        fn start(&self, _: &str, _: Option<u64>) {}
        fn advance(&self, n: u64) {
            self.0.fetch_add(n, Ordering::SeqCst);
        }
        fn finish(&self) {}
        fn waiting(&self, _: &str) {}
    }

    #[test]
    fn reads_are_reported() {
        let c = Arc::new(Count::default());
        let mut r = Reporting::new(&b"hello world"[..], c.clone());
        let mut v = Vec::new();
        r.read_to_end(&mut v).unwrap();
        assert_eq!(c.0.load(Ordering::SeqCst), 11);
    }
}
