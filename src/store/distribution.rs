//! Docker's distribution metadata: which compressed registry blob each layer came from
//! (`diffid-by-digest/sha256/<blob>` holds the diffID) and, per diffID, every blob digest
//! and source repository known for it (`v2metadata-by-diffid/sha256/<diffID>`, a JSON list
//! of `{Digest, SourceRepository, HMAC}`). A push reads it to skip or mount layers the
//! registry already has instead of uploading them.

use super::Store;
use super::error::{Error, Result, ResultExt};
use super::layout::write_atomic;
use crate::digest::Digest;
use serde::{Deserialize, Serialize};

/// One known registry blob of a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V2Metadata {
    #[serde(rename = "Digest")]
    pub digest: Digest,
    /// `docker.io/library/busybox`, `127.0.0.1:5000/team/app`.
    #[serde(rename = "SourceRepository")]
    pub source_repository: String,
    /// Docker keys this by the credentials used; always empty here (no key to keep).
    #[serde(rename = "HMAC", default)]
    pub hmac: String,
    /// The blob's media type (gzip, zstd or plain tar): a layerfs addition, which docker's
    /// reader ignores; absent means gzip, as docker assumes.
    #[serde(rename = "MediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

impl Store {
    fn dist_path(&self, kind: &str, d: &Digest) -> std::path::PathBuf {
        self.layout
            .distribution()
            .join(kind)
            .join("sha256")
            .join(d.hex())
    }

    /// Record that blob `blob` of `repository` is the layer `diff_id`.
    pub fn record_blob(
        &self,
        blob: &Digest,
        diff_id: &Digest,
        repository: &str,
        media_type: Option<&str>,
    ) -> Result<()> {
        let by_digest = self.dist_path("diffid-by-digest", blob);
        if let Some(dir) = by_digest.parent() {
            std::fs::create_dir_all(dir).io("creating", dir)?;
        }
        write_atomic(&by_digest, diff_id.to_string().as_bytes())?;
        let mut all = self.blobs_of(diff_id)?;
        let entry = V2Metadata {
            digest: blob.clone(),
            source_repository: repository.to_string(),
            hmac: String::new(),
            media_type: media_type.map(str::to_string),
        };
        if all.first() == Some(&entry) {
            return Ok(());
        }
        all.retain(|e| e.digest != entry.digest || e.source_repository != entry.source_repository);
        // Newest first: a push tries the repository it saw last first.
        all.insert(0, entry);
        let by_diff = self.dist_path("v2metadata-by-diffid", diff_id);
        if let Some(dir) = by_diff.parent() {
            std::fs::create_dir_all(dir).io("creating", dir)?;
        }
        let bytes =
            serde_json::to_vec(&all).map_err(|e| Error::json(by_diff.display().to_string(), e))?;
        write_atomic(&by_diff, &bytes)
    }

    /// Every registry blob known for a layer (none when it never came from a registry).
    pub fn blobs_of(&self, diff_id: &Digest) -> Result<Vec<V2Metadata>> {
        let p = self.dist_path("v2metadata-by-diffid", diff_id);
        match std::fs::read(&p) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|e| Error::json(p.display().to_string(), e))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io("reading", &p, e)),
        }
    }

    /// The diffID a registry blob unpacks to, when known.
    pub fn diff_id_of_blob(&self, blob: &Digest) -> Result<Option<Digest>> {
        let p = self.dist_path("diffid-by-digest", blob);
        match std::fs::read_to_string(&p) {
            Ok(s) => Digest::parse(s.trim())
                .map(Some)
                .map_err(|e| Error::invalid(format!("{}: {e}", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading", &p, e)),
        }
    }
}
