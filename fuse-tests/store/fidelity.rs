//! Fidelity of owners, modes, types and file capabilities through the store (issue 9):
//! `security.capability` survives load, mount, save and commit (as root), and a store loaded
//! by an unprivileged user presents every entry type with the image's owner and mode in its
//! mounts and writes them back in save, export and commit. Images are built in code; the
//! expected views come from the tar headers, not from the store.

use super::build::{self, Layer};
use super::util::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `struct vfs_cap_data` revision 2 for `cap_net_raw+ep`: magic_etc = revision 2 with the
/// effective flag, permitted[0] = 1 << CAP_NET_RAW (13), everything else 0 (little endian).
fn cap_net_raw_ep() -> Vec<u8> {
    [0x0200_0001u32, 1 << 13, 0, 0, 0]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect()
}

const CAP: &str = "security.capability";

/// What `lstat` (and readlink) shows of one entry; `nlink` 0 for directories (not compared).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    kind: &'static str,
    mode: u32,
    uid: u64,
    gid: u64,
    target: String,
    dev: (u64, u64),
    nlink: u64,
}

/// One tar header, reduced to what a round trip must keep.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hdr {
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    link: String,
    dev: (u64, u64),
    xattrs: BTreeMap<String, Vec<u8>>,
}

fn clean(p: &str) -> String {
    p.trim_start_matches("./").trim_end_matches('/').to_string()
}

fn headers(tar: &[u8]) -> BTreeMap<String, Hdr> {
    let mut out = BTreeMap::new();
    let mut ar = tar::Archive::new(tar);
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let mut xattrs = BTreeMap::new();
        if let Some(exts) = e.pax_extensions().expect("pax") {
            for x in exts {
                let x = x.expect("pax record");
                if let Some(n) = x.key().expect("key").strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(n.to_string(), x.value_bytes().to_vec());
                }
            }
        }
        let h = e.header();
        let kind = h.entry_type().as_byte();
        let dev = if matches!(h.entry_type(), tar::EntryType::Char | tar::EntryType::Block) {
            (
                h.device_major().expect("major").unwrap_or(0) as u64,
                h.device_minor().expect("minor").unwrap_or(0) as u64,
            )
        } else {
            (0, 0)
        };
        let hd = Hdr {
            kind,
            mode: h.mode().expect("mode") & 0o7777,
            uid: h.uid().expect("uid"),
            gid: h.gid().expect("gid"),
            link: e
                .link_name()
                .expect("link")
                .map(|l| clean(&l.display().to_string()))
                .unwrap_or_default(),
            dev,
            xattrs,
        };
        let p = clean(&e.path().expect("path").display().to_string());
        if !p.is_empty() {
            out.insert(p, hd);
        }
    }
    out
}

/// What a mount of a one-layer image with these headers must show.
fn expected_view(h: &BTreeMap<String, Hdr>) -> BTreeMap<String, Meta> {
    let mut out = BTreeMap::new();
    let mut links = Vec::new();
    for (p, e) in h {
        let kind = match tar::EntryType::new(e.kind) {
            tar::EntryType::Directory => "dir",
            tar::EntryType::Regular => "file",
            tar::EntryType::Symlink => "symlink",
            tar::EntryType::Fifo => "fifo",
            tar::EntryType::Char => "char",
            tar::EntryType::Block => "block",
            tar::EntryType::Link => {
                links.push((p.clone(), e.link.clone()));
                continue;
            }
            t => panic!("{p}: unexpected entry type {t:?}"),
        };
        let m = Meta {
            kind,
            mode: if kind == "symlink" { 0o777 } else { e.mode },
            uid: e.uid,
            gid: e.gid,
            target: if kind == "symlink" {
                e.link.clone()
            } else {
                String::new()
            },
            dev: e.dev,
            nlink: if kind == "dir" { 0 } else { 1 },
        };
        out.insert(p.clone(), m);
    }
    for (p, t) in &links {
        let n = 1 + links.iter().filter(|(_, x)| x == t).count() as u64;
        let mut m = out[t].clone();
        m.nlink = n;
        out.insert(t.clone(), m.clone());
        out.insert(p.clone(), m);
    }
    out
}

fn dev_parts(rdev: u64) -> (u64, u64) {
    (
        ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff),
        (rdev & 0xff) | ((rdev >> 12) & !0xff),
    )
}

/// Every entry under `root` as lstat and readlink show it.
fn view_of(root: &Path) -> BTreeMap<String, Meta> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Meta>) {
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).expect("lstat");
            let ft = md.file_type();
            let kind = if ft.is_dir() {
                "dir"
            } else if ft.is_symlink() {
                "symlink"
            } else if ft.is_fifo() {
                "fifo"
            } else if ft.is_char_device() {
                "char"
            } else if ft.is_block_device() {
                "block"
            } else if ft.is_socket() {
                "socket"
            } else {
                "file"
            };
            let m = Meta {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid() as u64,
                gid: md.gid() as u64,
                target: if ft.is_symlink() {
                    std::fs::read_link(&p)
                        .expect("readlink")
                        .display()
                        .to_string()
                } else {
                    String::new()
                },
                dev: if ft.is_char_device() || ft.is_block_device() {
                    dev_parts(md.rdev())
                } else {
                    (0, 0)
                },
                nlink: if ft.is_dir() { 0 } else { md.nlink() },
            };
            let rel = p.strip_prefix(root).expect("prefix").display().to_string();
            out.insert(rel, m);
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn assert_same_view(got: &BTreeMap<String, Meta>, want: &BTreeMap<String, Meta>, what: &str) {
    let mut bad = Vec::new();
    for (p, w) in want {
        match got.get(p) {
            Some(g) if g == w => {}
            Some(g) => bad.push(format!("{p}: shows {g:?}, the image has {w:?}")),
            None => bad.push(format!("{p}: missing")),
        }
    }
    for p in got.keys().filter(|p| !want.contains_key(*p)) {
        bad.push(format!("{p}: not in the image"));
    }
    assert!(bad.is_empty(), "{what}:\n{}", bad.join("\n"));
}

/// Owner, mode, type, link target and device must match; a hard link only by its target.
fn assert_same_headers(got: &Hdr, want: &Hdr, what: &str) {
    if want.kind == b'1' {
        assert_eq!((got.kind, &got.link), (want.kind, &want.link), "{what}");
        return;
    }
    let strip = |h: &Hdr| Hdr {
        xattrs: BTreeMap::new(),
        ..h.clone()
    };
    assert_eq!(strip(got), strip(want), "{what}");
}

/// The members of a tar archive (docker-archive) by name.
fn members(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut ar = tar::Archive::new(std::fs::File::open(path).expect("open archive"));
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = e.path().expect("path").display().to_string();
        let mut b = Vec::new();
        e.read_to_end(&mut b).expect("read member");
        out.insert(name, b);
    }
    out
}

/// The layer tars of the first image in a saved docker-archive, bottom first.
fn saved_layers(path: &Path) -> Vec<Vec<u8>> {
    let m = members(path);
    let man: serde_json::Value =
        serde_json::from_slice(m.get("manifest.json").expect("manifest.json")).expect("json");
    man[0]["Layers"]
        .as_array()
        .expect("Layers")
        .iter()
        .map(|l| m[l.as_str().expect("str")].clone())
        .collect()
}

fn touch(p: &Path) {
    let s = Command::new("touch").arg(p).status().expect("touch");
    assert!(s.success(), "touch {}", p.display());
}

#[test]
fn capabilities_survive_load_mount_save_commit() {
    if let Some(why) = can_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    let cap = cap_net_raw_ep();
    let layer = Layer::new()
        .dir("bin", 0o755, 0, 0)
        .xattr_file_owned("bin/ping", b"#!/bin/true\n", 0o755, (0, 0), CAP, &cap)
        .xattr_file_owned(
            "bin/arping",
            b"#!/bin/true\n",
            0o750,
            (1000, 1000),
            CAP,
            &cap,
        )
        .file_owned("bin/suid", b"suid\n", 0o4755, 1000, 1000)
        .file_owned("bin/sgid", b"sgid\n", 0o2755, 0, 50)
        .tar();
    let img = build::Img::new(vec![layer.clone()], &["caps:1"], "caps");
    let st = St::new();
    let p = st.path("caps.tar");
    std::fs::write(&p, build::docker_archive(&[&img])).expect("write");
    st.ok(&["image", "load", "-i", p.to_str().expect("utf8")]);
    let check = |dir: &Path, what: &str| {
        for f in ["bin/ping", "bin/arping"] {
            assert_eq!(
                getxattr(&dir.join(f), CAP).as_deref(),
                Some(&cap[..]),
                "{what}: {f} lost its capability"
            );
        }
        let md = std::fs::symlink_metadata(dir.join("bin/suid")).expect("suid");
        assert_eq!((md.mode(), md.uid()), (0o104755, 1000), "{what}: bin/suid");
        let md = std::fs::symlink_metadata(dir.join("bin/sgid")).expect("sgid");
        assert_eq!((md.mode(), md.gid()), (0o102755, 50), "{what}: bin/sgid");
    };
    let dirs = layer_dirs(&st, "caps:1");
    check(&dirs[0], "layer dir");
    let mnt = st.path("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    {
        st.ok(&["image", "mount", "caps:1", mnt.to_str().expect("utf8")]);
        let _g = MountGuard(mnt.clone());
        check(&mnt, "image mount");
    }
    // Save writes the PAX records back.
    let saved = st.path("saved.tar");
    st.ok(&[
        "image",
        "save",
        "-o",
        saved.to_str().expect("utf8"),
        "caps:1",
    ]);
    let h = headers(&saved_layers(&saved)[0]);
    for f in ["bin/ping", "bin/arping"] {
        assert_eq!(h[f].xattrs.get(CAP), Some(&cap), "saved {f}");
    }
    // A container that copied the files up (times only) commits them with it.
    st.ok(&["container", "create", "caps:1", "--name", "capc"]);
    {
        st.ok(&["container", "mount", "capc", mnt.to_str().expect("utf8")]);
        let _g = MountGuard(mnt.clone());
        for f in ["bin/ping", "bin/arping", "bin/suid", "bin/sgid"] {
            touch(&mnt.join(f));
        }
        check(&mnt, "container mount after copy-up");
    }
    let s = st.ok(&["container", "inspect", "capc"]);
    let v: serde_json::Value = serde_json::from_str(&s).expect("json");
    let upper = PathBuf::from(
        v[0]["GraphDriver"]["Data"]["UpperDir"]
            .as_str()
            .expect("upper"),
    );
    check(&upper, "container upper dir");
    st.ok(&["container", "commit", "capc", "caps:2"]);
    let dirs = layer_dirs(&st, "caps:2");
    assert_eq!(dirs.len(), 2);
    check(&dirs[0], "committed layer dir");
    let saved2 = st.path("saved2.tar");
    st.ok(&[
        "image",
        "save",
        "-o",
        saved2.to_str().expect("utf8"),
        "caps:2",
    ]);
    let layers = saved_layers(&saved2);
    let h = headers(&layers[1]);
    for f in ["bin/ping", "bin/arping"] {
        assert_eq!(
            h[f].xattrs.get(CAP),
            Some(&cap),
            "committed {f} in the saved tar"
        );
    }
    assert_eq!((h["bin/suid"].mode, h["bin/suid"].uid), (0o4755, 1000));
}

/// Every kind of entry an unprivileged user cannot create as the image has it. `srv/` is
/// the test user's, so that user can rename what is in it (a copy-up of each kind).
fn odd_owners_layer(uid: u64, gid: u64) -> Vec<u8> {
    Layer::new()
        .dir("bin", 0o755, 0, 0)
        .file("bin/busybox", b"#!/bin/true\n", 0o755)
        .symlink("bin/cat", "busybox")
        .symlink("bin/sh", "/bin/busybox")
        .dir("dev", 0o755, 0, 0)
        .chardev("dev/null", 1, 3)
        .fifo_owned("dev/initctl", 0o600, 0, 0)
        .dir("run", 0o755, 0, 0)
        .fifo_owned("run/www.fifo", 0o660, 33, 33)
        .dir("home", 0o755, 0, 0)
        .dir("home/u", 0o750, 1000, 1000)
        .symlink_owned("home/u/link", "../../bin/busybox", 1000, 1000)
        .symlink_owned("home/u/staff", "nowhere", 0, 50)
        .dir("usr", 0o755, 0, 0)
        .dir("usr/bin", 0o755, 0, 0)
        .file("usr/bin/passwd", b"passwd\n", 0o4755)
        .file_owned("usr/bin/pair1", b"pair\n", 0o640, 7, 8)
        .hardlink("usr/bin/pair2", "usr/bin/pair1")
        .dir("srv", 0o755, uid, gid)
        .symlink("srv/rootlink", "../bin/busybox")
        .symlink_owned("srv/mylink", "mine", uid, gid)
        .symlink_owned("srv/userlink", "/home/u", 1000, 1000)
        .fifo_owned("srv/fifo33", 0o640, 33, 33)
        .fifo_owned("srv/rootfifo", 0o644, 0, 0)
        .chardev("srv/null", 1, 3)
        .file("srv/suid", b"suid\n", 0o4755)
        .file_owned("srv/mine", b"mine\n", 0o600, uid, gid)
        // NAME_MAX names survive load, mount, save and commit.
        .file(&format!("srv/{}", "n".repeat(255)), b"long\n", 0o644)
        .symlink(&format!("bin/{}", "l".repeat(255)), "busybox")
        .tar()
}

const MOVED: [&str; 8] = [
    "rootlink", "mylink", "userlink", "fifo33", "rootfifo", "null", "suid", "mine",
];

#[test]
fn unprivileged_store_keeps_every_entry_type() {
    if let Some(why) = can_fuse() {
        eprintln!("skipped: needs root to switch users and mount: {why}");
        return;
    }
    let (uid, gid) = crate::common::test_user();
    let (u, g) = (uid as u64, gid as u64);
    let layer = odd_owners_layer(u, g);
    let orig = headers(&layer);
    let want = expected_view(&orig);
    let img = build::Img::new(vec![layer.clone()], &["odd:1"], "odd");
    let st = St::new();
    std::fs::set_permissions(st.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    user_dir(&st, "store");
    let outd = user_dir(&st, "out");
    let p = st.path("odd.tar");
    std::fs::write(&p, build::docker_archive(&[&img])).expect("write");
    let o = as_user(&st, &["image", "load", "-i", p.to_str().expect("utf8")]);
    if o.code != 0 && o.stderr.contains("Operation not supported") {
        eprintln!("skipped: no user xattrs on this filesystem: {}", o.stderr);
        return;
    }
    assert_eq!(o.code, 0, "{}", o.stderr);

    // The image mount shows what the tar headers say.
    let mnt = user_dir(&st, "mnt");
    let m = mnt.to_str().expect("utf8");
    {
        user_ok(&st, &["image", "mount", "--allow-other", "odd:1", m]);
        let _g = MountGuard(mnt.clone());
        assert_same_view(
            &view_of(&mnt),
            &want,
            "image mount of the unprivileged store",
        );
    }

    // In the layer dir: root-owned symlinks and fifos are real, the others stand-ins.
    let dir = &layer_dirs(&st, "odd:1")[0];
    let ov = |f: &str| {
        getxattr(&dir.join(f), "user.containers.override_stat")
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    };
    assert!(
        std::fs::symlink_metadata(dir.join("bin/cat"))
            .expect("cat")
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::symlink_metadata(dir.join("dev/initctl"))
            .expect("initctl")
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("srv/userlink")).expect("stand-in"),
        "/home/u"
    );
    assert_eq!(
        ov("srv/userlink").as_deref(),
        Some("1000:1000:120777:symlink")
    );
    assert_eq!(
        ov("srv/mylink"),
        Some(format!("{uid}:{gid}:120777:symlink"))
    );
    assert_eq!(ov("run/www.fifo").as_deref(), Some("33:33:10660:pipe"));
    assert_eq!(ov("srv/mine"), Some(format!("{uid}:{gid}:100600")));
    assert_eq!(
        std::fs::read_to_string(dir.parent().expect("cache dir").join("root-ids"))
            .expect("root-ids")
            .trim(),
        format!("{uid}:{gid}")
    );

    // Save gives back the original headers.
    let saved = outd.join("saved.tar");
    user_ok(
        &st,
        &[
            "image",
            "save",
            "-o",
            saved.to_str().expect("utf8"),
            "odd:1",
        ],
    );
    assert_eq!(
        headers(&saved_layers(&saved)[0]),
        orig,
        "saved layer headers"
    );

    // A container: every kind in srv/ is renamed (copied up) through its mount.
    user_ok(&st, &["container", "create", "odd:1", "--name", "odd"]);
    {
        user_ok(&st, &["container", "mount", "--allow-other", "odd", m]);
        let _g = MountGuard(mnt.clone());
        let script = MOVED
            .iter()
            .map(|f| format!("mv srv/{f} srv/{f}.m"))
            .collect::<Vec<_>>()
            .join(" && ");
        let (code, _, err) = crate::common::sh_as_user(&script, &mnt);
        assert_eq!(code, 0, "renames in the container mount: {err}");
        // What a rename copied up keeps its stand-in owner; real symlinks and fifos show
        // the user until commit (docs/store.md).
        let v = view_of(&mnt);
        for f in ["mylink", "userlink", "fifo33", "null", "suid", "mine"] {
            assert_eq!(v[&format!("srv/{f}.m")], want[&format!("srv/{f}")], "{f}");
        }
    }
    let mut moved_want = want.clone();
    let mut moved_orig = orig.clone();
    for f in MOVED {
        let (old, new) = (format!("srv/{f}"), format!("srv/{f}.m"));
        let m = moved_want.remove(&old).expect("in view");
        moved_want.insert(new.clone(), m);
        let h = moved_orig.remove(&old).expect("in tar");
        moved_orig.insert(new, h);
    }

    // Export: the merged view with the image's owners.
    let exp = outd.join("export.tar");
    user_ok(
        &st,
        &[
            "container",
            "export",
            "odd",
            "-o",
            exp.to_str().expect("utf8"),
        ],
    );
    let eh = headers(&std::fs::read(&exp).expect("read export"));
    assert_eq!(
        eh.keys().collect::<Vec<_>>(),
        moved_orig.keys().collect::<Vec<_>>(),
        "exported names"
    );
    for (p, w) in &moved_orig {
        assert_same_headers(&eh[p], w, &format!("exported {p}"));
    }

    // Commit: the renamed entries come back as the image had them.
    user_ok(&st, &["container", "commit", "odd", "odd:2"]);
    let saved2 = outd.join("committed.tar");
    user_ok(
        &st,
        &[
            "image",
            "save",
            "-o",
            saved2.to_str().expect("utf8"),
            "odd:2",
        ],
    );
    let layers = saved_layers(&saved2);
    assert_eq!(layers.len(), 2);
    assert_eq!(headers(&layers[0]), orig, "the base layer is untouched");
    let top = headers(&layers[1]);
    for f in MOVED {
        let (old, new) = (format!("srv/{f}"), format!("srv/{f}.m"));
        assert_same_headers(&top[&new], &orig[&old], &format!("committed {new}"));
        assert!(
            top.contains_key(&format!("srv/.wh.{f}")),
            "whiteout of {old}"
        );
    }
    {
        user_ok(&st, &["image", "mount", "--allow-other", "odd:2", m]);
        let _g = MountGuard(mnt.clone());
        assert_same_view(&view_of(&mnt), &moved_want, "image mount of the commit");
    }
}
