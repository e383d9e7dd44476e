//! Randomized differential sequences: a seeded PRNG builds multi-layer stacks (whiteouts,
//! opaque dirs, hard links, symlinks, fifos) and drives thousands of operations on kernel
//! overlayfs and the implementation under test, comparing every result and, periodically,
//! the whole tree. The seed is printed; `LAYERFS_SEED=N` replays a run.

use super::harness::Diff;
use crate::common::layer::Layer;
use crate::common::sys;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;

/// xorshift64*: small, deterministic, good enough to pick operations.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

const DIRS: [&str; 6] = ["", "d0", "d1", "d0/e0", "d1/e1", "d2"];
const NAMES: [&str; 8] = ["f0", "f1", "f2", "e0", "e1", "d0", "d1", "s"];

fn rand_path(r: &mut Rng) -> String {
    let d = *r.pick(&DIRS);
    let n = *r.pick(&NAMES);
    if d.is_empty() {
        n.to_string()
    } else {
        format!("{d}/{n}")
    }
}

fn build_layer(l: &Layer, r: &mut Rng) {
    for _ in 0..14 {
        let p = rand_path(r);
        if fs::symlink_metadata(l.path(&p)).is_ok() {
            continue;
        }
        // the parent must be a dir (or absent) in this layer
        let parent_ok = Path::new(&p).ancestors().skip(1).all(|a| {
            a.as_os_str().is_empty()
                || fs::symlink_metadata(l.path(&a.to_string_lossy()))
                    .map(|m| m.is_dir())
                    .unwrap_or(true)
        });
        if !parent_ok {
            continue;
        }
        match r.below(10) {
            0..=3 => {
                l.file(&p, format!("{p} {}\n", r.next()).as_bytes());
            }
            4 => {
                l.dir(&p);
            }
            5 => {
                l.symlink(&p, if r.below(2) == 0 { "f0" } else { "../f1" });
            }
            6 => {
                l.whiteout(&p);
            }
            7 => {
                l.opaque(&p);
            }
            8 => {
                l.fifo(&p);
            }
            _ => {
                let q = rand_path(r);
                if fs::symlink_metadata(l.path(&q))
                    .map(|m| m.is_file())
                    .unwrap_or(false)
                {
                    l.hardlink(&p, &q);
                }
            }
        }
    }
}

/// Kernel overlayfs lists a whiteout as a char device 0:0 when its directory is not merged
/// with any layer below (nothing to hide): a kernel quirk, not a semantic to compare. Remove
/// such whiteouts from generated stacks.
fn prune_orphan_whiteouts(ls: &[Layer]) {
    use std::os::unix::fs::FileTypeExt;
    let roots: Vec<std::path::PathBuf> = ls.iter().map(|l| l.root.clone()).collect();
    for (i, l) in ls.iter().enumerate() {
        for rel in crate::common::snap::paths(&l.root) {
            let p = l.root.join(&rel);
            let Ok(md) = fs::symlink_metadata(&p) else {
                continue;
            };
            if !(md.file_type().is_char_device() && md.rdev() == 0) {
                continue;
            }
            let parent = Path::new(&rel)
                .parent()
                .map(|x| x.to_string_lossy().into_owned())
                .unwrap_or_default();
            if crate::common::snap::dir_layers(&roots[i..], &parent).len() <= 1 {
                fs::remove_file(&p).unwrap();
            }
        }
    }
}

fn stat_desc(p: &Path) -> io::Result<String> {
    let m = fs::symlink_metadata(p)?;
    let size = if m.is_dir() { 0 } else { m.len() };
    Ok(format!(
        "{} {:o} {} nlink={} uid={}",
        crate::common::snap::kind(&m),
        m.mode() & 0o7777,
        size,
        if m.is_dir() { 0 } else { m.nlink() },
        m.uid()
    ))
}

fn list(p: &Path) -> io::Result<Vec<String>> {
    let mut v: Vec<String> = fs::read_dir(p)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<_>>()?;
    v.sort();
    Ok(v)
}

/// One random operation: a description and a closure returning a comparable outcome.
/// Opening a fifo would block: ops that open a path report "fifo" instead.
fn not_fifo(p: &Path) -> io::Result<bool> {
    use std::os::unix::fs::FileTypeExt;
    match fs::metadata(p) {
        Ok(m) if m.file_type().is_fifo() => Ok(false),
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(true),
        Err(e) => Err(e),
    }
}

type OpFn = Box<dyn Fn(&Path) -> io::Result<String>>;

fn one_op(r: &mut Rng) -> (String, OpFn) {
    let a = rand_path(r);
    let b = rand_path(r);
    let val = r.next() % 1000;
    let op = r.below(22);
    let s = |x: &str| x.to_string();
    let (desc, f): (String, OpFn) = match op {
        0 => (
            format!("write {a}"),
            Box::new(move |m| {
                if !not_fifo(&m.join(&a))? {
                    return Ok(s("fifo"));
                }
                fs::write(m.join(&a), format!("w{val}\n")).map(|_| s(""))
            }),
        ),
        1 => (
            format!("append {a}"),
            Box::new(move |m| {
                if !not_fifo(&m.join(&a))? {
                    return Ok(s("fifo"));
                }
                fs::OpenOptions::new()
                    .append(true)
                    .open(m.join(&a))?
                    .write_all(format!("a{val}\n").as_bytes())
                    .map(|_| s(""))
            }),
        ),
        2 => (
            format!("read {a}"),
            Box::new(move |m| {
                if !not_fifo(&m.join(&a))? {
                    return Ok(s("fifo"));
                }
                fs::read(m.join(&a)).map(|v| String::from_utf8_lossy(&v).into_owned())
            }),
        ),
        3 | 4 => (
            format!("stat {a}"),
            Box::new(move |m| stat_desc(&m.join(&a))),
        ),
        5 => (
            format!("unlink {a}"),
            Box::new(move |m| fs::remove_file(m.join(&a)).map(|_| s(""))),
        ),
        6 => (
            format!("mkdir {a}"),
            Box::new(move |m| fs::create_dir(m.join(&a)).map(|_| s(""))),
        ),
        7 => (
            format!("rmdir {a}"),
            Box::new(move |m| fs::remove_dir(m.join(&a)).map(|_| s(""))),
        ),
        8 => (
            format!("rename {a} {b}"),
            Box::new(move |m| fs::rename(m.join(&a), m.join(&b)).map(|_| s(""))),
        ),
        9 => (
            format!("rename-noreplace {a} {b}"),
            Box::new(move |m| {
                sys::renameat2(&m.join(&a), &m.join(&b), libc::RENAME_NOREPLACE).map(|_| s(""))
            }),
        ),
        10 => (
            format!("rename-exchange {a} {b}"),
            Box::new(move |m| {
                sys::renameat2(&m.join(&a), &m.join(&b), libc::RENAME_EXCHANGE).map(|_| s(""))
            }),
        ),
        11 => (
            format!("symlink {a} -> f{val}"),
            Box::new(move |m| symlink(format!("f{}", val % 3), m.join(&a)).map(|_| s(""))),
        ),
        12 => (
            format!("link {a} {b}"),
            Box::new(move |m| fs::hard_link(m.join(&a), m.join(&b)).map(|_| s(""))),
        ),
        13 => (
            format!("chmod {a}"),
            Box::new(move |m| sys::chmod(&m.join(&a), 0o600 + (val as u32 % 0o100)).map(|_| s(""))),
        ),
        14 => (
            format!("setxattr {a}"),
            Box::new(move |m| {
                sys::setxattr(&m.join(&a), "user.k", format!("{val}").as_bytes(), 0).map(|_| s(""))
            }),
        ),
        15 => (
            format!("removexattr {a}"),
            Box::new(move |m| sys::removexattr(&m.join(&a), "user.k").map(|_| s(""))),
        ),
        16 => (
            format!("mkfifo {a}"),
            Box::new(move |m| sys::mkfifo(&m.join(&a)).map(|_| s(""))),
        ),
        17 => (
            format!("truncate {a}"),
            Box::new(move |m| {
                if !not_fifo(&m.join(&a))? {
                    return Ok(s("fifo"));
                }
                fs::OpenOptions::new()
                    .write(true)
                    .open(m.join(&a))?
                    .set_len(val % 7)
                    .map(|_| s(""))
            }),
        ),
        18 | 19 => (
            format!("readdir {a}"),
            Box::new(move |m| list(&m.join(&a)).map(|v| v.join(","))),
        ),
        20 => (
            format!("readlink {a}"),
            Box::new(move |m| fs::read_link(m.join(&a)).map(|t| t.display().to_string())),
        ),
        _ => (
            format!("chown {a}"),
            Box::new(move |m| sys::lchown(&m.join(&a), val as u32 % 3, 0).map(|_| s(""))),
        ),
    };
    (desc, f)
}

fn round(seed: u64, ops: usize) {
    let setup = move |ls: &[Layer]| {
        let mut r = Rng::new(seed ^ 0xABCD);
        for l in ls.iter().rev() {
            build_layer(l, &mut r);
        }
        prune_orphan_whiteouts(ls);
    };
    let mut d = Diff::new(3, &setup);
    // shown only when the test fails: the stack the failing sequence ran on
    for (i, l) in d.t.dirs.lowers.iter().enumerate() {
        let u = crate::common::snap::upper(l, crate::common::snap::SnapOpts::default());
        eprintln!(
            "seed {seed}: lower l{i} (top first):\n{}",
            crate::common::snap::show(&u)
        );
    }
    let mut r = Rng::new(seed);
    // full-tree comparison period; LAYERFS_CHECK_EVERY=1 pins down the op that diverged
    let every: usize = std::env::var("LAYERFS_CHECK_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
        .max(1);
    for i in 0..ops {
        if i % 97 == 96 {
            d.remount();
        }
        let (desc, f) = one_op(&mut r);
        let _ = d.op(&format!("#{i} {desc} (seed {seed})"), |m| f(m));
        if i % every == every - 1 {
            d.check_tree(&format!("after op #{i} (seed {seed})"));
        }
    }
    d.finish();
}

/// Rounds (seeds) that diverged from kernel overlayfs when this suite was written (layerfs
/// at 2026-11-23): `cargo test --test fuse-tests -- --ignored random_known_divergences`.
const KNOWN_DIVERGENT_ROUNDS: [u64; 2] = [261, 285];

/// Rounds that diverged once and must stay fixed: lower hard links renamed or copied up
/// (207, 224, 254), redirects crossing a non-directory in a middle layer (141, 239, 265),
/// a redirect crossing an opaque directory in a middle layer (480306020).
const FIXED_ROUNDS: [u64; 7] = [141, 207, 224, 239, 254, 265, 480306020];

/// CI: a fixed base seed (deterministic runs, 10 x 500 ops). `LAYERFS_SEED=N` replays base
/// seed N; `LAYERFS_SEED=random` draws a fresh one (printed).
#[test]
fn random_operation_sequences() {
    let base: u64 = match std::env::var("LAYERFS_SEED").as_deref() {
        Ok("random") => {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                % 1_000_000_007
        }
        Ok(s) => s
            .parse()
            .expect("LAYERFS_SEED must be a number or `random`"),
        Err(_) => 100,
    };
    let rounds: u64 = 10;
    // LAYERFS_OPS=N shortens each round (to bisect the op a final check trips on)
    let per: usize = std::env::var("LAYERFS_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let msg = format!(
        "random: base seed {base} ({rounds} rounds x {per} ops = {} ops; replay with LAYERFS_SEED={base})",
        rounds as usize * per
    );
    eprintln!("{msg}");
    println!("{msg}");
    for k in 0..rounds {
        round(base.wrapping_add(k), per);
    }
}

#[test]
fn random_fixed_divergences() {
    for seed in FIXED_ROUNDS {
        round(seed, 500);
    }
}

#[test]
#[ignore = "deliberate difference: rename between two names of one lower hard link is a no-op in layerfs (one inode, as POSIX rename of a file onto itself); kernel overlayfs with index=off sees two inodes (seeds 261, 285)"]
fn random_known_divergences() {
    let mut failed = Vec::new();
    for seed in KNOWN_DIVERGENT_ROUNDS {
        if std::panic::catch_unwind(|| round(seed, 500)).is_err() {
            failed.push(seed);
        }
    }
    assert!(failed.is_empty(), "rounds still diverging: {failed:?}");
}
