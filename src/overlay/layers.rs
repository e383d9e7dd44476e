//! The mount's layer stack: the one resolver over upper + lowers ([`crate::format::resolve`]),
//! the marker forms the upper filesystem permits, and the work directory.
//!
//! Layer indexes: `0` is the upper layer when there is one; lowers follow top-first.

use crate::format::resolve::{Layer, Resolver};
use std::os::fd::OwnedFd;

/// How markers are written in the upper layer (decided by probing the workdir).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteForms {
    /// Whiteouts as char 0:0 devices (else `.wh.NAME` files).
    pub chardev_whiteout: bool,
    /// Prefix for opaque/redirect xattrs: `trusted.overlay.`, `user.overlay.`, or none
    /// (then opaque dirs get a `.wh..wh..opq` file and lower dirs cannot be renamed).
    pub xattr_prefix: Option<&'static str>,
}

impl WriteForms {
    /// Only the OCI forms: `.wh.NAME` files and `.wh..wh..opq` (`whiteouts=oci`, or no
    /// upper layer to write in).
    pub const OCI: WriteForms = WriteForms {
        chardev_whiteout: false,
        xattr_prefix: None,
    };
}

/// The whole stack.
#[derive(Debug)]
pub struct Stack {
    /// Name resolution and listings; lower layers' facts cached (they never change under
    /// a mount).
    pub res: Resolver,
    pub has_upper: bool,
    pub forms: WriteForms,
    /// Work directory (only with an upper layer): `W/layerfs-tmp`.
    pub work: Option<OwnedFd>,
}

impl Stack {
    /// Index of the first lower layer.
    pub fn first_lower(&self) -> usize {
        usize::from(self.has_upper)
    }

    pub fn is_lower(&self, layer: usize) -> bool {
        layer >= self.first_lower()
    }

    /// Every layer, top first.
    pub fn layers(&self) -> &[Layer] {
        &self.res.layers
    }
}
