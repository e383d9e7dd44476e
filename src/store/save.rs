//! Writing images out: docker-archive (manifest.json + `blobs/sha256/`, plus the OCI
//! index so OCI tools read it too, as docker 25+ writes it), oci-archive and OCI layout
//! directories. Layer tars are rebuilt from the tar-split record and the layer dir and
//! checked against their diffID before the output is renamed into place.

use super::images::{Image, Repositories};
use super::tarsplit::{self, Item};
use super::{Store, remove_tree};
use crate::digest::{Digest, HashingWriter};
use crate::sys;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    DockerArchive,
    OciArchive,
    OciDir,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, String> {
        match s {
            "docker-archive" | "docker" => Ok(Format::DockerArchive),
            "oci-archive" => Ok(Format::OciArchive),
            "oci-dir" | "oci" => Ok(Format::OciDir),
            o => Err(format!(
                "unknown save format {o:?} (docker-archive, oci-archive, oci-dir)"
            )),
        }
    }
}

/// Where output members go.
trait Sink {
    fn add(
        &mut self,
        name: &str,
        size: u64,
        body: &mut dyn FnMut(&mut dyn Write) -> Result<(), String>,
    ) -> Result<(), String>;
}

struct Counting<'a> {
    w: &'a mut dyn Write,
    n: u64,
}
impl Write for Counting<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.w.write(b)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

struct TarSink<W: Write> {
    w: W,
    dirs: BTreeSet<String>,
}

impl<W: Write> TarSink<W> {
    fn header(&mut self, name: &str, size: u64, dir: bool) -> Result<(), String> {
        let mut h = tar::Header::new_ustar();
        h.set_path(name)
            .map_err(|e| format!("bad member name {name}: {e}"))?;
        h.set_size(size);
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_mtime(0);
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_cksum();
        self.w
            .write_all(h.as_bytes())
            .map_err(|e| format!("write failed: {e}"))
    }
    fn finish(mut self) -> Result<W, String> {
        self.w
            .write_all(&[0u8; 1024])
            .map_err(|e| format!("write failed: {e}"))?;
        self.w.flush().map_err(|e| format!("write failed: {e}"))?;
        Ok(self.w)
    }
}

impl<W: Write> Sink for TarSink<W> {
    fn add(
        &mut self,
        name: &str,
        size: u64,
        body: &mut dyn FnMut(&mut dyn Write) -> Result<(), String>,
    ) -> Result<(), String> {
        let parts: Vec<&str> = name.split('/').collect();
        for i in 1..parts.len() {
            let d = format!("{}/", parts[..i].join("/"));
            if self.dirs.insert(d.clone()) {
                self.header(&d, 0, true)?;
            }
        }
        self.header(name, size, false)?;
        let mut c = Counting {
            w: &mut self.w,
            n: 0,
        };
        body(&mut c)?;
        if c.n != size {
            return Err(format!(
                "internal error: {name} wrote {} bytes, expected {size}",
                c.n
            ));
        }
        let pad = (512 - size % 512) % 512;
        self.w
            .write_all(&vec![0u8; pad as usize])
            .map_err(|e| format!("write failed: {e}"))
    }
}

struct DirSink {
    root: PathBuf,
}

impl Sink for DirSink {
    fn add(
        &mut self,
        name: &str,
        _size: u64,
        body: &mut dyn FnMut(&mut dyn Write) -> Result<(), String>,
    ) -> Result<(), String> {
        let p = self.root.join(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)
                .map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        }
        let f =
            std::fs::File::create(&p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
        let mut w = std::io::BufWriter::new(f);
        body(&mut w)?;
        w.flush()
            .map_err(|e| format!("cannot write {}: {e}", p.display()))
    }
}

fn record_path(store: &Store, chain: &Digest) -> PathBuf {
    store.layout.layer_meta(chain).join("tar-split.json.gz")
}

fn record(store: &Store, chain: &Digest) -> Result<Box<dyn BufRead>, String> {
    let p = record_path(store, chain);
    let f = std::fs::File::open(&p).map_err(|e| format!("cannot open {}: {e}", p.display()))?;
    Ok(Box::new(BufReader::new(flate2::read::GzDecoder::new(f))))
}

/// The size of a layer tar as its record describes it (this reads the whole record, so a
/// damaged one is found before any output is written).
pub fn layer_tar_size(store: &Store, chain: &Digest) -> Result<u64, String> {
    let ctx = |m: String| {
        format!(
            "layer {chain}: {}: {m}",
            record_path(store, chain).display()
        )
    };
    let mut n = 0;
    for line in record(store, chain)
        .map_err(|e| format!("layer {chain}: {e}"))?
        .lines()
    {
        let line = line.map_err(|e| ctx(format!("cannot read: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        n += match tarsplit::parse_line(&line).map_err(ctx)? {
            Item::Segment(b) => b.len() as u64,
            Item::File { size, .. } => size,
        };
    }
    Ok(n)
}

/// Open a layer file named by a tar-split record for reading, under the layer root and
/// without following a symlink anywhere on the way: every directory is opened `O_NOFOLLOW`
/// relative to the one above, and the last component must be a regular file. Names are
/// cleaned as extraction cleans them (`./etc/passwd` is `etc/passwd`, `..` is refused).
fn open_layer_file(root: BorrowedFd<'_>, name: &[u8]) -> std::io::Result<std::fs::File> {
    let rel = super::unpack::clean_path(name)
        .map_err(std::io::Error::other)?
        .ok_or_else(|| std::io::Error::other("the name is the layer root, which has no content"))?;
    let comps: Vec<&std::ffi::OsStr> = rel.iter().collect();
    let (last, dirs) = comps
        .split_last()
        .ok_or_else(|| std::io::Error::other("empty name"))?;
    let mut dir: Option<OwnedFd> = None;
    for c in dirs {
        let at = dir.as_ref().map(|d| d.as_fd()).unwrap_or(root);
        let next = sys::open_at(
            at,
            Path::new(c),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )
        .map_err(|e| {
            if sys::errno(&e) == libc::ELOOP || sys::errno(&e) == libc::ENOTDIR {
                std::io::Error::other(format!(
                    "{} is not a directory in the layer (a symlink is not followed)",
                    Path::new(c).display()
                ))
            } else {
                e
            }
        })?;
        dir = Some(next);
    }
    let at = dir.as_ref().map(|d| d.as_fd()).unwrap_or(root);
    // O_NONBLOCK: a fifo must not hang the save; it is refused below.
    let fd = sys::open_at(
        at,
        Path::new(last),
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        0,
    )
    .map_err(|e| {
        if sys::errno(&e) == libc::ELOOP {
            std::io::Error::other("it is a symlink in the layer dir, not a file")
        } else {
            e
        }
    })?;
    let st = sys::fstat(fd.as_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(std::io::Error::other(
            "it is not a regular file in the layer dir",
        ));
    }
    Ok(std::fs::File::from(fd))
}

/// Rebuild a layer tar into `w`, checking its digest against the diffID.
pub fn write_layer(store: &Store, chain: &Digest, w: &mut dyn Write) -> Result<(), String> {
    let l = store
        .layer(chain)?
        .ok_or_else(|| format!("layer {chain} is missing from the store"))?;
    let ctx = |m: String| format!("layer {} ({}): {m}", l.diff_id, l.diff_dir.display());
    let root = sys::open_dir(&l.diff_dir).map_err(|e| ctx(format!("cannot open: {e}")))?;
    let mut hw = HashingWriter::new(w);
    tarsplit::reassemble(
        record(store, chain)?,
        |name| Ok(Box::new(open_layer_file(root.as_fd(), name)?) as Box<dyn Read>),
        &mut hw,
    )
    .map_err(ctx)?;
    let (_, got, _) = hw.finish();
    if got != l.diff_id {
        return Err(ctx(format!(
            "the rebuilt tar has digest {got}, not its diffID; the layer dir was changed"
        )));
    }
    Ok(())
}

impl Store {
    /// The images `refs` name, each with the tags to write: the tag that was asked for,
    /// or every tag for an ID. Their layers must all be there.
    fn images_to_save(&self, refs: &[String]) -> Result<Vec<(Image, Vec<String>)>, String> {
        let repos = Repositories::load(&self.layout)?;
        let mut imgs = Vec::new();
        for r in refs {
            let id = self.resolve(r, &repos)?;
            let img = self.image(&id, &repos)?;
            let tags = match super::images::Ref::parse(r) {
                Ok(rf) if repos.get(&rf).as_ref() == Some(&id) => vec![rf.to_string()],
                _ => img.tags.iter().map(|t| t.to_string()).collect(),
            };
            self.layers_of(&img.diff_ids)?;
            imgs.push((img, tags));
        }
        Ok(imgs)
    }

    /// `image save`: `out` None writes a tar to stdout.
    pub fn save(&self, refs: &[String], out: Option<&Path>, fmt: Format) -> Result<(), String> {
        // Saving only reads the store; the lock keeps our own rm/prune away meanwhile. On a
        // data-root that dockerd made, take none: taking it empties ROOT/tmp, which there is
        // dockerd's temp dir (pulls, loads, builds in flight), and dockerd ignores it anyway.
        let _l = if self.layout.is_docker_root() {
            None
        } else {
            Some(self.lock()?)
        };
        let imgs = self.images_to_save(refs)?;
        match (fmt, out) {
            (Format::OciDir, None) => Err("oci-dir needs -o DIR".into()),
            (Format::OciDir, Some(dir)) => {
                if dir.exists()
                    && std::fs::read_dir(dir)
                        .map(|mut d| d.next().is_some())
                        .unwrap_or(true)
                {
                    return Err(format!(
                        "{} exists and is not an empty directory",
                        dir.display()
                    ));
                }
                let tmp = tmp_name(dir);
                let _ = remove_tree(&tmp);
                let mut s = DirSink { root: tmp.clone() };
                let r = self.write_all(&imgs, fmt, &mut s);
                if let Err(e) = r {
                    let _ = remove_tree(&tmp);
                    return Err(e);
                }
                if dir.exists() {
                    let _ = std::fs::remove_dir(dir);
                }
                std::fs::rename(&tmp, dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))
            }
            (_, Some(file)) => {
                let tmp = tmp_name(file);
                let f = std::fs::File::create(&tmp)
                    .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
                let mut s = TarSink {
                    w: std::io::BufWriter::new(f),
                    dirs: BTreeSet::new(),
                };
                let r = self
                    .write_all(&imgs, fmt, &mut s)
                    .and_then(|_| s.finish())
                    .and_then(|bw| {
                        bw.into_inner()
                            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?
                            .sync_all()
                            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))
                    });
                if let Err(e) = r {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
                std::fs::rename(&tmp, file)
                    .map_err(|e| format!("cannot create {}: {e}", file.display()))
            }
            (_, None) => {
                let stdout = std::io::stdout();
                let mut s = TarSink {
                    w: std::io::BufWriter::new(stdout.lock()),
                    dirs: BTreeSet::new(),
                };
                self.write_all(&imgs, fmt, &mut s)?;
                s.finish().map(|_| ())
            }
        }
    }

    fn write_all(
        &self,
        imgs: &[(Image, Vec<String>)],
        fmt: Format,
        s: &mut dyn Sink,
    ) -> Result<(), String> {
        let mut written: BTreeSet<String> = BTreeSet::new();
        let mut manifest = Vec::new();
        let mut index = Vec::new();
        let mut repositories = serde_json::Map::new();
        let mut blob = |s: &mut dyn Sink,
                        d: &Digest,
                        size: u64,
                        body: &mut dyn FnMut(&mut dyn Write) -> Result<(), String>|
         -> Result<String, String> {
            let name = format!("blobs/sha256/{}", d.hex());
            if written.insert(name.clone()) {
                s.add(&name, size, body)?;
            }
            Ok(name)
        };
        for (img, tags) in imgs {
            let cfg = self.config_bytes(&img.id)?;
            let cfg_name = blob(s, &img.id, cfg.len() as u64, &mut |w| {
                w.write_all(&cfg).map_err(|e| format!("write failed: {e}"))
            })?;
            let mut layer_names = Vec::new();
            let mut layer_descs = Vec::new();
            for (chain, diff) in img.chain_ids.iter().zip(&img.diff_ids) {
                let size = layer_tar_size(self, chain)?;
                let name = blob(s, diff, size, &mut |w| write_layer(self, chain, w))?;
                layer_names.push(name);
                layer_descs.push(serde_json::json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": diff.to_string(),
                    "size": size,
                }));
            }
            let man = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": img.id.to_string(),
                    "size": cfg.len(),
                },
                "layers": layer_descs,
            });
            let mb = serde_json::to_vec(&man).map_err(|e| e.to_string())?;
            let md = Digest::of(&mb);
            blob(s, &md, mb.len() as u64, &mut |w| {
                w.write_all(&mb).map_err(|e| format!("write failed: {e}"))
            })?;
            let desc = |ann: Option<&String>| {
                let mut d = serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": md.to_string(),
                    "size": mb.len(),
                });
                if let Some(t) = ann {
                    d["annotations"] = serde_json::json!({
                        "io.containerd.image.name": t,
                        "org.opencontainers.image.ref.name": t,
                    });
                }
                d
            };
            if tags.is_empty() {
                index.push(desc(None));
            }
            for t in tags {
                index.push(desc(Some(t)));
                if let Ok(r) = super::images::Ref::parse(t) {
                    let e = repositories
                        .entry(r.name.clone())
                        .or_insert_with(|| serde_json::json!({}));
                    if let Some(last) = img.diff_ids.last() {
                        e[&r.tag] = last.hex().into();
                    }
                }
            }
            manifest.push(serde_json::json!({
                "Config": cfg_name,
                "RepoTags": tags,
                "Layers": layer_names,
            }));
        }
        let put = |s: &mut dyn Sink, name: &str, v: &serde_json::Value| -> Result<(), String> {
            let b = serde_json::to_vec(v).map_err(|e| e.to_string())?;
            s.add(name, b.len() as u64, &mut |w| {
                w.write_all(&b).map_err(|e| format!("write failed: {e}"))
            })
        };
        put(
            s,
            "oci-layout",
            &serde_json::json!({"imageLayoutVersion": "1.0.0"}),
        )?;
        put(
            s,
            "index.json",
            &serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": index,
            }),
        )?;
        if fmt == Format::DockerArchive {
            put(s, "manifest.json", &serde_json::Value::Array(manifest))?;
            put(s, "repositories", &serde_json::Value::Object(repositories))?;
        }
        Ok(())
    }
}

fn tmp_name(p: &Path) -> PathBuf {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    p.with_file_name(format!(".{name}.layerfs-tmp{}", std::process::id()))
}
