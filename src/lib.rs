//! layerfs: mount container image root filesystems without root.
//!
//! Architecture (one direction of dependency, top to bottom):
//!
//! ```text
//!   cli/        argument parsing and printing; the only place that talks to the user
//!    |  \______ runtime/ containers that run: monitor, runc bundle, state files, logs
//!    |  \
//!    |   store/  the image store: describes mounts (a MountPlan), never performs them
//!    |     |
//!   mount/      MountPlan + mount options -> a running FUSE session (daemon, signals)
//!    |
//!   fuse/       thin adapter: a kernel::Handler over overlay::OverlayFs
//!    |    \____ kernel/ the FUSE protocol itself: mount, wire format, worker threads, io_uring queues
//!    |
//!   overlay/    the union filesystem semantics, free of FUSE types
//!    |    store/ (above) reads layers through format/ too
//!   format/     the overlay on-disk format: markers, override_stat, id maps, the resolver
//!    |
//!   sys.rs      the thin unsafe libc layer (xattrs, mknod, renameat2, signals, ...):
//!               the one module allowed `unsafe` (denied everywhere else, below)
//! ```
//!
//! The one value that crosses from the store to the filesystem is a [`mount::MountPlan`]:
//! lower dirs (top first), upper, work, read-only, fsname, a throwaway dir.

#![deny(unsafe_code)]

pub mod cli;
pub mod digest;
pub mod fasthash;
pub mod format;
pub mod fuse;
pub mod kernel;
pub mod mount;
pub mod overlay;
pub mod registry;
pub mod runtime;
pub mod store;
pub mod sys;
pub mod transfer;
pub mod workers;
