//! Credentials and transport security: htpasswd login (`--password-stdin`, `-p`) then pull
//! and push, a wrong password, config.json (0600, other keys kept, logout), podman's
//! auth.json, a credential helper; the token server (anonymous pulls of public repos, push
//! only after login, tokens reused, never printed even with RUST_LOG=trace); TLS with the CA
//! in certs.d and `--tls-verify`.

use super::cli::{Lf, Out, assert_failure, assert_no_secret};
use super::fixture::{self, Served, check_image};
use super::images::{self, Comp, Format, Image};
use super::selftest::token_grants;
use super::server::Registry;
use std::os::unix::fs::PermissionsExt;

const PW: &str = "hunter2-Secret";

fn config_json(lf: &Lf) -> serde_json::Value {
    let p = lf.docker_config().join("config.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("config.json is JSON")
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A registry with Basic auth and the sample image pushed by skopeo as team/app:v1.
fn basic_served(label: &str) -> Served {
    let reg = Registry::htpasswd(&[("alice", PW)]);
    let tmp = tempfile::tempdir().expect("tmp");
    let img = Image::sample(label, Comp::Gzip);
    let dir = images::layout_of(tmp.path(), &img);
    let digest = images::push_dir(
        &reg,
        &dir,
        "team/app:v1",
        Format::Oci,
        false,
        Some(("alice", PW)),
    )
    .expect("skopeo push with the password")
    .digest;
    Served {
        reg,
        img,
        digest,
        tmp,
    }
}

fn login(lf: &Lf, host: &str, pw: &str) -> Out {
    lf.run_input(
        &["login", "-u", "alice", "--password-stdin", host],
        &format!("{pw}\n"),
    )
}

#[track_caller]
fn no_secrets(o: &Out, what: &str) {
    assert_no_secret(o, PW, what);
    assert_no_secret(o, &format!("alice:{PW}"), what);
}

#[test]
fn htpasswd_login_then_pull_and_push() {
    let s = basic_served("auth-basic");
    let host = s.reg.host();
    let lf = Lf::new();
    let before = lf.state();
    let o = lf.run(&["pull", &s.r("team/app:v1")]);
    assert_failure(&o, "pull before login");
    assert!(
        o.stderr.contains(&host) && o.stderr.contains("team/app"),
        "{}",
        o.stderr
    );
    let low = o.stderr.to_lowercase();
    assert!(
        low.contains("unauthorized") || low.contains("authentication"),
        "{}",
        o.stderr
    );
    lf.state().assert_unchanged(&before, "pull before login");

    let o = login(&lf, &host, PW);
    assert_eq!(o.code, 0, "login: {}", o.stderr);
    assert!(o.stdout.contains("Login Succeeded"), "{}", o.stdout);
    no_secrets(&o, "login");
    let p = lf.docker_config().join("config.json");
    let mode = std::fs::metadata(&p)
        .expect("config.json")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "config.json mode");
    assert_eq!(
        config_json(&lf)["auths"][&host]["auth"],
        b64(&format!("alice:{PW}"))
    );

    let o = lf.run(&["pull", &s.r("team/app:v1")]);
    assert_eq!(o.code, 0, "pull after login: {}", o.stderr);
    no_secrets(&o, "pull");
    check_image(&lf, &s.r("team/app"), Some("v1"), &s.img, &s.digest);
    lf.ok(&["tag", &s.r("team/app:v1"), &s.r("team/pushed:v1")]);
    let o = lf.run(&["push", &s.r("team/pushed:v1")]);
    assert_eq!(o.code, 0, "push after login: {}", o.stderr);
    no_secrets(&o, "push");

    let o = lf.run(&["logout", &host]);
    assert_eq!(o.code, 0, "logout: {}", o.stderr);
    assert!(
        o.stdout
            .contains(&format!("Removing login credentials for {host}")),
        "{}",
        o.stdout
    );
    assert!(
        config_json(&lf)["auths"].get(&host).is_none(),
        "logout removed the entry"
    );
    let lf2 = Lf::new();
    std::fs::copy(&p, lf2.docker_config().join("config.json")).expect("copy config");
    assert_failure(
        &lf2.run(&["pull", &s.r("team/pushed:v1")]),
        "pull after logout",
    );
}

#[test]
fn wrong_password_is_refused_and_not_stored() {
    let s = basic_served("auth-wrong");
    let lf = Lf::new();
    let o = login(&lf, &s.reg.host(), "not-the-password");
    assert_failure(&o, "login with a wrong password");
    assert!(
        o.stderr.contains(&s.reg.host()),
        "names the registry: {}",
        o.stderr
    );
    assert_no_secret(&o, "not-the-password", "failed login");
    let p = lf.docker_config().join("config.json");
    if p.exists() {
        assert!(
            config_json(&lf)["auths"].get(s.reg.host()).is_none(),
            "nothing stored"
        );
    }
    // -p works too (docker warns about it), and keeps what else config.json had.
    let other = serde_json::json!({"auths": {"other.example:5000": {"auth": b64("bob:x")}}, "psFormat": "table"});
    std::fs::write(&p, other.to_string()).expect("write config.json");
    let o = lf.run(&["login", "-u", "alice", "-p", PW, &s.reg.host()]);
    assert_eq!(o.code, 0, "login -p: {}", o.stderr);
    no_secrets(&o, "login -p");
    let v = config_json(&lf);
    assert_eq!(v["psFormat"], "table", "other keys kept: {v}");
    assert_eq!(v["auths"]["other.example:5000"]["auth"], b64("bob:x"));
    assert_eq!(
        v["auths"][s.reg.host()]["auth"],
        b64(&format!("alice:{PW}"))
    );
    let mode = std::fs::metadata(&p)
        .expect("config.json")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn podman_auth_file_and_credential_helpers_are_used() {
    let s = basic_served("auth-podman");
    let host = s.reg.host();
    // podman's ${XDG_RUNTIME_DIR}/containers/auth.json.
    let lf = Lf::new();
    let dir = lf.home.join("run/containers");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let auth = serde_json::json!({"auths": {host.clone(): {"auth": b64(&format!("alice:{PW}"))}}});
    std::fs::write(dir.join("auth.json"), auth.to_string()).expect("auth.json");
    let o = lf.run(&["pull", &s.r("team/app:v1")]);
    assert_eq!(o.code, 0, "pull with podman's auth.json: {}", o.stderr);
    // A credential helper named by credHelpers: `get` answers, `store` is recorded.
    let lf = Lf::new();
    let bin = lf.path("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let log = lf.path("helper.log");
    let script = format!(
        "#!/bin/sh\nread -r input\necho \"$1 $input\" >> '{}'\ncase \"$1\" in\n\
         get) printf '{{\"ServerURL\":\"%s\",\"Username\":\"alice\",\"Secret\":\"{PW}\"}}' \"$input\";;\n\
         *) cat >/dev/null;;\nesac\n",
        log.display()
    );
    let helper = bin.join("docker-credential-layerfstest");
    std::fs::write(&helper, script).expect("helper");
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let cfg = serde_json::json!({"credHelpers": {host.clone(): "layerfstest"}});
    std::fs::write(lf.docker_config().join("config.json"), cfg.to_string()).expect("config");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = super::cli::out(
        lf.cmd(&["pull", &s.r("team/app:v1")])
            .env("PATH", &path)
            .output()
            .expect("run"),
    );
    assert_eq!(
        o.code, 0,
        "pull through the credential helper: {}",
        o.stderr
    );
    no_secrets(&o, "pull with a helper");
    let calls = std::fs::read_to_string(&log).expect("the helper was run");
    assert!(
        calls
            .lines()
            .any(|l| l.starts_with("get ") && l.contains(&host)),
        "{calls}"
    );
}

/// A token-auth registry with a three-layer image pushed by alice to public/ and team/.
fn token_served() -> (Registry, Image) {
    let reg = Registry::token(&[("alice", PW)], token_grants());
    let tmp = tempfile::tempdir().expect("tmp");
    let tars = [
        images::base_layer("tok"),
        images::upper_layer("tok"),
        images::upper_layer("tok2"),
    ];
    let img = Image::new(&tars, Comp::Gzip, images::Platform::host(), "auth-token");
    let dir = images::layout_of(tmp.path(), &img);
    for repo in ["public/app:v1", "team/app:v1"] {
        images::push_dir(&reg, &dir, repo, Format::Oci, false, Some(("alice", PW))).expect("push");
    }
    (reg, img)
}

/// Run with RUST_LOG=trace (no token or password may show up even then).
fn traced(lf: &Lf, args: &[&str]) -> Out {
    super::cli::out(
        lf.cmd(args)
            .env("RUST_LOG", "trace")
            .output()
            .expect("run layerfs"),
    )
}

#[track_caller]
fn no_tokens(o: &Out, ts: &super::token::TokenServer, what: &str) {
    for t in ts.issued() {
        // The signature part is enough to recognise a token.
        let sig = t.rsplit('.').next().expect("jwt");
        assert!(
            !o.stdout.contains(sig) && !o.stderr.contains(sig),
            "{what} printed a token"
        );
    }
    no_secrets(o, what);
}

#[test]
fn token_auth_anonymous_pull_of_a_public_repo_reuses_its_token() {
    let (reg, img) = token_served();
    let ts = reg.token_server().expect("token server");
    let lf = Lf::new();
    let public = format!("{}/public/app:v1", reg.host());
    let n0 = ts.count();
    let o = traced(&lf, &["pull", &public]);
    assert_eq!(
        o.code, 0,
        "anonymous pull of a public repository: {}",
        o.stderr
    );
    no_tokens(&o, ts, "pull with RUST_LOG=trace");
    let used = ts.requests()[n0..].to_vec();
    assert!(used.iter().all(|r| r.user.is_none()), "anonymous: {used:?}");
    assert!(
        !used.is_empty() && used.len() <= 2,
        "one token serves the whole pull of {} blobs, got {} requests: {used:?}",
        img.layers.len() + 1,
        used.len()
    );
    let scope = "repository:public/app:pull";
    assert!(
        used.iter().all(|r| r.scopes.iter().any(|s| s == scope)),
        "{used:?}"
    );
    assert_eq!(fixture::inspect(&lf, &public)["Id"], img.id());
    // Anonymous push to public/ is refused (pull only).
    let pubnew = format!("{}/public/new:v1", reg.host());
    lf.ok(&["tag", &public, &pubnew]);
    let o = lf.run(&["push", &pubnew]);
    assert_failure(&o, "anonymous push");
    assert!(
        o.stderr.contains("public/new") && o.stderr.contains(&reg.host()),
        "{}",
        o.stderr
    );
}

#[test]
fn token_auth_team_repo_needs_login() {
    let (reg, img) = token_served();
    let ts = reg.token_server().expect("token server");
    let lf = Lf::new();
    let team = format!("{}/team/app:v1", reg.host());
    let before = lf.state();
    let o = lf.run(&["pull", &team]);
    assert_failure(&o, "anonymous pull of team/");
    assert!(
        o.stderr.contains("team/app") && o.stderr.contains(&reg.host()),
        "{}",
        o.stderr
    );
    lf.state().assert_unchanged(&before, "refused pull");
    let o = login(&lf, &reg.host(), PW);
    assert_eq!(o.code, 0, "login through the token server: {}", o.stderr);
    no_tokens(&o, ts, "login");
    let alice =
        |r: &super::token::TokenRequest| r.user.as_deref() == Some("alice") && r.status == 200;
    assert!(
        ts.requests().iter().any(alice),
        "login asked for a token as alice"
    );
    let o = traced(&lf, &["pull", &team]);
    assert_eq!(o.code, 0, "pull of team/ after login: {}", o.stderr);
    no_tokens(&o, ts, "pull with RUST_LOG=trace");
    assert_eq!(fixture::inspect(&lf, &team)["Id"], img.id());
    let new = format!("{}/team/new:v1", reg.host());
    lf.ok(&["tag", &team, &new]);
    let n0 = ts.count();
    let o = traced(&lf, &["push", &new]);
    assert_eq!(o.code, 0, "push after login: {}", o.stderr);
    no_tokens(&o, ts, "push with RUST_LOG=trace");
    let push = "repository:team/new:pull,push";
    let got = ts.requests()[n0..].to_vec();
    assert!(
        got.iter()
            .any(|r| alice(r) && r.scopes.iter().any(|s| s == push)),
        "{got:?}"
    );
}

#[test]
fn tls_registry_trusted_through_certs_d() {
    let reg = Registry::tls();
    let tmp = tempfile::tempdir().expect("tmp");
    let img = Image::sample("auth-tls", Comp::Gzip);
    let digest = images::push(&reg, tmp.path(), &img, "team/app:v1", Format::Oci).digest;
    let name = format!("{}/team/app:v1", reg.host());
    // Loopback is insecure by default: HTTPS without verification works.
    let lf = Lf::new();
    fixture::pull(&lf, &name);
    check_image(
        &lf,
        &format!("{}/team/app", reg.host()),
        Some("v1"),
        &img,
        &digest,
    );
    // --tls-verify demands a trusted certificate.
    let lf = Lf::new();
    let before = lf.state();
    let o = lf.run(&["pull", "--tls-verify", &name]);
    assert_failure(&o, "pull --tls-verify without the CA");
    assert!(
        o.stderr.to_lowercase().contains("certificate"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains(&reg.host()), "{}", o.stderr);
    lf.state().assert_unchanged(&before, "TLS failure");
    lf.trust_ca(&reg.host(), reg.ca().expect("ca"));
    let o = lf.run(&["pull", "--tls-verify=true", &name]);
    assert_eq!(
        o.code, 0,
        "pull --tls-verify with the CA in certs.d: {}",
        o.stderr
    );
    check_image(
        &lf,
        &format!("{}/team/app", reg.host()),
        Some("v1"),
        &img,
        &digest,
    );
    let new = format!("{}/team/tls:v1", reg.host());
    lf.ok(&["tag", &name, &new]);
    lf.ok(&["push", "--tls-verify", &new]);
    // `localhost` is the same server under its DNS name (also insecure by default).
    let lf = Lf::new();
    fixture::pull(&lf, &format!("localhost:{}/team/app:v1", reg.port()));
}

/// The unprivileged user: login writes its own config.json (0600, owned by it), pull works,
/// and a refused pull leaves its store as it was.
#[test]
fn unprivileged_login_and_pull() {
    if !crate::common::is_root() {
        eprintln!("skipped: needs root to switch to the test user");
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let s = basic_served("auth-user");
    let lf = Lf::unprivileged();
    let before = lf.state();
    let o = lf.run(&["pull", &s.r("team/app:v1")]);
    assert_failure(&o, "pull before login as the test user");
    lf.state()
        .assert_unchanged(&before, "refused pull as the test user");
    let o = login(&lf, &s.reg.host(), PW);
    assert_eq!(o.code, 0, "login as the test user: {}", o.stderr);
    no_secrets(&o, "login as the test user");
    let md = std::fs::metadata(lf.docker_config().join("config.json")).expect("config.json");
    assert_eq!(md.permissions().mode() & 0o777, 0o600);
    assert_eq!(md.uid(), crate::common::test_user().0, "owned by the user");
    let o = lf.run(&["pull", &s.r("team/app:v1")]);
    if o.code != 0 && o.stderr.contains("Operation not supported") {
        eprintln!("skipped: no user xattrs on this filesystem: {}", o.stderr);
        return;
    }
    assert_eq!(o.code, 0, "pull as the test user: {}", o.stderr);
    check_image(&lf, &s.r("team/app"), Some("v1"), &s.img, &s.digest);
    lf.st.assert_clean();
}
