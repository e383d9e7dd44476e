//! The overlay on-disk format, below both the mount (`overlay/`) and the store (`store/`):
//! every whiteout, opaque and redirect form ([`whiteout`]), the `override_stat` ownership
//! xattr and what an entry presents ([`owner`]), uid/gid mapping ([`idmap`]), and the one
//! resolver of a layer stack ([`resolve`]). Nothing above this module knows a marker form
//! or parses an override.

pub mod idmap;
pub mod owner;
pub mod resolve;
pub mod whiteout;
