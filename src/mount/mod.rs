//! Turning a MountPlan plus options into a running FUSE session: validation, the
//! daemon/foreground split, readiness signalling and clean unmount on signals.

pub mod options;
pub mod plan;

pub use options::MountOptions;
pub use plan::MountPlan;

use std::path::PathBuf;

/// Everything needed to start one mount.
#[derive(Debug, Clone)]
pub struct MountRequest {
    pub plan: MountPlan,
    pub mountpoint: PathBuf,
    pub options: MountOptions,
    /// Stay in the foreground (`-f`); otherwise return once the mount is ready.
    pub foreground: bool,
}

/// Mount and serve. Returns when the mount is ready (background) or when it ends
/// (foreground). The error names the path and the reason.
pub fn run(req: MountRequest) -> Result<(), String> {
    let _ = req;
    Err("mounting is not implemented yet".to_string())
}
