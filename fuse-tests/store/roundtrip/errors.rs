//! Error paths: a file in a container's upper dir that the store's owner cannot read makes
//! `container commit` and `container export -o FILE` fail with the file's path and the
//! cause, and leave nothing behind: no image, no layer, no (partial) output file. The store
//! runs as the unprivileged test user, since root reads a file whatever its mode.

use super::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

#[test]
fn unreadable_upper_file_fails_commit_and_export() {
    if let Some(why) = can_fuse() {
        eprintln!("skipped: needs root to switch to the test user and mount: {why}");
        return;
    }
    let st = St::new();
    std::fs::set_permissions(st.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    user_dir(&st, "store");
    let outd = user_dir(&st, "out");
    let layer = Layer::new()
        .dir("etc", 0o755, 0, 0)
        .file("etc/conf", b"conf\n", 0o644)
        .tar();
    let img = build::Img::new(vec![layer], &["img:1"], "errors");
    let p = st.path("img.tar");
    std::fs::write(&p, build::docker_archive(&[&img])).expect("write image archive");
    let o = as_user(&st, &["image", "load", "-i", p.to_str().expect("utf8")]);
    if o.code != 0 && o.stderr.contains("Operation not supported") {
        eprintln!("skipped: no user xattrs on this filesystem: {}", o.stderr);
        return;
    }
    assert_eq!(o.code, 0, "image load as the test user: {}", o.stderr);
    user_ok(&st, &["container", "create", "img:1", "--name", "c1"]);
    let mnt = user_dir(&st, "mnt");
    {
        // allow_other: root (this test) looks into the user's mount too.
        let m = mnt.to_str().expect("utf8");
        user_ok(&st, &["container", "mount", "--allow-other", "c1", m]);
        let _g = MountGuard(mnt.clone());
        let (code, _, err) = crate::common::sh_as_user(
            "mkdir secret && echo s > secret/file && echo ok > fine",
            &mnt,
        );
        assert_eq!(code, 0, "writes in the container mount: {err}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&st.ok(&["container", "inspect", "c1"])).expect("inspect JSON");
    let upper = PathBuf::from(
        v[0]["GraphDriver"]["Data"]["UpperDir"]
            .as_str()
            .expect("UpperDir"),
    );
    let (code, _, err) = crate::common::sh_as_user("chmod 000 secret/file", &upper);
    assert_eq!(code, 0, "chmod in the upper dir: {err}");
    let (images, layers) = (st.image_count(), st.layerdb_count());

    let o = as_user(&st, &["container", "commit", "c1", "img:2"]);
    assert_ne!(
        o.code, 0,
        "commit of an unreadable file should fail: {}",
        o.stdout
    );
    for want in ["secret/file", "Permission denied"] {
        assert!(
            o.stderr.contains(want),
            "commit error names {want:?}: {}",
            o.stderr
        );
    }
    assert_eq!(st.image_count(), images, "a failed commit adds no image");
    assert_eq!(st.layerdb_count(), layers, "a failed commit adds no layer");
    assert_ne!(
        as_user(&st, &["image", "inspect", "img:2"]).code,
        0,
        "no img:2"
    );

    let out = outd.join("out.tar");
    let export = [
        "container",
        "export",
        "c1",
        "-o",
        out.to_str().expect("utf8"),
    ];
    let o = as_user(&st, &export);
    assert_ne!(o.code, 0, "export of an unreadable file should fail");
    for want in ["secret/file", "Permission denied"] {
        assert!(
            o.stderr.contains(want),
            "export error names {want:?}: {}",
            o.stderr
        );
    }
    let left: Vec<_> = std::fs::read_dir(&outd)
        .expect("read out dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "a failed export leaves no file: {left:?}");
    st.assert_clean();

    // The control: readable again, both work (so the failures above were the file's).
    let (code, _, err) = crate::common::sh_as_user("chmod 600 secret/file", &upper);
    assert_eq!(code, 0, "chmod in the upper dir: {err}");
    user_ok(&st, &["container", "commit", "c1", "img:2"]);
    assert_eq!(st.image_count(), images + 1);
    user_ok(&st, &export);
    let names = tar_view(&std::fs::read(&out).expect("read out.tar"))
        .expect("export tar")
        .snap;
    assert!(names.contains_key("secret/file"), "{names:?}");
}
