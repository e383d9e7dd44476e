//! `layerfs push`: docker's output lines, what the registry then holds (read back by skopeo,
//! which verifies every digest, and unpacked by umoci), "Layer already exists" on a second
//! push, "Mounted from" into a second repository, pulled blobs pushed back unchanged,
//! `--compression zstd`, and pushes that must fail.

use super::cli::{Lf, assert_failure};
use super::fixture::{self, Served};
use super::images::{self, Comp, Image, short};
use super::server::Registry;

/// Load `img` into the store as `local/app:v1` from an OCI layout (no registry involved).
fn load_local(lf: &Lf, img: &Image) {
    let dir = lf.path("local-oci");
    let blobs: Vec<&images::Blob> = img.layers.iter().chain([&img.config]).collect();
    images::write_layout(&dir, "local/app:v1", &img.manifest, &blobs);
    lf.ok(&["image", "load", "-i", dir.to_str().expect("utf8")]);
}

/// What skopeo says the registry has under `name`: (manifest digest, size, parsed manifest).
fn remote(host: &str, name: &str) -> (String, usize, serde_json::Value) {
    let o = images::skopeo(&[
        "inspect".into(),
        "--raw".into(),
        "--tls-verify=false".into(),
        format!("docker://{host}/{name}"),
    ]);
    assert_eq!(
        o.code, 0,
        "skopeo inspect --raw {host}/{name}: {}",
        o.stderr
    );
    let v = serde_json::from_str(&o.stdout).expect("manifest JSON");
    (images::sha256(o.stdout.as_bytes()), o.stdout.len(), v)
}

/// The layer lines of a push: each layer has `Preparing` and then `status`; docker names a
/// layer by its short diffID when pushing (its blob digest is accepted too).
#[track_caller]
fn check_push_output(out: &str, repo_full: &str, img: &Image, status: &str, tag: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(format!("The push refers to repository [{repo_full}]").as_str()),
        "{out}"
    );
    for (blob, diff) in img.layers.iter().zip(&img.diff_ids) {
        let ids = [short(diff), short(&blob.digest)];
        let has = |s: &str| {
            lines
                .iter()
                .any(|l| ids.iter().any(|i| *l == format!("{i}: {s}")))
        };
        assert!(has("Preparing"), "{} Preparing:\n{out}", ids[0]);
        assert!(has(status), "{} {status}:\n{out}", ids[0]);
    }
    let last = lines.last().copied().unwrap_or("");
    let rest = last
        .strip_prefix(&format!("{tag}: digest: "))
        .unwrap_or_else(|| panic!("last line `{tag}: digest: ...`:\n{out}"));
    let (digest, size) = rest.split_once(" size: ").expect("digest ... size: N");
    let (got, len, _) = remote(
        repo_full.split_once('/').expect("host/repo").0,
        &format!("{}:{tag}", repo_full.split_once('/').expect("host").1),
    );
    assert_eq!(digest, got, "the printed digest is the registry's");
    assert_eq!(
        size.parse::<usize>().expect("size"),
        len,
        "the printed size is the manifest's"
    );
    digest.to_string()
}

#[test]
fn push_then_skopeo_reads_it_back() {
    let reg = Registry::plain();
    let lf = Lf::new();
    let img = Image::sample("push-1", Comp::Gzip);
    load_local(&lf, &img);
    let name = format!("{}/team/app:v1", reg.host());
    lf.ok(&["tag", "local/app:v1", &name]);
    let out = lf.ok(&["push", &name]);
    check_push_output(
        &out,
        &format!("{}/team/app", reg.host()),
        &img,
        "Pushed",
        "v1",
    );
    // skopeo copies it out (verifying digests): same config, so same image ID.
    let (_, _, m) = remote(&reg.host(), "team/app:v1");
    assert_eq!(m["config"]["digest"], img.id());
    let tmp = tempfile::tempdir().expect("tmp");
    let r = images::reference_rootfs(&reg.host(), "team/app:v1", None, None, tmp.path());
    super::selftest::check_sample_rootfs(&r);
    if super::cli::can_fuse().is_none() {
        let (_g, mnt) = lf.mount("local/app:v1");
        images::assert_same_tree("pushed image", &mnt, &r);
    }
    // Pushed twice: nothing to upload.
    let again = lf.ok(&["image", "push", &name]);
    check_push_output(
        &again,
        &format!("{}/team/app", reg.host()),
        &img,
        "Layer already exists",
        "v1",
    );
    // Into a fresh store: the same image ID and layers.
    let lf2 = Lf::new();
    fixture::pull(&lf2, &name);
    let v = fixture::inspect(&lf2, &name);
    assert_eq!(v["Id"], img.id());
    assert_eq!(v["RootFS"]["Layers"], serde_json::json!(img.diff_ids));
}

#[test]
fn push_to_a_second_repository_mounts_blobs() {
    let s = Served::sample("push-mount");
    let lf = Lf::new();
    fixture::pull(&lf, &s.r("team/app:v1"));
    let other = s.r("team/other:v1");
    lf.ok(&["tag", &s.r("team/app:v1"), &other]);
    let out = lf.ok(&["push", &other]);
    check_push_output(
        &out,
        &s.r("team/other"),
        &s.img,
        "Mounted from team/app",
        "v1",
    );
    // The blobs pulled are the blobs pushed: no recompression.
    let (_, _, m) = remote(&s.reg.host(), "team/other:v1");
    let layers: Vec<&str> = m["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest"))
        .collect();
    let want: Vec<&str> = s.img.layers.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(layers, want);
    assert_eq!(m["config"]["digest"], s.img.id());
}

#[test]
fn push_to_another_registry_keeps_the_image_id() {
    let s = Served::sample("push-cross");
    let dest = Registry::plain();
    let lf = Lf::new();
    fixture::pull(&lf, &s.r("team/app:v1"));
    let name = format!("{}/copy/app:v1", dest.host());
    lf.ok(&["tag", &s.r("team/app:v1"), &name]);
    let out = lf.ok(&["push", &name]);
    check_push_output(
        &out,
        &format!("{}/copy/app", dest.host()),
        &s.img,
        "Pushed",
        "v1",
    );
    let lf2 = Lf::new();
    fixture::pull(&lf2, &name);
    assert_eq!(fixture::inspect(&lf2, &name)["Id"], s.img.id());
    lf2.st.assert_clean();
}

#[test]
fn push_with_zstd_compression() {
    let reg = Registry::plain();
    let lf = Lf::new();
    let img = Image::sample("push-zstd", Comp::Gzip);
    load_local(&lf, &img);
    let name = format!("{}/team/zstd:v1", reg.host());
    lf.ok(&["tag", "local/app:v1", &name]);
    let out = lf.ok(&["push", "--compression", "zstd", &name]);
    check_push_output(
        &out,
        &format!("{}/team/zstd", reg.host()),
        &img,
        "Pushed",
        "v1",
    );
    let (_, _, m) = remote(&reg.host(), "team/zstd:v1");
    for l in m["layers"].as_array().expect("layers") {
        assert!(
            l["mediaType"]
                .as_str()
                .expect("mediaType")
                .ends_with("zstd"),
            "{l}"
        );
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let r = images::reference_rootfs(&reg.host(), "team/zstd:v1", None, None, tmp.path());
    super::selftest::check_sample_rootfs(&r);
    let lf2 = Lf::new();
    fixture::pull(&lf2, &name);
    assert_eq!(fixture::inspect(&lf2, &name)["Id"], img.id());
}

#[test]
fn pushes_that_must_fail() {
    let reg = Registry::htpasswd(&[("alice", "pw-push")]);
    let lf = Lf::new();
    let img = Image::sample("push-fail", Comp::Gzip);
    load_local(&lf, &img);
    // An image the store does not have.
    let o = lf.run(&["push", &format!("{}/team/none:v1", reg.host())]);
    assert_failure(&o, "push of a missing image");
    assert!(o.stderr.contains("team/none"), "{}", o.stderr);
    // No credentials for a registry that wants them.
    let name = format!("{}/team/app:v1", reg.host());
    lf.ok(&["tag", "local/app:v1", &name]);
    let o = lf.run(&["push", &name]);
    assert_failure(&o, "push without credentials");
    assert!(
        o.stderr.contains(&reg.host()),
        "names the registry: {}",
        o.stderr
    );
    let low = o.stderr.to_lowercase();
    assert!(
        low.contains("unauthorized") || low.contains("authentication"),
        "{}",
        o.stderr
    );
    // A dead registry.
    let dead = format!("127.0.0.1:{}/team/app:v1", super::server::free_port());
    lf.ok(&["tag", "local/app:v1", &dead]);
    let o = lf.run(&["push", &dead]);
    assert_failure(&o, "push to a dead port");
    assert!(
        o.stderr.contains(dead.split('/').next().expect("host")),
        "{}",
        o.stderr
    );
}
