//! `layerfs pull` against a real registry: docker's output lines, the image ID (= skopeo's
//! config digest), names and digests as `images` and `inspect` show them, the rootfs against
//! skopeo + umoci, by tag, by digest, the default tag, `-q`, all tags, shared layers,
//! schema2 / zstd / uncompressed layers, platform choice, pulls from `image mount`, and the
//! unprivileged user.

use super::cli::{Lf, assert_failure};
use super::fixture::{self, PullOut, Served, check_image, check_pull_output, fresh};
use super::images::{self, Comp, Format, Image, Platform};
use super::server::Registry;

#[test]
fn pull_by_tag_matches_skopeo_and_umoci() {
    let s = Served::sample("pull-tag");
    let lf = Lf::new();
    let full = s.r("team/app:v1");
    let out = fixture::pull(&lf, &full);
    check_pull_output(&out, &fresh(&s.img, "v1", "team/app", &s.digest, &full));
    check_image(&lf, &s.r("team/app"), Some("v1"), &s.img, &s.digest);
    fixture::check_distribution(&lf.st.root, &s.img, &s.r("team/app"));
    lf.st.assert_clean();
    if super::cli::can_fuse().is_none() {
        fixture::check_rootfs(&lf, &full, &s.reg.host(), "team/app:v1", None);
    }
    // Again: nothing to fetch.
    let again = lf.ok(&["image", "pull", &full]);
    let mut want = fresh(&s.img, "v1", "team/app", &s.digest, &full);
    want.status = "Image is up to date for";
    want.layers.clear();
    check_pull_output(&again, &want);
    assert!(!again.contains("Pull complete"), "{again}");
    assert_eq!(lf.st.image_count(), 1);
}

#[test]
fn pull_docker_schema2_gives_the_same_image_id() {
    let s = Served::new(
        Registry::plain(),
        Image::sample("pull-v2s2", Comp::Gzip),
        "team/app:v1",
        Format::V2s2,
    );
    assert_ne!(
        s.digest, s.img.manifest.digest,
        "skopeo converted the manifest"
    );
    let lf = Lf::new();
    let full = s.r("team/app:v1");
    let out = fixture::pull(&lf, &full);
    check_pull_output(&out, &fresh(&s.img, "v1", "team/app", &s.digest, &full));
    check_image(&lf, &s.r("team/app"), Some("v1"), &s.img, &s.digest);
    lf.st.assert_clean();
}

#[test]
fn pull_without_tag_uses_latest() {
    let s = Served::new(
        Registry::plain(),
        Image::sample("pull-latest", Comp::Gzip),
        "team/app:latest",
        Format::Oci,
    );
    let lf = Lf::new();
    let out = fixture::pull(&lf, &s.r("team/app"));
    let full = s.r("team/app:latest");
    let mut want = fresh(&s.img, "latest", "team/app", &s.digest, &full);
    want.default_tag = true;
    check_pull_output(&out, &want);
    check_image(&lf, &s.r("team/app"), Some("latest"), &s.img, &s.digest);
}

#[test]
fn pull_by_digest_pins_the_manifest() {
    let s = Served::sample("pull-digest");
    // The tag moves on; the digest still names the first image.
    let other = Image::sample("pull-digest-moved", Comp::Gzip);
    images::push(&s.reg, s.tmp.path(), &other, "team/app:v1", Format::Oci);
    let lf = Lf::new();
    let full = s.r(&format!("team/app@{}", s.digest));
    let out = fixture::pull(&lf, &full);
    check_pull_output(
        &out,
        &fresh(&s.img, &s.digest, "team/app", &s.digest, &full),
    );
    check_image(&lf, &s.r("team/app"), None, &s.img, &s.digest);
    lf.st.assert_clean();
    // -q prints the reference only.
    let lf2 = Lf::new();
    let q = lf2.ok(&["pull", "-q", &s.r("team/app:v1")]);
    assert_eq!(q, format!("{}\n", s.r("team/app:v1")));
    assert_eq!(
        fixture::inspect(&lf2, &s.r("team/app:v1"))["Id"],
        other.id()
    );
}

#[test]
fn second_image_reuses_shared_layers() {
    let reg = Registry::plain();
    let tmp = tempfile::tempdir().expect("tmp");
    let base = images::base_layer("shared");
    let a = Image::new(
        &[base.clone(), images::upper_layer("a")],
        Comp::Gzip,
        Platform::host(),
        "a",
    );
    let b = Image::new(
        &[base, images::upper_layer("b")],
        Comp::Gzip,
        Platform::host(),
        "b",
    );
    assert_eq!(a.layers[0].digest, b.layers[0].digest);
    let da = images::push(&reg, tmp.path(), &a, "team/a:v1", Format::Oci).digest;
    let db = images::push(&reg, tmp.path(), &b, "team/b:v1", Format::Oci).digest;
    let lf = Lf::new();
    let fa = format!("{}/team/a:v1", reg.host());
    let fb = format!("{}/team/b:v1", reg.host());
    fixture::pull(&lf, &fa);
    let out = lf.ok(&["pull", "--max-concurrent-downloads", "1", &fb]);
    let want = PullOut {
        what: "v1",
        repo: "team/b",
        layers: vec![
            (&b.layers[0].digest, "Already exists"),
            (&b.layers[1].digest, "Pull complete"),
        ],
        digest: &db,
        status: "Downloaded newer image for",
        full: &fb,
        default_tag: false,
    };
    check_pull_output(&out, &want);
    assert_eq!(lf.st.layerdb_count(), 3, "the shared base is stored once");
    check_image(&lf, &format!("{}/team/a", reg.host()), Some("v1"), &a, &da);
    check_image(&lf, &format!("{}/team/b", reg.host()), Some("v1"), &b, &db);
    lf.st.assert_clean();
}

#[test]
fn pull_all_tags() {
    let s = Served::sample("pull-all-1");
    let second = Image::sample("pull-all-2", Comp::Gzip);
    let d2 = images::push(&s.reg, s.tmp.path(), &second, "team/app:v2", Format::Oci).digest;
    let lf = Lf::new();
    lf.ok(&["pull", "--all-tags", &s.r("team/app")]);
    check_image(&lf, &s.r("team/app"), Some("v1"), &s.img, &s.digest);
    check_image(&lf, &s.r("team/app"), Some("v2"), &second, &d2);
    lf.st.assert_clean();
}

/// zstd and uncompressed layers: same IDs, same rootfs as the oracle (which reads gzip).
#[test]
fn zstd_and_uncompressed_layers() {
    let reg = Registry::plain();
    let tmp = tempfile::tempdir().expect("tmp");
    for comp in [Comp::Zstd, Comp::Plain] {
        let img = Image::sample(&format!("pull-{comp:?}"), comp);
        let tag = format!("{comp:?}").to_lowercase();
        let d = images::push(
            &reg,
            tmp.path(),
            &img,
            &format!("team/app:{tag}"),
            Format::Oci,
        )
        .digest;
        let lf = Lf::new();
        let full = format!("{}/team/app:{tag}", reg.host());
        let out = fixture::pull(&lf, &full);
        check_pull_output(&out, &fresh(&img, &tag, "team/app", &d, &full));
        check_image(
            &lf,
            &format!("{}/team/app", reg.host()),
            Some(&tag),
            &img,
            &d,
        );
        fixture::check_distribution(&lf.st.root, &img, &format!("{}/team/app", reg.host()));
        lf.st.assert_clean();
        if super::cli::can_fuse().is_none() {
            fixture::check_rootfs(&lf, &full, &reg.host(), &format!("team/app:{tag}"), None);
        }
    }
}

#[test]
fn platform_choice_from_an_index() {
    let reg = Registry::plain();
    let tmp = tempfile::tempdir().expect("tmp");
    let imgs = images::multi_platform("pull-multi");
    let idx = images::push_index(&reg, tmp.path(), &imgs, "team/multi:v1").digest;
    let full = format!("{}/team/multi:v1", reg.host());
    let repo = format!("{}/team/multi", reg.host());
    // Default: the host's platform. The digest printed and kept is the index's (as docker).
    let lf = Lf::new();
    let out = fixture::pull(&lf, &full);
    let host = imgs
        .iter()
        .find(|i| i.platform == Platform::host())
        .expect("host image");
    check_pull_output(&out, &fresh(host, "v1", "team/multi", &idx, &full));
    check_image(&lf, &repo, Some("v1"), host, &idx);
    for img in imgs.iter().filter(|i| i.platform != Platform::host()) {
        let lf = Lf::new();
        let p = img.platform.to_string();
        lf.ok(&["pull", "--platform", &p, &full]);
        check_image(&lf, &repo, Some("v1"), img, &idx);
        lf.st.assert_clean();
        if super::cli::can_fuse().is_none() {
            fixture::check_rootfs(
                &lf,
                &full,
                &reg.host(),
                "team/multi:v1",
                Some(&img.platform),
            );
        }
    }
    // None matches: the error lists what there is, and nothing is stored.
    let lf = Lf::new();
    let before = lf.state();
    let o = lf.run(&["pull", "--platform", "linux/s390x", &full]);
    assert_failure(&o, "pull --platform linux/s390x");
    for p in ["linux/s390x", "linux/amd64", "linux/arm64", "linux/arm/v7"] {
        assert!(o.stderr.contains(p), "the error names {p}: {}", o.stderr);
    }
    assert!(
        o.stderr.contains("team/multi"),
        "names the reference: {}",
        o.stderr
    );
    lf.state()
        .assert_unchanged(&before, "pull of a missing platform");
}

/// A single-platform image: `--platform` of its own platform works; another is refused
/// (its config says what it is), with nothing stored.
#[test]
fn platform_of_a_single_platform_image() {
    let arm = Platform::parse("linux/arm64");
    let img = Image::new(
        &[images::base_layer("arm")],
        Comp::Gzip,
        arm,
        "pull-arm-only",
    );
    let s = Served::new(Registry::plain(), img, "team/arm:v1", Format::Oci);
    let full = s.r("team/arm:v1");
    let lf = Lf::new();
    let before = lf.state();
    let o = lf.run(&["pull", "--platform", "linux/amd64", &full]);
    assert_failure(&o, "pull --platform linux/amd64 of an arm64 image");
    for w in ["team/arm", "linux/amd64", "linux/arm64"] {
        assert!(o.stderr.contains(w), "the error names {w}: {}", o.stderr);
    }
    lf.state()
        .assert_unchanged(&before, "pull of the wrong platform");
    lf.ok(&["pull", "--platform", "linux/arm64", &full]);
    check_image(&lf, &s.r("team/arm"), Some("v1"), &s.img, &s.digest);
}

#[test]
fn image_mount_pulls_a_missing_image() {
    if let Some(why) = super::cli::can_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    let s = Served::sample("pull-mount");
    let full = s.r("team/app:v1");
    let lf = Lf::new();
    let mnt = lf.dir("never");
    let o = lf.run(&[
        "image",
        "mount",
        "--pull",
        "never",
        &full,
        mnt.to_str().expect("utf8"),
    ]);
    assert_failure(&o, "image mount --pull never of a missing image");
    assert!(o.stderr.contains("team/app"), "{}", o.stderr);
    assert_eq!(lf.st.image_count(), 0);
    {
        let (_g, mnt) = lf.mount(&full);
        let want =
            images::reference_rootfs(&s.reg.host(), "team/app:v1", None, None, &lf.path("ref"));
        images::assert_same_tree("image mount (pull missing)", &mnt, &want);
    }
    check_image(&lf, &s.r("team/app"), Some("v1"), &s.img, &s.digest);
    let c = lf.run(&[
        "container",
        "create",
        "--pull",
        "always",
        "--name",
        "c1",
        &full,
    ]);
    assert_eq!(c.code, 0, "container create --pull always: {}", c.stderr);
    assert_eq!(lf.st.image_count(), 1);
}

#[test]
fn unprivileged_user_pulls_and_mounts() {
    if !crate::common::is_root() {
        eprintln!("skipped: needs root to switch to the test user");
        return;
    }
    let s = Served::sample("pull-user");
    let lf = Lf::unprivileged();
    let full = s.r("team/app:v1");
    let o = lf.run(&["pull", &full]);
    if o.code != 0 && o.stderr.contains("Operation not supported") {
        eprintln!("skipped: no user xattrs on this filesystem: {}", o.stderr);
        return;
    }
    assert_eq!(
        o.code,
        0,
        "pull as {}: {}",
        crate::common::TEST_USER,
        o.stderr
    );
    check_pull_output(
        &o.stdout,
        &fresh(&s.img, "v1", "team/app", &s.digest, &full),
    );
    check_image(&lf, &s.r("team/app"), Some("v1"), &s.img, &s.digest);
    lf.st.assert_clean();
    if !std::path::Path::new("/dev/fuse").exists() {
        eprintln!("skipped the mount: no /dev/fuse");
        return;
    }
    fixture::check_rootfs(&lf, &full, &s.reg.host(), "team/app:v1", None);
}

#[test]
fn bad_references_fail_before_any_traffic() {
    let junk = super::proxy::Junk::start();
    let lf = Lf::new();
    let before = lf.state();
    for bad in [
        format!("{}/Team/App:v1", junk.host()),
        format!("{}/team/app@sha256:nothex", junk.host()),
        format!("{}/team/app:bad:tag", junk.host()),
    ] {
        let o = lf.run(&["pull", &bad]);
        assert_failure(&o, &format!("pull {bad}"));
        assert!(
            o.stderr.contains(&bad) || o.stderr.contains("reference"),
            "{}",
            o.stderr
        );
    }
    assert_eq!(junk.connections(), 0, "no traffic for invalid references");
    lf.state().assert_unchanged(&before, "invalid references");
}

#[test]
fn top_level_verbs_and_unknown_words() {
    let lf = Lf::new();
    let o = lf.run(&["frobnicate", "x"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("frobnicate"),
        "names the word: {}",
        o.stderr
    );
    for verb in [
        "pull", "push", "search", "login", "logout", "images", "load",
    ] {
        assert!(o.stderr.contains(verb), "lists {verb}: {}", o.stderr);
    }
    for verb in [
        "pull", "push", "search", "login", "logout", "tag", "history", "inspect", "save",
    ] {
        let h = lf.run(&[verb, "--help"]);
        assert_eq!(h.code, 0, "{verb} --help: {}", h.stderr);
    }
}
