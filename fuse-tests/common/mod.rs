//! Shared helpers for the mount tests: layer builders (`layer`), mounting kernel overlayfs
//! and layerfs behind an always-unmount guard (`mount`), tree snapshots with diffs (`snap`),
//! and thin libc wrappers (`sys`).
#![allow(dead_code)]

pub mod layer;
pub mod mount;
pub mod snap;
pub mod sys;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// A fresh temp dir that other users can traverse (unprivileged and permission tests).
pub fn tempdir() -> tempfile::TempDir {
    let t = tempfile::Builder::new()
        .prefix("layerfs-t")
        .tempdir()
        .expect("tempdir");
    mount::open_up(t.path());
    t
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

pub const TEST_USER: &str = "layerfs-test";

static USER_LOCK: Mutex<()> = Mutex::new(());

/// The unprivileged test user (created when missing) as (uid, gid); /dev/fuse opened to all.
pub fn test_user() -> (u32, u32) {
    let _g = USER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let id = |flag: &str| -> Option<u32> {
        let o = Command::new("id")
            .args([flag, TEST_USER])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        if !o.status.success() {
            return None;
        }
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    };
    if id("-u").is_none() {
        let st = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", TEST_USER])
            .status()
            .expect("run useradd");
        assert!(
            st.success() || id("-u").is_some(),
            "useradd {TEST_USER} failed"
        );
    }
    // Debian's udev rule makes /dev/fuse 0666; containers often leave it 0600.
    let _ = sys::chmod(Path::new("/dev/fuse"), 0o666);
    (id("-u").expect("uid"), id("-g").expect("gid"))
}

/// `sh -c script` as the test user (setpriv), with `dir` as cwd; (exit code, stdout, stderr).
pub fn sh_as_user(script: &str, dir: &Path) -> (i32, String, String) {
    let (uid, gid) = test_user();
    let o = Command::new("setpriv")
        .args([
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            "--init-groups".to_string(),
            "--reset-env".to_string(),
            "sh".to_string(),
            "-c".to_string(),
            script.to_string(),
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `sh -c script` as the current user in `dir`; (exit code, stdout, stderr).
pub fn sh(script: &str, dir: &Path) -> (i32, String, String) {
    let o = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run sh");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}
