//! Both ways with the other clients, on the real busybox fixture (../shared/fixtures): skopeo
//! pushes it and layerfs pulls it (same image ID as skopeo's config digest, same rootfs as
//! umoci, hard links included); layerfs pushes it and podman pulls and runs it; podman pushes
//! and layerfs pulls the same image ID podman has.

use super::cli::{Lf, out};
use super::fixture::{self, check_pull_output};
use super::images::{self, sha256};
use super::server::Registry;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn fixture_tar() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/busybox.docker.tar"
    ));
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "skipped: no fixture {} (needs ../shared next to the repo)",
            p.display()
        );
        None
    }
}

/// skopeo copies the fixture into `reg` as NAME; the manifest digest.
fn skopeo_push_fixture(reg: &Registry, tar: &Path, name: &str) -> String {
    let df = tempfile::NamedTempFile::new().expect("tmp");
    let o = images::skopeo(&[
        "copy".into(),
        "--quiet".into(),
        "--dest-tls-verify=false".into(),
        format!("--digestfile={}", df.path().display()),
        format!("docker-archive:{}", tar.display()),
        format!("docker://{}/{name}", reg.host()),
    ]);
    assert_eq!(o.code, 0, "skopeo copy the fixture: {}", o.stderr);
    std::fs::read_to_string(df.path())
        .expect("digest")
        .trim()
        .to_string()
}

/// skopeo's view of the config: its digest is the image ID.
fn remote_config_digest(host: &str, name: &str) -> String {
    let o = images::skopeo(&[
        "inspect".into(),
        "--config".into(),
        "--raw".into(),
        "--tls-verify=false".into(),
        format!("docker://{host}/{name}"),
    ]);
    assert_eq!(o.code, 0, "skopeo inspect --config: {}", o.stderr);
    sha256(o.stdout.as_bytes())
}

#[test]
fn busybox_pushed_by_skopeo_pulled_by_layerfs() {
    let Some(tar) = fixture_tar() else { return };
    let reg = Registry::plain();
    let digest = skopeo_push_fixture(&reg, &tar, "library/busybox:1");
    let id = remote_config_digest(&reg.host(), "library/busybox:1");
    let lf = Lf::new();
    let full = format!("{}/library/busybox:1", reg.host());
    let o = fixture::pull(&lf, &full);
    let v = fixture::inspect(&lf, &full);
    assert_eq!(v["Id"], id.as_str(), "image ID = skopeo's config digest");
    assert_eq!(
        v["RepoDigests"],
        serde_json::json!([format!("{}/library/busybox@{digest}", reg.host())])
    );
    assert!(o.contains(&format!("Digest: {digest}")), "{o}");
    lf.st.assert_clean();
    // The same image from a docker-archive `load`: the same ID.
    let lf2 = Lf::new();
    lf2.ok(&["load", "-i", tar.to_str().expect("utf8")]);
    assert!(
        lf2.ok(&["images", "-q", "--no-trunc"]).contains(&id),
        "load gives the same image ID"
    );
    if super::cli::can_fuse().is_none() {
        fixture::check_rootfs(&lf, &full, &reg.host(), "library/busybox:1", None);
    }
    // Pulled again under another tag of the same manifest: up to date, no layer fetched.
    images::skopeo(&[
        "copy".into(),
        "--quiet".into(),
        "--src-tls-verify=false".into(),
        "--dest-tls-verify=false".into(),
        format!("docker://{full}"),
        format!("docker://{}/library/busybox:2", reg.host()),
    ]);
    let full2 = format!("{}/library/busybox:2", reg.host());
    let again = fixture::pull(&lf, &full2);
    let want = fixture::PullOut {
        what: "2",
        repo: "library/busybox",
        layers: vec![],
        digest: &digest,
        status: "Downloaded newer image for",
        full: &full2,
        default_tag: false,
    };
    check_pull_output(&again, &want);
    assert!(!again.contains("Pull complete"), "{again}");
}

/// A root podman on a private store (vfs driver) in a temp dir.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        std::fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                d.join("graph").display(),
                d.join("runroot").display()
            ),
        )
        .expect("storage.conf");
        std::fs::write(
            d.join("containers.conf"),
            format!(
                "[engine]\nevents_logger = \"file\"\nevents_logfile_path = \"{}\"\n",
                d.join("events.log").display()
            ),
        )
        .expect("containers.conf");
        Podman { dir }
    }
    fn run(&self, args: &[&str]) -> super::cli::Out {
        let d = self.dir.path();
        out(Command::new("podman")
            .args(["--runtime", "runc"])
            .args(args)
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("HOME", d)
            .stdin(Stdio::null())
            .output()
            .expect("run podman"))
    }
    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(o.code, 0, "podman {args:?}: {}", o.stderr);
        o.stdout
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-f", "-a", "-t", "0"]);
        let _ = self.run(&["rmi", "-f", "-a"]);
    }
}

#[test]
fn podman_runs_what_layerfs_pushed_and_layerfs_pulls_what_podman_pushed() {
    let Some(tar) = fixture_tar() else { return };
    if !crate::common::is_root() || Command::new("podman").arg("--version").output().is_err() {
        eprintln!("skipped: needs root and podman");
        return;
    }
    let reg = Registry::plain();
    let lf = Lf::new();
    lf.ok(&["load", "-i", tar.to_str().expect("utf8")]);
    let name = format!("{}/lf/busybox:v1", reg.host());
    lf.ok(&["tag", "busybox:latest", &name]);
    lf.ok(&["push", &name]);
    let p = Podman::new();
    let run = p.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--tls-verify=false",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        &name,
        "sh",
        "-c",
        "echo hello from a layerfs push",
    ]);
    assert!(run.contains("hello from a layerfs push"), "{run}");
    let id = lf
        .ok(&["images", "-q", "--no-trunc", &name])
        .trim()
        .to_string();
    let pid = p
        .ok(&["inspect", "--format", "{{.Id}}", &name])
        .trim()
        .to_string();
    assert_eq!(format!("sha256:{pid}"), id, "podman sees the same image ID");
    // The other way: podman pushes (as docker schema2), layerfs pulls.
    let back = format!("{}/podman/busybox:v1", reg.host());
    p.ok(&["tag", &name, &back]);
    p.ok(&["push", "--tls-verify=false", "--format", "v2s2", &back]);
    let lf2 = Lf::new();
    fixture::pull(&lf2, &back);
    assert_eq!(fixture::inspect(&lf2, &back)["Id"], id.as_str());
    lf2.st.assert_clean();
}
