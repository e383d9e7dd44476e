//! Images into the store, from an archive (`image load`) or a registry (`pull`, through
//! [`Store::take_image`]): one way in. Layers are unpacked in parallel into staging straight
//! from their stream and verified (blob digest, diffID) before anything is moved in; nothing
//! is visible unless the whole image checks out.

use super::archive::{self, Blobs, DirBlobs, ImageSource, TarBlobs};
use super::error::{Context, Error, Result, ResultExt};
use super::progress::{LayerEvent, Reporting};
use super::reference::Ref;
use super::{Loaded, Staged, Store, images, lock, remove_tree, unpack};
use crate::digest::{Digest, chain_ids};
use std::io::{Read, Write};
use std::path::Path;

/// What a read from standard input is called in messages.
const STDIN: &str = "standard input";

/// How an image comes in, beyond its blobs.
pub struct Intake {
    /// Layers unpacked at once.
    pub threads: usize,
    /// Names (`team/app`) that get a `name@<manifest digest>` repo digest even with no tag
    /// (a pull by digest).
    pub digest_names: Vec<String>,
}

impl Default for Intake {
    fn default() -> Self {
        Intake {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .clamp(1, 4),
            digest_names: Vec::new(),
        }
    }
}

impl Store {
    /// One image whose blobs `blobs` serves (a registry's), under the store lock; staging is
    /// cleared whatever happens.
    pub fn take_image(
        &self,
        blobs: &dyn Blobs,
        src: &ImageSource,
        intake: &Intake,
    ) -> Result<Loaded> {
        let _lock = self.lock()?;
        let r = self.load_one(blobs, src, intake);
        lock::clear_tmp(&self.layout);
        r
    }

    /// `image load`: every image in the archive; nothing is visible unless it all checks out.
    pub fn load(&self, input: Option<&Path>) -> Result<Vec<Loaded>> {
        let shown = match input {
            Some(p) if p.as_os_str() != "-" => p.display().to_string(),
            _ => STDIN.to_string(),
        };
        let _lock = self.lock().context(|| format!("load {shown}"))?;
        let r = self.load_locked(input).context(|| format!("load {shown}"));
        // Whatever failed, staging goes (we hold the lock: all of tmp/ is ours).
        lock::clear_tmp(&self.layout);
        r
    }

    fn load_locked(&self, input: Option<&Path>) -> Result<Vec<Loaded>> {
        let (blobs, default_name) = self.open_input(input)?;
        let sources = archive::read_images(blobs.as_ref(), &default_name)?;
        sources
            .iter()
            .map(|src| self.load_one(blobs.as_ref(), src, &Intake::default()))
            .collect()
    }

    /// Open an archive: a directory (OCI layout) or a tar file, possibly compressed, or
    /// stdin (`None` / `-`), which is spooled into staging first. Also the name images
    /// with only a tag get.
    fn open_input(&self, input: Option<&Path>) -> Result<(Box<dyn Blobs>, String)> {
        let p = match input {
            Some(p) if p.as_os_str() != "-" => p,
            _ => {
                return Ok((
                    self.spool(Box::new(std::io::stdin()), STDIN)?,
                    "image".into(),
                ));
            }
        };
        let name = archive::name_from_path(p);
        if std::fs::metadata(p).io("opening", p)?.is_dir() {
            return Ok((Box::new(DirBlobs::new(p)), name));
        }
        let mut head = [0u8; 4];
        let mut f = std::fs::File::open(p).io("opening", p)?;
        let n = f.read(&mut head).io("reading", p)?;
        if unpack::sniff(&head[..n]) != unpack::Compression::None {
            let f = std::fs::File::open(p).io("opening", p)?;
            return Ok((self.spool(Box::new(f), &p.display().to_string())?, name));
        }
        Ok((Box::new(TarBlobs::index(p)?), name))
    }

    /// Copy a stream (decompressed) into staging and index it; `what` names the stream.
    fn spool(&self, r: Box<dyn Read + Send>, what: &str) -> Result<Box<dyn Blobs>> {
        let p = self.staging()?.join("input.tar");
        let mut f = std::fs::File::create(&p).io("creating", &p)?;
        let mut r = unpack::decompress(r).io("reading", what)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("reading", what, e)),
            };
            f.write_all(&buf[..n]).io("writing", &p)?;
        }
        Ok(Box::new(TarBlobs::index_as(&p, what)?))
    }

    fn load_one(&self, blobs: &dyn Blobs, src: &ImageSource, intake: &Intake) -> Result<Loaded> {
        let cfg = images::parse_config(&src.config)?;
        let diff_ids = images::diff_ids(&cfg)?;
        if diff_ids.len() != src.layers.len() {
            return Err(Error::invalid(format!(
                "the config lists {} layers (rootfs.diff_ids) but the manifest has {}",
                diff_ids.len(),
                src.layers.len()
            )));
        }
        let chains = chain_ids(&diff_ids);
        let todo = self.missing_layers(&chains)?;
        for (i, l) in src.layers.iter().enumerate() {
            if !todo.contains(&i) {
                self.progress.layer(&l.member, LayerEvent::Exists);
            }
        }
        let staged = self.stage_all(blobs, src, &todo, &diff_ids, intake.threads)?;
        let warnings = staged
            .iter()
            .flat_map(|st| st.unpacked.warnings.iter().cloned())
            .collect();
        // All layers verified: move them in, bottom first.
        for (st, i) in staged.into_iter().zip(todo.iter()) {
            let parent = if *i == 0 { None } else { Some(&chains[i - 1]) };
            self.commit_layer(st, &chains[*i], parent)?;
        }
        let id = self.commit_image(&src.config, &src.tags, None)?;
        let mut names: Vec<String> = Vec::new();
        for t in &src.tags {
            names.push(Ref::parse(t)?.name);
        }
        names.extend(intake.digest_names.iter().cloned());
        names.dedup();
        if let Some(m) = &src.manifest
            && !names.is_empty()
        {
            let mut repos = images::Repositories::load(&self.layout)?;
            for n in &names {
                repos.set_digest(n, m, &id);
            }
            repos.save(&self.layout)?;
        }
        Ok(Loaded {
            id,
            tags: src.tags.clone(),
            warnings,
        })
    }

    /// Whether every layer of image `id` is in the store.
    pub fn image_has_layers(&self, id: &Digest) -> Result<bool> {
        let cfg = images::parse_config(&self.config_bytes(id)?)?;
        for c in chain_ids(&images::diff_ids(&cfg)?) {
            if !self.has_layer(&c)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Which layers must be unpacked: the first occurrence of each chainID not in the store.
    fn missing_layers(&self, chains: &[Digest]) -> Result<Vec<usize>> {
        let mut todo: Vec<usize> = Vec::new();
        for (i, c) in chains.iter().enumerate() {
            if !todo.iter().any(|j| chains[*j] == *c) && !self.has_layer(c)? {
                todo.push(i);
            }
        }
        Ok(todo)
    }

    /// Unpack layers `todo` of `src` into staging on up to 4 threads; in `todo`'s order.
    fn stage_all(
        &self,
        blobs: &dyn Blobs,
        src: &ImageSource,
        todo: &[usize],
        diff_ids: &[Digest],
        threads: usize,
    ) -> Result<Vec<Staged>> {
        let total: u64 = todo
            .iter()
            .filter_map(|i| blobs.size(&src.layers[*i].member))
            .sum();
        if !todo.is_empty() {
            let what = format!("Loading {} layer(s)", todo.len());
            self.progress.start(&what, (total > 0).then_some(total));
        }
        for i in todo {
            let l = &src.layers[*i];
            self.progress
                .layer(&l.member, LayerEvent::Queued(blobs.size(&l.member)));
        }
        let results = crate::workers::map_indexed(todo.len(), threads, |k| {
            let i = todo[k];
            let r = self.stage_one(blobs, src, i, &diff_ids[i]);
            let ev = if r.is_ok() {
                LayerEvent::Done
            } else {
                LayerEvent::Failed
            };
            self.progress.layer(&src.layers[i].member, ev);
            r
        });
        if !todo.is_empty() {
            self.progress.finish();
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::invalid("a layer worker failed"))))
            .collect()
    }

    /// Unpack layer `i` of `src` and check it is what the manifest and config promise.
    fn stage_one(
        &self,
        blobs: &dyn Blobs,
        src: &ImageSource,
        i: usize,
        want: &Digest,
    ) -> Result<Staged> {
        let l = &src.layers[i];
        let ctx = || format!("layer {} ({})", i + 1, l.member);
        let r = blobs.open(&l.member).context(ctx)?;
        let r = Reporting::new(r, self.progress.clone()).of_layer(&l.member);
        let st = self.stage_layer(Box::new(r)).context(ctx)?;
        let u = &st.unpacked;
        let mismatch = if let Some(d) = &l.digest
            && *d != u.blob
        {
            Some(format!(
                "blob digest mismatch: manifest says {d}, content is {}",
                u.blob
            ))
        } else if u.diff_id != *want {
            Some(format!(
                "diffID mismatch: config says {want}, the uncompressed layer is {}",
                u.diff_id
            ))
        } else {
            None
        };
        if let Some(m) = mismatch {
            // Staging: the lock clears it too.
            let _ = remove_tree(&st.dir);
            return Err(Error::invalid(m).context(ctx()));
        }
        Ok(st)
    }
}
