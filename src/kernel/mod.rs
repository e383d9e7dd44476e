//! The FUSE kernel protocol, our own transport: mounting (`mount`), the wire format
//! (`abi`), requests (`request`), replies and notifications (`reply`), and the served
//! session (`session`), served over the device fd or io_uring queues (`uring`). It knows nothing of layers: a [`Handler`] answers requests.
//!
//! Why not fuser: its entry replies send the node id as the inode number, so two names
//! of one file (a lower hard link, each name its own node) could not show one number
//! without costing a GETATTR each. Here the node id and `st_ino` travel apart.

pub mod abi;
pub mod mount;
pub mod reply;
pub mod request;
pub mod session;
mod uring;

pub use mount::{Access, MountSpec, mount};
pub use reply::{BackingId, Notifier, Reply};
pub use request::{Header, InitIn, Op, SetTime, SetattrIn};
pub use session::{Handler, InitOut, Session};
pub use uring::OVER_IO_URING;
