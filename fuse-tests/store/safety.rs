//! An image is untrusted input: hostile paths, links, sizes, corrupt and truncated data,
//! digest mismatches and unknown media types are clear errors that leave the store as it was.

use super::build::{self, Comp, Img, Layer};
use super::util::*;
use std::path::Path;

/// Load an archive made of one image with this single layer; return the error text.
fn load_bad_layer(st: &St, layer: Vec<u8>) -> String {
    let img = Img::new(vec![layer], &["bad:1"], "bad");
    let p = st.path("bad.tar");
    std::fs::write(&p, build::docker_archive(&[&img])).expect("write");
    let e = st.fail(&["image", "load", "-i", p.to_str().expect("utf8")]);
    assert!(
        e.contains(p.to_str().expect("utf8")),
        "error names the archive: {e}"
    );
    assert_untouched(st);
    e
}

fn assert_untouched(st: &St) {
    assert_eq!(st.image_count(), 0);
    assert_eq!(st.layerdb_count(), 0);
    assert_eq!(st.ok(&["images", "-q"]), "");
    st.assert_clean();
}

#[test]
fn dotdot_paths_are_refused() {
    let st = St::new();
    for p in ["../evil", "a/../../evil", "./x/../../../evil"] {
        let e = load_bad_layer(
            &st,
            Layer::new()
                .raw(tar::EntryType::Regular, p, "", b"pwned")
                .tar(),
        );
        assert!(e.contains("'..'"), "{p}: {e}");
    }
    assert!(!st.root.join("evil").exists() && !st.root.join("tmp/evil").exists());
    // Whiteouts of "." and ".." would delete the directory itself or its parent.
    for p in [".wh...", "d/.wh..", "d/.wh..."] {
        let l = Layer::new()
            .file("d/keep", b"1", 0o644)
            .raw(tar::EntryType::Regular, p, "", b"")
            .tar();
        let e = load_bad_layer(&st, l);
        assert!(e.contains("whiteout of"), "{p}: {e}");
    }
}

#[test]
fn absolute_paths_are_made_relative() {
    let st = St::new();
    let target = st.path("abs-evil");
    let layer = Layer::new()
        .raw(
            tar::EntryType::Regular,
            target.to_str().expect("utf8"),
            "",
            b"data",
        )
        .tar();
    let img = Img::new(vec![layer], &["abs:1"], "abs");
    let p = st.path("abs.tar");
    std::fs::write(&p, build::docker_archive(&[&img])).expect("write");
    st.ok(&["image", "load", "-i", p.to_str().expect("utf8")]);
    assert!(!target.exists(), "nothing written at the absolute path");
    let dir = &layer_dirs(&st, "abs:1")[0];
    let rel = target.strip_prefix("/").expect("absolute");
    assert_eq!(
        std::fs::read(dir.join(rel)).expect("inside the layer"),
        b"data"
    );
}

#[test]
fn symlink_then_write_through_is_refused() {
    let st = St::new();
    let outside = st.path("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    let cases = [
        (outside.to_str().expect("utf8").to_string(), "a/passwd"),
        ("../../../../../../../..".to_string(), "a/x"),
        ("/etc".to_string(), "a/owned"),
    ];
    for (target, write) in cases {
        let l = Layer::new()
            .raw(tar::EntryType::Symlink, "a", &target, b"")
            .raw(tar::EntryType::Regular, write, "", b"pwned")
            .tar();
        let e = load_bad_layer(&st, l);
        assert!(e.contains("symlink"), "{target}: {e}");
    }
    assert_eq!(count(&outside), 0);
    assert!(!Path::new("/etc/owned").exists());
}

#[test]
fn hard_links_outside_the_layer_are_refused() {
    let st = St::new();
    for (target, needle) in [
        ("/etc/passwd", "not inside this layer"),
        ("../../../../etc/passwd", "'..'"),
        ("missing", "not inside this layer"),
    ] {
        let l = Layer::new()
            .file("ok", b"1", 0o644)
            .raw(tar::EntryType::Link, "h", target, b"")
            .tar();
        let e = load_bad_layer(&st, l);
        assert!(e.contains(needle), "{target}: {e}");
    }
    // Through a symlinked parent.
    let l = Layer::new()
        .raw(tar::EntryType::Symlink, "s", "/etc", b"")
        .raw(tar::EntryType::Link, "h", "s/passwd", b"")
        .tar();
    let e = load_bad_layer(&st, l);
    assert!(e.contains("not inside this layer"), "{e}");
}

#[test]
fn absurd_sizes_are_refused() {
    let st = St::new();
    let mut h = tar::Header::new_gnu();
    h.set_path("huge").expect("path");
    h.set_mode(0o644);
    h.set_size(1 << 50);
    h.set_cksum();
    let mut l = h.as_bytes().to_vec();
    l.extend_from_slice(&[0u8; 4096]);
    let e = load_bad_layer(&st, l);
    assert!(e.contains("absurd"), "{e}");
}

#[test]
fn truncated_and_corrupt_archives() {
    let st = St::new();
    let (a, _) = build::sample();
    // Truncated outer archive.
    let full = build::docker_archive(&[&a]);
    let p = st.path("cut.tar");
    std::fs::write(&p, &full[..full.len() / 2]).expect("write");
    let e = st.fail(&["image", "load", "-i", p.to_str().expect("utf8")]);
    assert!(e.contains("cut.tar"), "{e}");
    assert_untouched(&st);
    // Not an archive at all.
    std::fs::write(
        &p,
        b"this is not a tar file at all, not even close............",
    )
    .expect("write");
    st.fail(&["image", "load", "-i", p.to_str().expect("utf8")]);
    assert_untouched(&st);
    // A layer with a corrupt header checksum.
    let mut l = build::base_layer();
    l[600] ^= 0x20;
    let e = load_bad_layer(&st, l);
    assert!(
        e.contains("layer 1") && (e.contains("checksum") || e.contains("mismatch")),
        "{e}"
    );
    // A truncated tar layer.
    let l = build::base_layer();
    let e = load_bad_layer(&st, l[..1500].to_vec());
    assert!(e.contains("truncated"), "{e}");
    // Truncated and corrupt gzip layers in an OCI dir.
    for (name, mangle) in [("trunc", 0usize), ("flip", 1)] {
        let d = st.path(&format!("oci-{name}"));
        build::oci_dir(&d, &[&a], Comp::Gzip);
        let blob = d
            .join("blobs/sha256")
            .join(sha(&build::compress(&a.layers[0], Comp::Gzip)));
        let mut b = std::fs::read(&blob).expect("blob");
        if mangle == 0 {
            b.truncate(b.len() / 2);
        } else {
            let n = b.len() / 2;
            for x in &mut b[n..n + 64] {
                *x ^= 0x5a;
            }
        }
        std::fs::write(&blob, b).expect("write");
        let e = st.fail(&["image", "load", "-i", d.to_str().expect("utf8")]);
        assert!(e.contains("layer 1"), "{name}: {e}");
        assert_untouched(&st);
    }
}

#[test]
fn digest_mismatches_are_refused() {
    let st = St::new();
    let (a, _) = build::sample();
    // Config promises other diffIDs than the layers have.
    let mut wrong = a.clone();
    wrong.config = String::from_utf8(a.config.clone())
        .expect("utf8")
        .replace(&a.diff_ids()[1][7..], &"0".repeat(64))
        .into_bytes();
    let p = st.path("wrong.tar");
    std::fs::write(&p, build::docker_archive(&[&wrong])).expect("write");
    let e = st.fail(&["image", "load", "-i", p.to_str().expect("utf8")]);
    assert!(
        e.contains("diffID mismatch") && e.contains("layer 2"),
        "{e}"
    );
    assert_untouched(&st);
    // OCI blob whose content does not match its digest.
    let d = st.path("oci-swap");
    build::oci_dir(&d, &[&a], Comp::Gzip);
    let blob = d
        .join("blobs/sha256")
        .join(sha(&build::compress(&a.layers[1], Comp::Gzip)));
    std::fs::write(&blob, build::compress(&a.layers[1], Comp::Zstd)).expect("write");
    let e = st.fail(&["image", "load", "-i", d.to_str().expect("utf8")]);
    assert!(e.contains("digest mismatch"), "{e}");
    assert_untouched(&st);
}

#[test]
fn unknown_media_types_are_refused() {
    let st = St::new();
    let (a, _) = build::sample();
    let files = build::oci_files(&[&a], Comp::Gzip, true);
    let d = st.path("oci-mt");
    let mut index = files
        .iter()
        .find(|(n, _)| n == "index.json")
        .map(|(_, d)| String::from_utf8(d.clone()).expect("utf8"))
        .expect("index.json");
    for (name, data) in &files {
        if name == "index.json" {
            continue;
        }
        let p = d.join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        let text = String::from_utf8_lossy(data);
        if text.contains("\"layers\":[") {
            let old = sha(data);
            let patched = text.replace(
                "application/vnd.oci.image.layer.v1.tar+gzip",
                "application/x-mystery",
            );
            let new = sha(patched.as_bytes());
            std::fs::write(d.join("blobs/sha256").join(&new), patched.as_bytes()).expect("write");
            index = index.replace(&old, &new).replace(
                &format!("\"size\":{}", data.len()),
                &format!("\"size\":{}", patched.len()),
            );
        } else {
            std::fs::write(&p, data).expect("write");
        }
    }
    std::fs::write(d.join("index.json"), index).expect("write");
    let e = st.fail(&["image", "load", "-i", d.to_str().expect("utf8")]);
    assert!(
        e.contains("unknown layer media type") && e.contains("application/x-mystery"),
        "{e}"
    );
    assert_untouched(&st);
}
