//! Namespace operations: create, mkdir, mknod, symlink, link, unlink, rmdir, rename in all
//! its forms; whiteouts and opaque dirs they leave; rename of a lower dir (redirect).

use super::harness::Diff;
use crate::common::sys;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, symlink};

fn ls(p: &std::path::Path) -> io::Result<Vec<String>> {
    let mut v: Vec<String> = fs::read_dir(p)?
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    Ok(v)
}

#[test]
fn scenario_create_file_in_lower_dir() {
    let mut d = Diff::std();
    d.ok("create a/sub/new", |m| {
        fs::write(m.join("a/sub/new"), b"new\n")
    });
    d.fails("O_EXCL create of existing lower a/f1", "EEXIST", |m| {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(m.join("a/f1"))
            .map(drop)
    });
    d.fails("create under a file", "ENOTDIR", |m| {
        fs::write(m.join("top.txt/x"), b"")
    });
    d.fails("create in missing dir", "ENOENT", |m| {
        fs::write(m.join("nodir/x"), b"")
    });
    d.ok("ls a/sub", |m| ls(&m.join("a/sub")));
    d.finish();
}

#[test]
fn scenario_mkdir_in_merged_dir() {
    let mut d = Diff::std();
    d.ok("mkdir a/newdir", |m| fs::create_dir(m.join("a/newdir")));
    d.ok("mkdir -p c/x/y/z", |m| {
        fs::create_dir_all(m.join("c/x/y/z"))
    });
    d.fails("mkdir existing lower a/sub", "EEXIST", |m| {
        fs::create_dir(m.join("a/sub"))
    });
    d.fails("mkdir over lower file", "EEXIST", |m| {
        fs::create_dir(m.join("top.txt"))
    });
    d.ok("ls a", |m| ls(&m.join("a")));
    d.finish();
}

#[test]
fn scenario_mknod_fifo_and_socket() {
    let mut d = Diff::std();
    d.ok("mkfifo a/p", |m| sys::mkfifo(&m.join("a/p")));
    d.ok("mknod S_IFSOCK a/s", |m| {
        sys::mknod(&m.join("a/s"), libc::S_IFSOCK | 0o640, 0, 0)
    });
    d.ok("bind socket b/sock", |m| {
        sys::make_socket(&m.join("b/sock"))
    });
    d.fails("mkfifo over lower fifo", "EEXIST", |m| {
        sys::mkfifo(&m.join("fifo"))
    });
    d.finish();
}

#[test]
fn scenario_mknod_char_and_block_dev() {
    let mut d = Diff::std();
    d.ok("mknod c 1:3 null", |m| {
        sys::mknod(&m.join("null"), libc::S_IFCHR | 0o666, 1, 3)
    });
    d.ok("mknod b 7:0 loop", |m| {
        sys::mknod(&m.join("a/loop"), libc::S_IFBLK | 0o660, 7, 0)
    });
    d.ok("rdev", |m| {
        Ok((
            fs::symlink_metadata(m.join("null"))?.rdev(),
            fs::symlink_metadata(m.join("a/loop"))?.rdev(),
        ))
    });
    d.fails("mknod 0:0 over lower fifo", "EEXIST", |m| {
        sys::mknod(&m.join("fifo"), libc::S_IFCHR | 0o600, 0, 0)
    });
    d.finish();
}

#[test]
fn scenario_symlink_create_and_readlink() {
    let mut d = Diff::std();
    d.ok("symlink a/ln -> ../top.txt", |m| {
        symlink("../top.txt", m.join("a/ln"))
    });
    d.ok("symlink long target", |m| {
        symlink("x".repeat(1000), m.join("longlink"))
    });
    d.ok("readlink + read", |m| {
        Ok((fs::read_link(m.join("a/ln"))?, fs::read(m.join("a/ln"))?))
    });
    d.fails("symlink over existing lower", "EEXIST", |m| {
        symlink("x", m.join("mid.txt"))
    });
    d.finish();
}

#[test]
fn scenario_link_upper_file() {
    let mut d = Diff::std();
    d.ok("create u, link u2, link u3", |m| {
        fs::write(m.join("u"), b"u")?;
        fs::hard_link(m.join("u"), m.join("u2"))?;
        fs::hard_link(m.join("u"), m.join("a/u3"))
    });
    d.ok("nlinks", |m| Ok(fs::metadata(m.join("u"))?.nlink()));
    d.ok("unlink u2", |m| fs::remove_file(m.join("u2")));
    d.ok("nlinks", |m| Ok(fs::metadata(m.join("a/u3"))?.nlink()));
    d.fails("link dir", "EPERM", |m| {
        fs::hard_link(m.join("a"), m.join("alink"))
    });
    d.fails("link over existing", "EEXIST", |m| {
        fs::hard_link(m.join("u"), m.join("mid.txt"))
    });
    d.finish();
}

#[test]
fn scenario_unlink_lower_file_leaves_whiteout() {
    let mut d = Diff::std();
    d.ok("unlink a/f1", |m| fs::remove_file(m.join("a/f1")));
    d.fails("stat a/f1", "ENOENT", |m| {
        fs::metadata(m.join("a/f1")).map(drop)
    });
    d.ok("unlink hl1 (one of two lower hard links)", |m| {
        fs::remove_file(m.join("hl1"))
    });
    d.ok("hl2 still there", |m| {
        Ok((
            fs::read(m.join("hl2"))?,
            fs::metadata(m.join("hl2"))?.nlink(),
        ))
    });
    d.ok("unlink sym, fifo", |m| {
        fs::remove_file(m.join("sym"))?;
        fs::remove_file(m.join("fifo"))
    });
    d.holds_side("whiteout for a/f1 in upper", |s| {
        let md = fs::symlink_metadata(s.dirs.upper().join("a/f1")).map_err(|e| e.to_string());
        let wh = s.dirs.upper().join("a/.wh.f1").exists();
        match md {
            Ok(m) if m.file_type().is_char_device_like() && m.rdev() == 0 => Ok(()),
            _ if wh => Ok(()),
            other => Err(format!("no whiteout: {other:?}")),
        }
    });
    d.fails("unlink again", "ENOENT", |m| {
        fs::remove_file(m.join("a/f1"))
    });
    d.fails("unlink dir", "EISDIR", |m| fs::remove_file(m.join("a")));
    d.finish();
}

trait CharDevLike {
    fn is_char_device_like(&self) -> bool;
}
impl CharDevLike for fs::FileType {
    fn is_char_device_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_char_device()
    }
}

#[test]
fn scenario_unlink_upper_only_file_leaves_nothing() {
    let mut d = Diff::std();
    d.ok("create + unlink new", |m| {
        fs::write(m.join("a/new"), b"x")?;
        fs::remove_file(m.join("a/new"))
    });
    d.holds_side("no trace of a/new", |s| {
        let u = s.dirs.upper();
        if u.join("a/new").exists()
            || fs::symlink_metadata(u.join("a/new")).is_ok()
            || u.join("a/.wh.new").exists()
        {
            Err("a/new left something in upper".into())
        } else {
            Ok(())
        }
    });
    d.finish();
}

#[test]
fn scenario_rmdir_lower_dir_leaves_whiteout() {
    let mut d = Diff::std();
    d.ok("rm -r c", |m| fs::remove_dir_all(m.join("c")));
    d.ok("rm -r a/sub", |m| fs::remove_dir_all(m.join("a/sub")));
    d.fails("stat c", "ENOENT", |m| fs::metadata(m.join("c")).map(drop));
    d.remount();
    d.fails("stat a/sub after remount", "ENOENT", |m| {
        fs::metadata(m.join("a/sub")).map(drop)
    });
    d.finish();
}

#[test]
fn scenario_rmdir_not_empty_in_merged_view() {
    let mut d = Diff::std();
    d.fails("rmdir a (lower entries)", "ENOTEMPTY", |m| {
        fs::remove_dir(m.join("a"))
    });
    d.ok("create upper-only dir with a file", |m| {
        fs::create_dir(m.join("e"))?;
        fs::write(m.join("e/f"), b"")
    });
    d.fails("rmdir e", "ENOTEMPTY", |m| fs::remove_dir(m.join("e")));
    d.fails("rmdir a file", "ENOTDIR", |m| {
        fs::remove_dir(m.join("top.txt"))
    });
    d.fails("rmdir missing", "ENOENT", |m| {
        fs::remove_dir(m.join("nope"))
    });
    d.finish();
}

#[test]
fn scenario_rmdir_dir_whose_lower_entries_are_whited_out() {
    let mut d = Diff::std();
    d.ok("rm b/x b/y b/z, then rmdir b", |m| {
        for f in ["b/x", "b/y", "b/z"] {
            fs::remove_file(m.join(f))?;
        }
        fs::remove_dir(m.join("b"))
    });
    d.fails("stat b", "ENOENT", |m| fs::metadata(m.join("b")).map(drop));
    d.finish();
}

#[test]
fn scenario_rename_lower_file() {
    let mut d = Diff::std();
    d.ok("mv a/f1 a/renamed", |m| {
        fs::rename(m.join("a/f1"), m.join("a/renamed"))
    });
    d.ok("mv mid.txt c/cc/mid", |m| {
        fs::rename(m.join("mid.txt"), m.join("c/cc/mid"))
    });
    d.ok("read", |m| {
        Ok((
            fs::read(m.join("a/renamed"))?,
            fs::read(m.join("c/cc/mid"))?,
        ))
    });
    d.fails("old name gone", "ENOENT", |m| fs::read(m.join("a/f1")));
    d.remount();
    d.ok("read after remount", |m| fs::read(m.join("c/cc/mid")));
    d.finish();
}

#[test]
fn scenario_rename_file_over_existing_lower_file() {
    let mut d = Diff::std();
    d.ok("mv t.txt top.txt", |m| {
        fs::rename(m.join("t.txt"), m.join("top.txt"))
    });
    d.ok("mv a/f3 b/x", |m| fs::rename(m.join("a/f3"), m.join("b/x")));
    d.ok("read", |m| {
        Ok((fs::read(m.join("top.txt"))?, fs::read(m.join("b/x"))?))
    });
    d.fails("mv file over dir", "EISDIR", |m| {
        fs::rename(m.join("mid.txt"), m.join("a"))
    });
    d.fails("mv dir over file", "ENOTDIR", |m| {
        fs::rename(m.join("c"), m.join("mid.txt"))
    });
    d.finish();
}

#[test]
fn scenario_rename_noreplace_existing_eexist() {
    let mut d = Diff::std();
    d.fails("RENAME_NOREPLACE onto lower file", "EEXIST", |m| {
        sys::renameat2(&m.join("t.txt"), &m.join("mid.txt"), libc::RENAME_NOREPLACE)
    });
    d.ok("RENAME_NOREPLACE onto whited-out name", |m| {
        sys::renameat2(&m.join("t.txt"), &m.join("gone"), libc::RENAME_NOREPLACE)
    });
    d.ok("RENAME_NOREPLACE to new name", |m| {
        sys::renameat2(&m.join("mid.txt"), &m.join("a/mid"), libc::RENAME_NOREPLACE)
    });
    d.ok("read gone", |m| fs::read(m.join("gone")));
    d.finish();
}

#[test]
fn scenario_rename_exchange_files() {
    let mut d = Diff::std();
    d.ok("RENAME_EXCHANGE top.txt <-> mid.txt (both lower)", |m| {
        sys::renameat2(
            &m.join("top.txt"),
            &m.join("mid.txt"),
            libc::RENAME_EXCHANGE,
        )
    });
    d.ok("read both", |m| {
        Ok((fs::read(m.join("top.txt"))?, fs::read(m.join("mid.txt"))?))
    });
    d.ok("RENAME_EXCHANGE upper file <-> lower file", |m| {
        fs::write(m.join("new"), b"new")?;
        sys::renameat2(&m.join("new"), &m.join("a/f3"), libc::RENAME_EXCHANGE)
    });
    d.fails("RENAME_EXCHANGE with missing", "ENOENT", |m| {
        sys::renameat2(
            &m.join("top.txt"),
            &m.join("missing"),
            libc::RENAME_EXCHANGE,
        )
    });
    d.remount();
    d.finish();
}

#[test]
fn scenario_rename_exchange_dirs() {
    let mut d = Diff::std();
    d.ok("mkdir e + file", |m| {
        fs::create_dir(m.join("e"))?;
        fs::write(m.join("e/ef"), b"e")
    });
    d.op("RENAME_EXCHANGE c <-> e (lower dir with upper dir)", |m| {
        sys::renameat2(&m.join("c"), &m.join("e"), libc::RENAME_EXCHANGE)
    })
    .ok();
    d.op("RENAME_EXCHANGE file <-> dir", |m| {
        sys::renameat2(&m.join("t.txt"), &m.join("e"), libc::RENAME_EXCHANGE)
    })
    .ok();
    d.remount();
    d.finish();
}

#[test]
fn scenario_rename_upper_dir() {
    let mut d = Diff::std();
    d.ok("mkdir -p n/m, file, mv n n2", |m| {
        fs::create_dir_all(m.join("n/m"))?;
        fs::write(m.join("n/m/f"), b"f")?;
        fs::rename(m.join("n"), m.join("a/n2"))
    });
    d.ok("ls a/n2/m", |m| ls(&m.join("a/n2/m")));
    d.remount();
    d.finish();
}

#[test]
fn scenario_rename_lower_dir_redirect_survives_remount() {
    let mut d = Diff::std();
    d.ok("mv a a2", |m| fs::rename(m.join("a"), m.join("a2")));
    d.ok("ls a2 and a2/sub", |m| {
        Ok((ls(&m.join("a2"))?, ls(&m.join("a2/sub"))?))
    });
    d.fails("old name gone", "ENOENT", |m| {
        fs::metadata(m.join("a")).map(drop)
    });
    d.ok("mv c/cc b/cc-moved (into another lower dir)", |m| {
        fs::rename(m.join("c/cc"), m.join("b/cc-moved"))
    });
    d.ok("mkdir a (new, empty)", |m| fs::create_dir(m.join("a")));
    d.ok("ls a", |m| ls(&m.join("a")));
    d.remount();
    d.ok("after remount", |m| {
        Ok((
            ls(&m.join("a2"))?,
            ls(&m.join("b/cc-moved"))?,
            ls(&m.join("a"))?,
            fs::read(m.join("a2/f1"))?,
        ))
    });
    d.finish();
}

#[test]
fn scenario_rename_dir_over_empty_and_nonempty_dir() {
    let mut d = Diff::std();
    d.ok("mkdir empty1 empty2", |m| {
        fs::create_dir(m.join("empty1"))?;
        fs::create_dir(m.join("empty2"))
    });
    d.ok("mv empty1 over empty2", |m| {
        fs::rename(m.join("empty1"), m.join("empty2"))
    });
    d.fails("mv empty2 over lower non-empty b", "ENOTEMPTY", |m| {
        fs::rename(m.join("empty2"), m.join("b"))
    });
    d.ok("empty b in merged view, then mv empty2 over b", |m| {
        for f in ["b/x", "b/y", "b/z"] {
            fs::remove_file(m.join(f))?;
        }
        fs::rename(m.join("empty2"), m.join("b"))
    });
    d.ok("ls b", |m| ls(&m.join("b")));
    d.remount();
    d.finish();
}

#[test]
fn scenario_dir_recreated_after_delete_is_opaque() {
    let mut d = Diff::std();
    d.ok("rm -r a; mkdir a; touch a/only", |m| {
        fs::remove_dir_all(m.join("a"))?;
        fs::create_dir(m.join("a"))?;
        fs::write(m.join("a/only"), b"")
    });
    d.ok("ls a", |m| ls(&m.join("a")));
    d.remount();
    let v = d.ok("ls a after remount", |m| ls(&m.join("a")));
    assert_eq!(v, ["only"]);
    d.finish();
}

#[test]
fn scenario_file_recreated_after_unlink() {
    let mut d = Diff::std();
    d.ok("rm top.txt; recreate", |m| {
        fs::remove_file(m.join("top.txt"))?;
        fs::write(m.join("top.txt"), b"again\n")
    });
    d.ok("rm a/f3; mkdir a/f3 (dir over whited-out file)", |m| {
        fs::remove_file(m.join("a/f3"))?;
        fs::create_dir(m.join("a/f3"))
    });
    d.ok("rm -r a/sub; write a/sub as file", |m| {
        fs::remove_dir_all(m.join("a/sub"))?;
        fs::write(m.join("a/sub"), b"now a file")
    });
    d.remount();
    d.finish();
}

#[test]
fn scenario_write_into_whited_out_name_via_create() {
    let mut d = Diff::std();
    d.ok("create gone", |m| fs::write(m.join("gone"), b"new gone"));
    d.ok("mkdir gonedir/x", |m| {
        fs::create_dir_all(m.join("gonedir/x"))
    });
    d.ok("ls gonedir", |m| ls(&m.join("gonedir")));
    d.remount();
    d.finish();
}

#[test]
fn scenario_exchanged_lower_dir_renamed_over_opaque_lower_dir() {
    // reduced from randomized seed 141
    let mut d = Diff::new(2, &|l| {
        l[1].file("d1/e1/f1", b"f1\n")
            .dir("d1/s")
            .file("d1/s/inside", b"i\n");
        l[0].opaque("e1");
    });
    d.ok("symlink d1/e0", |m| symlink("f1", m.join("d1/e0")));
    d.ok("RENAME_EXCHANGE d1/e0 <-> d1/e1", |m| {
        sys::renameat2(&m.join("d1/e0"), &m.join("d1/e1"), libc::RENAME_EXCHANGE)
    });
    d.remount();
    d.ok("rm -r d1/s; mkdir d1/s", |m| {
        fs::remove_dir_all(m.join("d1/s"))?;
        fs::create_dir(m.join("d1/s"))
    });
    d.remount();
    d.ok("mv d1/e0 e1", |m| fs::rename(m.join("d1/e0"), m.join("e1")));
    d.ok("ls e1", |m| ls(&m.join("e1")));
    d.check_tree("after the rename");
    d.remount();
    d.ok("ls e1 after remount", |m| ls(&m.join("e1")));
    d.finish();
}

#[test]
fn scenario_rename_lower_hard_linked_file() {
    // reduced from randomized seeds 224 and 254: lower files with two names
    let mut d = Diff::new(2, &|l| {
        l[0].file("d/a", b"a\n").hardlink("d/b", "d/a");
        l[0].file("d/c", b"c\n").hardlink("e", "d/c");
        l[0].file("x/p", b"p\n").hardlink("x/q", "x/p");
        l[1].dir("d");
    });
    d.ok("stat both names", |m| {
        Ok((
            fs::metadata(m.join("d/a"))?.nlink(),
            fs::metadata(m.join("d/b"))?.nlink(),
        ))
    });
    d.ok("mv d/b b-moved", |m| {
        fs::rename(m.join("d/b"), m.join("b-moved"))
    });
    d.ok("append to e (copy-up of one name)", |m| {
        use std::io::Write;
        fs::OpenOptions::new()
            .append(true)
            .open(m.join("e"))?
            .write_all(b"more\n")
    });
    d.ok("mv d/c d/c2", |m| fs::rename(m.join("d/c"), m.join("d/c2")));
    d.ok("RENAME_EXCHANGE x/p <-> d/a", |m| {
        sys::renameat2(&m.join("x/p"), &m.join("d/a"), libc::RENAME_EXCHANGE)
    });
    d.ok("contents and nlinks", |m| {
        let s = |p: &str| -> io::Result<(String, u64)> {
            Ok((
                String::from_utf8_lossy(&fs::read(m.join(p))?).into_owned(),
                fs::metadata(m.join(p))?.nlink(),
            ))
        };
        Ok((
            s("b-moved")?,
            s("e")?,
            s("d/c2")?,
            s("d/a")?,
            s("x/p")?,
            s("x/q")?,
        ))
    });
    d.remount();
    d.finish();
}

#[test]
fn scenario_redirect_stops_at_a_non_dir_in_a_middle_layer() {
    // reduced from randomized seeds 265 and 141: the renamed dir's redirect path crosses a
    // layer where an ancestor is a file; the layers below must not show through
    let mut d = Diff::new(3, &|l| {
        l[2].file("d1/e1/leak", b"below a file d1, never visible\n");
        l[1].file("d1", b"a file hiding the d1 dir below\n");
        l[0].file("d1/e1/y", b"y\n");
    });
    let before = d.ok("ls d1/e1", |m| ls(&m.join("d1/e1")));
    assert_eq!(before, ["y"]);
    d.ok("mv d1/e1 moved", |m| {
        fs::rename(m.join("d1/e1"), m.join("moved"))
    });
    d.ok("ls moved", |m| ls(&m.join("moved")));
    d.remount();
    let after = d.ok("ls moved after remount", |m| ls(&m.join("moved")));
    assert_eq!(after, ["y"]);
    d.finish();
}

#[test]
fn scenario_lower_dir_renamed_over_dir_that_hid_a_deeper_one() {
    // reduced from randomized seeds 265 and 141: a redirected dir must not pick up the
    // entries of a lower dir at its new path that a whiteout hid
    let mut d = Diff::new(3, &|l| {
        l[2].file("d0/e0/deep", b"hidden by l1's whiteout\n");
        l[1].whiteout("d0/e0");
        l[0].file("d0/e0/x", b"x\n").file("d1/e1/y", b"y\n");
    });
    d.ok("rm d0/e0/x", |m| fs::remove_file(m.join("d0/e0/x")));
    d.ok("mv d1/e1 d0/e0 (over the now empty dir)", |m| {
        fs::rename(m.join("d1/e1"), m.join("d0/e0"))
    });
    let before = d.ok("ls d0/e0", |m| ls(&m.join("d0/e0")));
    assert_eq!(before, ["y"]);
    d.remount();
    let after = d.ok("ls d0/e0 after remount", |m| ls(&m.join("d0/e0")));
    assert_eq!(after, ["y"]);
    d.finish();
}

/// Each name of a lower hard link is an inode of its own (as in kernel overlayfs,
/// index=off): rename(name1, name2) removes name1 and leaves name2 a copy with nlink 1.
#[test]
fn scenario_rename_between_names_of_one_lower_hard_link() {
    // reduced from randomized seeds 261 and 285
    let mut d = Diff::new(1, &|l| {
        l[0].file("d/f0", b"linked\n").hardlink("d/e/d1", "d/f0");
    });
    d.ok("mv d/f0 d/e/d1 (two names of one lower file)", |m| {
        fs::rename(m.join("d/f0"), m.join("d/e/d1"))
    });
    d.ok("ls d, nlink of d/e/d1", |m| {
        Ok((ls(&m.join("d"))?, fs::metadata(m.join("d/e/d1"))?.nlink()))
    });
    d.finish();
}

#[test]
fn scenario_rmdir_moved_lower_dir_in_new_dir_leaves_no_whiteout() {
    // reduced from randomized seed 695629535: a lower directory moved into a directory
    // that exists only in the upper layer, then removed. Nothing lower shows that name
    // there, so no whiteout (the kernel would list a stray one in a pure upper dir).
    let mut d = Diff::new(1, &|l| {
        l[0].dir("m/dir").file("m/keep", b"k\n");
    });
    d.ok("mkdir n", |m| fs::create_dir(m.join("n")));
    d.ok("mv m/dir n/dir", |m| {
        fs::rename(m.join("m/dir"), m.join("n/dir"))
    });
    d.ok("rmdir n/dir", |m| fs::remove_dir(m.join("n/dir")));
    d.ok("ls n, m", |m| {
        let ls = |p: &str| -> std::io::Result<Vec<String>> {
            let mut v: Vec<String> = fs::read_dir(m.join(p))?
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<std::io::Result<_>>()?;
            v.sort();
            Ok(v)
        };
        Ok((ls("n")?, ls("m")?))
    });
    d.finish();
}

#[test]
fn scenario_rename_lower_dir_onto_nonempty_upper_dir_fails_after_copy_up() {
    // reduced from randomized seeds 61341636 and 709113120: the kernel checks a target
    // that exists only in the upper layer in the real rename, after it has copied the
    // source up and written its redirect; both stay when the rename fails.
    let mut d = Diff::new(2, &|l| {
        l[1].file("d/x", b"x\n").file("e/y", b"y\n");
        l[0].file("d/z", b"z\n");
    });
    d.ok("mkdir t, t/f", |m| {
        fs::create_dir(m.join("t"))?;
        fs::write(m.join("t/f"), b"f\n")
    });
    let r = d.op("rename d t", |m| fs::rename(m.join("d"), m.join("t")));
    assert_eq!(r, Err("ENOTEMPTY".to_string()));
    let r = d.op("rename e t", |m| fs::rename(m.join("e"), m.join("t")));
    assert_eq!(r, Err("ENOTEMPTY".to_string()));
    d.ok("nlink of d and e", |m| {
        Ok((
            fs::metadata(m.join("d"))?.nlink(),
            fs::metadata(m.join("e"))?.nlink(),
        ))
    });
    d.finish();
}
