//! Reading image archives without side effects: docker-archive tars (`manifest.json` +
//! per-layer tars or `blobs/`), OCI image layout directories and oci-archive tars. A tar is
//! indexed once (name -> offset, size; symlinks such as `<id>/layer.tar -> ../<diffid>.tar`
//! resolved inside the archive), so each layer can be read on its own thread.

use super::error::{Error, Result, ResultExt};
use super::reference::familiar;
use crate::digest::Digest;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Where an archive's files come from.
pub trait Blobs: Sync + Send {
    /// Open one member (after resolving archive-internal symlinks).
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>>;
    /// Is there such a member? (An error is one reading the archive, not "no".)
    fn exists(&self, name: &str) -> Result<bool>;
    /// The member's size, when cheap to know: a hint for the progress bar only (a member
    /// that cannot be read fails when it is opened).
    fn size(&self, _name: &str) -> Option<u64> {
        None
    }
    /// Read a small member (manifests, configs) fully.
    fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.open(name)?
            .take(64 << 20)
            .read_to_end(&mut v)
            .io("reading the archive member", name)?;
        Ok(v)
    }
}

/// Lexically normalise a member name (`./a/../b` -> `b`); `..` above the top is refused.
pub fn normalize(name: &str) -> Result<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(Error::invalid(format!(
                        "archive member {name:?} points above the archive root"
                    )));
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// A tar archive on disk, indexed.
pub struct TarBlobs {
    file: PathBuf,
    /// What messages call it (the user's name for a spooled copy).
    shown: String,
    files: HashMap<String, (u64, u64)>,
    links: HashMap<String, String>,
}

impl TarBlobs {
    pub fn index(file: &Path) -> Result<TarBlobs> {
        TarBlobs::index_as(file, &file.display().to_string())
    }

    /// [`TarBlobs::index`] of a copy of what the user named `shown` (stdin, a compressed
    /// archive): what is wrong with the content is told of `shown`, I/O errors of `file`.
    pub fn index_as(file: &Path, shown: &str) -> Result<TarBlobs> {
        let f = File::open(file).io("opening", file)?;
        let mut ar = tar::Archive::new(f);
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        // An OS error is one reading the file; anything else is what the tar reader
        // found in it.
        let bad = |e: std::io::Error| match e.raw_os_error() {
            Some(_) => Error::io("reading", file, e),
            None => Error::invalid(format!(
                "{shown} is a corrupt or truncated tar archive: {e}"
            )),
        };
        for ent in ar.entries().map_err(bad)? {
            let ent = ent.map_err(bad)?;
            let name = String::from_utf8_lossy(&ent.path_bytes()).into_owned();
            // A member above the archive root cannot be named by a manifest: skipped.
            let Ok(name) = normalize(&name) else {
                continue;
            };
            match ent.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let size = ent.size();
                    files.insert(name, (ent.raw_file_position(), size));
                }
                tar::EntryType::Symlink => {
                    if let Some(t) = ent.link_name_bytes() {
                        let t = String::from_utf8_lossy(&t).into_owned();
                        let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                        let joined = if t.starts_with('/') {
                            t
                        } else {
                            format!("{dir}/{t}")
                        };
                        links.insert(name, joined);
                    }
                }
                tar::EntryType::Link => {
                    if let Some(t) = ent.link_name_bytes() {
                        links.insert(name, String::from_utf8_lossy(&t).into_owned());
                    }
                }
                _ => {}
            }
        }
        // The whole file must have been a tar: check it ended where it should.
        let len = std::fs::metadata(file).io("reading", file)?.len();
        for (n, (off, size)) in &files {
            if off + size > len {
                return Err(Error::invalid(format!(
                    "{shown} is truncated (member {n} is cut short)"
                )));
            }
        }
        Ok(TarBlobs {
            file: file.to_path_buf(),
            shown: shown.to_string(),
            files,
            links,
        })
    }

    fn resolve(&self, name: &str) -> Result<(u64, u64)> {
        let mut n = normalize(name)?;
        for _ in 0..16 {
            if let Some(v) = self.files.get(&n) {
                return Ok(*v);
            }
            match self.links.get(&n) {
                Some(t) => n = normalize(t)?,
                None => break,
            }
        }
        Err(Error::invalid(format!(
            "{} has no member {name}",
            self.shown
        )))
    }
}

impl Blobs for TarBlobs {
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        let (off, size) = self.resolve(name)?;
        let mut f = File::open(&self.file).io("opening", &self.file)?;
        f.seek(SeekFrom::Start(off)).io("reading", &self.file)?;
        Ok(Box::new(f.take(size)))
    }
    /// The index is in memory: a name it does not hold (or cannot hold) is not there.
    fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.resolve(name).is_ok())
    }
    fn size(&self, name: &str) -> Option<u64> {
        self.resolve(name).ok().map(|(_, s)| s)
    }
}

/// An OCI layout directory.
pub struct DirBlobs {
    root: PathBuf,
}

impl DirBlobs {
    pub fn new(root: &Path) -> DirBlobs {
        DirBlobs {
            root: root.to_path_buf(),
        }
    }
}

impl Blobs for DirBlobs {
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        let p = self.root.join(normalize(name)?);
        let f = File::open(&p).io("opening", &p)?;
        Ok(Box::new(f))
    }
    fn exists(&self, name: &str) -> Result<bool> {
        let p = self.root.join(normalize(name)?);
        Ok(std::fs::metadata(&p)
            .io_absent("reading", &p)?
            .is_some_and(|m| m.is_file()))
    }
    fn size(&self, name: &str) -> Option<u64> {
        // A hint (see the trait): an unreadable member fails when it is opened.
        let n = normalize(name).ok()?;
        std::fs::metadata(self.root.join(n)).ok().map(|m| m.len())
    }
}

/// One image found in an archive.
#[derive(Debug, Clone)]
pub struct ImageSource {
    pub config: Vec<u8>,
    pub tags: Vec<String>,
    pub layers: Vec<LayerSource>,
    /// The manifest digest (OCI layouts), kept as `name@sha256:...` repo digests.
    pub manifest: Option<Digest>,
}

/// One layer blob of an image.
#[derive(Debug, Clone)]
pub struct LayerSource {
    pub member: String,
    /// The blob digest the manifest promises (verified while unpacking).
    pub digest: Option<Digest>,
}

const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];
const CONFIG_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

fn json(bytes: &[u8], what: &str) -> Result<serde_json::Value> {
    serde_json::from_slice(bytes).map_err(|e| Error::json(format!("{what} is not valid JSON"), e))
}

/// `blobs/sha256/<hex>` for a digest string, refusing anything that is not one.
fn blob_path(d: &str) -> Result<(String, Digest)> {
    let dg = Digest::parse(d).map_err(|e| Error::invalid(format!("bad blob digest: {e}")))?;
    if !d.starts_with("sha256:") {
        return Err(Error::invalid(format!(
            "unsupported digest algorithm in {d:?}"
        )));
    }
    Ok((format!("blobs/sha256/{}", dg.hex()), dg))
}

fn read_verified(b: &dyn Blobs, d: &str, what: &str) -> Result<Vec<u8>> {
    let (p, dg) = blob_path(d)?;
    let bytes = b.read_small(&p)?;
    let got = Digest::of(&bytes);
    if got != dg {
        return Err(Error::invalid(format!(
            "{what} {p}: digest mismatch: expected {dg}, content is {got}"
        )));
    }
    Ok(bytes)
}

/// A string field of a JSON object, or the error `missing` describes.
fn str_field<'a>(
    v: &'a serde_json::Value,
    key: &str,
    missing: impl FnOnce() -> String,
) -> Result<&'a str> {
    v.get(key)
        .and_then(|t| t.as_str())
        .ok_or_else(|| Error::invalid(missing()))
}

/// A string field that may be absent ("" then).
fn str_or_empty<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v.get(key).and_then(|t| t.as_str()).unwrap_or("")
}

/// Every image in an archive. `default_name` names images whose OCI ref is only a tag.
pub fn read_images(b: &dyn Blobs, default_name: &str) -> Result<Vec<ImageSource>> {
    if b.exists("manifest.json")? {
        return read_docker(b);
    }
    if b.exists("index.json")? {
        if !b.exists("oci-layout")? {
            return Err(Error::invalid(
                "index.json without oci-layout: not an OCI image layout",
            ));
        }
        return read_oci(b, default_name);
    }
    Err(Error::invalid(
        "neither a docker-archive (no manifest.json) nor an OCI layout (no index.json)",
    ))
}

fn read_docker(b: &dyn Blobs) -> Result<Vec<ImageSource>> {
    let m = json(&b.read_small("manifest.json")?, "manifest.json")?;
    let arr = m
        .as_array()
        .ok_or_else(|| Error::invalid("manifest.json is not a JSON array"))?;
    let mut out = Vec::new();
    for (i, im) in arr.iter().enumerate() {
        let cfg = str_field(im, "Config", || {
            format!("manifest.json entry {i} has no Config")
        })?;
        let config = b.read_small(cfg)?;
        // Configs named by digest are checked against it.
        let base = cfg
            .rsplit('/')
            .next()
            .unwrap_or(cfg)
            .trim_end_matches(".json");
        if let Ok(d) = Digest::parse(base)
            && Digest::of(&config) != d
        {
            return Err(Error::invalid(format!(
                "config {cfg}: digest mismatch: name says {d}, content is {}",
                Digest::of(&config)
            )));
        }
        let tags = im
            .get("RepoTags")
            .and_then(|t| t.as_array())
            .map(|t| t.iter().filter_map(|x| x.as_str()).map(familiar).collect())
            .unwrap_or_default();
        let mut layers = Vec::new();
        for l in im
            .get("Layers")
            .and_then(|l| l.as_array())
            .ok_or_else(|| Error::invalid(format!("manifest.json entry {i} has no Layers")))?
        {
            let p = l
                .as_str()
                .ok_or_else(|| Error::invalid("manifest.json Layers holds a non-string"))?;
            let digest = p
                .strip_prefix("blobs/sha256/")
                .and_then(|h| Digest::parse(h).ok());
            layers.push(LayerSource {
                member: p.to_string(),
                digest,
            });
        }
        out.push(ImageSource {
            config,
            tags,
            layers,
            manifest: None,
        });
    }
    if out.is_empty() {
        return Err(Error::invalid("manifest.json lists no images"));
    }
    Ok(out)
}

fn read_oci(b: &dyn Blobs, default_name: &str) -> Result<Vec<ImageSource>> {
    let idx = json(&b.read_small("index.json")?, "index.json")?;
    let mut out = Vec::new();
    collect_index(b, &idx, default_name, None, &mut out, 0)?;
    if out.is_empty() {
        return Err(Error::invalid("index.json lists no image manifests"));
    }
    Ok(out)
}

fn collect_index(
    b: &dyn Blobs,
    idx: &serde_json::Value,
    default_name: &str,
    inherited_ref: Option<String>,
    out: &mut Vec<ImageSource>,
    depth: usize,
) -> Result<()> {
    if depth > 4 {
        return Err(Error::invalid("image index nesting too deep"));
    }
    let ms = idx
        .get("manifests")
        .and_then(|m| m.as_array())
        .ok_or_else(|| Error::invalid("image index has no manifests array"))?;
    let mut picked_platform = false;
    for m in ms {
        let mt = str_or_empty(m, "mediaType");
        let d = str_field(m, "digest", || "index entry without digest".into())?;
        let ann = m.get("annotations");
        let rname = ann
            .and_then(|a| a.get("io.containerd.image.name"))
            .or_else(|| ann.and_then(|a| a.get("org.opencontainers.image.ref.name")))
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or(inherited_ref.clone());
        if INDEX_TYPES.contains(&mt) {
            let sub = json(&read_verified(b, d, "index")?, "nested index")?;
            collect_index(b, &sub, default_name, rname, out, depth + 1)?;
            continue;
        }
        if !MANIFEST_TYPES.contains(&mt) {
            return Err(Error::invalid(format!(
                "unknown manifest media type {mt:?} for {d}"
            )));
        }
        if let Some(p) = m.get("platform") {
            let (arch, os) = (str_or_empty(p, "architecture"), str_or_empty(p, "os"));
            if depth > 0 && (arch != host_arch() || os != "linux" || picked_platform) {
                continue;
            }
            picked_platform = true;
        }
        let (config, layers) = read_manifest(b, d)?;
        out.push(ImageSource {
            config,
            tags: oci_tags(rname, default_name),
            layers,
            manifest: Digest::parse(d).ok(),
        });
    }
    Ok(())
}

/// The config and layers of the image manifest with digest `d`, media types checked.
fn read_manifest(b: &dyn Blobs, d: &str) -> Result<(Vec<u8>, Vec<LayerSource>)> {
    let man = json(&read_verified(b, d, "manifest")?, "manifest")?;
    let cfg = man
        .get("config")
        .ok_or_else(|| Error::invalid(format!("manifest {d} has no config")))?;
    let cmt = str_or_empty(cfg, "mediaType");
    if !CONFIG_TYPES.contains(&cmt) {
        return Err(Error::invalid(format!(
            "unknown config media type {cmt:?} in manifest {d}"
        )));
    }
    let cd = str_field(cfg, "digest", || "config without digest".into())?;
    let config = read_verified(b, cd, "config")?;
    let mut layers = Vec::new();
    for l in man
        .get("layers")
        .and_then(|l| l.as_array())
        .ok_or_else(|| Error::invalid(format!("manifest {d} has no layers")))?
    {
        let lmt = str_or_empty(l, "mediaType");
        if !LAYER_TYPES.contains(&lmt) {
            return Err(Error::invalid(format!(
                "unknown layer media type {lmt:?} in manifest {d}"
            )));
        }
        let (p, dg) = blob_path(str_field(l, "digest", || "layer without digest".into())?)?;
        layers.push(LayerSource {
            member: p,
            digest: Some(dg),
        });
    }
    Ok((config, layers))
}

/// The tags an OCI ref annotation gives: a full reference as it is (made familiar), a
/// bare tag under the archive's default name.
fn oci_tags(rname: Option<String>, default_name: &str) -> Vec<String> {
    match rname {
        None => vec![],
        Some(r) => {
            let last = r.rsplit('/').next().unwrap_or(&r);
            if r.contains('/') || last.contains(':') {
                vec![familiar(&r)]
            } else {
                vec![format!("{default_name}:{r}")]
            }
        }
    }
}

/// This machine's architecture in OCI spelling: the platform an index entry must match.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        a => a,
    }
}

/// A repository name from an archive's file name (`busybox.oci-archive.tar` -> `busybox`).
pub fn name_from_path(p: &Path) -> String {
    let mut n = p
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    for suf in [
        ".gz",
        ".zst",
        ".tgz",
        ".tar",
        ".oci-archive",
        ".oci",
        ".docker",
        "-archive",
    ] {
        if let Some(s) = n.strip_suffix(suf) {
            n = s.to_string();
        }
    }
    let n: String = n
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if n.is_empty() { "image".into() } else { n }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_members() {
        assert_eq!(normalize("abc/../x.tar").unwrap(), "x.tar");
        assert_eq!(normalize("./a//b").unwrap(), "a/b");
        assert!(normalize("../x").is_err());
    }

    #[test]
    fn names() {
        assert_eq!(
            name_from_path(Path::new("x/busybox.oci-archive.tar")),
            "busybox"
        );
        assert_eq!(
            name_from_path(Path::new("busybox-zstd.oci")),
            "busybox-zstd"
        );
    }
}
