//! Image references as docker parses and normalises them: `[DOMAIN/]PATH[:TAG][@DIGEST]`.
//! `busybox` is `docker.io/library/busybox:latest`; a first component with a `.` or `:`, or
//! `localhost`, or an upper-case letter, is a registry host. Shown the familiar way
//! (`busybox`, `user/app`, `127.0.0.1:5000/team/app`). Checked before any network traffic.

use super::error::{Error, Result};
use crate::digest::Digest;
use std::fmt;

/// Docker Hub's name in references, and where its API really is.
pub const DOCKER_HUB: &str = "docker.io";
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed, normalised reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `docker.io`, `quay.io`, `127.0.0.1:5000`, `[::1]:5000`.
    pub domain: String,
    /// The repository inside the registry: `library/busybox`, `team/app`.
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parse and normalise as docker does; the error says what is wrong with which part.
    pub fn parse(s: &str) -> Result<Reference> {
        let bad = |why: String| Error::invalid(format!("invalid reference format {s:?}: {why}"));
        if s.is_empty() {
            return Err(bad("empty".into()));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let dg = parse_digest(d).map_err(bad)?;
                (r, Some(dg))
            }
            None => (s, None),
        };
        let (name, tag) = split_tag(rest);
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(bad(format!(
                "tag {t:?} must be 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'"
            )));
        }
        let (domain, path) = split_domain(name);
        if !valid_domain(&domain) {
            return Err(bad(format!(
                "registry host {domain:?} is not a host[:port]"
            )));
        }
        if path.is_empty() || !path.split('/').all(valid_component) {
            let why = if path.bytes().any(|b| b.is_ascii_uppercase()) {
                format!("repository name ({path}) must be lowercase")
            } else {
                format!(
                    "repository name ({path}) must be components of [a-z0-9] joined by \
                     '.', '_', '__' or '-', separated by '/'"
                )
            };
            return Err(bad(why));
        }
        if domain.len() + 1 + path.len() > 255 {
            return Err(bad(
                "repository name must not be longer than 255 characters".into(),
            ));
        }
        Ok(Reference {
            domain,
            path,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// `docker.io/library/busybox`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `busybox`, `user/app`, `127.0.0.1:5000/team/app`: the name the store keeps.
    pub fn familiar_name(&self) -> String {
        if self.domain == DOCKER_HUB {
            self.path
                .strip_prefix("library/")
                .filter(|p| !p.contains('/'))
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.full_name()
        }
    }

    /// The tag, `latest` when neither a tag nor a digest was given.
    pub fn tag_or_default(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some("latest"),
            (None, Some(_)) => None,
        }
    }

    /// What to ask the registry's manifest endpoint for: the digest if pinned, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, self.tag_or_default()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => "latest".into(),
        }
    }

    /// The same repository with another tag (for `--all-tags`).
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// The host to talk to: Docker Hub's API host for `docker.io`.
    pub fn api_host(&self) -> &str {
        if self.domain == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.domain
        }
    }
}

/// Full form: `docker.io/library/busybox:latest`, `host/app@sha256:..`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.full_name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// A registry name as users write it for login, logout and search (`docker.io` for none,
/// `index.docker.io` and Hub URLs mean `docker.io`; a scheme and a path are dropped).
pub fn normalize_registry(s: Option<&str>) -> Result<String> {
    let Some(s) = s.filter(|s| !s.is_empty()) else {
        return Ok(DOCKER_HUB.into());
    };
    let host = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = host.split('/').next().unwrap_or(host);
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB,
        h => h,
    };
    if !valid_domain(host) {
        return Err(Error::invalid(format!(
            "invalid registry {s:?}: not a host[:port]"
        )));
    }
    Ok(host.to_string())
}

fn parse_digest(d: &str) -> std::result::Result<Digest, String> {
    match d.split_once(':') {
        Some(("sha256", _)) => Digest::parse(d).map_err(|e| format!("digest {d:?}: {e}")),
        Some((alg, _)) => Err(format!(
            "digest {d:?}: algorithm {alg:?} is not supported (only sha256)"
        )),
        None => Err(format!("digest {d:?} must be ALGORITHM:HEX")),
    }
}

/// `name:tag` -> (name, tag); a `:` before the last `/` is a port, not a tag.
fn split_tag(s: &str) -> (&str, Option<&str>) {
    match s.rfind(':') {
        Some(i) if !s[i..].contains('/') => (&s[..i], Some(&s[i + 1..])),
        _ => (s, None),
    }
}

/// docker's rule for where the domain ends, plus the `library/` prefix for Hub names.
fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        DOCKER_HUB.to_string()
    } else {
        domain
    };
    if domain == DOCKER_HUB && !path.contains('/') {
        (domain, format!("library/{path}"))
    } else {
        (domain, path)
    }
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !t.starts_with(['.', '-'])
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or `-`+.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `host[:port]`: DNS labels or an IPv4 address or `[IPv6]`, and a numeric port.
fn valid_domain(d: &str) -> bool {
    let (host_ok, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some((h, after)) = rest.split_once(']') else {
            return false;
        };
        let port = match after {
            "" => None,
            a => match a.strip_prefix(':') {
                Some(p) => Some(p),
                None => return false,
            },
        };
        (h.parse::<std::net::Ipv6Addr>().is_ok(), port)
    } else {
        match d.split_once(':') {
            Some((h, p)) => (valid_hostname(h), Some(p)),
            None => (valid_hostname(d), None),
        }
    };
    host_ok
        && port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Dot-separated labels of letters, digits and inner `-`.
fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn hub_names_are_normalised() {
        let r = p("busybox");
        assert_eq!(r.to_string(), "docker.io/library/busybox");
        assert_eq!(r.tag_or_default(), Some("latest"));
        assert_eq!(r.familiar_name(), "busybox");
        assert_eq!(r.api_host(), DOCKER_HUB_API);
        assert_eq!(p("user/app:v1").full_name(), "docker.io/user/app");
        assert_eq!(p("user/app:v1").familiar_name(), "user/app");
        assert_eq!(p("docker.io/library/alpine:3.19").familiar_name(), "alpine");
        assert_eq!(
            p("index.docker.io/library/alpine").familiar_name(),
            "alpine"
        );
        assert_eq!(p("docker.io/alpine").path, "library/alpine");
    }

    #[test]
    fn registry_hosts() {
        let r = p("127.0.0.1:5000/team/app:v2");
        assert_eq!(r.domain, "127.0.0.1:5000");
        assert_eq!(r.path, "team/app");
        assert_eq!(r.tag.as_deref(), Some("v2"));
        assert_eq!(r.familiar_name(), "127.0.0.1:5000/team/app");
        assert_eq!(p("localhost/app").domain, "localhost");
        assert_eq!(p("localhost:5000/app").api_host(), "localhost:5000");
        assert_eq!(p("quay.io/a/b/c").path, "a/b/c");
        assert_eq!(p("[::1]:5000/app").domain, "[::1]:5000");
        // A first component without '.', ':' or "localhost" is a Hub user.
        assert_eq!(p("team/app").domain, DOCKER_HUB);
    }

    #[test]
    fn digests() {
        let h = "a".repeat(64);
        let r = p(&format!("busybox@sha256:{h}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.tag_or_default(), None);
        assert_eq!(r.manifest_ref(), format!("sha256:{h}"));
        let r = p(&format!("h:5000/x:v1@sha256:{h}"));
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.to_string(), format!("h:5000/x:v1@sha256:{h}"));
        for bad in ["busybox@sha256:abc", "busybox@md5:abcd", "busybox@", "b@x"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn invalid_references_say_why() {
        let e = Reference::parse("Busybox").unwrap_err().to_string();
        assert!(e.contains("must be lowercase"), "{e}");
        let e = Reference::parse("a:b:c").unwrap_err().to_string();
        assert!(e.contains("invalid reference format"), "{e}");
        for bad in [
            "", "a:", "a//b", "_a", "a-", "a..b", "a/b:-x", "h:x/a", "a/", ":tag", "a___b",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a__b", "a---b", "a.b_c-d", "x/y/z:1.0-rc_1"] {
            p(good);
        }
        assert!(Reference::parse(&format!("{}/x", "a".repeat(260))).is_err());
    }

    #[test]
    fn registries_for_login() {
        assert_eq!(normalize_registry(None).unwrap(), "docker.io");
        assert_eq!(
            normalize_registry(Some("https://index.docker.io/v1/")).unwrap(),
            "docker.io"
        );
        assert_eq!(
            normalize_registry(Some("127.0.0.1:5000")).unwrap(),
            "127.0.0.1:5000"
        );
        assert!(normalize_registry(Some("bad host")).is_err());
    }
}
