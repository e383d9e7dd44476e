//! Image store tests: images built in code (docker-archive, OCI dir, oci-archive), every
//! verb's output and the on-disk layout, hostile archives, concurrency, round trips, the
//! real fixtures in ../shared/fixtures, and mounts through layerfs.

mod build;
mod concurrency;
mod containers;
mod dockerlayout;
mod dockerroot;
mod dockertar;
mod fidelity;
mod fixtures;
mod interop;
mod roundtrip;
mod safety;
mod unprivileged;
mod util;
mod verbs;
