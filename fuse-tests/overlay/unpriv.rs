//! Unprivileged runs: the same scenario script as root, as the test user (fusermount3), and
//! as the test user inside `unshare -r -m`; the merged listings and the normalised upper dirs
//! must equal the root run's (kernel overlayfs cannot mount unprivileged here, so the root run
//! of layerfs is the reference). Ownership differs by construction and is left out.

use crate::common::mount::{self, BIN, Impl};
use crate::common::snap::{self, SnapOpts};
use crate::common::{self};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

/// Builds two layers, mounts, runs the scenario, lists the merged tree, unmounts.
/// Run with `sh script ROOT`; prints the listing on stdout.
const SCRIPT: &str = r#"set -e
R="$1"; cd "$R"
mkdir -p l0 l1 u w mnt
mkdir -p l1/a/sub l1/b l1/gone
echo lower-f1 > l1/a/f1; echo lower-f2 > l1/a/f2; echo deep > l1/a/sub/deep
echo bx > l1/b/x; echo g > l1/gone/g; echo top > l1/top.txt; ln -s top.txt l1/sym
echo mid > l0/mid.txt; mkdir -p l0/a; echo upper-wins > l0/a/f1
"$BIN" -o "lowerdir=$R/l0:$R/l1,upperdir=$R/u,workdir=$R/w" "$R/mnt"
cd mnt
rm a/f2
rm -r gone
mkdir gone; echo fresh > gone/new
echo appended >> top.txt
mv a/sub a/sub2
mv b b2
mkdir -p n/m; echo n > n/m/f
ln -s ../top.txt n/link; ln mid.txt mid.hard
chmod 600 a/f1
if command -v setfattr >/dev/null; then setfattr -n user.k -v v top.txt; fi
rm sym
mkfifo pipe
find . -printf '%p %y %m %n %s %l\n' | sort
for f in $(find . -type f | sort); do printf '%s ' "$f"; cksum < "$f"; done
cd "$R"
if [ "$(id -u)" = 0 ] && [ -z "$IN_NS" ]; then umount "$R/mnt"; else fusermount3 -u "$R/mnt"; fi
"#;

fn run(mode: &str) -> Option<(String, snap::Snap)> {
    let t = common::tempdir();
    let root = t.path().join("run");
    fs::create_dir(&root).unwrap();
    let script = t.path().join("scenario.sh");
    fs::write(&script, SCRIPT).unwrap();
    let (uid, gid) = common::test_user();
    let sh = format!("BIN={BIN} sh {} {}", script.display(), root.display());
    let out = match mode {
        "root" => Command::new("sh")
            .args(["-c", &sh])
            .stdin(Stdio::null())
            .output()
            .unwrap(),
        _ => {
            common::sys::lchown(&root, uid, gid).unwrap();
            let inner = if mode == "userns" {
                format!("IN_NS=1 unshare -r -m sh -c '{sh}'")
            } else {
                sh.clone()
            };
            Command::new("setpriv")
                .args([
                    format!("--reuid={uid}"),
                    format!("--regid={gid}"),
                    "--init-groups".into(),
                    "sh".into(),
                    "-c".into(),
                    inner,
                ])
                .env("HOME", "/tmp")
                .stdin(Stdio::null())
                .output()
                .unwrap()
        }
    };
    let mnt = root.join("mnt");
    if mount::is_mounted(&mnt) {
        mount::force_unmount(&mnt);
    }
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        if mode == "userns" && stderr.contains("unshare") {
            eprintln!("skipped userns run: {stderr}");
            return None;
        }
        panic!("{mode} run failed ({:?}):\n{stderr}", out.status.code());
    }
    let lowers = vec![root.join("l0"), root.join("l1")];
    let o = SnapOpts {
        dir_nlink: false,
        mtime: false,
        owner: false,
    };
    let upper = snap::upper_semantic(&root.join("u"), &lowers, o);
    Some((String::from_utf8_lossy(&out.stdout).into_owned(), upper))
}

fn compare(mode: &str) {
    if Impl::under_test() != Impl::Layerfs {
        eprintln!("skipped: unprivileged runs are layerfs-only");
        return;
    }
    let (ref_out, ref_up) = run("root").unwrap();
    assert!(
        ref_out.contains("./gone/new"),
        "root run listing looks wrong:\n{ref_out}"
    );
    let Some((out, up)) = run(mode) else { return };
    assert_eq!(
        out, ref_out,
        "merged listing of the {mode} run differs from the root run"
    );
    if let Some(d) = snap::diff(&ref_up, &up, "root run", mode) {
        panic!(
            "upper dir of the {mode} run differs from the root run (whiteouts normalised):\n{d}"
        );
    }
}

#[test]
fn unprivileged_user_matches_root_run() {
    compare("user");
}

#[test]
fn unprivileged_userns_matches_root_run() {
    compare("userns");
}

#[test]
fn unprivileged_upper_uses_user_forms() {
    if Impl::under_test() != Impl::Layerfs {
        return;
    }
    let t = common::tempdir();
    let root = t.path().join("run");
    fs::create_dir(&root).unwrap();
    let (uid, gid) = common::test_user();
    common::sys::lchown(&root, uid, gid).unwrap();
    let script = format!(
        "set -e; cd {r}; mkdir -p l/d u w mnt; echo x > l/f; echo y > l/d/y; \
         {BIN} -o lowerdir={r}/l,upperdir={r}/u,workdir={r}/w {r}/mnt; rm mnt/f; rm -r mnt/d; mkdir mnt/d; mv mnt/d mnt/d2 || true; \
         fusermount3 -u {r}/mnt",
        r = root.display()
    );
    let (code, _, err) = common::sh_as_user(&script, Path::new("/"));
    assert_eq!(code, 0, "{err}");
    // nothing trusted.* can have been written by an unprivileged daemon
    for p in snap::paths(&root.join("u")) {
        let names = common::sys::listxattr(&root.join("u").join(&p)).unwrap_or_default();
        assert!(
            names.iter().all(|n| !n.starts_with("trusted.")),
            "{p}: {names:?}"
        );
    }
    let up = snap::upper(
        &root.join("u"),
        SnapOpts {
            owner: false,
            dir_nlink: false,
            mtime: false,
        },
    );
    assert_eq!(
        up.get("f").map(String::as_str),
        Some("whiteout"),
        "{}",
        snap::show(&up)
    );
}
