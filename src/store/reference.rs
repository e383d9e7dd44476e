//! Image references as users and archives write them: `name[:tag]`, validated the way
//! docker validates them, and made familiar (`docker.io/library/busybox` -> `busybox`).
//! Both the archive readers and the image records use these; neither owns them.

use super::error::{Error, Result};

/// `name:tag` (the tag defaults to `latest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub name: String,
    pub tag: String,
}

/// Make a reference familiar (`docker.io/library/busybox:latest` -> `busybox:latest`).
pub fn familiar(r: &str) -> String {
    let r = r.strip_prefix("docker.io/").unwrap_or(r);
    let r = r.strip_prefix("library/").unwrap_or(r);
    r.to_string()
}

impl Ref {
    /// Parse and validate a reference the way docker does (lower-case name components of
    /// `[a-z0-9._-]` separated by `/`, an optional registry host[:port], tag of
    /// `[A-Za-z0-9_.-]{1,128}`). `docker.io/library/` is dropped.
    pub fn parse(s: &str) -> Result<Ref> {
        let s = familiar(s);
        let (name, tag) = match s.rfind(':') {
            Some(i) if !s[i..].contains('/') => (&s[..i], &s[i + 1..]),
            _ => (s.as_str(), "latest"),
        };
        if name.contains('@') {
            return Err(Error::invalid(format!(
                "invalid reference {s:?}: digest references are not supported here"
            )));
        }
        if !valid_name(name) {
            return Err(Error::invalid(format!(
                "invalid reference format {s:?}: repository name must be lowercase [a-z0-9._-] components separated by '/'"
            )));
        }
        if tag.is_empty()
            || tag.len() > 128
            || !tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            || tag.starts_with(['.', '-'])
        {
            return Err(Error::invalid(format!(
                "invalid tag {tag:?} in reference {s:?}"
            )));
        }
        Ok(Ref {
            name: name.to_string(),
            tag: tag.to_string(),
        })
    }
}

/// A repository name: components of `[a-z0-9._-]` starting alphanumeric, separated by
/// `/`; the first may be a registry host (`a.b`, `host:port`, `localhost`).
fn valid_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    name.split('/').enumerate().all(|(i, comp)| {
        let host = i == 0
            && name.contains('/')
            && (comp.contains('.') || comp.contains(':') || comp == "localhost");
        !comp.is_empty()
            && (host
                || (comp
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                    && comp.as_bytes()[0].is_ascii_alphanumeric()))
    })
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs() {
        let r = Ref::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "busybox:latest");
        assert_eq!(
            Ref::parse("docker.io/library/alpine:3.19")
                .unwrap()
                .to_string(),
            "alpine:3.19"
        );
        assert_eq!(
            Ref::parse("localhost:5000/a/b:v1").unwrap().name,
            "localhost:5000/a/b"
        );
        assert_eq!(Ref::parse("localhost:5000/a/b").unwrap().tag, "latest");
        assert!(Ref::parse("Busybox").is_err());
        assert!(Ref::parse("a:b:c").is_err());
        assert!(Ref::parse("a:").is_err());
        assert!(Ref::parse("").is_err());
        assert!(Ref::parse("a//b").is_err());
        assert!(Ref::parse("_a").is_err());
    }

    #[test]
    fn familiar_names() {
        assert_eq!(
            familiar("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert_eq!(familiar("quay.io/a/b:1"), "quay.io/a/b:1");
    }
}
