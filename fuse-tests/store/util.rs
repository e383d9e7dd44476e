//! Helpers: a throwaway store, running the binary, mount guards, tree listings.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_layerfs");

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A fresh store in a temp dir.
pub struct St {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl St {
    pub fn new() -> St {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("store");
        St { dir, root }
    }
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root").arg(&self.root).args(args);
        c.env_remove("LAYERFS_ROOT");
        c
    }
    pub fn run(&self, args: &[&str]) -> Out {
        let o = self
            .cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("run layerfs");
        out(o)
    }
    /// Run, assert success, return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(
            o.code, 0,
            "layerfs {args:?} failed: {}\n{}",
            o.stderr, o.stdout
        );
        o.stdout
    }
    /// Run, assert failure with a `layerfs:` message, return stderr.
    pub fn fail(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_ne!(
            o.code, 0,
            "layerfs {args:?} should fail; stdout: {}",
            o.stdout
        );
        assert!(o.stderr.starts_with("layerfs"), "stderr: {}", o.stderr);
        o.stderr
    }
    pub fn layerdb_count(&self) -> usize {
        count(&self.root.join("image/overlay2/layerdb/sha256"))
    }
    /// Assert that nothing is left over: no staging, no orphan layer dirs.
    pub fn assert_clean(&self) {
        assert_eq!(count(&self.root.join("tmp")), 0, "tmp/ not empty");
        let layers = self.layerdb_count();
        let containers = count(&self.root.join("containers"));
        assert_eq!(
            count(&self.root.join("overlay2")),
            layers + containers + 1,
            "overlay2/ has dirs that no layer records"
        );
        assert_eq!(count(&self.root.join("overlay2/l")), layers + containers);
    }
    pub fn image_count(&self) -> usize {
        count(&self.root.join("image/overlay2/imagedb/content/sha256"))
    }
}

pub fn out(o: Output) -> Out {
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

pub fn count(p: &Path) -> usize {
    std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0)
}

/// Unmounts on drop, whatever happened in the test.
pub struct MountGuard(pub PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let p = &self.0;
        let ok = Command::new("fusermount3")
            .arg("-u")
            .arg(p)
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(p)
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Can this process mount FUSE file systems?
pub fn can_fuse() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("no /dev/fuse".into());
    }
    if !is_root() {
        return Some("FUSE mount tests run as root here".into());
    }
    None
}

/// Kernel overlay mount (root only) for checking layer dirs with an independent oracle.
pub struct KernelOverlay(#[allow(dead_code)] pub MountGuard);

pub fn kernel_overlay(
    lowers: &[PathBuf],
    upper_work: Option<(&Path, &Path)>,
    mnt: &Path,
) -> Result<KernelOverlay, String> {
    let lower = lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let mut opts = format!("lowerdir={lower}");
    if lowers.len() == 1 && upper_work.is_none() {
        // A single read-only lower needs a second one: an empty dir.
        let empty = mnt.with_extension("empty");
        std::fs::create_dir_all(&empty).map_err(|e| e.to_string())?;
        opts.push_str(&format!(":{}", empty.display()));
    }
    if let Some((u, w)) = upper_work {
        opts.push_str(&format!(
            ",upperdir={},workdir={},redirect_dir=on",
            u.display(),
            w.display()
        ));
    }
    std::fs::create_dir_all(mnt).map_err(|e| e.to_string())?;
    let st = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(mnt)
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() {
        return Err(format!("mount -t overlay failed for {opts}"));
    }
    Ok(KernelOverlay(MountGuard(mnt.to_path_buf())))
}

/// One line per entry: path type mode uid:gid size/target/content-hash (+ user xattrs).
pub fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    for p in names {
        let md = std::fs::symlink_metadata(&p).expect("lstat");
        let rel = p.strip_prefix(root).expect("prefix").display().to_string();
        let ft = md.file_type();
        use std::os::unix::fs::FileTypeExt;
        let (kind, extra) = if ft.is_dir() {
            ("dir", String::new())
        } else if ft.is_symlink() {
            (
                "link",
                format!(
                    " -> {}",
                    std::fs::read_link(&p).expect("readlink").display()
                ),
            )
        } else if ft.is_file() {
            let data = std::fs::read(&p).unwrap_or_default();
            ("file", format!(" size={} sha={}", md.len(), sha(&data)))
        } else if ft.is_fifo() {
            ("fifo", String::new())
        } else if ft.is_char_device() {
            ("chr", format!(" dev={:x}", md.rdev()))
        } else {
            ("other", String::new())
        };
        out.push(format!(
            "/{rel} {kind} {:04o} {}:{}{extra}",
            md.mode() & 0o7777,
            md.uid(),
            md.gid()
        ));
        if ft.is_dir() {
            walk(root, &p, out);
        }
    }
}

pub fn sha(b: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(b);
    d.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn getxattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let cp = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    let cn = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 4096];
    let n = unsafe {
        libc::lgetxattr(
            cp.as_ptr(),
            cn.as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
        )
    };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

/// The JSON of `image inspect`.
pub fn inspect(st: &St, img: &str) -> serde_json::Value {
    let s = st.ok(&["image", "inspect", img]);
    let v: serde_json::Value = serde_json::from_str(&s).expect("inspect JSON");
    v[0].clone()
}

pub fn layer_dirs(st: &St, img: &str) -> Vec<PathBuf> {
    inspect(st, img)["GraphDriver"]["Data"]["LayerDirs"]
        .as_array()
        .expect("LayerDirs")
        .iter()
        .map(|v| PathBuf::from(v.as_str().expect("str")))
        .collect()
}

pub fn fixtures_dir() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures"));
    if p.join("busybox.docker.tar").is_file() {
        Some(p)
    } else {
        eprintln!(
            "skipped: fixtures not found at {} (needs ../shared next to the repo)",
            p.display()
        );
        None
    }
}

/// Runs layerfs as the unprivileged test user (setpriv, supplementary groups reset).
pub fn as_user(st: &St, args: &[&str]) -> Out {
    let (uid, gid) = crate::common::test_user();
    let o = Command::new("setpriv")
        .args([
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            "--init-groups".to_string(),
        ])
        .arg(BIN)
        .arg("--root")
        .arg(&st.root)
        .args(args)
        .env_remove("LAYERFS_ROOT")
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv");
    out(o)
}

pub fn user_ok(st: &St, args: &[&str]) -> String {
    let o = as_user(st, args);
    assert_eq!(o.code, 0, "layerfs {args:?} as the test user: {}", o.stderr);
    o.stdout
}

/// A directory the test user owns.
pub fn user_dir(st: &St, name: &str) -> PathBuf {
    let (uid, gid) = crate::common::test_user();
    let p = st.path(name);
    std::fs::create_dir(&p).expect("mkdir");
    std::os::unix::fs::chown(&p, Some(uid), Some(gid)).expect("chown");
    p
}
