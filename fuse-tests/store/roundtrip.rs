//! Round trips through the store's own reading of a layer stack: after renames of lower
//! directories (redirects), through opaque dirs and whiteouts, `container export`,
//! `container diff` and `container commit` + `image mount` must show exactly what the
//! container's own FUSE mount (`layerfs container mount`) showed. The mount is the reference:
//! each test takes a view of it, unmounts, and compares every store verb with that view.
//! Images are built in code; `random` does the same with random images and operations,
//! `errors` pins what commit and export do with a file they cannot read.

mod errors;
mod random;
mod redirects;

use super::build::{self, Layer};
use super::util::*;
use crate::common::snap::{self, Snap};
use crate::common::sys;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What a tree shows: one line per path (type, mode, owner, size + content hash, link
/// target, `user.*` xattrs; no times, no nlink) and its hard-link groups (two or more
/// paths that are one file).
pub struct View {
    pub snap: Snap,
    pub links: BTreeSet<Vec<String>>,
}

fn line(kind: &str, mode: u32, (uid, gid): (u64, u64), extra: &str, x: &Xattrs) -> String {
    let mut s = format!("{kind} mode={:o} uid={uid} gid={gid}{extra}", mode & 0o7777);
    if !x.is_empty() {
        let parts: Vec<String> = x
            .iter()
            .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v).escape_debug()))
            .collect();
        s += &format!(" xattrs[{}]", parts.join(","));
    }
    s
}

type Xattrs = BTreeMap<String, Vec<u8>>;

fn groups(sets: impl Iterator<Item = Vec<String>>) -> BTreeSet<Vec<String>> {
    sets.filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect()
}

/// The view of a mounted tree (the root itself is not part of it: a tar has no entry for it).
pub fn mount_view(root: &Path) -> View {
    let mut s = Snap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    for rel in snap::paths(root) {
        let p = root.join(&rel);
        let md = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("lstat {rel}: {e}"));
        let ft = md.file_type();
        let extra = if ft.is_file() {
            format!(" size={} sha={}", md.size(), snap::sha256_file(&p))
        } else if ft.is_symlink() {
            let t = std::fs::read_link(&p).unwrap_or_else(|e| panic!("readlink {rel}: {e}"));
            format!(" -> {}", t.display())
        } else {
            String::new()
        };
        let mut x = Xattrs::new();
        if !ft.is_symlink() {
            let names = sys::listxattr(&p).unwrap_or_else(|e| panic!("listxattr {rel}: {e}"));
            for n in names.into_iter().filter(|n| n.starts_with("user.")) {
                let v = sys::getxattr(&p, &n).unwrap_or_else(|e| panic!("getxattr {rel}: {e}"));
                x.insert(n, v);
            }
        }
        if !ft.is_dir() && md.nlink() > 1 {
            inodes
                .entry((md.dev(), md.ino()))
                .or_default()
                .push(rel.clone());
        }
        let kind = snap::kind(&md);
        s.insert(
            rel,
            line(
                &kind,
                md.mode(),
                (md.uid().into(), md.gid().into()),
                &extra,
                &x,
            ),
        );
    }
    View {
        snap: s,
        links: groups(inodes.into_values()),
    }
}

fn tar_path(p: &Path) -> String {
    let s = p.to_string_lossy();
    s.trim_start_matches("./").trim_end_matches('/').to_string()
}

/// The view of a tar (`container export`), read from its headers, so owners and modes are
/// exactly what the tar says. A hard link shows what its target shows.
pub fn tar_view(data: &[u8]) -> Result<View, String> {
    let mut s = Snap::new();
    let mut group_of: BTreeMap<String, String> = BTreeMap::new();
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut ar = tar::Archive::new(data);
    for e in ar
        .entries()
        .map_err(|e| format!("cannot read the tar: {e}"))?
    {
        let mut e = e.map_err(|e| format!("bad tar entry: {e}"))?;
        let rel = tar_path(&e.path().map_err(|e| format!("bad path: {e}"))?);
        let bad = |what: &str, e: std::io::Error| format!("{rel}: {what}: {e}");
        let mut x = Xattrs::new();
        if let Some(pax) = e.pax_extensions().map_err(|er| bad("pax", er))? {
            for r in pax {
                let r = r.map_err(|er| bad("pax record", er))?;
                let key = r
                    .key()
                    .map_err(|_| format!("{rel}: a PAX key is not UTF-8"))?;
                if let Some(n) = key.strip_prefix("SCHILY.xattr.")
                    && n.starts_with("user.")
                {
                    x.insert(n.to_string(), r.value_bytes().to_vec());
                }
            }
        }
        if rel.is_empty() || rel == "." {
            continue;
        }
        let h = e.header().clone();
        let mode = h.mode().map_err(|er| bad("mode", er))?;
        let owner = (
            h.uid().map_err(|er| bad("uid", er))?,
            h.gid().map_err(|er| bad("gid", er))?,
        );
        let target = || -> Result<String, String> {
            let t = h.link_name().map_err(|er| bad("link name", er))?;
            Ok(t.map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default())
        };
        use tar::EntryType as T;
        let (kind, extra) = match h.entry_type() {
            T::Regular | T::Continuous => {
                let mut buf = Vec::new();
                e.read_to_end(&mut buf).map_err(|er| bad("content", er))?;
                let sha = snap::sha256_bytes(&buf);
                ("file".to_string(), format!(" size={} sha={sha}", buf.len()))
            }
            T::Directory => ("dir".to_string(), String::new()),
            T::Symlink => ("symlink".to_string(), format!(" -> {}", target()?)),
            T::Fifo => ("fifo".to_string(), String::new()),
            t @ (T::Char | T::Block) => {
                let maj = h.device_major().ok().flatten().unwrap_or(0);
                let min = h.device_minor().ok().flatten().unwrap_or(0);
                let k = if t == T::Char { "char" } else { "block" };
                (format!("{k}({maj}:{min})"), String::new())
            }
            T::Link => {
                let t = tar_path(Path::new(&target()?));
                let Some(l) = s.get(&t).cloned() else {
                    return Err(format!(
                        "{rel}: hard link to {t}, which the tar has not had"
                    ));
                };
                if s.insert(rel.clone(), l).is_some() {
                    return Err(format!("{rel}: twice in the tar"));
                }
                let g = group_of.get(&t).cloned().unwrap_or(t.clone());
                group_of.insert(t.clone(), g.clone());
                group_of.insert(rel.clone(), g.clone());
                let m = members.entry(g).or_insert_with(|| vec![t]);
                m.push(rel);
                continue;
            }
            t => return Err(format!("{rel}: unexpected entry type {t:?}")),
        };
        if s.insert(rel.clone(), line(&kind, mode, owner, &extra, &x))
            .is_some()
        {
            return Err(format!("{rel}: twice in the tar"));
        }
    }
    Ok(View {
        snap: s,
        links: groups(members.into_values()),
    })
}

/// Mount container `c` read-write, run `ops` in it, take the mount's view, unmount (also
/// when `ops` panics).
pub fn in_container(st: &St, c: &str, ops: impl FnOnce(&Path)) -> View {
    let mnt = st.path(&format!("mnt-{c}"));
    std::fs::create_dir_all(&mnt).expect("mkdir mountpoint");
    st.ok(&["container", "mount", c, mnt.to_str().expect("utf8")]);
    let _g = MountGuard(mnt.clone());
    ops(&mnt);
    mount_view(&mnt)
}

/// The view of `image mount IMG` (read-only).
pub fn image_view(st: &St, img: &str) -> Result<View, String> {
    let mnt = st.path(&format!("mnt-{}", img.replace([':', '/'], "_")));
    std::fs::create_dir_all(&mnt).map_err(|e| format!("mkdir {}: {e}", mnt.display()))?;
    let o = st.run(&["image", "mount", img, mnt.to_str().expect("utf8")]);
    if o.code != 0 {
        return Err(format!("image mount {img} failed: {}", o.stderr));
    }
    let _g = MountGuard(mnt.clone());
    Ok(mount_view(&mnt))
}

/// A store holding `img:1` made of `layers` (bottom first) and container `c1` on it, plus
/// the image's own view; None (with the reason printed) where FUSE mounts are not possible.
pub fn setup(layers: Vec<Vec<u8>>) -> Option<(St, View)> {
    if let Some(why) = can_fuse() {
        eprintln!("skipped: {why}");
        return None;
    }
    let st = St::new();
    let img = build::Img::new(layers, &["img:1"], "roundtrip");
    let p = st.path("img.tar");
    std::fs::write(&p, build::docker_archive(&[&img])).expect("write image archive");
    st.ok(&["image", "load", "-i", p.to_str().expect("utf8")]);
    st.ok(&["container", "create", "img:1", "--name", "c1"]);
    let base = image_view(&st, "img:1").expect("image mount of img:1");
    Some((st, base))
}

fn ancestors(p: &str) -> impl Iterator<Item = &str> {
    p.match_indices('/')
        .map(|(i, _)| &p[..i])
        .chain(std::iter::once(p))
}

/// What is wrong with `container diff` output `out`, given the image's view `base` and the
/// container mount's view `want`. The rules that are clearly right (docker's): A names a
/// path the container shows, C one both show, D one the image shows and the container does
/// not; each path at most once; every path only the container shows is A, the topmost of
/// every run of deleted paths is D, and a path whose entry changed is A or C.
pub fn diff_problems(out: &str, base: &Snap, want: &Snap) -> Vec<String> {
    let mut bad = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for l in out.lines() {
        let (k, p) = match l.split_once(' ') {
            Some((k, p)) if k.len() == 1 && p.starts_with('/') => {
                (k.chars().next().unwrap_or('?'), p[1..].to_string())
            }
            _ => {
                bad.push(format!("unparsable line {l:?}"));
                continue;
            }
        };
        let (i, m) = (base.contains_key(&p), want.contains_key(&p));
        let ok = match k {
            'A' => m,
            'C' => i && m,
            'D' => i && !m,
            _ => false,
        };
        if !ok {
            let shows = |b: bool| if b { "shows it" } else { "does not show it" };
            bad.push(format!(
                "{l:?}: the image {}, the container {}",
                shows(i),
                shows(m)
            ));
        }
        let kinds = seen.entry(p.clone()).or_default();
        if !kinds.is_empty() {
            bad.push(format!("/{p} listed twice ({kinds} and {k})"));
        }
        kinds.push(k);
    }
    let has = |p: &str, kinds: &str| {
        seen.get(p)
            .is_some_and(|k| k.chars().any(|c| kinds.contains(c)))
    };
    for (p, v) in want {
        match base.get(p) {
            None if !has(p, "A") => bad.push(format!("missing \"A /{p}\" (new: {v})")),
            Some(b) if b != v && !has(p, "AC") => {
                bad.push(format!("missing \"C /{p}\" (was {b}, is {v})"))
            }
            _ => {}
        }
    }
    // A dir that became a non-dir is one change (its C): what was below it is not listed.
    let is_dir = |v: &String| v.starts_with("dir ");
    let mut deleted = BTreeSet::new();
    for p in base.keys().filter(|p| !want.contains_key(*p)) {
        let replaced = ancestors(p).any(|a| a != p && want.get(a).is_some_and(|v| !is_dir(v)));
        let top = ancestors(p).find(|a| base.contains_key(*a) && !want.contains_key(*a));
        if let (false, Some(top)) = (replaced, top) {
            deleted.insert(top.to_string());
        }
    }
    for p in deleted {
        if !has(&p, "D") {
            bad.push(format!("missing \"D /{p}\""));
        }
    }
    bad
}

/// Everything in which export, diff and commit + image mount of container `c` disagree
/// with `want` (the view of its mount) and `base` (the image's view).
pub fn check_store(st: &St, c: &str, base: &View, want: &View) -> Vec<String> {
    let mut bad = Vec::new();
    let tarp = st.path(&format!("{c}-export.tar"));
    let o = st.run(&["container", "export", c, "-o", tarp.to_str().expect("utf8")]);
    if o.code != 0 {
        bad.push(format!("container export failed: {}", o.stderr));
    } else {
        let data = std::fs::read(&tarp).expect("read export tar");
        match tar_view(&data) {
            Err(e) => bad.push(format!("export: {e}")),
            Ok(v) => {
                if let Some(d) = snap::diff(&want.snap, &v.snap, "mount", "export") {
                    bad.push(format!("export differs from the mount:\n{d}"));
                }
                if v.links != want.links {
                    bad.push(format!(
                        "export hard links {:?}, the mount's {:?}",
                        v.links, want.links
                    ));
                }
            }
        }
    }
    let o = st.run(&["container", "diff", c]);
    if o.code != 0 {
        bad.push(format!("container diff failed: {}", o.stderr));
    } else {
        let p = diff_problems(&o.stdout, &base.snap, &want.snap);
        if !p.is_empty() {
            bad.push(format!(
                "container diff:\n  {}\n  (it printed:\n{})",
                p.join("\n  "),
                o.stdout
            ));
        }
    }
    let img = format!("{c}-commit:1");
    let o = st.run(&["container", "commit", c, &img]);
    if o.code != 0 {
        bad.push(format!("container commit failed: {}", o.stderr));
    } else {
        match image_view(st, &img) {
            Err(e) => bad.push(e),
            Ok(v) => {
                if let Some(d) = snap::diff(&want.snap, &v.snap, "mount", "commit") {
                    bad.push(format!(
                        "image mount of the commit differs from the mount:\n{d}"
                    ));
                }
            }
        }
    }
    bad
}

#[track_caller]
pub fn assert_store_matches(st: &St, c: &str, base: &View, want: &View) {
    let bad = check_store(st, c, base, want);
    assert!(
        bad.is_empty(),
        "container {c}: the store disagrees with its mount:\n- {}\nthe mount showed:\n{}",
        bad.join("\n- "),
        snap::show(&want.snap)
    );
}

/// The mount did what the test means (so a difference later is the store's): `present`
/// paths are there, `absent` ones are not.
#[track_caller]
pub fn expect_paths(v: &View, present: &[&str], absent: &[&str]) {
    for p in present {
        assert!(
            v.snap.contains_key(*p),
            "the mount should show {p}:\n{}",
            snap::show(&v.snap)
        );
    }
    for p in absent {
        assert!(
            !v.snap.contains_key(*p),
            "the mount should not show {p}:\n{}",
            snap::show(&v.snap)
        );
    }
}

/// `sh -c script` in the mount, which must succeed.
#[track_caller]
pub fn sh_in(mnt: &Path, script: &str) {
    let (code, out, err) = crate::common::sh(script, mnt);
    assert_eq!(code, 0, "{script}: {out}{err}");
}

/// Three layers; the middle one makes `/a` opaque (hiding the bottom layer's `a/keep0`,
/// `a/dir/one`, `a/dir/sub/two`, `a/dir/sub2/zero`) and `p/q` opaque. `m` and `n` merge
/// through all three.
fn opaque_a_image() -> Vec<Vec<u8>> {
    let bottom = Layer::new()
        .dir("a", 0o755, 0, 0)
        .dir("a/dir", 0o755, 0, 0)
        .file("a/dir/one", b"one\n", 0o644)
        .dir("a/dir/sub", 0o755, 0, 0)
        .file("a/dir/sub/two", b"two\n", 0o644)
        .dir("a/dir/sub2", 0o755, 0, 0)
        .file("a/dir/sub2/zero", b"zero\n", 0o644)
        .file("a/keep0", b"k0\n", 0o644)
        .dir("b", 0o755, 0, 0)
        .file("b/old", b"old\n", 0o644)
        .dir("m", 0o755, 0, 0)
        .dir("m/d", 0o750, 1000, 1000)
        .file("m/d/low", b"low\n", 0o640)
        .dir("m/d/inner", 0o755, 0, 0)
        .file("m/d/inner/deep", b"deep\n", 0o644)
        .dir("n", 0o755, 0, 0)
        .dir("n/inner3", 0o755, 0, 0)
        .file("n/inner3/x3", b"x3\n", 0o644)
        .dir("p", 0o755, 0, 0)
        .dir("p/q", 0o755, 0, 0)
        .file("p/q/low", b"hidden\n", 0o644)
        .tar();
    let middle = Layer::new()
        .dir("a", 0o755, 0, 0)
        .opaque("a")
        .dir("a/dir", 0o755, 0, 0)
        .file("a/dir/mid", b"mid\n", 0o644)
        .dir("a/dir/sub2", 0o755, 0, 0)
        .file("a/dir/sub2/three", b"three\n", 0o600)
        .file("a/m1", b"m1\n", 0o644)
        .dir("m", 0o755, 0, 0)
        .dir("m/d", 0o750, 1000, 1000)
        .file("m/d/mid1", b"mid1\n", 0o644)
        .dir("p", 0o755, 0, 0)
        .dir("p/q", 0o755, 0, 0)
        .opaque("p/q")
        .file("p/q/mid", b"mid\n", 0o644)
        .tar();
    let top = Layer::new()
        .dir("a", 0o755, 0, 0)
        .dir("a/dir", 0o755, 0, 0)
        .file("a/dir/top", b"top\n", 0o644)
        .dir("b", 0o755, 0, 0)
        .file("b/t", b"t\n", 0o644)
        .dir("c", 0o755, 0, 0)
        .dir("m", 0o755, 0, 0)
        .dir("m/d", 0o750, 1000, 1000)
        .file("m/d/top2", b"top2\n", 0o644)
        .tar();
    vec![bottom, middle, top]
}

/// Reported bug 1: a lower dir moved out of an opaque dir; export showed what the opaque
/// layer hides (b/moved/one, b/moved/sub/two).
#[test]
fn bug_move_out_of_opaque_dir_then_export() {
    let Some((st, base)) = setup(opaque_a_image()) else {
        return;
    };
    expect_paths(
        &base,
        &["a/dir/mid", "a/dir/top"],
        &["a/dir/one", "a/keep0"],
    );
    let want = in_container(&st, "c1", |m| sh_in(m, "mv a/dir b/moved"));
    expect_paths(
        &want,
        &["b/moved/mid", "b/moved/sub2/three", "b/moved/top", "b/old"],
        &["a/dir", "b/moved/one", "b/moved/sub", "b/moved/sub2/zero"],
    );
    assert_store_matches(&st, "c1", &base, &want);
}

/// Reported bug 2: a chain of renames ending in the old name's reuse, then `mv b a/b`;
/// the committed image lacked a/dir and a/dir/z (export had them).
#[test]
fn bug_rename_chain_and_reused_name_then_commit() {
    let Some((st, base)) = setup(opaque_a_image()) else {
        return;
    };
    let want = in_container(&st, "c1", |m| {
        sh_in(
            m,
            "mv a/dir b/d1 && mv b/d1 a/d2 && mv a/d2 a/dir2 && mkdir a/dir \
             && echo z > a/dir/z && mv b a/b",
        )
    });
    expect_paths(
        &want,
        &[
            "a/dir/z",
            "a/dir2/mid",
            "a/dir2/top",
            "a/b/old",
            "a/b/t",
            "a/m1",
        ],
        &["b", "a/dir/mid", "a/dir2/one", "a/keep0"],
    );
    assert_store_matches(&st, "c1", &base, &want);
}

/// A rename within a directory that merges through every layer (a relative redirect).
#[test]
fn relative_redirect_in_merged_dir() {
    let Some((st, base)) = setup(opaque_a_image()) else {
        return;
    };
    let want = in_container(&st, "c1", |m| {
        sh_in(
            m,
            "mv m/d m/e && echo new > m/e/added && mv m/e/low m/e/low2",
        )
    });
    expect_paths(
        &want,
        &[
            "m/e/low2",
            "m/e/mid1",
            "m/e/top2",
            "m/e/inner/deep",
            "m/e/added",
        ],
        &["m/d", "m/e/low"],
    );
    assert_store_matches(&st, "c1", &base, &want);
}

/// A rename within the opaque dir `a`: the bottom layer's a/dir stays hidden.
#[test]
fn relative_redirect_under_opaque_dir() {
    let Some((st, base)) = setup(opaque_a_image()) else {
        return;
    };
    let want = in_container(&st, "c1", |m| sh_in(m, "mv a/dir a/ren"));
    expect_paths(
        &want,
        &["a/ren/mid", "a/ren/top"],
        &["a/dir", "a/ren/one", "a/ren/sub"],
    );
    assert_store_matches(&st, "c1", &base, &want);
}

/// Renames across dirs (absolute redirects) of a dir below the opaque `a` (its bottom-layer
/// twin a/dir/sub2/zero stays hidden) and of a dir that is itself opaque in the middle layer.
#[test]
fn absolute_redirect_through_opaque_middle_dir() {
    let Some((st, base)) = setup(opaque_a_image()) else {
        return;
    };
    let want = in_container(&st, "c1", |m| sh_in(m, "mv a/dir/sub2 c/s2 && mv p/q c/q"));
    expect_paths(
        &want,
        &["c/s2/three", "c/q/mid"],
        &["c/s2/zero", "c/q/low", "p/q", "a/dir/sub2"],
    );
    assert_store_matches(&st, "c1", &base, &want);
}

/// The middle layer deletes `/x`, the top one makes a new `/x`: moving x/sub and then x
/// itself must not bring back the bottom layer's x/old1 or x/sub/old2.
#[test]
fn rename_through_whiteouted_dir() {
    let bottom = Layer::new()
        .dir("x", 0o755, 0, 0)
        .file("x/old1", b"old1\n", 0o644)
        .dir("x/sub", 0o755, 0, 0)
        .file("x/sub/old2", b"old2\n", 0o644)
        .dir("y", 0o755, 0, 0)
        .tar();
    let middle = Layer::new().whiteout("x").file("w", b"w\n", 0o644).tar();
    let top = Layer::new()
        .dir("x", 0o700, 0, 0)
        .file("x/new", b"new\n", 0o644)
        .dir("x/sub", 0o755, 0, 0)
        .file("x/sub/new2", b"new2\n", 0o644)
        .dir("z", 0o755, 0, 0)
        .tar();
    let Some((st, base)) = setup(vec![bottom, middle, top]) else {
        return;
    };
    expect_paths(&base, &["x/new", "x/sub/new2"], &["x/old1", "x/sub/old2"]);
    let want = in_container(&st, "c1", |m| sh_in(m, "mv x/sub y/s && mv x z/x2"));
    expect_paths(
        &want,
        &["y/s/new2", "z/x2/new"],
        &["x", "y/s/old2", "z/x2/old1", "z/x2/sub"],
    );
    assert_store_matches(&st, "c1", &base, &want);
}

/// Chains of renames: a -> b -> c -> a, and names reused after rm and after a move.
#[test]
fn rename_chains_and_reused_names() {
    let Some((st, base)) = setup(opaque_a_image()) else {
        return;
    };
    let want = in_container(&st, "c1", |m| {
        sh_in(
            m,
            "mv m/d m/e && mv m/e c/f && mv c/f m/d \
             && mv b/old b/old2 && mv b/old2 b/old \
             && rm -rf m/d/inner && mkdir m/d/inner && echo again > m/d/inner/deep \
             && rm -rf b && mv a/dir b \
             && mkdir a/dir && mv m/d a/dir/d \
             && mv b m/d",
        )
    });
    expect_paths(
        &want,
        &[
            "m/d/mid",
            "m/d/top",
            "a/dir/d/low",
            "a/dir/d/mid1",
            "a/dir/d/inner/deep",
        ],
        &["b", "m/d/one", "m/d/low", "a/dir/mid", "c/f"],
    );
    assert_store_matches(&st, "c1", &base, &want);
}

/// A dir that holds a renamed dir (relative and absolute redirect) is renamed itself.
#[test]
fn rename_dir_containing_renamed_dir() {
    let Some((st, base)) = setup(opaque_a_image()) else {
        return;
    };
    let want = in_container(&st, "c1", |m| {
        sh_in(
            m,
            "mv m/d/inner m/d/inner2 && mv n/inner3 m/d/in3 && mv m/d c/outer",
        )
    });
    expect_paths(
        &want,
        &[
            "c/outer/inner2/deep",
            "c/outer/in3/x3",
            "c/outer/low",
            "c/outer/top2",
        ],
        &["m/d", "n/inner3", "c/outer/inner"],
    );
    assert_store_matches(&st, "c1", &base, &want);
}

/// rm -rf of a renamed dir, and of a dir holding a renamed dir.
#[test]
fn rm_rf_of_renamed_dirs() {
    let Some((st, base)) = setup(opaque_a_image()) else {
        return;
    };
    let want = in_container(&st, "c1", |m| {
        sh_in(
            m,
            "mv a/dir c/e && rm -rf c/e && mv n/inner3 m/d/in3 && rm -rf m/d",
        )
    });
    expect_paths(
        &want,
        &["a/m1", "m", "n"],
        &["a/dir", "c/e", "m/d", "n/inner3"],
    );
    assert_store_matches(&st, "c1", &base, &want);
}

/// Symlinks, hard links, fifos, set-id modes, owners and user xattrs inside a moved dir.
#[test]
fn special_files_in_moved_dir() {
    let bottom = Layer::new()
        .dir("s", 0o755, 0, 0)
        .dir("s/dir", 0o755, 0, 0)
        .xattr_file("s/dir/file", b"file\n", "user.k", b"v")
        .hardlink("s/dir/hl", "s/dir/file")
        .hardlink("s/out", "s/dir/file")
        .file_owned("s/dir/suid", b"suid\n", 0o4755, 1000, 1000)
        .symlink("s/dir/link", "file")
        .fifo("s/dir/fifo")
        .dir("s/dir/sub", 0o755, 0, 0)
        .file("s/dir/sub/f", b"f\n", 0o644)
        .tar();
    let middle = Layer::new()
        .dir("s", 0o755, 0, 0)
        .dir("s/dir", 0o755, 0, 0)
        .xattr_file("s/dir/mid", b"mid\n", "user.m", b"\x00\xffbin")
        .file_owned("s/dir/g", b"g\n", 0o2755, 0, 50)
        .tar();
    let top = Layer::new().dir("t", 0o755, 0, 0).tar();
    let Some((st, base)) = setup(vec![bottom, middle, top]) else {
        return;
    };
    let want = in_container(&st, "c1", |m| {
        sh_in(
            m,
            "mv s/dir t/dir2 && ln -s ../../s/out t/dir2/newlink && ln t/dir2/mid t/dir2/mid.hl \
             && mkfifo t/dir2/newfifo && chmod 4755 t/dir2/sub/f && chmod 2750 t/dir2/sub \
             && setfattr -n user.new -v val t/dir2/sub && mkdir t/dir2/tmp \
             && chmod 1777 t/dir2/tmp && mv t/dir2/link t/dir2/sub/link",
        );
        std::os::unix::fs::lchown(m.join("t/dir2/g"), Some(7), Some(8)).expect("chown g");
        sys::setxattr(&m.join("t/dir2/suid"), "user.after", b"move", 0).expect("setxattr");
        std::os::unix::fs::symlink("dangling", m.join("t/dir2/tmp/l")).expect("symlink");
    });
    expect_paths(
        &want,
        &[
            "t/dir2/hl",
            "t/dir2/fifo",
            "t/dir2/sub/link",
            "t/dir2/mid.hl",
            "s/out",
        ],
        &["s/dir", "t/dir2/link"],
    );
    assert!(
        want.snap["t/dir2/sub/f"].starts_with("file mode=4755"),
        "{}",
        want.snap["t/dir2/sub/f"]
    );
    assert!(
        want.links
            .contains(&vec!["t/dir2/mid".to_string(), "t/dir2/mid.hl".to_string()]),
        "the new hard link shows as one file: {:?}",
        want.links
    );
    assert_store_matches(&st, "c1", &base, &want);
}
