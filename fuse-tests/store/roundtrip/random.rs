//! The randomized round trip: random 3-layer images (dirs, files, symlinks, fifos, a hard
//! link, opaque dirs, whiteouts, odd modes and owners, xattrs), random operations through
//! the container's mount (mkdir, write, append, rm, rm -rf, renames of files and dirs
//! across dirs and over existing names, symlink, chmod, setxattr), then every store view
//! compared with the mount's. The seed is printed (`seed=N`); `LAYERFS_SEED=N` replays it.

use super::*;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

const ROUNDS: usize = 8;
const OPS: usize = 100;
const NAMES: [&str; 4] = ["a", "b", "c", "d"];

/// xorshift64, seeded through splitmix64 so that small seeds are fine too.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)).max(1))
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// One directory of a layer: each name of the pool is left out, a dir (recursing, maybe
/// opaque), a file, a symlink, a fifo or (above the bottom layer) a whiteout.
fn gen_dir(
    rng: &mut Rng,
    mut l: Layer,
    dir: &str,
    depth: usize,
    level: usize,
) -> (Layer, Vec<String>) {
    let mut files = Vec::new();
    for n in NAMES {
        let p = join(dir, n);
        let id = *rng.pick(&[0u64, 0, 1000]);
        match rng.below(100) {
            0..=34 => {}
            35..=64 if depth < 3 => {
                l = l.dir(
                    &p,
                    *rng.pick(&[0o755, 0o755, 0o700, 0o1777, 0o2755]),
                    id,
                    id,
                );
                if level > 0 && rng.chance(25) {
                    l = l.opaque(&p);
                }
                let (l2, f) = gen_dir(rng, l, &p, depth + 1, level);
                l = l2;
                files.extend(f);
            }
            35..=84 => {
                let data = format!("{p}@{level}:{}\n", rng.below(1000));
                let mode = *rng.pick(&[0o644, 0o644, 0o600, 0o755, 0o4755]);
                l = if rng.chance(15) {
                    l.xattr_file_owned(&p, data.as_bytes(), mode, (id, id), "user.r", b"img")
                } else {
                    l.file_owned(&p, data.as_bytes(), mode, id, id)
                };
                files.push(p);
            }
            85..=90 => {
                let t = ["a", "../b", "/c/d", "nowhere"][rng.below(4)];
                l = l.symlink(&p, t);
            }
            91..=92 => l = l.fifo(&p),
            _ if level > 0 => l = l.whiteout(&p),
            _ => {}
        }
    }
    (l, files)
}

fn gen_image(rng: &mut Rng) -> Vec<Vec<u8>> {
    (0..3)
        .map(|level| {
            let (mut l, files) = gen_dir(rng, Layer::new(), "", 0, level);
            if level == 0 && !files.is_empty() {
                let target: &String = rng.pick(&files);
                l = l.hardlink("hl", target);
            }
            l.tar()
        })
        .collect()
}

fn errno(r: std::io::Result<()>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => sys::errno_name(e.raw_os_error().unwrap_or(0)),
    }
}

/// One random operation in the mount; returns what it did and how it ended. Nothing here
/// follows a symlink: the images and the operations make symlinks to absolute paths.
fn random_op(rng: &mut Rng, mnt: &Path, seq: usize) -> String {
    let mut dirs = vec![String::new()];
    let mut files = Vec::new();
    let mut all = Vec::new();
    for p in snap::paths(mnt) {
        let md = std::fs::symlink_metadata(mnt.join(&p)).expect("lstat");
        if md.is_dir() {
            dirs.push(p.clone());
        } else if md.is_file() {
            files.push(p.clone());
        }
        all.push((p, md.file_type().is_symlink()));
    }
    let name = if rng.chance(70) {
        rng.pick(&NAMES).to_string()
    } else {
        format!("n{}", rng.below(20))
    };
    let dir: &String = rng.pick(&dirs);
    let newp = join(dir, &name);
    let m = |p: &str| mnt.join(p);
    let write = |p: &str, append: bool| -> std::io::Result<()> {
        // O_NOFOLLOW: the mount holds symlinks to absolute paths, which lead out of it, to
        // this machine's files. O_NONBLOCK: a fifo without a reader fails (ENXIO) instead
        // of hanging the test.
        let mut o = std::fs::OpenOptions::new();
        o.write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        if append {
            o.append(true);
        } else {
            o.create(true).truncate(true);
        }
        o.open(m(p))?.write_all(format!("w{seq}\n").as_bytes())
    };
    match rng.below(100) {
        0..=11 => format!("mkdir {newp}: {}", errno(std::fs::create_dir(m(&newp)))),
        12..=23 => format!("write {newp}: {}", errno(write(&newp, false))),
        24..=31 if !files.is_empty() => {
            let f = rng.pick(&files).clone();
            format!("append {f}: {}", errno(write(&f, true)))
        }
        32..=41 if all.len() > dirs.len() - 1 => {
            let nondirs: Vec<&String> = all
                .iter()
                .map(|(p, _)| p)
                .filter(|p| !dirs.contains(p))
                .collect();
            let f = (*rng.pick(&nondirs)).clone();
            format!("rm {f}: {}", errno(std::fs::remove_file(m(&f))))
        }
        42..=49 if dirs.len() > 1 => {
            let d = dirs[1 + rng.below(dirs.len() - 1)].clone();
            format!("rm -rf {d}: {}", errno(std::fs::remove_dir_all(m(&d))))
        }
        50..=74 if !all.is_empty() => {
            let src = rng.pick(&all).0.clone();
            let dst = if rng.chance(50) {
                newp
            } else {
                rng.pick(&all).0.clone()
            };
            format!(
                "mv {src} {dst}: {}",
                errno(std::fs::rename(m(&src), m(&dst)))
            )
        }
        75..=81 => {
            let t = *rng.pick(&["a", "../b/c", "/nonexistent/x", "n3"]);
            let r = std::os::unix::fs::symlink(t, m(&newp));
            format!("ln -s {t} {newp}: {}", errno(r))
        }
        82..=91 if !all.is_empty() => {
            let (p, link) = rng.pick(&all).clone();
            if link {
                return format!("chmod {p}: skipped (symlink)");
            }
            let mode = *rng.pick(&[0o644, 0o600, 0o4755, 0o2750, 0o1777, 0o755, 0o700]);
            let r = sys::chmod(&m(&p), mode);
            format!("chmod {mode:o} {p}: {}", errno(r))
        }
        _ if !all.is_empty() => {
            let (p, link) = rng.pick(&all).clone();
            if link {
                return format!("setxattr {p}: skipped (symlink)");
            }
            let n = format!("user.x{}", rng.below(3));
            let r = sys::setxattr(&m(&p), &n, format!("v{seq}").as_bytes(), 0);
            format!("setxattr {n} {p}: {}", errno(r))
        }
        _ => "nothing to do".into(),
    }
}

#[test]
fn random_images_and_operations() {
    if let Some(why) = can_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    let seed = match std::env::var("LAYERFS_SEED") {
        Ok(s) => s.trim().parse().expect("LAYERFS_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000_000)
            .unwrap_or(1),
    };
    eprintln!("seed={seed} (LAYERFS_SEED={seed} replays it)");
    let mut rng = Rng::new(seed);
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let Some((st, base)) = setup(gen_image(&mut rng)) else {
            return;
        };
        let mut log = Vec::new();
        let want = in_container(&st, "c1", |mnt| {
            for i in 0..OPS {
                log.push(random_op(&mut rng, mnt, i));
            }
        });
        let bad = check_store(&st, "c1", &base, &want);
        if !bad.is_empty() {
            failures.push(format!(
                "round {round}: the store disagrees with the mount:\n- {}\nthe image showed:\n{}\
                 operations:\n  {}\n",
                bad.join("\n- "),
                snap::show(&base.snap),
                log.join("\n  ")
            ));
        }
    }
    let heads: Vec<String> = failures
        .iter()
        .map(|f| {
            let head = f.lines().take_while(|l| !l.starts_with("the image showed"));
            head.take(5).collect::<Vec<_>>().join("\n")
        })
        .collect();
    assert!(
        failures.is_empty(),
        "seed={seed}: {} of {ROUNDS} rounds failed (LAYERFS_SEED={seed} replays them):\n{}\n\
         the first in full:\n{}",
        failures.len(),
        heads.join("\n"),
        failures[0]
    );
}
