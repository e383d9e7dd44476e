//! The real images in ../shared/fixtures (made by umoci, skopeo, GNU tar): IDs, diffIDs and
//! chainIDs against the fixture README, the merged rootfs against the reference listing,
//! and save -> load round trips.

use super::util::*;
use std::path::Path;
use std::process::Command;

const ID: &str = "sha256:f9576da6639db88f8bf094bf887a973dbceaa1e72036f2839deba6e9ffdefe63";
const DIFFS: [&str; 4] = [
    "sha256:77f9c4f6270660e09770cd214399192db7c1ec63e4d0cc2674881b042a5c3654",
    "sha256:9c9e164bf5585ff35e11df8c5f66fea805adf048fdefd252c0b465f08e1f0527",
    "sha256:6ea244e6ff1e378950430e1e780a33f4a926ed55dd0547867b76ce586fb474a5",
    "sha256:8874aa750cc414cb1242be7d810d1a0091256c22f3ed6edc4f8fe2c259e361d7",
];
const CHAINS: [&str; 4] = [
    "sha256:77f9c4f6270660e09770cd214399192db7c1ec63e4d0cc2674881b042a5c3654",
    "sha256:971e6cc32f6badb3a3a93ed6ff809b4ec037f7fdcc63c94f48abbd5d4bafacae",
    "sha256:c44f9f72335d772258878273515f2ceb71a3a7eed81d5df0061dc84a8990b380",
    "sha256:49cfe09d5a3b2c9303fc3b6d974a7068605accba03e43700e514f3fa878f0553",
];
const FORMATS: [(&str, &str); 4] = [
    ("busybox.docker.tar", "busybox:latest"),
    ("busybox.oci-archive.tar", "busybox:latest"),
    ("busybox.oci", "busybox:latest"),
    ("busybox-zstd.oci", "busybox-zstd:latest"),
];

fn python_listing(fx: &Path, root: &Path) -> Option<String> {
    let o = Command::new("python3")
        .arg(fx.join("listing.py"))
        .arg(root)
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn every_fixture_format_loads_with_the_readme_ids() {
    let Some(fx) = fixtures_dir() else { return };
    for (file, tag) in FORMATS {
        let st = St::new();
        let out = st.ok(&["image", "load", "-i", fx.join(file).to_str().expect("utf8")]);
        assert_eq!(out, format!("Loaded image: {tag}\n"), "{file}");
        let v = inspect(&st, tag);
        assert_eq!(v["Id"], ID, "{file}");
        assert_eq!(v["RootFS"]["Layers"], serde_json::json!(DIFFS), "{file}");
        assert_eq!(v["RootFS"]["ChainIDs"], serde_json::json!(CHAINS), "{file}");
        for c in CHAINS {
            assert!(
                st.root
                    .join("image/overlay2/layerdb/sha256")
                    .join(&c[7..])
                    .is_dir(),
                "{file}: {c}"
            );
        }
        let h = st.ok(&["image", "history", tag]);
        assert_eq!(h.lines().count(), 7, "{file}: 6 history entries\n{h}");
        let zero = h
            .lines()
            .filter(|l| l.split_whitespace().any(|w| w == "0B"))
            .count();
        assert_eq!(zero, 2, "{file}: the 2 empty_layer entries show 0B\n{h}");
        let cfg = &v["Config"];
        assert_eq!(cfg["Env"], serde_json::json!(["PATH=/bin"]));
        assert_eq!(cfg["Cmd"], serde_json::json!(["/bin/sh"]));
        st.assert_clean();
    }
}

#[test]
fn fixture_rootfs_matches_reference_listing() {
    let Some(fx) = fixtures_dir() else { return };
    if !is_root() {
        eprintln!("skipped: kernel overlay needs root");
        return;
    }
    let want = std::fs::read_to_string(fx.join("busybox.rootfs.txt")).expect("reference");
    for (file, tag) in FORMATS {
        let st = St::new();
        st.ok(&["image", "load", "-i", fx.join(file).to_str().expect("utf8")]);
        let mnt = st.path("mnt");
        let _k = kernel_overlay(&layer_dirs(&st, tag), None, &mnt).expect("overlay");
        let Some(got) = python_listing(&fx, &mnt) else {
            eprintln!("skipped: python3 not available for listing.py");
            return;
        };
        assert_eq!(got, want, "{file}");
    }
}

#[test]
fn fixture_through_layerfs_mount_matches_reference() {
    let Some(fx) = fixtures_dir() else { return };
    if let Some(why) = can_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    let want = std::fs::read_to_string(fx.join("busybox.rootfs.txt")).expect("reference");
    let st = St::new();
    st.ok(&[
        "image",
        "load",
        "-i",
        fx.join("busybox.oci-archive.tar").to_str().expect("utf8"),
    ]);
    let mnt = st.path("mnt");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    st.ok(&["image", "mount", "busybox", mnt.to_str().expect("utf8")]);
    let _g = MountGuard(mnt.clone());
    let Some(got) = python_listing(&fx, &mnt) else {
        eprintln!("skipped: python3 not available for listing.py");
        return;
    };
    assert_eq!(got, want);
}

#[test]
fn fixture_save_reproduces_layer_digests() {
    let Some(fx) = fixtures_dir() else { return };
    let st = St::new();
    st.ok(&[
        "image",
        "load",
        "-i",
        fx.join("busybox-zstd.oci").to_str().expect("utf8"),
    ]);
    for fmt in ["docker-archive", "oci-archive"] {
        let out = st.path(&format!("out-{fmt}.tar"));
        st.ok(&[
            "image",
            "save",
            "--format",
            fmt,
            "-o",
            out.to_str().expect("utf8"),
            "busybox-zstd",
        ]);
        // Every layer blob's name is its content digest and equals a README diffID.
        let mut ar = tar::Archive::new(std::fs::File::open(&out).expect("open"));
        let mut seen = Vec::new();
        for e in ar.entries().expect("entries") {
            let mut e = e.expect("entry");
            let name = e.path().expect("path").display().to_string();
            if let Some(h) = name.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut v).expect("read");
                assert_eq!(sha(&v), h, "{fmt}: {name}");
                seen.push(format!("sha256:{h}"));
            }
        }
        for d in DIFFS {
            assert!(seen.contains(&d.to_string()), "{fmt}: layer {d} saved");
        }
        assert!(seen.contains(&ID.to_string()));
        let st2 = St::new();
        st2.ok(&["image", "load", "-i", out.to_str().expect("utf8")]);
        assert_eq!(inspect(&st2, "busybox-zstd")["Id"], ID, "{fmt}");
    }
}
