//! The union filesystem, checked against kernel overlayfs (see `harness`).
#![allow(dead_code)]
mod access;
mod attrs;
mod copyup;
mod fidelity;
mod hardlinks;
mod harness;
mod lifecycle;
mod lookup;
mod namespace;
mod pjdfs;
mod random;
mod stats;
mod stress;
mod tools;
mod unpriv;
mod whforms;
