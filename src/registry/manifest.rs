//! Manifests as registries serve them: OCI image manifest and index, Docker schema2
//! manifest and manifest list (schema1 is refused with the reason), their descriptors, and
//! the choice of one platform from an index.

use super::error::{Error, Result};
use crate::digest::Digest;
use serde::{Deserialize, Serialize};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// What we ask for, best first.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json;q=0.9";

/// A content descriptor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `os/architecture[/variant]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image manifest (OCI or Docker schema2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// An index / manifest list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// A manifest as fetched.
#[derive(Debug, Clone)]
pub enum Manifest {
    Image(Box<ImageManifest>),
    Index(Index),
}

/// Parse a manifest body; `content_type` is the answer's `Content-Type`. `what` names it.
pub fn parse(content_type: Option<&str>, body: &[u8], what: &str) -> Result<Manifest> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Error::corrupt(format!("{what}: the manifest is not JSON ({e})")))?;
    let declared = v
        .get("mediaType")
        .and_then(|m| m.as_str())
        .map(str::to_string);
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| c.starts_with("application/vnd."));
    let mt = declared.as_deref().or(header).unwrap_or_else(|| {
        if v.get("manifests").is_some() {
            OCI_INDEX
        } else if v.get("fsLayers").is_some() || v.get("schemaVersion") == Some(&1.into()) {
            DOCKER_SCHEMA1
        } else {
            OCI_MANIFEST
        }
    });
    let mt = mt.to_string();
    let bad = |e: serde_json::Error| Error::corrupt(format!("{what}: a bad {mt} ({e})"));
    match mt.as_str() {
        OCI_INDEX | DOCKER_LIST => Ok(Manifest::Index(serde_json::from_value(v).map_err(bad)?)),
        OCI_MANIFEST | DOCKER_MANIFEST => Ok(Manifest::Image(Box::new(
            serde_json::from_value(v).map_err(bad)?,
        ))),
        DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => Err(Error::invalid(format!(
            "{what}: a Docker schema 1 manifest: that format is deprecated and not supported; \
             push the image again with a current client (schema 2 or OCI)"
        ))),
        other => Err(Error::invalid(format!(
            "{what}: unsupported manifest media type {other:?}"
        ))),
    }
}

/// Whether a layer's media type is one we can unpack.
pub fn is_layer_type(mt: &str) -> bool {
    matches!(
        mt,
        DOCKER_LAYER_GZIP
            | DOCKER_FOREIGN_LAYER
            | OCI_LAYER
            | OCI_LAYER_GZIP
            | OCI_LAYER_ZSTD
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
    )
}

/// The platform this program runs on, as registries name it.
pub fn host_platform() -> Platform {
    let (arch, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "x86" => ("386", None),
        "powerpc64" => ("ppc64le", None),
        "riscv64" => ("riscv64", None),
        "s390x" => ("s390x", None),
        "loongarch64" => ("loong64", None),
        a => (a, None),
    };
    Platform {
        architecture: arch.into(),
        os: "linux".into(),
        variant: variant.map(str::to_string),
        os_version: None,
    }
}

/// `OS/ARCH[/VARIANT]` (`linux/arm64`, `linux/arm/v7`).
pub fn parse_platform(s: &str) -> Result<Platform> {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = (2..=3).contains(&parts.len()) && parts.iter().all(|p| !p.is_empty());
    if !ok {
        return Err(Error::invalid(format!(
            "invalid platform {s:?}: expected OS/ARCH[/VARIANT] (e.g. linux/amd64, linux/arm/v7)"
        )));
    }
    Ok(Platform {
        os: parts[0].to_ascii_lowercase(),
        architecture: normalize_arch(&parts[1].to_ascii_lowercase()).into(),
        variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        os_version: None,
    })
}

fn normalize_arch(a: &str) -> &str {
    match a {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i386" => "386",
        a => a,
    }
}

/// arm64's variant is v8 when not said; nothing else has a default.
fn variant_of(p: &Platform) -> Option<&str> {
    match (p.architecture.as_str(), p.variant.as_deref()) {
        ("arm64", None) => Some("v8"),
        (_, v) => v,
    }
}

/// Whether an image of platform `have` is one of `want`: same OS and architecture, and the
/// variant when `want` names one (arm64 means arm64/v8).
pub fn satisfies(have: &Platform, want: &Platform) -> bool {
    have.os == want.os
        && normalize_arch(&have.architecture) == want.architecture
        && (want.variant.is_none() || variant_of(have) == variant_of(want))
}

/// The index entry for `want`: same OS and architecture; the variant must match when one is
/// asked for (arm64 means arm64/v8). Attestations (`unknown/unknown`) are never chosen. The
/// error lists the platforms the index has.
pub fn select<'a>(index: &'a Index, want: &Platform, what: &str) -> Result<&'a Descriptor> {
    let matches = |p: &Platform| satisfies(p, want);
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| d.platform.as_ref().is_some_and(matches))
        .collect();
    // With no variant asked for, prefer the host's own (arm/v7 on an arm/v7 host).
    let exact = candidates
        .iter()
        .find(|d| d.platform.as_ref().map(variant_of) == Some(variant_of(want)));
    if let Some(d) = exact.or(candidates.first()) {
        return Ok(d);
    }
    let have: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .filter(|p| p.os != "unknown")
        .map(|p| p.to_string())
        .collect();
    Err(Error::invalid(format!(
        "{what}: no image for platform {want} in the manifest list; it has: {}",
        if have.is_empty() {
            "no platforms".to_string()
        } else {
            have.join(", ")
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(os: &str, arch: &str, variant: Option<&str>, n: u8) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: Digest::of(&[n]),
            size: 1,
            urls: vec![],
            platform: Some(Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.map(str::to_string),
                os_version: None,
            }),
            annotations: None,
        }
    }

    #[test]
    fn platform_selection() {
        let idx = Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.into()),
            manifests: vec![
                desc("unknown", "unknown", None, 0),
                desc("linux", "amd64", None, 1),
                desc("linux", "arm64", Some("v8"), 2),
                desc("linux", "arm", Some("v6"), 3),
                desc("linux", "arm", Some("v7"), 4),
            ],
        };
        let pick =
            |s: &str| select(&idx, &parse_platform(s).unwrap(), "x").map(|d| d.digest.clone());
        assert_eq!(pick("linux/amd64").unwrap(), Digest::of(&[1]));
        assert_eq!(pick("linux/x86_64").unwrap(), Digest::of(&[1]));
        assert_eq!(pick("linux/arm64").unwrap(), Digest::of(&[2]));
        assert_eq!(pick("linux/arm64/v8").unwrap(), Digest::of(&[2]));
        assert_eq!(pick("linux/arm/v7").unwrap(), Digest::of(&[4]));
        let e = pick("linux/s390x").unwrap_err().to_string();
        assert!(
            e.contains("linux/amd64, linux/arm64/v8, linux/arm/v6, linux/arm/v7"),
            "{e}"
        );
        assert!(!e.contains("unknown"), "{e}");
        assert!(parse_platform("linux").is_err());
        assert!(parse_platform("linux//v7").is_err());
    }

    #[test]
    fn media_types() {
        let d = Digest::of(b"c");
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{d}","size":1}},"layers":[]}}"#
        );
        assert!(matches!(
            parse(None, m.as_bytes(), "m").unwrap(),
            Manifest::Image(_)
        ));
        // No mediaType in the body (allowed by OCI): the header says.
        let m = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":1}}]}}"#
        );
        assert!(matches!(
            parse(Some(OCI_INDEX), m.as_bytes(), "m").unwrap(),
            Manifest::Index(_)
        ));
        let s1 = br#"{"schemaVersion":1,"name":"a","fsLayers":[]}"#;
        let e = parse(Some("application/json"), s1, "m")
            .unwrap_err()
            .to_string();
        assert!(e.contains("schema 1"), "{e}");
        assert!(parse(None, b"{", "m").is_err());
    }
}
