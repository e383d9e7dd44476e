//! Inode numbers, st_dev, statfs, fsync, xattr semantics, permissions, read-only mounts.

use super::harness::{Diff, std_layers};
use crate::common::mount::Opts;
use crate::common::sys;
use crate::common::{self};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;

fn all_inos(m: &std::path::Path) -> Result<HashMap<String, (u64, u64)>, String> {
    let mut h = HashMap::new();
    for r in crate::common::snap::paths(m) {
        let md = fs::symlink_metadata(m.join(&r)).map_err(|e| format!("{r}: {e}"))?;
        h.insert(r, (md.ino(), md.dev()));
    }
    Ok(h)
}

#[test]
fn scenario_inode_numbers_stable_and_unique() {
    let d = Diff::std();
    d.holds(
        "inodes unique (hard links aside) and stable across lookups",
        |m| {
            let a = all_inos(m)?;
            // drop caches so the second walk looks everything up again
            fs::write("/proc/sys/vm/drop_caches", b"2").ok();
            let b = all_inos(m)?;
            if a != b {
                return Err("inode numbers changed between two walks".into());
            }
            let mut seen: HashMap<u64, &String> = HashMap::new();
            for (p, (ino, _)) in &a {
                if let Some(q) = seen.insert(*ino, p) {
                    let pair = [p.as_str(), q.as_str()];
                    if !(pair.contains(&"hl1") && pair.contains(&"hl2")) {
                        return Err(format!("{p} and {q} share inode {ino}"));
                    }
                }
            }
            Ok(())
        },
    );
    d.finish();
}

#[test]
fn scenario_inode_unchanged_by_copy_up() {
    let d = Diff::std();
    d.holds("st_ino same before and after copy-up", |m| {
        let e = |x: std::io::Error| x.to_string();
        let before: Vec<u64> = ["a/f1", "a", "top.txt", "sym", "a/sub"]
            .iter()
            .map(|p| fs::symlink_metadata(m.join(p)).map(|x| x.ino()))
            .collect::<Result<_, _>>()
            .map_err(e)?;
        fs::OpenOptions::new()
            .append(true)
            .open(m.join("a/f1"))
            .map_err(e)?
            .write_all(b"x")
            .map_err(e)?;
        sys::chmod(&m.join("top.txt"), 0o600).map_err(e)?;
        sys::lchown(&m.join("sym"), 1, 1).map_err(e)?;
        fs::write(m.join("a/sub/new"), b"").map_err(e)?;
        let after: Vec<u64> = ["a/f1", "a", "top.txt", "sym", "a/sub"]
            .iter()
            .map(|p| fs::symlink_metadata(m.join(p)).map(|x| x.ino()))
            .collect::<Result<_, _>>()
            .map_err(e)?;
        if before != after {
            Err(format!("before {before:?} after {after:?}"))
        } else {
            Ok(())
        }
    });
    d.finish();
}

#[test]
fn scenario_hard_links_in_lower_share_inode() {
    let mut d = Diff::std();
    d.holds("hl1 and hl2: one inode, nlink 2", |m| {
        let a = fs::metadata(m.join("hl1")).map_err(|e| e.to_string())?;
        let b = fs::metadata(m.join("hl2")).map_err(|e| e.to_string())?;
        if a.ino() == b.ino() && a.nlink() == 2 && b.nlink() == 2 {
            Ok(())
        } else {
            Err(format!(
                "ino {} / {}, nlink {} / {}",
                a.ino(),
                b.ino(),
                a.nlink(),
                b.nlink()
            ))
        }
    });
    d.ok("nlink", |m| Ok(fs::metadata(m.join("hl1"))?.nlink()));
    d.finish();
}

#[test]
fn scenario_st_dev_is_mount_device() {
    let d = Diff::std();
    d.holds("every entry reports the mount's st_dev", |m| {
        let dev = fs::metadata(m).map_err(|e| e.to_string())?.dev();
        for (p, (_, dv)) in all_inos(m)? {
            if dv != dev {
                return Err(format!("{p}: st_dev {dv:#x}, mount {dev:#x}"));
            }
        }
        Ok(())
    });
    d.holds_side("mount st_dev differs from the upper fs", |s| {
        let a = fs::metadata(s.mnt()).map_err(|e| e.to_string())?.dev();
        let b = fs::metadata(s.dirs.upper())
            .map_err(|e| e.to_string())?
            .dev();
        if a != b {
            Ok(())
        } else {
            Err("same st_dev as the upper dir".into())
        }
    });
    d.finish();
}

#[test]
fn scenario_statfs_reports_upper() {
    let d = Diff::std();
    d.holds_side(
        "statfs total blocks/bsize match the upper filesystem",
        |s| {
            let a = sys::statfs(s.mnt()).map_err(|e| e.to_string())?;
            let b = sys::statfs(s.dirs.upper()).map_err(|e| e.to_string())?;
            let (ta, tb) = (
                a.f_blocks as u128 * a.f_bsize as u128,
                b.f_blocks as u128 * b.f_bsize as u128,
            );
            if ta == tb && a.f_files == b.f_files {
                Ok(())
            } else {
                Err(format!(
                    "mount {ta} bytes/{} files, upper {tb}/{}",
                    a.f_files, b.f_files
                ))
            }
        },
    );
    d.finish();
}

#[test]
fn scenario_fsync_and_fdatasync() {
    let mut d = Diff::std();
    d.ok("write + fsync + fdatasync (lower file and new file)", |m| {
        let mut f = fs::OpenOptions::new().append(true).open(m.join("a/f1"))?;
        f.write_all(b"synced\n")?;
        f.sync_all()?;
        f.sync_data()?;
        let mut g = fs::File::create(m.join("new"))?;
        g.write_all(b"new\n")?;
        g.sync_all()
    });
    d.ok("fsync of a dir fd", |m| {
        fs::File::open(m.join("a"))?.sync_all()
    });
    d.ok("fsync of a read-only fd of a lower file", |m| {
        fs::File::open(m.join("mid.txt"))?.sync_all()
    });
    d.holds_side("synced data is in the upper file", |s| {
        match fs::read(s.dirs.upper().join("a/f1")) {
            Ok(v) if v.ends_with(b"synced\n") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    d.finish();
}

#[test]
fn scenario_xattr_enodata_on_missing() {
    let mut d = Diff::std();
    d.fails("getxattr missing on lower file", "ENODATA", |m| {
        sys::getxattr(&m.join("a/f1"), "user.none")
    });
    d.fails("getxattr missing on dir", "ENODATA", |m| {
        sys::getxattr(&m.join("a"), "user.none")
    });
    d.fails("removexattr missing", "ENODATA", |m| {
        sys::removexattr(&m.join("mid.txt"), "user.none")
    });
    d.ok("getxattr present", |m| {
        sys::getxattr(&m.join("top.txt"), "user.color")
    });
    d.finish();
}

#[test]
fn scenario_xattr_erange_small_buffer() {
    let mut d = Diff::std();
    d.fails("getxattr into 2-byte buffer", "ERANGE", |m| {
        sys::getxattr_sized(&m.join("top.txt"), "user.color", 2)
    });
    d.ok("getxattr size query", |m| {
        sys::getxattr_sized(&m.join("top.txt"), "user.color", 0)
    });
    d.fails("listxattr into 3-byte buffer", "ERANGE", |m| {
        sys::listxattr_sized(&m.join("top.txt"), 3)
    });
    d.ok("listxattr size query", |m| {
        sys::listxattr_sized(&m.join("top.txt"), 0)
    });
    d.finish();
}

#[test]
fn scenario_xattr_create_replace_flags() {
    let mut d = Diff::std();
    d.fails("XATTR_CREATE existing", "EEXIST", |m| {
        sys::setxattr(&m.join("top.txt"), "user.color", b"red", libc::XATTR_CREATE)
    });
    d.fails("XATTR_REPLACE missing", "ENODATA", |m| {
        sys::setxattr(
            &m.join("top.txt"),
            "user.shape",
            b"round",
            libc::XATTR_REPLACE,
        )
    });
    d.ok("XATTR_REPLACE existing", |m| {
        sys::setxattr(
            &m.join("top.txt"),
            "user.color",
            b"green",
            libc::XATTR_REPLACE,
        )
    });
    d.ok("XATTR_CREATE new", |m| {
        sys::setxattr(&m.join("top.txt"), "user.shape", b"", libc::XATTR_CREATE)
    });
    d.ok("values", |m| {
        Ok((
            sys::getxattr(&m.join("top.txt"), "user.color")?,
            sys::getxattr(&m.join("top.txt"), "user.shape")?,
        ))
    });
    d.fails("user xattr on a symlink", "EPERM", |m| {
        sys::setxattr(&m.join("sym"), "user.x", b"1", 0)
    });
    d.finish();
}

#[test]
fn scenario_listxattr_merged() {
    let mut d = Diff::std();
    d.ok("set trusted.mine + user.x on a/f1", |m| {
        sys::setxattr(&m.join("a/f1"), "trusted.mine", b"t", 0)?;
        sys::setxattr(&m.join("a/f1"), "user.x", b"x", 0)
    });
    let _ = d.op("set trusted.overlay.opaque through the mount", |m| {
        sys::setxattr(&m.join("a"), "trusted.overlay.opaque", b"y", 0)
    });
    d.ok("ls a", |m| fs::read_dir(m.join("a")).map(|r| r.count()));
    d.ok("listxattr", |m| {
        Ok((
            sys::listxattr(&m.join("a/f1"))?,
            sys::listxattr(&m.join("top.txt"))?,
        ))
    });
    d.finish();
}

#[test]
fn scenario_permission_denied_for_other_user() {
    common::test_user();
    let mut d = Diff::with_opts(
        3,
        &std_layers,
        Opts {
            layerfs_extra: vec!["allow_other".into()],
            ..Opts::redirect()
        },
    );
    let script = "cat private/secret; echo rc=$?; cat top.txt >/dev/null; echo rc=$?; \
                  echo x >> top.txt; echo rc=$?; echo y > ro.txt; echo rc=$?; touch newfile; echo rc=$?; \
                  ls private; echo rc=$?; rm mid.txt; echo rc=$?; mkdir c/x; echo rc=$?";
    let run = |m: &std::path::Path| {
        let (code, out, _) = common::sh_as_user(&format!("{script} 2>/dev/null"), m);
        Ok::<_, std::io::Error>((code, out))
    };
    let (code, out) = d.ok("as layerfs-test: reads/writes that permissions forbid", run);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .all(|l| l == "rc=1" || l == "rc=2" || l == "rc=0"),
        "{out}"
    );
    assert!(out.starts_with("rc=1\nrc=0\nrc=2\nrc=2\nrc=1\n"), "{out}");
    d.ok("chmod o+w top.txt as root", |m| {
        sys::chmod(&m.join("top.txt"), 0o666)
    });
    let (_, out) = d.ok("as layerfs-test: now writable", |m| {
        let (c, o, _) = common::sh_as_user("echo z >> top.txt; echo rc=$?", m);
        Ok::<_, std::io::Error>((c, o))
    });
    assert_eq!(out, "rc=0\n");
    d.finish();
}

#[test]
fn scenario_read_only_mount_erofs() {
    let mut d = Diff::with_opts(
        3,
        &std_layers,
        Opts {
            ro: true,
            ..Opts::redirect()
        },
    );
    d.fails("write", "EROFS", |m| {
        fs::OpenOptions::new()
            .write(true)
            .open(m.join("a/f1"))
            .map(drop)
    });
    d.fails("create", "EROFS", |m| fs::write(m.join("new"), b""));
    d.fails("mkdir", "EROFS", |m| fs::create_dir(m.join("nd")));
    d.fails("unlink", "EROFS", |m| fs::remove_file(m.join("mid.txt")));
    d.fails("chmod", "EROFS", |m| sys::chmod(&m.join("mid.txt"), 0o600));
    d.fails("setxattr", "EROFS", |m| {
        sys::setxattr(&m.join("mid.txt"), "user.a", b"", 0)
    });
    d.ok("read", |m| fs::read(m.join("a/f1")));
    d.finish();
}

#[test]
fn scenario_no_upper_is_read_only() {
    let mut d = Diff::read_only(3, &std_layers);
    d.fails("write", "EROFS", |m| {
        fs::OpenOptions::new()
            .append(true)
            .open(m.join("top.txt"))
            .map(drop)
    });
    d.fails("rename", "EROFS", |m| {
        fs::rename(m.join("top.txt"), m.join("x"))
    });
    d.ok("ls + read", |m| {
        Ok((fs::read_dir(m)?.count(), fs::read(m.join("b/x"))?))
    });
    d.holds("statfs of a lowers-only mount is the lower fs", |m| {
        let c = sys::cpath(m);
        let mut v: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut v) } < 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        if v.f_flag & libc::ST_RDONLY == 0 {
            return Err("statfs does not say read-only".into());
        }
        Ok(())
    });
    d.finish();
}

#[test]
fn scenario_dir_nlink_after_moving_a_lower_dir_in() {
    // reduced from randomized seed 239 (with LAYERFS_CHECK_EVERY=1)
    let mut d = Diff::new(2, &|l| {
        // dst and dst/e0 exist in one layer only (not merged until copied up)
        l[0].dir("src/sub").file("src/sub/f", b"f").dir("dst/e0/x");
        l[1].dir("src").file("dst", b"a file below hides nothing");
    });
    let n = |m: &std::path::Path| -> std::io::Result<Vec<u64>> {
        ["dst", "dst/e0", "src", "."]
            .iter()
            .map(|p| fs::metadata(m.join(p)).map(|x| x.nlink()))
            .collect()
    };
    d.ok("nlink of dirs before", n);
    d.ok("mv src/sub dst/e0/moved", |m| {
        fs::rename(m.join("src/sub"), m.join("dst/e0/moved"))
    });
    d.ok("nlink of dirs after", n);
    d.ok("mkdir dst/e0/new", |m| fs::create_dir(m.join("dst/e0/new")));
    d.ok("nlink of dirs after mkdir", n);
    d.finish();
}
