//! Mount-time setup of an [`OverlayFs`]: open the layer roots, check the upper/work pair,
//! clean what a killed daemon left in the workdir, probe which marker forms and ownership
//! changes the upper filesystem permits, and build the root node.

use super::layers::{Stack, WriteForms};
use super::nodes::{NodeState, NodeTable, ROOT_INO};
use super::{Config, IoOp, OverlayFs, Res, WORK_SUBDIR, pending};
use crate::format::resolve::Resolver;
use crate::sys;
use dashmap::DashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

impl OverlayFs {
    /// Open the layers, check the upper/work pair, clean stale work files, probe what the
    /// upper filesystem permits. Errors name the path and the reason.
    pub fn new(cfg: Config) -> Result<OverlayFs, String> {
        let layers = crate::format::resolve::open_layers(&cfg.lowers, cfg.upper.as_deref())
            .map_err(|e| e.to_string())?;
        let has_upper = cfg.upper.is_some();
        let (work, forms) = match (&cfg.upper, &cfg.work) {
            (Some(upper), Some(w)) => {
                let (tfd, forms) = prepare_work(upper, w, layers[0].dev, cfg.oci_whiteouts)?;
                (Some(tfd), forms)
            }
            _ => (None, WriteForms::OCI),
        };
        let privileged = !cfg.xattr_permissions && sys::geteuid() == 0 && can_chown(work.as_ref());
        let stack = Stack {
            // Lower layers never change under a mount: their facts are cached.
            res: Resolver::new(layers, usize::from(has_upper)),
            has_upper,
            forms,
            work,
        };
        let fs = OverlayFs {
            stack,
            nodes: NodeTable::default(),
            handles: DashMap::default(),
            listings: Default::default(),
            next_fh: AtomicU64::new(1),
            tmp_counter: AtomicU64::new(0),
            read_only: cfg.read_only || !has_upper,
            no_xattrs: cfg.no_xattrs,
            fsync: cfg.fsync,
            ids: cfg.ids,
            privileged,
            use_override: cfg.xattr_permissions || sys::geteuid() != 0 || !privileged,
            pending_inval: pending::PerRequest::default(),
        };
        fs.init_root()
            .map_err(|e| format!("reading the layer roots: {e}"))?;
        Ok(fs)
    }

    fn init_root(&self) -> Res<()> {
        let root = self
            .stack
            .res
            .root()
            .op("resolve the root", Path::new(""))?;
        let st = root.stat;
        let mut lowers = root.lower_dirs;
        if !self.stack.has_upper {
            lowers.insert(0, root.top);
        }
        let backing = (st.st_dev, st.st_ino);
        self.nodes.map_backing(backing, ROOT_INO);
        self.nodes.insert_root(NodeState {
            aliases: Vec::new(),
            upper: self.stack.has_upper,
            lowers,
            backing,
        });
        Ok(())
    }
}

/// Check the workdir `w` against the upper layer, clean what a killed daemon left there
/// and create `W/layerfs-tmp`: its fd, and the marker forms the upper filesystem permits.
fn prepare_work(
    upper: &Path,
    w: &Path,
    upper_dev: u64,
    oci_whiteouts: bool,
) -> Result<(OwnedFd, WriteForms), String> {
    let wfd = sys::open_dir(w).map_err(|e| format!("workdir {}: {e}", w.display()))?;
    let wst = sys::fstat(wfd.as_fd()).map_err(|e| format!("workdir {}: {e}", w.display()))?;
    if wst.st_dev != upper_dev {
        return Err(format!(
            "workdir {} and upperdir {} are on different filesystems (they must be on the same one)",
            w.display(),
            upper.display()
        ));
    }
    if w.canonicalize().ok() == upper.canonicalize().ok() {
        return Err(format!(
            "workdir {} is the same directory as upperdir",
            w.display()
        ));
    }
    clean_stale(wfd.as_fd(), w)?;
    let sub = Path::new(WORK_SUBDIR);
    match sys::mkdir_at(wfd.as_fd(), sub, 0o700) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        Err(e) => {
            return Err(format!(
                "workdir {}: cannot create {WORK_SUBDIR}: {e}",
                w.display()
            ));
        }
    }
    let tfd = sys::open_at(wfd.as_fd(), sub, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .map_err(|e| format!("workdir {}: {e}", w.display()))?;
    let forms = if oci_whiteouts {
        WriteForms::OCI
    } else {
        probe_forms(tfd.as_fd())
    };
    Ok((tfd, forms))
}

/// Remove the files of a killed daemon from workdir `w` (open as `wfd`).
fn clean_stale(wfd: BorrowedFd<'_>, w: &Path) -> Result<(), String> {
    let sub = Path::new(WORK_SUBDIR);
    // Stale files of a killed daemon: move aside, then delete.
    if sys::lstat_at(wfd, sub).is_ok() {
        let old = PathBuf::from(format!("{WORK_SUBDIR}.stale-{}", std::process::id()));
        sys::rename_at(wfd, sub, wfd, &old, 0)
            .map_err(|e| format!("workdir {}: cleaning {WORK_SUBDIR}: {e}", w.display()))?;
        sys::remove_tree_at(wfd, &old)
            .map_err(|e| format!("workdir {}: cleaning stale files: {e}", w.display()))?;
    }
    // Other leftovers of ours (an interrupted cleanup).
    if let Ok(dfd) = sys::open_at(wfd, Path::new(""), libc::O_RDONLY | libc::O_DIRECTORY, 0)
        && let Ok(ents) = sys::read_dir_fd(dfd)
    {
        for (n, _, _) in ents {
            if n.as_bytes()
                .starts_with(format!("{WORK_SUBDIR}.stale-").as_bytes())
            {
                let _ = sys::remove_tree_at(wfd, Path::new(&n));
            }
        }
    }
    Ok(())
}

/// What may be written in the upper filesystem: try a 0:0 char device and trusted/user
/// xattrs in the work dir.
fn probe_forms(work: std::os::fd::BorrowedFd<'_>) -> WriteForms {
    let name = PathBuf::from(format!("probe-{}", std::process::id()));
    let chardev = sys::mknod_at(work, &name, libc::S_IFCHR | 0o600, 0).is_ok();
    let _ = sys::unlink_at(work, &name, false);
    let dname = PathBuf::from(format!("probe-d-{}", std::process::id()));
    let mut prefix = None;
    if sys::mkdir_at(work, &dname, 0o700).is_ok() {
        for (p, x) in [
            ("trusted.overlay.", "trusted.overlay.opaque"),
            ("user.overlay.", "user.overlay.opaque"),
        ] {
            if sys::set_xattr_at(work, &dname, OsStr::new(x), b"y", 0).is_ok() {
                prefix = Some(p);
                break;
            }
        }
        let _ = sys::unlink_at(work, &dname, true);
    }
    WriteForms {
        chardev_whiteout: chardev,
        xattr_prefix: prefix,
    }
}

fn can_chown(work: Option<&OwnedFd>) -> bool {
    let Some(w) = work else {
        return sys::geteuid() == 0;
    };
    let name = PathBuf::from(format!("probe-c-{}", std::process::id()));
    let ok = match sys::open_at(
        w.as_fd(),
        &name,
        libc::O_CREAT | libc::O_WRONLY | libc::O_EXCL,
        0o600,
    ) {
        Ok(fd) => sys::fchown(fd.as_fd(), 1, 1).is_ok(),
        Err(_) => false,
    };
    let _ = sys::unlink_at(w.as_fd(), &name, false);
    ok
}
