//! Command line: dispatches argv to the mount forms (fuse-overlayfs / mount.fuse3
//! compatible) and to the `image` / `container` verbs. The only place that prints.
//!
//! Forms accepted:
//! - `layerfs mount [-f] [-d] -o lowerdir=..,upperdir=..,workdir=.. MNT`
//! - `layerfs [-f] [-d] -o lowerdir=.. MNT` (fuse-overlayfs / containers-storage)
//! - `layerfs SOURCE MNT -o ...` (mount.fuse3, so `mount -t fuse.layerfs` works)
//! - `layerfs [--root DIR] image VERB ...`, `container VERB ...`
//! - docker's top-level image verbs: `images rmi load save tag history inspect import`
//!
//! Any other first word is an error naming it (exit 2).

pub mod container;
pub mod image;
pub mod mountcmd;
mod progress;
pub mod pull;
pub mod registry;
pub mod run;
pub mod runctl;

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
    /// An exit status of its own (`run`: the container's, or docker's 125/126/127),
    /// with the message to print, if any.
    #[error("{}", .1.clone().unwrap_or_default())]
    Status(i32, Option<String>),
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
        CliError::Status(_, None) => {}
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
  layerfs SOURCE MNT -o lowerdir=...          (mount.fuse3 form: mount -t fuse.layerfs;
                                               SOURCE is a free label, not a verb name)
  layerfs [--root DIR] image VERB ...         (load save ls inspect history tag rm prune
                                               import mount layers)
  layerfs [--root DIR] VERB ...               (docker's top-level image verbs: images
                                               rmi load save tag history inspect import)
  layerfs [--root DIR] container VERB ...     (create ls mount diff commit export rm
                                               rename prune run start stop restart
                                               kill exec logs wait inspect)
  layerfs [--root DIR] run [--rm] [-d] [-i] [-t] [--name N] [-e K=V] [-v H:C[:ro]]
                       [-w DIR] [-u USER] [--network host|none] IMAGE [CMD...]
  layerfs [--root DIR] create|start|stop|restart|kill|exec|ps|logs|wait|rm ...
                                              (docker's container verbs)
  layerfs [--root DIR] pull [-q] [--platform P] [-a] NAME[:TAG|@DIGEST]
  layerfs [--root DIR] push [-q] [--compression gzip|zstd] NAME[:TAG]
  layerfs search [--limit N] [--format table|json] [REGISTRY/]TERM
  layerfs login [-u USER] [--password-stdin] [REGISTRY] | logout [REGISTRY]

Run `layerfs mount --help` for every mount option, `layerfs image --help` and
`layerfs container --help` for the store verbs.";

/// docker's top-level image verbs, each with the `image` subcommand it runs.
const IMAGE_VERBS: [(&str, &str); 8] = [
    ("images", "ls"),
    ("rmi", "rm"),
    ("load", "load"),
    ("save", "save"),
    ("tag", "tag"),
    ("history", "history"),
    ("inspect", "inspect"),
    ("import", "import"),
];

/// Every first word, as the unknown-command message lists them.
const VERBS: &str = "image container mount pull push search login logout images rmi load \
save tag history inspect import run create start stop restart kill exec ps logs wait rm help \
version";

/// Parse `args` as the clap command line of `prog` and run it: usage errors exit 2 (help
/// and version 0), failures print `layerfs: ...` and exit 1.
pub(crate) fn parse_and_run<C: clap::Parser>(
    prog: &str,
    args: Vec<OsString>,
    run: impl FnOnce(C) -> CliResult,
) -> i32 {
    parse_and_run_usage::<C>(prog, args, 2, run)
}

/// [`parse_and_run`] with the exit code of a bad command line (`run`: docker's 125).
pub(crate) fn parse_and_run_usage<C: clap::Parser>(
    prog: &str,
    args: Vec<OsString>,
    usage_code: i32,
    run: impl FnOnce(C) -> CliResult,
) -> i32 {
    let mut argv = vec![OsString::from(prog)];
    argv.extend(args);
    let cli = match C::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { usage_code } else { 0 };
            if code == 2 || code == 0 {
                let _ = e.print();
            } else {
                // docker's container verbs: one `layerfs: ` line, then clap's own text.
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default();
                eprintln!("layerfs: {}", first.trim_start_matches("error: "));
                eprint!("{}", text.split_once('\n').map_or("", |(_, r)| r));
            }
            return code;
        }
    };
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            report(&e);
            match e {
                CliError::Status(code, _) => code,
                _ => 1,
            }
        }
    }
}

/// Entry point; returns the process exit code.
pub fn main() -> i32 {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    run(args)
}

fn run(mut args: Vec<OsString>) -> i32 {
    let root = match take_root(&mut args) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let Some(first) = args.first() else {
        eprintln!("{USAGE}");
        return 2;
    };
    let word = first.to_str().unwrap_or_default().to_string();
    let rest = args[1..].to_vec();
    if let Some((_, sub)) = IMAGE_VERBS.iter().find(|(v, _)| *v == word) {
        let mut a = vec![OsString::from(sub)];
        a.extend(rest);
        return image::main(root, a);
    }
    match word.as_str() {
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            0
        }
        "-V" | "--version" | "version" => {
            println!("layerfs {}", env!("CARGO_PKG_VERSION"));
            0
        }
        "pull" => pull::pull_main(root, rest),
        "push" => pull::push_main(root, rest),
        "search" => registry::search_main(rest),
        "login" => registry::login_main(rest),
        "logout" => registry::logout_main(rest),
        "image" if rest.first().is_some_and(|a| a == "pull") => {
            pull::pull_main(root, rest[1..].to_vec())
        }
        "image" if rest.first().is_some_and(|a| a == "push") => {
            pull::push_main(root, rest[1..].to_vec())
        }
        "image" => image::main(root, rest),
        "container" => container::main(root, rest),
        "run" => run::run_main(root, rest),
        "create" => run::create_main(root, rest),
        "start" => run::start_main(root, rest),
        "stop" | "restart" | "kill" | "exec" | "logs" | "wait" => runctl::main(root, &word, rest),
        "ps" | "rm" => {
            let mut a = vec![OsString::from(if word == "ps" { "ls" } else { "rm" })];
            a.extend(rest);
            container::main(root, a)
        }
        "__monitor" | "__watchdog" => run::hidden_main(root, &word, &rest),
        "mount" => mountcmd::main(&rest),
        _ if is_mount_form(&args) => mountcmd::main(&args),
        _ => {
            eprintln!(
                "layerfs: unknown command {:?}\nCommands: {VERBS}\n\
                 Run `layerfs --help` for usage.",
                first.to_string_lossy()
            );
            2
        }
    }
}

/// Remove the leading `--root DIR` / `--root=DIR` (the store verbs' global option) from
/// `args`; `Err` is the exit code (the message printed).
fn take_root(args: &mut Vec<OsString>) -> Result<Option<PathBuf>, i32> {
    let mut root = None;
    while let Some(first) = args.first().and_then(|a| a.to_str()) {
        if first == "--root" {
            if args.len() < 2 {
                eprintln!("layerfs: --root needs a directory");
                return Err(2);
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
    Ok(root)
}

/// A mount command line without the `mount` verb: a flag first (`-f`, `-d`, `-o ...`, as
/// fuse-overlayfs is called), a `-o` anywhere (`SOURCE MNT -o ...`, as mount.fuse3 calls
/// its helper, whatever SOURCE is), or a path-like SOURCE (with `/`) and a mountpoint.
fn is_mount_form(args: &[OsString]) -> bool {
    let words: Vec<std::borrow::Cow<'_, str>> = args.iter().map(|a| a.to_string_lossy()).collect();
    let Some(first) = words.first() else {
        return false;
    };
    if first.starts_with('-') || words.iter().any(|w| w.starts_with("-o")) {
        return true;
    }
    let positional = words.iter().filter(|w| !w.starts_with('-')).count();
    (first.contains('/') || args[0].to_str().is_none()) && positional >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<OsString> {
        s.iter().map(OsString::from).collect()
    }

    #[test]
    fn mount_forms_are_told_from_unknown_words() {
        for yes in [
            &["-o", "lowerdir=/l", "/mnt"][..],
            &["-f", "-o", "lowerdir=l", "m"],
            &["-olowerdir=l", "m"],
            &["overlay", "/mnt", "-o", "lowerdir=/l"],
            &["mysource", "mnt", "-orw,lowerdir=/l"],
            &["./src", "/mnt"],
        ] {
            assert!(is_mount_form(&words(yes)), "{yes:?}");
        }
        for no in [
            &["pull", "busybox"][..],
            &["frobnicate"],
            &["frobnicate", "a", "b"],
            &["./src"],
            &[],
        ] {
            assert!(!is_mount_form(&words(no)), "{no:?}");
        }
    }

    #[test]
    fn every_listed_image_verb_is_a_verb_of_image() {
        for (verb, sub) in IMAGE_VERBS {
            assert!(VERBS.split(' ').any(|v| v == verb), "{verb} not listed");
            assert!(USAGE.contains(verb), "{verb} not in USAGE");
            assert!(image::has_verb(sub), "image has no {sub}");
        }
    }
}
