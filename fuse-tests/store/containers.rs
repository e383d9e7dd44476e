//! Containers: create/ls/rename/rm/prune, diff/commit/export, and the round trip
//! create -> write -> commit -> save -> load in a fresh store -> mount, with writes done
//! through kernel overlayfs (the oracle) and through layerfs's own mount.

use super::build;
use super::util::*;
use std::path::{Path, PathBuf};

fn load_sample(st: &St) -> build::Img {
    let (a, b) = build::sample();
    let p = st.path("sample.tar");
    std::fs::write(&p, build::docker_archive(&[&a, &b])).expect("write");
    st.ok(&["image", "load", "-i", p.to_str().expect("utf8")]);
    a
}

struct Plan {
    lowers: Vec<PathBuf>,
    upper: PathBuf,
    work: PathBuf,
}

fn plan(st: &St, c: &str) -> Plan {
    let s = st.ok(&["container", "inspect", c]);
    let v: serde_json::Value = serde_json::from_str(&s).expect("json");
    let d = &v[0]["GraphDriver"]["Data"];
    Plan {
        lowers: d["LowerDir"]
            .as_str()
            .expect("lower")
            .split(':')
            .map(PathBuf::from)
            .collect(),
        upper: PathBuf::from(d["UpperDir"].as_str().expect("upper")),
        work: PathBuf::from(d["WorkDir"].as_str().expect("work")),
    }
}

/// The same changes, whatever mount they go through.
fn make_changes(m: &Path) {
    std::fs::write(m.join("newfile"), "hi\n").expect("write new");
    std::fs::write(m.join("etc/hostname"), "three\n").expect("modify");
    std::fs::remove_file(m.join("etc/passwd")).expect("delete file");
    std::fs::remove_dir_all(m.join("opt")).expect("delete dir");
    std::fs::create_dir(m.join("opt")).expect("recreate dir");
    std::fs::write(m.join("opt/fresh"), "f\n").expect("write");
    std::fs::rename(m.join("home/user"), m.join("home/moved")).expect("rename dir");
}

fn check_changes(m: &Path) {
    assert_eq!(
        std::fs::read_to_string(m.join("newfile")).expect("newfile"),
        "hi\n"
    );
    assert_eq!(
        std::fs::read_to_string(m.join("etc/hostname")).expect("hostname"),
        "three\n"
    );
    assert!(!m.join("etc/passwd").exists());
    assert!(!m.join("etc/motd").exists());
    let mut opt: Vec<_> = std::fs::read_dir(m.join("opt"))
        .expect("opt")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    opt.sort();
    assert_eq!(opt, vec!["fresh"]);
    assert!(!m.join("home/user").exists());
    assert_eq!(
        std::fs::read_to_string(m.join("home/moved/notes")).expect("moved"),
        "notes\n"
    );
    assert_eq!(
        std::fs::read_to_string(m.join("bin/sh")).expect("sh"),
        "#!/bin/true\n"
    );
}

fn expected_diff() -> Vec<&'static str> {
    vec![
        "C /etc",
        "C /etc/hostname",
        "D /etc/passwd",
        "C /home",
        "A /home/moved",
        "A /home/moved/notes",
        "D /home/user",
        "A /newfile",
        "C /opt",
        "A /opt/fresh",
        // `rm -rf opt; mkdir opt`: what the image had in it is gone (as a plain tree
        // comparison, docker's naive diff, reports it).
        "D /opt/new",
    ]
}

#[test]
fn create_ls_rename_rm_prune() {
    let st = St::new();
    let a = load_sample(&st);
    let id = st
        .ok(&["container", "create", "sample:1", "--name", "web"])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    let id2 = st
        .ok(&["container", "create", &a.id()[7..19]])
        .trim()
        .to_string();
    let ls = st.ok(&["container", "ls", "-a"]);
    let lines: Vec<&str> = ls.lines().collect();
    assert!(
        lines[0].starts_with("CONTAINER ID")
            && lines[0].contains("IMAGE")
            && lines[0].ends_with("NAMES")
    );
    assert_eq!(lines.len(), 3);
    let web = lines.iter().find(|l| l.ends_with(" web")).expect("web row");
    assert!(
        web.starts_with(&id[..12]) && web.contains("sample:1"),
        "{web}"
    );
    let other = lines
        .iter()
        .find(|l| l.starts_with(&id2[..12]))
        .expect("row");
    let name = other.split_whitespace().last().expect("name");
    assert!(name.contains('_'), "two-word name: {name}");
    let js = st.ok(&["container", "ls", "-a", "--format", "json"]);
    assert_eq!(js.lines().count(), 2);
    let e = st.fail(&["container", "create", "sample:1", "--name", "web"]);
    assert!(e.contains("already in use"), "{e}");
    let images = st.image_count();
    let e = st.fail(&["container", "create", "--pull", "never", "nosuch"]);
    assert!(e.contains("no such image: nosuch"), "{e}");
    // As `docker create`: a missing image is pulled first (docker.io here, which fails
    // offline or has no such repository; either way the error names the reference).
    let o = st.run(&["container", "create", "nosuch"]);
    assert_ne!(o.code, 0, "a pull of nosuch cannot succeed: {}", o.stdout);
    let e = o.stderr;
    assert!(
        e.contains("Unable to find image 'nosuch:latest' locally")
            && e.contains("layerfs: pull docker.io/library/nosuch"),
        "{e}"
    );
    assert_eq!(st.image_count(), images, "a failed pull adds no image");
    assert_eq!(
        count(&st.root.join("tmp")),
        0,
        "a failed pull leaves no staging"
    );
    // Layout: layerdb/mounts/<id> and overlay2/<id>/{diff,work,merged,link,lower}.
    let m = st.root.join("image/overlay2/layerdb/mounts").join(&id);
    assert_eq!(
        std::fs::read_to_string(m.join("parent")).expect("parent"),
        a.chain_ids()[1]
    );
    let o = st.root.join("overlay2").join(&id);
    for d in ["diff", "work", "merged"] {
        assert!(o.join(d).is_dir(), "{d}");
    }
    assert_eq!(
        std::fs::read_to_string(o.join("lower"))
            .expect("lower")
            .split(':')
            .count(),
        2
    );
    let p = plan(&st, "web");
    assert_eq!(p.lowers, layer_dirs(&st, "sample:1"));
    assert_eq!(p.upper, o.join("diff"));
    st.ok(&["container", "rename", "web", "web2"]);
    assert!(st.ok(&["container", "ls", "-a"]).contains(" web2"));
    let e = st.fail(&["container", "rename", "web2", "bad name"]);
    assert!(e.contains("invalid container name"), "{e}");
    assert_eq!(st.ok(&["container", "rm", "web2"]), "web2\n");
    let e = st.fail(&["container", "rm", "web2"]);
    assert!(e.contains("no such container: web2"), "{e}");
    let out = st.ok(&["container", "prune", "-f"]);
    assert!(out.contains(&id2));
    assert_eq!(st.ok(&["container", "ls", "-a", "-q"]), "");
    st.assert_clean();
}

/// create -> write (kernel overlayfs) -> diff -> commit -> save -> load fresh -> check.
#[test]
fn commit_round_trip_through_kernel_overlay() {
    if !is_root() {
        eprintln!("skipped: kernel overlay needs root");
        return;
    }
    let st = St::new();
    let a = load_sample(&st);
    st.ok(&["container", "create", "sample:1", "--name", "c1"]);
    let p = plan(&st, "c1");
    let mnt = st.path("mnt");
    {
        let _m = kernel_overlay(&p.lowers, Some((&p.upper, &p.work)), &mnt).expect("overlay");
        make_changes(&mnt);
    }
    let diff = st.ok(&["container", "diff", "c1"]);
    assert_eq!(diff.lines().collect::<Vec<_>>(), expected_diff());
    verify_commit(&st, &a, "c1");
}

fn verify_commit(st: &St, a: &build::Img, c: &str) {
    let out = st.ok(&["container", "commit", c, "committed:v1", "-m", "my change"]);
    let id = out.trim().to_string();
    let v = inspect(st, "committed:v1");
    assert_eq!(v["Id"], id);
    let layers = v["RootFS"]["Layers"].as_array().expect("layers").clone();
    assert_eq!(layers.len(), 3);
    assert_eq!(
        layers[..2],
        a.diff_ids()
            .iter()
            .map(|d| serde_json::json!(d))
            .collect::<Vec<_>>()[..]
    );
    assert_eq!(v["Parent"], a.id());
    let h = st.ok(&["image", "history", "committed:v1"]);
    assert!(h.lines().nth(1).expect("row").contains("my change"), "{h}");
    // Export: the merged view, no whiteouts.
    let exp = st.path("export.tar");
    st.ok(&["container", "export", c, "-o", exp.to_str().expect("utf8")]);
    let mut names = Vec::new();
    let mut ar = tar::Archive::new(std::fs::File::open(&exp).expect("open"));
    for e in ar.entries().expect("entries") {
        names.push(
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
                .trim_end_matches('/')
                .to_string(),
        );
    }
    assert!(
        names.contains(&"newfile".to_string()) && names.contains(&"home/moved/notes".to_string())
    );
    assert!(
        !names
            .iter()
            .any(|n| n.contains(".wh.") || n == "etc/passwd" || n == "etc/motd" || n == "opt/old1")
    );
    // Save, load in a fresh store, look at the result.
    let saved = st.path("committed.tar");
    st.ok(&[
        "image",
        "save",
        "-o",
        saved.to_str().expect("utf8"),
        "committed:v1",
    ]);
    let st2 = St::new();
    assert_eq!(
        st2.ok(&["image", "load", "-i", saved.to_str().expect("utf8")]),
        "Loaded image: committed:v1\n"
    );
    assert_eq!(inspect(&st2, "committed:v1")["Id"], id);
    if is_root() {
        let m2 = st2.path("mnt");
        let _m = kernel_overlay(&layer_dirs(&st2, "committed:v1"), None, &m2).expect("overlay");
        check_changes(&m2);
    }
    if can_fuse().is_none() {
        let m3 = st2.path("mnt-layerfs");
        std::fs::create_dir_all(&m3).expect("mkdir");
        st2.ok(&["image", "mount", "committed:v1", m3.to_str().expect("utf8")]);
        let _g = MountGuard(m3.clone());
        check_changes(&m3);
        let e = std::fs::write(m3.join("ro-test"), "x");
        assert!(e.is_err(), "image mount is read-only");
    }
}

/// The same round trip with every write going through layerfs's own mount.
#[test]
fn commit_round_trip_through_layerfs_mount() {
    if let Some(why) = can_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    let st = St::new();
    let a = load_sample(&st);
    st.ok(&["container", "create", "sample:1", "--name", "c2"]);
    let mnt = st.path("mnt");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    {
        st.ok(&["container", "mount", "c2", mnt.to_str().expect("utf8")]);
        let _g = MountGuard(mnt.clone());
        make_changes(&mnt);
        check_changes(&mnt);
        let e = st.fail(&["container", "rm", "c2"]);
        assert!(e.contains("is mounted at"), "{e}");
    }
    let diff = st.ok(&["container", "diff", "c2"]);
    for want in expected_diff() {
        assert!(
            diff.lines().any(|l| l == want),
            "missing {want:?} in:\n{diff}"
        );
    }
    verify_commit(&st, &a, "c2");
}

/// `image mount` shows what kernel overlayfs shows for the same layer dirs.
#[test]
fn image_mount_matches_kernel_overlay() {
    if let Some(why) = can_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    let st = St::new();
    load_sample(&st);
    let km = st.path("kmnt");
    let want = {
        let _k = kernel_overlay(&layer_dirs(&st, "sample:1"), None, &km).expect("overlay");
        listing(&km)
    };
    let m = st.path("mnt");
    std::fs::create_dir_all(&m).expect("mkdir");
    st.ok(&["image", "mount", "sample:1", m.to_str().expect("utf8")]);
    let _g = MountGuard(m.clone());
    assert_eq!(listing(&m), want);
    // --rw: writable, and the store's layers are untouched.
    let m2 = st.path("mnt-rw");
    std::fs::create_dir_all(&m2).expect("mkdir");
    st.ok(&[
        "image",
        "mount",
        "--rw",
        "sample:1",
        m2.to_str().expect("utf8"),
    ]);
    let _g2 = MountGuard(m2.clone());
    std::fs::write(m2.join("etc/hostname"), "scratch\n").expect("write");
    assert_eq!(
        std::fs::read_to_string(m.join("etc/hostname")).expect("read"),
        "two\n"
    );
    let e = st.fail(&[
        "image",
        "mount",
        "sample:1",
        st.path("missing-dir").to_str().expect("utf8"),
    ]);
    assert!(e.contains("missing-dir"), "{e}");
}
