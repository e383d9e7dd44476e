//! Images built in code: layer tars with every kind of entry, configs, and the three
//! archive formats (docker-archive, OCI layout dir, oci-archive).

use super::util::sha;
use std::io::Write;
use std::path::Path;

pub struct Layer {
    b: tar::Builder<Vec<u8>>,
}

fn hdr(kind: tar::EntryType, mode: u32, uid: u64, gid: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mtime(1_700_000_000);
    h.set_size(0);
    h
}

impl Layer {
    pub fn new() -> Layer {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }
    pub fn dir(mut self, p: &str, mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = hdr(tar::EntryType::Directory, mode, uid, gid);
        self.b
            .append_data(&mut h, format!("{p}/"), std::io::empty())
            .expect("dir");
        self
    }
    pub fn file_owned(mut self, p: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = hdr(tar::EntryType::Regular, mode, uid, gid);
        h.set_size(data.len() as u64);
        self.b.append_data(&mut h, p, data).expect("file");
        self
    }
    pub fn file(self, p: &str, data: &[u8], mode: u32) -> Self {
        self.file_owned(p, data, mode, 0, 0)
    }
    pub fn symlink(self, p: &str, target: &str) -> Self {
        self.symlink_owned(p, target, 0, 0)
    }
    pub fn symlink_owned(mut self, p: &str, target: &str, uid: u64, gid: u64) -> Self {
        let mut h = hdr(tar::EntryType::Symlink, 0o777, uid, gid);
        self.b.append_link(&mut h, p, target).expect("symlink");
        self
    }
    pub fn hardlink(mut self, p: &str, target: &str) -> Self {
        let mut h = hdr(tar::EntryType::Link, 0o644, 0, 0);
        self.b.append_link(&mut h, p, target).expect("hardlink");
        self
    }
    /// Delete `p` (a `.wh.` entry next to it).
    pub fn whiteout(self, p: &str) -> Self {
        let (d, n) = p.rsplit_once('/').unwrap_or(("", p));
        let w = if d.is_empty() {
            format!(".wh.{n}")
        } else {
            format!("{d}/.wh.{n}")
        };
        self.file(&w, b"", 0o644)
    }
    pub fn opaque(self, dir: &str) -> Self {
        self.file(&format!("{dir}/.wh..wh..opq"), b"", 0o644)
    }
    pub fn xattr_file(self, p: &str, data: &[u8], name: &str, value: &[u8]) -> Self {
        self.xattr_file_owned(p, data, 0o644, (0, 0), name, value)
    }
    /// A file with one PAX `SCHILY.xattr.NAME` record (binary values allowed).
    pub fn xattr_file_owned(
        mut self,
        p: &str,
        data: &[u8],
        mode: u32,
        (uid, gid): (u64, u64),
        name: &str,
        value: &[u8],
    ) -> Self {
        let key = format!("SCHILY.xattr.{name}");
        self.b
            .append_pax_extensions([(key.as_str(), value)])
            .expect("pax");
        self.file_owned(p, data, mode, uid, gid)
    }
    pub fn fifo(self, p: &str) -> Self {
        self.fifo_owned(p, 0o640, 0, 0)
    }
    pub fn fifo_owned(mut self, p: &str, mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = hdr(tar::EntryType::Fifo, mode, uid, gid);
        self.b
            .append_data(&mut h, p, std::io::empty())
            .expect("fifo");
        self
    }
    pub fn chardev(mut self, p: &str, maj: u32, min: u32) -> Self {
        let mut h = hdr(tar::EntryType::Char, 0o666, 0, 0);
        h.set_device_major(maj).expect("major");
        h.set_device_minor(min).expect("minor");
        self.b
            .append_data(&mut h, p, std::io::empty())
            .expect("chardev");
        self
    }
    /// A raw header with a path the tar crate would refuse (`..`, absolute).
    pub fn raw(mut self, kind: tar::EntryType, p: &str, link: &str, data: &[u8]) -> Self {
        let mut h = hdr(kind, 0o644, 0, 0);
        {
            let bytes = h.as_old_mut();
            bytes.name = [0; 100];
            bytes.name[..p.len()].copy_from_slice(p.as_bytes());
            bytes.linkname = [0; 100];
            bytes.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.b.append(&h, data).expect("raw");
        self
    }
    pub fn tar(self) -> Vec<u8> {
        self.b.into_inner().expect("tar")
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Comp {
    None,
    Gzip,
    Zstd,
}

pub fn compress(data: &[u8], c: Comp) -> Vec<u8> {
    match c {
        Comp::None => data.to_vec(),
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).expect("gzip");
            e.finish().expect("gzip")
        }
        Comp::Zstd => zstd::encode_all(data, 3).expect("zstd"),
    }
}

/// An image: uncompressed layer tars, its config bytes and tags.
#[derive(Clone)]
pub struct Img {
    pub layers: Vec<Vec<u8>>,
    pub config: Vec<u8>,
    pub tags: Vec<String>,
}

impl Img {
    pub fn new(layers: Vec<Vec<u8>>, tags: &[&str], label: &str) -> Img {
        let diffs: Vec<String> = layers
            .iter()
            .map(|l| format!("sha256:{}", sha(l)))
            .collect();
        let mut history = vec![
            serde_json::json!({"created": "2024-01-02T03:04:05Z", "created_by": "/bin/sh -c #(nop)  LABEL x", "empty_layer": true}),
        ];
        for (i, _) in layers.iter().enumerate() {
            history.push(serde_json::json!({"created": "2024-01-02T03:04:05Z", "created_by": format!("/bin/sh -c build step {i} with a rather long command line that gets cut")}));
        }
        let cfg = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-02T03:04:05Z",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "Labels": {"x": label}},
            "rootfs": {"type": "layers", "diff_ids": diffs},
            "history": history,
        });
        Img {
            layers,
            config: serde_json::to_vec_pretty(&cfg).expect("json"),
            tags: tags.iter().map(|s| s.to_string()).collect(),
        }
    }
    pub fn id(&self) -> String {
        format!("sha256:{}", sha(&self.config))
    }
    pub fn diff_ids(&self) -> Vec<String> {
        self.layers
            .iter()
            .map(|l| format!("sha256:{}", sha(l)))
            .collect()
    }
    pub fn chain_ids(&self) -> Vec<String> {
        chain_ids(&self.diff_ids())
    }
}

/// chainIDs computed here independently of the store code.
pub fn chain_ids(diffs: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in diffs {
        let c = match out.last() {
            None => d.clone(),
            Some(p) => format!("sha256:{}", sha(format!("{p} {d}").as_bytes())),
        };
        out.push(c);
    }
    out
}

fn tar_of(files: &[(String, Vec<u8>, Option<String>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data, link) in files {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_mtime(0);
        match link {
            Some(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, name, t).expect("link");
            }
            None => {
                h.set_size(data.len() as u64);
                b.append_data(&mut h, name, &data[..]).expect("file");
            }
        }
    }
    b.into_inner().expect("tar")
}

/// A docker-archive as `docker save` (before 25) writes it: `<diffid>.tar` files, per-layer
/// `<n>/layer.tar` symlinks to them, `<id>.json` configs, manifest.json, repositories.
pub fn docker_archive(imgs: &[&Img]) -> Vec<u8> {
    let mut files: Vec<(String, Vec<u8>, Option<String>)> = Vec::new();
    let mut manifest = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (k, img) in imgs.iter().enumerate() {
        let mut layer_paths = Vec::new();
        for (i, l) in img.layers.iter().enumerate() {
            let h = sha(l);
            if seen.insert(h.clone()) {
                files.push((format!("{h}.tar"), l.clone(), None));
            }
            let dir = sha(format!("{k}-{i}-{h}").as_bytes());
            files.push((
                format!("{dir}/layer.tar"),
                vec![],
                Some(format!("../{h}.tar")),
            ));
            files.push((format!("{dir}/VERSION"), b"1.0".to_vec(), None));
            layer_paths.push(format!("{dir}/layer.tar"));
        }
        let cfg_name = format!("{}.json", sha(&img.config));
        files.push((cfg_name.clone(), img.config.clone(), None));
        manifest.push(
            serde_json::json!({"Config": cfg_name, "RepoTags": img.tags, "Layers": layer_paths}),
        );
    }
    files.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).expect("json"),
        None,
    ));
    tar_of(&files)
}

/// The files of an OCI image layout holding `imgs` with layers compressed as `c`.
/// `ref_names` puts `org.opencontainers.image.ref.name` = the first tag on each manifest.
pub fn oci_files(imgs: &[&Img], c: Comp, ref_names: bool) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![(
        "oci-layout".to_string(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    )];
    let mut manifests = Vec::new();
    let lmt = match c {
        Comp::None => "application/vnd.oci.image.layer.v1.tar",
        Comp::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Comp::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    };
    for img in imgs {
        let mut layers = Vec::new();
        for l in &img.layers {
            let blob = compress(l, c);
            let d = sha(&blob);
            layers.push(serde_json::json!({"mediaType": lmt, "digest": format!("sha256:{d}"), "size": blob.len()}));
            files.push((format!("blobs/sha256/{d}"), blob));
        }
        let cd = sha(&img.config);
        files.push((format!("blobs/sha256/{cd}"), img.config.clone()));
        let man = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{cd}"), "size": img.config.len()},
            "layers": layers,
        }))
        .expect("json");
        let md = sha(&man);
        files.push((format!("blobs/sha256/{md}"), man.clone()));
        let mut desc = serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{md}"), "size": man.len()});
        if ref_names && let Some(t) = img.tags.first() {
            desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": t});
        }
        manifests.push(desc);
    }
    files.push((
        "index.json".into(),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": manifests}))
            .expect("json"),
    ));
    files
}

pub fn oci_dir(dir: &Path, imgs: &[&Img], c: Comp) {
    for (name, data) in oci_files(imgs, c, true) {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, data).expect("write");
    }
}

pub fn oci_archive(imgs: &[&Img], c: Comp) -> Vec<u8> {
    let files: Vec<_> = oci_files(imgs, c, true)
        .into_iter()
        .map(|(n, d)| (n, d, None))
        .collect();
    tar_of(&files)
}

pub const LONG: &str = "deep/ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd/f";

/// Base layer: every entry type, odd modes and owners, xattrs, hard links, implicit parents.
pub fn base_layer() -> Vec<u8> {
    Layer::new()
        .dir("bin", 0o755, 0, 0)
        .dir("etc", 0o755, 0, 0)
        .dir("tmp", 0o1777, 0, 0)
        .dir("root", 0o700, 0, 0)
        .dir("home", 0o755, 0, 0)
        .dir("home/user", 0o750, 1000, 1000)
        .dir("opt", 0o755, 0, 0)
        .dir("dev", 0o755, 0, 0)
        .file("bin/sh", b"#!/bin/true\n", 0o755)
        .hardlink("bin/sh2", "bin/sh")
        .symlink("bin/ls", "sh")
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644)
        .file("etc/motd", b"hello\n", 0o644)
        .file("etc/hostname", b"one\n", 0o644)
        .file_owned("etc/odd", b"odd\n", 0o604, 1234, 4321)
        .file("usr/bin/suid", b"suid\n", 0o4755)
        .file("opt/old1", b"1", 0o644)
        .file("opt/old2", b"2", 0o644)
        .xattr_file("etc/attr", b"x", "user.test", b"hello")
        .fifo("dev/fifo")
        .chardev("dev/null", 1, 3)
        .tar()
}

/// Second layer: a whiteout, an opaque dir, a changed file, a long name.
pub fn top_layer() -> Vec<u8> {
    Layer::new()
        .whiteout("etc/motd")
        .dir("opt", 0o755, 0, 0)
        .opaque("opt")
        .file("opt/new", b"new\n", 0o644)
        .file("etc/hostname", b"two\n", 0o644)
        .file_owned("home/user/notes", b"notes\n", 0o600, 1000, 1000)
        .file(LONG, b"long\n", 0o644)
        .tar()
}

pub fn other_layer() -> Vec<u8> {
    Layer::new().file("other", b"other\n", 0o644).tar()
}

/// `sample:1` + `sample:latest` (base + top) and `other:1` (base + other): shared base.
pub fn sample() -> (Img, Img) {
    let a = Img::new(
        vec![base_layer(), top_layer()],
        &["sample:1", "sample:latest"],
        "a",
    );
    let b = Img::new(vec![base_layer(), other_layer()], &["other:1"], "b");
    (a, b)
}
