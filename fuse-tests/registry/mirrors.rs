//! `registry-mirrors` from the layerfs config (`$LAYERFS_CONFIG`): docker.io pulls try each
//! mirror in order (a down one and one lacking the image are skipped) before the origin,
//! which is unreachable here, so when every mirror fails the error must say docker.io.
//! Names pulled through a mirror are docker.io names (`mirrortest`, `user/app`).

use super::cli::{Lf, assert_failure};
use super::fixture::{self, PullOut, check_pull_output};
use super::images::{self, Comp, Format, Image};
use super::server::{Registry, free_port};

fn mirrors(lf: &Lf, urls: &[String]) {
    lf.write_config(&serde_json::json!({"registry-mirrors": urls}));
}

#[test]
fn down_and_empty_mirrors_are_skipped() {
    let empty = Registry::plain();
    let good = Registry::plain();
    let tmp = tempfile::tempdir().expect("tmp");
    let img = Image::sample("mirror-ok", Comp::Gzip);
    let d = images::push(
        &good,
        tmp.path(),
        &img,
        "library/mirrortest:latest",
        Format::Oci,
    )
    .digest;
    let user_img = Image::sample("mirror-user", Comp::Gzip);
    let du = images::push(&good, tmp.path(), &user_img, "someuser/app:v1", Format::Oci).digest;
    let lf = Lf::new();
    let dead = format!("http://127.0.0.1:{}", free_port());
    mirrors(&lf, &[dead, empty.url(), good.url()]);
    let out = fixture::pull(&lf, "mirrortest");
    let want = PullOut {
        what: "latest",
        repo: "library/mirrortest",
        layers: img
            .layers
            .iter()
            .map(|l| (l.digest.as_str(), "Pull complete"))
            .collect(),
        digest: &d,
        status: "Downloaded newer image for",
        full: "docker.io/library/mirrortest:latest",
        default_tag: true,
    };
    check_pull_output(&out, &want);
    fixture::check_image(&lf, "mirrortest", Some("latest"), &img, &d);
    assert!(
        empty
            .log()
            .contains("/v2/library/mirrortest/manifests/latest"),
        "the empty mirror was asked first:\n{}",
        empty.log()
    );
    // A user repository, by its short name.
    let out = fixture::pull(&lf, "someuser/app:v1");
    assert!(out.ends_with("docker.io/someuser/app:v1\n"), "{out}");
    fixture::check_image(&lf, "someuser/app", Some("v1"), &user_img, &du);
    // Names with a registry host never go to mirrors.
    let before = lf.state();
    let o = lf.run(&[
        "pull",
        &format!("{}/library/mirrortest:latest", empty.host()),
    ]);
    assert_failure(&o, "pull from the empty registry by its own name");
    lf.state()
        .assert_unchanged(&before, "pull from the empty registry");
    lf.st.assert_clean();
}

#[test]
fn every_mirror_failing_names_docker_io() {
    let empty = Registry::plain();
    let lf = Lf::new();
    let dead = format!("http://127.0.0.1:{}", free_port());
    mirrors(&lf, &[dead, empty.url()]);
    let before = lf.state();
    let o = lf.run(&["pull", "layerfs-test-nowhere/app:v1"]);
    assert_failure(&o, "pull with every mirror failing");
    assert!(
        o.stderr.contains("docker.io"),
        "names the origin: {}",
        o.stderr
    );
    assert!(
        o.stderr.contains("layerfs-test-nowhere/app"),
        "names the reference: {}",
        o.stderr
    );
    lf.state()
        .assert_unchanged(&before, "pull with every mirror failing");
}

#[test]
fn bad_config_file_is_named() {
    let lf = Lf::new();
    std::fs::write(lf.config_path(), "{\"registry-mirrors\": [").expect("write");
    let o = lf.run(&["pull", "busybox"]);
    assert_failure(&o, "pull with a broken config");
    let p = lf.config_path().display().to_string();
    assert!(o.stderr.contains(&p), "names {p}: {}", o.stderr);
}
