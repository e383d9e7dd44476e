//! Fidelity of owners, modes and file capabilities through the store (issue 9):
//! `security.capability` survives load, mount, save and commit (as root). Images are built
//! in code; what is expected comes from the tar headers, not from the store.

use super::build::{self, Layer};
use super::util::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
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
