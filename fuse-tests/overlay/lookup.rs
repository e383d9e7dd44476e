//! Lookup and readdir of the merged tree: top layer wins, whiteouts and opaque dirs hide,
//! private xattrs never show, listings are merged, deduplicated, stable, with correct d_type.

use super::harness::Diff;
use crate::common::sys;
use std::collections::BTreeSet;
use std::ffi::CStr;
use std::fs;
use std::io;
use std::path::Path;

fn names(p: &Path) -> io::Result<Vec<String>> {
    let mut v: Vec<String> = fs::read_dir(p)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<_>>()?;
    v.sort();
    Ok(v)
}

#[test]
fn scenario_lookup_top_layer_wins() {
    let mut d = Diff::std();
    let v = d.ok("read a/f1", |m| fs::read(m.join("a/f1")));
    assert_eq!(v, b"middle a/f1\n");
    let v = d.ok("read b/x", |m| fs::read(m.join("b/x")));
    assert_eq!(v, b"top b/x\n");
    d.ok("read a/sub/deep", |m| fs::read(m.join("a/sub/deep")));
    d.ok("stat owned", |m| {
        fs::symlink_metadata(m.join("owned")).map(|md| {
            use std::os::unix::fs::MetadataExt;
            (md.uid(), md.gid(), md.len())
        })
    });
    d.finish();
}

#[test]
fn scenario_readdir_merges_all_layers() {
    let mut d = Diff::std();
    let root = d.ok("ls /", names);
    for n in [
        "a", "b", "c", "d", "t.txt", "mid.txt", "top.txt", "hl1", "sym", "fifo",
    ] {
        assert!(
            root.contains(&n.to_string()),
            "{n} missing from merged root: {root:?}"
        );
    }
    let a = d.ok("ls a", |m| names(&m.join("a")));
    assert_eq!(a, ["exec.sh", "f1", "f3", "sub"]);
    d.ok("ls a/sub", |m| names(&m.join("a/sub")));
    d.ok("ls b", |m| names(&m.join("b")));
    d.finish();
}

#[test]
fn scenario_whiteout_hides_lower_file() {
    let mut d = Diff::std();
    d.fails("stat gone", "ENOENT", |m| {
        fs::symlink_metadata(m.join("gone")).map(|_| ())
    });
    d.fails("stat a/f2", "ENOENT", |m| {
        fs::symlink_metadata(m.join("a/f2")).map(|_| ())
    });
    let root = d.ok("ls /", names);
    assert!(!root.contains(&"gone".to_string()));
    d.finish();
}

#[test]
fn scenario_whiteout_hides_lower_dir() {
    let mut d = Diff::std();
    d.fails("stat gonedir", "ENOENT", |m| {
        fs::symlink_metadata(m.join("gonedir")).map(|_| ())
    });
    d.fails("stat gonedir/inner/file", "ENOENT", |m| {
        fs::read(m.join("gonedir/inner/file"))
    });
    d.ok("mkdir gonedir", |m| fs::create_dir(m.join("gonedir")));
    let v = d.ok("ls gonedir", |m| names(&m.join("gonedir")));
    assert!(v.is_empty(), "recreated dir shows lower entries: {v:?}");
    d.finish();
}

#[test]
fn scenario_opaque_dir_hides_lower_entries() {
    let mut d = Diff::std();
    let v = d.ok("ls d", |m| names(&m.join("d")));
    assert_eq!(v, ["visible"]);
    d.fails("read d/hidden", "ENOENT", |m| fs::read(m.join("d/hidden")));
    d.finish();
}

#[test]
fn scenario_private_xattrs_hidden() {
    let mut d = Diff::std();
    for p in ["d", "c", ".", "a", "top.txt"] {
        let x = d.ok(&format!("listxattr {p}"), |m| sys::listxattr(&m.join(p)));
        assert!(
            x.iter().all(|n| !n.starts_with("trusted.overlay.")),
            "{p}: {x:?}"
        );
    }
    d.fails("getxattr d trusted.overlay.opaque", "ENODATA", |m| {
        sys::getxattr(&m.join("d"), "trusted.overlay.opaque")
    });
    d.ok("mkdir d2; rmdir-able", |m| fs::create_dir(m.join("d2")));
    d.ok("rm d", |m| fs::remove_dir_all(m.join("d")));
    d.ok("mkdir d (now opaque in upper)", |m| {
        fs::create_dir(m.join("d"))
    });
    d.fails("getxattr new d trusted.overlay.opaque", "ENODATA", |m| {
        sys::getxattr(&m.join("d"), "trusted.overlay.opaque")
    });
    d.fails("getxattr new d user.overlay.opaque", "ENODATA", |m| {
        sys::getxattr(&m.join("d"), "user.overlay.opaque")
    });
    d.ok("listxattr new d", |m| sys::listxattr(&m.join("d")));
    d.finish();
}

#[test]
fn scenario_readdir_dedupes_names() {
    // the same names in all three layers: each listed once
    let mut d = Diff::new(3, &|l| {
        for (i, layer) in l.iter().enumerate() {
            for n in 0..50 {
                layer.file(&format!("dup/n{n}"), format!("layer {i}\n").as_bytes());
            }
            layer.file(&format!("dup/only{i}"), b"x");
        }
    });
    let v = d.ok("readdir dup (raw, unsorted count)", |m| {
        let raw: Vec<String> = fs::read_dir(m.join("dup"))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<io::Result<_>>()?;
        let set: BTreeSet<&String> = raw.iter().collect();
        Ok((raw.len(), set.len()))
    });
    assert_eq!(v, (53, 53));
    d.finish();
}

/// Read a directory with libc: the whole sequence of names with their telldir cookies.
fn read_with_cookies(p: &Path) -> io::Result<Vec<(i64, String)>> {
    let c = sys::cpath(p);
    let dir = unsafe { libc::opendir(c.as_ptr()) };
    if dir.is_null() {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    loop {
        let pos = unsafe { libc::telldir(dir) };
        let e = unsafe { libc::readdir(dir) };
        if e.is_null() {
            break;
        }
        let name = unsafe { CStr::from_ptr((*e).d_name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        out.push((pos, name));
    }
    unsafe { libc::closedir(dir) };
    Ok(out)
}

/// Read all, seekdir back to each of several cookies, and check the rest is replayed exactly.
fn seek_replay(p: &Path) -> io::Result<Result<usize, String>> {
    let all = read_with_cookies(p)?;
    let c = sys::cpath(p);
    let dir = unsafe { libc::opendir(c.as_ptr()) };
    if dir.is_null() {
        return Err(io::Error::last_os_error());
    }
    let mut bad = None;
    for idx in [all.len() / 2, 1, all.len() - 3, 0, all.len() / 3] {
        unsafe { libc::seekdir(dir, all[idx].0) };
        let mut rest = Vec::new();
        loop {
            let e = unsafe { libc::readdir(dir) };
            if e.is_null() {
                break;
            }
            rest.push(
                unsafe { CStr::from_ptr((*e).d_name.as_ptr()) }
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        let want: Vec<String> = all[idx..].iter().map(|x| x.1.clone()).collect();
        if rest != want {
            bad = Some(format!(
                "after seekdir to entry {idx} got {} names, want {}",
                rest.len(),
                want.len()
            ));
            break;
        }
    }
    // rewinddir gives the same sequence again
    unsafe { libc::rewinddir(dir) };
    let mut again = Vec::new();
    loop {
        let e = unsafe { libc::readdir(dir) };
        if e.is_null() {
            break;
        }
        again.push(
            unsafe { CStr::from_ptr((*e).d_name.as_ptr()) }
                .to_string_lossy()
                .into_owned(),
        );
    }
    unsafe { libc::closedir(dir) };
    let first: Vec<String> = all.iter().map(|x| x.1.clone()).collect();
    if bad.is_none() && again != first {
        bad = Some("rewinddir gave a different sequence".into());
    }
    Ok(match bad {
        Some(b) => Err(b),
        None => Ok(all.len()),
    })
}

#[test]
fn scenario_readdir_stable_across_seekdir_telldir() {
    let d = Diff::new(3, &|l| {
        for (i, layer) in l.iter().enumerate() {
            for n in 0..400 {
                layer.file(&format!("many/l{i}-{n:04}"), b"x");
                layer.file(&format!("many/shared-{n:04}"), b"y");
            }
            layer.whiteout(&format!("many/l{}-0001", i + 1));
        }
    });
    d.holds("seekdir/telldir replay", |m| {
        match seek_replay(&m.join("many")) {
            Ok(Ok(n)) if n == 400 * 4 + 2 - 2 => Ok(()),
            Ok(Ok(n)) => Err(format!("{n} entries")),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(e.to_string()),
        }
    });
    d.finish();
}

#[test]
fn scenario_readdir_100k_entries() {
    let mut d = Diff::new(2, &|l| {
        let dir = l[1].path("huge");
        fs::create_dir_all(&dir).unwrap();
        for n in 0..100_000 {
            fs::File::create(dir.join(format!("f{n:06}"))).unwrap();
        }
        l[0].dir("huge");
        for n in (0..100_000).step_by(1000) {
            l[0].whiteout(&format!("huge/f{n:06}"));
            l[0].file(&format!("huge/new{n:06}"), b"x");
        }
    });
    let start = std::time::Instant::now();
    let v = d.ok("readdir huge (count, first, last)", |m| {
        let n = names(&m.join("huge"))?;
        Ok((n.len(), n.first().cloned(), n.last().cloned()))
    });
    assert_eq!(v.0, 100_000, "{v:?}");
    d.ok("rm one, create one, count again", |m| {
        fs::remove_file(m.join("huge/f000001"))?;
        fs::write(m.join("huge/zzz"), b"z")?;
        Ok(names(&m.join("huge"))?.len())
    });
    eprintln!("100k readdir on both mounts: {:?}", start.elapsed());
    d.finish_upper_only();
}

#[test]
fn scenario_readdir_d_type() {
    let mut d = Diff::std();
    d.ok("mknod sock + mkdir + symlink in upper", |m| {
        sys::make_socket(&m.join("sock"))?;
        fs::create_dir(m.join("newdir"))?;
        std::os::unix::fs::symlink("t.txt", m.join("newlink"))
    });
    let v = d.ok("d_type of every root entry", |m| {
        let c = sys::cpath(m);
        let dir = unsafe { libc::opendir(c.as_ptr()) };
        if dir.is_null() {
            return Err(io::Error::last_os_error());
        }
        let mut v = Vec::new();
        loop {
            let e = unsafe { libc::readdir(dir) };
            if e.is_null() {
                break;
            }
            let name = unsafe { CStr::from_ptr((*e).d_name.as_ptr()) }
                .to_string_lossy()
                .into_owned();
            v.push((name, unsafe { (*e).d_type }));
        }
        unsafe { libc::closedir(dir) };
        v.sort();
        Ok(v)
    });
    let get = |n: &str| v.iter().find(|x| x.0 == n).map(|x| x.1);
    assert_eq!(get("a"), Some(libc::DT_DIR));
    assert_eq!(get("fifo"), Some(libc::DT_FIFO));
    assert_eq!(get("sym"), Some(libc::DT_LNK));
    assert_eq!(get("sock"), Some(libc::DT_SOCK));
    assert_eq!(get("t.txt"), Some(libc::DT_REG));
    d.finish();
}

#[test]
fn scenario_readdir_repeated_getdents_stable() {
    let mut d = Diff::std();
    let first = d.ok("ls -f / twice", |m| {
        let once: Vec<String> = fs::read_dir(m)?
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let twice: Vec<String> = fs::read_dir(m)?
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        Ok(once == twice)
    });
    assert!(first);
    d.finish();
}

#[test]
fn scenario_symlink_in_lower_followed() {
    let mut d = Diff::std();
    d.ok("read through sym", |m| fs::read(m.join("sym")));
    d.ok("readlink sym", |m| fs::read_link(m.join("sym")));
    d.fails("read dangling", "ENOENT", |m| fs::read(m.join("dangling")));
    d.ok("write through sym copies up its target", |m| {
        fs::write(m.join("sym"), b"via link\n")
    });
    d.ok("readlink sym still", |m| fs::read_link(m.join("sym")));
    d.finish();
}

/// Every way a missing name can come into being through the mount, each right after the
/// name was looked up and found absent (layerfs lets the kernel cache such misses).
#[test]
fn scenario_names_found_absent_then_created() {
    use std::io::Write;
    use std::os::unix::fs::symlink;
    let mut d = Diff::std();
    let absent = |m: &Path, names: &[&str]| -> io::Result<Vec<bool>> {
        Ok(names
            .iter()
            .map(|n| m.join(n).symlink_metadata().is_ok())
            .collect())
    };
    let probed = [
        "n/excl",
        "n/creat",
        "n/dir",
        "n/fifo",
        "n/sym",
        "n/link",
        "n/renamed",
        "n/exch",
        "gone",
        "gonedir",
        "b/x.new",
        "a/sub/deeper",
    ];
    d.ok("mkdir n", |m| fs::create_dir(m.join("n")));
    for _ in 0..2 {
        d.ok("probe every name twice", |m| absent(m, &probed));
    }
    d.ok("create each name by a different call", |m| {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(m.join("n/excl"))?
            .write_all(b"excl\n")?;
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(m.join("n/creat"))?
            .write_all(b"creat\n")?;
        fs::create_dir(m.join("n/dir"))?;
        sys::mkfifo(&m.join("n/fifo"))?;
        symlink("excl", m.join("n/sym"))?;
        fs::hard_link(m.join("n/excl"), m.join("n/link"))?;
        fs::rename(m.join("n/creat"), m.join("n/renamed"))?;
        fs::write(m.join("gone"), b"back\n")?;
        fs::create_dir(m.join("gonedir"))?;
        fs::write(m.join("b/x.new"), b"new\n")?;
        fs::create_dir(m.join("a/sub/deeper"))
    });
    d.ok("probe again", |m| absent(m, &probed));
    let r = d.op("exchange with a name found absent: ENOENT", |m| {
        sys::renameat2(&m.join("n/excl"), &m.join("n/exch"), libc::RENAME_EXCHANGE)
    });
    assert_eq!(r, Err("ENOENT".to_string()));
    d.ok("read back", |m| {
        Ok((
            fs::read(m.join("n/link"))?,
            fs::read(m.join("n/renamed"))?,
            fs::read(m.join("gone"))?,
            names(&m.join("gonedir"))?,
            fs::read_link(m.join("n/sym"))?,
        ))
    });
    d.ok("unlink, probe, create again", |m| {
        fs::remove_file(m.join("n/excl"))?;
        let gone = m.join("n/excl").symlink_metadata().is_err();
        fs::write(m.join("n/excl"), b"again\n")?;
        Ok((gone, fs::read(m.join("n/excl"))?))
    });
    d.finish();
}
