//! The harness checked on its own, with skopeo, curl and umoci only (no layerfs): every
//! registry variant serves what skopeo pushed and refuses what it must, the token server's
//! JWTs are accepted, the image builder and the umoci oracle agree on whiteouts, opaque dirs
//! and owners, and the proxy's faults happen.

use super::http::{self, curl};
use super::images::{self, Comp, Format, Image, Platform};
use super::proxy::{Fault, Proxy};
use super::server::{Opts, Registry};
use super::token::Grant;
use std::path::Path;
use std::time::Duration;

const ACCEPT: &str = "Accept: application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// GET the manifest of `name` (`repo:tag`) with curl; (status, body digest, headers).
fn manifest(reg: &Registry, name: &str, extra: &[&str]) -> (u16, String, String) {
    let (repo, tag) = name.split_once(':').expect("repo:tag");
    let mut a = vec!["-H", ACCEPT];
    a.extend_from_slice(extra);
    let c = reg.curl(&format!("/v2/{repo}/manifests/{tag}"), &a);
    (c.status, images::sha256(&c.body), c.headers)
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn plain_registry_serves_what_skopeo_pushed() {
    let reg = Registry::plain();
    let t = tmp();
    let img = Image::sample("self-plain", Comp::Gzip);
    let p = images::push(&reg, t.path(), &img, "team/app:v1", Format::Oci);
    let (code, digest, headers) = manifest(&reg, "team/app:v1", &[]);
    assert_eq!(code, 200);
    assert_eq!(digest, img.manifest.digest);
    assert!(
        headers.contains(&p.digest),
        "Docker-Content-Digest: {headers}"
    );
    // schema2: skopeo converts the manifest, the config (the image ID) stays.
    let p2 = images::push(&reg, t.path(), &img, "team/app:v2s2", Format::V2s2);
    assert_ne!(p2.digest, img.manifest.digest);
    let c = reg.curl("/v2/team/app/manifests/v2s2", &["-H", ACCEPT]);
    let m: serde_json::Value = serde_json::from_slice(&c.body).expect("manifest json");
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(m["config"]["digest"], img.id());
    assert_eq!(images::sha256(&c.body), p2.digest);
    // A blob reads back byte for byte, and a missing tag is a 404.
    let b = reg.curl(&format!("/v2/team/app/blobs/{}", img.config.digest), &[]);
    assert_eq!(b.body, img.config.data);
    assert_eq!(manifest(&reg, "team/app:nope", &[]).0, 404);
    assert!(reg.blob_path(&img.layers[0].digest).is_file());
}

#[test]
fn htpasswd_registry_wants_the_password() {
    let reg = Registry::htpasswd(&[("alice", "s3cret-pw")]);
    assert_eq!(reg.curl("/v2/", &[]).status, 401);
    assert_eq!(reg.curl("/v2/", &["-u", "alice:s3cret-pw"]).status, 200);
    assert_eq!(reg.curl("/v2/", &["-u", "alice:wrong"]).status, 401);
    let t = tmp();
    let img = Image::sample("self-htpasswd", Comp::Gzip);
    let dir = images::layout_of(t.path(), &img);
    let anon = images::push_dir(&reg, &dir, "team/app:v1", Format::Oci, false, None);
    assert!(anon.is_err(), "anonymous push must be refused");
    images::push_dir(
        &reg,
        &dir,
        "team/app:v1",
        Format::Oci,
        false,
        Some(("alice", "s3cret-pw")),
    )
    .expect("push with the password");
    assert_eq!(manifest(&reg, "team/app:v1", &[]).0, 401);
    let (code, digest, _) = manifest(&reg, "team/app:v1", &["-u", "alice:s3cret-pw"]);
    assert_eq!((code, digest), (200, img.manifest.digest.clone()));
}

#[test]
fn tls_registry_is_trusted_through_its_ca_only() {
    let reg = Registry::tls();
    assert!(reg.url().starts_with("https://"));
    assert_eq!(reg.curl("/v2/", &[]).status, 200, "with --cacert");
    let url = format!("https://localhost:{}/v2/", reg.port());
    let ca = reg.ca().expect("ca").display().to_string();
    assert_eq!(
        curl(&["--cacert", &ca, &url]).status,
        200,
        "DNS:localhost SAN"
    );
    let bare = curl(&[&format!("{}/v2/", reg.url())]);
    assert_eq!(bare.status, 0, "without the CA: {bare:?}");
    assert!(bare.stderr.contains("certificate"), "{}", bare.stderr);
    let plain = curl(&[&format!("http://{}/v2/", reg.host())]);
    assert_ne!(plain.status, 200, "plain HTTP to the TLS port");
    let t = tmp();
    let img = Image::sample("self-tls", Comp::Gzip);
    images::push(&reg, t.path(), &img, "team/app:v1", Format::Oci);
    let (code, digest, _) = manifest(&reg, "team/app:v1", &[]);
    assert_eq!((code, digest), (200, img.manifest.digest.clone()));
}

pub fn token_grants() -> Vec<Grant> {
    vec![
        Grant::new(Some("alice"), "team/", &["pull", "push"]),
        Grant::new(Some("alice"), "public/", &["pull", "push"]),
        Grant::new(None, "public/", &["pull"]),
        Grant::new(Some("alice"), "catalog", &["*"]),
    ]
}

#[test]
fn token_registry_grants_by_user_and_scope() {
    let reg = Registry::token(&[("alice", "tok-pw")], token_grants());
    let v2 = reg.curl("/v2/", &[]);
    assert_eq!(v2.status, 401);
    let ts = reg.token_server().expect("token server");
    assert!(
        v2.headers
            .contains(&format!("Bearer realm=\"{}\"", ts.realm())),
        "{}",
        v2.headers
    );
    let t = tmp();
    let img = Image::sample("self-token", Comp::Gzip);
    let dir = images::layout_of(t.path(), &img);
    let alice = Some(("alice", "tok-pw"));
    let anon = images::push_dir(&reg, &dir, "team/app:v1", Format::Oci, false, None);
    assert!(anon.is_err(), "anonymous push to team/ must be refused");
    let bad = images::push_dir(
        &reg,
        &dir,
        "team/app:v1",
        Format::Oci,
        false,
        Some(("alice", "no")),
    );
    assert!(bad.is_err(), "a wrong password must be refused");
    images::push_dir(&reg, &dir, "team/app:v1", Format::Oci, false, alice)
        .expect("alice pushes team/");
    images::push_dir(&reg, &dir, "public/app:v1", Format::Oci, false, alice)
        .expect("alice pushes public/");
    // Anonymous: public/ can be pulled, team/ cannot.
    let inspect = |name: &str| {
        images::skopeo(&[
            "inspect".into(),
            "--raw".into(),
            "--tls-verify=false".into(),
            format!("docker://{}/{name}", reg.host()),
        ])
    };
    let o = inspect("public/app:v1");
    assert_eq!(o.code, 0, "anonymous pull of public/: {}", o.stderr);
    assert_eq!(images::sha256(o.stdout.as_bytes()), img.manifest.digest);
    assert_ne!(inspect("team/app:v1").code, 0, "anonymous pull of team/");
    // By hand: an anonymous token for public/ opens its manifest.
    let url = format!(
        "{}?service={}&scope=repository:public/app:pull",
        ts.realm(),
        super::token::SERVICE
    );
    let tok = curl(&[&url]);
    assert_eq!(tok.status, 200, "{tok:?}");
    let v: serde_json::Value = serde_json::from_slice(&tok.body).expect("token json");
    let bearer = format!(
        "Authorization: Bearer {}",
        v["token"].as_str().expect("token")
    );
    assert_eq!(v["expires_in"], 300);
    assert_eq!(v["token"], v["access_token"]);
    let (code, digest, _) = manifest(&reg, "public/app:v1", &["-H", &bearer]);
    assert_eq!((code, digest), (200, img.manifest.digest.clone()));
    assert_eq!(
        manifest(&reg, "team/app:v1", &["-H", &bearer]).0,
        401,
        "wrong scope"
    );
    let reqs = ts.requests();
    assert!(
        reqs.iter()
            .any(|r| r.user.as_deref() == Some("alice") && r.status == 200)
    );
    assert!(
        reqs.iter().any(|r| r.status == 401),
        "the wrong password was seen: {reqs:?}"
    );
}

/// The oracle agrees with what the builder meant: whiteout, opaque dir, symlink, owners.
#[test]
fn umoci_oracle_applies_whiteouts_and_opaque_dirs() {
    let reg = Registry::plain();
    let t = tmp();
    for comp in [Comp::Gzip, Comp::Plain, Comp::Zstd] {
        let img = Image::sample(&format!("self-oracle-{comp:?}"), comp);
        let name = format!("team/oracle:{comp:?}").to_lowercase();
        images::push(&reg, t.path(), &img, &name, Format::Oci);
        let out = t.path().join(format!("ref-{comp:?}"));
        let r = images::reference_rootfs(&reg.host(), &name, None, None, &out);
        check_sample_rootfs(&r);
    }
}

pub fn check_sample_rootfs(r: &Path) {
    use std::os::unix::fs::MetadataExt;
    assert!(!r.join("etc/gone").exists(), "whiteout applied");
    assert!(!r.join("etc/.wh.gone").exists());
    let cache: Vec<_> = std::fs::read_dir(r.join("var/cache"))
        .expect("var/cache")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(cache, vec!["new".to_string()], "opaque dir applied");
    assert_eq!(
        std::fs::read_link(r.join("bin/sh"))
            .expect("symlink")
            .to_str(),
        Some("busybox")
    );
    let bb = std::fs::symlink_metadata(r.join("bin/busybox")).expect("busybox");
    assert_eq!(bb.len(), 30_000, "the upper layer's busybox");
    if crate::common::is_root() {
        assert_eq!(bb.mode() & 0o7777, 0o4755);
        let n = std::fs::symlink_metadata(r.join("home/user/notes")).expect("notes");
        assert_eq!((n.uid(), n.gid()), (1000, 1000));
    }
}

#[test]
fn multi_platform_index_round_trips_through_skopeo() {
    let reg = Registry::plain();
    let t = tmp();
    let imgs = images::multi_platform("self-multi");
    let p = images::push_index(&reg, t.path(), &imgs, "team/multi:v1");
    let (code, digest, _) = manifest(&reg, "team/multi:v1", &[]);
    assert_eq!((code, digest), (200, p.digest.clone()));
    for img in &imgs {
        let out = t.path().join(format!("ref-{}", img.platform.arch));
        let r = images::reference_rootfs(
            &reg.host(),
            "team/multi:v1",
            Some(&img.platform),
            None,
            &out,
        );
        let os = std::fs::read_to_string(r.join("etc/os-release")).expect("os-release");
        assert!(
            os.contains(&format!("self-multi-{}", img.platform)),
            "{}: {os}",
            img.platform
        );
    }
    assert_eq!(
        Platform::host().to_string(),
        "linux/amd64",
        "this suite assumes an amd64 host"
    );
}

#[test]
fn catalog_pages_with_link_headers() {
    let reg = Registry::start(Opts {
        catalog_max: Some(2),
        ..Opts::default()
    });
    let t = tmp();
    let img = Image::sample("self-catalog", Comp::Gzip);
    let dir = images::layout_of(t.path(), &img);
    for r in ["a/one", "a/two", "b/three"] {
        images::push_dir(&reg, &dir, &format!("{r}:v1"), Format::Oci, false, None).expect("push");
    }
    let c = reg.curl("/v2/_catalog", &[]);
    assert_eq!(c.status, 200);
    let body = c.text();
    assert!(
        body.contains("a/one") && !body.contains("b/three"),
        "{body}"
    );
    assert!(
        c.headers.to_lowercase().contains("link:"),
        "paginated: {}",
        c.headers
    );
}

#[test]
fn proxy_cuts_and_holds_blobs() {
    let reg = Registry::plain();
    let t = tmp();
    let img = Image::sample("self-proxy", Comp::Gzip);
    images::push(&reg, t.path(), &img, "team/app:v1", Format::Oci);
    let layer = img.layers[0].clone();
    let cut = Proxy::start(
        reg.port(),
        Fault::Cut {
            digest: layer.digest.clone(),
            after: 1000,
            times: 1,
        },
    );
    let url = format!("http://{}/v2/team/app/blobs/{}", cut.host(), layer.digest);
    let first = curl(&[&url]);
    assert!(
        first.status == 200 && first.body.len() < layer.data.len(),
        "cut short"
    );
    assert!(!first.stderr.is_empty(), "curl noticed the short body");
    let c = http::curl(&["-o", "/dev/null", &url]);
    assert_eq!(c.status, 200);
    let ok = images::skopeo(&[
        "inspect".into(),
        "--tls-verify=false".into(),
        format!("docker://{}/team/app:v1", cut.host()),
    ]);
    assert_eq!(ok.code, 0, "through the proxy: {}", ok.stderr);
    let reqs = cut.requests();
    assert!(reqs.iter().filter(|r| r.cut).count() == 1, "{reqs:?}");
    // Held: the transfer waits for release, then completes.
    let hold = Proxy::start(
        reg.port(),
        Fault::Stall {
            digests: vec![layer.digest.clone()],
            after: 500,
        },
    );
    let url = format!("http://{}/v2/team/app/blobs/{}", hold.host(), layer.digest);
    let h = std::thread::spawn(move || {
        let f = tempfile::NamedTempFile::new().expect("tmp");
        let c = curl(&["-o", f.path().to_str().expect("utf8"), &url]);
        (c.status, std::fs::read(f.path()).expect("read"))
    });
    assert!(
        hold.wait_stalled(1, Duration::from_secs(20)),
        "the transfer is held"
    );
    hold.release();
    let (status, body) = h.join().expect("curl thread");
    assert_eq!(status, 200);
    assert_eq!(
        images::sha256(&body),
        layer.digest,
        "complete after release"
    );
}
