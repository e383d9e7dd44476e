//! `pull`: a reference's manifest (the platform's, from an index), its config, and its layer
//! blobs streamed from the registry through the store's one way in ([`Store::take_image`]):
//! hashed, decompressed, hashed again and unpacked in one pass, several at a time. Mirrors
//! of `docker.io` are tried first, in order; the origin last.

use super::{Error, Result};
use crate::digest::Digest;
use crate::registry::client::{Fetched, Repo};
use crate::registry::manifest::{self, ImageManifest, Manifest, Platform};
use crate::registry::reference::Reference;
use crate::registry::session::{Session, Source};
use crate::store::Store;
use crate::store::archive::{Blobs, ImageSource, LayerSource};
use crate::store::images::{self, Repositories};
use crate::store::load::Intake;
use crate::store::reference::Ref;
use std::collections::HashMap;
use std::io::Read;

/// How to pull.
pub struct PullOptions {
    /// The platform to pick from an index (the host's when `None`).
    pub platform: Option<Platform>,
    /// Layers fetched at once (docker's `--max-concurrent-downloads`, default 3).
    pub threads: usize,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: None,
            threads: 3,
        }
    }
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The reference pulled, with its tag (or digest).
    pub reference: Reference,
    /// The image ID (config digest).
    pub id: Digest,
    /// The digest of the manifest (or index) the reference named.
    pub digest: Digest,
    /// The store had this image under this name already.
    pub up_to_date: bool,
    /// Layer problems the store put up with (see `image load`).
    pub warnings: Vec<String>,
}

/// The tags of a repository (for `--all-tags`), sorted.
pub fn tags(session: &Session, r: &Reference) -> Result<Vec<String>> {
    try_sources(session, r, |repo| Ok(repo.tags()?)).map(|mut t| {
        t.sort();
        t
    })
}

/// Pull one reference into the store.
pub fn pull(store: &Store, session: &Session, r: &Reference, opts: &PullOptions) -> Result<Pulled> {
    try_sources(session, r, |repo| pull_from(store, repo, r, opts))
}

/// Run `f` on the repository at each source in turn (mirrors, then the origin) until one
/// works; when none does, every source's failure is in the error.
fn try_sources<T>(
    session: &Session,
    r: &Reference,
    mut f: impl FnMut(&Repo) -> Result<T>,
) -> Result<T> {
    let sources = session.sources(&r.domain);
    let mut failures: Vec<(Source, Error)> = Vec::new();
    for src in sources {
        let res = session
            .connect(&src)
            .map_err(Error::from)
            .and_then(|ep| f(&Repo::new(ep, &r.path)));
        match res {
            Ok(v) => return Ok(v),
            // The store's own failures are not the source's: no point trying another.
            Err(e @ Error::Store(_)) => return Err(e),
            Err(e) => {
                log::info!("{}: {e}", src.name);
                failures.push((src, e));
            }
        }
    }
    if failures.len() == 1 {
        return Err(failures.remove(0).1);
    }
    let all: Vec<String> = failures
        .iter()
        .map(|(s, e)| {
            let kind = if s.mirror { "mirror" } else { "registry" };
            format!("{kind} {}: {e}", s.name)
        })
        .collect();
    Err(Error::Sources(all.join("; ")))
}

fn pull_from(store: &Store, repo: &Repo, r: &Reference, opts: &PullOptions) -> Result<Pulled> {
    let top = repo.manifest(&r.manifest_ref())?;
    let image = image_manifest(repo, &top, opts)?;
    check_types(&image, r)?;
    let config = repo.blob_bytes(&image.config.digest, image.config.size)?;
    if let (Manifest::Image(_), Some(want)) = (&top.manifest, &opts.platform) {
        check_platform(&config, want, r)?;
    }
    let id = Digest::of(&config);
    let name = r.familiar_name();
    let tag = r.tag_or_default().map(|t| format!("{name}:{t}"));
    let up_to_date = match &tag {
        Some(t) => Repositories::load(&store.layout)?.get(&Ref::parse(t)?) == Some(id.clone()),
        None => store.image_ids()?.contains(&id),
    } && store.image_has_layers(&id)?;
    let src = ImageSource {
        config,
        tags: tag.into_iter().collect(),
        layers: image
            .layers
            .iter()
            .map(|l| LayerSource {
                member: l.digest.to_string(),
                digest: Some(l.digest.clone()),
            })
            .collect(),
        manifest: Some(top.digest.clone()),
    };
    let blobs = RegistryBlobs {
        repo: repo.clone(),
        layers: image
            .layers
            .iter()
            .map(|l| (l.digest.to_string(), l.clone()))
            .collect(),
    };
    let intake = Intake {
        threads: opts.threads.max(1),
        digest_names: vec![name],
    };
    let loaded = store.take_image(&blobs, &src, &intake)?;
    // Which blob each layer came from, for a later push (docker's distribution metadata).
    let diff_ids = images::diff_ids(&images::parse_config(&src.config)?)?;
    for (l, d) in image.layers.iter().zip(&diff_ids) {
        store.record_blob(&l.digest, d, &r.full_name(), Some(&l.media_type))?;
    }
    Ok(Pulled {
        reference: r.clone(),
        id: loaded.id,
        digest: top.digest,
        up_to_date,
        warnings: loaded.warnings,
    })
}

/// The image manifest: the fetched one, or the platform's entry of an index.
fn image_manifest(repo: &Repo, top: &Fetched, opts: &PullOptions) -> Result<ImageManifest> {
    match &top.manifest {
        Manifest::Image(m) => Ok((**m).clone()),
        Manifest::Index(idx) => {
            let want = opts
                .platform
                .clone()
                .unwrap_or_else(manifest::host_platform);
            let what = format!("{}/{}@{}", repo.ep.name, repo.path, top.digest);
            let d = manifest::select(idx, &want, &what)?;
            let f = repo.manifest(&d.digest.to_string())?;
            match f.manifest {
                Manifest::Image(m) => Ok(*m),
                Manifest::Index(_) => Err(Error::Registry(crate::registry::Error::corrupt(
                    format!("{what}: the entry for {want} is an index again, not an image"),
                ))),
            }
        }
    }
}

/// A single-platform image pulled with `--platform`: its config must say that platform
/// (as docker checks).
fn check_platform(config: &[u8], want: &Platform, r: &Reference) -> Result<()> {
    let cfg = images::parse_config(config)?;
    let field = |k: &str| {
        cfg.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let have = Platform {
        os: field("os"),
        architecture: field("architecture"),
        variant: Some(field("variant")).filter(|v| !v.is_empty()),
        os_version: None,
    };
    if manifest::satisfies(&have, want) {
        return Ok(());
    }
    Err(Error::Registry(crate::registry::Error::invalid(format!(
        "{r} was found but is for {have}, not the platform {want} asked for"
    ))))
}

/// Only container images: a config of docker's or OCI's type, layers we can unpack.
fn check_types(m: &ImageManifest, r: &Reference) -> Result<()> {
    let ct = m.config.media_type.as_str();
    if ct != manifest::DOCKER_CONFIG && ct != manifest::OCI_CONFIG {
        return Err(Error::Registry(crate::registry::Error::invalid(format!(
            "{r} is not a container image: its config is of type {ct:?}"
        ))));
    }
    if let Some(l) = m
        .layers
        .iter()
        .find(|l| !manifest::is_layer_type(&l.media_type))
    {
        return Err(Error::Registry(crate::registry::Error::invalid(format!(
            "{r}: layer {} has media type {:?}, which is not a layer layerfs can unpack",
            l.digest, l.media_type
        ))));
    }
    Ok(())
}

/// A registry repository's layer blobs, as the store's intake reads blobs.
struct RegistryBlobs {
    repo: Repo,
    layers: HashMap<String, manifest::Descriptor>,
}

impl Blobs for RegistryBlobs {
    fn open(&self, name: &str) -> crate::store::error::Result<Box<dyn Read + Send>> {
        let d = self
            .layers
            .get(name)
            .ok_or_else(|| crate::store::error::Error::not_found("layer blob", name.to_string()))?;
        let r = self
            .repo
            .blob(&d.digest, d.size, &d.urls)
            .map_err(|e| crate::store::error::Error::Source(Box::new(e)))?;
        Ok(Box::new(r))
    }
    fn exists(&self, name: &str) -> crate::store::error::Result<bool> {
        Ok(self.layers.contains_key(name))
    }
    fn size(&self, name: &str) -> Option<u64> {
        self.layers.get(name).map(|d| d.size)
    }
}
