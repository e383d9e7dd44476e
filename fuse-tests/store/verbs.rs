//! Every image verb's output and the on-disk layout, on images built in code.

use super::build::{self, Comp, Img, sample};
use super::util::*;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

fn load_sample(st: &St) -> (Img, Img, String) {
    let (a, b) = sample();
    let p = st.path("sample.tar");
    std::fs::write(&p, build::docker_archive(&[&a, &b])).expect("write");
    let out = st.ok(&["image", "load", "-i", p.to_str().expect("utf8")]);
    (a, b, out)
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn load_prints_tags_and_builds_docker_layout() {
    let st = St::new();
    let (a, b, out) = load_sample(&st);
    assert_eq!(
        out,
        "Loaded image: sample:1\nLoaded image: sample:latest\nLoaded image: other:1\n"
    );
    let img = st.root.join("image/overlay2");
    // Config stored byte for byte under its ID.
    let id = a.id();
    let hex = &id[7..];
    assert_eq!(
        std::fs::read(img.join("imagedb/content/sha256").join(hex)).expect("config"),
        a.config
    );
    assert!(
        img.join("imagedb/metadata/sha256")
            .join(hex)
            .join("lastUpdated")
            .is_file()
    );
    // repositories.json in Docker's shape.
    let repos: serde_json::Value =
        serde_json::from_str(&read(img.join("repositories.json"))).expect("json");
    assert_eq!(repos["Repositories"]["sample"]["sample:1"], id);
    assert_eq!(repos["Repositories"]["sample"]["sample:latest"], id);
    assert_eq!(repos["Repositories"]["other"]["other:1"], b.id());
    // layerdb: chainIDs computed independently; the shared base is stored once.
    assert_eq!(st.layerdb_count(), 3);
    let diffs = a.diff_ids();
    let chains = a.chain_ids();
    assert_eq!(chains[0], diffs[0]);
    let mut links = Vec::new();
    for (i, c) in chains.iter().enumerate() {
        let d = img.join("layerdb/sha256").join(&c[7..]);
        assert_eq!(read(d.join("diff")), diffs[i]);
        assert!(d.join("tar-split.json.gz").is_file());
        let size: u64 = read(d.join("size")).parse().expect("size");
        assert!(size > 0);
        if i == 0 {
            assert!(!d.join("parent").exists());
        } else {
            assert_eq!(read(d.join("parent")), chains[i - 1]);
        }
        let cache = read(d.join("cache-id"));
        let cdir = st.root.join("overlay2").join(&cache);
        assert!(cdir.join("diff").is_dir());
        let link = read(cdir.join("link"));
        assert_eq!(link.len(), 26);
        let l = st.root.join("overlay2/l").join(&link);
        assert_eq!(
            std::fs::read_link(&l).expect("l/ link"),
            PathBuf::from(format!("../{cache}/diff"))
        );
        if i == 1 {
            assert_eq!(read(cdir.join("lower")), format!("l/{}", links[0]));
        }
        links.push(link);
    }
    st.assert_clean();
}

#[test]
fn extracted_layer_keeps_every_entry_kind() {
    let st = St::new();
    load_sample(&st);
    let dirs = layer_dirs(&st, "sample:1"); // top first
    let (top, base) = (&dirs[0], &dirs[1]);
    let md =
        |p: &str| std::fs::symlink_metadata(base.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(md("tmp").mode() & 0o7777, 0o1777);
    assert_eq!(md("root").mode() & 0o7777, 0o700);
    assert_eq!(read(base.join("bin/sh")), "#!/bin/true\n");
    assert_eq!(
        std::fs::read_link(base.join("bin/ls")).expect("link"),
        PathBuf::from("sh")
    );
    assert!(
        md("dev/fifo").file_type().is_file() || {
            use std::os::unix::fs::FileTypeExt;
            md("dev/fifo").file_type().is_fifo()
        }
    );
    assert_eq!(md("bin/sh").ino(), md("bin/sh2").ino(), "hard link kept");
    assert_eq!(md("usr/bin/suid").mode() & 0o7777, 0o4755);
    assert_eq!(md("usr/bin").mode() & 0o7777, 0o755, "implicit parent");
    assert_eq!(
        getxattr(&base.join("etc/attr"), "user.test").as_deref(),
        Some(&b"hello"[..])
    );
    let odd = md("etc/odd");
    if is_root() {
        assert_eq!(
            (odd.mode() & 0o7777, odd.uid(), odd.gid()),
            (0o604, 1234, 4321)
        );
        assert_eq!((md("home/user").uid(), md("home/user").gid()), (1000, 1000));
        use std::os::unix::fs::FileTypeExt;
        assert!(md("dev/null").file_type().is_char_device());
        assert_eq!(md("dev/null").rdev(), libc::makedev(1, 3));
        // Kernel whiteout form in the top layer.
        let wh = std::fs::symlink_metadata(top.join("etc/motd")).expect("whiteout");
        assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
        assert_eq!(
            getxattr(&top.join("opt"), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..])
        );
        assert!(!top.join("opt/.wh..wh..opq").exists());
    }
    assert_eq!(read(top.join(build::LONG)), "long\n");
}

#[test]
fn merged_view_through_kernel_overlay() {
    if !is_root() {
        eprintln!("skipped: kernel overlay needs root");
        return;
    }
    let st = St::new();
    load_sample(&st);
    let dirs = layer_dirs(&st, "sample:latest");
    let mnt = st.path("mnt");
    let _m = kernel_overlay(&dirs, None, &mnt).expect("overlay");
    assert!(!mnt.join("etc/motd").exists(), "whiteout hides motd");
    assert_eq!(read(mnt.join("etc/hostname")), "two\n");
    let mut opt: Vec<_> = std::fs::read_dir(mnt.join("opt"))
        .expect("opt")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    opt.sort();
    assert_eq!(opt, vec!["new"], "opaque dir hides old entries");
    assert_eq!(read(mnt.join("home/user/notes")), "notes\n");
    let hu = std::fs::metadata(mnt.join("home/user")).expect("home/user");
    assert_eq!(
        (hu.uid(), hu.mode() & 0o7777),
        (1000, 0o750),
        "home/user keeps its owner in the top layer"
    );
}

#[test]
fn ls_quiet_json_filter_and_digests() {
    let st = St::new();
    let (a, b, _) = load_sample(&st);
    let out = st.ok(&["image", "ls"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("REPOSITORY"), "{out}");
    for col in ["TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(lines[0].contains(col));
    }
    assert_eq!(lines.len(), 4, "{out}");
    let short_a = &a.id()[7..19];
    let row = lines
        .iter()
        .find(|l| l.starts_with("sample ") && l.contains(" 1 "))
        .expect("sample:1 row");
    assert!(row.contains(short_a), "{row}");
    assert!(row.contains("ago"), "{row}");
    assert!(row.trim_end().ends_with("B"), "{row}");
    // `images` alias, -q gives unique 12-char IDs.
    let q = st.ok(&["images", "-q"]);
    let mut ids: Vec<&str> = q.lines().collect();
    ids.sort();
    let (ia, ib) = (a.id(), b.id());
    let mut want = vec![&ia[7..19], &ib[7..19]];
    want.sort();
    assert_eq!(ids, want);
    let full = st.ok(&["images", "-q", "--no-trunc"]);
    assert!(full.lines().any(|l| l == a.id()));
    // JSON lines.
    let js = st.ok(&["image", "ls", "--format", "json"]);
    let objs: Vec<serde_json::Value> = js
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(objs.len(), 3);
    assert!(
        objs.iter()
            .any(|o| o["Repository"] == "other" && o["Tag"] == "1" && o["ID"] == b.id()[7..19])
    );
    // Filter by repository.
    let f = st.ok(&["image", "ls", "sample"]);
    assert_eq!(f.lines().count(), 3);
    assert!(!f.contains("other"));
    let d = st.ok(&["image", "ls", "--digests"]);
    assert!(d.lines().next().expect("header").contains("DIGEST"));
}

#[test]
fn inspect_history_layers() {
    let st = St::new();
    let (a, _b, _) = load_sample(&st);
    let v = inspect(&st, "sample");
    assert_eq!(v["Id"], a.id());
    assert_eq!(
        v["RepoTags"],
        serde_json::json!(["sample:1", "sample:latest"])
    );
    assert_eq!(v["Architecture"], "amd64");
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(v["RootFS"]["Layers"], serde_json::json!(a.diff_ids()));
    assert_eq!(v["RootFS"]["ChainIDs"], serde_json::json!(a.chain_ids()));
    assert!(v["Size"].as_u64().expect("size") > 0);
    assert_eq!(v["Created"], "2024-01-02T03:04:05Z");
    // Several at once; an unknown one is an error that names it.
    let s = st.ok(&["image", "inspect", "sample:1", "other:1"]);
    let arr: serde_json::Value = serde_json::from_str(&s).expect("json");
    assert_eq!(arr.as_array().expect("array").len(), 2);
    let e = st.fail(&["image", "inspect", "nosuch:tag"]);
    assert!(e.contains("no such image: nosuch:tag"), "{e}");

    let h = st.ok(&["image", "history", "sample:1"]);
    let lines: Vec<&str> = h.lines().collect();
    assert!(
        lines[0].starts_with("IMAGE")
            && lines[0].contains("CREATED BY")
            && lines[0].contains("COMMENT")
    );
    assert_eq!(lines.len(), 1 + 3);
    assert!(lines[1].starts_with(&a.id()[7..19]));
    assert!(lines[2].starts_with("<missing>") && lines[3].starts_with("<missing>"));
    assert!(
        lines[3].contains("0B"),
        "empty_layer shows 0B: {}",
        lines[3]
    );
    assert!(lines[1].contains('…'), "CREATED BY truncated: {}", lines[1]);
    let nt = st.ok(&["image", "history", "--no-trunc", "sample:1"]);
    assert!(nt.contains("gets cut"));

    let l = st.ok(&["image", "layers", "sample:1"]);
    let rows: Vec<&str> = l.lines().collect();
    assert_eq!(rows.len(), 3);
    for (i, r) in rows[1..].iter().enumerate() {
        assert!(
            r.contains(&a.diff_ids()[i]) && r.contains(&a.chain_ids()[i]),
            "{r}"
        );
        let dir = r.split_whitespace().last().expect("dir");
        assert!(std::path::Path::new(dir).is_dir());
    }
}

#[test]
fn resolve_ids_tag_and_ambiguity() {
    let st = St::new();
    let (a, _b, _) = load_sample(&st);
    let id = a.id();
    for form in [
        id.clone(),
        id[7..].to_string(),
        id[7..19].to_string(),
        format!("sha256:{}", &id[7..15]),
    ] {
        assert_eq!(inspect(&st, &form)["Id"], id, "form {form}");
    }
    st.ok(&["image", "tag", &id[7..19], "retagged:v2"]);
    assert_eq!(inspect(&st, "retagged:v2")["Id"], id);
    let e = st.fail(&["image", "tag", "sample:1", "Bad Name"]);
    assert!(e.contains("invalid"), "{e}");
    // Make images until two IDs share a first hex digit: that prefix is ambiguous.
    let mut firsts = std::collections::BTreeMap::new();
    for i in 0..17 {
        let t = build::Layer::new()
            .file("f", format!("{i}").as_bytes(), 0o644)
            .tar();
        let p = st.path(&format!("r{i}.tar"));
        std::fs::write(&p, &t).expect("write");
        let out = st.ok(&[
            "image",
            "import",
            p.to_str().expect("utf8"),
            &format!("imp:{i}"),
        ]);
        let c = out.trim().chars().nth(7).expect("hex");
        if firsts.insert(c, i).is_some() {
            let e = st.fail(&["image", "inspect", &c.to_string()]);
            assert!(e.contains("ambiguous"), "{e}");
            return;
        }
    }
    panic!("pigeonhole failed");
}

#[test]
fn rm_untags_then_deletes_unshared_layers() {
    let st = St::new();
    let (a, b, _) = load_sample(&st);
    let out = st.ok(&["rmi", "sample:1"]);
    assert_eq!(out, "Untagged: sample:1\n");
    assert_eq!(st.image_count(), 2);
    // By ID with one tag left: untag + delete image + its own top layer, not the shared base.
    let out = st.ok(&["image", "rm", "sample:latest"]);
    let chains = a.chain_ids();
    assert_eq!(
        out,
        format!(
            "Untagged: sample:latest\nDeleted: {}\nDeleted: {}\n",
            a.id(),
            chains[1]
        )
    );
    assert_eq!(st.layerdb_count(), 2);
    assert!(
        st.root
            .join("image/overlay2/layerdb/sha256")
            .join(&chains[0][7..])
            .is_dir()
    );
    st.assert_clean();
    // Multiple tags + rm by ID needs -f.
    st.ok(&["image", "tag", "other:1", "other:2"]);
    let e = st.fail(&["image", "rm", &b.id()[7..19]]);
    assert!(e.contains("multiple repositories"), "{e}");
    let out = st.ok(&["image", "rm", "-f", &b.id()[7..19]]);
    assert!(out.contains("Untagged: other:1") && out.contains("Untagged: other:2"));
    assert!(out.contains(&format!("Deleted: {}", b.id())));
    assert_eq!(st.layerdb_count(), 0);
    assert_eq!(st.image_count(), 0);
    st.assert_clean();
    let e = st.fail(&["rmi", "sample:1"]);
    assert!(e.contains("no such image"), "{e}");
}

#[test]
fn rm_refuses_image_used_by_container() {
    let st = St::new();
    load_sample(&st);
    st.ok(&["container", "create", "other:1", "--name", "user1"]);
    let e = st.fail(&["rmi", "other:1"]);
    assert!(e.contains("user1"), "{e}");
    assert_eq!(st.image_count(), 2);
    st.ok(&["container", "rm", "user1"]);
    st.ok(&["rmi", "other:1"]);
    assert_eq!(st.image_count(), 1);
    st.assert_clean();
}

#[test]
fn prune_dangling_and_all() {
    let st = St::new();
    let (a, b, _) = load_sample(&st);
    // Move other:1 onto sample: b becomes dangling.
    st.ok(&["image", "tag", "sample:1", "other:1"]);
    let out = st.ok(&["image", "ls"]);
    assert!(out.contains("<none>"), "{out}");
    let out = st.ok(&["image", "prune"]);
    assert!(out.contains(&format!("deleted: {}", b.id())), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert_eq!(st.image_count(), 1);
    st.ok(&["container", "create", "sample:1"]);
    let out = st.ok(&["image", "prune", "-a"]);
    assert!(!out.contains(&a.id()), "in-use image kept: {out}");
    assert_eq!(st.image_count(), 1);
    st.ok(&["container", "prune", "-f"]);
    st.ok(&["image", "prune", "-a"]);
    assert_eq!(st.image_count(), 0);
    assert_eq!(st.layerdb_count(), 0);
    st.assert_clean();
}

#[test]
fn import_tarball_with_changes() {
    let st = St::new();
    let t = build::compress(&build::base_layer(), Comp::Gzip);
    let p = st.path("rootfs.tar.gz");
    std::fs::write(&p, &t).expect("write");
    let out = st.ok(&[
        "image",
        "import",
        p.to_str().expect("utf8"),
        "myroot:1",
        "--change",
        "CMD [\"/bin/sh\", \"-l\"]",
        "-c",
        "ENV FOO=bar",
        "-c",
        "WORKDIR /root",
        "-m",
        "hi",
    ]);
    let id = out.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{out}");
    let v = inspect(&st, "myroot:1");
    assert_eq!(v["Id"], id);
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["/bin/sh", "-l"]));
    assert_eq!(v["Config"]["Env"], serde_json::json!(["FOO=bar"]));
    assert_eq!(v["Config"]["WorkingDir"], "/root");
    assert_eq!(
        v["RootFS"]["Layers"],
        serde_json::json!([format!("sha256:{}", sha(&build::base_layer()))])
    );
    let h = st.ok(&["image", "history", "myroot:1"]);
    assert!(h.contains("hi"));
    let e = st.fail(&[
        "image",
        "import",
        p.to_str().expect("utf8"),
        "x",
        "-c",
        "BOGUS y",
    ]);
    assert!(e.contains("BOGUS"), "{e}");
}

#[test]
fn oci_dir_gzip_zstd_and_oci_archive_load_same_image() {
    let st = St::new();
    let (a, _) = sample();
    for c in [Comp::None, Comp::Gzip, Comp::Zstd] {
        let d = st.path(&format!("oci-{c:?}"));
        build::oci_dir(&d, &[&a], c);
        let out = st.ok(&["image", "load", "-i", d.to_str().expect("utf8")]);
        assert_eq!(out, "Loaded image: sample:1\n");
    }
    let p = st.path("a.oci.tar");
    std::fs::write(&p, build::oci_archive(&[&a], Comp::Gzip)).expect("write");
    st.ok(&["image", "load", "-i", p.to_str().expect("utf8")]);
    assert_eq!(st.image_count(), 1);
    assert_eq!(st.layerdb_count(), 2);
    assert_eq!(inspect(&st, "sample:1")["Id"], a.id());
    // OCI manifests are remembered as repo digests, as docker does.
    let files = build::oci_files(&[&a], Comp::Gzip, true);
    let index: serde_json::Value = serde_json::from_slice(
        &files
            .iter()
            .find(|(n, _)| n == "index.json")
            .expect("index")
            .1,
    )
    .expect("json");
    let mdig = index["manifests"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    let rd = inspect(&st, "sample:1")["RepoDigests"].clone();
    assert!(
        rd.as_array()
            .expect("array")
            .iter()
            .any(|d| d == &format!("sample@{mdig}")),
        "{rd}"
    );
    let ls = st.ok(&["image", "ls", "--digests"]);
    let shown = ls
        .lines()
        .nth(1)
        .expect("row")
        .split_whitespace()
        .nth(2)
        .expect("digest");
    assert!(
        rd.as_array()
            .expect("array")
            .iter()
            .any(|d| d == &format!("sample@{shown}")),
        "{ls}"
    );
    // From stdin, gzip-compressed docker-archive.
    let gz = build::compress(&build::docker_archive(&[&a]), Comp::Gzip);
    let mut child = st
        .cmd(&["image", "load"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&gz)
        .expect("write");
    let o = out(child.wait_with_output().expect("wait"));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("Loaded image: sample:1"));
    st.assert_clean();
}

#[test]
fn save_formats_round_trip_same_id() {
    let st = St::new();
    let (a, b, _) = load_sample(&st);
    for fmt in ["docker-archive", "oci-archive", "oci-dir"] {
        let out = st.path(&format!("saved-{fmt}"));
        st.ok(&[
            "image",
            "save",
            "--format",
            fmt,
            "-o",
            out.to_str().expect("utf8"),
            "sample:1",
            "other:1",
        ]);
        let st2 = St::new();
        let o = st2.ok(&["image", "load", "-i", out.to_str().expect("utf8")]);
        assert!(
            o.contains("Loaded image: sample:1") && o.contains("Loaded image: other:1"),
            "{fmt}: {o}"
        );
        assert_eq!(inspect(&st2, "sample:1")["Id"], a.id(), "{fmt}");
        assert_eq!(inspect(&st2, "other:1")["Id"], b.id(), "{fmt}");
        st2.assert_clean();
    }
    // The saved layer tars are byte-identical to the loaded ones.
    let p = st.path("saved-docker-archive");
    let mut ar = tar::Archive::new(std::fs::File::open(&p).expect("open"));
    let mut found = 0;
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let name = e.path().expect("path").display().to_string();
        for l in a.layers.iter().chain(b.layers.iter()) {
            if name == format!("blobs/sha256/{}", sha(l)) {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut v).expect("read");
                assert_eq!(&v, l);
                found += 1;
                break;
            }
        }
    }
    assert_eq!(found, 3);
    // Saving twice gives the same bytes.
    let p2 = st.path("again.tar");
    st.ok(&[
        "image",
        "save",
        "-o",
        p2.to_str().expect("utf8"),
        "sample:1",
        "other:1",
    ]);
    assert_eq!(
        std::fs::read(&p).expect("read"),
        std::fs::read(&p2).expect("read")
    );
    let e = st.fail(&["image", "save", "-o", p2.to_str().expect("utf8"), "nope"]);
    assert!(e.contains("no such image: nope"));
}

#[test]
fn top_level_verbs_are_the_image_verbs() {
    let st = St::new();
    let (a, b) = sample();
    let p = st.path("sample.tar");
    std::fs::write(&p, build::docker_archive(&[&a, &b])).expect("write");
    let out = st.ok(&["load", "-i", p.to_str().expect("utf8")]);
    assert_eq!(
        out,
        "Loaded image: sample:1\nLoaded image: sample:latest\nLoaded image: other:1\n"
    );
    st.ok(&["tag", "sample:1", "retagged:v9"]);
    assert_eq!(inspect(&st, "retagged:v9")["Id"], a.id());
    for (top, image) in [
        (&["images"][..], &["image", "ls"][..]),
        (
            &["images", "-q", "--no-trunc"],
            &["image", "ls", "-q", "--no-trunc"],
        ),
        (
            &["inspect", "retagged:v9"],
            &["image", "inspect", "retagged:v9"],
        ),
        (&["history", "other:1"], &["image", "history", "other:1"]),
    ] {
        assert_eq!(st.ok(top), st.ok(image), "{top:?}");
    }
    assert!(st.ok(&["images"]).contains("retagged"));
    let saved = st.path("saved.tar");
    st.ok(&["save", "-o", saved.to_str().expect("utf8"), "retagged:v9"]);
    let st2 = St::new();
    let o = st2.ok(&["load", "-i", saved.to_str().expect("utf8")]);
    assert_eq!(o, "Loaded image: retagged:v9\n");
    assert_eq!(inspect(&st2, "retagged:v9")["Id"], a.id());
    let out = st.ok(&["rmi", "retagged:v9"]);
    assert!(out.contains("Untagged: retagged:v9"), "{out}");
    let e = st.fail(&["inspect", "retagged:v9"]);
    assert!(e.contains("retagged:v9"), "{e}");
    let root = st.path("rootfs.tar");
    std::fs::write(&root, build::base_layer()).expect("write");
    let id = st.ok(&["import", root.to_str().expect("utf8"), "imported:1"]);
    assert_eq!(inspect(&st, "imported:1")["Id"], id.trim());
}

#[test]
fn an_unknown_first_word_is_an_error_listing_the_verbs() {
    let st = St::new();
    for args in [&["frobnicate"][..], &["frobnicate", "a", "b"], &["Images"]] {
        let o = st.run(args);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        let first = o.stderr.lines().next().unwrap_or_default();
        assert_eq!(first, format!("layerfs: unknown command {:?}", args[0]));
        for verb in [
            "image",
            "container",
            "mount",
            "images",
            "rmi",
            "tag",
            "load",
        ] {
            assert!(
                o.stderr.split_whitespace().any(|w| w == verb),
                "{verb} not listed: {}",
                o.stderr
            );
        }
        assert!(o.stdout.is_empty(), "{}", o.stdout);
    }
    // No words: the usage, on stderr, exit 2; --help: on stdout, exit 0.
    let o = st.run(&[]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("Usage:"), "{}", o.stderr);
    let o = st.run(&["--help"]);
    assert_eq!(o.code, 0);
    assert!(o.stdout.contains("history inspect import"), "{}", o.stdout);
}

#[test]
fn mount_forms_still_reach_the_mount_command() {
    // SOURCE MNT -o ...: whatever SOURCE is, the mount command answers (here: about the
    // missing lower dir), never "unknown command".
    let st = St::new();
    let mnt = st.path("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let lower = st.path("no-such-lower");
    let o = format!("lowerdir={}", lower.display());
    let m = mnt.to_str().expect("utf8");
    for args in [
        vec!["overlay", m, "-o", &o],
        vec!["-o", &o, m],
        vec!["mount", "-o", &o, m],
    ] {
        let out = st.run(&args);
        assert_ne!(out.code, 0, "{args:?}");
        assert!(!out.stderr.contains("unknown command"), "{}", out.stderr);
        assert!(
            out.stderr.contains(&lower.display().to_string()),
            "{args:?}: {}",
            out.stderr
        );
    }
}
