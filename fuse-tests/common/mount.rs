//! Mounting the two implementations: kernel overlayfs (the oracle) and layerfs (under test),
//! behind one guard that always unmounts (lazily as a last resort), even when a test panics.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_layerfs");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    KernelOverlay,
    Layerfs,
}

impl Impl {
    /// The implementation under test: layerfs, unless `LAYERFS_TEST_IMPL=kernel` (to check the
    /// harness itself: kernel against kernel must always agree).
    pub fn under_test() -> Impl {
        match std::env::var("LAYERFS_TEST_IMPL").as_deref() {
            Ok("kernel") => Impl::KernelOverlay,
            _ => Impl::Layerfs,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Impl::KernelOverlay => "kernel-overlayfs",
            Impl::Layerfs => "layerfs",
        }
    }
}

/// The directories of one mount: lowers (top first), optional upper and work, mountpoint.
#[derive(Clone, Debug)]
pub struct Dirs {
    pub lowers: Vec<PathBuf>,
    pub upper: Option<PathBuf>,
    pub work: Option<PathBuf>,
    pub mnt: PathBuf,
}

impl Dirs {
    /// Upper `root/upper`, work `root/work`, mountpoint `root/mnt` (all created).
    pub fn new(root: &Path, lowers: Vec<PathBuf>) -> Dirs {
        let d = Dirs {
            lowers,
            upper: Some(root.join("upper")),
            work: Some(root.join("work")),
            mnt: root.join("mnt"),
        };
        d.create();
        d
    }
    pub fn read_only(root: &Path, lowers: Vec<PathBuf>) -> Dirs {
        let d = Dirs {
            lowers,
            upper: None,
            work: None,
            mnt: root.join("mnt"),
        };
        d.create();
        d
    }
    pub fn create(&self) {
        for p in [&self.upper, &self.work].into_iter().flatten() {
            fs::create_dir_all(p).expect("mkdir upper/work");
        }
        fs::create_dir_all(&self.mnt).expect("mkdir mnt");
    }
    pub fn upper(&self) -> &Path {
        self.upper.as_deref().expect("mount has an upper dir")
    }
    /// The `-o` option string, fuse-overlayfs style.
    pub fn option_string(&self) -> String {
        let lowers: Vec<String> = self
            .lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let mut s = format!("lowerdir={}", lowers.join(":"));
        if let Some(u) = &self.upper {
            s += &format!(",upperdir={}", u.display());
        }
        if let Some(w) = &self.work {
            s += &format!(",workdir={}", w.display());
        }
        s
    }
}

#[derive(Clone, Debug, Default)]
pub struct Opts {
    /// Kernel: `redirect_dir=on` (else `off`). Renaming a lower dir needs it.
    pub redirect_dir: bool,
    pub ro: bool,
    /// Extra options for layerfs only (e.g. allow_other).
    pub layerfs_extra: Vec<String>,
}

impl Opts {
    pub fn redirect() -> Opts {
        Opts {
            redirect_dir: true,
            ..Opts::default()
        }
    }
}

/// A live mount. Dropping it unmounts (and lazily detaches if a normal unmount fails).
pub struct Mounted {
    pub imp: Impl,
    pub mnt: PathBuf,
    pub daemon: Option<u32>,
    child: Option<Child>,
    mounted: bool,
}

/// Make a tempdir traversable by other users (permission tests, unprivileged runs).
pub fn open_up(p: &Path) {
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).expect("chmod 755");
}

pub fn mount(imp: Impl, dirs: &Dirs, opts: &Opts) -> Mounted {
    try_mount(imp, dirs, opts)
        .unwrap_or_else(|e| panic!("mount {} on {}: {e}", imp.name(), dirs.mnt.display()))
}

pub fn try_mount(imp: Impl, dirs: &Dirs, opts: &Opts) -> Result<Mounted, String> {
    match imp {
        Impl::KernelOverlay => {
            let mut o = dirs.option_string();
            o += if opts.redirect_dir {
                ",redirect_dir=on"
            } else {
                ",redirect_dir=off"
            };
            o += ",index=off,metacopy=off";
            if opts.ro {
                o += ",ro";
            }
            let out = Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o", &o])
                .arg(&dirs.mnt)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("run mount: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "mount -t overlay -o {o}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            Ok(Mounted {
                imp,
                mnt: dirs.mnt.clone(),
                daemon: None,
                child: None,
                mounted: true,
            })
        }
        Impl::Layerfs => {
            let mut o = dirs.option_string();
            if opts.ro {
                o += ",ro";
            }
            for e in &opts.layerfs_extra {
                o += ",";
                o += e;
            }
            let out = Command::new(BIN)
                .args(["-o", &o])
                .arg(&dirs.mnt)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("run layerfs: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "layerfs -o {o} {} exited {:?}: {}",
                    dirs.mnt.display(),
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            // The command returns only once the mount is ready: no waiting here.
            if !is_mounted(&dirs.mnt) {
                return Err(format!(
                    "layerfs returned 0 but {} is not in mountinfo",
                    dirs.mnt.display()
                ));
            }
            let daemon = find_daemon(&dirs.mnt);
            Ok(Mounted {
                imp,
                mnt: dirs.mnt.clone(),
                daemon,
                child: None,
                mounted: true,
            })
        }
    }
}

/// `layerfs -f` as a child process; returns once the mount shows in mountinfo.
pub fn mount_foreground(dirs: &Dirs, extra: &[&str]) -> Mounted {
    let mut o = dirs.option_string();
    for e in extra {
        o += ",";
        o += e;
    }
    let mut child = Command::new(BIN)
        .args(["-f", "-o", &o])
        .arg(&dirs.mnt)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn layerfs -f");
    let pid = child.id();
    let ready = wait_until(Duration::from_secs(20), || {
        is_mounted(&dirs.mnt) || matches!(child.try_wait(), Ok(Some(_)))
    });
    if !ready || !is_mounted(&dirs.mnt) {
        let _ = child.kill();
        let st = child.wait();
        panic!(
            "layerfs -f did not mount {} (status {st:?})",
            dirs.mnt.display()
        );
    }
    Mounted {
        imp: Impl::Layerfs,
        mnt: dirs.mnt.clone(),
        daemon: Some(pid),
        child: Some(child),
        mounted: true,
    }
}

/// Poll `cond` every few milliseconds (a poll interval, not a fixed sleep) up to `limit`.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x");
            if let Ok(v) = u8::from_str_radix(oct, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points (unescaped) and fs types from /proc/self/mountinfo.
pub fn mounts() -> Vec<(String, String)> {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some((unescape_mountinfo(f.get(4)?), f.get(sep + 1)?.to_string()))
        })
        .collect()
}

pub fn is_mounted(p: &Path) -> bool {
    let p = fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let p = p.display().to_string();
    mounts().iter().any(|(m, _)| *m == p)
}

/// The pid of the layerfs daemon serving `mnt` (found by its command line).
pub fn find_daemon(mnt: &Path) -> Option<u32> {
    let want = mnt.as_os_str().as_encoded_bytes().to_vec();
    let me = std::process::id();
    for e in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmd) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        let is_ours = args.first().is_some_and(|a| a.ends_with(b"layerfs"));
        if is_ours && args.contains(&want.as_slice()) {
            return Some(pid);
        }
    }
    None
}

pub fn pid_alive(pid: u32) -> bool {
    // a zombie counts as gone
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

pub fn run_quiet(cmd: &str, args: &[&std::ffi::OsStr]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl Mounted {
    /// Unmount; Err carries the last tool's complaint (e.g. busy).
    pub fn try_unmount(&mut self) -> Result<(), String> {
        if !self.mounted {
            return Ok(());
        }
        let tool = if self.imp == Impl::Layerfs {
            "fusermount3"
        } else {
            "umount"
        };
        let args: Vec<&std::ffi::OsStr> = if self.imp == Impl::Layerfs {
            vec!["-u".as_ref(), self.mnt.as_os_str()]
        } else {
            vec![self.mnt.as_os_str()]
        };
        let out = Command::new(tool)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "{tool} {}: {}",
                self.mnt.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        self.mounted = false;
        self.reap();
        Ok(())
    }

    /// Unmount, retrying a transient EBUSY for up to 3 s: a process forked by a parallel test
    /// holds copies of our (close-on-exec) fds until it execs.
    pub fn unmount(&mut self) {
        let mut last = Ok(());
        wait_until(Duration::from_secs(3), || {
            last = self.try_unmount();
            last.is_ok()
        });
        if let Err(e) = last {
            panic!("unmount failed: {e}");
        }
    }

    /// Wait for the daemon (if any) to exit after its mount went away.
    fn reap(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let done = wait_until(Duration::from_secs(10), || {
                matches!(c.try_wait(), Ok(Some(_)))
            });
            if !done {
                let _ = c.kill();
                let _ = c.wait();
            }
        } else if let Some(pid) = self.daemon {
            wait_until(Duration::from_secs(10), || !pid_alive(pid));
        }
    }

    /// The mount was torn down by other means (the test killed the daemon and detached it).
    pub fn forget(&mut self) {
        self.mounted = false;
    }

    pub fn child(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }
}

/// Best-effort teardown for a mount point whatever state it is in.
pub fn force_unmount(mnt: &Path) {
    for _ in 0..3 {
        if !is_mounted(mnt) {
            return;
        }
        if !run_quiet("umount", &[mnt.as_os_str()])
            && !run_quiet("fusermount3", &["-u".as_ref(), mnt.as_os_str()])
        {
            run_quiet("umount", &["-l".as_ref(), mnt.as_os_str()]);
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.mounted && self.try_unmount().is_err() {
            force_unmount(&self.mnt);
            self.mounted = false;
        }
        if let Some(c) = self.child.as_mut() {
            if !matches!(c.try_wait(), Ok(Some(_))) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}
