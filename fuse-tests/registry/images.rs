//! Test images built in code and put into a registry with skopeo: layer tars (files, dirs, a
//! symlink, whiteouts, an opaque dir) compressed with gzip, zstd or not at all, a config with
//! its diff_ids, an OCI layout dir (one image or a multi-platform index), `skopeo copy` into
//! the registry; and the oracle: skopeo + umoci's rootfs of what the registry serves, and a
//! tree comparison of two rootfs.

use super::server::{Registry, require};
use crate::common::snap::{self, Snap, SnapOpts};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(b)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The 12 hex digits docker prints for a layer (`0123456789ab: Pull complete`).
pub fn short(digest: &str) -> &str {
    let h = digest.strip_prefix("sha256:").unwrap_or(digest);
    &h[..12]
}

/// A layer tar built entry by entry (mtime fixed, so equal input gives equal bytes).
pub struct Tar {
    b: tar::Builder<Vec<u8>>,
}

fn hdr(kind: tar::EntryType, mode: u32, owner: (u64, u64), size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(owner.0);
    h.set_gid(owner.1);
    h.set_mtime(1_700_000_000);
    h.set_size(size);
    h
}

impl Tar {
    pub fn new() -> Tar {
        Tar {
            b: tar::Builder::new(Vec::new()),
        }
    }
    pub fn dir(self, p: &str, mode: u32) -> Tar {
        self.dir_owned(p, mode, (0, 0))
    }
    pub fn dir_owned(mut self, p: &str, mode: u32, owner: (u64, u64)) -> Tar {
        let mut h = hdr(tar::EntryType::Directory, mode, owner, 0);
        self.b
            .append_data(&mut h, format!("{p}/"), std::io::empty())
            .expect("tar dir");
        self
    }
    pub fn file(self, p: &str, data: &[u8], mode: u32) -> Tar {
        self.file_owned(p, data, mode, (0, 0))
    }
    pub fn file_owned(mut self, p: &str, data: &[u8], mode: u32, owner: (u64, u64)) -> Tar {
        let mut h = hdr(tar::EntryType::Regular, mode, owner, data.len() as u64);
        self.b.append_data(&mut h, p, data).expect("tar file");
        self
    }
    pub fn symlink(mut self, p: &str, target: &str) -> Tar {
        let mut h = hdr(tar::EntryType::Symlink, 0o777, (0, 0), 0);
        self.b.append_link(&mut h, p, target).expect("tar symlink");
        self
    }
    /// `DIR/.wh.NAME`: NAME is deleted by this layer.
    pub fn whiteout(self, p: &str) -> Tar {
        let w = match p.rsplit_once('/') {
            Some((d, n)) => format!("{d}/.wh.{n}"),
            None => format!(".wh.{p}"),
        };
        self.file(&w, b"", 0o644)
    }
    /// `DIR/.wh..wh..opq`: what lower layers had in DIR is hidden.
    pub fn opaque(self, dir: &str) -> Tar {
        self.file(&format!("{dir}/.wh..wh..opq"), b"", 0o644)
    }
    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().expect("finish tar")
    }
}

/// Pseudo-random bytes (xorshift) so a layer does not compress away.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The base of most test images: every entry kind a registry image carries.
pub fn base_layer(tag: &str) -> Vec<u8> {
    Tar::new()
        .dir("bin", 0o755)
        .file("bin/busybox", &noise(1, 40_000), 0o755)
        .symlink("bin/sh", "busybox")
        .dir("etc", 0o755)
        .file(
            "etc/os-release",
            format!("ID=layerfs-test\nTAG={tag}\n").as_bytes(),
            0o644,
        )
        .file("etc/gone", b"whited out above\n", 0o600)
        .dir("var", 0o755)
        .dir("var/cache", 0o755)
        .file("var/cache/old-1", b"hidden by the opaque dir\n", 0o644)
        .file("var/cache/old-2", b"also hidden\n", 0o644)
        .dir_owned("home", 0o755, (0, 0))
        .dir_owned("home/user", 0o750, (1000, 1000))
        .file_owned("home/user/notes", b"owned by 1000\n", 0o640, (1000, 1000))
        .finish()
}

/// An upper layer: a whiteout, an opaque dir with new content, a changed file.
pub fn upper_layer(tag: &str) -> Vec<u8> {
    Tar::new()
        .dir("etc", 0o755)
        .whiteout("etc/gone")
        .file(
            "etc/motd",
            format!("upper layer of {tag}\n").as_bytes(),
            0o644,
        )
        .dir("var", 0o755)
        .dir("var/cache", 0o700)
        .opaque("var/cache")
        .file("var/cache/new", b"only this after the opaque dir\n", 0o644)
        .file("bin/busybox", &noise(2, 30_000), 0o4755)
        .finish()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comp {
    Plain,
    Gzip,
    Zstd,
}

impl Comp {
    fn media_type(self) -> &'static str {
        match self {
            Comp::Plain => "application/vnd.oci.image.layer.v1.tar",
            Comp::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Comp::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
    pub fn compress(self, tar: &[u8]) -> Vec<u8> {
        match self {
            Comp::Plain => tar.to_vec(),
            Comp::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(tar).expect("gzip");
                e.finish().expect("gzip")
            }
            Comp::Zstd => zstd::encode_all(tar, 3).expect("zstd"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/amd64`, `linux/arm/v7`.
    pub fn parse(s: &str) -> Platform {
        let p: Vec<&str> = s.split('/').collect();
        Platform {
            os: p[0].into(),
            arch: p[1].into(),
            variant: p.get(2).map(|v| v.to_string()),
        }
    }
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        Platform::parse(&format!("linux/{arch}"))
    }
    fn json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"os": self.os, "architecture": self.arch});
        if let Some(var) = &self.variant {
            v["variant"] = var.clone().into();
        }
        v
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Content-addressed bytes with their media type.
#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: String,
    pub data: Vec<u8>,
    pub digest: String,
}

impl Blob {
    pub fn new(media_type: &str, data: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.into(),
            digest: sha256(&data),
            data,
        }
    }
    fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({"mediaType": self.media_type, "digest": self.digest, "size": self.data.len()})
    }
}

/// One OCI image: layer blobs (bottom first), their diffIDs, the config and the manifest.
#[derive(Clone, Debug)]
pub struct Image {
    pub platform: Platform,
    pub layers: Vec<Blob>,
    pub diff_ids: Vec<String>,
    pub config: Blob,
    pub manifest: Blob,
}

impl Image {
    /// Layers are uncompressed tars (bottom first); `label` makes the config unique.
    pub fn new(tars: &[Vec<u8>], comp: Comp, platform: Platform, label: &str) -> Image {
        let layers: Vec<Blob> = tars
            .iter()
            .map(|t| Blob::new(comp.media_type(), comp.compress(t)))
            .collect();
        let diff_ids: Vec<String> = tars.iter().map(|t| sha256(t)).collect();
        Image::assemble(layers, diff_ids, platform, label)
    }
    /// Any layers and diff_ids (the fault tests put in a wrong diffID on purpose).
    pub fn assemble(
        layers: Vec<Blob>,
        diff_ids: Vec<String>,
        platform: Platform,
        label: &str,
    ) -> Image {
        let mut cfg = platform.json();
        cfg["created"] = "2024-01-02T03:04:05Z".into();
        cfg["config"] = serde_json::json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": {"layerfs.test": label},
        });
        cfg["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": diff_ids});
        cfg["history"] = layers
            .iter()
            .enumerate()
            .map(|(i, _)| serde_json::json!({"created": "2024-01-02T03:04:05Z", "created_by": format!("layer {i} of {label}")}))
            .collect();
        let config = Blob::new(
            "application/vnd.oci.image.config.v1+json",
            cfg.to_string().into_bytes(),
        );
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config.descriptor(),
            "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        });
        let manifest = Blob::new(
            "application/vnd.oci.image.manifest.v1+json",
            manifest.to_string().into_bytes(),
        );
        Image {
            platform,
            layers,
            diff_ids,
            config,
            manifest,
        }
    }
    /// The usual two-layer image (base + upper) for the host platform.
    pub fn sample(label: &str, comp: Comp) -> Image {
        Image::new(
            &[base_layer(label), upper_layer(label)],
            comp,
            Platform::host(),
            label,
        )
    }
    /// The image ID docker and layerfs give it: the config digest.
    pub fn id(&self) -> &str {
        &self.config.digest
    }
}

/// An OCI image index over several images (one per platform).
pub fn index(images: &[&Image]) -> Blob {
    let manifests: Vec<serde_json::Value> = images
        .iter()
        .map(|i| {
            let mut d = i.manifest.descriptor();
            d["platform"] = i.platform.json();
            d
        })
        .collect();
    let v = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    Blob::new(
        "application/vnd.oci.image.index.v1+json",
        v.to_string().into_bytes(),
    )
}

/// Three platforms with different content (linux/amd64, linux/arm64, linux/arm/v7).
pub fn multi_platform(label: &str) -> Vec<Image> {
    ["linux/amd64", "linux/arm64", "linux/arm/v7"]
        .iter()
        .map(|p| {
            let l = format!("{label}-{p}");
            Image::new(
                &[base_layer(&l), upper_layer(&l)],
                Comp::Gzip,
                Platform::parse(p),
                &l,
            )
        })
        .collect()
}

/// Write an OCI layout at `dir` whose `tag` names `top` (a manifest or an index).
pub fn write_layout(dir: &Path, tag: &str, top: &Blob, blobs: &[&Blob]) {
    let b = dir.join("blobs/sha256");
    std::fs::create_dir_all(&b).expect("mkdir blobs");
    for blob in blobs.iter().chain([&top]) {
        let hex = blob.digest.strip_prefix("sha256:").expect("sha256");
        std::fs::write(b.join(hex), &blob.data).expect("write blob");
    }
    let mut d = top.descriptor();
    d["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
    let idx = serde_json::json!({"schemaVersion": 2, "manifests": [d]});
    std::fs::write(dir.join("index.json"), idx.to_string()).expect("write index.json");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("write oci-layout");
}

/// Every blob of an image (layers, config, manifest).
fn image_blobs(i: &Image) -> Vec<&Blob> {
    let mut v: Vec<&Blob> = i.layers.iter().collect();
    v.push(&i.config);
    v.push(&i.manifest);
    v
}

/// The OCI layout dir of one image, under `parent`.
pub fn layout_of(parent: &Path, img: &Image) -> PathBuf {
    let dir = parent.join(format!("oci-{}", short(&img.manifest.digest)));
    let blobs = image_blobs(img);
    write_layout(&dir, "t", &img.manifest, &blobs[..blobs.len() - 1]);
    dir
}

/// The manifest format skopeo writes into the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OCI as built, byte for byte (`--preserve-digests`): the manifest digest is ours.
    Oci,
    /// Docker schema2 (skopeo converts the manifest; config and layers stay the same).
    V2s2,
}

/// skopeo's answer to a push: the manifest (or index) digest the registry now has.
pub struct Pushed {
    pub digest: String,
}

/// Credentials for skopeo against `reg`, when it needs them.
pub type Creds<'a> = Option<(&'a str, &'a str)>;

pub fn skopeo(args: &[String]) -> super::cli::Out {
    require("skopeo");
    let o = Command::new("skopeo")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run skopeo");
    super::cli::out(o)
}

/// `skopeo copy oci:DIR:t docker://HOST/NAME` (NAME is `repo:tag`); `all` for an index.
pub fn push_dir(
    reg: &Registry,
    dir: &Path,
    name: &str,
    f: Format,
    all: bool,
    creds: Creds,
) -> Result<Pushed, String> {
    let df = dir.with_extension("digest");
    let mut a: Vec<String> = vec![
        "copy".into(),
        "--quiet".into(),
        "--dest-tls-verify=false".into(),
    ];
    a.push(format!("--digestfile={}", df.display()));
    match f {
        Format::Oci => a.extend(["--format=oci".into(), "--preserve-digests".into()]),
        Format::V2s2 => a.push("--format=v2s2".into()),
    }
    if all {
        a.push("--all".into());
    }
    if let Some((u, p)) = creds {
        a.push(format!("--dest-creds={u}:{p}"));
    }
    a.push(format!("oci:{}:t", dir.display()));
    a.push(format!("docker://{}/{name}", reg.host()));
    let o = skopeo(&a);
    if o.code != 0 {
        return Err(format!(
            "skopeo copy to {}/{name}: {}",
            reg.host(),
            o.stderr
        ));
    }
    let digest = std::fs::read_to_string(&df).map_err(|e| format!("digest file: {e}"))?;
    Ok(Pushed {
        digest: digest.trim().to_string(),
    })
}

/// Push one image as `name` (`repo:tag`), panicking on failure.
pub fn push(reg: &Registry, tmp: &Path, img: &Image, name: &str, f: Format) -> Pushed {
    let dir = layout_of(tmp, img);
    let p = push_dir(reg, &dir, name, f, false, None).unwrap_or_else(|e| panic!("{e}"));
    if f == Format::Oci {
        assert_eq!(p.digest, img.manifest.digest, "skopeo kept our manifest");
    }
    p
}

/// Push a multi-platform index as `name` with all its images; the index digest.
pub fn push_index(reg: &Registry, tmp: &Path, imgs: &[Image], name: &str) -> Pushed {
    let idx = index(&imgs.iter().collect::<Vec<_>>());
    let dir = tmp.join(format!("oci-index-{}", short(&idx.digest)));
    let blobs: Vec<&Blob> = imgs.iter().flat_map(image_blobs).collect();
    write_layout(&dir, "t", &idx, &blobs);
    let p = push_dir(reg, &dir, name, Format::Oci, true, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.digest, idx.digest, "skopeo kept our index");
    p
}

/// What skopeo + umoci unpack from `HOST/NAME` (optionally for one platform): the oracle.
pub fn reference_rootfs(
    reg_host: &str,
    name: &str,
    platform: Option<&Platform>,
    creds: Creds,
    out: &Path,
) -> PathBuf {
    require("umoci");
    std::fs::create_dir_all(out).expect("mkdir for the reference");
    let layout = out.join("ref-oci");
    // umoci 0.4 reads no zstd: skopeo recompresses such layers with gzip on the way.
    let mut a: Vec<String> = vec![
        "copy".into(),
        "--quiet".into(),
        "--src-tls-verify=false".into(),
        "--dest-compress-format=gzip".into(),
    ];
    if let Some(p) = platform {
        a.push(format!("--override-os={}", p.os));
        a.push(format!("--override-arch={}", p.arch));
        if let Some(v) = &p.variant {
            a.push(format!("--override-variant={v}"));
        }
    }
    if let Some((u, pw)) = creds {
        a.push(format!("--src-creds={u}:{pw}"));
    }
    a.push(format!("docker://{reg_host}/{name}"));
    a.push(format!("oci:{}:ref", layout.display()));
    let o = skopeo(&a);
    assert_eq!(
        o.code, 0,
        "skopeo copy {reg_host}/{name} for the reference: {}",
        o.stderr
    );
    let rootfs = out.join("ref-rootfs");
    let mut c = Command::new("umoci");
    c.args(["raw", "unpack"]);
    if !crate::common::is_root() {
        c.arg("--rootless");
    }
    let o = c
        .arg("--image")
        .arg(format!("{}:ref", layout.display()))
        .arg(&rootfs)
        .stdin(Stdio::null())
        .output()
        .expect("run umoci");
    assert!(
        o.status.success(),
        "umoci raw unpack: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    rootfs
}

/// A rootfs as a comparable snapshot: type, mode, owner (as root), size, content hash, link
/// target, file mtimes; directory link counts left out (they differ between tools).
pub fn tree(root: &Path) -> Snap {
    let o = SnapOpts {
        dir_nlink: false,
        mtime: true,
        owner: crate::common::is_root(),
    };
    let mut s = snap::merged(root, o);
    s.remove(".");
    s
}

#[track_caller]
pub fn assert_same_tree(what: &str, got: &Path, want: &Path) {
    snap::assert_same(what, &tree(got), &tree(want), "layerfs", "skopeo+umoci");
}
