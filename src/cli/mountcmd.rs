//! The mount command line: `layerfs [mount] [-f] [-d] -o OPTS [SOURCE] MNT`.

use crate::mount::{self, MountRequest};
use std::ffi::OsString;
use std::path::PathBuf;

const HELP: &str = "\
Usage: layerfs mount [-f] [-d] -o OPTIONS [SOURCE] MOUNTPOINT

  -f            stay in the foreground (default: return once the mount is ready)
  -d            debug: log every request (implies -f)
  -o OPTIONS    comma-separated, may be repeated:
     lowerdir=L1[:L2...]   read-only layers, top-most first; '\\:' escapes a colon
     upperdir=U            writable layer (needs workdir)
     workdir=W             scratch dir on the same filesystem as upperdir
     ro | rw               read-only / read-write (no upperdir = read-only)
     allow_other, allow_root, auto_unmount
     dev|nodev, suid|nosuid, exec|noexec, atime|noatime
     uidmapping=C:H:N[:C:H:N...], gidmapping=...   stored id C+i shows as H+i (fuse-overlayfs)
     squash_to_root, squash_to_uid=N, squash_to_gid=N
     fsync=0|1             fsync copied-up files (default 1, as kernel overlayfs)
     whiteouts=auto|oci    oci: write only .wh.NAME / .wh..wh..opq markers (no devices,
                           no xattrs; lower directories then cannot be renamed: EXDEV)
     passthrough=on|off    FUSE passthrough when permitted (default on)
     uring=on|off          FUSE over io_uring when the kernel offers it (default on;
                           not with auto_unmount)
     noxattrs=1            no xattrs through the mount: get/set/list/remove say EOPNOTSUPP
     timeout=SECONDS       kernel entry/attr cache timeout (default 86400)
     threads=N             worker threads (default: CPUs, at least 2)
     remove_on_unmount=DIR delete DIR once the mount is gone (a throwaway upper)
     stats=FILE            write request counters to FILE on SIGUSR1 and at unmount
     fsname=NAME, context=..., fscontext=..., defcontext=..., rootcontext=...
  Accepted and ignored (as fuse-overlayfs): defaults, relatime, default_permissions,
  fast_ino, writeback, noacl, static_nlink, volatile, threaded, x-*, ...";

/// The command line, split up.
struct Args {
    /// Every `-o` value, in order.
    opts: Vec<String>,
    /// `[SOURCE] MOUNTPOINT`.
    positional: Vec<PathBuf>,
    foreground: bool,
    debug: bool,
}

/// Split flags from positional arguments; `Err` is the exit code (help, or a usage error,
/// already printed).
fn parse_flags(args: &[OsString]) -> Result<Args, i32> {
    let mut a = Args {
        opts: Vec::new(),
        positional: Vec::new(),
        foreground: false,
        debug: false,
    };
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].to_string_lossy().to_string();
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                return Err(0);
            }
            "-f" => a.foreground = true,
            "-d" | "--debug" => {
                a.debug = true;
                a.foreground = true;
            }
            "-o" => {
                i += 1;
                match args.get(i) {
                    Some(v) => a.opts.push(v.to_string_lossy().to_string()),
                    None => {
                        eprintln!("layerfs: -o needs a value");
                        return Err(2);
                    }
                }
            }
            s if s.starts_with("-o") && s.len() > 2 => a.opts.push(s[2..].to_string()),
            // mount.fuse3 may pass these through; they mean nothing to us.
            "-s" | "-n" | "-v" => {}
            s if s.starts_with('-') && s.len() > 1 => {
                eprintln!("layerfs: unknown flag '{s}' (see `layerfs mount --help`)");
                return Err(2);
            }
            _ => a.positional.push(PathBuf::from(args[i].clone())),
        }
        i += 1;
    }
    Ok(a)
}

/// `[SOURCE] MOUNTPOINT` -> (mountpoint, source); `Err` is the exit code (printed).
fn mountpoint_and_source(mut positional: Vec<PathBuf>) -> Result<(PathBuf, Option<PathBuf>), i32> {
    match positional.len() {
        1 => Ok((positional.remove(0), None)),
        2 => {
            // SOURCE MNT (mount.fuse3): SOURCE is a free label, shown in /proc/mounts.
            let m = positional.remove(1);
            Ok((m, Some(positional.remove(0))))
        }
        0 => {
            eprintln!("layerfs: no mountpoint given\n\n{HELP}");
            Err(2)
        }
        _ => {
            eprintln!(
                "layerfs: too many arguments: {} (expected [SOURCE] MOUNTPOINT)",
                positional
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            Err(2)
        }
    }
}

pub fn main(args: &[OsString]) -> i32 {
    let a = match parse_flags(args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let (mountpoint, source) = match mountpoint_and_source(a.positional) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let (plan, mut options) = match mount::options::parse(&a.opts) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("layerfs: {e}");
            return 2;
        }
    };
    if a.debug {
        options.debug = true;
    }
    if options.fsname.is_none() {
        options.fsname = source.map(|s| s.to_string_lossy().into_owned());
    }
    let req = MountRequest {
        plan,
        mountpoint,
        foreground: a.foreground || options.debug,
        options,
    };
    match mount::run(req) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("layerfs: {e}");
            1
        }
    }
}
