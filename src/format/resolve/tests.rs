//! Unit tests of the one resolver over layer dirs built here (no mount): every marker
//! form, opaque dirs in middle layers, absolute and relative redirects, redirects crossing
//! opaque and whited-out dirs. The mount and the store call this same code.

use super::*;
use std::fs;

fn xattr(root: &Path, rel: &str, name: &str, value: &str) {
    sys::set_xattr_at(
        sys::open_dir(root).unwrap().as_fd(),
        Path::new(rel),
        OsStr::new(name),
        value.as_bytes(),
        0,
    )
    .unwrap();
}

/// A stack of lower dirs only (no upper), built from (layer, path, kind) specs.
fn stack(specs: &[&[(&str, &str)]]) -> (tempfile::TempDir, Resolver) {
    let t = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let root = t.path().join(format!("l{i}"));
        fs::create_dir_all(&root).unwrap();
        for (p, kind) in spec.iter() {
            let full = root.join(p);
            if let Some(parent) = full.parent() {
                fs::create_dir_all(parent).unwrap();
            }
            match *kind {
                "dir" => fs::create_dir_all(&full).unwrap(),
                "opaque" => {
                    fs::create_dir_all(&full).unwrap();
                    fs::write(full.join(".wh..wh..opq"), "").unwrap();
                }
                k if k.starts_with("redirect:") => {
                    fs::create_dir_all(&full).unwrap();
                    // user.* xattrs work for root and for the owner alike.
                    xattr(&root, p, "user.overlay.redirect", &k["redirect:".len()..]);
                }
                // A directory with an xattr: "xattr:NAME=VALUE".
                k if k.starts_with("xattr:") => {
                    fs::create_dir_all(&full).unwrap();
                    let (n, v) = k["xattr:".len()..].split_once('=').unwrap();
                    xattr(&root, p, n, v);
                }
                // The kernel's whiteout: a char device 0:0 (unprivileged users may make one).
                "chardev-wh" => sys::mknod_at(
                    sys::open_dir(&root).unwrap().as_fd(),
                    Path::new(p),
                    libc::S_IFCHR | 0o600,
                    0,
                )
                .unwrap(),
                "wh" => {
                    let name = full.file_name().unwrap().to_os_string();
                    fs::write(full.with_file_name(whiteout::wh_name(&name)), "").unwrap();
                }
                content => fs::write(&full, content).unwrap(),
            }
        }
        paths.push(root);
    }
    let s = Resolver::new(open_layers(&paths, None).unwrap(), 0);
    (t, s)
}

fn root_dirs(s: &Resolver) -> Vec<Loc> {
    (0..s.layers.len()).map(|i| (i, PathBuf::new())).collect()
}

fn names(s: &Resolver, dirs: &[Loc]) -> Vec<String> {
    let mut v: Vec<String> = s
        .list(dirs)
        .unwrap()
        .into_iter()
        .map(|e| e.0.to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn top_layer_wins_and_dirs_merge() {
    let (_t, s) = stack(&[
        &[("a", "top"), ("d/x", "1")],
        &[("a", "bottom"), ("d/y", "2")],
    ]);
    let f = s.resolve(&root_dirs(&s), OsStr::new("a")).unwrap().unwrap();
    assert_eq!(f.top.0, 0);
    let d = s.resolve(&root_dirs(&s), OsStr::new("d")).unwrap().unwrap();
    assert_eq!(d.lower_dirs.len(), 1);
    let mut dirs = vec![d.top.clone()];
    dirs.extend(d.lower_dirs.clone());
    assert_eq!(names(&s, &dirs), ["x", "y"]);
}

#[test]
fn wh_file_hides_lower_and_is_not_listed() {
    let (_t, s) = stack(&[
        &[("gone", "wh"), ("keep", "k")],
        &[("gone", "g"), ("other", "o")],
    ]);
    assert!(
        s.resolve(&root_dirs(&s), OsStr::new("gone"))
            .unwrap()
            .is_none()
    );
    assert_eq!(names(&s, &root_dirs(&s)), ["keep", "other"]);
}

#[test]
fn opaque_dir_stops_the_merge() {
    let (_t, s) = stack(&[&[("d", "opaque"), ("d/new", "n")], &[("d/old", "o")]]);
    let d = s.resolve(&root_dirs(&s), OsStr::new("d")).unwrap().unwrap();
    assert!(d.lower_dirs.is_empty());
    assert_eq!(names(&s, std::slice::from_ref(&d.top)), ["new"]);
}

#[test]
fn non_dir_above_dir_hides_it() {
    let (_t, s) = stack(&[&[("d", "file now")], &[("d/x", "1")]]);
    let f = s.resolve(&root_dirs(&s), OsStr::new("d")).unwrap().unwrap();
    assert!(!s_isdir(f.stat.st_mode));
    assert!(f.lower_dirs.is_empty());
}

#[test]
fn absolute_redirect_stops_below_an_opaque_ancestor() {
    // reduced from randomized seed 480306020: `old` is opaque in the middle layer, so
    // the redirect to /old/dir finds the middle layer's old/dir and nothing below it.
    let (_t, s) = stack(&[
        &[("new/place", "redirect:/old/dir")],
        &[("old", "opaque"), ("old/dir/x", "1")],
        &[("old/dir/y", "2")],
    ]);
    let place = found(&s, "new/place").unwrap();
    assert_eq!(place.lower_dirs, vec![(1, PathBuf::from("old/dir"))]);
}

#[test]
fn absolute_redirect_finds_moved_contents() {
    let (_t, s) = stack(&[&[("new/place", "redirect:/old/dir")], &[("old/dir/x", "1")]]);
    let place = found(&s, "new/place").unwrap();
    assert_eq!(place.lower_dirs, vec![(1, PathBuf::from("old/dir"))]);
}

#[test]
fn relative_redirect_renames_within_parent() {
    let (_t, s) = stack(&[&[("b", "redirect:a")], &[("a/x", "1")]]);
    let b = s.resolve(&root_dirs(&s), OsStr::new("b")).unwrap().unwrap();
    assert_eq!(b.lower_dirs, vec![(1, PathBuf::from("a"))]);
}

fn found(s: &Resolver, path: &str) -> Option<Found> {
    let mut dirs = root_dirs(s);
    let mut f = None;
    for c in Path::new(path).components() {
        let x = s.resolve(&dirs, c.as_os_str()).unwrap()?;
        dirs = std::iter::once(x.top.clone())
            .chain(x.lower_dirs.clone())
            .collect();
        f = Some(x);
    }
    f
}

fn dirs_of(f: &Found) -> Vec<Loc> {
    std::iter::once(f.top.clone())
        .chain(f.lower_dirs.clone())
        .collect()
}

#[test]
fn every_whiteout_form_hides_and_is_not_listed() {
    let (_t, s) = stack(&[
        &[("a", "chardev-wh"), ("b", "wh"), ("keep", "k")],
        &[("a", "a"), ("b", "b"), ("c", "c")],
    ]);
    assert!(found(&s, "a").is_none(), "char 0:0 whiteout");
    assert!(found(&s, "b").is_none(), ".wh. file");
    assert_eq!(names(&s, &root_dirs(&s)), ["c", "keep"]);
    // Listing first (which caches "has .wh. files") must not change a lookup.
    assert!(found(&s, "b").is_none());
}

#[test]
fn a_char_device_that_is_not_0_0_is_an_entry() {
    if sys::geteuid() != 0 {
        return; // mknod of a real device needs CAP_MKNOD
    }
    let (t, s) = stack(&[&[], &[("null", "n")]]);
    let top = sys::open_dir(&t.path().join("l0")).unwrap();
    sys::mknod_at(
        top.as_fd(),
        Path::new("null"),
        libc::S_IFCHR | 0o666,
        sys::makedev(1, 3),
    )
    .unwrap();
    let f = found(&s, "null").unwrap();
    assert_eq!(f.top.0, 0);
    assert_eq!(names(&s, &root_dirs(&s)), ["null"]);
}

#[test]
fn every_opaque_form_stops_the_merge() {
    let mut forms = vec![
        "opaque",
        "xattr:user.overlay.opaque=y",
        "xattr:user.fuseoverlayfs.opaque=y",
    ];
    if sys::geteuid() == 0 {
        forms.push("xattr:trusted.overlay.opaque=y");
    }
    for form in forms {
        let (_t, s) = stack(&[&[("d", form), ("d/new", "n")], &[("d/old", "o")]]);
        let d = found(&s, "d").unwrap();
        assert!(d.lower_dirs.is_empty(), "{form}");
        assert_eq!(names(&s, &dirs_of(&d)), ["new"], "{form}");
    }
    // `x` means "has xwhiteouts", not opaque.
    let (_t, s) = stack(&[
        &[("d", "xattr:user.overlay.opaque=x"), ("d/new", "n")],
        &[("d/old", "o")],
    ]);
    let d = found(&s, "d").unwrap();
    assert_eq!(names(&s, &dirs_of(&d)), ["new", "old"]);
}

#[test]
fn opaque_dir_in_a_middle_layer_hides_only_below_it() {
    let (_t, s) = stack(&[
        &[("d/top", "t")],
        &[("d", "opaque"), ("d/mid", "m")],
        &[("d/bottom", "b")],
    ]);
    let d = found(&s, "d").unwrap();
    assert_eq!(d.lower_dirs, vec![(1, PathBuf::from("d"))]);
    assert_eq!(names(&s, &dirs_of(&d)), ["mid", "top"]);
    assert!(found(&s, "d/bottom").is_none());
    assert!(found(&s, "d/mid").is_some());
}

#[test]
fn an_opaque_root_in_a_middle_layer_ends_the_root() {
    let (_t, s) = stack(&[&[("a", "a")], &[("", "opaque"), ("b", "b")], &[("c", "c")]]);
    let r = s.root().unwrap();
    assert_eq!(r.lower_dirs, vec![(1, PathBuf::new())]);
    assert_eq!(names(&s, &dirs_of(&r)), ["a", "b"]);
}

#[test]
fn absolute_redirect_is_blocked_by_a_whiteout_or_file_on_its_way() {
    for form in ["wh", "chardev-wh", "now a file"] {
        let (_t, s) = stack(&[
            &[("new/place", "redirect:/old/dir")],
            &[("old", form)],
            &[("old/dir/x", "1")],
        ]);
        let place = found(&s, "new/place").unwrap();
        assert!(
            place.lower_dirs.is_empty(),
            "{form}: {:?}",
            place.lower_dirs
        );
    }
}

#[test]
fn absolute_redirect_skips_a_layer_without_the_path() {
    let (_t, s) = stack(&[
        &[("new/place", "redirect:/old/dir")],
        &[("unrelated", "u")],
        &[("old/dir/x", "1")],
    ]);
    let place = found(&s, "new/place").unwrap();
    assert_eq!(place.lower_dirs, vec![(2, PathBuf::from("old/dir"))]);
    assert_eq!(names(&s, &dirs_of(&place)), ["x"]);
}

#[test]
fn relative_redirect_inside_a_redirected_dir_follows_the_parent() {
    // `new` came from /old; inside it `b` was renamed from `a`: the lower path is old/a.
    let (_t, s) = stack(&[
        &[("new", "redirect:/old"), ("new/b", "redirect:a")],
        &[("old/a/x", "1"), ("new/a/wrong", "w")],
    ]);
    let b = found(&s, "new/b").unwrap();
    assert_eq!(b.lower_dirs, vec![(1, PathBuf::from("old/a"))]);
    assert_eq!(names(&s, &dirs_of(&b)), ["x"]);
}

#[test]
fn chained_redirects_across_layers() {
    // Renamed in the middle layer (/a -> /b), then again on top (/b -> /c).
    let (_t, s) = stack(&[
        &[("c", "redirect:/b"), ("c/top", "t")],
        &[("b", "redirect:/a"), ("b/mid", "m")],
        &[("a/bottom", "b")],
    ]);
    let c = found(&s, "c").unwrap();
    assert_eq!(
        c.lower_dirs,
        vec![(1, PathBuf::from("b")), (2, PathBuf::from("a"))]
    );
    assert_eq!(names(&s, &dirs_of(&c)), ["bottom", "mid", "top"]);
}

#[test]
fn invalid_redirects_are_ignored_and_never_leave_the_layer() {
    for bad in ["/../x", "../x", "a/b", "/a/./b", "."] {
        let (_t, s) = stack(&[
            &[("d", &format!("redirect:{bad}")), ("d/top", "t")],
            &[("d/same", "s"), ("x/outside", "o")],
        ]);
        let d = found(&s, "d").unwrap();
        assert_eq!(d.lower_dirs, vec![(1, PathBuf::from("d"))], "{bad}");
    }
}

#[test]
fn a_255_byte_name_has_no_wh_form_and_resolves() {
    let long = "n".repeat(255);
    let (_t, s) = stack(&[&[("x", "x")], &[(long.as_str(), "data")]]);
    let f = found(&s, &long).unwrap();
    assert_eq!(f.top.0, 1);
}

#[test]
fn recorded_shows_what_one_layer_says() {
    let (_t, s) = stack(&[
        &[
            ("gone", "wh"),
            ("cgone", "chardev-wh"),
            ("d", "opaque"),
            ("f", "x"),
        ],
        &[("gone", "g")],
    ]);
    let r = s.recorded(0, Path::new("")).unwrap();
    let got: Vec<String> = r
        .iter()
        .map(|r| match r {
            Recorded::Deleted(n) => format!("-{}", n.to_string_lossy()),
            Recorded::Entry(n, _) => n.to_string_lossy().into_owned(),
        })
        .collect();
    // Sorted by the name on disk: `.wh.gone` first.
    assert_eq!(got, ["-gone", "-cgone", "d", "f"]);
    // The opaque marker is not an entry of d.
    assert!(s.recorded(0, Path::new("d")).unwrap().is_empty());
    assert!(s.dir_markers(&(0, PathBuf::from("d"))).unwrap().0);
}

/// Once a lower directory is indexed (after a few lookups that found nothing, or a
/// listing), every answer stays what the layers say: names below, whiteouts in both
/// forms, names that are nowhere; and a directory too big to index answers the same.
#[test]
fn indexed_lower_dirs_answer_as_the_layers_do() {
    let mut top: Vec<(String, String)> = vec![
        ("d/gone".into(), "wh".into()),
        ("d/cgone".into(), "chardev-wh".into()),
        ("d/here".into(), "top".into()),
    ];
    let mut bottom: Vec<(String, String)> = ["gone", "cgone", "below", "here"]
        .iter()
        .map(|n| (format!("d/{n}"), "b".to_string()))
        .collect();
    for i in 0..=index::MAX_ENTRIES {
        top.push((format!("big/t{i}"), "t".into()));
    }
    bottom.push(("big/under".into(), "u".into()));
    fn as_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
        v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
    }
    let (t, b) = (as_refs(&top), as_refs(&bottom));
    let (_t, s) = stack(&[&t, &b]);
    for dir in ["d", "big"] {
        let dirs: Vec<Loc> = (0..2).map(|i| (i, PathBuf::from(dir))).collect();
        let found = |n: &str| {
            s.resolve(&dirs, OsStr::new(n))
                .unwrap()
                .map(|f| (f.top.0, f.top.1))
        };
        // Before, while and after the index is made: the same answers every round.
        for round in 0..(index::MISSES_BEFORE_INDEX + 2) {
            let at = |l: usize, n: &str| Some((l, PathBuf::from(dir).join(n)));
            assert_eq!(
                found(&format!("nowhere{round}")),
                None,
                "{dir}: round {round}"
            );
            if dir == "d" {
                assert_eq!(found("gone"), None, "a .wh. file hides it (round {round})");
                assert_eq!(
                    found("cgone"),
                    None,
                    "a 0:0 device hides it (round {round})"
                );
                assert_eq!(found("below"), at(1, "below"), "round {round}");
                assert_eq!(found("here"), at(0, "here"), "round {round}");
            } else {
                assert_eq!(found("under"), at(1, "under"), "round {round}");
                assert_eq!(found("t7"), at(0, "t7"), "round {round}");
            }
        }
        let indexed = s
            .lower_info
            .get(&(0, PathBuf::from(dir)))
            .is_some_and(|i| i.index.is_some());
        assert_eq!(indexed, dir == "d", "{dir}: indexed only when small");
    }
}
