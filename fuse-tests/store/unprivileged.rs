//! Loading as an unprivileged user: owners and modes go to `user.containers.override_stat`,
//! devices become plain stand-ins, root-owned fifos stay real, whiteouts stay `.wh.` files,
//! and save still reproduces the exact layer tars (same image ID in a root store).

use super::build;
use super::util::*;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;

const NOBODY: u32 = 65534;

fn xattr_str(p: &Path) -> Option<String> {
    getxattr(p, "user.containers.override_stat").map(|v| String::from_utf8_lossy(&v).into_owned())
}

#[test]
fn unprivileged_load_records_owners_in_xattrs() {
    if !is_root() {
        eprintln!("skipped: needs root to switch to an unprivileged uid");
        return;
    }
    let st = St::new();
    std::fs::set_permissions(st.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::create_dir(&st.root).expect("mkdir");
    std::os::unix::fs::chown(&st.root, Some(NOBODY), Some(NOBODY)).expect("chown");
    let (a, _) = build::sample();
    let p = st.path("s.tar");
    std::fs::write(&p, build::docker_archive(&[&a])).expect("write");
    let run = |args: &[&str]| {
        let o = st
            .cmd(args)
            .uid(NOBODY)
            .gid(NOBODY)
            .env("HOME", st.dir.path())
            .output()
            .expect("run");
        out(o)
    };
    let o = run(&["image", "load", "-i", p.to_str().expect("utf8")]);
    if o.code != 0 && o.stderr.contains("Operation not supported") {
        eprintln!("skipped: no user xattrs on this filesystem: {}", o.stderr);
        return;
    }
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("device nodes cannot be created unprivileged"),
        "warns: {}",
        o.stderr
    );
    let dirs = layer_dirs(&st, "sample:1");
    let (top, base) = (&dirs[0], &dirs[1]);
    let md = std::fs::symlink_metadata(base.join("etc/odd")).expect("odd");
    assert_eq!(md.uid(), NOBODY, "really owned by the loader");
    assert_eq!(
        xattr_str(&base.join("etc/odd")).as_deref(),
        Some("1234:4321:100604")
    );
    assert_eq!(
        xattr_str(&base.join("bin/sh")).as_deref(),
        Some("0:0:100755")
    );
    assert_eq!(
        xattr_str(&base.join("usr/bin/suid")).as_deref(),
        Some("0:0:104755")
    );
    assert_eq!(
        xattr_str(&base.join("home/user")).as_deref(),
        Some("1000:1000:40750")
    );
    assert_eq!(xattr_str(&base.join("tmp")).as_deref(), Some("0:0:41777"));
    let null = std::fs::symlink_metadata(base.join("dev/null")).expect("null");
    assert!(
        null.file_type().is_file(),
        "device stand-in is a plain file"
    );
    assert_eq!(
        xattr_str(&base.join("dev/null")).as_deref(),
        Some("0:0:20666:char-1-3")
    );
    // A root-owned fifo is a real one: the loader's ids stand for 0:0 there (root-ids).
    assert!(
        std::fs::symlink_metadata(base.join("dev/fifo"))
            .expect("fifo")
            .file_type()
            .is_fifo()
    );
    assert_eq!(xattr_str(&base.join("dev/fifo")), None);
    // Whiteouts in the unprivileged form.
    assert!(top.join("etc/.wh.motd").is_file());
    assert!(top.join("opt/.wh..wh..opq").is_file());
    assert_eq!(
        getxattr(&top.join("opt"), "user.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    // Save as the same user: byte-identical layers, so a root store gets the same ID.
    let saved = st.path("saved.tar");
    std::fs::set_permissions(st.dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let o = run(&[
        "image",
        "save",
        "-o",
        saved.to_str().expect("utf8"),
        "sample:1",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let st2 = St::new();
    st2.ok(&["image", "load", "-i", saved.to_str().expect("utf8")]);
    assert_eq!(inspect(&st2, "sample:1")["Id"], a.id());
    // A container commit as that user writes the presented owners into the tar.
    let o = run(&["container", "create", "sample:1", "--name", "u"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = run(&[
        "container",
        "export",
        "u",
        "-o",
        st.path("u.tar").to_str().expect("utf8"),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mut ar = tar::Archive::new(std::fs::File::open(st.path("u.tar")).expect("open"));
    let mut checked = 0;
    for e in ar.entries().expect("entries") {
        let e = e.expect("entry");
        let h = e.header();
        let name = e.path().expect("path").display().to_string();
        if name == "etc/odd" {
            assert_eq!(
                (
                    h.uid().expect("uid"),
                    h.gid().expect("gid"),
                    h.mode().expect("mode")
                ),
                (1234, 4321, 0o604)
            );
            checked += 1;
        }
        if name == "dev/fifo" {
            assert_eq!(h.entry_type(), tar::EntryType::Fifo);
            checked += 1;
        }
        if name == "dev/null" {
            assert_eq!(h.entry_type(), tar::EntryType::Char);
            assert_eq!(
                (
                    h.device_major().expect("maj"),
                    h.device_minor().expect("min")
                ),
                (Some(1), Some(3))
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 3);
}
