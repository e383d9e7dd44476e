//! TLS material for one registry, laid out as docker and podman do: `certs.d/HOST[:PORT]/`
//! holds extra CAs (`*.crt`) and client certificates (`NAME.cert` + `NAME.key`); plus the
//! system's root certificates.

use super::error::{Error, Result, ResultExt};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey};

/// What certs.d has for a registry.
#[derive(Debug, Clone, Default)]
pub struct TlsMaterial {
    /// Extra trusted CAs (every certificate of every `*.crt`).
    pub cas: Vec<Certificate<'static>>,
    /// The client certificate (chain) and key, when there is a pair.
    pub client: Option<ClientCert>,
    /// Every file used, in the order read (for logs and errors).
    pub files: Vec<PathBuf>,
}

/// The certs.d dirs, in order: `$LAYERFS_CERTS_D` (a `:` list) when set, then
/// `/etc/docker/certs.d`, `/etc/containers/certs.d` and `$XDG_CONFIG_HOME/containers/certs.d`
/// (else `~/.config/containers/certs.d`).
pub fn cert_dirs() -> Vec<PathBuf> {
    cert_dirs_from(&|k| std::env::var_os(k))
}

fn cert_dirs_from(env: &dyn Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    let mut dirs: Vec<PathBuf> = var("LAYERFS_CERTS_D")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    dirs.push(PathBuf::from("/etc/docker/certs.d"));
    dirs.push(PathBuf::from("/etc/containers/certs.d"));
    match (var("XDG_CONFIG_HOME"), var("HOME")) {
        (Some(x), _) => dirs.push(PathBuf::from(x).join("containers/certs.d")),
        (None, Some(h)) => dirs.push(PathBuf::from(h).join(".config/containers/certs.d")),
        (None, None) => {}
    }
    dirs
}

/// The material for `host` (`name` or `name:port`, as the registry is named) in every
/// [`cert_dirs`] dir.
pub fn material_for(host: &str) -> Result<TlsMaterial> {
    material_in(&cert_dirs(), host)
}

/// The material for `host` in `dirs`: `DIR/HOST/*.crt` as CAs, the first `NAME.cert` +
/// `NAME.key` pair as the client certificate. A dir that does not exist has nothing; a bad
/// file, a `.cert` without its `.key` (or the reverse) is an error naming the file.
pub fn material_in(dirs: &[PathBuf], host: &str) -> Result<TlsMaterial> {
    if host.is_empty()
        || host == "."
        || host == ".."
        || host.contains(['/', '\0'])
        || host.starts_with('-')
    {
        return Err(Error::invalid(format!(
            "{host:?} is not a registry host for certs.d"
        )));
    }
    let mut m = TlsMaterial::default();
    for dir in dirs {
        add_dir(&mut m, &dir.join(host))?;
    }
    Ok(m)
}

/// Add what `dir` (one `certs.d/HOST`) holds.
fn add_dir(m: &mut TlsMaterial, dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Ok(()),
        Err(e) => return Err(Error::io("reading", dir, e)),
    };
    let mut names = Vec::new();
    for e in entries {
        names.push(e.io("reading", dir)?.file_name());
    }
    names.sort();
    let has = |n: &str| names.iter().any(|x| x == n);
    for name in &names {
        let Some(name) = name.to_str() else { continue };
        let path = dir.join(name);
        if !std::fs::metadata(&path).is_ok_and(|md| md.is_file()) {
            continue;
        }
        if name.ends_with(".crt") {
            m.cas.extend(read_certs(&path)?);
            m.files.push(path);
        } else if let Some(stem) = name.strip_suffix(".cert") {
            let key = format!("{stem}.key");
            if !has(&key) {
                return Err(Error::invalid(format!(
                    "{}: client certificate without its key {key}",
                    path.display()
                )));
            }
            add_client(m, &path, &dir.join(key))?;
        } else if let Some(stem) = name.strip_suffix(".key")
            && !has(&format!("{stem}.cert"))
        {
            return Err(Error::invalid(format!(
                "{}: client key without its certificate {stem}.cert",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Read the pair `cert` + `key`; the first pair found is the client certificate (ureq takes
/// one), later ones are checked and logged.
fn add_client(m: &mut TlsMaterial, cert: &Path, key: &Path) -> Result<()> {
    let chain = read_certs(cert)?;
    let k = read_key(key)?;
    if m.client.is_some() {
        log::debug!(
            "{}: a client certificate was found before; this one is not used",
            cert.display()
        );
        return Ok(());
    }
    m.client = Some(ClientCert::new_with_certs(&chain, k));
    m.files.push(cert.to_path_buf());
    m.files.push(key.to_path_buf());
    Ok(())
}

/// Every certificate in a PEM file (at least one).
fn read_certs(p: &Path) -> Result<Vec<Certificate<'static>>> {
    let pem = std::fs::read(p).io("reading", p)?;
    let mut out = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) if der_is_sequence(c.der()) => out.push(c),
            Ok(PemItem::Certificate(_)) => return Err(bad_pem(p, "a certificate is not DER")),
            Ok(_) => {}
            Err(e) => return Err(bad_pem(p, &e.to_string())),
        }
    }
    if out.is_empty() {
        return Err(bad_pem(p, "no PEM certificate in it"));
    }
    Ok(out)
}

/// The private key in a PEM file.
fn read_key(p: &Path) -> Result<PrivateKey<'static>> {
    let pem = std::fs::read(p).io("reading", p)?;
    match PrivateKey::from_pem(&pem) {
        Ok(k) if der_is_sequence(k.der()) => Ok(k),
        Ok(_) => Err(bad_pem(p, "the key is not DER")),
        Err(_) => Err(bad_pem(p, "no PEM private key in it")),
    }
}

fn bad_pem(p: &Path, why: &str) -> Error {
    Error::invalid(format!("{}: not a valid PEM file: {why}", p.display()))
}

/// A cheap check that PEM's body is DER at all: one SEQUENCE spanning all of it. (The TLS
/// library checks the rest, but its error would not name the file.)
fn der_is_sequence(der: &[u8]) -> bool {
    let [0x30, first, rest @ ..] = der else {
        return false;
    };
    let (len, rest) = match *first {
        l if l < 0x80 => (usize::from(l), rest),
        l @ 0x81..=0x84 => {
            let n = usize::from(l & 0x7f);
            if rest.len() < n {
                return false;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[n..])
        }
        _ => return false,
    };
    len == rest.len()
}

/// The system's trusted roots (rustls-native-certs: the OS store, `SSL_CERT_FILE`,
/// `SSL_CERT_DIR`), loaded once. A certificate or file that cannot be read is skipped (logged
/// at debug), never an error.
pub fn system_roots() -> Vec<Certificate<'static>> {
    static ROOTS: OnceLock<Vec<Certificate<'static>>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                log::debug!("system root certificates: {e}");
            }
            let roots: Vec<_> = found
                .certs
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned())
                .collect();
            log::debug!("{} system root certificates", roots.len());
            roots
        })
        .clone()
}

#[cfg(test)]
mod tests;
