//! Tests of the layerfs config: parsing daemon.json keys from files in a temp dir, the
//! insecure-registry matching, and where `load` looks.

use super::*;

fn parse(v: serde_json::Value) -> Result<Config> {
    Config::from_json(&v.to_string(), Path::new("test-config.json"))
}

fn err(v: serde_json::Value) -> String {
    parse(v.clone()).expect_err(&v.to_string()).to_string()
}

#[test]
fn defaults_trust_only_loopback_and_localhost() {
    let c = Config::default();
    assert!(c.mirrors().is_empty());
    assert!(c.source().is_none());
    for h in [
        "127.0.0.1:5000",
        "127.0.0.1",
        "127.1.2.3:443",
        "[::1]:5000",
        "[::1]",
        "::1",
        "localhost",
        "localhost:5000",
        "LocalHost:1",
        "[::ffff:127.0.0.1]:5000",
    ] {
        assert!(c.is_insecure(h), "{h}");
    }
    for h in [
        "10.0.0.1:5000",
        "example.com",
        "[::2]:5000",
        "localhost.example",
        "128.0.0.1",
        "docker.io",
        "",
        "[::1",
        "localhost:notaport",
    ] {
        assert!(!c.is_insecure(h), "{h}");
    }
}

#[test]
fn mirrors_are_normalised_in_order() {
    let c = parse(serde_json::json!({"registry-mirrors": [
        "https://mirror.example/",
        "http://10.0.0.1:5000",
        "HTTPS://Mirror.Example/path//",
        "https://mirror.example",
        "https://[fd00::1]:8443",
    ]}))
    .expect("parse");
    assert_eq!(
        c.mirrors(),
        [
            "https://mirror.example",
            "http://10.0.0.1:5000",
            "https://mirror.example/path",
            "https://[fd00::1]:8443",
        ]
    );
    assert_eq!(c.source(), Some(Path::new("test-config.json")));
}

#[test]
fn bad_mirrors_are_errors_naming_file_and_entry() {
    for (m, why) in [
        ("ftp://mirror.example", "not http or https"),
        ("mirror.example", "not a URL"),
        ("https://", "no valid host"),
        ("https://h:99999", "no valid host"),
        ("https://bad host", "spaces"),
        ("https://m.example/?x=1", "query"),
    ] {
        let e = err(serde_json::json!({"registry-mirrors": ["https://ok.example", m]}));
        assert!(e.contains("test-config.json"), "{e}");
        assert!(e.contains("registry-mirrors[1]"), "{e}");
        assert!(e.contains(why), "{m}: {e}");
    }
    let e = err(serde_json::json!({"registry-mirrors": ["https://user:hunter2@m.example"]}));
    assert!(e.contains("credentials"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    let e = err(serde_json::json!({"registry-mirrors": "https://m.example"}));
    assert!(e.contains("registry-mirrors: not a list"), "{e}");
    let e = err(serde_json::json!({"registry-mirrors": [5]}));
    assert!(e.contains("registry-mirrors: not a list"), "{e}");
}

#[test]
fn insecure_entries_by_name_port_and_cidr() {
    let c = parse(serde_json::json!({"insecure-registries": [
        "reg.example",
        "Other.Example:5000",
        "10.0.0.0/8",
        "fd00::/8",
        "[2001:db8::1]:443",
        "192.0.2.7",
        "http://stripped.example",
        "::ffff:198.51.100.0/120",
    ]}))
    .expect("parse");
    let yes = [
        "reg.example",
        "reg.example:5000",
        "REG.example:443",
        "other.example:5000",
        "10.1.2.3:5000",
        "10.255.255.255",
        "[fd12::3]:5000",
        "fd12::3",
        "[2001:db8::1]:443",
        "[2001:db8:0::1]:443",
        "192.0.2.7:5000",
        "stripped.example",
        "198.51.100.9:1",
        "[::ffff:10.0.0.1]:5000",
    ];
    for h in yes {
        assert!(c.is_insecure(h), "{h}");
    }
    let no = [
        "other.example",
        "other.example:5001",
        "11.0.0.1",
        "[fe80::1]:5000",
        "[2001:db8::1]:444",
        "sub.reg.example",
        "reg.example.com",
        "ten.example",
        "198.51.101.9",
    ];
    for h in no {
        assert!(!c.is_insecure(h), "{h}");
    }
}

#[test]
fn bad_insecure_entries_are_errors_naming_the_entry() {
    for (s, why) in [
        ("10.0.0.0/33", "at most 32"),
        ("::/129", "at most 128"),
        ("10.0.0/8", "not a CIDR"),
        ("10.0.0.0/x", "prefix"),
        ("bad host", "not host"),
        ("h:notaport", "not host"),
        ("ftp://h", "no scheme"),
        ("", "not host"),
    ] {
        let e = err(serde_json::json!({"insecure-registries": ["fine.example", s]}));
        assert!(e.contains("test-config.json"), "{e}");
        assert!(e.contains(&format!("insecure-registries[1] {s:?}")), "{e}");
        assert!(e.contains(why), "{s}: {e}");
    }
}

#[test]
fn unknown_keys_are_ignored_and_bad_json_named() {
    let c = parse(serde_json::json!({
        "debug": true,
        "storage-driver": "overlay2",
        "log-opts": {"max-size": "10m"},
        "registry-mirrors": null,
    }))
    .expect("parse");
    assert!(c.mirrors().is_empty());
    let e = Config::from_json("{\"registry-mirrors\": [", Path::new("x/daemon.json"))
        .expect_err("bad json")
        .to_string();
    assert!(e.contains("x/daemon.json: not valid JSON"), "{e}");
    let e = err(serde_json::json!(["registry-mirrors"]));
    assert!(e.contains("not a JSON object"), "{e}");
}

#[test]
fn files_missing_present_and_unreadable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("none.json");
    let c = Config::from_file(&missing).expect("missing is the defaults");
    assert!(c.source().is_none());
    let p = dir.path().join("config.json");
    std::fs::write(&p, r#"{"insecure-registries": ["reg.example:5000"]}"#).expect("write");
    let c = Config::from_file(&p).expect("read");
    assert!(c.is_insecure("reg.example:5000"));
    assert_eq!(c.source(), Some(p.as_path()));
    std::fs::write(&p, r#"{"insecure-registries": ["10.0.0.0/99"]}"#).expect("write");
    let e = Config::from_file(&p).expect_err("bad entry").to_string();
    assert!(e.contains(&p.display().to_string()), "{e}");
    let d = dir.path().join("a-dir.json");
    std::fs::create_dir(&d).expect("mkdir");
    let e = Config::from_file(&d).expect_err("a dir").to_string();
    assert!(e.contains(&d.display().to_string()), "{e}");
}

#[test]
fn load_looks_in_the_documented_places() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let env = |pairs: Vec<(&'static str, PathBuf)>| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        }
    };
    let all = env(vec![
        ("LAYERFS_CONFIG", d.join("explicit.json")),
        ("XDG_CONFIG_HOME", d.join("xdg")),
        ("HOME", d.join("home")),
    ]);
    assert_eq!(candidates(&all, true), [d.join("explicit.json")]);
    let xdg = env(vec![
        ("XDG_CONFIG_HOME", d.join("xdg")),
        ("HOME", d.join("home")),
    ]);
    assert_eq!(candidates(&xdg, false), [d.join("xdg/layerfs/config.json")]);
    let home = env(vec![("HOME", d.join("home"))]);
    assert_eq!(
        candidates(&home, false),
        [d.join("home/.config/layerfs/config.json")]
    );
    let as_root = candidates(&home, true);
    assert_eq!(as_root.len(), 2);
    assert!(as_root[1].ends_with("layerfs/config.json") && as_root[1].is_absolute());
    assert!(candidates(&env(vec![]), false).is_empty());
}
