//! The registry client (OCI distribution-spec v1.1 / Docker registry v2): references,
//! credentials, the layerfs config (mirrors, insecure registries), TLS material, auth, the
//! HTTP transport, manifests, and the protocol calls. It knows nothing of layer dirs or of the
//! store: it hands out byte streams and takes them; `transfer/` joins it to the store.

pub mod auth;
pub mod client;
pub mod config;
pub mod credentials;
pub mod error;
pub mod manifest;
pub mod reference;
pub mod session;
pub mod tls;
pub mod transport;

pub use error::{Error, Result};
