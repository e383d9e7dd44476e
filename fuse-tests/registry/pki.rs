//! Keys and certificates made with the `openssl` CLI for one test: a CA and a server
//! certificate it signs (SANs IP:127.0.0.1 and DNS:localhost) for the TLS registry, a
//! self-signed signing certificate for the token server, and RS256 signatures with it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn openssl(args: &[&str], dir: &Path) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (fuse-tests/run.sh installs it)");
    assert!(
        o.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct CertKey {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A self-signed certificate (`CA:TRUE`), made in `dir` as `NAME.crt` and `NAME.key`.
pub fn self_signed(dir: &Path, name: &str, cn: &str) -> CertKey {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "2",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        ],
        dir,
    );
    CertKey {
        cert: dir.join(crt),
        key: dir.join(key),
    }
}

/// A test CA and a server certificate for 127.0.0.1 and localhost signed by it.
pub struct Tls {
    pub ca: CertKey,
    pub server: CertKey,
}

impl Tls {
    pub fn new(dir: &Path) -> Tls {
        let ca = self_signed(dir, "ca", "layerfs test CA");
        openssl(
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
            dir,
        );
        std::fs::write(
            dir.join("server.ext"),
            "basicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("write server.ext");
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-sha256",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
            dir,
        );
        Tls {
            ca,
            server: CertKey {
                cert: dir.join("server.crt"),
                key: dir.join("server.key"),
            },
        }
    }
}

/// The certificate's DER, base64 (standard alphabet, padded) as a JWT `x5c` entry wants it.
pub fn der_base64(cert: &Path) -> String {
    use base64::Engine;
    let o = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(cert)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl x509");
    assert!(o.status.success(), "openssl x509 -outform DER failed");
    base64::engine::general_purpose::STANDARD.encode(&o.stdout)
}

/// An RS256 signature (PKCS#1 v1.5 over SHA-256) of `data` with the PEM key `key`.
pub fn sign_rs256(key: &Path, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut c = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    c.stdin.take().expect("stdin").write_all(data)?;
    let o = c.wait_with_output()?;
    if !o.status.success() {
        return Err(std::io::Error::other(format!(
            "openssl dgst -sign: {}",
            String::from_utf8_lossy(&o.stderr)
        )));
    }
    Ok(o.stdout)
}
