//! Copy-up: every write-like operation on a lower file copies it up first, keeping data
//! (and holes), mode, owner, times and xattrs; parents come up first with their metadata.

use super::harness::{Diff, std_layers};
use crate::common::mount::Opts;
use crate::common::sys;
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

fn in_upper(s: &super::harness::Side, rel: &str) -> bool {
    fs::symlink_metadata(s.dirs.upper().join(rel)).is_ok()
}

fn times(p: &Path) -> std::io::Result<(i64, i64, i64, i64)> {
    let m = fs::symlink_metadata(p)?;
    Ok((m.atime(), m.atime_nsec(), m.mtime(), m.mtime_nsec()))
}

#[test]
fn scenario_copy_up_on_open_for_write() {
    let mut d = Diff::std();
    d.ok("open a/f1 O_WRONLY, write at 0", |m| {
        let mut f = OpenOptions::new().write(true).open(m.join("a/f1"))?;
        f.write_all(b"M")
    });
    assert_eq!(
        d.ok("read a/f1", |m| fs::read(m.join("a/f1"))),
        b"Middle a/f1\n"
    );
    d.holds_side("a/f1 copied up, a/f3 not", |s| {
        match (in_upper(s, "a/f1"), in_upper(s, "a/f3")) {
            (true, false) => Ok(()),
            x => Err(format!("in upper (a/f1, a/f3) = {x:?}")),
        }
    });
    d.finish();
}

#[test]
fn scenario_open_for_read_does_not_copy_up() {
    let mut d = Diff::std();
    d.ok("read a/f1, mid.txt, stat top.txt", |m| {
        fs::read(m.join("a/f1"))?;
        fs::read(m.join("mid.txt"))?;
        fs::metadata(m.join("top.txt")).map(|_| ())
    });
    d.holds_side("nothing copied up", |s| {
        let n = fs::read_dir(s.dirs.upper())
            .map_err(|e| e.to_string())?
            .count();
        if n == 0 {
            Ok(())
        } else {
            Err(format!("{n} entries in upper"))
        }
    });
    d.finish();
}

#[test]
fn scenario_copy_up_on_truncate() {
    let mut d = Diff::std();
    d.ok("truncate(2) a/f1 to 3", |m| {
        let c = sys::cpath(&m.join("a/f1"));
        if unsafe { libc::truncate(c.as_ptr(), 3) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    });
    d.ok("O_TRUNC open of mid.txt", |m| {
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(m.join("mid.txt"))
            .map(drop)
    });
    d.ok("ftruncate top.txt to grow", |m| {
        OpenOptions::new()
            .write(true)
            .open(m.join("top.txt"))?
            .set_len(100_000)
    });
    d.ok("sizes", |m| {
        Ok([
            fs::metadata(m.join("a/f1"))?.len(),
            fs::metadata(m.join("mid.txt"))?.len(),
            fs::metadata(m.join("top.txt"))?.len(),
        ])
    });
    d.finish();
}

#[test]
fn scenario_copy_up_on_chmod() {
    let mut d = Diff::std();
    d.ok("chmod a/f1 600", |m| sys::chmod(&m.join("a/f1"), 0o600));
    d.ok("chmod u+s a/exec.sh", |m| {
        sys::chmod(&m.join("a/exec.sh"), 0o4755)
    });
    d.ok("modes", |m| {
        Ok((
            fs::metadata(m.join("a/f1"))?.mode(),
            fs::metadata(m.join("a/exec.sh"))?.mode(),
        ))
    });
    d.finish();
}

#[test]
fn scenario_copy_up_on_chown() {
    let mut d = Diff::std();
    d.ok("chown owned 0:0", |m| sys::lchown(&m.join("owned"), 0, 0));
    d.ok("chown a/f1 1000:1000", |m| {
        sys::lchown(&m.join("a/f1"), 1000, 1000)
    });
    d.ok("chown -h sym 7:7", |m| sys::lchown(&m.join("sym"), 7, 7));
    d.ok("owners", |m| {
        let o = |p: &str| fs::symlink_metadata(m.join(p)).map(|x| (x.uid(), x.gid()));
        Ok((o("owned")?, o("a/f1")?, o("sym")?, o("top.txt")?))
    });
    d.finish();
}

#[test]
fn scenario_copy_up_on_utimens() {
    let mut d = Diff::std();
    d.ok("utimens a/f1", |m| {
        sys::utimens(&m.join("a/f1"), (1_000_000, 5), (2_000_000, 6))
    });
    d.ok("utimens -h sym", |m| {
        sys::utimens(&m.join("sym"), (3_000_000, 0), (4_000_000, 0))
    });
    d.ok("utimens dir b", |m| {
        sys::utimens(&m.join("b"), (5_000_000, 0), (6_000_000, 7))
    });
    d.ok("times", |m| {
        Ok((
            times(&m.join("a/f1"))?,
            times(&m.join("sym"))?,
            times(&m.join("b"))?.2,
        ))
    });
    d.finish();
}

#[test]
fn scenario_copy_up_on_setxattr() {
    let mut d = Diff::std();
    d.ok("setxattr a/f1 user.new", |m| {
        sys::setxattr(&m.join("a/f1"), "user.new", b"v", 0)
    });
    d.ok("setxattr dir a user.d", |m| {
        sys::setxattr(&m.join("a"), "user.d", b"dir", 0)
    });
    d.ok("getxattr back", |m| {
        Ok((
            sys::getxattr(&m.join("a/f1"), "user.new")?,
            sys::listxattr(&m.join("a"))?,
        ))
    });
    d.finish();
}

#[test]
fn scenario_copy_up_on_removexattr() {
    let mut d = Diff::std();
    d.ok("removexattr top.txt user.color", |m| {
        sys::removexattr(&m.join("top.txt"), "user.color")
    });
    d.fails("removexattr again", "ENODATA", |m| {
        sys::removexattr(&m.join("top.txt"), "user.color")
    });
    d.ok("listxattr top.txt", |m| sys::listxattr(&m.join("top.txt")));
    d.finish();
}

#[test]
fn scenario_copy_up_on_link() {
    let mut d = Diff::std();
    d.ok("link a/f1 a/f1.link", |m| {
        fs::hard_link(m.join("a/f1"), m.join("a/f1.link"))
    });
    d.ok("nlink + same content", |m| {
        let a = fs::metadata(m.join("a/f1"))?;
        let b = fs::metadata(m.join("a/f1.link"))?;
        Ok((
            a.nlink(),
            b.nlink(),
            a.ino() == b.ino(),
            fs::read(m.join("a/f1.link"))?,
        ))
    });
    d.ok("append via link shows in both", |m| {
        OpenOptions::new()
            .append(true)
            .open(m.join("a/f1.link"))?
            .write_all(b"more\n")?;
        fs::read(m.join("a/f1"))
    });
    d.finish();
}

#[test]
fn scenario_copy_up_keeps_sparseness() {
    let mut d = Diff::new(1, &|l| {
        l[0].sparse(
            "sparse",
            64 << 20,
            &[
                (0, b"start"),
                (40 << 20, b"middle"),
                ((64 << 20) - 3, b"end"),
            ],
        );
    });
    d.ok("append to sparse (copy-up)", |m| {
        OpenOptions::new()
            .append(true)
            .open(m.join("sparse"))?
            .write_all(b"!")
    });
    d.holds("copied-up file stays sparse", |m| {
        let md = fs::metadata(m.join("sparse")).map_err(|e| e.to_string())?;
        if md.len() != (64 << 20) + 1 {
            return Err(format!("size {}", md.len()));
        }
        if md.blocks() * 512 > 4 << 20 {
            return Err(format!(
                "{} bytes allocated for a 64 MiB file with 3 small extents",
                md.blocks() * 512
            ));
        }
        Ok(())
    });
    d.ok("read the middle", |m| {
        let mut f = fs::File::open(m.join("sparse"))?;
        f.seek(SeekFrom::Start(40 << 20))?;
        let mut b = [0u8; 6];
        f.read_exact(&mut b)?;
        Ok(b)
    });
    d.finish();
}

#[test]
fn scenario_copy_up_keeps_mode_owner_times() {
    let mut d = Diff::new(1, &|l| {
        l[0].file_mode("f", b"data\n", 0o4751)
            .owner("f", 1234, 5678)
            .mode("f", 0o4751)
            .times("f", (1_111_111_111, 111), (1_222_222_222, 222));
    });
    let before = d.ok("stat f", |m| {
        fs::metadata(m.join("f")).map(|x| (x.mode(), x.uid(), x.gid(), x.mtime(), x.mtime_nsec()))
    });
    d.ok(
        "setxattr user.trigger (copy-up, changes nothing else)",
        |m| sys::setxattr(&m.join("f"), "user.trigger", b"1", 0),
    );
    let after = d.ok("stat f", |m| {
        fs::metadata(m.join("f")).map(|x| (x.mode(), x.uid(), x.gid(), x.mtime(), x.mtime_nsec()))
    });
    assert_eq!(before, after);
    assert_eq!(after, (0o104751, 1234, 5678, 1_222_222_222, 222));
    d.holds_side("upper copy carries the metadata", |s| {
        let x = fs::metadata(s.dirs.upper().join("f")).map_err(|e| e.to_string())?;
        let got = (x.mode(), x.uid(), x.gid(), x.mtime(), x.mtime_nsec());
        if got == after {
            Ok(())
        } else {
            Err(format!("upper f: {got:?}"))
        }
    });
    d.finish();
}

/// A valid VFS_CAP_REVISION_2 blob: cap_net_bind_service (10) permitted + effective.
fn capability_blob() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(0x0200_0000u32 | 1).to_le_bytes());
    v.extend_from_slice(&(1u32 << 10).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v
}

#[test]
fn scenario_copy_up_keeps_xattrs_and_capability() {
    let mut d = Diff::new(1, &|l| {
        l[0].file_mode("bin", b"#!/bin/true\n", 0o755)
            .xattr("bin", "user.a", b"1")
            .xattr("bin", "user.b", &[0u8, 1, 2, 255])
            .xattr("bin", "trusted.t", b"root only")
            .xattr("bin", "security.capability", &capability_blob());
    });
    d.ok("setxattr user.c (copy-up)", |m| {
        sys::setxattr(&m.join("bin"), "user.c", b"3", 0)
    });
    let caps = d.ok("getxattr security.capability", |m| {
        sys::getxattr(&m.join("bin"), "security.capability")
    });
    assert_eq!(caps, capability_blob());
    d.ok("all xattrs", |m| {
        let names = sys::listxattr(&m.join("bin"))?;
        names
            .iter()
            .map(|n| Ok((n.clone(), sys::getxattr(&m.join("bin"), n)?)))
            .collect::<std::io::Result<Vec<_>>>()
    });
    d.holds_side("capability in the upper copy", |s| {
        match sys::getxattr(&s.dirs.upper().join("bin"), "security.capability") {
            Ok(v) if v == capability_blob() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    d.finish();
}

/// layerfs answers "no security.capability" from memory once it knows (the kernel asks
/// before every write and chown): the answer must change with every way a file gets or
/// loses one: setxattr and removexattr through the mount, chown (the kernel drops it),
/// a new file, a copy-up of a capable file, a file written after its name was reused.
#[test]
fn scenario_capability_answers_follow_every_change() {
    let mut d = Diff::new(1, &|l| {
        l[0].file_mode("capped", b"#!/bin/true\n", 0o755)
            .xattr("capped", "security.capability", &capability_blob())
            .file_mode("plain", b"#!/bin/true\n", 0o755);
    });
    let caps = |m: &Path, p: &str| sys::getxattr(&m.join(p), "security.capability");
    d.ok("lower: capped, plain", |m| {
        Ok((caps(m, "capped").ok(), caps(m, "plain").ok()))
    });
    d.ok("write plain, ask again", |m| {
        OpenOptions::new()
            .append(true)
            .open(m.join("plain"))?
            .write_all(b"x")?;
        Ok(caps(m, "plain").ok())
    });
    d.ok("setcap plain (copied up already)", |m| {
        sys::setxattr(
            &m.join("plain"),
            "security.capability",
            &capability_blob(),
            0,
        )?;
        caps(m, "plain")
    });
    d.ok("chown plain drops it", |m| {
        sys::lchown(&m.join("plain"), 7, 8)?;
        Ok(caps(m, "plain").ok())
    });
    d.ok("new file: none, then set, then removed", |m| {
        fs::write(m.join("new"), b"n")?;
        let before = caps(m, "new").ok();
        sys::setxattr(&m.join("new"), "security.capability", &capability_blob(), 0)?;
        let set = caps(m, "new").ok();
        sys::removexattr(&m.join("new"), "security.capability")?;
        Ok((before, set, caps(m, "new").ok()))
    });
    d.ok("capped copied up by a write keeps it", |m| {
        OpenOptions::new()
            .append(true)
            .open(m.join("capped"))?
            .write_all(b"x")?;
        Ok(caps(m, "capped").ok())
    });
    d.ok("a name reused by a capable file", |m| {
        fs::remove_file(m.join("new"))?;
        fs::rename(m.join("capped"), m.join("new"))?;
        Ok(caps(m, "new").ok())
    });
    d.remount();
    d.ok("remounted: every name", |m| {
        Ok(["capped", "plain", "new"].map(|p| caps(m, p).ok()))
    });
    d.finish();
}

#[test]
fn scenario_copy_up_parents_with_metadata() {
    let mut d = Diff::new(2, &|l| {
        l[1].file("p/q/r/leaf", b"leaf\n")
            .dir_mode("p/q", 0o750)
            .owner("p/q", 1234, 2345)
            .xattr("p/q", "user.dirattr", b"kept")
            .times("p/q/r", (1_300_000_000, 0), (1_300_000_001, 0))
            .times("p/q", (1_400_000_000, 0), (1_400_000_001, 0))
            .times("p", (1_500_000_000, 0), (1_500_000_001, 0));
        l[0].file("other", b"x");
    });
    d.ok("append to p/q/r/leaf", |m| {
        OpenOptions::new()
            .append(true)
            .open(m.join("p/q/r/leaf"))?
            .write_all(b"more\n")
    });
    let got = d.ok("parents' metadata", |m| {
        let s = |p: &str| {
            fs::metadata(m.join(p)).map(|x| (x.mode() & 0o7777, x.uid(), x.gid(), x.mtime()))
        };
        Ok((
            s("p")?,
            s("p/q")?,
            s("p/q/r")?,
            sys::getxattr(&m.join("p/q"), "user.dirattr")?,
        ))
    });
    assert_eq!(got.1, (0o750, 1234, 2345, 1_400_000_001));
    assert_eq!(got.2.3, 1_300_000_001);
    d.holds_side("parents in upper keep times", |s| {
        let x = fs::metadata(s.dirs.upper().join("p/q")).map_err(|e| e.to_string())?;
        if (x.uid(), x.mode() & 0o7777, x.mtime()) == (1234, 0o750, 1_400_000_001) {
            Ok(())
        } else {
            Err(format!(
                "upper p/q: uid {} mode {:o} mtime {}",
                x.uid(),
                x.mode() & 0o7777,
                x.mtime()
            ))
        }
    });
    d.finish();
}

#[test]
fn scenario_concurrent_copy_up_same_file() {
    let mut d = Diff::new(1, &|l| {
        l[0].file("shared", &vec![b'.'; 3 << 20]);
    });
    d.holds("16 threads append to one lower file at once", |m| {
        let p = m.join("shared");
        let hs: Vec<_> = (0..16)
            .map(|i| {
                let p = p.clone();
                std::thread::spawn(move || -> std::io::Result<()> {
                    let mut f = OpenOptions::new().append(true).open(&p)?;
                    f.write_all(format!("thread {i:02}\n").as_bytes())
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap().map_err(|e| e.to_string())?;
        }
        let data = fs::read(&p).map_err(|e| e.to_string())?;
        let (head, tail) = data.split_at(3 << 20);
        if head.iter().any(|b| *b != b'.') {
            return Err("original data damaged".into());
        }
        let mut lines: Vec<&[u8]> = tail
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        lines.sort();
        if lines.len() != 16 {
            return Err(format!("{} appended lines survive, want 16", lines.len()));
        }
        Ok(())
    });
    d.holds_side("one copy in upper, workdir clean", |s| {
        let n = fs::read_dir(s.dirs.upper())
            .map_err(|e| e.to_string())?
            .count();
        if n != 1 {
            return Err(format!("{n} entries in upper"));
        }
        Ok(())
    });
    // the appended lines' order differs between mounts: compare only sizes
    d.ok("size", |m| fs::metadata(m.join("shared")).map(|x| x.len()));
    d.unmount_both();
}

/// Open a/f1 for reading, write it through a second fd, then read on with the first.
fn held_open_ops(m: &std::path::Path) -> std::io::Result<(String, String, String)> {
    let mut r = fs::File::open(m.join("a/f1"))?;
    let mut first = [0u8; 3];
    r.read_exact(&mut first)?;
    let mut w = OpenOptions::new().write(true).open(m.join("a/f1"))?;
    w.write_all(b"CHANGED!!!!!")?;
    w.sync_all()?;
    let mut rest = Vec::new();
    r.read_to_end(&mut rest)?;
    let mut again = Vec::new();
    fs::File::open(m.join("a/f1"))?.read_to_end(&mut again)?;
    let st = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok((st(&first), st(&rest), st(&again)))
}

#[test]
fn scenario_file_held_open_across_copy_up() {
    // Kernel overlayfs switches the open reader to the copy; so does layerfs when its
    // reads go through the daemon (passthrough=off, and every unprivileged mount).
    let opts = Opts {
        layerfs_extra: vec!["passthrough=off".into()],
        ..Opts::redirect()
    };
    let mut d = Diff::with_opts(3, &std_layers, opts);
    let got = d.ok(
        "open a/f1 for reading, write it through another fd, read the first",
        held_open_ops,
    );
    assert_eq!(got.1, "NGED!!!!!");
    assert_eq!(got.2, "CHANGED!!!!!");
    d.finish();
}

#[test]
fn scenario_file_held_open_across_copy_up_passthrough() {
    // With FUSE passthrough (root, the default) the kernel pins an inode to one backing
    // file, so a reader that opened the lower file keeps reading it (the documented
    // difference); the writer and every later open see the copy.
    if crate::common::mount::Impl::under_test() != crate::common::mount::Impl::Layerfs {
        eprintln!("skipped: pins layerfs's passthrough behaviour");
        return;
    }
    let d = Diff::std();
    let kernel = held_open_ops(d.k.mnt()).expect("held-open sequence on kernel overlayfs");
    assert_eq!(
        kernel.1, "NGED!!!!!",
        "kernel overlayfs switches the reader to the copy"
    );
    let original = fs::read(d.t.mnt().join("a/f1")).expect("read a/f1");
    let got = held_open_ops(d.t.mnt()).expect("held-open sequence on layerfs");
    assert_eq!(got.0, kernel.0);
    assert_eq!(
        got.1.as_bytes(),
        &original[3..],
        "the passthrough reader keeps the lower data"
    );
    assert_eq!(got.2, "CHANGED!!!!!", "a new open sees the copy");
    d.finish();
}

#[test]
fn scenario_copy_up_large_file_content() {
    let mut d = Diff::new(2, &|l| {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let data: Vec<u8> = (0..(8 << 20))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        l[1].file("big.bin", &data);
    });
    d.ok("overwrite 4 bytes in the middle", |m| {
        let mut f = OpenOptions::new().write(true).open(m.join("big.bin"))?;
        f.seek(SeekFrom::Start(5 << 20))?;
        f.write_all(b"ABCD")
    });
    d.ok("sha of big.bin", |m| {
        Ok(crate::common::snap::sha256_file(&m.join("big.bin")))
    });
    d.finish();
}

#[test]
fn scenario_chmod_dir_copies_up_dir() {
    let mut d = Diff::std();
    d.ok("chmod a 0711", |m| sys::chmod(&m.join("a"), 0o711));
    d.ok("chmod a/sub 0700", |m| sys::chmod(&m.join("a/sub"), 0o700));
    d.ok("ls a/sub after", |m| {
        fs::read_dir(m.join("a/sub")).map(|r| r.count())
    });
    d.holds_side("a/sub in upper without its files", |s| {
        let n = fs::read_dir(s.dirs.upper().join("a/sub"))
            .map_err(|e| e.to_string())?
            .count();
        if n == 0 {
            Ok(())
        } else {
            Err(format!("{n} files copied with the dir"))
        }
    });
    d.finish();
}

#[test]
fn scenario_ftruncate_and_write_on_open_fd() {
    let mut d = Diff::std();
    d.ok("open rw, ftruncate 0, write, pread", |m| {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(m.join("b/y"))?;
        f.set_len(0)?;
        f.write_all(b"new content")?;
        f.seek(SeekFrom::Start(4))?;
        let mut s = String::new();
        f.read_to_string(&mut s)?;
        Ok(s)
    });
    d.ok("O_APPEND|O_CREAT on existing lower", |m| {
        OpenOptions::new()
            .append(true)
            .create(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(m.join("mid.txt"))?
            .write_all(b"appended\n")
    });
    d.finish();
}

#[test]
fn scenario_append_via_shell_redirect() {
    let mut d = Diff::std();
    d.sh_ok("echo appended >> top.txt && echo new > a/sub/new && cat top.txt a/sub/new");
    d.sh_ok("printf x >> a/sub/deep; wc -c a/sub/deep");
    d.finish();
}

#[test]
fn scenario_copy_up_one_name_of_lower_hard_link() {
    // reduced from randomized seeds 207, 261, 285. Kernel overlayfs with index=off copies up
    // only the name written to: the two names stop sharing data and metadata.
    let mut d = Diff::new(1, &|l| {
        l[0].file("a", b"shared\n").hardlink("b", "a");
    });
    d.ok("append to a", |m| {
        OpenOptions::new()
            .append(true)
            .open(m.join("a"))?
            .write_all(b"more\n")
    });
    d.ok("setxattr a user.k", |m| {
        sys::setxattr(&m.join("a"), "user.k", b"v", 0)
    });
    d.ok("contents, nlinks, xattrs of both names", |m| {
        let s = |p: &str| -> std::io::Result<(Vec<u8>, u64, Vec<String>)> {
            Ok((
                fs::read(m.join(p))?,
                fs::metadata(m.join(p))?.nlink(),
                sys::listxattr(&m.join(p))?,
            ))
        };
        Ok((s("a")?, s("b")?))
    });
    d.remount();
    d.finish();
}

#[test]
fn scenario_write_through_second_name_of_lower_hard_link() {
    // Both names known to the kernel first; the write goes through the second. Only that
    // name is copied up (kernel overlayfs, index=off); the first keeps the lower data.
    let mut d = Diff::new(1, &|l| {
        l[0].file("d/a", b"shared\n").hardlink("e/b", "d/a");
    });
    d.ok("stat a then b", |m| {
        Ok((
            fs::metadata(m.join("d/a"))?.nlink(),
            fs::metadata(m.join("e/b"))?.nlink(),
        ))
    });
    d.ok("append to b", |m| {
        OpenOptions::new()
            .append(true)
            .open(m.join("e/b"))?
            .write_all(b"via b\n")
    });
    d.ok("read a, b", |m| {
        Ok((fs::read(m.join("d/a"))?, fs::read(m.join("e/b"))?))
    });
    d.ok("chmod a (second copy-up, the other name)", |m| {
        fs::set_permissions(m.join("d/a"), fs::Permissions::from_mode(0o600))
    });
    d.ok("modes, nlinks, data", |m| {
        let s = |p: &str| -> std::io::Result<(u32, u64, Vec<u8>)> {
            let md = fs::metadata(m.join(p))?;
            Ok((md.mode(), md.nlink(), fs::read(m.join(p))?))
        };
        Ok((s("d/a")?, s("e/b")?))
    });
    d.remount();
    d.finish();
}

#[test]
fn scenario_other_name_of_lower_hard_link_right_after_copy_up() {
    // The name not written to must lead to the lower file at once: no window in which it
    // still shows the copy (once a race with an asynchronous dentry invalidation, seen
    // only on a loaded machine). Many pairs, each checked immediately after its write.
    const N: usize = 64;
    let mut d = Diff::new(1, &|l| {
        for i in 0..N {
            l[0].file(&format!("a{i}"), b"lower\n")
                .hardlink(&format!("b{i}"), &format!("a{i}"));
        }
    });
    d.ok("stat every name, write one, read the other at once", |m| {
        let mut seen = Vec::new();
        for i in 0..N {
            let (a, b) = (m.join(format!("a{i}")), m.join(format!("b{i}")));
            fs::metadata(&a)?;
            fs::metadata(&b)?;
            OpenOptions::new()
                .append(true)
                .open(&a)?
                .write_all(b"upper\n")?;
            seen.push((fs::read(&b)?, fs::metadata(&b)?.nlink(), fs::read(&a)?));
        }
        Ok(seen)
    });
    d.finish();
}
