//! A data-root as dockerd lays it out, built file by file: layerdb entries with dockerd's
//! `tar-split.json.gz` (written by `dockertar`, not by layerfs), overlay2 layer dirs holding
//! what the overlay2 driver extracts (whiteouts as char 0:0 devices, opaque dirs as
//! `trusted.overlay.opaque`), `l/` links, the imagedb, `repositories.json`, a container's
//! layers in `layerdb/mounts`, and files dockerd keeps beside them (`engine-id`, `tmp/`).

use super::build::chain_ids;
use super::dockertar::{self, Ent, Kind, Style, Written, ent};
use super::util::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub const TAG: &str = "dockerroot/test:latest";
/// A file dockerd has in its temp dir (a pull in flight): nothing may remove it.
pub const DOCKERD_TMP: &str = "tmp/GetImageBlob1234567890";

fn file(p: &str, data: &[u8], mode: u32) -> Ent {
    ent(p, Kind::File(data.to_vec()), mode)
}
fn dir(p: &str) -> Ent {
    ent(p, Kind::Dir, 0o755)
}

/// A base layer as `docker build` makes one (Go writer): PAX for xattrs and a path too long
/// for USTAR, a prefix-split long path, setuid, owners, links, a fifo, JSON-escaped names.
fn base_layer() -> Vec<Ent> {
    let busybox: Vec<u8> = (0..70_001u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let long_dir = format!("usr/share/{}", "a".repeat(60));
    let mut xattr = file("etc/xattr-file", b"has an xattr\n", 0o644);
    xattr.xattrs.push(("user.note".into(), b"hello".to_vec()));
    let mut owned = dir("home/user");
    owned.mode = 0o700;
    owned.uid = 1000;
    owned.gid = 1000;
    let mut profile = file("home/user/.profile", b"export PS1='$ '\n", 0o600);
    profile.uid = 1000;
    profile.gid = 1000;
    vec![
        dir("bin"),
        file("bin/busybox", &busybox, 0o755),
        ent("bin/ls", Kind::Hardlink("bin/busybox".into()), 0o755),
        ent("bin/sh", Kind::Symlink("busybox".into()), 0o777),
        file("bin/su", b"#!/bin/sh\nexit 1\n", 0o4755),
        dir("etc"),
        file("etc/a&b<c>.conf", b"escaped in JSON\n", 0o644),
        file("etc/empty", b"", 0o644),
        file("etc/gone", b"deleted above\n", 0o644),
        dir("etc/opq"),
        file("etc/opq/old1", b"1\n", 0o644),
        dir("etc/opq/sub"),
        file("etc/opq/sub/old2", b"2\n", 0o644),
        file("etc/os-release", b"NAME=test\n", 0o644),
        file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644),
        xattr,
        dir("home"),
        owned,
        profile,
        dir("run"),
        ent("run/fifo", Kind::Fifo, 0o640),
        dir("usr"),
        file(&format!("usr/{}", "c".repeat(120)), b"PAX path\n", 0o644),
        dir("usr/share"),
        dir(&long_dir),
        file(
            &format!("{long_dir}/{}.txt", "b".repeat(60)),
            b"split path\n",
            0o644,
        ),
    ]
}

/// A layer from another tool (`tar -C rootfs -cf - .`): `./` names, the root entry, GNU
/// long names, a name that is not UTF-8, a whiteout and an opaque dir.
fn dot_layer() -> Vec<Ent> {
    let long_dir = format!("opt/{}", "d".repeat(50));
    let mut latin1 = file("", b"latin-1 name\n", 0o644);
    latin1.path = b"opt/caf\xe9".to_vec();
    vec![
        dir(""),
        dir("etc"),
        file("etc/.wh.gone", b"", 0o644),
        dir("etc/opq"),
        file("etc/opq/.wh..wh..opq", b"", 0o644),
        file("etc/opq/new", b"new\n", 0o644),
        file("etc/passwd", b"root:x:0:0:root:/root:/bin/ash\n", 0o644),
        dir("opt"),
        dir(&long_dir),
        file(
            &format!("{long_dir}/{}", "e".repeat(70)),
            b"GNU long name\n",
            0o644,
        ),
        latin1,
        file("opt/x&y", &[b'z'; 512], 0o644),
    ]
}

/// A `docker build` step (Go writer): whiteout and opaque dir as Docker's writer emits them.
fn step_layer() -> Vec<Ent> {
    let mut user = dir("home/user");
    user.mode = 0o700;
    user.uid = 1000;
    user.gid = 1000;
    let opq = file("home/user/.wh..wh..opq", b"", 0o700);
    vec![
        dir("bin"),
        file("bin/.wh.su", b"", 0o600),
        dir("home"),
        user,
        opq,
        file("home/user/fresh", b"fresh\n", 0o644),
    ]
}

pub struct Built {
    pub written: Written,
    pub diff_id: String,
    pub chain_id: String,
    pub diff: PathBuf,
}

pub struct DockerRoot {
    pub st: St,
    pub layers: Vec<Built>,
    pub id: String,
    pub config: Vec<u8>,
}

fn cpath(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_bytes()).expect("path")
}

fn set_mtime_nofollow(p: &Path, secs: u64) {
    let ts = [
        libc::timespec {
            tv_sec: secs as i64,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: secs as i64,
            tv_nsec: 0,
        },
    ];
    let c = cpath(p);
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(r, 0, "utimensat {}", p.display());
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let c = cpath(p);
    let n = std::ffi::CString::new(name).expect("name");
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr() as *const libc::c_void,
            value.len(),
            0,
        )
    };
    assert_eq!(r, 0, "setxattr {name} on {}", p.display());
}

/// What dockerd's overlay2 driver leaves in `diff/` after applying a layer tar.
fn extract_like_dockerd(diff: &Path, ents: &[Ent]) {
    use std::os::unix::fs::PermissionsExt;
    let mut times: Vec<(PathBuf, u64)> = Vec::new();
    for e in ents {
        let p = diff.join(OsStr::from_bytes(&e.path));
        let base = p
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default();
        if base == b".wh..wh..opq" {
            set_xattr(p.parent().expect("parent"), "trusted.overlay.opaque", b"y");
            continue;
        }
        if let Some(gone) = base.strip_prefix(b".wh.") {
            let w = p.with_file_name(OsStr::from_bytes(gone));
            let r = unsafe { libc::mknod(cpath(&w).as_ptr(), libc::S_IFCHR, 0) };
            assert_eq!(r, 0, "mknod {}", w.display());
            std::os::unix::fs::lchown(&w, Some(e.uid), Some(e.gid)).expect("chown");
            continue;
        }
        match &e.kind {
            Kind::Dir => {
                if !p.exists() {
                    std::fs::create_dir(&p).expect("mkdir");
                }
            }
            Kind::File(d) => std::fs::write(&p, d).expect("write"),
            Kind::Symlink(t) => std::os::unix::fs::symlink(t, &p).expect("symlink"),
            Kind::Hardlink(t) => std::fs::hard_link(diff.join(t), &p).expect("link"),
            Kind::Fifo => {
                let r = unsafe { libc::mkfifo(cpath(&p).as_ptr(), 0o600) };
                assert_eq!(r, 0, "mkfifo");
            }
        }
        if matches!(e.kind, Kind::Hardlink(_)) {
            continue;
        }
        std::os::unix::fs::lchown(&p, Some(e.uid), Some(e.gid)).expect("chown");
        if !matches!(e.kind, Kind::Symlink(_)) {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(e.mode)).expect("chmod");
        }
        for (k, v) in &e.xattrs {
            set_xattr(&p, k, v);
        }
        times.push((p, e.mtime));
    }
    // Directory times last: creating children changes them.
    for (p, t) in times.iter().rev() {
        set_mtime_nofollow(p, *t);
    }
}

fn short_link(seed: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    sha(seed.as_bytes())
        .bytes()
        .take(26)
        .map(|b| A[b as usize % 32] as char)
        .collect()
}

fn put(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, data).expect("write");
}

/// A data-root as dockerd leaves it after pulling / building one image of three layers.
pub fn docker_root() -> DockerRoot {
    let st = St::new();
    let root = st.root.clone();
    let specs = [
        (Style::Go, base_layer()),
        (Style::GnuDot, dot_layer()),
        (Style::Go, step_layer()),
    ];
    let written: Vec<(Written, Vec<Ent>)> = specs
        .iter()
        .map(|(s, e)| (dockertar::write(*s, e), e.clone()))
        .collect();
    let diffs: Vec<String> = written
        .iter()
        .map(|(w, _)| format!("sha256:{}", sha(&w.tar)))
        .collect();
    let chains = chain_ids(&diffs);
    put(
        &root.join("engine-id"),
        b"0b5a1c1e-6a43-4c1f-9d7e-3f0c2b9a8e11",
    );
    put(&root.join("volumes/metadata.db"), b"");
    put(&root.join(DOCKERD_TMP), b"half a layer blob");
    for d in [
        "containers",
        "image/overlay2/layerdb/tmp",
        "overlay2/l",
        "network/files",
    ] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    let mut layers = Vec::new();
    let mut lowers: Vec<String> = Vec::new();
    for (i, (w, ents)) in written.into_iter().enumerate() {
        let cache = sha(format!("cache {i}").as_bytes());
        let link = short_link(&cache);
        let ldir = root.join("overlay2").join(&cache);
        let diff = ldir.join("diff");
        std::fs::create_dir_all(&diff).expect("mkdir");
        extract_like_dockerd(&diff, &ents);
        put(&ldir.join("link"), link.as_bytes());
        if !lowers.is_empty() {
            put(&ldir.join("lower"), lowers.join(":").as_bytes());
            std::fs::create_dir(ldir.join("work")).expect("mkdir");
        }
        if i + 1 < specs.len() {
            put(&ldir.join("committed"), b"");
        }
        std::os::unix::fs::symlink(
            format!("../{cache}/diff"),
            root.join("overlay2/l").join(&link),
        )
        .expect("symlink");
        lowers.insert(0, format!("l/{link}"));
        let meta = root
            .join("image/overlay2/layerdb/sha256")
            .join(chains[i].trim_start_matches("sha256:"));
        let size: usize = ents
            .iter()
            .map(|e| match &e.kind {
                Kind::File(d) => d.len(),
                _ => 0,
            })
            .sum();
        put(&meta.join("cache-id"), cache.as_bytes());
        put(&meta.join("diff"), diffs[i].as_bytes());
        put(&meta.join("size"), size.to_string().as_bytes());
        if i > 0 {
            put(&meta.join("parent"), chains[i - 1].as_bytes());
        }
        put(&meta.join("tar-split.json.gz"), &w.tar_split_gz());
        layers.push(Built {
            written: w,
            diff_id: diffs[i].clone(),
            chain_id: chains[i].clone(),
            diff,
        });
    }
    let history: Vec<serde_json::Value> = (0..3)
        .map(|i| serde_json::json!({"created": "2024-05-06T07:08:09.123456789Z", "created_by": format!("/bin/sh -c step {i}")}))
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/bin:/bin"]},
        "created": "2024-05-06T07:08:09.123456789Z",
        "history": history,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diffs},
    }))
    .expect("json");
    let id = format!("sha256:{}", sha(&config));
    let hex = id.trim_start_matches("sha256:");
    put(
        &root.join("image/overlay2/imagedb/content/sha256").join(hex),
        &config,
    );
    std::fs::create_dir_all(root.join("image/overlay2/imagedb/metadata/sha256")).expect("mkdir");
    let repos = serde_json::json!({"Repositories": {"dockerroot/test": {
        TAG: id,
        format!("dockerroot/test@sha256:{}", sha(b"manifest")): id,
    }}});
    put(
        &root.join("image/overlay2/repositories.json"),
        &serde_json::to_vec(&repos).expect("json"),
    );
    docker_container(&root, &chains[2], &lowers);
    DockerRoot {
        st,
        layers,
        id,
        config,
    }
}

/// The mount-id of the container in the root (its layer dir under `overlay2/`).
pub const CONTAINER_MOUNT: &str =
    "5f1d0c3b8a7e6d4c2b1a09f8e7d6c5b4a3928170f6e5d4c3b2a1908f7e6d5c4b";

/// A container as dockerd records it: `layerdb/mounts/<id>/{mount-id,init-id,parent}`, its
/// layer and `-init` layer under `overlay2/`, `containers/<id>/config.v2.json`.
fn docker_container(root: &Path, top_chain: &str, lowers: &[String]) {
    let cid = sha(b"container");
    let mounts = root.join("image/overlay2/layerdb/mounts").join(&cid);
    put(&mounts.join("mount-id"), CONTAINER_MOUNT.as_bytes());
    put(
        &mounts.join("init-id"),
        format!("{CONTAINER_MOUNT}-init").as_bytes(),
    );
    put(&mounts.join("parent"), top_chain.as_bytes());
    let init_link = short_link("init");
    for (d, link, lower) in [
        (
            format!("{CONTAINER_MOUNT}-init"),
            init_link.clone(),
            lowers.join(":"),
        ),
        (
            CONTAINER_MOUNT.to_string(),
            short_link("rw"),
            format!("l/{init_link}:{}", lowers.join(":")),
        ),
    ] {
        let ldir = root.join("overlay2").join(&d);
        put(&ldir.join("diff/etc/hostname"), b"container\n");
        std::fs::create_dir_all(ldir.join("work")).expect("mkdir");
        put(&ldir.join("link"), link.as_bytes());
        put(&ldir.join("lower"), lower.as_bytes());
        std::os::unix::fs::symlink(format!("../{d}/diff"), root.join("overlay2/l").join(&link))
            .expect("symlink");
    }
    put(
        &root.join("containers").join(&cid).join("config.v2.json"),
        br#"{"ID":"container"}"#,
    );
}

pub fn record_of(dr: &DockerRoot, layer: usize) -> PathBuf {
    dr.st
        .root
        .join("image/overlay2/layerdb/sha256")
        .join(&dr.layers[layer].chain_id[7..])
        .join("tar-split.json.gz")
}
