//! The registry client's error type: what was being done (pulling which reference, from which
//! registry), and why, with the cause kept (an HTTP status with the registry's own error
//! code and message, a TLS or connection failure, a digest mismatch). Never a credential.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A reference, option or config value that is not valid; found before any traffic.
    #[error("{0}")]
    Invalid(String),
    /// The registry answered with an error status. `what` is the request ("GET manifest
    /// v1"), `detail` the registry's own error text (`MANIFEST_UNKNOWN: manifest unknown`).
    #[error("{what}: {}{}", status_text(*.status), detail_text(.detail))]
    Status {
        what: String,
        status: u16,
        detail: String,
    },
    /// No answer at all: connection refused, DNS, TLS, a reset, a timeout.
    #[error("{what}: {cause}")]
    Transport { what: String, cause: String },
    /// Bytes that are not what they claim (digest, size, media type, JSON).
    #[error("{0}")]
    Corrupt(String),
    /// Access denied: no credentials, or wrong ones.
    #[error("{0}")]
    Unauthorized(String),
    /// A local file (config.json, certs.d, the layerfs config) could not be read or written.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An error with the step it happened in.
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },
}

fn status_text(s: u16) -> String {
    let reason = match s {
        400 => "bad request",
        401 => "unauthorized",
        403 => "denied",
        404 => "not found",
        405 => "method not allowed",
        409 => "conflict",
        416 => "range not satisfiable",
        429 => "too many requests",
        500 => "internal server error",
        502 => "bad gateway",
        503 => "service unavailable",
        504 => "gateway timeout",
        _ => "",
    };
    if reason.is_empty() {
        format!("HTTP {s}")
    } else {
        format!("HTTP {s} {reason}")
    }
}

fn detail_text(d: &str) -> String {
    if d.is_empty() {
        String::new()
    } else {
        format!(" ({d})")
    }
}

/// The registry client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }
    pub fn corrupt(msg: impl Into<String>) -> Error {
        Error::Corrupt(msg.into())
    }
    pub fn io(op: &'static str, path: impl AsRef<Path>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.as_ref().to_path_buf(),
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
    /// The innermost error (below every context).
    pub fn root(&self) -> &Error {
        match self {
            Error::Context { source, .. } => source.root(),
            e => e,
        }
    }
    /// The HTTP status, when the registry answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self.root() {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
    /// Worth trying again (a dropped connection, a 5xx, a 429), as opposed to an answer.
    pub fn is_transient(&self) -> bool {
        match self.root() {
            Error::Transport { .. } => true,
            Error::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// `.context(|| ...)` on results.
pub trait Context<T> {
    fn context<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for Result<T> {
    fn context<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| e.context(f()))
    }
}

/// `.io("reading", path)` on `std::io` results.
pub trait ResultExt<T> {
    fn io(self, op: &'static str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> ResultExt<T> for io::Result<T> {
    fn io(self, op: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}
