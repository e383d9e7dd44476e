//! Between the registry client and the store (neither knows the other): `pull` takes a
//! reference's blobs from a registry into the store, `push` sends a stored image's blobs to
//! a registry.

pub mod pull;
pub mod push;

/// Why a pull or push failed: the registry's side or the store's, kept whole.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Registry(#[from] crate::registry::Error),
    #[error(transparent)]
    Store(#[from] crate::store::error::Error),
    /// Every source of a repository failed (mirrors, then the origin): each one's reason.
    #[error("{0}")]
    Sources(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
