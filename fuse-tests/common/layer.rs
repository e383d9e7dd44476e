//! Building layer directories in code: files with content/mode/owner/xattrs/times, dirs,
//! symlinks, hard links, fifos, devices, and the whiteout/opaque markers in both forms
//! (kernel: char 0:0 and `trusted.overlay.*` xattrs; userspace: `.wh.NAME`, `.wh..wh..opq`,
//! `user.overlay.*`). Every method panics on failure: a broken fixture is a test bug.

use super::sys;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

/// One layer directory being filled. Paths are relative to the layer root.
#[derive(Clone, Debug)]
pub struct Layer {
    pub root: PathBuf,
}

impl Layer {
    pub fn new(root: impl Into<PathBuf>) -> Layer {
        let root = root.into();
        fs::create_dir_all(&root).expect("layer root");
        Layer { root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    fn parent(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir -p {}: {e}", d.display()));
        }
        p
    }

    pub fn file(&self, rel: &str, data: &[u8]) -> &Self {
        self.file_mode(rel, data, 0o644)
    }

    pub fn file_mode(&self, rel: &str, data: &[u8], mode: u32) -> &Self {
        let p = self.parent(rel);
        fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
        self
    }

    /// A sparse file of `size` bytes with `data` written at each offset.
    pub fn sparse(&self, rel: &str, size: u64, chunks: &[(u64, &[u8])]) -> &Self {
        let p = self.parent(rel);
        let mut f = fs::File::create(&p).expect("create sparse");
        f.set_len(size).expect("set_len");
        for (off, data) in chunks {
            f.seek(SeekFrom::Start(*off)).expect("seek");
            f.write_all(data).expect("write chunk");
        }
        self
    }

    pub fn dir(&self, rel: &str) -> &Self {
        let p = self.path(rel);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        self
    }

    pub fn dir_mode(&self, rel: &str, mode: u32) -> &Self {
        self.dir(rel);
        fs::set_permissions(self.path(rel), fs::Permissions::from_mode(mode)).expect("chmod dir");
        self
    }

    pub fn symlink(&self, rel: &str, target: &str) -> &Self {
        let p = self.parent(rel);
        symlink(target, &p).unwrap_or_else(|e| panic!("symlink {}: {e}", p.display()));
        self
    }

    /// `rel` becomes a hard link to the existing `existing` (both relative to this layer).
    pub fn hardlink(&self, rel: &str, existing: &str) -> &Self {
        let p = self.parent(rel);
        fs::hard_link(self.path(existing), &p)
            .unwrap_or_else(|e| panic!("link {}: {e}", p.display()));
        self
    }

    pub fn fifo(&self, rel: &str) -> &Self {
        let p = self.parent(rel);
        sys::mkfifo(&p).unwrap_or_else(|e| panic!("mkfifo {}: {e}", p.display()));
        self
    }

    /// A character ('c') or block ('b') device node.
    pub fn dev(&self, rel: &str, kind: char, major: u32, minor: u32) -> &Self {
        let p = self.parent(rel);
        let t = if kind == 'b' {
            libc::S_IFBLK
        } else {
            libc::S_IFCHR
        };
        sys::mknod(&p, t | 0o600, major, minor)
            .unwrap_or_else(|e| panic!("mknod {}: {e}", p.display()));
        self
    }

    /// Kernel-form whiteout: a char device 0:0 named like the deleted entry.
    pub fn whiteout(&self, rel: &str) -> &Self {
        let p = self.parent(rel);
        sys::mknod(&p, libc::S_IFCHR, 0, 0)
            .unwrap_or_else(|e| panic!("whiteout {}: {e}", p.display()));
        self
    }

    /// Kernel-form opaque dir: `trusted.overlay.opaque=y` (the dir is created if missing).
    pub fn opaque(&self, rel: &str) -> &Self {
        self.dir(rel);
        self.xattr(rel, "trusted.overlay.opaque", b"y")
    }

    /// Kernel-form redirect of a renamed dir.
    pub fn redirect(&self, rel: &str, target: &str) -> &Self {
        self.dir(rel);
        self.xattr(rel, "trusted.overlay.redirect", target.as_bytes())
    }

    /// Userspace-form whiteout: an empty file `.wh.NAME` beside where NAME would be.
    pub fn wh_file(&self, rel: &str) -> &Self {
        let p = self.path(rel);
        let name = p.file_name().expect("name").to_string_lossy().to_string();
        let dir = p.parent().expect("parent").to_path_buf();
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join(format!(".wh.{name}")), b"").expect("write .wh.");
        self
    }

    /// Userspace-form opaque dir: a `.wh..wh..opq` file inside it.
    pub fn wh_opaque(&self, rel: &str) -> &Self {
        self.dir(rel);
        fs::write(self.path(rel).join(".wh..wh..opq"), b"").expect("write .wh..wh..opq");
        self
    }

    /// Unprivileged-form opaque dir: `user.overlay.opaque=y`.
    pub fn user_opaque(&self, rel: &str) -> &Self {
        self.dir(rel);
        self.xattr(rel, "user.overlay.opaque", b"y")
    }

    pub fn xattr(&self, rel: &str, name: &str, value: &[u8]) -> &Self {
        let p = self.path(rel);
        sys::setxattr(&p, name, value, 0)
            .unwrap_or_else(|e| panic!("setxattr {name} {}: {e}", p.display()));
        self
    }

    pub fn owner(&self, rel: &str, uid: u32, gid: u32) -> &Self {
        let p = self.path(rel);
        sys::lchown(&p, uid, gid).unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
        self
    }

    pub fn mode(&self, rel: &str, mode: u32) -> &Self {
        sys::chmod(&self.path(rel), mode).expect("chmod");
        self
    }

    /// atime and mtime in whole seconds plus nanoseconds.
    pub fn times(&self, rel: &str, atime: (i64, i64), mtime: (i64, i64)) -> &Self {
        let p = self.path(rel);
        sys::utimens(&p, atime, mtime).unwrap_or_else(|e| panic!("utimens {}: {e}", p.display()));
        self
    }
}

/// A builder applied to each layer of a stack: index 0 is the top-most lower layer.
pub type Setup<'a> = &'a dyn Fn(&[Layer]);

/// Create `n` lower layers under `root` (`root/l0` top-most) and fill them.
pub fn build_lowers(root: &Path, n: usize, setup: Setup) -> Vec<PathBuf> {
    let layers: Vec<Layer> = (0..n)
        .map(|i| Layer::new(root.join(format!("l{i}"))))
        .collect();
    setup(&layers);
    layers.into_iter().map(|l| l.root).collect()
}
