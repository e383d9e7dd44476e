//! Containers that run: a container's first process started by runc on layerfs's own
//! mount of its rootfs, rootless first, supervised by a small per-container monitor.
//!
//! ```text
//! layerfs run/start ──spawn──▶ monitor (__monitor ID): user + mount namespaces,
//!        ▲   ▲  (pipe: OK | ERR code text)     mount rootfs, watchdog, runc create+start,
//!        │   └── state.json, <id>-json.log ◀── logs, waits, records the exit, unmounts
//!   stop/kill/wait/exec/ps: signals and the files under containers/<id>/, no daemon
//! ```
//!
//! - [`config`]: run flags + image config -> the first process (docker's rules)
//! - [`users`]: `USER[:GROUP]` in the image's passwd/group
//! - [`bundle`]: the OCI `config.json` runc gets
//! - [`prepare`]: everything read before a start (nothing runs yet)
//! - [`userns`]: the rootless user namespace
//! - [`runc`]: runc command lines, its errors, docker's exit codes
//! - [`monitor`], [`relay`], [`logs`], [`watchdog`]: the run itself
//! - [`state`]: `state.json` and liveness; [`ctl`]: what the CLI verbs do

pub mod bundle;
pub mod config;
pub mod ctl;
pub mod logs;
pub mod monitor;
pub mod prepare;
pub mod relay;
pub mod runc;
pub mod state;
pub mod userns;
pub mod users;
pub mod watchdog;

/// A start or exec that failed: docker's exit code (125 layerfs, 126 not invokable, 127
/// not found) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}
