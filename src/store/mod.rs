//! The image store: loads images into Docker-overlay2-shaped directories, keeps refs and
//! configs, and describes mounts (a [`crate::mount::MountPlan`]) without performing them.
//!
//! ```text
//! store/
//!   layout.rs      every on-disk path (the tree is drawn there)
//!   lock.rs        store-wide flock; clears stale staging
//!   archive.rs     docker-archive / OCI readers (no side effects)
//!   tarsplit.rs    byte-exact tar reader + tar-split record + reassembly
//!   unpack.rs      blob -> layer dir in one streaming pass, safely
//!   reference.rs   image references: parse, validate, make familiar
//!   images.rs      repositories.json, configs, ls / inspect / history / tag / rm / prune
//!   save.rs        docker-archive / oci-archive / oci-dir writers
//!   containers.rs  writable layers: create, plan, diff, commit, export
//!   merged.rs      reading a stack of layer dirs as one tree (diff, commit, export)
//! ```
//!
//! Writes happen under [`lock::StoreLock`], staged in `tmp/` and renamed into place, in an
//! order that makes the last rename the commit point: layer dir, then `l/` link, then
//! layerdb entry, then image config, then `repositories.json`.

pub mod archive;
pub mod containers;
pub mod error;
pub mod human;
pub mod images;
pub mod layout;
pub mod lock;
pub mod merged;
pub mod reference;
pub mod save;
pub mod tarout;
pub mod tarsplit;
pub mod unpack;

use crate::digest::{Digest, chain_ids};
use crate::format::owner;
use archive::{Blobs, DirBlobs, TarBlobs};
use layout::{Layout, random_hex, read_text, write_atomic};
use lock::StoreLock;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

/// An open store.
pub struct Store {
    pub layout: Layout,
}

/// A layer as the layerdb records it.
#[derive(Debug, Clone)]
pub struct LayerInfo {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    pub size: u64,
    pub cache_id: String,
    pub diff_dir: PathBuf,
}

/// A layer unpacked into staging, not yet in the store.
pub struct Staged {
    pub dir: PathBuf,
    pub unpacked: unpack::Unpacked,
}

/// Result of one loaded image.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub id: Digest,
    pub tags: Vec<String>,
    pub warnings: Vec<String>,
}

/// Remove a file or tree, making our directories writable first if needed.
pub fn remove_tree(p: &Path) -> std::io::Result<()> {
    crate::sys::remove_tree(p)
}

impl Store {
    /// Open (and create if needed) the store at `--root` / `LAYERFS_ROOT` / the default.
    pub fn open(root: Option<PathBuf>) -> Result<Store, String> {
        let root = Layout::default_root(root)?;
        let layout = Layout::new(root);
        layout.ensure()?;
        Ok(Store { layout })
    }

    pub fn lock(&self) -> Result<StoreLock, String> {
        StoreLock::exclusive(&self.layout)
    }

    /// A fresh staging directory under `tmp/`.
    pub fn staging(&self) -> Result<PathBuf, String> {
        let d = self.layout.tmp().join(random_hex(8));
        std::fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        Ok(d)
    }

    /// The layerdb record of a chainID, if the layer is in the store.
    pub fn layer(&self, chain: &Digest) -> Result<Option<LayerInfo>, String> {
        let dir = self.layout.layer_meta(chain);
        if !dir.is_dir() {
            return Ok(None);
        }
        let diff_id = Digest::parse(&read_text(&dir.join("diff"))?)?;
        let size = read_text(&dir.join("size"))?
            .parse()
            .map_err(|_| format!("corrupt {}", dir.join("size").display()))?;
        let cache_id = read_text(&dir.join("cache-id"))?;
        let parent = match std::fs::read_to_string(dir.join("parent")) {
            Ok(s) => Some(Digest::parse(s.trim())?),
            Err(_) => None,
        };
        let diff_dir = self.layout.cache_dir(&cache_id).join("diff");
        Ok(Some(LayerInfo {
            chain_id: chain.clone(),
            diff_id,
            parent,
            size,
            cache_id,
            diff_dir,
        }))
    }

    /// Every layer of a chain, bottom first; an error names a missing one.
    pub fn layers_of(&self, diff_ids: &[Digest]) -> Result<Vec<LayerInfo>, String> {
        chain_ids(diff_ids)
            .iter()
            .map(|c| {
                self.layer(c)?
                    .ok_or_else(|| format!("layer {c} is missing from the store"))
            })
            .collect()
    }

    /// Unpack one blob into staging (no lock needed beyond the caller's).
    pub fn stage_layer(&self, input: Box<dyn Read + Send>) -> Result<Staged, String> {
        let dir = self.staging()?;
        std::fs::create_dir(dir.join("cache"))
            .map_err(|e| format!("cannot create staging: {e}"))?;
        std::fs::create_dir(dir.join("meta")).map_err(|e| format!("cannot create staging: {e}"))?;
        let unpacked = unpack::unpack(
            input,
            &dir.join("cache/diff"),
            &dir.join("meta/tar-split.json.gz"),
        )?;
        let euid = crate::sys::geteuid();
        if euid != 0 {
            // Unpacked unprivileged: our ids stand for the image's 0:0 in this layer.
            let ids = format!("{euid}:{}\n", crate::sys::getegid());
            write_atomic(
                &dir.join("cache").join(owner::ROOT_IDS_FILE),
                ids.as_bytes(),
            )?;
        }
        Ok(Staged { dir, unpacked })
    }

    /// Move a staged layer into the store as `chain` (dropped if already there).
    pub fn commit_layer(
        &self,
        staged: Staged,
        chain: &Digest,
        parent: Option<&Digest>,
    ) -> Result<(), String> {
        if self.layout.layer_meta(chain).is_dir() {
            let _ = remove_tree(&staged.dir);
            return Ok(());
        }
        let cache_id = random_hex(32);
        let link = layout::short_link_id();
        let cache = staged.dir.join("cache");
        let meta = staged.dir.join("meta");
        let mut lower = String::new();
        if let Some(p) = parent {
            let pl = self
                .layer(p)?
                .ok_or_else(|| format!("parent layer {p} is missing from the store"))?;
            let pdir = self.layout.cache_dir(&pl.cache_id);
            let plink = read_text(&pdir.join("link"))?;
            lower = format!("l/{plink}");
            if let Ok(pl_lower) = read_text(&pdir.join("lower"))
                && !pl_lower.is_empty()
            {
                lower.push(':');
                lower.push_str(&pl_lower);
            }
        }
        let u = &staged.unpacked;
        let files: Vec<(PathBuf, String)> = vec![
            (cache.join("link"), link.clone()),
            (meta.join("diff"), u.diff_id.to_string()),
            (meta.join("size"), u.size.to_string()),
            (meta.join("cache-id"), cache_id.clone()),
        ];
        for (p, v) in files {
            write_atomic(&p, v.as_bytes())?;
        }
        if !lower.is_empty() {
            write_atomic(&cache.join("lower"), lower.as_bytes())?;
        }
        if let Some(p) = parent {
            write_atomic(&meta.join("parent"), p.to_string().as_bytes())?;
        }
        if !u.implicit_dirs.is_empty()
            && let Some(p) = parent
        {
            self.inherit_implicit_dirs(&cache.join("diff"), &u.implicit_dirs, p)?;
        }
        let dest = self.layout.cache_dir(&cache_id);
        std::fs::rename(&cache, &dest)
            .map_err(|e| format!("cannot move layer into {}: {e}", dest.display()))?;
        let l = self.layout.links().join(&link);
        std::os::unix::fs::symlink(format!("../{cache_id}/diff"), &l)
            .map_err(|e| format!("cannot create {}: {e}", l.display()))?;
        sync_dir(&self.layout.overlay2());
        let mdest = self.layout.layer_meta(chain);
        std::fs::rename(&meta, &mdest)
            .map_err(|e| format!("cannot move layer record into {}: {e}", mdest.display()))?;
        sync_dir(&self.layout.layerdb());
        let _ = remove_tree(&staged.dir);
        Ok(())
    }

    /// Give directories a layer tar did not list the owner, mode, times and owner xattr of
    /// the same directory in the parent chain, so the layer does not change them.
    fn inherit_implicit_dirs(
        &self,
        diff: &Path,
        dirs: &[PathBuf],
        parent: &Digest,
    ) -> Result<(), String> {
        use std::os::fd::AsFd;
        let mut chain = Vec::new();
        let mut cur = Some(parent.clone());
        while let Some(c) = cur {
            let l = self
                .layer(&c)?
                .ok_or_else(|| format!("parent layer {c} is missing from the store"))?;
            chain.push(l.diff_dir.clone());
            cur = l.parent;
        }
        let stack = merged::Stack::open(&chain, false)?;
        let root = crate::sys::open_dir(diff)
            .map_err(|e| format!("cannot open {}: {e}", diff.display()))?;
        let root = root.as_fd();
        let privileged = crate::sys::geteuid() == 0;
        for d in dirs {
            let Some(n) = stack.lookup(d)? else { continue };
            if !merged::is_dir(&n.st) {
                continue;
            }
            if privileged {
                let _ = crate::sys::chown_at(root, d, n.st.st_uid, n.st.st_gid);
                let _ = crate::sys::chmod_at(root, d, n.st.st_mode & 0o7777);
            } else {
                let p = stack.presented(&n)?;
                let v = owner::Override::new(p.uid, p.gid, p.mode).value();
                crate::sys::set_xattr_at(
                    root,
                    d,
                    std::ffi::OsStr::new(owner::OVERRIDE_XATTR),
                    v.as_bytes(),
                    0,
                )
                .map_err(|e| format!("cannot record owner of {}: {e}", diff.join(d).display()))?;
            }
            let _ = crate::sys::utimens_at(
                root,
                d,
                crate::sys::Time::Omit,
                crate::sys::Time::At(n.st.st_mtime, n.st.st_mtime_nsec),
            );
        }
        Ok(())
    }

    /// Store an image config (if new) and point `tags` at it.
    pub fn commit_image(
        &self,
        config: &[u8],
        tags: &[String],
        parent: Option<&Digest>,
    ) -> Result<Digest, String> {
        let id = Digest::of(config);
        let path = self.layout.image_config(&id);
        if !path.is_file() {
            write_atomic(&path, config)?;
        }
        let md = self.layout.image_metadata(&id);
        std::fs::create_dir_all(&md).map_err(|e| format!("cannot create {}: {e}", md.display()))?;
        write_atomic(&md.join("lastUpdated"), human::now_rfc3339().as_bytes())?;
        if let Some(p) = parent {
            write_atomic(&md.join("parent"), p.to_string().as_bytes())?;
        }
        if !tags.is_empty() {
            let mut repos = images::Repositories::load(&self.layout)?;
            for t in tags {
                let r = images::Ref::parse(t)?;
                repos.set(&r, &id);
            }
            repos.save(&self.layout)?;
        }
        Ok(id)
    }

    /// Open an archive: a directory (OCI layout) or a tar file, possibly compressed, or
    /// stdin (`None` / `-`), which is spooled into staging first.
    fn open_input(&self, input: Option<&Path>) -> Result<(Box<dyn Blobs>, String), String> {
        let spool = |r: Box<dyn Read + Send>, what: &str| -> Result<Box<dyn Blobs>, String> {
            let dir = self.staging()?;
            let p = dir.join("input.tar");
            let mut f = std::fs::File::create(&p)
                .map_err(|e| format!("cannot create {}: {e}", p.display()))?;
            let mut r = unpack::decompress(r).map_err(|e| format!("{what}: {e}"))?;
            std::io::copy(&mut r, &mut f).map_err(|e| format!("cannot read {what}: {e}"))?;
            Ok(Box::new(
                TarBlobs::index(&p).map_err(|e| e.replace(&p.display().to_string(), what))?,
            ))
        };
        match input {
            None => Ok((
                spool(Box::new(std::io::stdin()), "standard input")?,
                "image".into(),
            )),
            Some(p) if p.as_os_str() == "-" => Ok((
                spool(Box::new(std::io::stdin()), "standard input")?,
                "image".into(),
            )),
            Some(p) => {
                let name = archive::name_from_path(p);
                let md = std::fs::metadata(p)
                    .map_err(|e| format!("cannot open {}: {e}", p.display()))?;
                if md.is_dir() {
                    return Ok((Box::new(DirBlobs::new(p)), name));
                }
                let mut head = [0u8; 4];
                let mut f = std::fs::File::open(p)
                    .map_err(|e| format!("cannot open {}: {e}", p.display()))?;
                let n = f
                    .read(&mut head)
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                if unpack::sniff(&head[..n]) != unpack::Compression::None {
                    let f = std::fs::File::open(p)
                        .map_err(|e| format!("cannot open {}: {e}", p.display()))?;
                    return Ok((spool(Box::new(f), &p.display().to_string())?, name));
                }
                Ok((Box::new(TarBlobs::index(p)?), name))
            }
        }
    }

    /// `image load`: every image in the archive; nothing is visible unless it all checks out.
    pub fn load(&self, input: Option<&Path>) -> Result<Vec<Loaded>, String> {
        let _lock = self.lock()?;
        let r = self.load_locked(input);
        // Whatever failed, staging goes (we hold the lock: all of tmp/ is ours).
        lock::clear_tmp(&self.layout);
        r
    }

    fn load_locked(&self, input: Option<&Path>) -> Result<Vec<Loaded>, String> {
        let shown = input
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "standard input".into());
        let (blobs, default_name) = self.open_input(input)?;
        let sources = archive::read_images(blobs.as_ref(), &default_name)
            .map_err(|e| format!("{shown}: {e}"))?;
        let mut out = Vec::new();
        for src in &sources {
            let l = self
                .load_one(blobs.as_ref(), src)
                .map_err(|e| format!("{shown}: {e}"))?;
            out.push(l);
        }
        Ok(out)
    }

    fn load_one(&self, blobs: &dyn Blobs, src: &archive::ImageSource) -> Result<Loaded, String> {
        let cfg = images::parse_config(&src.config)?;
        let diff_ids = images::diff_ids(&cfg)?;
        if diff_ids.len() != src.layers.len() {
            return Err(format!(
                "the config lists {} layers (rootfs.diff_ids) but the manifest has {}",
                diff_ids.len(),
                src.layers.len()
            ));
        }
        let chains = chain_ids(&diff_ids);
        // Which layers must be unpacked (first occurrence of each missing chainID).
        let mut todo: Vec<usize> = Vec::new();
        for (i, c) in chains.iter().enumerate() {
            if !self.layout.layer_meta(c).is_dir() && !todo.iter().any(|j| chains[*j] == *c) {
                todo.push(i);
            }
        }
        let total: u64 = todo
            .iter()
            .filter_map(|i| blobs.size(&src.layers[*i].member))
            .sum();
        let bar = if std::io::stderr().is_terminal() && !todo.is_empty() {
            let b = indicatif::ProgressBar::new(total);
            if let Ok(st) = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}",
            ) {
                b.set_style(st.progress_chars("=> "));
            }
            b.set_message(format!("Loading {} layer(s)", todo.len()));
            Some(b)
        } else {
            None
        };
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 4);
        let mut results: Vec<Option<Result<Staged, String>>> =
            (0..todo.len()).map(|_| None).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let slots = std::sync::Mutex::new(&mut results);
        std::thread::scope(|s| {
            for _ in 0..threads.min(todo.len()) {
                s.spawn(|| {
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if k >= todo.len() {
                            break;
                        }
                        let i = todo[k];
                        let r = self.stage_one(blobs, src, i, &diff_ids[i], bar.as_ref());
                        if let Ok(mut g) = slots.lock() {
                            g[k] = Some(r);
                        }
                    }
                });
            }
        });
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        let mut staged = Vec::new();
        let mut warnings = Vec::new();
        for r in results {
            let st = r.ok_or("a layer worker failed")??;
            warnings.extend(st.unpacked.warnings.iter().cloned());
            staged.push(st);
        }
        // All layers verified: move them in, bottom first.
        for (st, i) in staged.into_iter().zip(todo.iter()) {
            let parent = if *i == 0 { None } else { Some(&chains[i - 1]) };
            self.commit_layer(st, &chains[*i], parent)?;
        }
        let id = self.commit_image(&src.config, &src.tags, None)?;
        if let Some(m) = &src.manifest
            && !src.tags.is_empty()
        {
            let mut repos = images::Repositories::load(&self.layout)?;
            for t in &src.tags {
                repos.set_digest(&images::Ref::parse(t)?, m, &id);
            }
            repos.save(&self.layout)?;
        }
        Ok(Loaded {
            id,
            tags: src.tags.clone(),
            warnings,
        })
    }

    fn stage_one(
        &self,
        blobs: &dyn Blobs,
        src: &archive::ImageSource,
        i: usize,
        want: &Digest,
        bar: Option<&indicatif::ProgressBar>,
    ) -> Result<Staged, String> {
        let l = &src.layers[i];
        let ctx = |m: String| format!("layer {} ({}): {m}", i + 1, l.member);
        let r = blobs.open(&l.member).map_err(ctx)?;
        let r: Box<dyn Read + Send> = match bar {
            Some(b) => Box::new(b.wrap_read(r)),
            None => r,
        };
        let st = self.stage_layer(r).map_err(ctx)?;
        let u = &st.unpacked;
        if let Some(d) = &l.digest
            && *d != u.blob
        {
            let _ = remove_tree(&st.dir);
            return Err(ctx(format!(
                "blob digest mismatch: manifest says {d}, content is {}",
                u.blob
            )));
        }
        if u.diff_id != *want {
            let _ = remove_tree(&st.dir);
            return Err(ctx(format!(
                "diffID mismatch: config says {want}, the uncompressed layer is {}",
                u.diff_id
            )));
        }
        Ok(st)
    }
}

/// fsync a directory (best effort) so renames into it are durable.
pub fn sync_dir(p: &Path) {
    if let Ok(f) = std::fs::File::open(p) {
        let _ = f.sync_all();
    }
}
