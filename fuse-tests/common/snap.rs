//! Tree snapshots and their differences.
//!
//! A snapshot maps each relative path to one line describing it (type, mode, owner, size,
//! content hash, link target, xattrs, nlink). Two snapshots compare as maps; `diff` names
//! exactly the paths that differ. `upper` normalises an upper dir so that every whiteout form
//! reads "whiteout" and every opaque form reads "opaque", and overlay bookkeeping xattrs
//! (origin, impure, uuid, ...) that one implementation writes and another need not are dropped.

use super::sys;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

pub type Snap = BTreeMap<String, String>;

#[derive(Clone, Copy, Debug)]
pub struct SnapOpts {
    /// Include nlink of directories (overlay reports vary for merged dirs; files always count).
    pub dir_nlink: bool,
    /// Include mtime of regular files and symlinks (only where both sides set it the same way).
    pub mtime: bool,
    /// Include uid/gid (off when comparing a root run with an unprivileged run).
    pub owner: bool,
}

impl Default for SnapOpts {
    fn default() -> Self {
        SnapOpts {
            dir_nlink: true,
            mtime: false,
            owner: true,
        }
    }
}

pub fn sha256_file(p: &Path) -> String {
    let mut f = match fs::File::open(p) {
        Ok(f) => f,
        Err(e) => return format!("<open: {}>", sys::errno_name(e.raw_os_error().unwrap_or(0))),
    };
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) => return format!("<read: {}>", sys::errno_name(e.raw_os_error().unwrap_or(0))),
        }
    }
    hex(&h.finalize())
}

pub fn sha256_bytes(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn kind(md: &fs::Metadata) -> String {
    let ft = md.file_type();
    if ft.is_file() {
        "file".into()
    } else if ft.is_dir() {
        "dir".into()
    } else if ft.is_symlink() {
        "symlink".into()
    } else if ft.is_fifo() {
        "fifo".into()
    } else if ft.is_socket() {
        "socket".into()
    } else if ft.is_char_device() {
        format!(
            "char({}:{})",
            libc::major(md.rdev()),
            libc::minor(md.rdev())
        )
    } else if ft.is_block_device() {
        format!(
            "block({}:{})",
            libc::major(md.rdev()),
            libc::minor(md.rdev())
        )
    } else {
        "unknown".into()
    }
}

fn xattr_desc(p: &Path, keep: &dyn Fn(&str) -> bool) -> String {
    let names = match sys::listxattr(p) {
        Ok(n) => n,
        Err(e) => {
            return format!(
                "<listxattr: {}>",
                sys::errno_name(e.raw_os_error().unwrap_or(0))
            );
        }
    };
    let parts: Vec<String> = names
        .iter()
        .filter(|n| keep(n))
        .map(|n| match sys::getxattr(p, n) {
            Ok(v) => format!("{n}={}", String::from_utf8_lossy(&v).escape_debug()),
            Err(e) => format!("{n}=<{}>", sys::errno_name(e.raw_os_error().unwrap_or(0))),
        })
        .collect();
    parts.join(",")
}

/// One entry's line: what a snapshot records about it.
pub fn describe(p: &Path, o: SnapOpts, keep_xattr: &dyn Fn(&str) -> bool) -> String {
    let md = match fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) => {
            return format!(
                "<lstat: {}>",
                sys::errno_name(e.raw_os_error().unwrap_or(0))
            );
        }
    };
    let mut s = format!("{} mode={:o}", kind(&md), md.mode() & 0o7777);
    if o.owner {
        s += &format!(" uid={} gid={}", md.uid(), md.gid());
    }
    let ft = md.file_type();
    if !ft.is_dir() || o.dir_nlink {
        s += &format!(" nlink={}", md.nlink());
    }
    if ft.is_file() {
        s += &format!(" size={} sha={}", md.size(), short(&sha256_file(p)));
    }
    if ft.is_symlink() {
        s += &format!(
            " -> {}",
            fs::read_link(p)
                .map(|t| t.display().to_string())
                .unwrap_or_default()
        );
    }
    if o.mtime && (ft.is_file() || ft.is_symlink()) {
        s += &format!(" mtime={}.{:09}", md.mtime(), md.mtime_nsec());
    }
    let x = xattr_desc(p, keep_xattr);
    if !x.is_empty() {
        s += &format!(" xattrs[{x}]");
    }
    s
}

fn walk(root: &Path, rel: &str, out: &mut Vec<String>) {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let mut names: Vec<String> = match fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => return,
    };
    names.sort();
    for n in names {
        let r = if rel.is_empty() {
            n.clone()
        } else {
            format!("{rel}/{n}")
        };
        out.push(r.clone());
        if fs::symlink_metadata(root.join(&r))
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            walk(root, &r, out);
        }
    }
}

/// All relative paths under `root`, depth first, sorted per directory.
pub fn paths(root: &Path) -> Vec<String> {
    let mut v = Vec::new();
    walk(root, "", &mut v);
    v
}

/// Snapshot of a merged view: every path plus "." for the root.
/// xattrs: all but security.selinux (so leaked private xattrs show up as differences).
pub fn merged(root: &Path, o: SnapOpts) -> Snap {
    let keep = |n: &str| n != "security.selinux";
    let mut s = Snap::new();
    s.insert(".".into(), describe(root, o, &keep));
    for r in paths(root) {
        s.insert(r.clone(), describe(&root.join(&r), o, &keep));
    }
    s
}

pub fn merged_default(root: &Path) -> Snap {
    merged(root, SnapOpts::default())
}

const OPAQUE_XATTRS: [&str; 3] = [
    "trusted.overlay.opaque",
    "user.overlay.opaque",
    "user.fuseoverlayfs.opaque",
];
const REDIRECT_XATTRS: [&str; 2] = ["trusted.overlay.redirect", "user.overlay.redirect"];

fn private(n: &str) -> bool {
    n.starts_with("trusted.overlay.")
        || n.starts_with("user.overlay.")
        || n.starts_with("user.fuseoverlayfs.")
}

/// Snapshot of an upper dir with whiteouts and opaque markers in a form-independent notation.
pub fn upper(root: &Path, o: SnapOpts) -> Snap {
    let keep = |n: &str| !private(n) && n != "security.selinux";
    let mut s = Snap::new();
    let mut all = vec![String::new()];
    all.extend(paths(root));
    for r in all {
        let p = if r.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&r)
        };
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent_rel = match r.rfind('/') {
            Some(i) => r[..i].to_string(),
            None => String::new(),
        };
        let key_of = |n: &str| {
            if parent_rel.is_empty() {
                n.to_string()
            } else {
                format!("{parent_rel}/{n}")
            }
        };
        let Ok(md) = fs::symlink_metadata(&p) else {
            continue;
        };
        if name == ".wh..wh..opq" {
            let k = if parent_rel.is_empty() {
                ".".to_string()
            } else {
                parent_rel.clone()
            };
            s.entry(format!("{k} [opaque]"))
                .or_insert_with(|| "opaque".into());
            continue;
        }
        if let Some(target) = name.strip_prefix(".wh.") {
            s.insert(key_of(target), "whiteout".into());
            continue;
        }
        if md.file_type().is_char_device() && md.rdev() == 0 {
            s.insert(r.clone(), "whiteout".into());
            continue;
        }
        let key = if r.is_empty() {
            ".".to_string()
        } else {
            r.clone()
        };
        let mut line = describe(&p, o, &keep);
        if md.is_dir() {
            for x in OPAQUE_XATTRS {
                if sys::getxattr(&p, x).map(|v| v == b"y").unwrap_or(false) {
                    s.insert(format!("{key} [opaque]"), "opaque".into());
                }
            }
            for x in REDIRECT_XATTRS {
                // Only the presence: the same rename is spelled differently (relative or
                // absolute, through renamed ancestors or not); what it means is checked by
                // mounting each upper dir with the other implementation (cross-mount).
                if sys::getxattr(&p, x).is_ok() {
                    line += " redirect";
                }
            }
        }
        s.insert(key, line);
    }
    s
}

pub fn upper_default(root: &Path) -> Snap {
    upper(
        root,
        SnapOpts {
            dir_nlink: false,
            ..SnapOpts::default()
        },
    )
}

/// The differences between two snapshots, one line per path; None when equal.
pub fn diff(a: &Snap, b: &Snap, an: &str, bn: &str) -> Option<String> {
    let mut out = String::new();
    for (k, va) in a {
        match b.get(k) {
            None => out += &format!("  {k}: only in {an}: {va}\n"),
            Some(vb) if vb != va => out += &format!("  {k}:\n    {an}: {va}\n    {bn}: {vb}\n"),
            _ => {}
        }
    }
    for (k, vb) in b {
        if !a.contains_key(k) {
            out += &format!("  {k}: only in {bn}: {vb}\n");
        }
    }
    if out.is_empty() { None } else { Some(out) }
}

#[track_caller]
pub fn assert_same(what: &str, a: &Snap, b: &Snap, an: &str, bn: &str) {
    if let Some(d) = diff(a, b, an, bn) {
        panic!("{what}: trees differ ({an} vs {bn}):\n{d}");
    }
}

pub fn show(s: &Snap) -> String {
    s.iter().map(|(k, v)| format!("  {k}: {v}\n")).collect()
}

fn short(h: &str) -> &str {
    &h[..16.min(h.len())]
}

fn is_whiteout_md(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque_dir(p: &Path) -> bool {
    OPAQUE_XATTRS
        .iter()
        .any(|x| sys::getxattr(p, x).map(|v| v == b"y").unwrap_or(false))
        || p.join(".wh..wh..opq").exists()
}

/// Does the stack of lower layers (top first) show a directory with entries at `rel`?
/// Only then does an opaque marker on the upper copy of `rel` change what a mount shows.
pub fn lowers_show_nonempty_dir(lowers: &[std::path::PathBuf], rel: &str) -> bool {
    dir_layers(lowers, rel).iter().any(|d| {
        fs::read_dir(d)
            .map(|rd| {
                rd.flatten().any(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    !n.starts_with(".wh.")
                        && !e.metadata().map(|m| is_whiteout_md(&m)).unwrap_or(false)
                })
            })
            .unwrap_or(false)
    })
}

/// The layer directories (top first) that make up the merged directory `rel` of a stack.
pub fn dir_layers(lowers: &[std::path::PathBuf], rel: &str) -> Vec<std::path::PathBuf> {
    let comps: Vec<&str> = rel
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let mut live: Vec<std::path::PathBuf> = lowers.to_vec();
    for c in comps {
        let mut next = Vec::new();
        for dir in &live {
            let p = dir.join(c);
            let Ok(md) = fs::symlink_metadata(&p) else {
                if dir.join(format!(".wh.{c}")).exists() {
                    break;
                }
                continue;
            };
            if is_whiteout_md(&md) || !md.is_dir() {
                break;
            }
            next.push(p.clone());
            if is_opaque_dir(&p) {
                break;
            }
        }
        live = next;
        if live.is_empty() {
            return live;
        }
    }
    if let Some(i) = live.iter().position(|d| is_opaque_dir(d)) {
        live.truncate(i + 1);
    }
    live
}

/// `upper`, minus opaque markers that change nothing (kernel overlayfs marks every dir it
/// creates inside a merged dir opaque as a lookup shortcut; that is not a semantic difference).
pub fn upper_semantic(root: &Path, lowers: &[std::path::PathBuf], o: SnapOpts) -> Snap {
    let mut s = upper(root, o);
    // below an opaque dir nothing of the lowers shows, so markers there change nothing either
    let opaque: Vec<String> = s
        .keys()
        .filter_map(|k| k.strip_suffix(" [opaque]"))
        .map(|k| k.to_string())
        .collect();
    let under_opaque = |p: &str| {
        opaque.iter().any(|o| {
            o == "."
                || (p.len() > o.len() && p.starts_with(o.as_str()) && p.as_bytes()[o.len()] == b'/')
        })
    };
    // in and below a renamed (redirected) dir, the lower entries a marker hides live at the
    // redirect's origin, not at this path: leave those markers to the cross-mount check
    let redirected: Vec<String> = s
        .iter()
        .filter(|(_, v)| v.ends_with(" redirect"))
        .map(|(k, _)| k.clone())
        .collect();
    let under_redirect = |p: &str| {
        redirected.iter().any(|o| {
            o == p
                || (p.len() > o.len() && p.starts_with(o.as_str()) && p.as_bytes()[o.len()] == b'/')
        })
    };
    s.retain(|k, v| match k.strip_suffix(" [opaque]") {
        Some(dir) => {
            !under_opaque(dir) && !under_redirect(dir) && lowers_show_nonempty_dir(lowers, dir)
        }
        None if v == "whiteout" => {
            !under_opaque(k) && !under_redirect(k) && lowers_show_entry(lowers, k)
        }
        None => true,
    });
    s
}

/// Does the stack of lower layers show an entry at `rel`? A whiteout in the upper dir where
/// nothing shows below hides nothing (kernel overlayfs writes none there; a redundant one is
/// not a semantic difference).
pub fn lowers_show_entry(lowers: &[std::path::PathBuf], rel: &str) -> bool {
    let (parent, name) = match rel.rfind('/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => ("", rel),
    };
    for d in dir_layers(lowers, parent) {
        if d.join(format!(".wh.{name}")).exists() {
            return false;
        }
        if let Ok(md) = fs::symlink_metadata(d.join(name)) {
            return !is_whiteout_md(&md);
        }
    }
    false
}
