//! Tests of credential lookup, login's write and logout against files in temp dirs, and of
//! the helper protocol against a real (tiny, shell) credential helper.

use super::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A temp dir with docker's file at `docker/config.json`, podman's at `podman/auth.json` and
/// helpers in `bin/`.
struct T {
    dir: tempfile::TempDir,
}

impl T {
    fn new() -> T {
        T {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn docker(&self) -> PathBuf {
        self.path("docker/config.json")
    }
    fn write(&self, p: &str, text: &str) -> PathBuf {
        let p = self.path(p);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, text).expect("write");
        p
    }
    fn write_docker(&self, v: serde_json::Value) {
        self.write("docker/config.json", &v.to_string());
    }
    fn creds(&self) -> Credentials {
        Credentials::with_files(self.docker(), vec![self.path("podman/auth.json")])
            .with_helper_dirs(vec![self.path("bin")])
    }
    fn doc(&self) -> serde_json::Value {
        serde_json::from_slice(&fs::read(self.docker()).expect("read")).expect("json")
    }
    /// Install `docker-credential-NAME` as a shell script.
    fn helper(&self, name: &str, body: &str) {
        let p = self.write(
            &format!("bin/docker-credential-{name}"),
            &format!("#!/bin/sh\n{body}"),
        );
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    /// A helper keeping one file per server in `bin/store/`, logging each call.
    fn fake_helper(&self) {
        self.helper(
            "fake",
            r#"here=$(dirname "$0")
input=$(cat)
printf '%s %s\n' "$1" "$input" >> "$here/calls.log"
case "$1" in
get|erase) server=$input ;;
store) server=$(printf '%s' "$input" | sed -n 's/.*"ServerURL":"\([^"]*\)".*/\1/p') ;;
*) echo "unknown verb $1" >&2; exit 2 ;;
esac
f="$here/store/$(printf '%s' "$server" | tr '/:' '__')"
case "$1" in
get) if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
store) mkdir -p "$here/store" && printf '%s' "$input" > "$f" ;;
erase) if [ -f "$f" ]; then rm "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
esac
"#,
        );
    }
    fn calls(&self) -> String {
        fs::read_to_string(self.path("bin/calls.log")).unwrap_or_default()
    }
}

fn cred(u: &str, p: &str) -> Option<Credential> {
    Some(Credential::new(u, p))
}

#[test]
fn debug_never_shows_secrets() {
    let mut c = Credential::new("alice", "hunter2-password");
    c.identity_token = Some("refresh-token-xyz".into());
    let d = format!("{c:?}");
    assert!(d.contains("alice"), "{d}");
    assert!(!d.contains("hunter2"), "{d}");
    assert!(!d.contains("refresh-token"), "{d}");
    assert!(d.contains("<redacted>"), "{d}");
}

#[test]
fn auths_match_every_spelling_of_a_host() {
    let t = T::new();
    t.write_docker(serde_json::json!({"auths": {
        "127.0.0.1:5000": {"auth": b64("a:1")},
        "127.0.0.1:5001": {"auth": b64("e:5")},
        "https://secure.example/v1/": {"auth": b64("b:2")},
        "http://plain.example": {"auth": b64("c:3")},
        "https://index.docker.io/v1/": {"auth": b64("d:4")},
    }}));
    let c = t.creds();
    let get = |r: &str| c.get(r).expect(r);
    assert_eq!(get("127.0.0.1:5000"), cred("a", "1"));
    assert_eq!(get("127.0.0.1:5001"), cred("e", "5"));
    assert_eq!(get("127.0.0.1"), None, "the port is part of the name");
    assert_eq!(get("secure.example"), cred("b", "2"));
    assert_eq!(get("https://secure.example"), cred("b", "2"));
    assert_eq!(get("Secure.Example"), cred("b", "2"));
    assert_eq!(get("secure.example:5000"), None);
    assert_eq!(get("plain.example"), cred("c", "3"));
    for hub in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
        assert_eq!(get(hub), cred("d", "4"), "{hub}");
    }
    assert_eq!(get("other.example"), None);
}

#[test]
fn docker_hub_aliases_and_the_preferred_key() {
    for alias in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
        let t = T::new();
        t.write_docker(serde_json::json!({"auths": {alias: {"auth": b64("u:p")}}}));
        assert_eq!(t.creds().get("docker.io").expect("get"), cred("u", "p"));
    }
    let t = T::new();
    t.write_docker(serde_json::json!({"auths": {
        "docker.io": {"auth": b64("old:x")},
        "https://index.docker.io/v1/": {"auth": b64("new:y")},
        "https://h:5000": {"auth": b64("scheme:z")},
        "h:5000": {"auth": b64("plain:w")},
    }}));
    assert_eq!(t.creds().get("docker.io").expect("get"), cred("new", "y"));
    assert_eq!(t.creds().get("h:5000").expect("get"), cred("plain", "w"));
}

#[test]
fn entry_fields_username_password_and_identity_token() {
    let t = T::new();
    t.write_docker(serde_json::json!({"auths": {
        "a.example": {"auth": b64("user:pa:ss")},
        "b.example": {"username": "bob", "password": "pw"},
        "c.example": {"identitytoken": "refresh"},
        "d.example": {},
        "e.example": {"auth": "", "email": "x@y"},
    }}));
    let c = t.creds();
    assert_eq!(c.get("a.example").expect("a"), cred("user", "pa:ss"));
    assert_eq!(c.get("b.example").expect("b"), cred("bob", "pw"));
    let tok = c.get("c.example").expect("c").expect("some");
    assert_eq!(tok.identity_token.as_deref(), Some("refresh"));
    assert!(tok.username.is_empty() && tok.password.is_empty());
    assert_eq!(c.get("d.example").expect("d"), None, "an empty entry");
    assert_eq!(c.get("e.example").expect("e"), None);
}

#[test]
fn docker_file_first_then_podman() {
    let t = T::new();
    t.write_docker(serde_json::json!({"auths": {
        "a.example": {"auth": b64("docker:1")},
        "c.example": {},
    }}));
    t.write(
        "podman/auth.json",
        &serde_json::json!({"auths": {
            "a.example": {"auth": b64("podman:1")},
            "b.example": {"auth": b64("podman:2")},
            "c.example": {"auth": b64("podman:3")},
        }})
        .to_string(),
    );
    let c = t.creds();
    assert_eq!(c.get("a.example").expect("a"), cred("docker", "1"));
    assert_eq!(c.get("b.example").expect("b"), cred("podman", "2"));
    assert_eq!(c.get("c.example").expect("c"), cred("podman", "3"));
    fs::remove_file(t.docker()).expect("rm");
    assert_eq!(c.get("a.example").expect("a"), cred("podman", "1"));
}

#[test]
fn missing_or_empty_files_have_nothing() {
    let t = T::new();
    assert_eq!(t.creds().get("docker.io").expect("none"), None);
    t.write("docker/config.json", "\n");
    assert_eq!(t.creds().get("docker.io").expect("empty"), None);
}

#[test]
fn bad_files_are_errors_naming_the_path_not_the_content() {
    let t = T::new();
    let secret = "s3cr3t-value";
    let cases = [
        format!("{{\"auths\": {{\"h\": {{\"auth\": \"{secret}\"}}"),
        "[1, 2]".to_string(),
        "{\"auths\": [1]}".to_string(),
        format!("{{\"auths\": {{\"h\": {{\"auth\": \"{secret}!!\"}}}}}}"),
        format!(
            "{{\"auths\": {{\"h\": {{\"auth\": \"{}\"}}}}}}",
            b64("nocolon")
        ),
        "{\"auths\": {\"h\": {\"username\": 5}}}".to_string(),
        "{\"credsStore\": 5}".to_string(),
    ];
    for text in &cases {
        t.write("docker/config.json", text);
        let e = t.creds().get("h").expect_err(text).to_string();
        assert!(e.contains(&t.docker().display().to_string()), "{e}");
        assert!(!e.contains(secret), "{e}");
    }
    // Unreadable: a directory where the file should be.
    fs::remove_file(t.docker()).expect("rm");
    fs::create_dir_all(t.docker()).expect("mkdir");
    let e = t.creds().get("h").expect_err("a dir").to_string();
    assert!(e.contains(&t.docker().display().to_string()), "{e}");
}

#[test]
fn store_makes_a_private_file_and_dir() {
    let t = T::new();
    let file = t.path("new/deeper/config.json");
    let c = Credentials::with_files(file.clone(), vec![]);
    let where_ = c
        .store("127.0.0.1:5000", &Credential::new("u", "p"))
        .expect("store");
    assert_eq!(where_, file.display().to_string());
    let md = |p: &Path| fs::metadata(p).expect("stat").mode() & 0o777;
    assert_eq!(md(&file), 0o600);
    assert_eq!(md(&t.path("new/deeper")), 0o700);
    assert_eq!(md(&t.path("new")), 0o700);
    let doc: serde_json::Value =
        serde_json::from_slice(&fs::read(&file).expect("read")).expect("json");
    assert_eq!(doc["auths"]["127.0.0.1:5000"]["auth"], b64("u:p"));
    assert_eq!(c.get("127.0.0.1:5000").expect("get"), cred("u", "p"));
    let names: Vec<_> = fs::read_dir(t.path("new/deeper"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["config.json"], "no temp file left");
}

#[test]
fn store_keeps_every_other_key() {
    let t = T::new();
    t.write_docker(serde_json::json!({
        "psFormat": "table {{.ID}}",
        "HttpHeaders": {"X-Meta": "y"},
        "auths": {
            "other:1": {"auth": b64("o:1")},
            "127.0.0.1:5000": {"auth": b64("old:old"), "email": "e@x", "identitytoken": "stale"},
        },
    }));
    fs::set_permissions(t.docker(), fs::Permissions::from_mode(0o644)).expect("chmod");
    t.creds()
        .store("127.0.0.1:5000", &Credential::new("new", "pw"))
        .expect("store");
    let d = t.doc();
    assert_eq!(d["psFormat"], "table {{.ID}}");
    assert_eq!(d["HttpHeaders"]["X-Meta"], "y");
    assert_eq!(d["auths"]["other:1"]["auth"], b64("o:1"));
    let e = &d["auths"]["127.0.0.1:5000"];
    assert_eq!(e["auth"], b64("new:pw"));
    assert_eq!(e["email"], "e@x");
    assert!(e.get("identitytoken").is_none(), "{e}");
    assert_eq!(
        fs::metadata(t.docker()).expect("stat").mode() & 0o777,
        0o600
    );
}

#[test]
fn store_docker_hub_under_its_key_and_identity_tokens() {
    let t = T::new();
    let c = t.creds();
    c.store("docker.io", &Credential::new("u", "p"))
        .expect("store");
    assert_eq!(t.doc()["auths"][DOCKER_IO_KEY]["auth"], b64("u:p"));
    assert_eq!(c.get("index.docker.io").expect("get"), cred("u", "p"));
    let tok = Credential {
        identity_token: Some("rt".into()),
        ..Credential::default()
    };
    c.store("registry-1.docker.io", &tok).expect("store token");
    let e = &t.doc()["auths"][DOCKER_IO_KEY];
    assert_eq!(e["identitytoken"], "rt");
    assert!(e.get("auth").is_none(), "{e}");
    assert_eq!(c.get("docker.io").expect("get"), Some(tok));
    assert_eq!(server_key("index.docker.io"), DOCKER_IO_KEY);
    assert_eq!(
        server_key("https://Reg.Example:5000/v2/"),
        "reg.example:5000"
    );
}

#[test]
fn store_refuses_to_replace_a_bad_file() {
    let t = T::new();
    let p = t.write("docker/config.json", "{not json");
    let e = t
        .creds()
        .store("h", &Credential::new("u", "p"))
        .expect_err("bad file");
    assert!(e.to_string().contains(&p.display().to_string()), "{e}");
    assert_eq!(fs::read_to_string(&p).expect("read"), "{not json");
}

#[test]
fn store_writes_a_symlinked_config_in_place() {
    let t = T::new();
    t.write("real/config.json", r#"{"psFormat": "x"}"#);
    fs::create_dir_all(t.path("docker")).expect("mkdir");
    std::os::unix::fs::symlink("../real/config.json", t.docker()).expect("symlink");
    t.creds()
        .store("h:1", &Credential::new("u", "p"))
        .expect("store");
    assert!(
        fs::symlink_metadata(t.docker())
            .expect("lstat")
            .file_type()
            .is_symlink()
    );
    let real: serde_json::Value =
        serde_json::from_slice(&fs::read(t.path("real/config.json")).expect("read")).expect("json");
    assert_eq!(real["psFormat"], "x");
    assert_eq!(real["auths"]["h:1"]["auth"], b64("u:p"));
}

#[test]
fn erase_removes_every_spelling_and_nothing_else() {
    let t = T::new();
    t.write_docker(serde_json::json!({
        "psFormat": "x",
        "auths": {
            "h:1": {"auth": b64("a:1")},
            "https://h:1": {"auth": b64("b:2")},
            "http://h:1/v2/": {"auth": b64("c:3")},
            "g": {"auth": b64("g:4")},
        },
    }));
    let c = t.creds();
    assert!(c.erase("h:1").expect("erase"));
    let d = t.doc();
    assert_eq!(d["psFormat"], "x");
    let keys: Vec<_> = d["auths"].as_object().expect("auths").keys().collect();
    assert_eq!(keys, ["g"]);
    assert_eq!(c.get("h:1").expect("get"), None);
    let ino = fs::metadata(t.docker()).expect("stat").ino();
    assert!(!c.erase("h:1").expect("again"), "nothing left to remove");
    assert_eq!(
        fs::metadata(t.docker()).expect("stat").ino(),
        ino,
        "not rewritten"
    );
    let none = Credentials::with_files(t.path("absent/config.json"), vec![]);
    assert!(!none.erase("h:1").expect("no file"));
    assert!(!t.path("absent").exists());
}

#[test]
fn creds_store_helper_get_store_erase() {
    let t = T::new();
    t.fake_helper();
    t.write_docker(serde_json::json!({"credsStore": "fake", "auths": {DOCKER_IO_KEY: {}}}));
    let before = fs::read(t.docker()).expect("read");
    let c = t.creds();
    assert_eq!(c.get("docker.io").expect("get"), None, "not found -> None");
    let to = c
        .store("docker.io", &Credential::new("u", "p"))
        .expect("store");
    assert_eq!(to, "docker-credential-fake");
    assert_eq!(
        fs::read(t.docker()).expect("read"),
        before,
        "config.json untouched"
    );
    assert_eq!(c.get("index.docker.io").expect("get"), cred("u", "p"));
    let calls = t.calls();
    assert!(
        calls.contains("get https://index.docker.io/v1/\n"),
        "{calls}"
    );
    assert!(
        calls.contains(r#""ServerURL":"https://index.docker.io/v1/""#),
        "{calls}"
    );
    assert!(c.erase("docker.io").expect("erase"));
    assert_eq!(c.get("docker.io").expect("get"), None);
    assert!(t.calls().contains("erase https://index.docker.io/v1/\n"));
    assert!(!c.erase("docker.io").expect("erase again"));
}

#[test]
fn cred_helpers_per_host_before_creds_store() {
    let t = T::new();
    t.fake_helper();
    t.write_docker(serde_json::json!({
        "credsStore": "absent",
        "credHelpers": {"127.0.0.1:5000": "fake"},
        "auths": {"127.0.0.1:5000": {"auth": b64("file:ignored")}},
    }));
    let c = t.creds();
    assert_eq!(
        c.get("127.0.0.1:5000").expect("get"),
        None,
        "the helper alone"
    );
    c.store("127.0.0.1:5000", &Credential::new("h", "s"))
        .expect("store");
    assert_eq!(c.get("127.0.0.1:5000").expect("get"), cred("h", "s"));
    assert!(t.calls().contains("get 127.0.0.1:5000\n"));
    let e = c.get("other:1").expect_err("missing helper").to_string();
    assert!(e.contains("docker-credential-absent"), "{e}");
    assert!(e.contains("credsStore"), "{e}");
    assert!(e.contains(&t.docker().display().to_string()), "{e}");
}

#[test]
fn helper_identity_tokens() {
    let t = T::new();
    t.fake_helper();
    t.write_docker(serde_json::json!({"credHelpers": {"r.example": "fake"}}));
    let c = t.creds();
    let tok = Credential {
        identity_token: Some("refresh".into()),
        ..Credential::default()
    };
    c.store("r.example", &tok).expect("store");
    assert!(t.calls().contains(r#""Username":"<token>""#));
    assert_eq!(c.get("r.example").expect("get"), Some(tok));
}

#[test]
fn failing_helpers_are_errors_without_secrets() {
    let t = T::new();
    t.helper(
        "broken",
        "cat >/dev/null; echo \"boom: keychain locked\" >&2; exit 3\n",
    );
    t.helper(
        "garbage",
        "cat >/dev/null; echo '{\"Username\":\"u\",\"Secret\":\"leaked-secret\"'\n",
    );
    t.helper("echoer", "cat; exit 1\n");
    t.write_docker(serde_json::json!({"credHelpers": {
        "b.example": "broken", "g.example": "garbage", "e.example": "echoer",
        "bad.example": "../x",
    }}));
    let c = t.creds();
    let e = c.get("b.example").expect_err("broken").to_string();
    assert!(e.contains("docker-credential-broken get b.example"), "{e}");
    assert!(e.contains("keychain locked"), "{e}");
    let e = c.get("g.example").expect_err("garbage").to_string();
    assert!(e.contains("docker-credential-garbage"), "{e}");
    assert!(!e.contains("leaked-secret"), "{e}");
    let e = c
        .store("e.example", &Credential::new("u", "echoed-secret"))
        .expect_err("echoer")
        .to_string();
    assert!(e.contains("docker-credential-echoer store"), "{e}");
    assert!(!e.contains("echoed-secret"), "{e}");
    let e = c.get("bad.example").expect_err("bad name").to_string();
    assert!(e.contains("not a credential helper name"), "{e}");
}

#[test]
fn discover_reads_the_environment() {
    let t = T::new();
    let dir = t.dir.path().to_path_buf();
    let env = |pairs: Vec<(&'static str, PathBuf)>| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        }
    };
    let c = Credentials::discover_from(
        &env(vec![
            ("DOCKER_CONFIG", dir.join("dc")),
            ("HOME", dir.join("home")),
            ("REGISTRY_AUTH_FILE", dir.join("auth.json")),
            ("XDG_RUNTIME_DIR", dir.join("run")),
        ]),
        1000,
    );
    assert_eq!(c.docker_config, dir.join("dc/config.json"));
    assert_eq!(c.extra, [dir.join("auth.json")]);
    assert!(c.helper_dirs.is_none());
    let c = Credentials::discover_from(
        &env(vec![
            ("HOME", dir.join("home")),
            ("XDG_RUNTIME_DIR", dir.join("run")),
        ]),
        1000,
    );
    assert_eq!(c.docker_config, dir.join("home/.docker/config.json"));
    assert_eq!(c.extra, [dir.join("run/containers/auth.json")]);
    let c = Credentials::discover_from(&env(vec![("HOME", dir.join("home"))]), 1234);
    assert!(c.extra[0].ends_with("containers/1234/auth.json"), "{c:?}");
}
