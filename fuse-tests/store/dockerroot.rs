//! `layerfs --root` on a data-root that dockerd made (`/var/lib/docker`), laid out by
//! `dockerlayout`: the read verbs, `image mount`, `image prune`, and `image save`, whose
//! layer tars must be the original tars byte for byte; damaged layers; and, when the
//! tar-split program is installed, the records checked against the real implementation.

use super::dockerlayout::{CONTAINER_MOUNT, DOCKERD_TMP, DockerRoot, TAG, docker_root, record_of};
use super::util::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
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
    // A verb that writes takes the store lock, which clears layerfs's staging: never
    // dockerd's own temp files.
    st.ok(&["image", "tag", TAG, "dockerroot/copy:1"]);
    assert!(
        st.root.join(DOCKERD_TMP).is_file(),
        "taking the store lock emptied dockerd's tmp/"
    );
    st.ok(&["image", "rm", "dockerroot/copy:1"]);
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
            (2, "tar-split.json.gz", "reading the tar-split record")
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
