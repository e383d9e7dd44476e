//! `push`: a stored image to a registry. Each layer goes only if the registry lacks it: a
//! blob this store knows for the layer (docker's distribution metadata) is checked with
//! `HEAD`, or mounted from another repository of the same registry; otherwise the layer tar
//! is rebuilt from the layer dir, compressed and streamed up in one pass (no temporary
//! file). Then the config and the manifest; the manifest digest becomes a repo digest.

use super::{Error, Result};
use crate::digest::{Digest, chain_ids};
use crate::registry::client::Repo;
use crate::registry::manifest::{self, Descriptor, ImageManifest};
use crate::registry::reference::Reference;
use crate::registry::session::Session;
use crate::store::Store;
use crate::store::images::{self, Repositories};
use crate::store::reference::Ref;
use std::io::Write;

/// Layer compression for blobs that must be uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
}

impl Compression {
    pub fn parse(s: &str) -> std::result::Result<Compression, String> {
        match s {
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            o => Err(format!("unknown compression {o:?}: gzip or zstd")),
        }
    }
}

/// What became of one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    Preparing,
    /// The registry has it in this repository.
    Exists,
    /// Linked from another repository of the registry.
    Mounted(String),
    Pushed,
}

/// Where push events go (the CLI prints them); `key` is 12 hex of the layer's diffID.
pub trait PushReport: Sync {
    fn layer(&self, key: &str, event: &PushEvent);
}

pub struct Pushed {
    pub tag: String,
    pub digest: Digest,
    pub size: usize,
}

/// Push `r` (a tag of a stored image) to its registry.
pub fn push(
    store: &Store,
    session: &Session,
    r: &Reference,
    compression: Compression,
    report: &dyn PushReport,
) -> Result<Pushed> {
    let tag = r.tag_or_default().unwrap_or("latest").to_string();
    let local = format!("{}:{tag}", r.familiar_name());
    let repos = Repositories::load(&store.layout)?;
    let id = repos.get(&Ref::parse(&local)?).ok_or_else(|| {
        crate::store::error::Error::not_found(
            "image",
            format!("{local} (tag it first: layerfs tag IMAGE {local})"),
        )
    })?;
    let config = store.config_bytes(&id)?;
    let diff_ids = images::diff_ids(&images::parse_config(&config)?)?;
    let chains = chain_ids(&diff_ids);
    let repo = Repo::new(session.endpoint(&r.domain)?, &r.path);
    let layer_type = match compression {
        Compression::Gzip => manifest::DOCKER_LAYER_GZIP,
        Compression::Zstd => manifest::OCI_LAYER_ZSTD,
    };
    for d in &diff_ids {
        report.layer(&short(d), &PushEvent::Preparing);
    }
    let layers = crate::workers::map_indexed(diff_ids.len(), 3, |i| {
        let ctx = |e: Error| context(e, &format!("layer {}", diff_ids[i]));
        push_layer(
            store,
            &repo,
            r,
            &diff_ids[i],
            &chains[i],
            compression,
            layer_type,
            report,
        )
        .map_err(ctx)
    })
    .into_iter()
    .map(|r| {
        r.unwrap_or_else(|| {
            Err(crate::store::error::Error::invalid("a layer upload worker failed").into())
        })
    })
    .collect::<Result<Vec<_>>>()?;
    let cfg_digest = repo.upload_bytes(&config)?;
    let (m, manifest_type) = manifest_of(layers, cfg_digest, config.len() as u64);
    let bytes = serde_json::to_vec_pretty(&m)
        .map_err(|e| crate::store::error::Error::json("the manifest", e))?;
    let digest = repo.put_manifest(&tag, manifest_type, &bytes)?;
    {
        let _lock = store.lock()?;
        let mut repos = Repositories::load(&store.layout)?;
        repos.set_digest(&r.familiar_name(), &digest, &id);
        repos.save(&store.layout)?;
    }
    Ok(Pushed {
        tag,
        digest,
        size: bytes.len(),
    })
}

/// The manifest of the pushed layers and config, and its media type. Docker's manifest
/// holds gzip layers only: anything else (a zstd upload, a reused zstd or plain blob) makes
/// it an OCI manifest, every layer typed the OCI way.
fn manifest_of(
    layers: Vec<Descriptor>,
    config: Digest,
    config_size: u64,
) -> (ImageManifest, &'static str) {
    let all_gzip = layers
        .iter()
        .all(|l| layer_kind(&l.media_type) == Kind::Gzip);
    let (config_type, manifest_type) = if all_gzip {
        (manifest::DOCKER_CONFIG, manifest::DOCKER_MANIFEST)
    } else {
        (manifest::OCI_CONFIG, manifest::OCI_MANIFEST)
    };
    let layers = layers
        .into_iter()
        .map(|mut l| {
            l.media_type = typed(layer_kind(&l.media_type), all_gzip).into();
            l
        })
        .collect();
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(manifest_type.into()),
        config: Descriptor {
            media_type: config_type.into(),
            digest: config,
            size: config_size,
            urls: vec![],
            platform: None,
            annotations: None,
        },
        layers,
    };
    (m, manifest_type)
}

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gzip,
    Zstd,
    Plain,
}

fn layer_kind(mt: &str) -> Kind {
    if mt.ends_with("zstd") {
        Kind::Zstd
    } else if mt.ends_with("gzip") {
        Kind::Gzip
    } else {
        Kind::Plain
    }
}

/// The media type of a layer of that kind in a Docker (`docker`) or OCI manifest.
fn typed(k: Kind, docker: bool) -> &'static str {
    match (k, docker) {
        (Kind::Gzip, true) => manifest::DOCKER_LAYER_GZIP,
        (Kind::Gzip, false) => manifest::OCI_LAYER_GZIP,
        (Kind::Zstd, _) => manifest::OCI_LAYER_ZSTD,
        (Kind::Plain, _) => manifest::OCI_LAYER,
    }
}

fn short(d: &Digest) -> String {
    d.hex()[..12].to_string()
}

fn context(e: Error, what: &str) -> Error {
    match e {
        Error::Registry(r) => Error::Registry(r.context(what.to_string())),
        Error::Store(s) => Error::Store(s.context(what.to_string())),
        o => o,
    }
}

/// One layer: reuse a blob the registry has, else upload. Its descriptor.
#[allow(clippy::too_many_arguments)]
fn push_layer(
    store: &Store,
    repo: &Repo,
    r: &Reference,
    diff_id: &Digest,
    chain: &Digest,
    compression: Compression,
    layer_type: &str,
    report: &dyn PushReport,
) -> Result<Descriptor> {
    let key = short(diff_id);
    let here = r.full_name();
    let known = store.blobs_of(diff_id)?;
    let desc = |digest: Digest, size: u64, mt: &str| Descriptor {
        media_type: mt.to_string(),
        digest,
        size,
        urls: vec![],
        platform: None,
        annotations: None,
    };
    for k in &known {
        let mt = k
            .media_type
            .clone()
            .unwrap_or(manifest::DOCKER_LAYER_GZIP.into());
        if k.source_repository == here
            || known_elsewhere_in(&k.source_repository, &r.domain).is_none()
        {
            if let Some(size) = repo.blob_exists(&k.digest)? {
                report.layer(&key, &PushEvent::Exists);
                return Ok(desc(k.digest.clone(), size, &mt));
            }
            continue;
        }
        if let Some(from) = known_elsewhere_in(&k.source_repository, &r.domain)
            && repo.mount_blob(&k.digest, &from)?
        {
            let size = repo.blob_exists(&k.digest)?.unwrap_or(0);
            store.record_blob(&k.digest, diff_id, &here, Some(&mt))?;
            report.layer(&key, &PushEvent::Mounted(from));
            return Ok(desc(k.digest.clone(), size, &mt));
        }
    }
    let (digest, size) = upload_layer(store, repo, chain, compression)?;
    store.record_blob(&digest, diff_id, &here, Some(layer_type))?;
    report.layer(&key, &PushEvent::Pushed);
    Ok(desc(digest, size, layer_type))
}

/// `domain/path` of another repository on the same registry: its path.
fn known_elsewhere_in(source: &str, domain: &str) -> Option<String> {
    let path = source.strip_prefix(domain)?.strip_prefix('/')?;
    Some(path.to_string())
}

/// Rebuild, compress and stream one layer; a layer dir that no longer matches its diffID
/// fails the upload before it is committed (the writer's result is checked before `PUT`).
fn upload_layer(
    store: &Store,
    repo: &Repo,
    chain: &Digest,
    compression: Compression,
) -> Result<(Digest, u64)> {
    let (mut rd, wr) = std::io::pipe().map_err(|e| {
        crate::store::error::Error::io("creating", "a pipe for the layer upload", e)
    })?;
    std::thread::scope(|s| {
        let mut writer = Some(s.spawn(move || write_compressed(store, chain, compression, wr)));
        let mut verify = |_: &Digest, _: u64| -> std::result::Result<(), String> {
            match writer.take().map(|h| h.join()) {
                Some(Ok(Ok(()))) | None => Ok(()),
                Some(Ok(Err(e))) => Err(e.to_string()),
                Some(Err(_)) => Err("the layer writer panicked".into()),
            }
        };
        let up = repo.upload(&mut rd, &mut verify);
        // An upload that broke off leaves the writer blocked on the pipe: close it.
        drop(rd);
        if let Some(h) = writer.take() {
            let _ = h.join();
        }
        Ok(up?)
    })
}

/// The layer tar, rebuilt and compressed into `w`.
fn write_compressed(
    store: &Store,
    chain: &Digest,
    compression: Compression,
    w: std::io::PipeWriter,
) -> crate::store::error::Result<()> {
    let w = std::io::BufWriter::with_capacity(256 << 10, w);
    let io = |e| crate::store::error::Error::io("compressing", "the layer", e);
    match compression {
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(w, flate2::Compression::default());
            crate::store::save::write_layer(store, chain, &mut enc)?;
            enc.finish().and_then(|mut w| w.flush()).map_err(io)
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(w, 3).map_err(io)?;
            crate::store::save::write_layer(store, chain, &mut enc)?;
            enc.finish().and_then(|mut w| w.flush()).map_err(io)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(mt: &str, n: u8) -> Descriptor {
        Descriptor {
            media_type: mt.into(),
            digest: Digest::of(&[n]),
            size: 1,
            urls: vec![],
            platform: None,
            annotations: None,
        }
    }

    #[test]
    fn docker_manifests_hold_gzip_layers_only() {
        let gz = vec![
            layer(manifest::DOCKER_LAYER_GZIP, 1),
            layer(manifest::OCI_LAYER_GZIP, 2),
        ];
        let (m, t) = manifest_of(gz, Digest::of(b"c"), 1);
        assert_eq!(t, manifest::DOCKER_MANIFEST);
        assert_eq!(m.config.media_type, manifest::DOCKER_CONFIG);
        assert!(
            m.layers
                .iter()
                .all(|l| l.media_type == manifest::DOCKER_LAYER_GZIP)
        );
        let mixed = vec![
            layer(manifest::DOCKER_LAYER_GZIP, 1),
            layer(manifest::OCI_LAYER_ZSTD, 2),
            layer(manifest::OCI_LAYER, 3),
        ];
        let (m, t) = manifest_of(mixed, Digest::of(b"c"), 1);
        assert_eq!(t, manifest::OCI_MANIFEST);
        assert_eq!(m.config.media_type, manifest::OCI_CONFIG);
        let types: Vec<&str> = m.layers.iter().map(|l| l.media_type.as_str()).collect();
        assert_eq!(
            types,
            [
                manifest::OCI_LAYER_GZIP,
                manifest::OCI_LAYER_ZSTD,
                manifest::OCI_LAYER
            ]
        );
    }

    #[test]
    fn mount_sources_are_repositories_of_the_same_registry() {
        assert_eq!(
            known_elsewhere_in("127.0.0.1:5000/team/a", "127.0.0.1:5000").as_deref(),
            Some("team/a")
        );
        assert_eq!(
            known_elsewhere_in("127.0.0.1:5001/team/a", "127.0.0.1:5000"),
            None
        );
        assert_eq!(
            known_elsewhere_in("docker.io/library/busybox", "docker.io").as_deref(),
            Some("library/busybox")
        );
        assert_eq!(known_elsewhere_in("quay.io/x", "quay.io:443"), None);
    }
}
