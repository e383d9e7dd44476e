//! What the product tests share: a registry with an image already pushed, and the checks of
//! a pull's outcome (docker's output lines, the image as `inspect` and `images` show it, the
//! rootfs against skopeo + umoci, docker's distribution metadata on disk).

use super::cli::Lf;
use super::images::{self, Comp, Format, Image, Platform, short};
use super::server::Registry;
use std::path::Path;

/// A registry holding one image under `repo:tag`.
pub struct Served {
    pub reg: Registry,
    pub img: Image,
    /// The manifest digest the registry serves for it.
    pub digest: String,
    pub tmp: tempfile::TempDir,
}

impl Served {
    pub fn new(reg: Registry, img: Image, repo_tag: &str, f: Format) -> Served {
        let tmp = tempfile::tempdir().expect("tempdir");
        let digest = images::push(&reg, tmp.path(), &img, repo_tag, f).digest;
        Served {
            reg,
            img,
            digest,
            tmp,
        }
    }
    /// A plain registry with the sample image (gzip, OCI) as team/app:v1.
    pub fn sample(label: &str) -> Served {
        Served::new(
            Registry::plain(),
            Image::sample(label, Comp::Gzip),
            "team/app:v1",
            Format::Oci,
        )
    }
    /// `HOST/NAME` (NAME is `repo:tag` or `repo@digest`).
    pub fn r(&self, name: &str) -> String {
        format!("{}/{name}", self.reg.host())
    }
}

/// What `pull` must print (docker's lines when not on a terminal).
pub struct PullOut<'a> {
    /// The tag, or the digest when pulled by digest.
    pub what: &'a str,
    pub repo: &'a str,
    /// Blob digest and the line it must get (`Pull complete` or `Already exists`).
    pub layers: Vec<(&'a str, &'a str)>,
    pub digest: &'a str,
    /// `Downloaded newer image for` or `Image is up to date for`.
    pub status: &'a str,
    /// The full reference printed last.
    pub full: &'a str,
    pub default_tag: bool,
}

#[track_caller]
pub fn check_pull_output(out: &str, w: &PullOut) {
    let lines: Vec<&str> = out.lines().collect();
    let mut i = 0;
    if w.default_tag {
        assert_eq!(lines.first(), Some(&"Using default tag: latest"), "{out}");
        i = 1;
    }
    assert_eq!(
        lines.get(i).copied(),
        Some(format!("{}: Pulling from {}", w.what, w.repo).as_str()),
        "pull output:\n{out}"
    );
    for (d, status) in &w.layers {
        let s = short(d);
        let done = format!("{s}: {status}");
        let pos = lines.iter().position(|l| *l == done);
        assert!(pos.is_some(), "no `{done}` in the pull output:\n{out}");
        if *status == "Pull complete" {
            let start = lines
                .iter()
                .position(|l| *l == format!("{s}: Pulling fs layer"));
            assert!(
                start.is_some() && start < pos,
                "`{s}: Pulling fs layer` first:\n{out}"
            );
        }
    }
    let n = lines.len();
    assert!(n >= 3, "{out}");
    assert_eq!(lines[n - 3], format!("Digest: {}", w.digest), "{out}");
    assert_eq!(
        lines[n - 2],
        format!("Status: {} {}", w.status, familiar(w.full)),
        "{out}"
    );
    assert_eq!(
        lines[n - 1],
        w.full,
        "the last line is the reference:\n{out}"
    );
}

/// A reference as docker shows it to people: `docker.io/library/` and `docker.io/` dropped
/// (the `Status:` line uses it; the last line is the full reference).
pub fn familiar(full: &str) -> &str {
    full.strip_prefix("docker.io/library/")
        .or_else(|| full.strip_prefix("docker.io/"))
        .unwrap_or(full)
}

/// `pull`'s output for a fresh pull of every layer of `img` by tag.
pub fn fresh<'a>(
    img: &'a Image,
    tag: &'a str,
    repo: &'a str,
    digest: &'a str,
    full: &'a str,
) -> PullOut<'a> {
    PullOut {
        what: tag,
        repo,
        layers: img
            .layers
            .iter()
            .map(|l| (l.digest.as_str(), "Pull complete"))
            .collect(),
        digest,
        status: "Downloaded newer image for",
        full,
        default_tag: false,
    }
}

pub fn inspect(lf: &Lf, name: &str) -> serde_json::Value {
    let s = lf.ok(&["image", "inspect", name]);
    let v: serde_json::Value = serde_json::from_str(&s).expect("inspect JSON");
    v[0].clone()
}

/// Rows of `images` (optionally `--digests`), split on whitespace, header dropped.
pub fn images_rows(lf: &Lf, digests: bool) -> Vec<Vec<String>> {
    let mut a = vec!["images"];
    if digests {
        a.push("--digests");
    }
    let out = lf.ok(&a);
    out.lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The store has `img` as `repo:tag` (as docker shows the name) pulled by `digest`.
#[track_caller]
pub fn check_image(lf: &Lf, repo: &str, tag: Option<&str>, img: &Image, digest: &str) {
    let by = match tag {
        Some(t) => format!("{repo}:{t}"),
        None => format!("{repo}@{digest}"),
    };
    let v = inspect(lf, &by);
    assert_eq!(v["Id"], img.id(), "image ID = config digest (as docker)");
    let tags: Vec<String> = tag.map(|t| vec![format!("{repo}:{t}")]).unwrap_or_default();
    assert_eq!(v["RepoTags"], serde_json::json!(tags), "RepoTags");
    assert_eq!(
        v["RepoDigests"],
        serde_json::json!([format!("{repo}@{digest}")]),
        "RepoDigests"
    );
    assert_eq!(
        v["RootFS"]["Layers"],
        serde_json::json!(img.diff_ids),
        "RootFS.Layers"
    );
    assert_eq!(v["Os"], img.platform.os.as_str());
    assert_eq!(v["Architecture"], img.platform.arch.as_str());
    let want_tag = tag.unwrap_or("<none>");
    let rows = images_rows(lf, false);
    assert!(
        rows.iter()
            .any(|r| r.len() > 2 && r[0] == repo && r[1] == want_tag && img.id().contains(&r[2])),
        "`images` shows {repo} {want_tag} {}: {rows:?}",
        &img.id()[7..19]
    );
    let rows = images_rows(lf, true);
    assert!(
        rows.iter()
            .any(|r| r.len() > 2 && r[0] == repo && r[1] == want_tag && r[2] == digest),
        "`images --digests` shows {repo} {want_tag} {digest}: {rows:?}"
    );
}

/// The mount of `name` in the store equals what skopeo + umoci unpack from the registry.
pub fn check_rootfs(
    lf: &Lf,
    name: &str,
    reg_host: &str,
    remote: &str,
    platform: Option<&Platform>,
) {
    let want = images::reference_rootfs(reg_host, remote, platform, None, &lf.path("reference"));
    let (_guard, mnt) = lf.mount(name);
    images::assert_same_tree(&format!("rootfs of {name}"), &mnt, &want);
}

/// docker's distribution metadata: blob -> diffID, and diffID -> [{Digest, SourceRepository}].
#[track_caller]
pub fn check_distribution(root: &Path, img: &Image, source_repo: &str) {
    let base = root.join("image/overlay2/distribution");
    for (blob, diff) in img.layers.iter().zip(&img.diff_ids) {
        let hex = |d: &str| d.strip_prefix("sha256:").expect("sha256").to_string();
        let p = base.join("diffid-by-digest/sha256").join(hex(&blob.digest));
        let got = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(got.trim(), diff, "{}", p.display());
        let p = base.join("v2metadata-by-diffid/sha256").join(hex(diff));
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let v: serde_json::Value = serde_json::from_str(&text).expect("v2metadata JSON");
        let found =
            v.as_array().expect("a list").iter().any(|m| {
                m["Digest"] == blob.digest.as_str() && m["SourceRepository"] == source_repo
            });
        assert!(
            found,
            "{}: no {{Digest {}, SourceRepository {source_repo}}}: {text}",
            p.display(),
            blob.digest
        );
    }
}

/// Pull `name`, returning stdout (asserting success).
#[track_caller]
pub fn pull(lf: &Lf, name: &str) -> String {
    lf.ok(&["pull", name])
}
