//! The userspace whiteout forms (`.wh.NAME`, `.wh..wh..opq`, `user.overlay.opaque`): kernel
//! overlayfs ignores them, so these run on layerfs alone against fixed expectations.

use crate::common::layer::{Layer, build_lowers};
use crate::common::mount::{Dirs, Impl, Opts, mount};
use crate::common::{self};
use std::fs;
use std::path::Path;

fn ls(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .unwrap_or_else(|e| panic!("ls {}: {e}", p.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Mount layerfs over a stack; None (with a note) when the harness runs kernel against kernel.
fn with_mount(n: usize, setup: &dyn Fn(&[Layer]), check: &dyn Fn(&Path, &Dirs)) {
    if Impl::under_test() != Impl::Layerfs {
        eprintln!("skipped: kernel overlayfs does not read the .wh. forms");
        return;
    }
    let tmp = common::tempdir();
    let lowers = build_lowers(tmp.path(), n, setup);
    let dirs = Dirs::new(tmp.path(), lowers);
    let mut m = mount(Impl::Layerfs, &dirs, &Opts::default());
    check(&dirs.mnt, &dirs);
    m.unmount();
    // and again after a remount, to see what layerfs wrote is read back the same way
    let mut m = mount(Impl::Layerfs, &dirs, &Opts::default());
    check(&dirs.mnt, &dirs);
    m.unmount();
}

#[test]
fn scenario_wh_file_whiteout_hides_lower() {
    with_mount(
        2,
        &|l| {
            l[1].file("a/x", b"x").file("a/y", b"y").file("z", b"z");
            l[0].wh_file("a/x").wh_file("z");
        },
        &|m, _| {
            assert_eq!(ls(&m.join("a")), ["y"]);
            assert!(!ls(m).contains(&"z".to_string()));
            assert_eq!(
                fs::metadata(m.join("a/x")).unwrap_err().raw_os_error(),
                Some(libc::ENOENT)
            );
            assert_eq!(
                fs::metadata(m.join("a/.wh.x")).unwrap_err().raw_os_error(),
                Some(libc::ENOENT)
            );
        },
    );
}

#[test]
fn scenario_wh_opq_marker_makes_dir_opaque() {
    with_mount(
        2,
        &|l| {
            l[1].file("d/old", b"old").file("d/sub/deeper", b"x");
            l[0].wh_opaque("d").file("d/new", b"new");
        },
        &|m, _| {
            assert_eq!(ls(&m.join("d")), ["new"]);
            assert!(fs::metadata(m.join("d/sub")).is_err());
        },
    );
}

#[test]
fn scenario_user_overlay_opaque_xattr() {
    with_mount(
        2,
        &|l| {
            l[1].file("d/old", b"old").file("e/kept", b"k");
            l[0].user_opaque("d").file("d/new", b"new").dir("e");
        },
        &|m, _| {
            assert_eq!(ls(&m.join("d")), ["new"]);
            assert_eq!(ls(&m.join("e")), ["kept"]);
            let x = common::sys::listxattr(&m.join("d")).unwrap();
            assert!(
                x.iter().all(|n| !n.starts_with("user.overlay.")),
                "private xattr shows: {x:?}"
            );
        },
    );
}

#[test]
fn scenario_wh_dir_whiteout_then_recreate() {
    let tmp = common::tempdir();
    if Impl::under_test() != Impl::Layerfs {
        eprintln!("skipped: kernel overlayfs does not read the .wh. forms");
        return;
    }
    let lowers = build_lowers(tmp.path(), 2, &|l| {
        l[1].file("dir/inner", b"i").file("keep", b"k");
        l[0].wh_file("dir");
    });
    let dirs = Dirs::new(tmp.path(), lowers);
    let mut m = mount(Impl::Layerfs, &dirs, &Opts::default());
    assert_eq!(ls(&dirs.mnt), ["keep"]);
    fs::create_dir(dirs.mnt.join("dir")).unwrap();
    fs::write(dirs.mnt.join("dir/fresh"), b"f").unwrap();
    assert_eq!(ls(&dirs.mnt.join("dir")), ["fresh"]);
    m.unmount();
    let mut m = mount(Impl::Layerfs, &dirs, &Opts::default());
    assert_eq!(
        ls(&dirs.mnt.join("dir")),
        ["fresh"],
        "recreated dir must stay opaque over the lower one"
    );
    assert_eq!(ls(&dirs.mnt), ["dir", "keep"]);
    m.unmount();
}

#[test]
fn scenario_wh_forms_in_upper_dir_read_back() {
    // an upper dir written by an unprivileged writer (fuse-overlayfs / layerfs rootless)
    let tmp = common::tempdir();
    if Impl::under_test() != Impl::Layerfs {
        eprintln!("skipped: kernel overlayfs does not read the .wh. forms");
        return;
    }
    let lowers = build_lowers(tmp.path(), 1, &|l| {
        l[0].file("a/x", b"x")
            .file("a/y", b"y")
            .file("b/old", b"o")
            .file("c/c1", b"c");
    });
    let dirs = Dirs::new(tmp.path(), lowers);
    let up = Layer::new(dirs.upper());
    up.wh_file("a/x")
        .wh_opaque("b")
        .file("b/new", b"n")
        .user_opaque("c")
        .redirect("moved", "/c");
    let mut m = mount(Impl::Layerfs, &dirs, &Opts::default());
    assert_eq!(ls(&dirs.mnt.join("a")), ["y"]);
    assert_eq!(ls(&dirs.mnt.join("b")), ["new"]);
    assert!(ls(&dirs.mnt.join("c")).is_empty());
    m.unmount();
}
