//! layerfs without root and without podman: mounted by the unprivileged test user
//! (through fusermount3) and inside `unshare -r -m`; the upper dir must hold the
//! unprivileged on-disk forms (`user.overlay.*`, `user.containers.override_stat`).

use super::*;

/// Lower/upper/work/mnt in a temp dir everyone can traverse, and a runnable binary.
struct Stack {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Stack {
    fn new() -> Stack {
        let dir = common::tempdir();
        let bin = public_binary(dir.path());
        for d in ["lower/w/d", "lower/w/od", "upper", "work", "mnt"] {
            fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        let l = dir.path().join("lower/w");
        for (f, data) in [
            ("mine", "m\n"),
            ("gone", "g\n"),
            ("rootfile", "r\n"),
            ("d/x", "x\n"),
            ("od/y", "y\n"),
        ] {
            fs::write(l.join(f), data).expect("write lower file");
        }
        Stack { dir, bin }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn mount_line(&self) -> String {
        format!(
            "'{}' -o 'lowerdir={},upperdir={},workdir={}' '{}'",
            self.bin.display(),
            self.p("lower").display(),
            self.p("upper").display(),
            self.p("work").display(),
            self.p("mnt").display()
        )
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for m in mounts_under(self.dir.path()) {
            common::mount::force_unmount(Path::new(&m));
        }
    }
}

/// Every xattr name under `root` (as root: trusted.* included).
fn all_xattrs(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        for n in common::sys::listxattr(&p).unwrap_or_default() {
            out.push((p.strip_prefix(root).unwrap_or(&p).display().to_string(), n));
        }
        if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            for e in fs::read_dir(&p).into_iter().flatten().flatten() {
                stack.push(e.path());
            }
        }
    }
    out
}

fn xattr(p: &Path, name: &str) -> Option<String> {
    common::sys::getxattr(p, name).ok().map(|v| text(&v))
}

/// A whiteout in the upper dir: a 0:0 character device, or a `.wh.NAME` file beside it.
fn is_whiteout(dir: &Path, name: &str) -> bool {
    let dev = fs::symlink_metadata(dir.join(name))
        .is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0);
    dev || dir.join(format!(".wh.{name}")).exists()
}

fn assert_unprivileged_upper(s: &Stack, what: &str) {
    let u = s.p("upper/w");
    let names = all_xattrs(&s.p("upper"));
    let trusted: Vec<_> = names
        .iter()
        .filter(|(_, n)| n.starts_with("trusted."))
        .collect();
    assert!(
        trusted.is_empty(),
        "{what}: trusted.* xattrs written without privilege: {trusted:?}"
    );
    assert_eq!(
        fs::read_to_string(u.join("new")).ok().as_deref(),
        Some("new\n"),
        "{what}: new file"
    );
    assert_eq!(
        fs::read_to_string(u.join("mine")).ok().as_deref(),
        Some("m\nmore\n"),
        "{what}: copy-up"
    );
    assert!(is_whiteout(&u, "gone"), "{what}: no whiteout for gone");
    assert!(
        is_whiteout(&u, "d"),
        "{what}: no whiteout for the renamed dir"
    );
    let redirect = xattr(&u.join("d2"), "user.overlay.redirect");
    assert!(
        matches!(redirect.as_deref(), Some("d") | Some("/w/d")),
        "{what}: user.overlay.redirect on d2 = {redirect:?}"
    );
    assert_eq!(
        xattr(&u.join("od"), "user.overlay.opaque").as_deref(),
        Some("y"),
        "{what}: opaque"
    );
    assert!(
        !u.join("od/y").exists(),
        "{what}: opaque dir kept lower content"
    );
}

#[test]
fn rootless_layerfs_as_user() {
    if let Some(why) = missing(&["setpriv", "fusermount3"], true, false) {
        return skip("rootless_layerfs_as_user", &why);
    }
    let (uid, gid) = common::test_user();
    let s = Stack::new();
    // The user owns the layer's directory and upper/work/mnt; two lower files stay root's.
    chown_tree(&s.p("lower/w"), uid, gid);
    for d in ["upper", "work", "mnt"] {
        chown_tree(&s.p(d), uid, gid);
    }
    for f in ["lower/w/rootfile", "lower/w/gone"] {
        std::os::unix::fs::chown(s.p(f), Some(0), Some(0)).expect("chown root");
    }
    let script = format!(
        "{m} || exit 90\n\
         cd mnt/w && echo new > new && echo more >> mine && rm gone && mv rootfile rootfile2 \
         && mv d d2 && rm -r od && mkdir od && stat -c '%n %u:%g %a' rootfile2 new \
         && cat rootfile2 d2/x\n\
         rc=$?; cd ../..; fusermount3 -u mnt || exit 91; exit $rc",
        m = s.mount_line()
    );
    let (code, out, err) = common::sh_as_user(&script, s.dir.path());
    assert_eq!(code, 0, "as {}: {out}{err}", common::TEST_USER);
    assert!(
        !common::mount::is_mounted(&s.p("mnt")),
        "still mounted after fusermount3 -u"
    );
    // The merged view kept root's ownership of the copied-up file; the new file is the user's.
    assert!(
        out.contains("rootfile2 0:0 644"),
        "presented owner of a copied-up root file:\n{out}"
    );
    assert!(
        out.contains(&format!("new {uid}:{gid} 644")),
        "new file owner:\n{out}"
    );
    assert!(
        out.ends_with("r\nx\n"),
        "contents through the mount:\n{out}"
    );

    assert_unprivileged_upper(&s, "as user");
    let u = s.p("upper/w");
    assert!(
        is_whiteout(&u, "rootfile"),
        "no whiteout for the rename source"
    );
    let md = fs::symlink_metadata(u.join("rootfile2")).expect("copied-up rootfile2");
    assert_eq!(
        (md.uid(), md.gid()),
        (uid, gid),
        "real owner of the copy is the user"
    );
    let ov = xattr(&u.join("rootfile2"), "user.containers.override_stat");
    assert!(
        ov.as_deref()
            .is_some_and(|v| v == "0:0:100644" || v.starts_with("0:0:100644:")),
        "user.containers.override_stat on the copy of a root-owned file = {ov:?}"
    );
}

#[test]
fn rootless_layerfs_in_user_namespace() {
    if let Some(why) = missing(&["setpriv", "unshare"], true, false) {
        return skip("rootless_layerfs_in_user_namespace", &why);
    }
    let (uid, gid) = common::test_user();
    let (code, _, err) = common::sh_as_user("unshare -r -m true", Path::new("/"));
    if code != 0 {
        return skip(
            "rootless_layerfs_in_user_namespace",
            &format!("unshare -r -m: {err}"),
        );
    }
    let s = Stack::new();
    // All of it is the user's (root in the namespace) except one file of the real root's,
    // which the namespace sees as the overflow id and can only read.
    chown_tree(&s.p("lower/w"), uid, gid);
    for d in ["upper", "work", "mnt"] {
        chown_tree(&s.p(d), uid, gid);
    }
    std::os::unix::fs::chown(s.p("lower/w/rootfile"), Some(0), Some(0)).expect("chown root");
    let script = format!(
        "unshare -r -m sh -c \"{m} || exit 90\n\
         cd mnt/w && echo new > new && echo more >> mine && rm gone && mv d d2 \
         && rm -r od && mkdir od && chmod 600 mine && stat -c '%n %u:%g %a' new mine \
         && cat rootfile d2/x && grep ' $PWD/mnt ' /proc/self/mountinfo\n\
         rc=\\$?; cd ../..; umount mnt || exit 91; exit \\$rc\"",
        m = s.mount_line()
    );
    let (code, out, err) = common::sh_as_user(&script, s.dir.path());
    assert_eq!(
        code,
        0,
        "unshare -r -m as {}: {out}{err}",
        common::TEST_USER
    );
    assert!(
        out.contains("new 0:0 644"),
        "new file owned by the namespace's root:\n{out}"
    );
    assert!(
        out.contains("mine 0:0 600"),
        "chmod through the mount:\n{out}"
    );
    assert!(out.contains("r\nx\n"), "contents through the mount:\n{out}");
    assert!(
        out.contains("fuse.layerfs"),
        "not a layerfs mount in the namespace:\n{out}"
    );

    assert_unprivileged_upper(&s, "in unshare -r -m");
    let u = s.p("upper/w");
    let md = fs::symlink_metadata(u.join("new")).expect("upper new");
    assert_eq!(
        (md.uid(), md.gid()),
        (uid, gid),
        "namespace root's files belong to the user"
    );
    assert_eq!(md.mode() & 0o7777, 0o644);
    assert_eq!(
        fs::symlink_metadata(u.join("mine"))
            .map(|m| m.mode() & 0o7777)
            .ok(),
        Some(0o600)
    );
    assert!(
        xattr(&u.join("new"), "user.containers.override_stat").is_none(),
        "no override needed"
    );
}
