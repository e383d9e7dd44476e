//! Registry client tests: a real registry (Debian's docker-registry, distribution 2.8) per
//! test on a loopback port, in plain, htpasswd, TLS and token-auth variants; images built in
//! code and pushed by skopeo; layerfs pull/push/search/login checked against skopeo + umoci,
//! the registry's own view, and the store on disk, including every network fault.

mod cli;
mod http;
mod images;
mod pki;
mod proxy;
mod selftest;
mod server;
mod token;

// The store tests' helpers (`St`, running the binary, mount guards), shared as they are.
#[path = "../store/util.rs"]
#[allow(dead_code)]
mod storeutil;
