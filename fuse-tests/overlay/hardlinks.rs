//! Lower hard links as kernel overlayfs (index=off) shows them, now that each name is a
//! node of its own: one inode number for all names (stat, the listing's d_ino, `find
//! -inum`, tar's hard-link detection), a number of its own for the name copied up, and
//! the same after a remount. Numbers differ between the two mounts, so what is compared
//! is how names group by number, not the numbers.

use super::harness::Diff;
use crate::common;
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The names of `t` grouped by st_ino (each group sorted, groups sorted), with nlink.
fn groups(m: &Path) -> io::Result<Vec<Vec<(String, u64)>>> {
    let mut by: BTreeMap<u64, Vec<(String, u64)>> = BTreeMap::new();
    for e in fs::read_dir(m.join("t"))? {
        let e = e?;
        let md = fs::symlink_metadata(e.path())?;
        by.entry(md.ino())
            .or_default()
            .push((e.file_name().to_string_lossy().into_owned(), md.nlink()));
    }
    let mut v: Vec<_> = by.into_values().collect();
    for g in &mut v {
        g.sort();
    }
    v.sort();
    Ok(v)
}

/// Names of `t` whose listing d_ino is not their st_ino (a fresh listing each time).
fn d_ino_mismatches(m: &Path) -> io::Result<Vec<String>> {
    let mut bad = Vec::new();
    for e in fs::read_dir(m.join("t"))? {
        let e = e?;
        let d_ino = std::os::unix::fs::DirEntryExt::ino(&e);
        if d_ino != fs::symlink_metadata(e.path())?.ino() {
            bad.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    bad.sort();
    Ok(bad)
}

/// What `find t -inum N` lists, N being `t/a`'s number.
fn find_inum(m: &Path) -> io::Result<Vec<String>> {
    let n = fs::symlink_metadata(m.join("t/a"))?.ino();
    let (code, out, err) = common::sh(&format!("find t -inum {n} | sort"), m);
    if code != 0 {
        return Err(io::Error::other(format!("find: {err}")));
    }
    Ok(out.lines().map(str::to_string).collect())
}

/// The hard links tar records in an archive of `t` ("NAME link to TARGET" lines).
fn tar_links(m: &Path) -> io::Result<Vec<String>> {
    let (code, out, err) = common::sh("tar -cf - t | tar -tvf - | grep ' link to ' || true", m);
    if code != 0 {
        return Err(io::Error::other(format!("tar: {err}")));
    }
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| l.find(" t/").map(|i| l[i + 1..].to_string()))
        .collect();
    v.sort();
    Ok(v)
}

#[test]
fn scenario_lower_hard_links_group_list_and_split_as_the_kernel_shows() {
    let mut d = Diff::new(1, &|l| {
        l[0].file("t/a", b"shared\n")
            .hardlink("t/b", "t/a")
            .hardlink("t/c", "t/a")
            .file("t/d", b"alone\n")
            .file("t/e", b"pair\n")
            .hardlink("u/e2", "t/e");
    });
    for round in ["lower", "after the copy-up of a"] {
        d.ok(&format!("{round}: names grouped by st_ino, nlink"), groups);
        d.ok(&format!("{round}: d_ino is st_ino"), d_ino_mismatches);
        d.ok(&format!("{round}: find -inum of a"), find_inum);
        d.ok(&format!("{round}: hard links in a tar of t"), tar_links);
        if round == "lower" {
            d.ok("append to a", |m| {
                OpenOptions::new()
                    .append(true)
                    .open(m.join("t/a"))?
                    .write_all(b"more\n")
            });
        }
    }
    d.ok("data of every name", |m| {
        ["t/a", "t/b", "t/c", "t/e", "u/e2"]
            .iter()
            .map(|p| fs::read(m.join(p)))
            .collect::<io::Result<Vec<_>>>()
    });
    d.remount();
    d.ok("remounted: names grouped by st_ino, nlink", groups);
    d.ok("remounted: d_ino is st_ino", d_ino_mismatches);
    d.ok("remounted: hard links in a tar of t", tar_links);
    d.finish();
}
