//! Paths of the on-disk store, in one place. The tree (Docker overlay2 shape):
//!
//! ```text
//! ROOT/
//!   lock                                   flock(2) target: one writer at a time
//!   tmp/                                   staging; emptied by the next writer
//!   image/overlay2/repositories.json      {"Repositories":{repo:{"repo:tag":"sha256:id"}}}
//!   image/overlay2/imagedb/content/sha256/<id>        config JSON, byte-exact
//!   image/overlay2/imagedb/metadata/sha256/<id>/      parent, lastUpdated
//!   image/overlay2/layerdb/sha256/<chainID>/          diff size cache-id parent tar-split.json.gz
//!   image/overlay2/layerdb/mounts/<container id>/     mount-id parent
//!   image/overlay2/distribution/diffid-by-digest/sha256/<blob>   the blob's diffID
//!   image/overlay2/distribution/v2metadata-by-diffid/sha256/<diffID>  [{Digest,SourceRepository,HMAC}]
//!   overlay2/<cache-id>/{diff/,link,lower}            one layer's files
//!   overlay2/<cache-id>/root-ids                      unprivileged store: UID:GID that is 0:0
//!   overlay2/<mount-id>/{diff/,work/,merged/,link,lower}  a container's writable layer
//!   overlay2/l/<short> -> ../<cache-id>/diff
//!   containers/<container id>/config.json            name, image, created
//! ```

use super::error::{Error, Result, ResultExt};
use crate::digest::Digest;
use std::path::{Path, PathBuf};

/// The store root and every path derived from it.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
    /// A data-root that dockerd made (see [`Layout::is_docker_root`]), found once.
    docker_root: bool,
}

impl Layout {
    /// The store at `root`: looks whether dockerd made it (a marker it cannot look at is
    /// an error, not "no": the answer decides whether `tmp/` may be emptied).
    pub fn new(root: PathBuf) -> Result<Layout> {
        let mut docker_root = false;
        for m in DOCKERD_MARKERS {
            let p = root.join(m);
            docker_root |= std::fs::metadata(&p).io_absent("reading", &p)?.is_some();
        }
        Ok(Layout { root, docker_root })
    }

    /// `--root`, else `LAYERFS_ROOT`, else `/var/lib/layerfs` (root) or
    /// `$XDG_DATA_HOME/layerfs` / `~/.local/share/layerfs`.
    pub fn default_root(explicit: Option<PathBuf>) -> Result<PathBuf> {
        if let Some(r) = explicit {
            return Ok(r);
        }
        if let Some(r) = std::env::var_os("LAYERFS_ROOT").filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(r));
        }
        if crate::sys::geteuid() == 0 {
            return Ok(PathBuf::from("/var/lib/layerfs"));
        }
        if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(x).join("layerfs"));
        }
        match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => Ok(PathBuf::from(h).join(".local/share/layerfs")),
            None => Err(Error::invalid(
                "cannot find a store root: set --root, LAYERFS_ROOT or HOME",
            )),
        }
    }

    pub fn lock_file(&self) -> PathBuf {
        self.root.join("lock")
    }
    /// Staging (cleared by whoever takes the store lock). In a data-root that dockerd
    /// made, `tmp/` is dockerd's own (pulls, loads, builds in flight): layerfs stages in a
    /// directory of its own inside it, so clearing never touches dockerd's files.
    pub fn tmp(&self) -> PathBuf {
        if self.is_docker_root() {
            self.root.join("tmp/layerfs")
        } else {
            self.root.join("tmp")
        }
    }
    pub fn image_dir(&self) -> PathBuf {
        self.root.join("image/overlay2")
    }
    /// Which registry blob a layer came from, and back (docker's `distribution/`).
    pub fn distribution(&self) -> PathBuf {
        self.image_dir().join("distribution")
    }
    pub fn repositories(&self) -> PathBuf {
        self.image_dir().join("repositories.json")
    }
    pub fn imagedb_content(&self) -> PathBuf {
        self.image_dir().join("imagedb/content/sha256")
    }
    pub fn image_config(&self, id: &Digest) -> PathBuf {
        self.imagedb_content().join(id.hex())
    }
    pub fn imagedb_metadata(&self) -> PathBuf {
        self.image_dir().join("imagedb/metadata/sha256")
    }
    pub fn image_metadata(&self, id: &Digest) -> PathBuf {
        self.imagedb_metadata().join(id.hex())
    }
    pub fn layerdb(&self) -> PathBuf {
        self.image_dir().join("layerdb/sha256")
    }
    pub fn layer_meta(&self, chain: &Digest) -> PathBuf {
        self.layerdb().join(chain.hex())
    }
    pub fn mounts_db(&self) -> PathBuf {
        self.image_dir().join("layerdb/mounts")
    }
    pub fn overlay2(&self) -> PathBuf {
        self.root.join("overlay2")
    }
    pub fn cache_dir(&self, cache_id: &str) -> PathBuf {
        self.overlay2().join(cache_id)
    }
    pub fn links(&self) -> PathBuf {
        self.overlay2().join("l")
    }
    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.containers().join(id)
    }

    /// Is this a data-root that dockerd made (`--root /var/lib/docker`)? It has files dockerd
    /// writes at startup and layerfs never does. Its `tmp/` is then dockerd's temp dir.
    pub fn is_docker_root(&self) -> bool {
        self.docker_root
    }

    /// Every directory the store needs, created if missing.
    pub fn ensure(&self) -> Result<()> {
        for d in [
            self.tmp(),
            self.imagedb_content(),
            self.imagedb_metadata(),
            self.layerdb(),
            self.mounts_db(),
            self.links(),
            self.containers(),
        ] {
            std::fs::create_dir_all(&d).io("creating the store directory", &d)?;
        }
        Ok(())
    }
}

/// Files dockerd keeps in its data-root: the engine ID (Docker 25+), the local volume
/// driver's database and libnetwork's local store.
const DOCKERD_MARKERS: [&str; 3] = [
    "engine-id",
    "volumes/metadata.db",
    "network/files/local-kv.db",
];

/// Write `bytes` to `path` atomically: a temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .ok_or_else(|| Error::invalid(format!("no parent directory for {}", path.display())))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    res.map_err(|e| {
        // Cleanup after the failure above, which is the error reported.
        let _ = std::fs::remove_file(&tmp);
        Error::io("writing", path, e)
    })
}

/// Read a small text file, trimmed.
pub fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .io("reading", path)
}

/// [`read_text`], `None` when the file is not there (ENOENT/ENOTDIR); other errors stay.
pub fn read_text_opt(path: &Path) -> Result<Option<String>> {
    Ok(std::fs::read_to_string(path)
        .io_absent("reading", path)?
        .map(|s| s.trim().to_string()))
}

/// A random lower-case hex id of `n` bytes, from the kernel's random source.
pub fn random_hex(n: usize) -> String {
    crate::digest::hex(&random_bytes(n))
}

/// Random bytes from the kernel (`/dev/urandom`); where that cannot be read, time/pid
/// mixing (ids need to be unique, not secret).
pub fn random_bytes(n: usize) -> Vec<u8> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    if read.is_err() {
        let seed = format!(
            "{:?}{}{:p}",
            std::time::SystemTime::now(),
            std::process::id(),
            &buf
        );
        let d = Digest::of(seed.as_bytes());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = d.hex().as_bytes()[i % 64];
        }
    }
    buf
}

/// A 26-character upper-case base32 id for `overlay2/l/` links, as Docker makes them.
pub fn short_link_id() -> String {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    random_bytes(26)
        .iter()
        .map(|b| ALPHA[(*b as usize) % 32] as char)
        .collect()
}
