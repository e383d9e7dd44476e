//! Tests of certs.d reading with a CA and a client certificate made by the `openssl` CLI in a
//! temp dir.

use super::*;
use std::fs;
use std::process::Command;

/// Run `openssl ARGS` in `dir`; panics with its stderr when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (the tests need the openssl CLI)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed CA `NAME.pem` + `NAME.key` (P-256) in `dir`; returns its DER.
fn make_ca(dir: &Path, name: &str) -> Vec<u8> {
    let (pem, key) = (format!("{name}.pem"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-subj",
            &format!("/CN={name}"),
            "-days",
            "2",
        ],
    );
    der_of(dir, &pem)
}

/// A client certificate `client.pem` + `client-key.pem` signed by CA `ca`; returns its DER.
fn make_client(dir: &Path, ca: &str) -> Vec<u8> {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "client-key.pem",
            "-out",
            "client.csr",
            "-subj",
            "/CN=client",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-set_serial",
            "7",
            "-out",
            "client.pem",
            "-days",
            "2",
        ],
    );
    der_of(dir, "client.pem")
}

fn der_of(dir: &Path, pem: &str) -> Vec<u8> {
    let der = format!("{pem}.der");
    openssl(dir, &["x509", "-in", pem, "-outform", "der", "-out", &der]);
    fs::read(dir.join(der)).expect("der")
}

fn copy(from: &Path, to: &Path) {
    fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
    fs::copy(from, to).unwrap_or_else(|e| panic!("copy to {}: {e}", to.display()));
}

#[test]
fn cas_and_client_pair_from_every_dir() {
    let t = tempfile::tempdir().expect("tempdir");
    let w = t.path().join("work");
    fs::create_dir(&w).expect("mkdir");
    let ca1 = make_ca(&w, "ca1");
    let ca2 = make_ca(&w, "ca2");
    let client = make_client(&w, "ca1");
    let (d1, d2) = (t.path().join("d1"), t.path().join("d2"));
    let h1 = d1.join("reg.example:5000");
    let h2 = d2.join("reg.example:5000");
    copy(&w.join("ca1.pem"), &h1.join("ca.crt"));
    copy(&w.join("client.pem"), &h1.join("client.cert"));
    copy(&w.join("client-key.pem"), &h1.join("client.key"));
    fs::write(h1.join("README"), "not a cert").expect("write");
    fs::create_dir(h1.join("sub.crt")).expect("a dir is skipped");
    let bundle = [
        fs::read(w.join("ca1.pem")).expect("ca1"),
        b"some text between\n".to_vec(),
        fs::read(w.join("ca2.pem")).expect("ca2"),
    ]
    .concat();
    fs::create_dir_all(&h2).expect("mkdir");
    fs::write(h2.join("bundle.crt"), bundle).expect("write");
    copy(&w.join("ca2.pem"), &d2.join("other.example/ca.crt"));

    let dirs = [d1.clone(), t.path().join("absent"), d2.clone()];
    let m = material_in(&dirs, "reg.example:5000").expect("material");
    let ders: Vec<&[u8]> = m.cas.iter().map(|c| c.der()).collect();
    assert_eq!(ders, [&ca1[..], &ca1[..], &ca2[..]]);
    let c = m.client.as_ref().expect("client cert");
    assert_eq!(c.certs().len(), 1);
    assert_eq!(c.certs()[0].der(), &client[..]);
    assert_eq!(
        m.files,
        [
            h1.join("ca.crt"),
            h1.join("client.cert"),
            h1.join("client.key"),
            h2.join("bundle.crt")
        ]
    );
    let other = material_in(&dirs, "other.example").expect("other");
    assert_eq!(other.cas.len(), 1);
    assert!(other.client.is_none());
    let none = material_in(&dirs, "reg.example").expect("no port: another dir");
    assert!(none.cas.is_empty() && none.client.is_none() && none.files.is_empty());
}

#[test]
fn bad_files_are_errors_naming_them() {
    let t = tempfile::tempdir().expect("tempdir");
    let w = t.path().join("work");
    fs::create_dir(&w).expect("mkdir");
    make_ca(&w, "ca");
    let ca_pem = fs::read_to_string(w.join("ca.pem")).expect("pem");
    let garbled = ca_pem.replacen("MII", "M!I", 1);
    let not_der = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    let cases: [(&str, &[(&str, &str)]); 6] = [
        ("ca.crt", &[("ca.crt", "just some text\n")]),
        ("ca.crt", &[("ca.crt", &garbled)]),
        ("ca.crt", &[("ca.crt", not_der)]),
        ("client.cert", &[("client.cert", &ca_pem)]),
        (
            "client.key",
            &[("client.key", "-----BEGIN PRIVATE KEY-----\n")],
        ),
        (
            "client.key",
            &[("client.cert", &ca_pem), ("client.key", "no key\n")],
        ),
    ];
    for (i, (named, files)) in cases.iter().enumerate() {
        let base = t.path().join(format!("case{i}"));
        let dir = base.join("h:1");
        fs::create_dir_all(&dir).expect("mkdir");
        for (n, text) in *files {
            fs::write(dir.join(n), text).expect("write");
        }
        let e = material_in(&[base], "h:1").expect_err(named).to_string();
        assert!(
            e.contains(&dir.join(named).display().to_string()),
            "case {i}: {e}"
        );
    }
}

#[test]
fn hosts_that_are_not_one_dir_name_are_refused() {
    for h in ["", ".", "..", "a/b", "../etc", "-x"] {
        let e = material_in(&[PathBuf::from("certs.d")], h).expect_err(h);
        assert!(e.to_string().contains("not a registry host"), "{e}");
    }
}

#[test]
fn cert_dirs_order() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = t.path();
    let joined = std::env::join_paths([d.join("a"), d.join("b")]).expect("join");
    let env = |k: &str| match k {
        "LAYERFS_CERTS_D" => Some(joined.clone()),
        "XDG_CONFIG_HOME" => Some(d.join("xdg").into_os_string()),
        "HOME" => Some(d.join("home").into_os_string()),
        _ => None,
    };
    let dirs = cert_dirs_from(&env);
    assert_eq!(dirs[..2], [d.join("a"), d.join("b")]);
    assert!(dirs[2].ends_with("docker/certs.d") && dirs[2].is_absolute());
    assert!(dirs[3].ends_with("containers/certs.d") && dirs[3].is_absolute());
    assert_eq!(dirs[4], d.join("xdg/containers/certs.d"));
    assert_eq!(dirs.len(), 5);
    let home = |k: &str| (k == "HOME").then(|| d.join("home").into_os_string());
    let dirs = cert_dirs_from(&home);
    assert_eq!(dirs.len(), 3);
    assert_eq!(dirs[2], d.join("home/.config/containers/certs.d"));
}

#[test]
fn der_check_and_system_roots() {
    assert!(der_is_sequence(&[0x30, 0x00]));
    assert!(der_is_sequence(&[0x30, 0x02, 1, 2]));
    assert!(!der_is_sequence(&[0x30, 0x03, 1, 2]));
    assert!(!der_is_sequence(b"hello world"));
    let mut long = vec![0x30, 0x82, 0x01, 0x00];
    long.extend(std::iter::repeat_n(0u8, 256));
    assert!(der_is_sequence(&long));
    long.push(0);
    assert!(!der_is_sequence(&long));
    for c in system_roots() {
        assert!(der_is_sequence(c.der()), "a system root that is not DER");
    }
}
