//! The request counters (`-o stats=FILE`): SIGUSR1 writes them while the mount serves, the
//! unmount writes the final ones, and they count what the kernel really sent (a name the
//! kernel has cached costs no second LOOKUP; a missing name is a failed one).

use crate::common::layer::build_lowers;
use crate::common::mount::{Dirs, Impl, Mounted, Opts, mount, wait_until};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// `name count failed` of each request line of a counters table.
fn counts(table: &str) -> Vec<(String, u64, u64)> {
    table
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [n, c, fl, _, _] => Some((n.to_string(), c.parse().ok()?, fl.parse().ok()?)),
                _ => None,
            }
        })
        .collect()
}

fn get(table: &str, name: &str) -> (u64, u64) {
    counts(table)
        .into_iter()
        .find(|r| r.0 == name)
        .map(|r| (r.1, r.2))
        .unwrap_or((0, 0))
}

/// A layerfs mount of one lower layer made by `setup`, counting into `stats.txt` beside
/// it: (its temp dir, the mount, the counters' file, the daemon's pid); None (printed) when
/// the implementation under test is not layerfs.
fn counted_mount(
    setup: &dyn Fn(&[crate::common::layer::Layer]),
) -> Option<(tempfile::TempDir, Mounted, std::path::PathBuf, u32)> {
    counted_mount_with(setup, &[])
}

/// [`counted_mount`] with more layerfs options.
fn counted_mount_with(
    setup: &dyn Fn(&[crate::common::layer::Layer]),
    extra: &[&str],
) -> Option<(tempfile::TempDir, Mounted, std::path::PathBuf, u32)> {
    if Impl::under_test() != Impl::Layerfs {
        eprintln!("skipped: layerfs's own counters");
        return None;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let dirs = Dirs::new(t.path(), build_lowers(t.path(), 1, setup));
    let file = t.path().join("stats.txt");
    let mut layerfs_extra = vec![format!("stats={}", file.display())];
    layerfs_extra.extend(extra.iter().map(|o| o.to_string()));
    let opts = Opts {
        layerfs_extra,
        ..Opts::default()
    };
    let m = mount(Impl::Layerfs, &dirs, &opts);
    let pid = m.daemon.expect("the daemon's pid");
    Some((t, m, file, pid))
}

#[test]
fn sigusr1_and_unmount_write_the_request_counters() {
    let Some((t, m, file, pid)) = counted_mount(&|l| {
        for i in 0..20 {
            l[0].file(&format!("d/f{i}"), b"x");
        }
    }) else {
        return;
    };
    for _ in 0..2 {
        for i in 0..20 {
            fs::symlink_metadata(m.mnt.join(format!("d/f{i}"))).expect("stat");
        }
    }
    for i in 0..3 {
        assert!(fs::symlink_metadata(m.mnt.join(format!("d/missing{i}"))).is_err());
    }
    for _ in 0..3 {
        assert_eq!(fs::read_dir(m.mnt.join("d")).expect("ls d").count(), 20);
    }
    let first = dump(pid, &file);
    let (lookups, failed) = get(&first, "LOOKUP");
    // d, its 20 files once each (the second round is answered by the dentry cache), and
    // the 3 misses, each a failed LOOKUP (a negative entry the kernel then keeps).
    assert_eq!((lookups, failed), (24, 3), "counters:\n{first}");
    assert_eq!(get(&first, "INIT").0, 1, "counters:\n{first}");
    // Directories open without OPENDIR/RELEASEDIR (one OPENDIR, answered ENOSYS, tells
    // the kernel so), and the kernel keeps the listing: read three times, listed once.
    assert!(get(&first, "OPENDIR").0 <= 1, "counters:\n{first}");
    assert_eq!(get(&first, "RELEASEDIR").0, 0, "counters:\n{first}");
    let listed = get(&first, "READDIR").0 + get(&first, "READDIRPLUS").0;
    assert!((1..=2).contains(&listed), "counters:\n{first}");
    let total = get(&first, "total").0;
    assert!(total > lookups, "the total counts every request:\n{first}");
    // More requests, then the unmount writes the final table.
    fs::write(m.mnt.join("new"), b"n").expect("create");
    drop(m);
    // The daemon writes them as it exits (a zombie has exited too: it may have no reaper).
    let gone = || {
        fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
    };
    assert!(
        wait_until(Duration::from_secs(10), gone),
        "the daemon {pid} still runs after the unmount"
    );
    let last = fs::read_to_string(&file).expect("read the final counters");
    assert_eq!(get(&last, "CREATE").0, 1, "final counters:\n{last}");
    assert!(get(&last, "total").0 > total, "final counters:\n{last}");
    let leftovers: Vec<_> = fs::read_dir(t.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("stats.txt."))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// The fuse module offers FUSE over io_uring (root turns it on: `fuse-tests/run.sh` does).
fn uring_offered() -> bool {
    fs::read_to_string("/sys/module/fuse/parameters/enable_uring").is_ok_and(|v| v.trim() == "Y")
}

/// "over io_uring: N" of a counters table.
fn over_ring(table: &str) -> u64 {
    table
        .lines()
        .find_map(|l| l.strip_prefix("over io_uring: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no io_uring line in the counters:\n{table}"))
}

/// Offered, the kernel's requests come over the io_uring queues (all but FORGETs and
/// what came before the queues were up); `uring=off` and `auto_unmount` keep them on
/// the device fd. The same work gives the same tree and the same answers either way.
#[test]
fn requests_come_over_io_uring_when_offered_and_wanted() {
    if !uring_offered() {
        eprintln!("skipped: /sys/module/fuse/parameters/enable_uring is not Y");
        return;
    }
    let mut seen = Vec::new();
    // auto_unmount: over the device fd (fusermount3 would not unmount a dead daemon's
    // mount while the kernel still tears its rings down).
    for extra in [&[][..], &["uring=off"][..], &["auto_unmount"][..]] {
        let Some((_t, m, file, pid)) = counted_mount_with(
            &|l| {
                for i in 0..50 {
                    l[0].file(&format!("d/f{i}"), format!("{i}\n").as_bytes());
                }
            },
            extra,
        ) else {
            return;
        };
        // Ask from each CPU in turn: every queue answers.
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut tree = Vec::new();
        for i in 0..50 {
            let p = m.mnt.join(format!("d/f{i}"));
            let cmd = format!("taskset -c {} cat {}", i % cpus, p.display());
            let (c, out, err) = crate::common::sh(&cmd, std::path::Path::new("/"));
            assert_eq!(c, 0, "{cmd}: {err}");
            tree.push(out);
            fs::write(m.mnt.join(format!("d/n{i}")), format!("new {i}\n")).expect("create");
        }
        assert!(fs::symlink_metadata(m.mnt.join("d/missing")).is_err());
        let mut names: Vec<String> = fs::read_dir(m.mnt.join("d"))
            .expect("ls d")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let table = dump(pid, &file);
        let (ring, total) = (over_ring(&table), get(&table, "total").0);
        if extra.is_empty() {
            // INIT and what the kernel sent while the queues registered come over the
            // device fd; nearly all the rest over the rings.
            assert!(
                ring * 10 >= total * 9,
                "{ring} of {total} over io_uring:\n{table}"
            );
        } else {
            assert_eq!(ring, 0, "{extra:?}, yet over io_uring:\n{table}");
        }
        seen.push((tree, names));
        drop(m);
    }
    assert_eq!(
        seen[0], seen[1],
        "io_uring and the device fd answered differently"
    );
    assert_eq!(
        seen[0], seen[2],
        "io_uring and the device fd answered differently"
    );
    assert_eq!(seen[0].1.len(), 100);
}

/// The counters as of now: SIGUSR1, then the file it writes.
fn dump(pid: u32, file: &std::path::Path) -> String {
    let _ = fs::remove_file(file);
    let st = std::process::Command::new("kill")
        .args(["-USR1", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success(), "kill -USR1 {pid}");
    assert!(
        wait_until(Duration::from_secs(10), || file.exists()),
        "SIGUSR1 wrote no {}",
        file.display()
    );
    fs::read_to_string(file).expect("read the counters")
}

/// Each name of a lower hard link is a node of its own, so the kernel keeps every name:
/// a second walk of a tree whose files all have three names sends nothing (before, every
/// walk looked every such name up again).
#[test]
fn names_of_lower_hard_links_are_cached() {
    let Some((_t, m, file, pid)) = counted_mount(&|l| {
        for i in 0..30 {
            l[0].file(&format!("d/f{i}"), b"x")
                .hardlink(&format!("d/f{i}.1"), &format!("d/f{i}"))
                .hardlink(&format!("d/f{i}.2"), &format!("d/f{i}"));
        }
    }) else {
        return;
    };
    let walk = || -> Vec<(String, u64)> {
        let mut v: Vec<_> = fs::read_dir(m.mnt.join("d"))
            .expect("ls d")
            .map(|e| {
                let e = e.expect("entry");
                let md = fs::symlink_metadata(e.path()).expect("stat");
                (e.file_name().to_string_lossy().into_owned(), md.ino())
            })
            .collect();
        v.sort();
        v
    };
    let first = walk();
    assert_eq!(first.len(), 90);
    for i in 0..30 {
        let ino = |n: String| first.iter().find(|e| e.0 == n).map(|e| e.1);
        let a = ino(format!("f{i}"));
        assert!(a.is_some(), "f{i} listed");
        assert_eq!(a, ino(format!("f{i}.1")), "names of one file, one number");
        assert_eq!(a, ino(format!("f{i}.2")), "names of one file, one number");
    }
    let after_first = dump(pid, &file);
    assert_eq!(walk(), first, "the second walk shows the same");
    let after_second = dump(pid, &file);
    let show = format!("after the first walk:\n{after_first}\nafter the second:\n{after_second}");
    for r in ["LOOKUP", "READDIR", "READDIRPLUS"] {
        assert_eq!(get(&after_second, r), get(&after_first, r), "{r}: {show}");
    }
    // The kernel asks for the directory's own attributes before it reads a cached
    // listing (any directory, hard links or not); none for the 90 names.
    let getattrs = get(&after_second, "GETATTR").0 - get(&after_first, "GETATTR").0;
    assert!(getattrs <= 1, "GETATTR: {show}");
}
