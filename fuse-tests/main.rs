//! The integration tests: every test here mounts for real (FUSE and kernel overlayfs).

mod common;
mod containers;
mod overlay;
mod podman;
mod registry;
mod store;
