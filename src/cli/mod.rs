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

use std::ffi::OsString;
use std::path::PathBuf;

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
    run: impl FnOnce(C) -> Result<(), String>,
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
            eprintln!("layerfs: {e}");
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
