//! Mount plans the store hands out, complete (as a snapshotter returns mounts): the layer
//! stack, the writable dirs, read-only or not, the fsname the store finds its mounts by and
//! a throwaway dir to remove at unmount. The CLI adds only the user's own choices and runs
//! them; nothing here mounts.

use super::Store;
use super::containers::Container;
use super::error::{Result, ResultExt};
use super::images::{self, Repositories};
use super::layout::random_hex;
use crate::digest::Digest;
use crate::mount::MountPlan;
use std::path::PathBuf;

impl Store {
    /// The image's layer dirs, top first.
    pub fn image_lowers(&self, id: &Digest) -> Result<Vec<PathBuf>> {
        let layers = self.layers_of(&images::diff_ids(&self.config(id)?)?)?;
        Ok(layers.iter().rev().map(|l| l.diff_dir.clone()).collect())
    }

    /// A container's layers as they are stacked: the image's, its upper and work dirs
    /// (what `container inspect` shows, and what diff/commit/export read).
    pub fn container_plan(&self, c: &Container) -> Result<MountPlan> {
        let dir = self.layout.cache_dir(&c.mount_id);
        Ok(MountPlan {
            lowers: self.image_lowers(&c.image)?,
            upper: Some(dir.join("diff")),
            work: Some(dir.join("work")),
            fsname: Some(container_fsname(c)),
            ..Default::default()
        })
    }

    /// `container mount [--read-only]`: writes go to the container's upper dir, or, read
    /// only, the upper is the top lower and nothing is written.
    pub fn container_mount_plan(&self, c: &Container, read_only: bool) -> Result<MountPlan> {
        let mut plan = self.container_plan(c)?;
        if read_only {
            if let Some(u) = plan.upper.take() {
                plan.lowers.insert(0, u);
            }
            plan.work = None;
            plan.read_only = true;
        }
        Ok(plan)
    }

    /// `image mount [--rw]`: the image's layers, read-only; with `rw` over a throwaway
    /// upper and work dir (made here, under the system temp dir, and removed at unmount).
    pub fn image_mount_plan(&self, image: &str, rw: bool) -> Result<MountPlan> {
        let repos = Repositories::load(&self.layout)?;
        let id = self.resolve(image, &repos)?;
        let mut plan = MountPlan {
            lowers: self.image_lowers(&id)?,
            read_only: !rw,
            fsname: Some(format!("layerfs:{}", id.short())),
            ..Default::default()
        };
        if rw {
            let base = std::env::temp_dir().join(format!("layerfs-rw-{}", random_hex(6)));
            for d in ["upper", "work"] {
                std::fs::create_dir_all(base.join(d)).io("creating", base.join(d))?;
            }
            plan.upper = Some(base.join("upper"));
            plan.work = Some(base.join("work"));
            plan.throwaway = Some(base);
        }
        Ok(plan)
    }
}

/// The fsname a container's mount carries (shown in /proc/self/mountinfo).
pub fn container_fsname(c: &Container) -> String {
    format!("layerfs:container:{}", &c.id[..12])
}

/// Mount points whose source is `fsname` (none where there is no /proc to ask).
pub fn mounted_at(fsname: &str) -> Result<Vec<String>> {
    let p = "/proc/self/mountinfo";
    let Some(info) = std::fs::read_to_string(p).io_absent("reading", p)? else {
        return Ok(Vec::new());
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
    Ok(out)
}
