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
//!   load.rs        `image load`: archive -> verified layers and images
//!   reference.rs   image references: parse, validate, make familiar
//!   images.rs      repositories.json, configs, ls / inspect / history / tag / rm / prune
//!   save.rs        docker-archive / oci-archive / oci-dir writers
//!   containers.rs  writable layers: create, diff, commit, export, rm
//!   plans.rs       the complete mount plans of `image mount` and `container mount`
//!   progress.rs    the reporter long steps tell how far they are (the CLI draws it)
//!   merged.rs      reading a stack of layer dirs as one tree (diff, commit, export)
//! ```
//!
//! Writes happen under [`lock::StoreLock`], staged in `tmp/` and renamed into place, in an
//! order that makes the last rename the commit point: layer dir, then `l/` link, then
//! layerdb entry, then image config, then `repositories.json`.

pub mod archive;
pub mod containers;
pub mod distribution;
pub mod error;
pub mod human;
pub mod images;
pub mod layout;
pub mod load;
pub mod lock;
pub mod merged;
pub mod plans;
pub mod progress;
pub mod reference;
pub mod save;
pub mod tarout;
pub mod tarsplit;
pub mod unpack;

use crate::digest::{Digest, chain_ids};
use crate::format::owner;
use error::{Context, Error, Result, ResultExt};
use layout::{Layout, random_hex, read_text, read_text_opt, write_atomic};
use lock::StoreLock;
use progress::{Progress, Silent};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An open store.
pub struct Store {
    pub layout: Layout,
    /// Where long steps report progress (nothing, unless the caller says otherwise).
    pub progress: Arc<dyn Progress>,
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
pub use crate::sys::remove_tree;

/// A digest the store recorded or was given (`sha256:<hex>`).
pub(crate) fn digest(s: &str) -> Result<Digest> {
    Digest::parse(s).map_err(Error::Invalid)
}

/// Is there a directory at `p`? Not being there is "no"; failing to look is an error.
fn is_dir(p: &Path) -> Result<bool> {
    Ok(std::fs::metadata(p)
        .io_absent("reading", p)?
        .is_some_and(|m| m.is_dir()))
}

impl Store {
    /// Open (and create if needed) the store at `--root` / `LAYERFS_ROOT` / the default.
    pub fn open(root: Option<PathBuf>) -> Result<Store> {
        let root = Layout::default_root(root)?;
        let layout = Layout::new(root)?;
        layout.ensure()?;
        Ok(Store {
            layout,
            progress: Arc::new(Silent),
        })
    }

    /// This store, reporting progress (and waits for the lock) to `p`.
    pub fn reporting_to(self, p: Arc<dyn Progress>) -> Store {
        Store {
            progress: p,
            ..self
        }
    }

    /// The store-wide writer lock (waiting for it, if another command holds it).
    pub fn lock(&self) -> Result<StoreLock> {
        StoreLock::exclusive(&self.layout, || {
            self.progress
                .waiting("another layerfs command to finish with this store")
        })
    }

    /// A fresh staging directory under `tmp/`.
    pub fn staging(&self) -> Result<PathBuf> {
        let d = self.layout.tmp().join(random_hex(8));
        std::fs::create_dir_all(&d).io("creating", &d)?;
        Ok(d)
    }

    /// Is the layer `chain` in the store?
    pub fn has_layer(&self, chain: &Digest) -> Result<bool> {
        is_dir(&self.layout.layer_meta(chain))
    }

    /// The layerdb record of a chainID, if the layer is in the store.
    pub fn layer(&self, chain: &Digest) -> Result<Option<LayerInfo>> {
        let dir = self.layout.layer_meta(chain);
        if !is_dir(&dir)? {
            return Ok(None);
        }
        let corrupt = |p: &Path| format!("corrupt {}", p.display());
        let dp = dir.join("diff");
        let diff_id = digest(&read_text(&dp)?).context(|| corrupt(&dp))?;
        let sp = dir.join("size");
        let size = read_text(&sp)?
            .parse()
            .map_err(|e| Error::invalid(format!("corrupt {}: {e}", sp.display())))?;
        let cache_id = read_text(&dir.join("cache-id"))?;
        // The bottom layer has no parent file.
        let pp = dir.join("parent");
        let parent = read_text_opt(&pp)?
            .map(|s| digest(&s).context(|| corrupt(&pp)))
            .transpose()?;
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
    pub fn layers_of(&self, diff_ids: &[Digest]) -> Result<Vec<LayerInfo>> {
        chain_ids(diff_ids)
            .iter()
            .map(|c| {
                self.layer(c)?
                    .ok_or_else(|| Error::not_found("layer", c.to_string()))
            })
            .collect()
    }

    /// Unpack one blob into staging (no lock needed beyond the caller's).
    pub fn stage_layer(&self, input: Box<dyn Read + Send>) -> Result<Staged> {
        let dir = self.staging()?;
        for d in ["cache", "meta"] {
            std::fs::create_dir(dir.join(d)).io("creating", dir.join(d))?;
        }
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
    ) -> Result<()> {
        if self.has_layer(chain)? {
            // Staging: the lock clears it too.
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
                .ok_or_else(|| Error::not_found("parent layer", p.to_string()))?;
            let pdir = self.layout.cache_dir(&pl.cache_id);
            let plink = read_text(&pdir.join("link"))?;
            lower = format!("l/{plink}");
            // The bottom layer has no `lower` file.
            if let Some(pl_lower) = read_text_opt(&pdir.join("lower"))?
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
        std::fs::rename(&cache, &dest).io("moving the layer into", &dest)?;
        let l = self.layout.links().join(&link);
        std::os::unix::fs::symlink(format!("../{cache_id}/diff"), &l).io("creating", &l)?;
        sync_dir(&self.layout.overlay2());
        let mdest = self.layout.layer_meta(chain);
        std::fs::rename(&meta, &mdest).io("moving the layer record into", &mdest)?;
        sync_dir(&self.layout.layerdb());
        // Staging (empty now): the lock clears it too.
        let _ = remove_tree(&staged.dir);
        Ok(())
    }

    /// Give directories a layer tar did not list the owner, mode, times and owner xattr of
    /// the same directory in the parent chain, so the layer does not change them.
    fn inherit_implicit_dirs(&self, diff: &Path, dirs: &[PathBuf], parent: &Digest) -> Result<()> {
        use std::os::fd::AsFd;
        let mut chain = Vec::new();
        let mut cur = Some(parent.clone());
        while let Some(c) = cur {
            let l = self
                .layer(&c)?
                .ok_or_else(|| Error::not_found("parent layer", c.to_string()))?;
            chain.push(l.diff_dir.clone());
            cur = l.parent;
        }
        let stack = merged::Stack::open(&chain, false)?;
        let root = crate::sys::open_dir(diff).io("opening", diff)?;
        let root = root.as_fd();
        let privileged = crate::sys::geteuid() == 0;
        for d in dirs {
            let Some(n) = stack.lookup(d)? else { continue };
            if !merged::is_dir(&n.st) {
                continue;
            }
            // Owner, mode and times are copied best effort: root in a user namespace may
            // not chown to the ids below, and the directory is usable either way.
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
                .io("recording the owner of", diff.join(d))?;
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
    ) -> Result<Digest> {
        let id = Digest::of(config);
        let path = self.layout.image_config(&id);
        if std::fs::metadata(&path)
            .io_absent("reading", &path)?
            .is_none()
        {
            write_atomic(&path, config)?;
        }
        let md = self.layout.image_metadata(&id);
        std::fs::create_dir_all(&md).io("creating", &md)?;
        write_atomic(&md.join("lastUpdated"), human::now_rfc3339().as_bytes())?;
        if let Some(p) = parent {
            write_atomic(&md.join("parent"), p.to_string().as_bytes())?;
        }
        if !tags.is_empty() {
            let mut repos = images::Repositories::load(&self.layout)?;
            for t in tags {
                let r = reference::Ref::parse(t)?;
                repos.set(&r, &id);
            }
            repos.save(&self.layout)?;
        }
        Ok(id)
    }
}

/// fsync a directory (best effort) so renames into it are durable.
pub fn sync_dir(p: &Path) {
    if let Ok(f) = std::fs::File::open(p) {
        let _ = f.sync_all();
    }
}
