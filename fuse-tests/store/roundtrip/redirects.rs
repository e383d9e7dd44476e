//! A directory the kernel has marked redirected without moving it: `mv -T d t/full` onto a
//! non-empty dir fails with ENOTEMPTY after the copy-up has already set
//! `trusted.overlay.redirect="/d"` on the upper `d` (kernel overlayfs does the same). What
//! the container does inside `d` afterwards must still show in `container diff`, `commit`
//! and `export` as changes against the image at `d` (a random round found the diff listing
//! all of `d` as added and missing the deletions inside it).

use super::*;

#[test]
fn changes_inside_a_dir_left_redirected_by_a_failed_rename() {
    let layer = Layer::new()
        .dir("d", 0o755, 0, 0)
        .dir("d/a", 0o755, 0, 0)
        .file("d/a/x", b"x\n", 0o644)
        .file("d/a/y", b"y\n", 0o644)
        .file("d/keep", b"keep\n", 0o644)
        .file("d/edit", b"edit\n", 0o644)
        .dir("t", 0o755, 0, 0)
        .tar();
    let Some((st, base)) = setup(vec![layer]) else {
        return;
    };
    let want = in_container(&st, "c1", |m| {
        sh_in(m, "mkdir t/full && touch t/full/z");
        let (code, _, err) = crate::common::sh("mv -T d t/full", m);
        assert_ne!(code, 0, "mv -T d t/full onto a non-empty dir must fail");
        assert!(err.contains("not empty"), "mv: {err}");
        sh_in(
            m,
            "rm -rf d/a && mkdir d/a && echo new > d/a/new && echo more >> d/edit",
        );
    });
    expect_paths(&want, &["d/keep", "d/a/new", "d/edit"], &["d/a/x", "d/a/y"]);
    let o = st.run(&["container", "diff", "c1"]);
    assert_eq!(o.code, 0, "container diff: {}", o.stderr);
    assert_eq!(
        o.stdout,
        "C /d\nC /d/a\nA /d/a/new\nD /d/a/x\nD /d/a/y\nC /d/edit\nC /t\nA /t/full\nA /t/full/z\n",
        "container diff"
    );
    assert_store_matches(&st, "c1", &base, &want);
}
