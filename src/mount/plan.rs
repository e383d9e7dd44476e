//! MountPlan: the one value that crosses from the image store to the union filesystem.
//! The store hands out complete plans (as a snapshotter hands out mounts): what to stack,
//! whether it is writable, what the mount is called, what to remove when it is gone. The
//! caller adds only its own choices (`allow_other`...) and runs it.

use super::{MountOptions, MountRequest};
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
    /// Mount read-only (writes get EROFS) whatever the caller's options say.
    pub read_only: bool,
    /// The mount's source in /proc/self/mountinfo (`fsname=`), by which the store finds
    /// its mounts again (`container rm` refuses a mounted container).
    pub fsname: Option<String>,
    /// A directory made for this mount alone (a throwaway upper and work), removed once
    /// the mount is gone, or at once if it never starts (`remove_on_unmount=`).
    pub throwaway: Option<PathBuf>,
}

impl MountPlan {
    /// The request that runs this plan on `mountpoint` in the background. `options` are
    /// the caller's own choices (`allow_other`...); the plan's read-only flag, fsname and
    /// throwaway dir go over them.
    pub fn into_request(self, mountpoint: PathBuf, mut options: MountOptions) -> MountRequest {
        options.read_only |= self.read_only;
        if self.fsname.is_some() {
            options.fsname = self.fsname.clone();
        }
        if self.throwaway.is_some() {
            options.remove_on_unmount = self.throwaway.clone();
        }
        MountRequest {
            plan: self,
            mountpoint,
            options,
            foreground: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_goes_over_the_callers_options() {
        let plan = MountPlan {
            lowers: vec![PathBuf::from("/l")],
            read_only: true,
            fsname: Some("layerfs:abc".into()),
            throwaway: Some(PathBuf::from("/tmp/rw")),
            ..Default::default()
        };
        let o = MountOptions {
            allow_other: true,
            fsname: Some("other".into()),
            ..Default::default()
        };
        let req = plan.clone().into_request(PathBuf::from("/mnt"), o);
        assert!(req.options.read_only && req.options.allow_other && !req.foreground);
        assert_eq!(req.options.fsname.as_deref(), Some("layerfs:abc"));
        assert_eq!(req.options.remove_on_unmount, plan.throwaway);
        assert_eq!(req.plan, plan);
        // A plan without them leaves the caller's.
        let req = MountPlan::default().into_request(
            PathBuf::from("/mnt"),
            MountOptions {
                fsname: Some("mine".into()),
                ..Default::default()
            },
        );
        assert_eq!(req.options.fsname.as_deref(), Some("mine"));
        assert!(!req.options.read_only);
    }
}
