//! Command line: dispatches argv to the mount forms (fuse-overlayfs / mount.fuse3
//! compatible) and to the `image` / `container` verbs. The only place that prints.
//!
//! Forms accepted:
//! - `layerfs mount [-f] [-d] -o lowerdir=..,upperdir=..,workdir=.. MNT`
//! - `layerfs [-f] [-d] -o lowerdir=.. MNT` (fuse-overlayfs / containers-storage)
//! - `layerfs SOURCE MNT -o ...` (mount.fuse3, so `mount -t fuse.layerfs` works)
//! - `layerfs [--root DIR] image VERB ...`, `images`, `rmi`, `container VERB ...`

pub mod container;
pub mod image;
pub mod mountcmd;
mod progress;
pub mod pull;

use crate::store::Store;
use crate::store::error::Error as StoreError;
use std::ffi::OsString;
use std::path::PathBuf;

/// Why a verb failed. Printed only here, as `layerfs: {err}` (one line per failure).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From the store: kept whole, cause and all, until it is printed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bad reference, option or config, or a registry that refused (login, search).
    #[error(transparent)]
    Registry(#[from] crate::registry::Error),
    /// A pull of the reference that failed, with the registry's or the store's reason.
    #[error("pull {0}: {1}")]
    Pull(String, crate::transfer::Error),
    /// A push of the reference that failed.
    #[error("push {0}: {1}")]
    Push(String, crate::transfer::Error),
    /// A mount that did not start: what was mounted where, and mount/'s reason.
    #[error("{0}")]
    Mount(String),
    /// A command line the verb cannot run (an unknown `--format`...).
    #[error("{0}")]
    Usage(String),
    /// One failure per argument (`rm a b c`), in argument order.
    #[error("{} failures", .0.len())]
    Each(Vec<CliError>),
}

/// What a verb returns.
pub type CliResult = Result<(), CliError>;

/// Print an error as `layerfs: ...`, each of several on its own line.
fn report(e: &CliError) {
    match e {
        CliError::Each(all) => all.iter().for_each(report),
        e => eprintln!("layerfs: {e}"),
    }
}

/// `Ok` when there was no failure, else every one of them.
fn all_or_each(errors: Vec<CliError>) -> CliResult {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CliError::Each(errors))
    }
}

/// The store at `--root` (or the default), reporting to the terminal.
fn open_store(root: Option<PathBuf>) -> Result<Store, CliError> {
    let p = std::sync::Arc::new(progress::Terminal::default());
    Ok(Store::open(root)?.reporting_to(p))
}

/// Run a mount the store planned on `mountpoint` in the background; `what` says what is
/// being mounted, for the error.
fn run_mount(
    plan: crate::mount::MountPlan,
    mountpoint: &std::path::Path,
    allow_other: bool,
    what: &str,
) -> CliResult {
    let options = crate::mount::MountOptions {
        allow_other,
        ..Default::default()
    };
    crate::mount::run(plan.into_request(mountpoint.to_path_buf(), options)).map_err(|e| {
        CliError::Mount(format!(
            "cannot mount {what} on {}: {e}",
            mountpoint.display()
        ))
    })
}

const USAGE: &str = "\
layerfs: mount container image root filesystems without root

Usage:
  layerfs mount [-f] [-d] -o lowerdir=L1[:L2...][,upperdir=U,workdir=W][,OPTS] MNT
  layerfs [-f] [-d] -o lowerdir=...[,upperdir=...,workdir=...] MNT
  layerfs SOURCE MNT -o lowerdir=...          (mount.fuse3 form: mount -t fuse.layerfs)
  layerfs [--root DIR] image VERB ...         (load save ls inspect history tag rm prune
                                               import mount layers)
  layerfs [--root DIR] images | rmi IMAGE...
  layerfs [--root DIR] container VERB ...     (create ls mount diff commit export rm
                                               rename prune)

Run `layerfs mount --help` for every mount option, `layerfs image --help` and
`layerfs container --help` for the store verbs.";

/// Parse `args` as the clap command line of `prog` and run it: usage errors exit 2 (help
/// and version 0), failures print `layerfs: ...` and exit 1.
pub(crate) fn parse_and_run<C: clap::Parser>(
    prog: &str,
    args: Vec<OsString>,
    run: impl FnOnce(C) -> CliResult,
) -> i32 {
    let mut argv = vec![OsString::from(prog)];
    argv.extend(args);
    let cli = match C::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            report(&e);
            1
        }
    }
}

/// Entry point; returns the process exit code.
pub fn main() -> i32 {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    run(args)
}

fn run(mut args: Vec<OsString>) -> i32 {
    // A leading `--root DIR` applies to the store verbs.
    let mut root: Option<PathBuf> = None;
    while let Some(first) = args.first().and_then(|a| a.to_str()) {
        if first == "--root" {
            if args.len() < 2 {
                eprintln!("layerfs: --root needs a directory");
                return 2;
            }
            root = Some(PathBuf::from(args[1].clone()));
            args.drain(..2);
        } else if let Some(v) = first.strip_prefix("--root=") {
            root = Some(PathBuf::from(v));
            args.remove(0);
        } else {
            break;
        }
    }
    let first = args.first().and_then(|a| a.to_str()).map(str::to_string);
    match first.as_deref() {
        None => {
            eprintln!("{USAGE}");
            2
        }
        Some("-h") | Some("--help") | Some("help") => {
            println!("{USAGE}");
            0
        }
        Some("-V") | Some("--version") | Some("version") => {
            println!("layerfs {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Some("pull") => pull::pull_main(root, args[1..].to_vec()),
        Some("push") => pull::push_main(root, args[1..].to_vec()),
        Some("image") if args.get(1).is_some_and(|a| a == "pull") => {
            pull::pull_main(root, args[2..].to_vec())
        }
        Some("image") if args.get(1).is_some_and(|a| a == "push") => {
            pull::push_main(root, args[2..].to_vec())
        }
        Some("image") => image::main(root, args[1..].to_vec()),
        Some("images") => {
            let mut a = vec![OsString::from("ls")];
            a.extend_from_slice(&args[1..]);
            image::main(root, a)
        }
        Some("rmi") => {
            let mut a = vec![OsString::from("rm")];
            a.extend_from_slice(&args[1..]);
            image::main(root, a)
        }
        Some("container") => container::main(root, args[1..].to_vec()),
        Some("mount") => mountcmd::main(&args[1..]),
        _ => mountcmd::main(&args),
    }
}
