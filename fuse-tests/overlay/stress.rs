//! Concurrency stress: many processes and threads changing the namespace of one mount at
//! once (create, remove, rename, link; several `tar -x` and `rm -rf`), each in its own
//! directory, so the end state is known. Every step must succeed and the merged tree and
//! upper dir must equal what kernel overlayfs ends with after the same work.

use super::harness::{Diff, std_layers};
use crate::common::layer::Layer;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Run `script` in `n` processes at once in `dir` (`$W` = worker number); returns each
/// failure as "worker W: exit code, stderr".
fn in_parallel(dir: &Path, n: usize, script: &str) -> Vec<String> {
    let children: Vec<_> = (0..n)
        .map(|w| {
            Command::new("sh")
                .args(["-c", script])
                .env("W", w.to_string())
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn sh")
        })
        .collect();
    children
        .into_iter()
        .enumerate()
        .filter_map(|(w, c)| {
            let o = c.wait_with_output().expect("wait sh");
            (!o.status.success()).then(|| {
                format!(
                    "worker {w}: {:?}: {}",
                    o.status.code(),
                    String::from_utf8_lossy(&o.stderr).trim()
                )
            })
        })
        .collect()
}

/// Busy loops on every CPU while alive (a loaded machine widens race windows).
struct Load(Vec<std::process::Child>);

impl Load {
    fn start() -> Load {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Load(
            (0..cpus)
                .map(|_| {
                    Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .stdin(Stdio::null())
                        .spawn()
                        .expect("spawn busy loop")
                })
                .collect(),
        )
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Every worker loops mkdir / create / unlink / rmdir in directories of its own: with
/// inode numbers reused at once by the upper filesystem, a node id must still name one
/// file for as long as the kernel holds it. Once on an idle machine, once loaded.
#[test]
fn stress_parallel_mkdir_create_remove() {
    let mut d = Diff::std();
    let script = "set -e; for R in $(seq 300); do mkdir -p c/d_${W}_$R/sub; \
                  echo x > c/d_${W}_$R/sub/f; rm c/d_${W}_$R/sub/f; \
                  rmdir c/d_${W}_$R/sub c/d_${W}_$R; done";
    for round in 0..2 {
        let load = (round == 1).then(Load::start);
        for (side, m) in [("kernel overlayfs", d.km()), ("layerfs", d.tm())] {
            let bad = in_parallel(&m, 4, script);
            assert!(
                bad.is_empty(),
                "round {round} on {side}: a step failed:\n{}",
                bad.join("\n")
            );
        }
        drop(load);
        d.log.push(format!(
            "4 workers x 300 mkdir/create/rm/rmdir rounds ({round})"
        ));
        d.check_tree(&format!("after round {round}"));
    }
    d.finish();
}

/// A tar archive of a tree of `dirs` x `files` small files (made with tar from a tree
/// built here).
fn make_tar(tmp: &Path, dirs: usize, files: usize) -> PathBuf {
    let src = tmp.join("tarsrc");
    for i in 0..dirs {
        let dir = src.join(format!("t/dir{i}/sub"));
        fs::create_dir_all(&dir).expect("mkdir tarsrc");
        for j in 0..files {
            fs::write(dir.join(format!("f{j}")), format!("file {i}/{j}\n")).expect("write");
        }
        std::os::unix::fs::symlink("sub/f0", src.join(format!("t/dir{i}/link"))).expect("symlink");
    }
    let tar = tmp.join("tree.tar");
    let st = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&src)
        .arg("t")
        .status()
        .expect("run tar");
    assert!(st.success(), "tar -cf failed");
    tar
}

fn big_lower(l: &[Layer]) {
    std_layers(l);
    for w in 0..3 {
        for i in 0..40 {
            l[2].file(&format!("old{w}/d{i}/a"), b"a\n")
                .file(&format!("old{w}/d{i}/b"), b"b\n");
            l[1].file(&format!("old{w}/d{i}/c"), b"c\n");
        }
    }
}

/// Three `tar -x` into the mount and three `rm -rf` of merged lower trees at once, plus
/// renames and hard links from Rust threads, repeated.
#[test]
fn stress_parallel_tar_rm_rename_link() {
    let mut d = Diff::new(3, &big_lower);
    let tar = make_tar(d.tmp.path(), 30, 10);
    let tar_s = tar.display().to_string();
    for round in 0..2 {
        for (side, m) in [("kernel overlayfs", d.km()), ("layerfs", d.tm())] {
            let script = format!(
                "set -e; if [ $W -lt 3 ]; then mkdir -p x$W.{round}; \
                 tar -xf {tar_s} -C x$W.{round}; \
                 else rm -rf old$(($W - 3)); mkdir old$(($W - 3)); fi"
            );
            let renamer = {
                let m = m.clone();
                std::thread::spawn(move || -> io::Result<()> {
                    let base = m.join(format!("c/r{round}"));
                    fs::create_dir(&base)?;
                    for i in 0..300 {
                        let a = base.join(format!("n{i}"));
                        fs::write(&a, b"r\n")?;
                        fs::hard_link(&a, base.join(format!("h{i}")))?;
                        fs::rename(&a, base.join(format!("m{i}")))?;
                        if i % 2 == 0 {
                            fs::remove_file(base.join(format!("h{i}")))?;
                        }
                    }
                    Ok(())
                })
            };
            let bad = in_parallel(&m, 6, &script);
            let r = renamer.join().expect("renamer thread");
            assert!(
                bad.is_empty() && r.is_ok(),
                "round {round} on {side}: failures:\n{}\nrenamer: {r:?}",
                bad.join("\n")
            );
        }
        d.log.push(format!(
            "3 tar -x, 3 rm -rf, renames+links in parallel ({round})"
        ));
        d.check_tree(&format!("after round {round}"));
    }
    d.finish();
}
