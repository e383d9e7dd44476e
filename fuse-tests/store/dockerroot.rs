//! `layerfs --root` on a data-root that dockerd made (`/var/lib/docker`), built here file by
//! file the way dockerd lays it out: layerdb entries with dockerd's `tar-split.json.gz`
//! (written by `dockertar`, not by layerfs), overlay2 layer dirs holding what the overlay2
//! driver extracts (whiteouts as char 0:0 devices, opaque dirs as `trusted.overlay.opaque`),
//! `l/` links, the imagedb and `repositories.json`. Then the read verbs, `image mount`, and
//! `image save`, whose layer tars must be the original tars byte for byte.

use super::build::chain_ids;
use super::dockertar::{self, Ent, Kind, Style, Written, ent};
use super::util::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const TAG: &str = "dockerroot/test:latest";
/// A file dockerd has in its temp dir (a pull in flight): nothing may remove it.
const DOCKERD_TMP: &str = "tmp/GetImageBlob1234567890";

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

/// A container as dockerd records it: `layerdb/mounts/<id>/{mount-id,init-id,parent}`, its
/// layer and `-init` layer under `overlay2/`, `containers/<id>/config.v2.json`.
const CONTAINER_MOUNT: &str = "5f1d0c3b8a7e6d4c2b1a09f8e7d6c5b4a3928170f6e5d4c3b2a1908f7e6d5c4b";

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

fn record_of(dr: &DockerRoot, layer: usize) -> PathBuf {
    dr.st
        .root
        .join("image/overlay2/layerdb/sha256")
        .join(&dr.layers[layer].chain_id[7..])
        .join("tar-split.json.gz")
}

fn skip_unless_root() -> bool {
    if !is_root() {
        eprintln!("skipped: whiteouts (mknod) and trusted.overlay.opaque need root");
        return true;
    }
    false
}

/// `image save -o`; returns member name -> bytes.
fn save(dr: &DockerRoot, img: &str) -> std::collections::HashMap<String, Vec<u8>> {
    let out = dr.st.path("out.tar");
    dr.st
        .ok(&["image", "save", img, "-o", out.to_str().expect("utf8")]);
    let mut a = tar::Archive::new(std::fs::File::open(&out).expect("open out.tar"));
    let mut m = std::collections::HashMap::new();
    for e in a.entries().expect("entries") {
        let mut e = e.expect("entry");
        let name = e.path().expect("path").display().to_string();
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut b).expect("read");
        m.insert(name, b);
    }
    m
}

/// Every layer tar `image save` writes is the tar dockerd was given, byte for byte.
fn assert_layers_identical(dr: &DockerRoot, m: &std::collections::HashMap<String, Vec<u8>>) {
    let man: serde_json::Value = serde_json::from_slice(&m["manifest.json"]).expect("manifest");
    assert_eq!(man[0]["RepoTags"][0], TAG);
    let cfg = man[0]["Config"].as_str().expect("Config");
    assert!(m[cfg] == dr.config, "the config is not the imagedb's bytes");
    let names = man[0]["Layers"].as_array().expect("Layers");
    assert_eq!(names.len(), dr.layers.len());
    for (n, l) in names.iter().zip(&dr.layers) {
        let b = &m[n.as_str().expect("str")];
        assert_eq!(format!("sha256:{}", sha(b)), l.diff_id, "layer {n} digest");
        assert!(
            *b == l.written.tar,
            "layer {n} differs from the original tar"
        );
    }
}

#[test]
fn docker_root_read_verbs_and_byte_identical_save() {
    if skip_unless_root() {
        return;
    }
    let dr = docker_root();
    let st = &dr.st;
    let id12 = &dr.id[7..19];
    let ls = st.ok(&["images"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with("dockerroot/test") && l.contains("latest") && l.contains(id12)),
        "{ls}"
    );
    let dg = st.ok(&["images", "--digests"]);
    assert!(dg.contains(&format!("sha256:{}", sha(b"manifest"))), "{dg}");
    let v = inspect(st, "dockerroot/test");
    assert_eq!(v["Id"], dr.id);
    let diffs: Vec<&str> = dr.layers.iter().map(|l| l.diff_id.as_str()).collect();
    let chains: Vec<&str> = dr.layers.iter().map(|l| l.chain_id.as_str()).collect();
    assert_eq!(v["RootFS"]["Layers"], serde_json::json!(diffs));
    assert_eq!(v["RootFS"]["ChainIDs"], serde_json::json!(chains));
    let dirs: Vec<PathBuf> = dr.layers.iter().rev().map(|l| l.diff.clone()).collect();
    assert_eq!(layer_dirs(st, TAG), dirs);
    let h = st.ok(&["image", "history", "--no-trunc", TAG]);
    assert!(h.contains("/bin/sh -c step 2") && h.contains(&dr.id), "{h}");
    let layers = st.ok(&["image", "layers", TAG]);
    for l in &dr.layers {
        assert!(layers.contains(&l.chain_id), "{layers}");
        assert!(layers.contains(&l.diff.display().to_string()), "{layers}");
    }
    eprintln!("{ls}{h}{layers}");
    let m = save(&dr, TAG);
    assert_layers_identical(&dr, &m);
    // Saving only read dockerd's root: its temp files stay, no lock file appears.
    assert!(
        st.root.join(DOCKERD_TMP).is_file(),
        "dockerd's tmp/ was emptied"
    );
    assert!(
        !st.root.join("lock").exists(),
        "a lock file was left in dockerd's root"
    );
    // By ID too (every tag), and from a second save the same bytes.
    let m2 = save(&dr, &dr.id[7..19]);
    assert_layers_identical(&dr, &m2);
}

#[test]
fn docker_root_mount_matches_kernel_overlay() {
    if skip_unless_root() {
        return;
    }
    if let Some(why) = can_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    let dr = docker_root();
    let st = &dr.st;
    let dirs: Vec<PathBuf> = dr.layers.iter().rev().map(|l| l.diff.clone()).collect();
    let km = st.path("kmnt");
    let want = {
        let _k = kernel_overlay(&dirs, None, &km).expect("kernel overlay");
        listing(&km)
    };
    let m = st.path("mnt");
    std::fs::create_dir_all(&m).expect("mkdir");
    st.ok(&["image", "mount", TAG, m.to_str().expect("utf8")]);
    let _g = MountGuard(m.clone());
    assert_eq!(listing(&m), want);
    let names = |d: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(m.join(d))
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("etc/opq"), ["new"]);
    assert_eq!(names("home/user"), ["fresh"]);
    assert!(!names("etc").contains(&"gone".to_string()));
    assert!(!names("bin").contains(&"su".to_string()));
    assert!(m.join(OsStr::from_bytes(b"opt/caf\xe9")).is_file());
    assert_eq!(
        std::fs::read_to_string(m.join("etc/passwd")).expect("read"),
        "root:x:0:0:root:/root:/bin/ash\n"
    );
}

/// A damaged layer dir: the error names the layer, its dir, the file and the cause, and no
/// output file (nor its temp name) is left behind.
#[test]
fn docker_root_damaged_payload_is_named_and_leaves_no_output() {
    if skip_unless_root() {
        return;
    }
    type Damage = fn(&DockerRoot) -> (usize, &'static str, &'static str);
    let cases: [Damage; 5] = [
        |dr| {
            let p = dr.layers[1].diff.join("etc/passwd");
            let mut b = std::fs::read(&p).expect("read");
            b[0] = b'R';
            std::fs::write(&p, b).expect("write");
            (1, "./etc/passwd", "checksum")
        },
        |dr| {
            std::fs::remove_file(dr.layers[0].diff.join("etc/os-release")).expect("rm");
            (0, "etc/os-release", "No such file or directory")
        },
        |dr| {
            let p = dr.layers[0].diff.join("etc/a&b<c>.conf");
            std::fs::remove_file(&p).expect("rm");
            std::os::unix::fs::symlink("/etc/hostname", &p).expect("symlink");
            (0, "etc/a&b<c>.conf", "symlink")
        },
        |dr| {
            let p = dr.layers[1].diff.join("opt/x&y");
            std::fs::write(&p, b"short").expect("write");
            (1, "./opt/x&y", "shorter than recorded (5 of 512 bytes)")
        },
        |dr| {
            let p = record_of(dr, 2);
            let b = std::fs::read(&p).expect("read");
            std::fs::write(&p, &b[..b.len() / 2]).expect("write");
            (2, "tar-split.json.gz", "cannot read")
        },
    ];
    for damage in cases {
        let dr = docker_root();
        let (layer, name, cause) = damage(&dr);
        let out = dr.st.path("out.tar");
        let e = dr
            .st
            .fail(&["image", "save", TAG, "-o", out.to_str().expect("utf8")]);
        eprintln!("damaged layer {layer}: {}", e.trim_end());
        let l = &dr.layers[layer];
        // A damaged record is named by its path (and chainID), damaged content by the
        // layer's diffID and dir.
        let (what, path) = if name == "tar-split.json.gz" {
            (
                l.chain_id.as_str(),
                record_of(&dr, layer).display().to_string(),
            )
        } else {
            (l.diff_id.as_str(), l.diff.display().to_string())
        };
        for want in [what, &path, name, cause] {
            assert!(e.contains(want), "{want:?} missing from: {e}");
        }
        let left: Vec<_> = std::fs::read_dir(dr.st.dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .filter(|n| n.to_string_lossy().contains("out.tar"))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

/// `image prune` on a Docker root keeps dockerd's container layers (which layerfs's own
/// container records do not list) and the image a container uses.
#[test]
fn docker_root_prune_keeps_dockerd_container_layers() {
    if skip_unless_root() {
        return;
    }
    let dr = docker_root();
    dr.st.ok(&["image", "prune"]);
    for d in [
        CONTAINER_MOUNT.to_string(),
        format!("{CONTAINER_MOUNT}-init"),
    ] {
        let p = dr
            .st
            .root
            .join("overlay2")
            .join(&d)
            .join("diff/etc/hostname");
        assert!(p.is_file(), "image prune removed {}", p.display());
    }
    for l in &dr.layers {
        assert!(l.diff.is_dir(), "image prune removed {}", l.diff.display());
    }
    assert_layers_identical(&dr, &save(&dr, TAG));
}

fn tar_split_bin() -> Option<&'static str> {
    let ok = Command::new("tar-split")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipped: the tar-split program (Debian package tar-split) is not installed");
        return None;
    }
    Some("tar-split")
}

/// Type-1 lines of a record: (name or name_raw, size, payload).
fn entries_of(record: &str) -> Vec<(String, u64, String)> {
    record
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            (v["type"] == 1).then(|| {
                let name = v["name"].as_str().or(v["name_raw"].as_str()).unwrap_or("");
                (
                    name.to_string(),
                    v["size"].as_u64().unwrap_or(0),
                    v["payload"].as_str().unwrap_or("").to_string(),
                )
            })
        })
        .collect()
}

fn gunzip(p: &Path) -> String {
    let f = std::fs::File::open(p).expect("open");
    let mut s = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(f), &mut s).expect("gunzip");
    s
}

/// The records this test writes are what the real tar-split writes for the same tars and
/// rebuild them from the same layer dirs, so the test checks against dockerd's format.
#[test]
fn docker_root_records_match_real_tar_split() {
    if skip_unless_root() {
        return;
    }
    let Some(ts) = tar_split_bin() else { return };
    let dr = docker_root();
    for (i, l) in dr.layers.iter().enumerate() {
        let t = dr.st.path(&format!("layer{i}.tar"));
        std::fs::write(&t, &l.written.tar).expect("write");
        let rec = dr.st.path(&format!("layer{i}.json.gz"));
        let o = Command::new(ts)
            .args(["disasm", "--no-stdout", "--output"])
            .arg(&rec)
            .arg(&t)
            .output()
            .expect("tar-split disasm");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            entries_of(&gunzip(&rec)),
            entries_of(&l.written.record),
            "layer {i}"
        );
        let in_root = dr
            .st
            .root
            .join("image/overlay2/layerdb/sha256")
            .join(&l.chain_id[7..])
            .join("tar-split.json.gz");
        let o = Command::new(ts)
            .args(["asm", "--output", "-", "--input"])
            .arg(&in_root)
            .arg("--path")
            .arg(&l.diff)
            .output()
            .expect("tar-split asm");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            o.stdout == l.written.tar,
            "tar-split rebuilt layer {i} differently"
        );
    }
}

/// Layers that layerfs loaded carry tar-split records dockerd can rebuild them from.
#[test]
fn dockerd_can_rebuild_layers_layerfs_loaded() {
    if skip_unless_root() {
        return;
    }
    let Some(ts) = tar_split_bin() else { return };
    let dr = docker_root();
    let out = dr.st.path("out.tar");
    dr.st
        .ok(&["image", "save", TAG, "-o", out.to_str().expect("utf8")]);
    let fresh = St::new();
    fresh.ok(&["image", "load", "-i", out.to_str().expect("utf8")]);
    let dirs = layer_dirs(&fresh, TAG);
    for (l, d) in dr.layers.iter().zip(dirs.iter().rev()) {
        let rec = fresh
            .root
            .join("image/overlay2/layerdb/sha256")
            .join(&l.chain_id[7..])
            .join("tar-split.json.gz");
        let o = Command::new(ts)
            .args(["asm", "--output", "-", "--input"])
            .arg(&rec)
            .arg("--path")
            .arg(d)
            .output()
            .expect("tar-split asm");
        assert!(
            o.status.success(),
            "tar-split asm of {}: {}",
            rec.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.stdout == l.written.tar,
            "dockerd would rebuild {} differently",
            l.diff_id
        );
    }
}

/// The machine's own Docker data-root, when there is one with images.
#[test]
fn real_var_lib_docker() {
    let root = Path::new("/var/lib/docker");
    let repos = root.join("image/overlay2/repositories.json");
    if !repos.is_file() {
        eprintln!(
            "skipped: no {} (no dockerd with the overlay2 store here)",
            repos.display()
        );
        return;
    }
    let run = |args: &[&str]| {
        let o = Command::new(BIN)
            .arg("--root")
            .arg(root)
            .args(args)
            .output()
            .expect("run layerfs");
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let ids = run(&["images", "-q", "--no-trunc"]);
    let Some(id) = ids.lines().next() else {
        eprintln!("skipped: {} has no images", root.display());
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("real.tar");
    run(&["image", "save", id, "-o", out.to_str().expect("utf8")]);
    let v: serde_json::Value = serde_json::from_str(&run(&["image", "inspect", id])).expect("json");
    let mut a = tar::Archive::new(std::fs::File::open(&out).expect("open"));
    let mut digests = Vec::new();
    for e in a.entries().expect("entries") {
        let mut e = e.expect("entry");
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut b).expect("read");
        digests.push(format!("sha256:{}", sha(&b)));
    }
    for d in v[0]["RootFS"]["Layers"].as_array().expect("Layers") {
        let d = d.as_str().expect("str");
        assert!(
            digests.iter().any(|x| x == d),
            "no member of the save hashes to {d}"
        );
    }
}
