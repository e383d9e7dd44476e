//! Image records: `repositories.json`, configs in the imagedb, resolving what a user typed
//! (ref, full/`sha256:`/short ID), and the verbs that only touch metadata: tag, rm, prune,
//! import. (References themselves: `reference.rs`; times and sizes as docker prints them:
//! `human.rs`.)

use super::human::{now_rfc3339, parse_rfc3339};
use super::layout::{Layout, write_atomic};
pub use super::reference::Ref;
use super::{Store, remove_tree};
use crate::digest::{Digest, chain_ids};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// `repositories.json`, in Docker's shape.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Repositories {
    #[serde(rename = "Repositories", default)]
    pub repos: BTreeMap<String, BTreeMap<String, String>>,
}

impl Repositories {
    pub fn load(layout: &Layout) -> Result<Repositories, String> {
        let p = layout.repositories();
        match std::fs::read(&p) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|e| format!("corrupt {}: {e}", p.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Repositories::default()),
            Err(e) => Err(format!("cannot read {}: {e}", p.display())),
        }
    }
    pub fn save(&self, layout: &Layout) -> Result<(), String> {
        let b = serde_json::to_vec(self).map_err(|e| e.to_string())?;
        write_atomic(&layout.repositories(), &b)
    }
    pub fn set(&mut self, r: &Ref, id: &Digest) {
        self.repos
            .entry(r.name.clone())
            .or_default()
            .insert(r.to_string(), id.to_string());
    }
    /// Record `name@sha256:<manifest>` -> id, as Docker keeps repo digests.
    pub fn set_digest(&mut self, r: &Ref, manifest: &Digest, id: &Digest) {
        self.repos
            .entry(r.name.clone())
            .or_default()
            .insert(format!("{}@{manifest}", r.name), id.to_string());
    }
    /// `name@sha256:...` refs of an image.
    pub fn digests_of(&self, id: &Digest) -> Vec<String> {
        let want = id.to_string();
        let mut out: Vec<String> = self
            .repos
            .values()
            .flat_map(|m| m.iter())
            .filter(|(k, v)| k.contains('@') && **v == want)
            .map(|(k, _)| k.clone())
            .collect();
        out.sort();
        out
    }
    /// Drop every digest ref of an image (when it is deleted).
    pub fn remove_digests(&mut self, id: &Digest) {
        let want = id.to_string();
        for m in self.repos.values_mut() {
            m.retain(|k, v| !(k.contains('@') && *v == want));
        }
        self.repos.retain(|_, m| !m.is_empty());
    }
    pub fn get(&self, r: &Ref) -> Option<Digest> {
        self.repos
            .get(&r.name)
            .and_then(|m| m.get(&r.to_string()))
            .and_then(|v| Digest::parse(v).ok())
    }
    pub fn remove(&mut self, r: &Ref) -> Option<Digest> {
        let m = self.repos.get_mut(&r.name)?;
        let v = m.remove(&r.to_string());
        if m.is_empty() {
            self.repos.remove(&r.name);
        }
        v.and_then(|v| Digest::parse(&v).ok())
    }
    /// Every `name:tag` -> id (digest refs skipped).
    pub fn all(&self) -> Vec<(Ref, Digest)> {
        let mut out = Vec::new();
        for (name, m) in &self.repos {
            for (full, id) in m {
                if full.contains('@') {
                    continue;
                }
                let tag = full.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
                if let Ok(id) = Digest::parse(id) {
                    out.push((
                        Ref {
                            name: name.clone(),
                            tag: tag.to_string(),
                        },
                        id,
                    ));
                }
            }
        }
        out
    }
    pub fn tags_of(&self, id: &Digest) -> Vec<Ref> {
        self.all()
            .into_iter()
            .filter(|(_, i)| i == id)
            .map(|(r, _)| r)
            .collect()
    }
}

/// Parse a config JSON.
pub fn parse_config(bytes: &[u8]) -> Result<serde_json::Value, String> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("image config is not valid JSON: {e}"))?;
    if !v.is_object() {
        return Err("image config is not a JSON object".into());
    }
    Ok(v)
}

/// `rootfs.diff_ids` of a config.
pub fn diff_ids(cfg: &serde_json::Value) -> Result<Vec<Digest>, String> {
    let rootfs = cfg.get("rootfs").ok_or("image config has no rootfs")?;
    if let Some(t) = rootfs.get("type").and_then(|t| t.as_str())
        && t != "layers"
    {
        return Err(format!(
            "image config rootfs.type is {t:?}, expected \"layers\""
        ));
    }
    rootfs
        .get("diff_ids")
        .and_then(|d| d.as_array())
        .ok_or("image config has no rootfs.diff_ids")?
        .iter()
        .map(|d| {
            d.as_str()
                .ok_or_else(|| "non-string in rootfs.diff_ids".to_string())
                .and_then(Digest::parse)
        })
        .collect()
}

/// Everything about one stored image.
#[derive(Debug, Clone)]
pub struct Image {
    pub id: Digest,
    pub config: serde_json::Value,
    pub diff_ids: Vec<Digest>,
    pub chain_ids: Vec<Digest>,
    pub tags: Vec<Ref>,
    /// `name@sha256:<manifest>` refs.
    pub digests: Vec<String>,
    pub size: u64,
    pub created: Option<i64>,
}

impl Image {
    pub fn created_str(&self) -> String {
        self.config
            .get("created")
            .and_then(|c| c.as_str())
            .unwrap_or("")
            .to_string()
    }
}

impl Store {
    /// Every image ID in the imagedb.
    pub fn image_ids(&self) -> Result<Vec<Digest>, String> {
        let dir = self.layout.imagedb_content();
        let mut out = Vec::new();
        for e in
            std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        {
            let e = e.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
            if let Ok(d) = Digest::parse(&e.file_name().to_string_lossy()) {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn config_bytes(&self, id: &Digest) -> Result<Vec<u8>, String> {
        let p = self.layout.image_config(id);
        std::fs::read(&p).map_err(|e| format!("cannot read image config {}: {e}", p.display()))
    }

    /// Load one image's record.
    pub fn image(&self, id: &Digest, repos: &Repositories) -> Result<Image, String> {
        let config = parse_config(&self.config_bytes(id)?)?;
        let diff_ids = diff_ids(&config)?;
        let chain_ids = chain_ids(&diff_ids);
        let mut size = 0;
        for c in &chain_ids {
            if let Some(l) = self.layer(c)? {
                size += l.size;
            }
        }
        let created = config
            .get("created")
            .and_then(|c| c.as_str())
            .and_then(parse_rfc3339);
        let mut tags = repos.tags_of(id);
        tags.sort_by_key(|r| r.to_string());
        Ok(Image {
            id: id.clone(),
            config,
            diff_ids,
            chain_ids,
            tags,
            digests: repos.digests_of(id),
            size,
            created,
        })
    }

    /// What the user typed -> image ID: `name[:tag]`, full ID, `sha256:` ID or a unique
    /// prefix of an ID.
    pub fn resolve(&self, s: &str, repos: &Repositories) -> Result<Digest, String> {
        if let Ok(r) = Ref::parse(s)
            && let Some(id) = repos.get(&r)
        {
            return Ok(id);
        }
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hex = hex.to_ascii_lowercase();
            let m: Vec<Digest> = self
                .image_ids()?
                .into_iter()
                .filter(|d| d.hex().starts_with(&hex))
                .collect();
            match m.len() {
                1 => return Ok(m[0].clone()),
                0 => {}
                n => {
                    return Err(format!(
                        "ambiguous image ID prefix {s:?}: it matches {n} images; give more characters"
                    ));
                }
            }
        }
        Err(format!("no such image: {s}"))
    }

    /// `image tag SRC DST`.
    pub fn tag(&self, src: &str, dst: &str) -> Result<(), String> {
        let _l = self.lock()?;
        let mut repos = Repositories::load(&self.layout)?;
        let id = self.resolve(src, &repos)?;
        let r = Ref::parse(dst)?;
        repos.set(&r, &id);
        repos.save(&self.layout)
    }

    /// Container ids and the images they use.
    pub fn images_in_use(&self) -> Result<BTreeMap<Digest, Vec<String>>, String> {
        let mut m: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
        for c in self.containers()? {
            m.entry(c.image.clone()).or_default().push(c.name.clone());
        }
        Ok(m)
    }

    /// `image rm`: lines to print (`Untagged: ...`, `Deleted: ...`).
    pub fn remove_images(&self, args: &[String], force: bool) -> Result<Vec<String>, String> {
        let _l = self.lock()?;
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for a in args {
            match self.remove_one(a, force, &mut out) {
                Ok(()) => {}
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            for l in &out {
                println!("{l}");
            }
            Err(errors.join("\nlayerfs: "))
        }
    }

    fn remove_one(&self, a: &str, force: bool, out: &mut Vec<String>) -> Result<(), String> {
        let mut repos = Repositories::load(&self.layout)?;
        let id = self.resolve(a, &repos)?;
        let by_ref = Ref::parse(a)
            .ok()
            .filter(|r| repos.get(r).as_ref() == Some(&id));
        let tags = repos.tags_of(&id);
        let users = self.images_in_use()?.remove(&id).unwrap_or_default();
        if let Some(r) = &by_ref
            && tags.len() > 1
        {
            repos.remove(r);
            repos.save(&self.layout)?;
            out.push(format!("Untagged: {r}"));
            return Ok(());
        }
        if !users.is_empty() && !force {
            return Err(format!(
                "conflict: unable to remove image {a} ({}): it is used by container(s) {} (remove them first, or use -f)",
                id.short(),
                users.join(", ")
            ));
        }
        if by_ref.is_none() && tags.len() > 1 && !force {
            return Err(format!(
                "conflict: unable to delete {} (must be forced): image is referenced in multiple repositories ({})",
                id.short(),
                tags.iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for t in &tags {
            repos.remove(t);
            out.push(format!("Untagged: {t}"));
        }
        repos.save(&self.layout)?;
        if !users.is_empty() {
            // Forced while containers use it: untag only, as docker does.
            return Ok(());
        }
        self.delete_image(&id, out)
    }

    /// Remove an image config and every layer no other image or container needs.
    pub fn delete_image(&self, id: &Digest, out: &mut Vec<String>) -> Result<(), String> {
        let cfg = parse_config(&self.config_bytes(id)?)?;
        let chains = chain_ids(&diff_ids(&cfg)?);
        let trash = self.staging()?;
        let p = self.layout.image_config(id);
        std::fs::rename(&p, trash.join("config"))
            .map_err(|e| format!("cannot remove {}: {e}", p.display()))?;
        let _ = remove_tree(&self.layout.image_metadata(id));
        let mut repos = Repositories::load(&self.layout)?;
        repos.remove_digests(id);
        repos.save(&self.layout)?;
        out.push(format!("Deleted: {id}"));
        let used = self.used_chains()?;
        for c in chains.iter().rev() {
            if used.contains(c) {
                break;
            }
            if self.remove_layer(c, &trash)? {
                out.push(format!("Deleted: {c}"));
            }
        }
        let _ = remove_tree(&trash);
        Ok(())
    }

    /// Every chainID some image or container still needs.
    pub fn used_chains(&self) -> Result<BTreeSet<Digest>, String> {
        let mut used = BTreeSet::new();
        for id in self.image_ids()? {
            if let Ok(cfg) = self.config_bytes(&id).and_then(|b| parse_config(&b))
                && let Ok(d) = diff_ids(&cfg)
            {
                used.extend(chain_ids(&d));
            }
        }
        for c in self.containers()? {
            if let Ok(cfg) = self.config_bytes(&c.image).and_then(|b| parse_config(&b))
                && let Ok(d) = diff_ids(&cfg)
            {
                used.extend(chain_ids(&d));
            }
        }
        Ok(used)
    }

    /// Remove one layer: layerdb record first (so it stops existing), then its files.
    fn remove_layer(&self, chain: &Digest, trash: &std::path::Path) -> Result<bool, String> {
        let Some(l) = self.layer(chain)? else {
            return Ok(false);
        };
        let meta = self.layout.layer_meta(chain);
        let t = trash.join(chain.hex());
        std::fs::rename(&meta, &t).map_err(|e| format!("cannot remove {}: {e}", meta.display()))?;
        let cache = self.layout.cache_dir(&l.cache_id);
        if let Ok(link) = super::layout::read_text(&cache.join("link")) {
            let _ = std::fs::remove_file(self.layout.links().join(link));
        }
        let tc = trash.join(&l.cache_id);
        if std::fs::rename(&cache, &tc).is_ok() {
            let _ = remove_tree(&tc);
        }
        Ok(true)
    }

    /// `image prune [-a]`: delete dangling (or all unused) images; returns lines to print
    /// and the bytes reclaimed.
    pub fn prune_images(&self, all: bool) -> Result<(Vec<String>, u64), String> {
        let _l = self.lock()?;
        let mut repos = Repositories::load(&self.layout)?;
        let in_use = self.images_in_use()?;
        let before = self.layer_bytes()?;
        let mut out = Vec::new();
        for id in self.image_ids()? {
            if in_use.contains_key(&id) {
                continue;
            }
            let tags = repos.tags_of(&id);
            if !tags.is_empty() && !all {
                continue;
            }
            for t in &tags {
                repos.remove(t);
                out.push(format!("untagged: {t}"));
            }
            repos.save(&self.layout)?;
            let mut lines = Vec::new();
            self.delete_image(&id, &mut lines)?;
            out.extend(
                lines
                    .into_iter()
                    .map(|l| l.replacen("Deleted:", "deleted:", 1)),
            );
        }
        self.gc_orphans()?;
        let after = self.layer_bytes()?;
        Ok((out, before.saturating_sub(after)))
    }

    fn layer_bytes(&self) -> Result<u64, String> {
        let mut n = 0;
        let dir = self.layout.layerdb();
        for e in std::fs::read_dir(&dir)
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .flatten()
        {
            if let Ok(d) = Digest::parse(&e.file_name().to_string_lossy())
                && let Ok(Some(l)) = self.layer(&d)
            {
                n += l.size;
            }
        }
        Ok(n)
    }

    /// Remove `overlay2/` dirs and `l/` links that nothing records (left by a killed writer).
    pub fn gc_orphans(&self) -> Result<(), String> {
        let mut known: BTreeSet<String> = BTreeSet::new();
        let ldb = self.layout.layerdb();
        for e in std::fs::read_dir(&ldb)
            .map_err(|e| format!("cannot read {}: {e}", ldb.display()))?
            .flatten()
        {
            if let Ok(c) = super::layout::read_text(&e.path().join("cache-id")) {
                known.insert(c);
            }
        }
        for c in self.containers()? {
            known.insert(c.mount_id.clone());
        }
        // Container layers as layerdb/mounts records them: `mount-id` (ours and dockerd's)
        // and dockerd's `init-id` (`<id>-init`), so a Docker data-root keeps its containers.
        if let Ok(rd) = std::fs::read_dir(self.layout.mounts_db()) {
            for e in rd.flatten() {
                for f in ["mount-id", "init-id"] {
                    if let Ok(id) = super::layout::read_text(&e.path().join(f)) {
                        known.insert(id);
                    }
                }
            }
        }
        known.insert("l".into());
        let ov = self.layout.overlay2();
        for e in std::fs::read_dir(&ov)
            .map_err(|e| format!("cannot read {}: {e}", ov.display()))?
            .flatten()
        {
            let n = e.file_name().to_string_lossy().into_owned();
            if !known.contains(&n) {
                let _ = remove_tree(&e.path());
            }
        }
        if let Ok(rd) = std::fs::read_dir(self.layout.links()) {
            for e in rd.flatten() {
                if std::fs::metadata(e.path()).is_err() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }

    /// `image import FILE|- [REF]`: a rootfs tarball becomes a one-layer image.
    pub fn import(
        &self,
        input: Option<&std::path::Path>,
        tag: Option<&str>,
        changes: &[String],
        message: Option<&str>,
    ) -> Result<Digest, String> {
        let r = tag.map(Ref::parse).transpose()?;
        let mut config = serde_json::json!({});
        apply_changes(&mut config, changes)?;
        let _l = self.lock()?;
        let (reader, shown): (Box<dyn std::io::Read + Send>, String) = match input {
            Some(p) if p.as_os_str() != "-" => (
                Box::new(
                    std::fs::File::open(p)
                        .map_err(|e| format!("cannot open {}: {e}", p.display()))?,
                ),
                p.display().to_string(),
            ),
            _ => (Box::new(std::io::stdin()), "-".to_string()),
        };
        let st = self
            .stage_layer(reader)
            .map_err(|e| format!("{shown}: {e}"))?;
        let diff = st.unpacked.diff_id.clone();
        let now = now_rfc3339();
        let cfg = serde_json::json!({
            "architecture": super::archive::host_arch(),
            "config": config,
            "created": now,
            "history": [{"created": now, "created_by": format!("layerfs image import {shown}"), "comment": message.unwrap_or("Imported from tarball")}],
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff.to_string()]},
        });
        self.commit_layer(st, &diff, None)?;
        let bytes = serde_json::to_vec(&cfg).map_err(|e| e.to_string())?;
        let tags: Vec<String> = r.iter().map(|r| r.to_string()).collect();
        self.commit_image(&bytes, &tags, None)
    }
}

/// Apply `--change` instructions (CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE) to a
/// config's `config` object.
pub fn apply_changes(cfg: &mut serde_json::Value, changes: &[String]) -> Result<(), String> {
    use serde_json::Value;
    for ch in changes {
        let (inst, rest) = ch
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((ch.trim(), ""));
        let rest = rest.trim();
        let list = |s: &str| -> Value {
            if s.starts_with('[')
                && let Ok(v) = serde_json::from_str::<Value>(s)
            {
                return v;
            }
            serde_json::json!(["/bin/sh", "-c", s])
        };
        let obj = cfg.as_object_mut().ok_or("config is not an object")?;
        match inst.to_ascii_uppercase().as_str() {
            "CMD" => {
                obj.insert("Cmd".into(), list(rest));
            }
            "ENTRYPOINT" => {
                obj.insert("Entrypoint".into(), list(rest));
            }
            "WORKDIR" => {
                obj.insert("WorkingDir".into(), Value::String(rest.into()));
            }
            "USER" => {
                obj.insert("User".into(), Value::String(rest.into()));
            }
            "ENV" => {
                let kv = if let Some((k, v)) = rest.split_once('=') {
                    format!("{}={}", k.trim(), v.trim())
                } else if let Some((k, v)) = rest.split_once(' ') {
                    format!("{}={}", k.trim(), v.trim())
                } else {
                    return Err(format!("--change {ch:?}: ENV needs KEY=VALUE"));
                };
                let env = obj.entry("Env").or_insert_with(|| Value::Array(vec![]));
                if let Some(a) = env.as_array_mut() {
                    let key = kv.split('=').next().unwrap_or("").to_string();
                    a.retain(|e| {
                        e.as_str()
                            .map(|s| !s.starts_with(&format!("{key}=")))
                            .unwrap_or(true)
                    });
                    a.push(Value::String(kv));
                }
            }
            "LABEL" => {
                let (k, v) = rest
                    .split_once('=')
                    .ok_or_else(|| format!("--change {ch:?}: LABEL needs KEY=VALUE"))?;
                let l = obj.entry("Labels").or_insert_with(|| serde_json::json!({}));
                if let Some(m) = l.as_object_mut() {
                    m.insert(
                        k.trim().into(),
                        Value::String(v.trim().trim_matches('"').into()),
                    );
                }
            }
            "EXPOSE" => {
                let e = obj
                    .entry("ExposedPorts")
                    .or_insert_with(|| serde_json::json!({}));
                if let Some(m) = e.as_object_mut() {
                    for p in rest.split_whitespace() {
                        let p = if p.contains('/') {
                            p.to_string()
                        } else {
                            format!("{p}/tcp")
                        };
                        m.insert(p, serde_json::json!({}));
                    }
                }
            }
            other => return Err(format!("--change {ch:?}: unsupported instruction {other}")),
        }
    }
    Ok(())
}
