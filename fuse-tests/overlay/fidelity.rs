//! POSIX fidelity against kernel overlayfs: 255-byte names and deep paths, set-user-ID and
//! set-group-ID bits cleared by writes of other users, operations on open handles of
//! unlinked or renamed-over files, and `noxattrs=1`.

use super::harness::{Diff, std_layers};
use crate::common::layer::Layer;
use crate::common::mount::{Dirs, Impl, Opts, mount};
use crate::common::sys;
use crate::common::{self};
use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, symlink};
use std::path::Path;
use std::process::{Command, Stdio};

/// A name of exactly `len` bytes starting with `tag`.
fn long(tag: &str, len: usize) -> String {
    let mut s = tag.to_string();
    while s.len() < len {
        s.push((b'a' + (s.len() % 26) as u8) as char);
    }
    s
}

fn ls(p: &Path) -> io::Result<Vec<String>> {
    let mut v: Vec<String> = fs::read_dir(p)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<_>>()?;
    v.sort();
    Ok(v)
}

fn long_name_layers(l: &[Layer]) {
    std_layers(l);
    let n = long("lowerfile", 255);
    l[2].file(&format!("a/{n}"), b"a lower file with a 255-byte name\n")
        .dir(&format!("a/{}", long("lowerdir", 255)))
        .file(&format!("{}/x", long("lowerdir2", 255)), b"x\n");
}

#[test]
fn scenario_255_byte_names_every_kind() {
    let mut d = Diff::new(3, &long_name_layers);
    let (f, dir, fifo, sock, sl) = (
        long("file", 255),
        long("dir", 255),
        long("fifo", 255),
        long("node", 255),
        long("sym", 255),
    );
    for parent in ["c", "a", "upperonly"] {
        if parent == "upperonly" {
            d.ok("mkdir upperonly", |m| fs::create_dir(m.join("upperonly")));
        }
        d.ok(&format!("create {parent}/255-byte file"), |m| {
            fs::write(m.join(parent).join(&f), b"long\n")
        });
        d.ok(&format!("mkdir {parent}/255-byte dir"), |m| {
            fs::create_dir(m.join(parent).join(&dir))
        });
        d.ok(&format!("mkfifo {parent}/255-byte fifo"), |m| {
            sys::mkfifo(&m.join(parent).join(&fifo))
        });
        d.ok(&format!("mknod {parent}/255-byte char dev"), |m| {
            sys::mknod(&m.join(parent).join(&sock), libc::S_IFCHR | 0o600, 1, 3)
        });
        d.ok(&format!("symlink {parent}/255-byte symlink"), |m| {
            symlink(&f, m.join(parent).join(&sl))
        });
        d.ok(&format!("ls {parent}"), |m| ls(&m.join(parent)));
        let f2 = long("renamed", 255);
        d.ok(
            &format!("rename {parent} file to another 255-byte name"),
            |m| fs::rename(m.join(parent).join(&f), m.join(parent).join(&f2)),
        );
        let l2 = long("link", 255);
        d.ok(&format!("link {parent} 255-byte names"), |m| {
            fs::hard_link(m.join(parent).join(&f2), m.join(parent).join(&l2))
        });
        d.fails("a 256-byte name", "ENAMETOOLONG", |m| {
            fs::write(m.join(parent).join(long("x", 256)), b"")
        });
        d.check_tree(&format!("after creating in {parent}"));
        d.ok(&format!("unlink {parent} 255-byte names"), |m| {
            fs::remove_file(m.join(parent).join(&f2))?;
            fs::remove_file(m.join(parent).join(&l2))?;
            fs::remove_file(m.join(parent).join(&fifo))?;
            fs::remove_file(m.join(parent).join(&sock))?;
            fs::remove_file(m.join(parent).join(&sl))
        });
        d.ok(&format!("rmdir {parent} 255-byte dir"), |m| {
            fs::remove_dir(m.join(parent).join(&dir))
        });
    }
    // Entries with 255-byte names in a lower layer: delete, rename, replace.
    let lf = long("lowerfile", 255);
    let ld = long("lowerdir", 255);
    d.ok("read the lower 255-byte file", |m| {
        fs::read(m.join("a").join(&lf))
    });
    d.ok("rename the lower 255-byte dir", |m| {
        fs::rename(
            m.join("a").join(&ld),
            m.join("a").join(long("moveddir", 255)),
        )
    });
    d.ok("unlink the lower 255-byte file", |m| {
        fs::remove_file(m.join("a").join(&lf))
    });
    d.fails("it is gone", "ENOENT", |m| {
        fs::metadata(m.join("a").join(&lf)).map(drop)
    });
    d.ok("create it again", |m| {
        fs::write(m.join("a").join(&lf), b"again\n")
    });
    d.ok("mkdir where the lower dir was", |m| {
        fs::create_dir(m.join("a").join(&ld))
    });
    d.ok("rm -r the lower 255-byte dir at the root", |m| {
        fs::remove_dir_all(m.join(long("lowerdir2", 255)))
    });
    d.ok("ls a", |m| ls(&m.join("a")));
    d.finish();
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(io::Error::other)
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Build and use a tree deeper than PATH_MAX below `base` with `*at` calls from directory
/// fds, as tar and rm -r do: 24 levels of 200-byte names (about 4,800 bytes).
fn deep_tree(base: &Path) -> io::Result<Vec<String>> {
    let comp = cstring(&long("deep", 200))?;
    let (f, f2, dn, sl) = (
        cstring(&long("f", 255))?,
        cstring(&long("g", 255))?,
        cstring(&long("d", 255))?,
        cstring(&long("s", 255))?,
    );
    let mut dir = fs::File::open(base)?;
    for _ in 0..24 {
        check(unsafe { libc::mkdirat(dir.as_raw_fd(), comp.as_ptr(), 0o755) })?;
        let fd = check(unsafe {
            libc::openat(
                dir.as_raw_fd(),
                comp.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        dir = unsafe { <fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    }
    let d = dir.as_raw_fd();
    let fd = check(unsafe {
        libc::openat(
            d,
            f.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
            0o644,
        )
    })?;
    let mut file = unsafe { <fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    file.write_all(b"deep\n")?;
    drop(file);
    check(unsafe { libc::mkdirat(d, dn.as_ptr(), 0o700) })?;
    check(unsafe { libc::symlinkat(f.as_ptr(), d, sl.as_ptr()) })?;
    check(unsafe { libc::renameat(d, f.as_ptr(), d, f2.as_ptr()) })?;
    check(unsafe { libc::linkat(d, f2.as_ptr(), d, f.as_ptr(), 0) })?;
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstatat(d, f.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    let mut out = vec![format!("nlink {} size {}", st.st_nlink, st.st_size)];
    check(unsafe { libc::unlinkat(d, f2.as_ptr(), 0) })?;
    check(unsafe { libc::fchmodat(d, f.as_ptr(), 0o600, 0) })?;
    check(unsafe { libc::fstatat(d, f.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    out.push(format!("mode {:o} nlink {}", st.st_mode, st.st_nlink));
    let mut names = ls(Path::new(&format!("/proc/self/fd/{d}")))?;
    names.iter_mut().for_each(|n| n.truncate(8));
    out.push(format!("{names:?}"));
    Ok(out)
}

#[test]
fn scenario_paths_longer_than_path_max() {
    let mut d = Diff::std();
    d.ok("a tree deeper than PATH_MAX under c", |m| {
        deep_tree(&m.join("c"))
    });
    d.ok("the same under a lower dir", |m| {
        deep_tree(&m.join("a/sub"))
    });
    d.sh_ok("find c a | wc -l; find c a -printf '%d %y %s %m\\n' | sort | uniq -c");
    d.sh_ok("set -e; rm -r c/deep* a/sub/deep*; ls c a/sub");
    d.finish();
}

/// Run `script` with `sh -c` as uid/gid 65534 in `dir`; (exit code, stderr).
fn sh_as_nobody(script: &str, dir: &Path) -> (i32, String) {
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
            script,
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn mode_of(p: &Path) -> io::Result<u32> {
    Ok(fs::symlink_metadata(p)?.mode())
}

fn suid_layers(l: &[Layer]) {
    std_layers(l);
    l[2].file("s/lower-suid", b"lower setuid\n")
        .owner("s/lower-suid", 1000, 1000)
        .mode("s/lower-suid", 0o6777)
        .file("s/lower-trunc", b"lower setuid, truncated\n")
        .owner("s/lower-trunc", 1000, 1000)
        .mode("s/lower-trunc", 0o6777)
        .file("s/lower-sgid-noexec", b"setgid without group exec\n")
        .owner("s/lower-sgid-noexec", 1000, 1000)
        .mode("s/lower-sgid-noexec", 0o2666)
        .dir_mode("s", 0o777);
}

#[test]
fn scenario_setuid_cleared_by_writes_of_others() {
    if !common::is_root() {
        eprintln!("skipped: needs root (other users write through the mount)");
        return;
    }
    let mut d = Diff::new(3, &suid_layers);
    d.ok("upper setuid file owned by 1000", |m| {
        let p = m.join("s/upper-suid");
        fs::write(&p, b"upper\n")?;
        sys::lchown(&p, 1000, 1000)?;
        sys::chmod(&p, 0o6777)?;
        mode_of(&p)
    });
    for (what, script) in [
        ("append to lower setuid", "echo more >> s/lower-suid"),
        ("append to upper setuid", "echo more >> s/upper-suid"),
        ("truncate lower setuid", "truncate -s 3 s/lower-trunc"),
        (
            "write lower setgid (no g+x)",
            "echo x >> s/lower-sgid-noexec",
        ),
    ] {
        let (a, b) = d.both(|m| sh_as_nobody(script, m));
        assert_eq!(a.0, 0, "{what} as nobody on kernel overlayfs: {}", a.1);
        assert_eq!(b.0, 0, "{what} as nobody on layerfs: {}", b.1);
        d.log.push(format!("as 65534: {script}"));
        for f in [
            "s/lower-suid",
            "s/upper-suid",
            "s/lower-trunc",
            "s/lower-sgid-noexec",
        ] {
            d.ok(&format!("mode of {f} after: {what}"), |m| {
                mode_of(&m.join(f))
            });
        }
    }
    // Root keeps the bits (CAP_FSETID), and chown by root clears them.
    d.ok("root writes a setuid file of 1000", |m| {
        let p = m.join("s/upper-suid");
        sys::chmod(&p, 0o6777)?;
        fs::OpenOptions::new()
            .append(true)
            .open(&p)?
            .write_all(b"root\n")?;
        mode_of(&p)
    });
    // Root without CAP_FSETID loses them on truncation: O_TRUNC and truncate(2) (the
    // kernel's flags on OPEN and SETATTR say so; root alone does not).
    d.ok("root without CAP_FSETID truncates setuid files", |m| {
        for f in ["s/upper-suid", "s/lower-trunc"] {
            sys::chmod(&m.join(f), 0o6755)?;
        }
        let script = "setpriv --bounding-set=-fsetid --inh-caps=-fsetid \
            sh -c ': > s/upper-suid && truncate -s 2 s/lower-trunc'";
        let (c, out, err) = common::sh(script, m);
        if c != 0 {
            return Err(io::Error::other(format!("{script}: {out}{err}")));
        }
        Ok((
            mode_of(&m.join("s/upper-suid"))?,
            mode_of(&m.join("s/lower-trunc"))?,
        ))
    });
    d.ok("chown -1 -1 changes only the change time", |m| {
        let mut out = Vec::new();
        for f in ["s/upper-suid", "s/lower-sgid-noexec", "a/f1"] {
            let p = m.join(f);
            let before = fs::symlink_metadata(&p)?;
            std::thread::sleep(std::time::Duration::from_millis(20));
            let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
                .map_err(io::Error::other)?;
            if unsafe { libc::chown(c.as_ptr(), u32::MAX, u32::MAX) } < 0 {
                return Err(io::Error::last_os_error());
            }
            let after = fs::symlink_metadata(&p)?;
            out.push((
                after.ctime_nsec() != before.ctime_nsec() || after.ctime() != before.ctime(),
                after.mode(),
            ));
        }
        Ok(out)
    });
    d.ok("chown clears setuid", |m| {
        let p = m.join("s/upper-suid");
        sys::lchown(&p, 1001, 1001)?;
        mode_of(&p)
    });
    d.finish();
}

fn fstat(fd: &fs::File) -> io::Result<(u32, u64, u64, u32, u32)> {
    let md = fd.metadata()?;
    Ok((md.mode(), md.nlink(), md.size(), md.uid(), md.gid()))
}

fn fsetxattr(fd: &fs::File, name: &str, value: &[u8]) -> io::Result<()> {
    let n = CString::new(name).map_err(io::Error::other)?;
    let r = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            n.as_ptr(),
            value.as_ptr() as *const libc::c_void,
            value.len(),
            0,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn fgetxattr(fd: &fs::File, name: &str) -> io::Result<Vec<u8>> {
    let n = CString::new(name).map_err(io::Error::other)?;
    let mut buf = vec![0u8; 256];
    let r = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            n.as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(r as usize);
    Ok(buf)
}

fn futimens(fd: &fs::File, secs: i64) -> io::Result<()> {
    let t = [
        libc::timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
    ];
    if unsafe { libc::futimens(fd.as_raw_fd(), t.as_ptr()) } < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Everything a program does with a handle whose name went away.
fn use_orphan(mut f: fs::File) -> io::Result<Vec<String>> {
    let mut out = vec![format!("fstat {:?}", fstat(&f)?)];
    f.write_all(b"written after unlink\n")?;
    f.set_permissions(fs::Permissions::from_mode(0o640))?;
    fsetxattr(&f, "user.orphan", b"yes")?;
    out.push(format!(
        "xattr {:?}",
        String::from_utf8_lossy(&fgetxattr(&f, "user.orphan")?)
    ));
    f.set_len(5)?;
    // After the truncation, which sets mtime to the current second (the two mounts' runs
    // could fall on either side of a second boundary).
    futimens(&f, 1_234_567_890)?;
    let md = f.metadata()?;
    out.push(format!(
        "after: mode {:o} nlink {} size {} mtime {}",
        md.mode(),
        md.nlink(),
        md.size(),
        md.mtime()
    ));
    let mut s = String::new();
    f.rewind()?;
    f.read_to_string(&mut s)?;
    out.push(format!("content {s:?}"));
    Ok(out)
}

use std::os::unix::fs::PermissionsExt;

#[test]
fn scenario_open_handles_of_unlinked_files() {
    let mut d = Diff::std();
    d.ok("new upper file, unlinked while open", |m| {
        let p = m.join("c/tmpfile");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&p)?;
        fs::remove_file(&p)?;
        use_orphan(f)
    });
    d.ok("lower file opened for writing, unlinked", |m| {
        let p = m.join("a/f1");
        let f = fs::OpenOptions::new().read(true).write(true).open(&p)?;
        fs::remove_file(&p)?;
        use_orphan(f)
    });
    d.ok("lower file opened read-only, unlinked, fstat", |m| {
        let p = m.join("b/y");
        let f = fs::File::open(&p)?;
        fs::remove_file(&p)?;
        let md = f.metadata()?;
        Ok((md.mode(), md.nlink(), md.size()))
    });
    d.ok("upper file renamed over while open", |m| {
        let p = m.join("c/victim");
        fs::write(&p, b"victim\n")?;
        fs::write(m.join("c/winner"), b"winner\n")?;
        let f = fs::OpenOptions::new().read(true).write(true).open(&p)?;
        fs::rename(m.join("c/winner"), &p)?;
        let r = use_orphan(f)?;
        Ok((r, fs::read(&p)?))
    });
    d.ok("lower file renamed over while open", |m| {
        let p = m.join("b/z");
        let f = fs::OpenOptions::new().read(true).write(true).open(&p)?;
        fs::rename(m.join("b/x"), &p)?;
        let r = use_orphan(f)?;
        Ok((r, fs::read(&p)?))
    });
    d.ok("hard link pair: one name unlinked while open", |m| {
        fs::write(m.join("c/h1"), b"h\n")?;
        fs::hard_link(m.join("c/h1"), m.join("c/h2"))?;
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(m.join("c/h1"))?;
        fs::remove_file(m.join("c/h1"))?;
        let a = fstat(&f)?;
        fs::remove_file(m.join("c/h2"))?;
        Ok((a, use_orphan(f)?))
    });
    d.ok("directories removed while open", |m| {
        fs::create_dir(m.join("c/newdir"))?;
        let up = fs::File::open(m.join("c/newdir"))?;
        fs::remove_dir(m.join("c/newdir"))?;
        fs::remove_file(m.join("a/sub/deep"))?;
        fs::remove_file(m.join("a/sub/mid"))?;
        let low = fs::File::open(m.join("a/sub"))?;
        fs::remove_dir(m.join("a/sub"))?;
        fs::create_dir(m.join("c/vdir"))?;
        fs::create_dir(m.join("c/wdir"))?;
        let victim = fs::File::open(m.join("c/vdir"))?;
        fs::rename(m.join("c/wdir"), m.join("c/vdir"))?;
        let (u, l, v) = (up.metadata()?, low.metadata()?, victim.metadata()?);
        Ok((
            u.mode(),
            u.nlink(),
            l.mode(),
            l.nlink(),
            v.mode(),
            v.nlink(),
        ))
    });
    d.ok("a new file takes the name of the unlinked one", |m| {
        let p = m.join("c/reused");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&p)?;
        fs::remove_file(&p)?;
        fs::write(&p, b"new file\n")?;
        let old = fstat(&f)?;
        Ok((old, use_orphan(f)?, fs::read(&p)?))
    });
    d.finish();
}

#[test]
fn noxattrs_disables_every_xattr_call() {
    let t = common::tempdir();
    let lowers = crate::common::layer::build_lowers(&t.path().join("s"), 1, &|l: &[Layer]| {
        l[0].file("f", b"f\n").xattr("f", "user.color", b"blue");
    });
    let dirs = Dirs::new(&t.path().join("s"), lowers);
    let opts = Opts {
        layerfs_extra: vec!["noxattrs=1".into()],
        ..Opts::redirect()
    };
    let m = mount(Impl::Layerfs, &dirs, &opts);
    let f = m.mnt.join("f");
    let err = |r: io::Result<()>| r.err().and_then(|e| e.raw_os_error());
    assert_eq!(
        err(sys::getxattr(&f, "user.color").map(drop)),
        Some(libc::ENOTSUP),
        "getxattr with noxattrs=1"
    );
    assert_eq!(
        err(sys::setxattr(&f, "user.x", b"1", 0)),
        Some(libc::ENOTSUP),
        "setxattr with noxattrs=1"
    );
    assert_eq!(
        err(sys::listxattr(&f).map(drop)),
        Some(libc::ENOTSUP),
        "listxattr with noxattrs=1"
    );
    assert_eq!(
        err(sys::removexattr(&f, "user.color")),
        Some(libc::ENOTSUP),
        "removexattr with noxattrs=1"
    );
    // Everything else still works, and the lower xattr is untouched.
    fs::write(m.mnt.join("g"), b"g\n").expect("write with noxattrs=1");
    assert_eq!(fs::read(&f).expect("read f"), b"f\n");
    drop(m);
    assert_eq!(
        sys::getxattr(&dirs.lowers[0].join("f"), "user.color").expect("lower xattr"),
        b"blue"
    );
}

/// Make the kernel forget every unused inode (each mount's daemon gets its FORGETs).
fn drop_kernel_caches() {
    let _ = fs::write("/proc/sys/vm/drop_caches", b"2");
}

/// A copied-up hard link keeps its lower inode number; once the kernel has forgotten
/// both names, looking the other (still lower) name up first must not give it that
/// number, or the two names would become one node again.
#[test]
fn scenario_hard_link_names_after_the_kernel_forgets() {
    if !common::is_root() {
        eprintln!("skipped: needs root (drop_caches)");
        return;
    }
    let mut d = Diff::std();
    d.ok("append through hl1 (copy-up splits the link)", |m| {
        fs::OpenOptions::new()
            .append(true)
            .open(m.join("hl1"))?
            .write_all(b"via hl1\n")
    });
    drop_kernel_caches();
    d.ok("read hl2, then hl1", |m| {
        Ok((fs::read(m.join("hl2"))?, fs::read(m.join("hl1"))?))
    });
    d.ok("append through hl2", |m| {
        fs::OpenOptions::new()
            .append(true)
            .open(m.join("hl2"))?
            .write_all(b"via hl2\n")
    });
    drop_kernel_caches();
    d.ok("read both again", |m| {
        Ok((fs::read(m.join("hl1"))?, fs::read(m.join("hl2"))?))
    });
    d.holds("the two names are two files", |m| {
        let (a, b) = (
            fs::metadata(m.join("hl1")).map_err(|e| e.to_string())?,
            fs::metadata(m.join("hl2")).map_err(|e| e.to_string())?,
        );
        if a.nlink() == 1 && b.nlink() == 1 {
            Ok(())
        } else {
            Err(format!("nlink {} and {}", a.nlink(), b.nlink()))
        }
    });
    d.finish();
}
