//! MountPlan: the one value that crosses from the image store to the union filesystem.

use std::path::PathBuf;

/// What to mount: a stack of read-only lower dirs plus an optional writable upper.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MountPlan {
    /// Lower layer directories, top-most first (the order of `lowerdir=`).
    pub lowers: Vec<PathBuf>,
    /// Writable upper directory; `None` makes a read-only mount.
    pub upper: Option<PathBuf>,
    /// Work directory on the same filesystem as `upper` (required with `upper`).
    pub work: Option<PathBuf>,
}
