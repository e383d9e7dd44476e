//! Registry client tests: a real registry (Debian's docker-registry, distribution 2.8) per
//! test on a loopback port, in plain, htpasswd, TLS and token-auth variants; images built in
//! code and pushed by skopeo; layerfs pull/push/search/login checked against skopeo + umoci,
//! the registry's own view, and the store on disk, including every network fault.

// The harness.
mod cli;
mod fixture;
mod http;
mod images;
mod pki;
mod proxy;
mod server;
mod token;

// Its self-tests (skopeo, curl, umoci only), then the product's tests.
mod auth;
mod faults;
mod interop;
mod mirrors;
mod pull;
mod push;
mod search;
mod selftest;

// The store tests' helpers (`St`, running the binary, mount guards), shared as they are.
#[path = "../store/util.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod storeutil;
