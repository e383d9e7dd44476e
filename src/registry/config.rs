//! layerfs's own config file: docker `daemon.json`'s `registry-mirrors` (Docker Hub mirrors,
//! tried in order) and `insecure-registries` (`host`, `host:port` or a CIDR), and which
//! registries count as insecure (those, plus loopback and `localhost` by default).

use super::error::{Error, Result};
use serde_json::Value;
use std::ffi::OsString;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// The config: mirrors and insecure registries. `Default` is the built-in one (no mirrors;
/// insecure: `127.0.0.0/8`, `::1`, `localhost`).
#[derive(Debug, Clone, Default)]
pub struct Config {
    mirrors: Vec<String>,
    insecure: Vec<Insecure>,
    source: Option<PathBuf>,
}

/// One `insecure-registries` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Insecure {
    /// A host name or IP, on one port or (without) on any.
    Host {
        name: String,
        ip: Option<IpAddr>,
        port: Option<u16>,
    },
    /// Every IP literal in the network.
    Cidr { net: IpAddr, prefix: u8 },
}

impl Config {
    /// `$LAYERFS_CONFIG`, else `$XDG_CONFIG_HOME/layerfs/config.json` (else
    /// `~/.config/layerfs/config.json`), else `/etc/layerfs/config.json` when running as
    /// root. The first file that exists is read; none: the defaults.
    pub fn load() -> Result<Config> {
        let root = crate::sys::geteuid() == 0;
        for p in candidates(&|k| std::env::var_os(k), root) {
            if let Some(c) = read(&p)? {
                return Ok(c);
            }
        }
        Ok(Config::default())
    }

    /// The config in `p`; the defaults when `p` does not exist.
    pub fn from_file(p: &Path) -> Result<Config> {
        Ok(read(p)?.unwrap_or_default())
    }

    /// Parse `text` (the content of `origin`, which errors name).
    pub fn from_json(text: &str, origin: &Path) -> Result<Config> {
        let at = origin.display();
        let v: Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("{at}: not valid JSON: {e}")))?;
        let Value::Object(map) = v else {
            return Err(Error::invalid(format!("{at}: not a JSON object")));
        };
        let mut c = Config {
            source: Some(origin.to_path_buf()),
            ..Config::default()
        };
        for (i, s) in strings(&map, "registry-mirrors", origin)?
            .iter()
            .enumerate()
        {
            let m = parse_mirror(s).map_err(|why| {
                Error::invalid(format!("{at}: registry-mirrors[{i}] {}: {why}", shown(s)))
            })?;
            if !c.mirrors.contains(&m) {
                c.mirrors.push(m);
            }
        }
        for (i, s) in strings(&map, "insecure-registries", origin)?
            .iter()
            .enumerate()
        {
            let e = parse_insecure(s).map_err(|why| {
                Error::invalid(format!(
                    "{at}: insecure-registries[{i}] {}: {why}",
                    shown(s)
                ))
            })?;
            c.insecure.push(e);
        }
        Ok(c)
    }

    /// Docker Hub mirrors, in order: `scheme://host[:port][/path]`, no trailing slash.
    pub fn mirrors(&self) -> &[String] {
        &self.mirrors
    }

    /// The file this config came from (`None`: the defaults).
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// Whether `host` (`name`, `name:port`, `[v6]:port`) may be reached without verifying
    /// its certificate (or over plain HTTP): listed by name (any port), by name and port,
    /// an IP literal in a listed CIDR, or loopback / `localhost`. Names are not resolved.
    pub fn is_insecure(&self, host: &str) -> bool {
        let Some((name, port)) = split_host_port(host) else {
            return false;
        };
        let name = name.to_ascii_lowercase();
        let ip = name.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
        if name == "localhost" || ip.is_some_and(|ip| ip.is_loopback()) {
            return true;
        }
        self.insecure.iter().any(|e| match e {
            Insecure::Host {
                name: n,
                ip: eip,
                port: p,
            } => {
                let same = match (eip, ip) {
                    (Some(a), Some(b)) => *a == b,
                    _ => *n == name,
                };
                same && (p.is_none() || *p == port)
            }
            Insecure::Cidr { net, prefix } => ip.is_some_and(|ip| in_cidr(ip, *net, *prefix)),
        })
    }
}

/// The files `load` tries, in order.
fn candidates(env: &dyn Fn(&str) -> Option<OsString>, root: bool) -> Vec<PathBuf> {
    let var = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = var("LAYERFS_CONFIG") {
        return vec![p];
    }
    let mut v = Vec::new();
    match (var("XDG_CONFIG_HOME"), var("HOME")) {
        (Some(x), _) => v.push(x.join("layerfs/config.json")),
        (None, Some(h)) => v.push(h.join(".config/layerfs/config.json")),
        (None, None) => {}
    }
    if root {
        v.push(PathBuf::from("/etc/layerfs/config.json"));
    }
    v
}

/// The config in `p`, `None` when there is no such file.
fn read(p: &Path) -> Result<Option<Config>> {
    match std::fs::read_to_string(p) {
        Ok(text) => Config::from_json(&text, p).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            log::debug!("no layerfs config at {}", p.display());
            Ok(None)
        }
        Err(e) => Err(Error::io("reading", p, e)),
    }
}

/// `map[key]` as a list of strings (missing or null: empty).
fn strings(map: &serde_json::Map<String, Value>, key: &str, origin: &Path) -> Result<Vec<String>> {
    let bad = || {
        Error::invalid(format!(
            "{}: {key}: not a list of strings",
            origin.display()
        ))
    };
    match map.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
            .collect(),
        Some(_) => Err(bad()),
    }
}

/// An entry as errors show it: quoted, unless it may carry a password (`user:pw@host`).
fn shown(s: &str) -> String {
    if s.contains('@') {
        "(a URL with credentials)".to_string()
    } else {
        format!("{s:?}")
    }
}

/// A mirror URL, normalised: lower-case scheme and host, no trailing slash.
fn parse_mirror(s: &str) -> std::result::Result<String, String> {
    let (scheme, rest) = s
        .split_once("://")
        .ok_or("not a URL (expected http://HOST[:PORT] or https://HOST[:PORT][/PATH])")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("scheme {scheme:?} is not http or https"));
    }
    if rest.contains('@') {
        return Err("a mirror URL must not carry credentials (use config.json)".into());
    }
    if rest.contains(['?', '#']) || rest.contains(char::is_whitespace) {
        return Err("a mirror URL has no query, fragment or spaces".into());
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    split_host_port(authority).ok_or("no valid host[:port]")?;
    let path = path.trim_end_matches('/');
    Ok(format!(
        "{scheme}://{}{path}",
        authority.to_ascii_lowercase()
    ))
}

/// An `insecure-registries` entry: `host`, `host:port`, `[v6]:port`, or `IP/PREFIX`. An
/// `http://` or `https://` in front is dropped (with a warning), as docker does.
fn parse_insecure(s: &str) -> std::result::Result<Insecure, String> {
    let mut s = s.trim();
    let lower = s.to_ascii_lowercase();
    for p in ["http://", "https://"] {
        if lower.starts_with(p) {
            log::warn!("insecure registry {s:?}: the scheme is ignored");
            s = &s[p.len()..];
            break;
        }
    }
    if s.contains("://") {
        return Err("an insecure registry has no scheme".into());
    }
    if let Some((ip, prefix)) = s.split_once('/') {
        let net: IpAddr = ip.parse().map_err(|_| "not a CIDR (IP/PREFIX)")?;
        let net = net.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        // `::ffff:10.0.0.0/104` is `10.0.0.0/8`.
        let given: u8 = prefix.parse().map_err(|_| "not a CIDR prefix length")?;
        let prefix = match (ip.parse::<IpAddr>(), net) {
            (Ok(IpAddr::V6(_)), IpAddr::V4(_)) if given >= 96 => given - 96,
            (Ok(IpAddr::V6(_)), IpAddr::V4(_)) => return Err("not a CIDR prefix length".into()),
            _ => given,
        };
        if prefix > max {
            return Err(format!("a prefix length is at most {max}"));
        }
        return Ok(Insecure::Cidr { net, prefix });
    }
    let (name, port) = split_host_port(s).ok_or("not host, host:port or a CIDR")?;
    let name = name.to_ascii_lowercase();
    let ip = name.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    Ok(Insecure::Host { name, ip, port })
}

/// `name[:port]` / `[v6][:port]` / a bare v6 literal -> (name, port); `None` when it is
/// not a plausible host (empty, stray characters, a bad port).
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (name, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<Ipv6Addr>().ok()?;
        match after {
            "" => (v6, None),
            p => (v6, Some(p.strip_prefix(':')?)),
        }
    } else if s.parse::<Ipv6Addr>().is_ok() {
        (s, None)
    } else {
        match s.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0)?),
    };
    let plausible = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    let v6 = name.parse::<Ipv6Addr>().is_ok();
    if name.is_empty() || !(v6 || name.chars().all(plausible)) {
        return None;
    }
    Some((name, port))
}

/// Whether `ip` is in `net/prefix` (both canonical: a v4-mapped v6 address is v4).
fn in_cidr(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
