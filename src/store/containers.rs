//! Containers: a writable layer over an image, the filesystem side of `docker container`.
//!
//! ```text
//! containers/<id>/config.json                 {Id, Name, Image, ImageRef, Created, MountId}
//! image/overlay2/layerdb/mounts/<id>/         mount-id, parent (top chainID of the image)
//! overlay2/<id>/{diff/,work/,merged/,link,lower}
//! ```
//!
//! `diff`, `commit` and `export` read the upper dir and the image layers directly (see
//! [`super::merged`]); only `mount` needs the union filesystem (its plan: `plans.rs`).

use super::error::{Context, Error, Result, ResultExt, is_absent};
use super::human;
use super::images::{self, Repositories};
use super::layout::{random_hex, read_text, read_text_opt, short_link_id, write_atomic};
pub use super::merged::Change;
use super::merged::Stack;
use super::plans::{container_fsname, mounted_at};
use super::reference::Ref;
use super::tarout::TarOut;
use super::{Store, remove_tree};
use crate::digest::{Digest, HashingWriter, chain_ids};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One container record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Image")]
    pub image: Digest,
    #[serde(rename = "ImageRef")]
    pub image_ref: String,
    #[serde(rename = "Created")]
    pub created: String,
    #[serde(rename = "MountId")]
    pub mount_id: String,
}

const LEFT: &[&str] = &[
    "admiring",
    "brave",
    "calm",
    "clever",
    "dazzling",
    "eager",
    "elated",
    "focused",
    "gallant",
    "happy",
    "jolly",
    "keen",
    "kind",
    "lucid",
    "modest",
    "nifty",
    "optimistic",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "stoic",
    "tender",
    "upbeat",
    "vibrant",
    "wizardly",
    "youthful",
    "zealous",
];
const RIGHT: &[&str] = &[
    "albattani",
    "babbage",
    "curie",
    "darwin",
    "euclid",
    "fermat",
    "galileo",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "lovelace",
    "meitner",
    "newton",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "wozniak",
    "yonath",
];

/// A random `adjective_scientist` name, as docker makes.
pub fn random_name() -> String {
    let b = super::layout::random_bytes(2);
    format!(
        "{}_{}",
        LEFT[b[0] as usize % LEFT.len()],
        RIGHT[b[1] as usize % RIGHT.len()]
    )
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

impl Store {
    /// Every container record.
    pub fn containers(&self) -> Result<Vec<Container>> {
        let dir = self.layout.containers();
        let mut out = Vec::new();
        let Some(rd) = std::fs::read_dir(&dir).io_absent("reading", &dir)? else {
            return Ok(out);
        };
        for e in rd {
            let p = e.io("reading", &dir)?.path().join("config.json");
            // A directory without one is not ours (dockerd keeps `config.v2.json` there).
            if let Some(b) = std::fs::read(&p).io_absent("reading", &p)? {
                let c: Container = serde_json::from_slice(&b)
                    .map_err(|er| Error::json(format!("corrupt {}", p.display()), er))?;
                out.push(c);
            }
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.name.cmp(&b.name)));
        Ok(out)
    }

    /// A container by name, full ID or unique ID prefix.
    pub fn container(&self, s: &str) -> Result<Container> {
        let all = self.containers()?;
        if let Some(c) = all.iter().find(|c| c.name == s || c.id == s) {
            return Ok(c.clone());
        }
        let m: Vec<&Container> = all
            .iter()
            .filter(|c| !s.is_empty() && c.id.starts_with(s))
            .collect();
        match m.len() {
            1 => Ok(m[0].clone()),
            0 => Err(Error::not_found("container", s)),
            n => Err(Error::invalid(format!(
                "ambiguous container ID prefix {s:?}: it matches {n} containers"
            ))),
        }
    }

    /// `container create IMAGE [--name N]`.
    pub fn create_container(&self, image: &str, name: Option<&str>) -> Result<Container> {
        self.create_container_locked(image, name)
            .context(|| format!("create {image}"))
    }

    fn create_container_locked(&self, image: &str, name: Option<&str>) -> Result<Container> {
        let _l = self.lock()?;
        let repos = Repositories::load(&self.layout)?;
        let id = self.resolve(image, &repos)?;
        let img = self.image(&id, &repos)?;
        let layers = self.layers_of(&img.diff_ids)?;
        let name = new_name(name, &self.containers()?)?;
        let cid = random_hex(32);
        // What the user typed, when it is a tag of the image; else the short ID.
        let image_ref = match Ref::parse(image) {
            Ok(r) if repos.get(&r).is_some() => r.to_string(),
            _ => id.short().to_string(),
        };
        let c = Container {
            id: cid.clone(),
            name,
            image: id.clone(),
            image_ref,
            created: human::now_rfc3339(),
            mount_id: cid.clone(),
        };
        let stage = self.staging()?;
        let link = self.stage_container(&stage, &c, &layers, img.chain_ids.last())?;
        let dest = self.layout.cache_dir(&cid);
        std::fs::rename(stage.join("cache"), &dest).io("creating", &dest)?;
        let l = self.layout.links().join(&link);
        std::os::unix::fs::symlink(format!("../{cid}/diff"), &l).io("creating", &l)?;
        let mdest = self.layout.mounts_db().join(&cid);
        std::fs::rename(stage.join("mounts"), &mdest).io("creating", &mdest)?;
        let cd = self.layout.container_dir(&cid);
        std::fs::rename(stage.join("container"), &cd).io("creating", &cd)?;
        // Staging (empty now): the lock clears it too.
        let _ = remove_tree(&stage);
        Ok(c)
    }

    /// Write a new container's three records into `stage` (`cache/`: its layer dir,
    /// `mounts/`: the layerdb mount record, `container/`: its config); returns its link id.
    fn stage_container(
        &self,
        stage: &Path,
        c: &Container,
        layers: &[super::LayerInfo],
        top: Option<&Digest>,
    ) -> Result<String> {
        let cache = stage.join("cache");
        for d in ["diff", "work", "merged"] {
            std::fs::create_dir_all(cache.join(d)).io("creating", cache.join(d))?;
        }
        let link = short_link_id();
        write_atomic(&cache.join("link"), link.as_bytes())?;
        let mut lower = Vec::new();
        for l in layers.iter().rev() {
            let lk = read_text(&self.layout.cache_dir(&l.cache_id).join("link"))?;
            lower.push(format!("l/{lk}"));
        }
        write_atomic(&cache.join("lower"), lower.join(":").as_bytes())?;
        let mounts = stage.join("mounts");
        std::fs::create_dir_all(&mounts).io("creating", &mounts)?;
        write_atomic(&mounts.join("mount-id"), c.mount_id.as_bytes())?;
        if let Some(top) = top {
            write_atomic(&mounts.join("parent"), top.to_string().as_bytes())?;
        }
        let cdir = stage.join("container");
        std::fs::create_dir_all(&cdir).io("creating", &cdir)?;
        write_atomic(&cdir.join("config.json"), &container_json(c)?)?;
        Ok(link)
    }

    fn container_stack(&self, c: &Container) -> Result<Stack> {
        let plan = self.container_plan(c)?;
        let mut paths = vec![plan.upper.clone().unwrap_or_default()];
        paths.extend(plan.lowers.iter().cloned());
        let mut stack = Stack::open(&paths, true)?;
        // The upper dir was written by the same store owner as the image's layers (through
        // the mount): what that owner owns there and has no override for (their new files,
        // copied-up symlinks and fifos) is the image's root too in commit and export.
        if stack.root_ids[0].is_none() {
            stack.root_ids[0] = stack.root_ids[1..].iter().flatten().next().copied();
        }
        Ok(stack)
    }

    /// A regular file of the container's merged view (`etc/passwd`): its bytes, `None`
    /// when the path is absent or not a regular file. Read from the layers, no mount.
    pub fn container_file(&self, c: &Container, rel: &str) -> Result<Option<Vec<u8>>> {
        let stack = self.container_stack(c)?;
        let Some(n) = stack.lookup(Path::new(rel))? else {
            return Ok(None);
        };
        if n.st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Ok(None);
        }
        let p = stack.paths[n.layer].join(&n.src);
        std::fs::read(&p).map(Some).io("reading", &p)
    }

    /// `container diff`: A/C/D lines, sorted by path.
    pub fn container_diff(&self, c: &Container) -> Result<Vec<Change>> {
        let diff = || -> Result<Vec<Change>> {
            let stack = self.container_stack(c)?;
            let mut lower = Stack::open(&stack.paths[1..], false)?;
            lower.root_ids = stack.root_ids[1..].to_vec();
            stack.diff(&lower)
        };
        diff().context(|| format!("diff {}", c.name))
    }

    /// Write the container's changes as a layer tar (OCI whiteouts) into `w`.
    pub fn container_layer_tar<W: std::io::Write>(&self, c: &Container, w: W) -> Result<W> {
        let stack = self.container_stack(c)?;
        let mut t = TarOut::new(w);
        stack.layer_tar(Path::new(""), &mut t)?;
        t.finish()
    }

    /// `container commit N [REF]`: returns the new image ID.
    pub fn commit_container(
        &self,
        name: &str,
        tag: Option<&str>,
        message: Option<&str>,
        author: Option<&str>,
        changes: &[String],
    ) -> Result<Digest> {
        let commit = || -> Result<Digest> {
            let r = tag.map(Ref::parse).transpose()?;
            let _l = self.lock()?;
            let c = self.container(name)?;
            let mut cfg = self.config(&c.image)?;
            let mut diffs = images::diff_ids(&cfg)?;
            let parent_chain = chain_ids(&diffs).last().cloned();
            diffs.push(self.commit_layer_of(&c, parent_chain.as_ref(), &diffs)?);
            let now = human::now_rfc3339();
            commit_config(&mut cfg, &c, &diffs, &now, message, author, changes)?;
            let bytes =
                serde_json::to_vec(&cfg).map_err(|e| Error::json("writing the image config", e))?;
            let tags: Vec<String> = r.iter().map(|r| r.to_string()).collect();
            self.commit_image(&bytes, &tags, Some(&c.image))
        };
        commit().context(|| format!("commit {name}"))
    }

    /// The container's changes as a new layer on top of `diffs` (its parent `parent`):
    /// written as a tar, unpacked like any loaded layer, moved in; its diffID.
    fn commit_layer_of(
        &self,
        c: &Container,
        parent: Option<&Digest>,
        diffs: &[Digest],
    ) -> Result<Digest> {
        let stage = self.staging()?;
        let tarp = stage.join("layer.tar");
        let f = std::fs::File::create(&tarp).io("creating", &tarp)?;
        let hw = self.container_layer_tar(c, HashingWriter::new(std::io::BufWriter::new(f)))?;
        let (bw, _, _) = hw.finish();
        bw.into_inner()
            .map_err(|e| Error::io("writing", &tarp, e.into_error()))?;
        let f = std::fs::File::open(&tarp).io("opening", &tarp)?;
        let st = self.stage_layer(Box::new(f))?;
        let diff = st.unpacked.diff_id.clone();
        let mut all = diffs.to_vec();
        all.push(diff.clone());
        let chain = chain_ids(&all)
            .last()
            .cloned()
            .ok_or_else(|| Error::invalid("empty chain"))?;
        self.commit_layer(st, &chain, parent)?;
        // Staging: the lock clears it too.
        let _ = remove_tree(&stage);
        Ok(diff)
    }

    /// `container export`: the merged view as one tar.
    pub fn export_container<W: std::io::Write>(&self, c: &Container, w: W) -> Result<W> {
        let export = || -> Result<W> {
            let stack = self.container_stack(c)?;
            let root = stack.root()?;
            let mut t = TarOut::new(w);
            t.merged_subtree(&stack, &root)?;
            t.finish()
        };
        export().context(|| format!("export {}", c.name))
    }

    /// `container rm`.
    pub fn remove_container(&self, s: &str, force: bool) -> Result<Container> {
        let rm = || -> Result<Container> {
            let _l = self.lock()?;
            let c = self.container(s)?;
            if !force && let Some(m) = mounted_at(&container_fsname(&c))?.first() {
                return Err(Error::invalid(format!(
                    "container {} is mounted at {m}: unmount it first (fusermount3 -u {m}) or use -f",
                    c.name
                )));
            }
            self.remove_container_files(&c)?;
            Ok(c)
        };
        rm().context(|| format!("rm {s}"))
    }

    /// A container's records and layer dir, record first (the commit point).
    fn remove_container_files(&self, c: &Container) -> Result<()> {
        let trash = self.staging()?;
        let cd = self.layout.container_dir(&c.id);
        std::fs::rename(&cd, trash.join("container")).io("removing", &cd)?;
        let md = self.layout.mounts_db().join(&c.id);
        std::fs::rename(&md, trash.join("mounts")).io_absent("removing", &md)?;
        let cache = self.layout.cache_dir(&c.mount_id);
        if let Some(link) = read_text_opt(&cache.join("link"))? {
            // A link left dangling is removed by the next gc_orphans.
            let _ = std::fs::remove_file(self.layout.links().join(link));
        }
        let merged = cache.join("merged");
        match std::fs::rename(&cache, trash.join("cache")) {
            Ok(()) => {}
            Err(e) if is_absent(&e) => {}
            Err(e) => {
                return Err(Error::io("removing", &cache, e)
                    .context(format!("is {} still mounted?", merged.display())));
            }
        }
        remove_tree(&trash).io("removing", &trash)
    }

    /// `container prune`'s candidates: every container that is not mounted (the caller
    /// also keeps the running ones).
    pub fn prune_candidates(&self) -> Result<Vec<Container>> {
        let mut out = Vec::new();
        for c in self.containers()? {
            if mounted_at(&container_fsname(&c))?.is_empty() {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// `container rename OLD NEW`.
    pub fn rename_container(&self, old: &str, new: &str) -> Result<()> {
        let rename = || -> Result<()> {
            let _l = self.lock()?;
            if !valid_name(new) {
                return Err(Error::invalid(format!(
                    "invalid container name {new:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*"
                )));
            }
            let mut c = self.container(old)?;
            if self.containers()?.iter().any(|x| x.name == new) {
                return Err(Error::invalid(format!(
                    "the container name {new:?} is already in use"
                )));
            }
            c.name = new.to_string();
            write_atomic(
                &self.layout.container_dir(&c.id).join("config.json"),
                &container_json(&c)?,
            )
        };
        rename().context(|| format!("rename {old} {new}"))
    }
}

/// A container record as `config.json` holds it.
fn container_json(c: &Container) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(c).map_err(|e| Error::json("writing the container config", e))
}

/// The name a new container gets: `name` if it is valid and free, else a random one.
fn new_name(name: Option<&str>, existing: &[Container]) -> Result<String> {
    let taken = |n: &str| existing.iter().any(|c| c.name == n);
    if let Some(n) = name {
        if !valid_name(n) {
            return Err(Error::invalid(format!(
                "invalid container name {n:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*"
            )));
        }
        if taken(n) {
            return Err(Error::invalid(format!(
                "the container name {n:?} is already in use"
            )));
        }
        return Ok(n.to_string());
    }
    let mut n = random_name();
    let mut k = 2;
    while taken(&n) {
        n = format!("{}{}", random_name(), k);
        k += 1;
    }
    Ok(n)
}

/// A committed image's config: the base image's, with the new layer, history entry and
/// `--change`s.
fn commit_config(
    cfg: &mut serde_json::Value,
    c: &Container,
    diffs: &[Digest],
    now: &str,
    message: Option<&str>,
    author: Option<&str>,
    changes: &[String],
) -> Result<()> {
    let obj = cfg
        .as_object_mut()
        .ok_or_else(|| Error::invalid("image config is not an object"))?;
    obj.insert("created".into(), now.into());
    if let Some(a) = author {
        obj.insert("author".into(), a.into());
    }
    obj.insert("container".into(), c.id.clone().into());
    if !changes.is_empty() {
        let inner = obj.entry("config").or_insert_with(|| serde_json::json!({}));
        images::apply_changes(inner, changes)?;
    }
    let rootfs = obj
        .entry("rootfs")
        .or_insert_with(|| serde_json::json!({"type": "layers"}));
    rootfs["diff_ids"] =
        serde_json::Value::Array(diffs.iter().map(|d| d.to_string().into()).collect());
    let hist = obj
        .entry("history")
        .or_insert_with(|| serde_json::json!([]));
    if let Some(h) = hist.as_array_mut() {
        let mut e = serde_json::json!({"created": now, "created_by": format!("layerfs container commit {}", c.name)});
        if let Some(m) = message {
            e["comment"] = m.into();
        }
        if let Some(a) = author {
            e["author"] = a.into();
        }
        h.push(e);
    }
    Ok(())
}
