//! Writing images out: docker-archive (manifest.json + `blobs/sha256/`, plus the OCI
//! index so OCI tools read it too, as docker 25+ writes it), oci-archive and OCI layout
//! directories. Layer tars are rebuilt from the tar-split record and the layer dir and
//! checked against their diffID before the output is renamed into place.

use super::error::{Context, Error, Result, ResultExt};
use super::images::{Image, Repositories};
use super::reference::Ref;
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
    pub fn parse(s: &str) -> Result<Format> {
        match s {
            "docker-archive" | "docker" => Ok(Format::DockerArchive),
            "oci-archive" => Ok(Format::OciArchive),
            "oci-dir" | "oci" => Ok(Format::OciDir),
            o => Err(Error::invalid(format!(
                "unknown save format {o:?} (docker-archive, oci-archive, oci-dir)"
            ))),
        }
    }
}

/// Where `image save` writes: a file or directory (made under a temporary name, renamed
/// into place when complete), or a stream the caller owns (a tar; standard output).
pub enum SaveTo<'a> {
    Path(&'a Path),
    Stream(&'a mut dyn Write),
}

/// Writes one member's content.
type Body<'a> = dyn FnMut(&mut dyn Write) -> Result<()> + 'a;

/// Where output members go.
trait Sink {
    fn add(&mut self, name: &str, size: u64, body: &mut Body<'_>) -> Result<()>;
}

/// Counts what a member's body writes, and keeps the output's own write error so it is
/// reported against the output (not as whatever the body was doing).
struct Counting<'a> {
    w: &'a mut dyn Write,
    n: u64,
    err: Option<std::io::Error>,
}
impl Write for Counting<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self.w.write(b) {
            Ok(n) => {
                self.n += n as u64;
                Ok(n)
            }
            Err(e) => {
                let copy = match e.raw_os_error() {
                    Some(c) => std::io::Error::from_raw_os_error(c),
                    None => std::io::Error::new(e.kind(), e.to_string()),
                };
                self.err = Some(e);
                Err(copy)
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

struct TarSink<W: Write> {
    w: W,
    /// What write errors name: the file being written, or "the output".
    out: PathBuf,
    dirs: BTreeSet<String>,
}

impl<W: Write> TarSink<W> {
    fn new(w: W, out: impl Into<PathBuf>) -> Self {
        TarSink {
            w,
            out: out.into(),
            dirs: BTreeSet::new(),
        }
    }
    fn header(&mut self, name: &str, size: u64, dir: bool) -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_path(name)
            .map_err(|e| Error::invalid(format!("bad member name {name}: {e}")))?;
        h.set_size(size);
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_mtime(0);
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_cksum();
        self.w.write_all(h.as_bytes()).io("writing", &self.out)
    }
    fn finish(mut self) -> Result<W> {
        self.w.write_all(&[0u8; 1024]).io("writing", &self.out)?;
        self.w.flush().io("writing", &self.out)?;
        Ok(self.w)
    }
}

impl<W: Write> Sink for TarSink<W> {
    fn add(&mut self, name: &str, size: u64, body: &mut Body<'_>) -> Result<()> {
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
            err: None,
        };
        let r = body(&mut c);
        if let Some(e) = c.err.take() {
            return Err(Error::io("writing", &self.out, e));
        }
        r?;
        if c.n != size {
            return Err(Error::invalid(format!(
                "internal error: {name} wrote {} bytes, expected {size}",
                c.n
            )));
        }
        let pad = (512 - size % 512) % 512;
        self.w
            .write_all(&vec![0u8; pad as usize])
            .io("writing", &self.out)
    }
}

struct DirSink {
    root: PathBuf,
}

impl Sink for DirSink {
    fn add(&mut self, name: &str, _size: u64, body: &mut Body<'_>) -> Result<()> {
        let p = self.root.join(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).io("creating", d)?;
        }
        let f = std::fs::File::create(&p).io("creating", &p)?;
        let mut w = std::io::BufWriter::new(f);
        let mut c = Counting {
            w: &mut w,
            n: 0,
            err: None,
        };
        let r = body(&mut c);
        if let Some(e) = c.err.take() {
            return Err(Error::io("writing", &p, e));
        }
        r?;
        w.flush().io("writing", &p)
    }
}

fn record_path(store: &Store, chain: &Digest) -> PathBuf {
    store.layout.layer_meta(chain).join("tar-split.json.gz")
}

fn record(store: &Store, chain: &Digest) -> Result<Box<dyn BufRead>> {
    let p = record_path(store, chain);
    let f = std::fs::File::open(&p).io("opening the tar-split record", &p)?;
    Ok(Box::new(BufReader::new(flate2::read::GzDecoder::new(f))))
}

/// The size of a layer tar as its record describes it (this reads the whole record, so a
/// damaged one is found before any output is written).
pub fn layer_tar_size(store: &Store, chain: &Digest) -> Result<u64> {
    let p = record_path(store, chain);
    let size = || -> Result<u64> {
        let mut n = 0;
        for line in record(store, chain)?.lines() {
            let line = line.io("reading the tar-split record", &p)?;
            if line.trim().is_empty() {
                continue;
            }
            n += match tarsplit::parse_line(&line).context(|| p.display().to_string())? {
                Item::Segment(b) => b.len() as u64,
                Item::File { size, .. } => size,
            };
        }
        Ok(n)
    };
    size().context(|| format!("layer {chain}"))
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
pub fn write_layer(store: &Store, chain: &Digest, w: &mut dyn Write) -> Result<()> {
    let l = store
        .layer(chain)?
        .ok_or_else(|| Error::not_found("layer", chain.to_string()))?;
    let rebuild = || -> Result<()> {
        let root = sys::open_dir(&l.diff_dir).io("opening", &l.diff_dir)?;
        let mut hw = HashingWriter::new(w);
        tarsplit::reassemble(
            record(store, chain)?,
            |name| Ok(Box::new(open_layer_file(root.as_fd(), name)?) as Box<dyn Read>),
            &mut hw,
        )?;
        let (_, got, _) = hw.finish();
        if got != l.diff_id {
            return Err(Error::invalid(format!(
                "the rebuilt tar has digest {got}, not its diffID; the layer dir was changed"
            )));
        }
        Ok(())
    };
    rebuild().context(|| format!("layer {} ({})", l.diff_id, l.diff_dir.display()))
}

impl Store {
    /// The images `refs` name, each with the tags to write: the tag that was asked for,
    /// or every tag for an ID. Their layers must all be there.
    fn images_to_save(&self, refs: &[String]) -> Result<Vec<(Image, Vec<String>)>> {
        let repos = Repositories::load(&self.layout)?;
        let mut imgs = Vec::new();
        for r in refs {
            let id = self.resolve(r, &repos)?;
            let img = self.image(&id, &repos)?;
            let tags = match Ref::parse(r) {
                Ok(rf) if repos.get(&rf).as_ref() == Some(&id) => vec![rf.to_string()],
                _ => img.tags.iter().map(|t| t.to_string()).collect(),
            };
            self.layers_of(&img.diff_ids)?;
            imgs.push((img, tags));
        }
        Ok(imgs)
    }

    /// `image save`.
    pub fn save(&self, refs: &[String], to: SaveTo<'_>, fmt: Format) -> Result<()> {
        self.save_locked(refs, to, fmt)
            .context(|| format!("save {}", refs.join(" ")))
    }

    fn save_locked(&self, refs: &[String], to: SaveTo<'_>, fmt: Format) -> Result<()> {
        // Saving only reads the store; the lock keeps our own rm/prune away meanwhile. On a
        // data-root that dockerd made, take none: taking it empties ROOT/tmp, which there is
        // dockerd's temp dir (pulls, loads, builds in flight), and dockerd ignores it anyway.
        let _l = if self.layout.is_docker_root() {
            None
        } else {
            Some(self.lock()?)
        };
        let imgs = self.images_to_save(refs)?;
        match (fmt, to) {
            (Format::OciDir, SaveTo::Stream(_)) => Err(Error::invalid("oci-dir needs -o DIR")),
            (Format::OciDir, SaveTo::Path(dir)) => self.save_dir(&imgs, dir),
            (_, SaveTo::Path(file)) => self.save_file(&imgs, fmt, file),
            (_, SaveTo::Stream(w)) => {
                let mut s = TarSink::new(std::io::BufWriter::new(w), "the output");
                self.write_all(&imgs, fmt, &mut s)?;
                s.finish().map(drop)
            }
        }
    }

    /// An OCI layout directory at `dir` (which must be absent or empty).
    fn save_dir(&self, imgs: &[(Image, Vec<String>)], dir: &Path) -> Result<()> {
        let empty = |d: &Path| Ok(std::fs::read_dir(d).io("reading", d)?.next().is_none());
        match std::fs::metadata(dir).io_absent("reading", dir)? {
            None => {}
            Some(m) if m.is_dir() && empty(dir)? => {}
            Some(_) => {
                return Err(Error::invalid(format!(
                    "{} exists and is not an empty directory",
                    dir.display()
                )));
            }
        }
        let tmp = tmp_name(dir);
        // A leftover of an earlier run that was killed: not ours to keep.
        let _ = remove_tree(&tmp);
        let mut s = DirSink { root: tmp.clone() };
        if let Err(e) = self.write_all(imgs, Format::OciDir, &mut s) {
            // Cleanup after the failure, which is the error reported.
            let _ = remove_tree(&tmp);
            return Err(e);
        }
        std::fs::remove_dir(dir).io_absent("replacing", dir)?;
        std::fs::rename(&tmp, dir).io("creating", dir)
    }

    /// A tar at `file`, written to a temporary name and renamed over it when complete.
    fn save_file(&self, imgs: &[(Image, Vec<String>)], fmt: Format, file: &Path) -> Result<()> {
        let tmp = tmp_name(file);
        let f = std::fs::File::create(&tmp).io("creating", &tmp)?;
        let mut s = TarSink::new(std::io::BufWriter::new(f), &tmp);
        let r = self
            .write_all(imgs, fmt, &mut s)
            .and_then(|_| s.finish())
            .and_then(|bw| {
                bw.into_inner()
                    .map_err(|e| Error::io("writing", &tmp, e.into_error()))?
                    .sync_all()
                    .io("writing", &tmp)
            });
        if let Err(e) = r {
            // Cleanup after the failure, which is the error reported.
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, file).io("creating", file)
    }

    fn write_all(
        &self,
        imgs: &[(Image, Vec<String>)],
        fmt: Format,
        s: &mut dyn Sink,
    ) -> Result<()> {
        let mut out = Archive::default();
        for (img, tags) in imgs {
            out.image(self, img, tags, s)?;
        }
        out.finish(fmt, s)
    }
}

/// What an archive being written has so far: the blobs in it and the index entries.
#[derive(Default)]
struct Archive {
    written: BTreeSet<String>,
    /// docker-archive `manifest.json` entries.
    manifest: Vec<serde_json::Value>,
    /// OCI `index.json` manifest descriptors.
    index: Vec<serde_json::Value>,
    /// docker-archive `repositories`.
    repositories: serde_json::Map<String, serde_json::Value>,
}

impl Archive {
    /// `blobs/sha256/<hex>` of `d`, written once however many images share it.
    fn blob(
        &mut self,
        s: &mut dyn Sink,
        d: &Digest,
        size: u64,
        body: &mut Body<'_>,
    ) -> Result<String> {
        let name = format!("blobs/sha256/{}", d.hex());
        if self.written.insert(name.clone()) {
            s.add(&name, size, body)?;
        }
        Ok(name)
    }

    fn bytes(&mut self, s: &mut dyn Sink, d: &Digest, b: &[u8]) -> Result<String> {
        self.blob(s, d, b.len() as u64, &mut |w| {
            w.write_all(b).io("writing", "the output")
        })
    }

    /// One image: its config, layers and manifest, and its entries in the indexes.
    fn image(
        &mut self,
        store: &Store,
        img: &Image,
        tags: &[String],
        s: &mut dyn Sink,
    ) -> Result<()> {
        let cfg = store.config_bytes(&img.id)?;
        let cfg_name = self.bytes(s, &img.id, &cfg)?;
        let mut layer_names = Vec::new();
        let mut layer_descs = Vec::new();
        for (chain, diff) in img.chain_ids.iter().zip(&img.diff_ids) {
            let size = layer_tar_size(store, chain)?;
            let name = self.blob(s, diff, size, &mut |w| write_layer(store, chain, w))?;
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
        let mb = serde_json::to_vec(&man).map_err(|e| Error::json("writing a manifest", e))?;
        let md = Digest::of(&mb);
        self.bytes(s, &md, &mb)?;
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
            self.index.push(desc(None));
        }
        for t in tags {
            self.index.push(desc(Some(t)));
            // Tags were validated when they were made; one that no longer parses is
            // left out of the docker-only `repositories` file, not fatal.
            if let Ok(r) = Ref::parse(t)
                && let Some(last) = img.diff_ids.last()
            {
                let e = self
                    .repositories
                    .entry(r.name.clone())
                    .or_insert_with(|| serde_json::json!({}));
                e[&r.tag] = last.hex().into();
            }
        }
        self.manifest.push(serde_json::json!({
            "Config": cfg_name,
            "RepoTags": tags,
            "Layers": layer_names,
        }));
        Ok(())
    }

    /// The index files, after every image.
    fn finish(self, fmt: Format, s: &mut dyn Sink) -> Result<()> {
        let put = |s: &mut dyn Sink, name: &str, v: &serde_json::Value| -> Result<()> {
            let b = serde_json::to_vec(v).map_err(|e| Error::json(format!("writing {name}"), e))?;
            s.add(name, b.len() as u64, &mut |w| {
                w.write_all(&b).io("writing", "the output")
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
                "manifests": self.index,
            }),
        )?;
        if fmt == Format::DockerArchive {
            put(s, "manifest.json", &serde_json::Value::Array(self.manifest))?;
            put(
                s,
                "repositories",
                &serde_json::Value::Object(self.repositories),
            )?;
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
