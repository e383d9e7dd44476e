//! Image records: `repositories.json`, configs in the imagedb, resolving what a user typed
//! (ref, full/`sha256:`/short ID), and the verbs that only touch metadata: tag, rm, prune,
//! import. (References themselves: `reference.rs`; times and sizes as docker prints them:
//! `human.rs`.)

use super::error::{Context, Error, Result, ResultExt, is_absent};
use super::human::{now_rfc3339, parse_rfc3339};
use super::layout::{Layout, read_text_opt, write_atomic};
use super::reference::Ref;
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
    /// The file, or no repositories when there is none yet.
    pub fn load(layout: &Layout) -> Result<Repositories> {
        let p = layout.repositories();
        match std::fs::read(&p).io_absent("reading", &p)? {
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::json(format!("corrupt {}", p.display()), e)),
            None => Ok(Repositories::default()),
        }
    }
    pub fn save(&self, layout: &Layout) -> Result<()> {
        let p = layout.repositories();
        let b = serde_json::to_vec(self)
            .map_err(|e| Error::json(format!("writing {}", p.display()), e))?;
        write_atomic(&p, &b)
    }
    pub fn set(&mut self, r: &Ref, id: &Digest) {
        self.repos
            .entry(r.name.clone())
            .or_default()
            .insert(r.to_string(), id.to_string());
    }
    /// Record `name@sha256:<manifest>` -> id, as Docker keeps repo digests.
    pub fn set_digest(&mut self, name: &str, manifest: &Digest, id: &Digest) {
        self.repos
            .entry(name.to_string())
            .or_default()
            .insert(format!("{name}@{manifest}"), id.to_string());
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
pub fn parse_config(bytes: &[u8]) -> Result<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::json("image config is not valid JSON", e))?;
    if !v.is_object() {
        return Err(Error::invalid("image config is not a JSON object"));
    }
    Ok(v)
}

/// `rootfs.diff_ids` of a config.
pub fn diff_ids(cfg: &serde_json::Value) -> Result<Vec<Digest>> {
    let rootfs = cfg
        .get("rootfs")
        .ok_or_else(|| Error::invalid("image config has no rootfs"))?;
    if let Some(t) = rootfs.get("type").and_then(|t| t.as_str())
        && t != "layers"
    {
        return Err(Error::invalid(format!(
            "image config rootfs.type is {t:?}, expected \"layers\""
        )));
    }
    rootfs
        .get("diff_ids")
        .and_then(|d| d.as_array())
        .ok_or_else(|| Error::invalid("image config has no rootfs.diff_ids"))?
        .iter()
        .map(|d| {
            let s = d
                .as_str()
                .ok_or_else(|| Error::invalid("non-string in rootfs.diff_ids"))?;
            super::digest(s)
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
    pub fn image_ids(&self) -> Result<Vec<Digest>> {
        let dir = self.layout.imagedb_content();
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).io("reading", &dir)? {
            let e = e.io("reading", &dir)?;
            // Other names (a `.NAME.tmpPID` of a write in flight) are no image.
            if let Ok(d) = Digest::parse(&e.file_name().to_string_lossy()) {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn config_bytes(&self, id: &Digest) -> Result<Vec<u8>> {
        let p = self.layout.image_config(id);
        std::fs::read(&p).io("reading the image config", &p)
    }

    /// An image's config, parsed.
    pub fn config(&self, id: &Digest) -> Result<serde_json::Value> {
        let p = self.layout.image_config(id);
        parse_config(&self.config_bytes(id)?).context(|| p.display().to_string())
    }

    /// What the imagedb keeps beside an image's config (either may be absent).
    pub fn image_metadata(&self, id: &Digest) -> Result<ImageMetadata> {
        let md = self.layout.image_metadata(id);
        Ok(ImageMetadata {
            parent: read_text_opt(&md.join("parent"))?,
            last_updated: read_text_opt(&md.join("lastUpdated"))?,
        })
    }

    /// Load one image's record.
    pub fn image(&self, id: &Digest, repos: &Repositories) -> Result<Image> {
        let config = self.config(id)?;
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

    /// What the user typed -> image ID: `name[:tag]`, `name@sha256:<manifest>` (a repo
    /// digest), full ID, `sha256:` ID or a unique prefix of an ID.
    pub fn resolve(&self, s: &str, repos: &Repositories) -> Result<Digest> {
        // `name[:tag]@sha256:...`: the image pulled by that manifest digest.
        if let Some((name, digest)) = s.rsplit_once('@') {
            let name = Ref::parse(name)?.name;
            let d = Digest::parse(digest).map_err(|e| {
                Error::invalid(format!("invalid reference {s:?}: digest {digest:?}: {e}"))
            })?;
            return repos
                .repos
                .get(&name)
                .and_then(|m| m.get(&format!("{name}@{d}")))
                .and_then(|v| Digest::parse(v).ok())
                .ok_or_else(|| Error::not_found("image", s));
        }
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
                    return Err(Error::invalid(format!(
                        "ambiguous image ID prefix {s:?}: it matches {n} images; give more characters"
                    )));
                }
            }
        }
        Err(Error::not_found("image", s))
    }

    /// `image tag SRC DST`.
    pub fn tag(&self, src: &str, dst: &str) -> Result<()> {
        (|| {
            let _l = self.lock()?;
            let mut repos = Repositories::load(&self.layout)?;
            let id = self.resolve(src, &repos)?;
            let r = Ref::parse(dst)?;
            repos.set(&r, &id);
            repos.save(&self.layout)
        })()
        .context(|| format!("tag {src} {dst}"))
    }

    /// Container ids and the images they use.
    pub fn images_in_use(&self) -> Result<BTreeMap<Digest, Vec<String>>> {
        let mut m: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
        for c in self.containers()? {
            m.entry(c.image.clone()).or_default().push(c.name.clone());
        }
        Ok(m)
    }

    /// `image rm`: what happened to each argument, in order (one lock for all of them).
    pub fn remove_images(&self, args: &[String], force: bool) -> Result<Vec<Removal>> {
        let _l = self.lock().context(|| "rm")?;
        Ok(args
            .iter()
            .map(|a| {
                let mut lines = Vec::new();
                let result = self
                    .remove_one(a, force, &mut lines)
                    .context(|| format!("rm {a}"));
                Removal { lines, result }
            })
            .collect())
    }

    fn remove_one(&self, a: &str, force: bool, out: &mut Vec<String>) -> Result<()> {
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
            return Err(Error::invalid(format!(
                "conflict: unable to remove image {a} ({}): it is used by container(s) {} (remove them first, or use -f)",
                id.short(),
                users.join(", ")
            )));
        }
        if by_ref.is_none() && tags.len() > 1 && !force {
            return Err(Error::invalid(format!(
                "conflict: unable to delete {} (must be forced): image is referenced in multiple repositories ({})",
                id.short(),
                tags.iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
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
    pub fn delete_image(&self, id: &Digest, out: &mut Vec<String>) -> Result<()> {
        let chains = chain_ids(&diff_ids(&self.config(id)?)?);
        let trash = self.staging()?;
        let p = self.layout.image_config(id);
        std::fs::rename(&p, trash.join("config")).io("removing", &p)?;
        // The image is gone with its config (image_ids lists configs): metadata left
        // behind is never read, so its removal is best effort.
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
        // Staging: the lock clears it too, whatever this leaves.
        let _ = remove_tree(&trash);
        Ok(())
    }

    /// Every chainID some image or container still needs. A config that cannot be read is
    /// an error, never "needs nothing": its layers would be deleted.
    pub fn used_chains(&self) -> Result<BTreeSet<Digest>> {
        let mut used = BTreeSet::new();
        let images = self.image_ids()?;
        let containers = self.containers()?;
        for id in images.iter().chain(containers.iter().map(|c| &c.image)) {
            used.extend(chain_ids(&diff_ids(&self.config(id)?)?));
        }
        Ok(used)
    }

    /// Remove one layer: layerdb record first (so it stops existing), then its files.
    fn remove_layer(&self, chain: &Digest, trash: &std::path::Path) -> Result<bool> {
        let Some(l) = self.layer(chain)? else {
            return Ok(false);
        };
        let meta = self.layout.layer_meta(chain);
        std::fs::rename(&meta, trash.join(chain.hex())).io("removing", &meta)?;
        let cache = self.layout.cache_dir(&l.cache_id);
        if let Some(link) = read_text_opt(&cache.join("link"))? {
            // A link left dangling is removed by the next gc_orphans.
            let _ = std::fs::remove_file(self.layout.links().join(link));
        }
        let tc = trash.join(&l.cache_id);
        if std::fs::rename(&cache, &tc)
            .io_absent("removing", &cache)?
            .is_some()
        {
            // In staging now: the lock clears it too.
            let _ = remove_tree(&tc);
        }
        Ok(true)
    }

    /// `image prune [-a]`: delete dangling (or all unused) images; returns lines to print
    /// and the bytes reclaimed.
    pub fn prune_images(&self, all: bool) -> Result<(Vec<String>, u64)> {
        self.prune_images_locked(all).context(|| "image prune")
    }

    fn prune_images_locked(&self, all: bool) -> Result<(Vec<String>, u64)> {
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

    fn layer_bytes(&self) -> Result<u64> {
        let mut n = 0;
        let dir = self.layout.layerdb();
        for e in std::fs::read_dir(&dir).io("reading", &dir)? {
            let e = e.io("reading", &dir)?;
            if let Ok(d) = Digest::parse(&e.file_name().to_string_lossy())
                && let Some(l) = self.layer(&d)?
            {
                n += l.size;
            }
        }
        Ok(n)
    }

    /// Remove `overlay2/` dirs and `l/` links that nothing records (left by a killed writer).
    /// A record that cannot be read is an error: what it names would look like an orphan.
    pub fn gc_orphans(&self) -> Result<()> {
        let known = self.known_cache_ids()?;
        let ov = self.layout.overlay2();
        for e in std::fs::read_dir(&ov).io("reading", &ov)? {
            let e = e.io("reading", &ov)?;
            if !known.contains(&*e.file_name().to_string_lossy()) {
                // Garbage either way: what is left now is tried again next time.
                let _ = remove_tree(&e.path());
            }
        }
        let links = self.layout.links();
        for e in read_dir_opt(&links)?.into_iter().flatten() {
            let p = e.io("reading", &links)?.path();
            match std::fs::metadata(&p) {
                Ok(_) => {}
                // Dangling: its layer dir is gone.
                Err(er) if is_absent(&er) => {
                    let _ = std::fs::remove_file(&p);
                }
                Err(er) => return Err(Error::io("reading", &p, er)),
            }
        }
        Ok(())
    }

    /// Every `overlay2/` name some record claims: layers' `cache-id`, containers' mount ids,
    /// and the container layers layerdb/mounts records (`mount-id`, ours and dockerd's, and
    /// dockerd's `init-id`, `<id>-init`, so a Docker data-root keeps its containers).
    fn known_cache_ids(&self) -> Result<BTreeSet<String>> {
        let mut known: BTreeSet<String> = BTreeSet::new();
        let ldb = self.layout.layerdb();
        for e in std::fs::read_dir(&ldb).io("reading", &ldb)? {
            let e = e.io("reading", &ldb)?;
            known.extend(read_text_opt(&e.path().join("cache-id"))?);
        }
        for c in self.containers()? {
            known.insert(c.mount_id.clone());
        }
        let mounts = self.layout.mounts_db();
        for e in read_dir_opt(&mounts)?.into_iter().flatten() {
            let e = e.io("reading", &mounts)?;
            for f in ["mount-id", "init-id"] {
                known.extend(read_text_opt(&e.path().join(f))?);
            }
        }
        known.insert("l".into());
        Ok(known)
    }

    /// `image import FILE|- [REF]`: a rootfs tarball becomes a one-layer image.
    pub fn import(
        &self,
        input: Option<&std::path::Path>,
        tag: Option<&str>,
        changes: &[String],
        message: Option<&str>,
    ) -> Result<Digest> {
        let shown = match input {
            Some(p) if p.as_os_str() != "-" => p.display().to_string(),
            _ => "-".to_string(),
        };
        self.import_locked(input, &shown, tag, changes, message)
            .context(|| format!("import {shown}"))
    }

    fn import_locked(
        &self,
        input: Option<&std::path::Path>,
        shown: &str,
        tag: Option<&str>,
        changes: &[String],
        message: Option<&str>,
    ) -> Result<Digest> {
        let r = tag.map(Ref::parse).transpose()?;
        let mut config = serde_json::json!({});
        apply_changes(&mut config, changes)?;
        let _l = self.lock()?;
        let reader: Box<dyn std::io::Read + Send> = match input {
            Some(p) if p.as_os_str() != "-" => Box::new(std::fs::File::open(p).io("opening", p)?),
            _ => Box::new(std::io::stdin()),
        };
        let st = self.stage_layer(reader)?;
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
        let bytes =
            serde_json::to_vec(&cfg).map_err(|e| Error::json("writing the image config", e))?;
        let tags: Vec<String> = r.iter().map(|r| r.to_string()).collect();
        self.commit_image(&bytes, &tags, None)
    }
}

/// An image's imagedb metadata: the image it was committed from, when it was last tagged.
pub struct ImageMetadata {
    pub parent: Option<String>,
    pub last_updated: Option<String>,
}

/// What `image rm` did for one argument: the lines to print (`Untagged: ...`,
/// `Deleted: ...`), then the error that stopped it, if one did.
pub struct Removal {
    pub lines: Vec<String>,
    pub result: Result<()>,
}

/// `read_dir`, `None` when the directory is not there.
fn read_dir_opt(p: &std::path::Path) -> Result<Option<std::fs::ReadDir>> {
    std::fs::read_dir(p).io_absent("reading", p)
}

/// Apply `--change` instructions (CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE) to a
/// config's `config` object.
pub fn apply_changes(cfg: &mut serde_json::Value, changes: &[String]) -> Result<()> {
    for ch in changes {
        let (inst, rest) = ch
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((ch.trim(), ""));
        let obj = cfg
            .as_object_mut()
            .ok_or_else(|| Error::invalid("config is not an object"))?;
        apply_change(obj, &inst.to_ascii_uppercase(), rest.trim())
            .context(|| format!("--change {ch:?}"))?;
    }
    Ok(())
}

/// One `--change` instruction `inst` (upper case) with its argument `rest`.
fn apply_change(
    obj: &mut serde_json::Map<String, serde_json::Value>,
    inst: &str,
    rest: &str,
) -> Result<()> {
    use serde_json::Value;
    // `["a","b"]` is exec form; anything else runs through the shell.
    let list = |s: &str| -> Value {
        if s.starts_with('[')
            && let Ok(v) = serde_json::from_str::<Value>(s)
        {
            return v;
        }
        serde_json::json!(["/bin/sh", "-c", s])
    };
    let key = match inst {
        "CMD" => "Cmd",
        "ENTRYPOINT" => "Entrypoint",
        "WORKDIR" => "WorkingDir",
        "USER" => "User",
        "ENV" => return set_env(obj, rest),
        "LABEL" => {
            let (k, v) = rest
                .split_once('=')
                .ok_or_else(|| Error::invalid("LABEL needs KEY=VALUE"))?;
            let l = obj.entry("Labels").or_insert_with(|| serde_json::json!({}));
            if let Some(m) = l.as_object_mut() {
                m.insert(
                    k.trim().into(),
                    Value::String(v.trim().trim_matches('"').into()),
                );
            }
            return Ok(());
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
            return Ok(());
        }
        other => return Err(Error::invalid(format!("unsupported instruction {other}"))),
    };
    let v = match key {
        "Cmd" | "Entrypoint" => list(rest),
        _ => Value::String(rest.into()),
    };
    obj.insert(key.into(), v);
    Ok(())
}

/// `ENV KEY=VALUE` (or `ENV KEY VALUE`): replaces an earlier value of KEY.
fn set_env(obj: &mut serde_json::Map<String, serde_json::Value>, rest: &str) -> Result<()> {
    let (k, v) = rest
        .split_once('=')
        .or_else(|| rest.split_once(' '))
        .ok_or_else(|| Error::invalid("ENV needs KEY=VALUE"))?;
    let (k, v) = (k.trim(), v.trim());
    let env = obj
        .entry("Env")
        .or_insert_with(|| serde_json::Value::Array(vec![]));
    if let Some(a) = env.as_array_mut() {
        let prefix = format!("{k}=");
        a.retain(|e| e.as_str().map(|s| !s.starts_with(&prefix)).unwrap_or(true));
        a.push(serde_json::Value::String(format!("{k}={v}")));
    }
    Ok(())
}
