//! Lifecycle and bad input: failures exit non-zero naming the path and leave nothing
//! mounted; kill -9 recovery (also in the middle of a 1 GiB copy-up); two mounts at once;
//! unmount while busy; SIGTERM; the three command-line forms.

use crate::common::layer::{Layer, build_lowers};
use crate::common::mount::{
    self, BIN, Dirs, Impl, Opts, is_mounted, mount, mount_foreground, wait_until,
};
use crate::common::{self, snap};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn layerfs_only() -> bool {
    if Impl::under_test() != Impl::Layerfs {
        eprintln!("skipped: layerfs lifecycle test");
        return false;
    }
    true
}

/// Run `layerfs -o OPTS MNT`; it must fail, name `path` in its message, and mount nothing.
fn must_fail(opts: &str, mnt: &Path, path: &Path, as_user: bool) {
    let out = if as_user {
        let (c, o, e) = common::sh_as_user(
            &format!("{BIN} -o '{opts}' '{}'", mnt.display()),
            Path::new("/"),
        );
        (c, o + &e)
    } else {
        let o = Command::new(BIN)
            .args(["-o", opts])
            .arg(mnt)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let mounted = is_mounted(mnt);
    if mounted {
        mount::force_unmount(mnt);
    }
    assert_ne!(
        out.0,
        0,
        "layerfs -o {opts} succeeded; expected a failure about {}",
        path.display()
    );
    assert!(
        out.1.contains(&path.display().to_string()),
        "message does not name {}: {}",
        path.display(),
        out.1
    );
    assert!(!mounted, "a failed mount left {} mounted", mnt.display());
}

#[test]
fn lifecycle_bad_input_fails_cleanly() {
    if !layerfs_only() {
        return;
    }
    let t = common::tempdir();
    let p = |s: &str| t.path().join(s);
    for d in ["l", "u", "w", "mnt"] {
        fs::create_dir(p(d)).unwrap();
    }
    fs::write(p("file"), b"").unwrap();
    let o = |l: &Path, u: &Path, w: &Path| {
        format!(
            "lowerdir={},upperdir={},workdir={}",
            l.display(),
            u.display(),
            w.display()
        )
    };
    // missing lowerdir
    must_fail(
        &o(&p("nope"), &p("u"), &p("w")),
        &p("mnt"),
        &p("nope"),
        false,
    );
    // lowerdir not a dir
    must_fail(
        &o(&p("file"), &p("u"), &p("w")),
        &p("mnt"),
        &p("file"),
        false,
    );
    // missing upperdir
    must_fail(&o(&p("l"), &p("nou"), &p("w")), &p("mnt"), &p("nou"), false);
    // nonexistent mountpoint, mountpoint that is a file
    must_fail(
        &o(&p("l"), &p("u"), &p("w")),
        &p("nomnt"),
        &p("nomnt"),
        false,
    );
    must_fail(&o(&p("l"), &p("u"), &p("w")), &p("file"), &p("file"), false);
}

#[test]
fn lifecycle_no_permission_names_the_path() {
    if !layerfs_only() {
        return;
    }
    common::test_user();
    let t = common::tempdir();
    let p = |s: &str| t.path().join(s);
    for d in ["l", "u", "w", "mnt"] {
        fs::create_dir(p(d)).unwrap();
    }
    common::sys::chmod(&p("l"), 0o700).unwrap();
    let (uid, gid) = common::test_user();
    for d in ["u", "w", "mnt"] {
        common::sys::lchown(&p(d), uid, gid).unwrap();
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        p("l").display(),
        p("u").display(),
        p("w").display()
    );
    must_fail(&opts, &p("mnt"), &p("l"), true);
}

#[test]
fn lifecycle_upper_and_work_on_different_filesystems() {
    if !layerfs_only() {
        return;
    }
    let t = common::tempdir();
    let p = |s: &str| t.path().join(s);
    for d in ["l", "u", "tmpfs", "mnt"] {
        fs::create_dir(p(d)).unwrap();
    }
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(p("tmpfs"))
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs");
    struct Un(std::path::PathBuf);
    impl Drop for Un {
        fn drop(&mut self) {
            mount::force_unmount(&self.0);
        }
    }
    let _g = Un(p("tmpfs"));
    fs::create_dir(p("tmpfs/w")).unwrap();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        p("l").display(),
        p("u").display(),
        p("tmpfs/w").display()
    );
    must_fail(&opts, &p("mnt"), &p("tmpfs/w"), false);
}

fn simple_dirs(t: &Path) -> Dirs {
    let lowers = build_lowers(t, 2, &|l| {
        l[1].file("a", b"lower a\n").file("dir/b", b"lower b\n");
        l[0].file("c", b"top c\n");
    });
    Dirs::new(t, lowers)
}

#[test]
fn lifecycle_kill_9_then_remount_works() {
    if !layerfs_only() {
        return;
    }
    let t = common::tempdir();
    let dirs = simple_dirs(t.path());
    let mut m = mount_foreground(&dirs, &[]);
    fs::write(dirs.mnt.join("written"), b"before the crash\n").unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(dirs.mnt.join("a"))
        .unwrap();
    let pid = m.daemon.unwrap();
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    if let Some(c) = m.child() {
        let _ = c.wait();
    }
    // Over io_uring the kernel tears the connection down a moment after the process is
    // gone: a request caught in that moment ends with ECANCELED or ECONNABORTED; once it
    // is down, every request fails with ENOTCONN (over the device fd that is at once).
    let errno = |p: &str| {
        fs::metadata(dirs.mnt.join(p))
            .map(drop)
            .map_err(|e| e.raw_os_error())
    };
    let first = errno("a");
    assert!(
        matches!(
            first,
            Err(Some(libc::ENOTCONN | libc::ECONNABORTED | libc::ECANCELED))
        ),
        "dead mount should fail as not connected: {first:?}"
    );
    for p in ["a", "c", "nothing-here"] {
        assert_eq!(errno(p), Err(Some(libc::ENOTCONN)), "{p} on the dead mount");
    }
    mount::force_unmount(&dirs.mnt);
    m.forget();
    assert!(!is_mounted(&dirs.mnt));
    let mut m2 = mount(Impl::Layerfs, &dirs, &Opts::default());
    assert_eq!(
        fs::read(dirs.mnt.join("written")).unwrap(),
        b"before the crash\n"
    );
    assert_eq!(fs::read(dirs.mnt.join("a")).unwrap(), b"lower a\n");
    fs::write(dirs.mnt.join("after"), b"ok").unwrap();
    m2.unmount();
}

#[test]
fn lifecycle_kill_9_during_1gib_copy_up() {
    if !layerfs_only() {
        return;
    }
    let t = common::tempdir();
    let lowers = build_lowers(t.path(), 1, &|l: &[Layer]| {
        l[0].dir("d");
    });
    let big = lowers[0].join("d/big");
    let st = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=1024", "status=none"])
        .arg(format!("of={}", big.display()))
        .status()
        .unwrap();
    assert!(st.success());
    let dirs = Dirs::new(t.path(), lowers);
    let mut m = mount_foreground(&dirs, &[]);
    let mut writer = Command::new("sh")
        .args(["-c", "echo appended >> d/big"])
        .current_dir(&dirs.mnt)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // kill as soon as the copy-up has started (something appears in workdir or upper)
    let work = dirs.work.clone().unwrap();
    let up = dirs.upper().to_path_buf();
    let started = wait_until(Duration::from_secs(20), || {
        snap::paths(&work).iter().any(|p| {
            fs::metadata(work.join(p))
                .map(|m| m.is_file() && m.len() > 0)
                .unwrap_or(false)
        }) || up.join("d").exists()
    });
    let pid = m.daemon.unwrap();
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    if let Some(c) = m.child() {
        let _ = c.wait();
    }
    let _ = writer.wait();
    mount::force_unmount(&dirs.mnt);
    m.forget();
    eprintln!("copy-up had started before the kill: {started}");
    let mut m2 = mount(Impl::Layerfs, &dirs, &Opts::default());
    let md = fs::metadata(dirs.mnt.join("d/big")).unwrap();
    let upper_big = dirs.upper().join("d/big");
    if upper_big.exists() {
        // the copy-up finished before the kill: then it must be whole (lower + the append)
        let um = fs::metadata(&upper_big).unwrap();
        assert!(
            um.len() == 1 << 30 || um.len() == (1 << 30) + 9,
            "partial copy in upper: {} bytes",
            um.len()
        );
        assert_eq!(md.len(), um.len());
    } else {
        assert_eq!(
            md.len(),
            1 << 30,
            "merged view must show the lower file intact"
        );
    }
    let leftovers: Vec<String> = snap::paths(&work)
        .into_iter()
        .filter(|p| {
            fs::symlink_metadata(work.join(p))
                .map(|m| !m.is_dir())
                .unwrap_or(false)
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "stale files left in workdir after remount: {leftovers:?}"
    );
    m2.unmount();
}

#[test]
fn lifecycle_two_mounts_at_once() {
    if !layerfs_only() {
        return;
    }
    let t = common::tempdir();
    let lowers = build_lowers(&t.path().join("shared"), 1, &|l| {
        l[0].file("f", b"shared lower\n");
    });
    let a = Dirs::new(&t.path().join("a"), lowers.clone());
    let b = Dirs::new(&t.path().join("b"), lowers);
    let mut ma = mount(Impl::Layerfs, &a, &Opts::default());
    let mut mb = mount(Impl::Layerfs, &b, &Opts::default());
    fs::write(a.mnt.join("f"), b"changed in a\n").unwrap();
    assert_eq!(fs::read(b.mnt.join("f")).unwrap(), b"shared lower\n");
    fs::write(b.mnt.join("only-b"), b"b").unwrap();
    assert!(!a.mnt.join("only-b").exists());
    ma.unmount();
    assert_eq!(fs::read(b.mnt.join("f")).unwrap(), b"shared lower\n");
    mb.unmount();
}

#[test]
fn lifecycle_unmount_while_busy() {
    if !layerfs_only() {
        return;
    }
    let t = common::tempdir();
    let dirs = simple_dirs(t.path());
    let mut m = mount(Impl::Layerfs, &dirs, &Opts::default());
    let f = fs::File::open(dirs.mnt.join("a")).unwrap();
    let err = m
        .try_unmount()
        .expect_err("unmount with an open file must fail");
    assert!(err.contains("busy"), "{err}");
    assert!(is_mounted(&dirs.mnt));
    drop(f);
    m.unmount();
    assert!(!is_mounted(&dirs.mnt));
}

#[test]
fn lifecycle_sigterm_unmounts() {
    if !layerfs_only() {
        return;
    }
    let t = common::tempdir();
    let dirs = simple_dirs(t.path());
    let mut m = mount(Impl::Layerfs, &dirs, &Opts::default());
    fs::write(dirs.mnt.join("x"), b"x").unwrap();
    let pid = m.daemon.expect("daemon pid found by its command line");
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    assert!(
        wait_until(Duration::from_secs(10), || !is_mounted(&dirs.mnt)),
        "SIGTERM did not unmount"
    );
    assert!(
        wait_until(Duration::from_secs(10), || !mount::pid_alive(pid)),
        "daemon still running after SIGTERM"
    );
    m.forget();
    assert_eq!(fs::read(dirs.upper().join("x")).unwrap(), b"x");
}

#[test]
fn lifecycle_command_line_forms() {
    if !layerfs_only() {
        return;
    }
    let t = common::tempdir();
    let dirs = simple_dirs(t.path());
    let o = dirs.option_string();
    for args in [vec!["mount", "-o", &o], vec!["mysource", "-o", &o]] {
        let mut c = Command::new(BIN);
        if args[0] == "mysource" {
            c.arg("mysource").arg(&dirs.mnt).args(&args[1..]);
        } else {
            c.args(&args).arg(&dirs.mnt);
        }
        let st = c.stdin(Stdio::null()).status().unwrap();
        assert!(st.success(), "{args:?}");
        assert!(
            is_mounted(&dirs.mnt),
            "{args:?} returned before the mount was ready"
        );
        assert_eq!(fs::read(dirs.mnt.join("c")).unwrap(), b"top c\n");
        mount::force_unmount(&dirs.mnt);
        assert!(!is_mounted(&dirs.mnt));
    }
    // -f stays in the foreground; the mount appears while it runs
    let mut m = mount_foreground(&dirs, &[]);
    assert!(
        matches!(m.child().unwrap().try_wait(), Ok(None)),
        "-f exited"
    );
    m.unmount();
}
