//! Parsing of fuse-overlayfs compatible `-o` mount options (pure, unit-tested).
//!
//! `-o` may be given several times; each value is a comma-separated list. `lowerdir`,
//! `upperdir` and `workdir` build the [`MountPlan`]; the rest become [`MountOptions`].
//! Options fuse-overlayfs ignores are accepted and ignored; unknown ones are an error.

use super::plan::MountPlan;
use crate::format::idmap::IdRange;
use std::path::PathBuf;

/// Parsed mount options (everything but the layer dirs).
#[derive(Debug, Clone, PartialEq)]
pub struct MountOptions {
    pub read_only: bool,
    pub allow_other: bool,
    pub allow_root: bool,
    pub debug: bool,
    /// Honour device files / setuid bits (mount(2) defaults to nodev,nosuid for FUSE).
    pub dev: bool,
    pub suid: bool,
    pub exec: bool,
    pub noatime: bool,
    /// Ask fusermount3 to unmount when the daemon dies.
    pub auto_unmount: bool,
    /// fsync copied-up files before renaming them into place (kernel overlayfs does).
    pub fsync: bool,
    /// Write whiteouts and opaque markers in the OCI `.wh.` forms only (`whiteouts=oci`).
    pub oci_whiteouts: bool,
    /// Use FUSE passthrough when the kernel allows it (root / CAP_SYS_ADMIN).
    pub passthrough: bool,
    /// Serve over io_uring queues when the kernel offers it (`uring=on`, the default).
    pub uring: bool,
    /// `noxattrs=1`: every xattr call on the mount fails with EOPNOTSUPP.
    pub no_xattrs: bool,
    /// Entry/attr cache timeout in seconds.
    pub timeout: f64,
    /// Worker threads (0 = number of CPUs, at least 2).
    pub threads: usize,
    pub uid_map: Vec<IdRange>,
    pub gid_map: Vec<IdRange>,
    pub squash_to_uid: Option<u32>,
    pub squash_to_gid: Option<u32>,
    pub fsname: Option<String>,
    /// Options passed through verbatim to the kernel mount (e.g. `context=...`).
    pub passthrough_mount_opts: Vec<String>,
    /// A directory the daemon deletes once the mount is gone (a throwaway upper+work).
    pub remove_on_unmount: Option<PathBuf>,
    /// `stats=FILE`: the request counters are written there on SIGUSR1 and at unmount.
    pub stats: Option<PathBuf>,
    /// `xattr_permissions=1`: ownership and modes in `override_stat` xattrs even where real
    /// chown would work (root in a user namespace over an unprivileged store's layers).
    pub xattr_permissions: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            read_only: false,
            allow_other: false,
            allow_root: false,
            debug: false,
            dev: false,
            suid: false,
            exec: true,
            noatime: false,
            auto_unmount: false,
            fsync: true,
            oci_whiteouts: false,
            passthrough: true,
            uring: true,
            no_xattrs: false,
            timeout: 86400.0,
            threads: 0,
            uid_map: Vec::new(),
            gid_map: Vec::new(),
            squash_to_uid: None,
            squash_to_gid: None,
            fsname: None,
            passthrough_mount_opts: Vec::new(),
            remove_on_unmount: None,
            stats: None,
            xattr_permissions: false,
        }
    }
}

/// Split a comma-separated option list (a `\,` keeps a comma inside a value).
fn split_commas(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                cur.push(',');
                chars.next();
            }
            ',' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Split `lowerdir=` at unescaped colons; `\:` is a literal colon.
pub fn split_lowerdirs(s: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some(':') | Some('\\')) => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ':' => {
                if !cur.is_empty() {
                    out.push(PathBuf::from(std::mem::take(&mut cur)));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(PathBuf::from(cur));
    }
    out
}

fn parse_u32(key: &str, v: &str) -> Result<u32, String> {
    v.parse::<u32>()
        .map_err(|_| format!("mount option {key}={v}: not a number"))
}

/// Parse `container:host:size[:container:host:size...]`.
pub fn parse_id_map(key: &str, v: &str) -> Result<Vec<IdRange>, String> {
    // containers-storage writes each triple as ":C:H:N" and concatenates them, so the
    // value starts with ':' (fuse-overlayfs skips empty fields).
    let parts: Vec<&str> = v.split(':').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || !parts.len().is_multiple_of(3) {
        return Err(format!(
            "mount option {key}={v}: expected container:host:size triples separated by ':'"
        ));
    }
    let mut out = Vec::new();
    for t in parts.chunks(3) {
        let r = IdRange {
            container: parse_u32(key, t[0])?,
            host: parse_u32(key, t[1])?,
            size: parse_u32(key, t[2])?,
        };
        if r.size == 0 {
            return Err(format!("mount option {key}={v}: a range of size 0"));
        }
        out.push(r);
    }
    Ok(out)
}

/// Options accepted for compatibility and ignored (fuse-overlayfs ignores them, or they
/// only matter to mount(8)/fstab).
const IGNORED: &[&str] = &[
    "defaults",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "_netdev",
    "nofail",
    "relatime",
    "strictatime",
    "norelatime",
    "nodiratime",
    "diratime",
    "lazytime",
    "nolazytime",
    "sync",
    "async",
    "dirsync",
    "silent",
    "loud",
    "default_permissions",
    "threaded",
    "fast_ino",
    "writeback",
    "noacl",
    "static_nlink",
    "volatile",
    "xino",
    "index",
    "metacopy",
    "nfs_export",
    "redirect_dir",
    "userxattr",
    "xattr_permissions",
    "plugins",
    "max_read",
    "max_write",
    "blksize",
    "comment",
];

/// An on/off option: `KEY`, `KEY=1|on` or `KEY=0|off`.
fn switch(key: &str, val: Option<&str>) -> Result<bool, String> {
    match val {
        None | Some("1") | Some("on") => Ok(true),
        Some("0") | Some("off") => Ok(false),
        Some(v) => Err(format!(
            "mount option {key}={v}: expected 1 or 0 (on or off)"
        )),
    }
}

/// Parse every `-o` value given on the command line into a plan and options.
pub fn parse(values: &[String]) -> Result<(MountPlan, MountOptions), String> {
    parse_for(values, crate::sys::geteuid() == 0)
}

/// [`parse`] for a caller that is (`root`) or is not root. As fuse-overlayfs does, a
/// mount made by root defaults to `allow_other,suid` (still `nodev`): a container engine
/// runs other users' processes and setuid programs on it; permissions are still checked
/// by the kernel (`default_permissions`). `nosuid` and `dev` override these defaults.
pub fn parse_for(values: &[String], root: bool) -> Result<(MountPlan, MountOptions), String> {
    let mut plan = MountPlan::default();
    let mut o = MountOptions::default();
    if root {
        o.allow_other = true;
        o.suid = true;
    }
    for value in values {
        for item in split_commas(value) {
            apply(&mut plan, &mut o, &item)?;
        }
    }
    check_layers(&plan)?;
    Ok((plan, o))
}

/// Apply one `KEY` or `KEY=VALUE` item of an option list.
fn apply(plan: &mut MountPlan, o: &mut MountOptions, item: &str) -> Result<(), String> {
    let (key, val) = match item.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (item, None),
    };
    if apply_flag(o, key) {
        return Ok(());
    }
    let need = |v: Option<&str>| -> Result<String, String> {
        match v {
            Some(s) if !s.is_empty() => Ok(s.to_string()),
            _ => Err(format!("mount option {key} needs a value ({key}=...)")),
        }
    };
    match key {
        "lowerdir" => {
            let dirs = split_lowerdirs(&need(val)?);
            if dirs.is_empty() {
                return Err("mount option lowerdir= names no directory".into());
            }
            plan.lowers = dirs;
        }
        "upperdir" => plan.upper = Some(PathBuf::from(need(val)?)),
        "workdir" => plan.work = Some(PathBuf::from(need(val)?)),
        "noxattrs" => o.no_xattrs = switch(key, val)?,
        "fsync" => o.fsync = switch(key, val)?,
        "whiteouts" => {
            o.oci_whiteouts = match val {
                Some("auto") | Some("kernel") => false,
                Some("oci") => true,
                _ => {
                    return Err(format!(
                        "mount option {item}: expected whiteouts=auto or whiteouts=oci"
                    ));
                }
            }
        }
        "passthrough" => o.passthrough = switch(key, val)?,
        "uring" => o.uring = switch(key, val)?,
        "timeout" => {
            let v = need(val)?;
            o.timeout = v
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t >= 0.0)
                .ok_or_else(|| format!("mount option timeout={v}: not a number of seconds"))?;
        }
        "threads" => {
            let v = need(val)?;
            o.threads = v
                .parse()
                .map_err(|_| format!("mount option threads={v}: not a number"))?;
        }
        "uidmapping" => o.uid_map = parse_id_map(key, &need(val)?)?,
        "gidmapping" => o.gid_map = parse_id_map(key, &need(val)?)?,
        "squash_to_uid" => o.squash_to_uid = Some(parse_u32(key, &need(val)?)?),
        "squash_to_gid" => o.squash_to_gid = Some(parse_u32(key, &need(val)?)?),
        "fsname" => o.fsname = Some(need(val)?),
        "remove_on_unmount" => o.remove_on_unmount = Some(PathBuf::from(need(val)?)),
        "stats" => o.stats = Some(PathBuf::from(need(val)?)),
        "xattr_permissions" => o.xattr_permissions = switch(key, val)?,
        "subtype" => {}
        "context" | "fscontext" | "defcontext" | "rootcontext" => {
            o.passthrough_mount_opts.push(item.to_string())
        }
        k if k.starts_with("x-") => {}
        k if IGNORED.contains(&k) => {}
        _ => {
            return Err(format!(
                "unknown mount option '{item}' (see `layerfs mount --help` for the list)"
            ));
        }
    }
    Ok(())
}

/// A flag (an option that takes no value; one given is ignored): false when `key` is
/// not one.
fn apply_flag(o: &mut MountOptions, key: &str) -> bool {
    match key {
        "ro" => o.read_only = true,
        "rw" => o.read_only = false,
        "allow_other" => o.allow_other = true,
        "allow_root" => o.allow_root = true,
        "debug" => o.debug = true,
        "dev" => o.dev = true,
        "nodev" => o.dev = false,
        "suid" => o.suid = true,
        "nosuid" => o.suid = false,
        "exec" => o.exec = true,
        "noexec" => o.exec = false,
        "atime" => o.noatime = false,
        "noatime" => o.noatime = true,
        "auto_unmount" => o.auto_unmount = true,
        "nopassthrough" => o.passthrough = false,
        "squash_to_root" => {
            o.squash_to_uid = Some(0);
            o.squash_to_gid = Some(0);
        }
        _ => return false,
    }
    true
}

/// Layers enough to mount: some lower or an upper, and upper and work together.
fn check_layers(plan: &MountPlan) -> Result<(), String> {
    if plan.upper.is_some() != plan.work.is_some() {
        return Err(if plan.upper.is_some() {
            "upperdir= needs workdir= too (a directory on the same filesystem as upperdir)".into()
        } else {
            "workdir= given without upperdir=".into()
        });
    }
    if plan.lowers.is_empty() && plan.upper.is_none() {
        return Err("no layers: give -o lowerdir=DIR[:DIR...] (and upperdir=,workdir= for a writable mount)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[&str]) -> Result<(MountPlan, MountOptions), String> {
        parse_for(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>(), false)
    }

    #[test]
    fn root_defaults_like_fuse_overlayfs() {
        let v = |s: &str| vec![s.to_string()];
        let (_, o) = parse_for(&v("lowerdir=/a"), true).unwrap();
        assert!(o.allow_other && o.suid && !o.dev);
        let (_, o) = parse_for(&v("lowerdir=/a,nodev,nosuid"), true).unwrap();
        assert!(o.allow_other && !o.suid && !o.dev);
        let (_, o) = parse_for(&v("lowerdir=/a"), false).unwrap();
        assert!(!o.allow_other && !o.suid && !o.dev);
    }

    #[test]
    fn full_line() {
        let (plan, o) =
            p(&["lowerdir=/a:/b,upperdir=/u,workdir=/w,nodev,nosuid,allow_other"]).unwrap();
        assert_eq!(plan.lowers, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(plan.upper, Some(PathBuf::from("/u")));
        assert_eq!(plan.work, Some(PathBuf::from("/w")));
        assert!(o.allow_other && !o.dev && !o.suid);
    }

    #[test]
    fn escaped_colon_in_lowerdir() {
        assert_eq!(
            split_lowerdirs(r"/a\:b:/c"),
            vec![PathBuf::from("/a:b"), PathBuf::from("/c")]
        );
    }

    #[test]
    fn repeated_o_and_later_wins() {
        let (_, o) = p(&["lowerdir=/a,ro", "rw,context=\"system_u:object_r:x:s0\""]).unwrap();
        assert!(!o.read_only);
        assert_eq!(o.passthrough_mount_opts.len(), 1);
    }

    #[test]
    fn unknown_rejected_with_name() {
        let e = p(&["lowerdir=/a,frobnicate"]).unwrap_err();
        assert!(e.contains("frobnicate"), "{e}");
    }

    #[test]
    fn ignored_accepted() {
        assert!(
            p(&["lowerdir=/a,noatime,defaults,x-systemd.automount,fast_ino=1,volatile"]).is_ok()
        );
    }

    #[test]
    fn upper_needs_work() {
        assert!(
            p(&["lowerdir=/a,upperdir=/u"])
                .unwrap_err()
                .contains("workdir")
        );
        assert!(p(&["lowerdir=/a,workdir=/w"]).is_err());
        assert!(p(&["nodev"]).unwrap_err().contains("lowerdir"));
    }

    #[test]
    fn id_maps() {
        let (_, o) =
            p(&["lowerdir=/a,uidmapping=0:1000:1:1:100000:65536,gidmapping=0:1000:1"]).unwrap();
        assert_eq!(o.uid_map.len(), 2);
        assert_eq!(
            o.uid_map[1],
            IdRange {
                container: 1,
                host: 100000,
                size: 65536
            }
        );
        assert!(p(&["lowerdir=/a,uidmapping=0:1"]).is_err());
        // containers-storage's form (podman --userns=keep-id): ':' before each triple
        let (_, o) = p(&["lowerdir=/a,uidmapping=:0:1:1001:1001:0:1:1002:1002:64535"]).unwrap();
        assert_eq!(o.uid_map.len(), 3);
        assert_eq!(
            o.uid_map[2],
            IdRange {
                container: 1002,
                host: 1002,
                size: 64535
            }
        );
        assert!(p(&["lowerdir=/a,uidmapping=x:1:1"]).is_err());
    }

    #[test]
    fn squash() {
        let (_, o) = p(&["lowerdir=/a,squash_to_root"]).unwrap();
        assert_eq!((o.squash_to_uid, o.squash_to_gid), (Some(0), Some(0)));
        let (_, o) = p(&["lowerdir=/a,squash_to_uid=5,squash_to_gid=6"]).unwrap();
        assert_eq!((o.squash_to_uid, o.squash_to_gid), (Some(5), Some(6)));
    }

    #[test]
    fn empty_value_is_error() {
        assert!(p(&["lowerdir="]).is_err());
        assert!(p(&["lowerdir=/a,upperdir=,workdir=/w"]).is_err());
    }
}
