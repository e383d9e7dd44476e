//! Who may use a mount, and what happens to it when the daemon dies: `allow_root` lets
//! root and the owner in and keeps others out; without it (as a user) only the owner
//! gets in; `allow_other` lets everyone in; `auto_unmount` takes the mount down when
//! the daemon is killed, as root and as a user (fusermount3 watching).

use crate::common::mount::{self, BIN, Impl, find_daemon, is_mounted, wait_until};
use crate::common::{self, sys};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A lower layer with one file, upper, work and mountpoint under a dir the test user
/// owns; the `-o` string for them.
fn user_dirs(t: &Path) -> (PathBuf, String) {
    let (uid, gid) = common::test_user();
    let r = t.join("r");
    for d in ["l", "u", "w", "m"] {
        fs::create_dir_all(r.join(d)).unwrap();
    }
    fs::write(r.join("l/f"), b"lower\n").unwrap();
    for p in ["", "l", "l/f", "u", "w", "m"] {
        sys::lchown(&r.join(p), uid, gid).unwrap();
    }
    let o = format!("lowerdir={0}/l,upperdir={0}/u,workdir={0}/w", r.display());
    (r, o)
}

/// Mount as the test user with `extra` options; the daemon's pid.
fn mount_as_user(r: &Path, o: &str, extra: &str) -> u32 {
    let m = r.join("m");
    let (c, out, err) = common::sh_as_user(
        &format!("{BIN} -o '{o}{extra}' '{}'", m.display()),
        Path::new("/"),
    );
    assert_eq!(c, 0, "mount as the user failed: {out}{err}");
    assert!(is_mounted(&m), "not mounted after layerfs returned");
    find_daemon(&m).expect("the daemon's pid")
}

/// `cat` of the lower file through the mount as root and as the test user.
fn reads(r: &Path) -> (bool, bool) {
    let f = r.join("m/f");
    let root = fs::read(&f).is_ok_and(|b| b == b"lower\n");
    let (c, out, _) = common::sh_as_user(&format!("cat '{}'", f.display()), Path::new("/"));
    (root, c == 0 && out == "lower\n")
}

/// Another user than root and the owner: `nobody` (65534) through setpriv.
fn reads_as_nobody(r: &Path) -> Result<(), String> {
    as_nobody("cat", &r.join("m/f"))
}

/// `cmd path` as `nobody`: Err(its stderr) when it fails.
fn as_nobody(cmd: &str, path: &Path) -> Result<(), String> {
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", cmd])
        .arg(path)
        .output()
        .unwrap();
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

fn runnable() -> bool {
    if Impl::under_test() != Impl::Layerfs || !common::is_root() {
        eprintln!("skipped: layerfs's mount options, as root driving the test user");
        return false;
    }
    true
}

#[test]
fn access_follows_allow_root_and_allow_other() {
    if !runnable() {
        return;
    }
    let t = common::tempdir();
    let (r, o) = user_dirs(t.path());
    let m = r.join("m");
    for (extra, root_in, nobody_in) in [
        ("", false, false),
        (",allow_root", true, false),
        (",allow_other", true, true),
    ] {
        mount_as_user(&r, &o, extra);
        let (root, owner) = reads(&r);
        let nobody = reads_as_nobody(&r);
        mount::force_unmount(&m);
        assert!(
            owner,
            "-o {extra:?}: the owner cannot read through the mount"
        );
        assert_eq!(root, root_in, "-o {extra:?}: root's access");
        assert_eq!(
            nobody.is_ok(),
            nobody_in,
            "-o {extra:?}: nobody's access: {nobody:?}"
        );
        if let Err(e) = nobody {
            assert!(e.contains("ermission denied"), "-o {extra:?}: {e}");
        }
    }
}

/// The kernel caches listings and opens directories without asking once told it may:
/// under allow_root it must ask, or a listing the owner read would be shown to anyone.
#[test]
fn allow_root_keeps_others_out_of_listings_the_owner_read() {
    if !runnable() {
        return;
    }
    let t = common::tempdir();
    let (r, o) = user_dirs(t.path());
    let m = r.join("m");
    mount_as_user(&r, &o, ",allow_root");
    let (c, owner, err) = common::sh_as_user(&format!("ls '{}'", m.display()), Path::new("/"));
    let by_root = fs::read_dir(&m).map(|d| d.count());
    let nobody = as_nobody("ls", &m);
    let owner_again = common::sh_as_user(&format!("ls '{}'", m.display()), Path::new("/"));
    mount::force_unmount(&m);
    assert_eq!((c, owner.as_str()), (0, "f\n"), "the owner's ls: {err}");
    assert_eq!(by_root.ok(), Some(1), "root's listing");
    let e = nobody.expect_err("nobody listed an allow_root mount the owner had listed");
    assert!(e.contains("ermission denied"), "nobody's ls: {e}");
    assert_eq!(
        owner_again.1, "f\n",
        "the owner's second ls: {}",
        owner_again.2
    );
}

#[test]
fn auto_unmount_takes_the_mount_down_when_the_daemon_is_killed() {
    if !runnable() {
        return;
    }
    let t = common::tempdir();
    let (r, o) = user_dirs(t.path());
    let m = r.join("m");
    // As the user (fusermount3 watches), then as root (the same).
    for as_user in [true, false] {
        let pid = if as_user {
            mount_as_user(&r, &o, ",auto_unmount")
        } else {
            let (c, out, err) = common::sh(
                &format!("{BIN} -o '{o},auto_unmount' '{}'", m.display()),
                Path::new("/"),
            );
            assert_eq!(c, 0, "mount as root failed: {out}{err}");
            find_daemon(&m).expect("the daemon's pid")
        };
        assert_eq!(fs::read(m.join("f")).unwrap(), b"lower\n");
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let gone = wait_until(Duration::from_secs(20), || !is_mounted(&m));
        if !gone {
            mount::force_unmount(&m);
        }
        assert!(
            gone,
            "as_user={as_user}: the mount outlived its killed daemon"
        );
    }
}
