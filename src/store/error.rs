//! The store's error type: what failed (the operation and the path or reference) and why
//! (the source error, kept, not flattened into text), so the CLI can print
//! `layerfs: commit c1: reading upper/etc/shadow: Permission denied (os error 13)` and a
//! caller can tell "no such image" from an I/O failure.
//!
//! An enum (`thiserror`) rather than `anyhow`: the store is a library under the CLI, the
//! tests and the registry client, which match on the kind (`NotFound`, `Io`...) and must not
//! need to parse messages.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on `path` failed: `op` says what was being done ("reading", "creating").
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A named thing (image, container, layer, tag) is not in the store.
    #[error("no such {what}: {name}")]
    NotFound { what: &'static str, name: String },
    /// Bad input: a reference, an archive's content, a name, an option. The text names it.
    #[error("{0}")]
    Invalid(String),
    /// JSON that does not parse (or cannot be written), with what it was.
    #[error("{what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// Where the blobs come from failed (a registry, for a pull): its error, kept whole.
    #[error(transparent)]
    Source(Box<dyn std::error::Error + Send + Sync>),
    /// An error with the step it happened in ("commit c1", "layer sha256:ab..").
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error with the operation and the path it was on.
    pub fn io(op: &'static str, path: impl AsRef<Path>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// Bad input, described by `msg`.
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }

    /// A named thing that is not in the store.
    pub fn not_found(what: &'static str, name: impl Into<String>) -> Error {
        Error::NotFound {
            what,
            name: name.into(),
        }
    }

    /// JSON that does not parse or cannot be written; `what` names it.
    pub fn json(what: impl Into<String>, source: serde_json::Error) -> Error {
        Error::Json {
            what: what.into(),
            source,
        }
    }

    /// Wrap with the step it happened in.
    pub fn context(self, context: impl Into<String>) -> Error {
        Error::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }

    /// The innermost I/O error, if the cause is one.
    pub fn io_source(&self) -> Option<&io::Error> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Context { source, .. } => source.io_source(),
            _ => None,
        }
    }

    /// Is the cause a missing image, container, layer or tag?
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound { .. } => true,
            Error::Context { source, .. } => source.is_not_found(),
            _ => false,
        }
    }
}

/// Is this "the path is not there" (ENOENT, or ENOTDIR for a component that is no
/// directory)? Only these make a missing file an answer rather than an error.
pub fn is_absent(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

/// `.io(op, path)` on an `io::Result`, `.context(..)` on a store result.
pub trait ResultExt<T> {
    /// Give an I/O error its operation and path.
    fn io(self, op: &'static str, path: impl AsRef<Path>) -> Result<T>;
    /// As [`ResultExt::io`], but a path that is not there ([`is_absent`]) is `Ok(None)`.
    fn io_absent(self, op: &'static str, path: impl AsRef<Path>) -> Result<Option<T>>;
}

impl<T> ResultExt<T> for io::Result<T> {
    fn io(self, op: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
    fn io_absent(self, op: &'static str, path: impl AsRef<Path>) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(Error::io(op, path, e)),
        }
    }
}

/// `.context(..)` on a store result.
pub trait Context<T> {
    /// Wrap an error with the step it happened in (computed only on error).
    fn context<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| e.into().context(f()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_the_chain() {
        let e: Result<()> = Err(io::Error::from_raw_os_error(libc::EACCES))
            .io("reading", "upper/etc/shadow")
            .context(|| "commit c1");
        let e = e.unwrap_err();
        assert_eq!(
            e.to_string(),
            "commit c1: reading upper/etc/shadow: Permission denied (os error 13)"
        );
        assert_eq!(
            e.io_source().and_then(|s| s.raw_os_error()),
            Some(libc::EACCES)
        );
        let nf = Error::NotFound {
            what: "image",
            name: "busybox".into(),
        }
        .context("rmi");
        assert!(nf.is_not_found());
        assert_eq!(nf.to_string(), "rmi: no such image: busybox");
    }
}
