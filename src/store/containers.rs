//! Containers: a writable layer over an image, the filesystem side of `docker container`.
//!
//! ```text
//! containers/<id>/config.json                 {Id, Name, Image, ImageRef, Created, MountId}
//! image/overlay2/layerdb/mounts/<id>/         mount-id, parent (top chainID of the image)
//! overlay2/<id>/{diff/,work/,merged/,link,lower}
//! ```
//!
//! `diff`, `commit` and `export` read the upper dir and the image layers directly (see
//! [`super::merged`]); only `mount` needs the union filesystem.

use super::human;
use super::images::{self, Repositories, parse_config};
use super::layout::{random_hex, short_link_id, write_atomic};
pub use super::merged::Change;
use super::merged::Stack;
use super::tarout::TarOut;
use super::{Store, remove_tree};
use crate::digest::{Digest, HashingWriter, chain_ids};
use crate::mount::MountPlan;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
    pub fn containers(&self) -> Result<Vec<Container>, String> {
        let dir = self.layout.containers();
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
        };
        for e in rd.flatten() {
            let p = e.path().join("config.json");
            if let Ok(b) = std::fs::read(&p) {
                let c: Container = serde_json::from_slice(&b)
                    .map_err(|er| format!("corrupt {}: {er}", p.display()))?;
                out.push(c);
            }
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.name.cmp(&b.name)));
        Ok(out)
    }

    /// A container by name, full ID or unique ID prefix.
    pub fn container(&self, s: &str) -> Result<Container, String> {
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
            0 => Err(format!("no such container: {s}")),
            n => Err(format!(
                "ambiguous container ID prefix {s:?}: it matches {n} containers"
            )),
        }
    }

    /// `container create IMAGE [--name N]`.
    pub fn create_container(&self, image: &str, name: Option<&str>) -> Result<Container, String> {
        let _l = self.lock()?;
        let repos = Repositories::load(&self.layout)?;
        let id = self.resolve(image, &repos)?;
        let img = self.image(&id, &repos)?;
        let layers = self.layers_of(&img.diff_ids)?;
        let existing = self.containers()?;
        let name = match name {
            Some(n) => {
                if !valid_name(n) {
                    return Err(format!(
                        "invalid container name {n:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*"
                    ));
                }
                if existing.iter().any(|c| c.name == n) {
                    return Err(format!("the container name {n:?} is already in use"));
                }
                n.to_string()
            }
            None => {
                let mut n = random_name();
                let mut k = 2;
                while existing.iter().any(|c| c.name == n) {
                    n = format!("{}{}", random_name(), k);
                    k += 1;
                }
                n
            }
        };
        let cid = random_hex(32);
        let stage = self.staging()?;
        let cache = stage.join("cache");
        for d in ["diff", "work", "merged"] {
            std::fs::create_dir_all(cache.join(d))
                .map_err(|e| format!("cannot create {}: {e}", cache.join(d).display()))?;
        }
        let link = short_link_id();
        write_atomic(&cache.join("link"), link.as_bytes())?;
        let mut lower = Vec::new();
        for l in layers.iter().rev() {
            let lk = super::layout::read_text(&self.layout.cache_dir(&l.cache_id).join("link"))?;
            lower.push(format!("l/{lk}"));
        }
        write_atomic(&cache.join("lower"), lower.join(":").as_bytes())?;
        let mounts = stage.join("mounts");
        std::fs::create_dir_all(&mounts).map_err(|e| format!("cannot create staging: {e}"))?;
        write_atomic(&mounts.join("mount-id"), cid.as_bytes())?;
        if let Some(top) = img.chain_ids.last() {
            write_atomic(&mounts.join("parent"), top.to_string().as_bytes())?;
        }
        let c = Container {
            id: cid.clone(),
            name,
            image: id.clone(),
            image_ref: if repos
                .get(&images::Ref::parse(image).unwrap_or(images::Ref {
                    name: String::new(),
                    tag: String::new(),
                }))
                .is_some()
            {
                images::Ref::parse(image)
                    .map(|r| r.to_string())
                    .unwrap_or_default()
            } else {
                id.short().to_string()
            },
            created: human::now_rfc3339(),
            mount_id: cid.clone(),
        };
        let cdir = stage.join("container");
        std::fs::create_dir_all(&cdir).map_err(|e| format!("cannot create staging: {e}"))?;
        write_atomic(
            &cdir.join("config.json"),
            &serde_json::to_vec_pretty(&c).map_err(|e| e.to_string())?,
        )?;
        let dest = self.layout.cache_dir(&cid);
        std::fs::rename(&cache, &dest)
            .map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
        std::os::unix::fs::symlink(format!("../{cid}/diff"), self.layout.links().join(&link))
            .map_err(|e| format!("cannot create link for container: {e}"))?;
        let mdest = self.layout.mounts_db().join(&cid);
        std::fs::rename(&mounts, &mdest)
            .map_err(|e| format!("cannot create {}: {e}", mdest.display()))?;
        let cd = self.layout.container_dir(&cid);
        std::fs::rename(&cdir, &cd).map_err(|e| format!("cannot create {}: {e}", cd.display()))?;
        let _ = remove_tree(&stage);
        Ok(c)
    }

    /// The image's layer dirs, top first.
    pub fn image_lowers(&self, id: &Digest) -> Result<Vec<PathBuf>, String> {
        let cfg = parse_config(&self.config_bytes(id)?)?;
        let layers = self.layers_of(&images::diff_ids(&cfg)?)?;
        Ok(layers.iter().rev().map(|l| l.diff_dir.clone()).collect())
    }

    /// The mount plan of a container: image layers + its upper and work dirs.
    pub fn container_plan(&self, c: &Container) -> Result<MountPlan, String> {
        let dir = self.layout.cache_dir(&c.mount_id);
        Ok(MountPlan {
            lowers: self.image_lowers(&c.image)?,
            upper: Some(dir.join("diff")),
            work: Some(dir.join("work")),
        })
    }

    fn container_stack(&self, c: &Container) -> Result<Stack, String> {
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

    /// `container diff`: A/C/D lines, sorted by path.
    pub fn container_diff(&self, c: &Container) -> Result<Vec<Change>, String> {
        let stack = self.container_stack(c)?;
        let mut lower = Stack::open(&stack.paths[1..], false)?;
        lower.root_ids = stack.root_ids[1..].to_vec();
        Ok(stack.diff(&lower)?)
    }

    /// Write the container's changes as a layer tar (OCI whiteouts) into `w`.
    pub fn container_layer_tar<W: std::io::Write>(&self, c: &Container, w: W) -> Result<W, String> {
        let stack = self.container_stack(c)?;
        let mut t = TarOut::new(w);
        stack.layer_tar(Path::new(""), &mut t)?;
        Ok(t.finish()?)
    }

    /// `container commit N [REF]`: returns the new image ID.
    pub fn commit_container(
        &self,
        name: &str,
        tag: Option<&str>,
        message: Option<&str>,
        author: Option<&str>,
        changes: &[String],
    ) -> Result<Digest, String> {
        let r = tag.map(images::Ref::parse).transpose()?;
        let _l = self.lock()?;
        let c = self.container(name)?;
        let base_bytes = self.config_bytes(&c.image)?;
        let mut cfg = parse_config(&base_bytes)?;
        let mut diffs = images::diff_ids(&cfg)?;
        let stage = self.staging()?;
        let tarp = stage.join("layer.tar");
        let f = std::fs::File::create(&tarp)
            .map_err(|e| format!("cannot create {}: {e}", tarp.display()))?;
        let hw = self.container_layer_tar(&c, HashingWriter::new(std::io::BufWriter::new(f)))?;
        let (bw, _, _) = hw.finish();
        bw.into_inner()
            .map_err(|e| format!("cannot write {}: {e}", tarp.display()))?;
        let f = std::fs::File::open(&tarp)
            .map_err(|e| format!("cannot open {}: {e}", tarp.display()))?;
        let st = self.stage_layer(Box::new(f))?;
        let diff = st.unpacked.diff_id.clone();
        let parent_chain = chain_ids(&diffs).last().cloned();
        diffs.push(diff);
        let chain = chain_ids(&diffs).last().cloned().ok_or("empty chain")?;
        self.commit_layer(st, &chain, parent_chain.as_ref())?;
        let now = human::now_rfc3339();
        let obj = cfg.as_object_mut().ok_or("image config is not an object")?;
        obj.insert("created".into(), now.clone().into());
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
        let bytes = serde_json::to_vec(&cfg).map_err(|e| e.to_string())?;
        let tags: Vec<String> = r.iter().map(|r| r.to_string()).collect();
        let id = self.commit_image(&bytes, &tags, Some(&c.image))?;
        let _ = remove_tree(&stage);
        Ok(id)
    }

    /// `container export`: the merged view as one tar.
    pub fn export_container<W: std::io::Write>(&self, c: &Container, w: W) -> Result<W, String> {
        let stack = self.container_stack(c)?;
        let root = stack.root()?;
        let mut t = TarOut::new(w);
        t.merged_subtree(&stack, &root)?;
        Ok(t.finish()?)
    }

    /// `container rm`.
    pub fn remove_container(&self, s: &str, force: bool) -> Result<Container, String> {
        let _l = self.lock()?;
        let c = self.container(s)?;
        if !force && let Some(m) = mounted_at(&container_fsname(&c)).first() {
            return Err(format!(
                "container {} is mounted at {m}: unmount it first (fusermount3 -u {m}) or use -f",
                c.name
            ));
        }
        let trash = self.staging()?;
        let cd = self.layout.container_dir(&c.id);
        std::fs::rename(&cd, trash.join("container"))
            .map_err(|e| format!("cannot remove {}: {e}", cd.display()))?;
        let md = self.layout.mounts_db().join(&c.id);
        let _ = std::fs::rename(&md, trash.join("mounts"));
        let cache = self.layout.cache_dir(&c.mount_id);
        if let Ok(link) = super::layout::read_text(&cache.join("link")) {
            let _ = std::fs::remove_file(self.layout.links().join(link));
        }
        let merged = cache.join("merged");
        if std::fs::rename(&cache, trash.join("cache")).is_err() {
            return Err(format!(
                "cannot remove {} (is {} still mounted?)",
                cache.display(),
                merged.display()
            ));
        }
        remove_tree(&trash).map_err(|e| format!("cannot remove container files: {e}"))?;
        Ok(c)
    }

    /// `container rename OLD NEW`.
    pub fn rename_container(&self, old: &str, new: &str) -> Result<(), String> {
        let _l = self.lock()?;
        if !valid_name(new) {
            return Err(format!(
                "invalid container name {new:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*"
            ));
        }
        let mut c = self.container(old)?;
        if self.containers()?.iter().any(|x| x.name == new) {
            return Err(format!("the container name {new:?} is already in use"));
        }
        c.name = new.to_string();
        write_atomic(
            &self.layout.container_dir(&c.id).join("config.json"),
            &serde_json::to_vec_pretty(&c).map_err(|e| e.to_string())?,
        )
    }
}

/// The fsname a container's mount carries (shown in /proc/self/mountinfo).
pub fn container_fsname(c: &Container) -> String {
    format!("layerfs:container:{}", &c.id[..12])
}

/// Mount points whose source is `fsname`.
pub fn mounted_at(fsname: &str) -> Vec<String> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let src = right.split_whitespace().nth(1).unwrap_or("");
        if src == fsname
            && let Some(mp) = left.split_whitespace().nth(4)
        {
            out.push(mp.replace("\\040", " "));
        }
    }
    out
}
