//! pjdfstest, the POSIX syscall conformance suite (upstream source in `../shared/ext/`), run
//! by `prove` inside a kernel overlayfs mount and a layerfs mount over the same small lower
//! layer: layerfs must fail no check that kernel overlayfs passes. Owns the cached build
//! (`target/pjdfstest-<hash>`), the per-file runner given to `prove --exec`, the parsing of
//! prove's summary report and of each file's TAP, and the comparison.
//!
//! Two variants: `upper_only` runs the whole suite in fresh directories of the merged root
//! (everything pjdfstest makes lives in the upper layer only); `merged_dir` runs each test
//! file that works in the directory it starts in (see `works_in_start_dir`) in a directory
//! of the lower layer that holds lower entries, so the parent it changes is copied up and
//! merged. (The other files make a random-named directory first and work only in there:
//! under a merged parent they would repeat the upper-only run exactly; so would most of
//! the PATH_MAX ones, which are left out too.)
//!
//! Test files run two at a time per mount (`prove -j2`), each in a directory of its own (the
//! suite is meant to run serially because its files share the cwd; with a cwd per file they
//! share nothing), and all four runs at once: serially the whole suite takes ~4-5 minutes
//! per mount, mostly its own `sleep 1`s. Full TAP output stays in `target/pjdfstest-logs/`.

use crate::common::layer::Layer;
use crate::common::mount::{BIN, Dirs, Impl, Opts, mount};
use crate::common::{self};
use prove::{Failures, Summary, flat, parse_summary, todo_differences};
use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Seconds one test file may run before `timeout` kills it. The longest (chown/00.t) takes
/// ~90 s on an idle machine, mostly its own `sleep 1`s; this only catches hangs.
const FILE_LIMIT_SECS: u32 = 400;
/// Test files run at once in one mount (each in its own directory).
const JOBS: u32 = 2;
/// Programs the build and the run need (fuse-tests/run.sh installs them as root).
const TOOLS: &[&str] = &[
    "tar",
    "autoreconf",
    "automake",
    "cc",
    "make",
    "prove",
    "openssl",
    "timeout",
];

/// `prove --exec` runs this with the test file's path: the file runs in a directory of its
/// own under PJD_RUNDIR (made here when PJD_FRESH=1; otherwise it must already exist, as a
/// directory of the lower layer), killed after PJD_LIMIT seconds, its TAP kept in PJD_LOGS.
const RUNNER: &str = r##"#!/bin/sh
t=$1
name=$(printf '%s' "${t#"$PJD_TESTS"/}" | tr / _)
d=$PJD_RUNDIR/$name
if [ "$PJD_FRESH" = 1 ]; then mkdir "$d" || exit 1; fi
if ! cd "$d"; then echo "1..1"; echo "not ok 1 - no directory $d to run in"; exit 1; fi
timeout -k 10 "$PJD_LIMIT" /bin/sh "$t" >"$PJD_LOGS/$name.tap" 2>"$PJD_LOGS/$name.err"
rc=$?
cat "$PJD_LOGS/$name.tap"
cat "$PJD_LOGS/$name.err" >&2
case $rc in 124|137) echo "# killed after ${PJD_LIMIT}s";; esac
exit $rc
"##;

mod prove;

#[test]
fn pjdfstest_upper_only() {
    conformance(Variant::UpperOnly);
}

#[test]
fn pjdfstest_merged_dir() {
    conformance(Variant::MergedDir);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    UpperOnly,
    MergedDir,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::UpperOnly => "upper-only",
            Variant::MergedDir => "merged-dir",
        }
    }

    /// The test files (relative to `tests`, sorted) this variant runs.
    fn files(self, tests: &Path) -> Vec<String> {
        let all = test_files(tests);
        match self {
            Variant::UpperOnly => all,
            Variant::MergedDir => all
                .into_iter()
                .filter(|f| {
                    let text = fs::read_to_string(tests.join(f))
                        .unwrap_or_else(|e| panic!("read {f}: {e}"));
                    // A PATH_MAX path has only its first name in the start directory;
                    // the deep rest is upper-only, as in the upper-only run (and making
                    // it is the costliest part of the suite).
                    works_in_start_dir(&text) && !text.contains("dirgen_max")
                })
                .collect(),
        }
    }

    /// What prove gets: the tests dir to recurse into, or the files themselves.
    fn prove_args(self, tests: &Path, files: &[String]) -> Vec<PathBuf> {
        match self {
            Variant::UpperOnly => vec![tests.to_path_buf()],
            Variant::MergedDir => files.iter().map(|f| tests.join(f)).collect(),
        }
    }
}

/// Whether a test file does anything in the directory it starts in other than `mkdir` a
/// directory, `cd` into it, and at the end `cd` back and `rmdir` it. Conservative: any line
/// in the start directory that is not one of those or of the plain setup lines (plan, names,
/// numeric constants) counts as work.
fn works_in_start_dir(text: &str) -> bool {
    let setup = |t: &str| {
        t.is_empty()
            || t.starts_with('#')
            || [
                "desc=",
                "dir=",
                ". ${dir}/",
                "echo \"1..",
                "require ",
                "if supported ",
            ]
            .iter()
            .any(|p| t.starts_with(p))
            || ["else", "fi", "cdir=`pwd`"].contains(&t)
    };
    let name_assignment = |t: &str| {
        t.split_once('=').is_some_and(|(var, val)| {
            var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && (["`namegen`", "`namegen_max`", "`dirgen_max`"].contains(&val)
                    || val.starts_with("`namegen_len ")
                    || val.split('#').next().is_some_and(|v| {
                        let v = v.trim();
                        !v.is_empty() && v.chars().all(|c| c.is_ascii_digit())
                    }))
        })
    };
    let own_dir = |t: &str| {
        let w: Vec<&str> = t.split_whitespace().collect();
        let var = |x: &str| x.starts_with("${") && x.ends_with('}');
        match w.as_slice() {
            ["expect", "0", "mkdir", d, mode] => var(d) && mode.chars().all(|c| c.is_ascii_digit()),
            ["expect", "0", "rmdir", d] => var(d),
            _ => false,
        }
    };
    let mut in_start = true;
    for line in text.lines() {
        let t = line.trim();
        if let Some(to) = t.strip_prefix("cd ") {
            in_start = to.trim() == "${cdir}";
            continue;
        }
        if in_start && !(setup(t) || name_assignment(t) || own_dir(t)) {
            return true;
        }
    }
    false
}

/// A built pjdfstest tree: `root/pjdfstest` (the binary) and `root/tests`.
struct Suite {
    root: PathBuf,
}

impl Suite {
    fn tests(&self) -> PathBuf {
        self.root.join("tests")
    }
}

fn conformance(v: Variant) {
    let suite = match suite() {
        Ok(s) => s,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let tests = suite.tests();
    let files = v.files(&tests);
    assert!(!files.is_empty(), "no .t files under {}", tests.display());
    let start = Instant::now();
    let (k, t) = std::thread::scope(|s| {
        let k = s.spawn(|| run(Impl::KernelOverlay, "oracle", v, &suite, &files));
        let t = s.spawn(|| run(Impl::under_test(), "test", v, &suite, &files));
        let join = |h: std::thread::ScopedJoinHandle<'_, Run>| {
            h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
        };
        (join(k), join(t))
    });
    eprintln!(
        "pjdfstest {}: {} files in {:.0} s (kernel overlayfs {:.0} s, {} {:.0} s)",
        v.name(),
        files.len(),
        start.elapsed().as_secs_f64(),
        k.secs,
        t.imp.name(),
        t.secs
    );
    for r in [&k, &t] {
        r.check_complete(files.len());
    }
    let checks = k.summary.tests_run.unwrap_or(0);
    let kernel_failed = k.failures.count();
    // An oracle that fails wholesale means a broken environment, not a baseline.
    assert!(
        kernel_failed * 50 <= checks as usize,
        "kernel overlayfs failed {kernel_failed} of {checks} pjdfstest checks ({}): the \
         environment is broken, not layerfs\n{}",
        v.name(),
        k.failures.describe()
    );
    if kernel_failed > 0 {
        eprintln!(
            "NOTE: kernel overlayfs itself fails {kernel_failed} pjdfstest checks ({}); \
             layerfs is only held to failing nothing more:\n{}",
            v.name(),
            k.failures.describe()
        );
    }
    let todo_diff = todo_differences(&k.summary, &t.summary);
    if !todo_diff.is_empty() {
        eprintln!(
            "NOTE: checks marked TODO (allowed either way) that pass on one side only ({}):\n{}",
            v.name(),
            todo_diff.join("\n")
        );
    }
    let extra = t.failures.minus(&k.failures);
    let count_note = match (k.summary.tests_run, t.summary.tests_run) {
        (Some(a), Some(b)) if a != b => {
            format!(
                "\n(kernel overlayfs ran {a} checks, {} ran {b})",
                t.imp.name()
            )
        }
        _ => String::new(),
    };
    let (setup, into) = match v {
        Variant::UpperOnly => ("", "mkdir M/d && cd M/d"),
        Variant::MergedDir => (" L/d", "cd M/d"),
    };
    assert!(
        extra.count() == 0 && count_note.is_empty(),
        "pjdfstest ({} variant): {} fails {} checks that kernel overlayfs passes:\n{}{count_note}\n\
         Reproduce as root, in an empty directory: `mkdir -p L U W M{setup} && {BIN} -o \
         lowerdir=$PWD/L,upperdir=$PWD/U,workdir=$PWD/W M && {into} && prove -v {}/FILE` (one call: \
         `{}/pjdfstest mkdir NAME 0755`).\nFull TAP of this run: {}",
        v.name(),
        t.imp.name(),
        extra.count(),
        extra.describe(),
        tests.display(),
        suite.root.display(),
        t.logs.display(),
    );
}

/// Why the suite cannot run here (a skip), or the built suite. A failing build panics.
fn suite() -> Result<Suite, String> {
    if !common::is_root() {
        return Err("pjdfstest must run as root".into());
    }
    let ext = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/ext");
    let mut tarballs: Vec<PathBuf> = fs::read_dir(&ext)
        .map_err(|e| format!("no pjdfstest source: {}: {e}", ext.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy();
            n.starts_with("pjdfstest-") && n.ends_with(".tar.gz")
        })
        .collect();
    tarballs.sort();
    let Some(tarball) = tarballs.pop() else {
        return Err(format!("no pjdfstest-*.tar.gz in {}", ext.display()));
    };
    let missing: Vec<&str> = TOOLS.iter().copied().filter(|t| !on_path(t)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing {} (fuse-tests/run.sh installs them)",
            missing.join(", ")
        ));
    }
    Ok(build(&tarball))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}

/// Build pjdfstest from `tarball` once per source: `target/pjdfstest-<hash of the tarball>`,
/// made in a temp dir and renamed into place under an flock, so concurrent tests (or test
/// processes) build it once and never see half a tree.
fn build(tarball: &Path) -> Suite {
    let bytes = fs::read(tarball).unwrap_or_else(|e| panic!("read {}: {e}", tarball.display()));
    let key = layerfs::digest::Digest::of(&bytes).hex()[..12].to_string();
    let target = target_dir();
    let root = target.join(format!("pjdfstest-{key}"));
    // pjdfstest's scripts use their own path unquoted; prove splits --exec on whitespace.
    assert!(
        !root.display().to_string().contains(char::is_whitespace),
        "pjdfstest cannot run from a path with whitespace: {}",
        root.display()
    );
    let lock_path = target.join(format!("pjdfstest-{key}.lock"));
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|e| panic!("open {}: {e}", lock_path.display()));
    // Released when `lock` is closed, at the end of this function.
    let r = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(r, 0, "flock {}", lock_path.display());
    if root.join("pjdfstest").is_file() {
        return Suite { root };
    }
    let tmp = tempfile::Builder::new()
        .prefix(&format!("pjdfstest-{key}.build"))
        .tempdir_in(&target)
        .expect("build tempdir");
    let started = Instant::now();
    checked(
        Command::new("tar")
            .arg("-xzf")
            .arg(tarball)
            .arg("-C")
            .arg(tmp.path()),
        "extract",
    );
    let src = tmp.path().join("pjdfstest");
    checked(
        Command::new("autoreconf").arg("-ifs").current_dir(&src),
        "autoreconf -ifs",
    );
    checked(Command::new("./configure").current_dir(&src), "./configure");
    checked(
        Command::new("make").arg("pjdfstest").current_dir(&src),
        "make pjdfstest",
    );
    fs::rename(&src, &root).unwrap_or_else(|e| panic!("rename build to {}: {e}", root.display()));
    eprintln!(
        "built pjdfstest in {:.0} s: {}",
        started.elapsed().as_secs_f64(),
        root.display()
    );
    drop(lock);
    Suite { root }
}

/// The cargo target dir: the layerfs binary lives in `target/<profile>/`.
fn target_dir() -> PathBuf {
    Path::new(BIN)
        .parent()
        .and_then(Path::parent)
        .expect("layerfs binary inside a target dir")
        .to_path_buf()
}

/// Run a build step; a failure panics with its output.
fn checked(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("pjdfstest {what}: {e}"));
    assert!(
        out.status.success(),
        "pjdfstest {what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every `.t` under `tests`, relative to it, sorted.
fn test_files(tests: &Path) -> Vec<String> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "t") {
                out.push(p);
            }
        }
    }
    let mut all = Vec::new();
    walk(tests, &mut all);
    let mut rel: Vec<String> = all
        .iter()
        .map(|p| {
            p.strip_prefix(tests)
                .expect("under tests")
                .display()
                .to_string()
        })
        .collect();
    rel.sort();
    rel
}

/// One prove run in one mount.
struct Run {
    imp: Impl,
    secs: f64,
    summary: Summary,
    failures: Failures,
    logs: PathBuf,
}

impl Run {
    /// prove must have finished and run every file: otherwise nothing was compared.
    fn check_complete(&self, files: usize) {
        assert!(
            self.summary.result.is_some() && self.summary.files_run == Some(files as u32),
            "prove on {} did not finish a run of {files} files (summary: {:?}); see {}",
            self.imp.name(),
            self.summary,
            self.logs.display()
        );
    }
}

/// `role` names the logs (LAYERFS_TEST_IMPL=kernel runs the kernel on both sides).
fn run(imp: Impl, role: &str, v: Variant, suite: &Suite, files: &[String]) -> Run {
    let tmp = common::tempdir();
    let lower = Layer::new(tmp.path().join("lower"));
    lower
        .file("etc/motd", b"a lower file\n")
        .file_mode("bin/tool", b"#!/bin/sh\n", 0o755)
        .dir("empty");
    if v == Variant::MergedDir {
        for f in files {
            let d = format!("merged/{}", flat(f));
            lower
                .file(&format!("{d}/lower-file"), b"from the lower layer\n")
                .file(&format!("{d}/lower-dir/inner"), b"lower\n");
        }
    }
    let logs = target_dir()
        .join("pjdfstest-logs")
        .join(v.name())
        .join(format!("{role}-{}", imp.name()));
    let _ = fs::remove_dir_all(&logs);
    fs::create_dir_all(&logs).expect("mkdir logs");
    let dirs = Dirs::new(tmp.path(), vec![lower.root.clone()]);
    let mut m = mount(imp, &dirs, &Opts::redirect());
    let rundir = match v {
        Variant::UpperOnly => {
            let d = dirs.mnt.join("fresh");
            fs::create_dir(&d).expect("mkdir fresh run dir in the mount");
            d
        }
        Variant::MergedDir => dirs.mnt.join("merged"),
    };
    let tests = suite.tests();
    let started = Instant::now();
    let summary = Prove {
        tests: &tests,
        rundir: &rundir,
        logs: &logs,
        fresh: v == Variant::UpperOnly,
        limit_secs: FILE_LIMIT_SECS,
    }
    .run(tmp.path(), &v.prove_args(&tests, files));
    let secs = started.elapsed().as_secs_f64();
    let failures = Failures::collect(&summary, &logs);
    m.unmount();
    Run {
        imp,
        secs,
        summary,
        failures,
        logs,
    }
}

/// One `prove` run over pjdfstest files, each in its own directory under `rundir` (see
/// RUNNER), with prove's output and each file's TAP kept in `logs`.
struct Prove<'a> {
    tests: &'a Path,
    rundir: &'a Path,
    logs: &'a Path,
    /// make each file's directory (else it must exist)
    fresh: bool,
    limit_secs: u32,
}

impl Prove<'_> {
    /// Run prove on `args` (files, or dirs to recurse into); the runner script goes in
    /// `scratch`. Returns prove's summary.
    fn run(&self, scratch: &Path, args: &[PathBuf]) -> Summary {
        let runner = scratch.join("run-one.sh");
        fs::write(&runner, RUNNER).expect("write runner");
        assert!(
            !runner.display().to_string().contains(char::is_whitespace),
            "prove --exec splits on whitespace: {}",
            runner.display()
        );
        let file = |name: &str| fs::File::create(self.logs.join(name)).expect("create prove log");
        let status = Command::new("prove")
            .arg("-r")
            .arg("--timer")
            .arg(format!("-j{JOBS}"))
            .arg("--exec")
            .arg(format!("/bin/sh {}", runner.display()))
            .args(args)
            .current_dir(self.rundir)
            .env("PJD_TESTS", self.tests)
            .env("PJD_RUNDIR", self.rundir)
            .env("PJD_FRESH", if self.fresh { "1" } else { "0" })
            .env("PJD_LIMIT", self.limit_secs.to_string())
            .env("PJD_LOGS", self.logs)
            .stdin(Stdio::null())
            .stdout(file("prove.out"))
            .stderr(file("prove.err"))
            .status()
            .expect("run prove");
        // prove exits 1 when a test fails; anything else is prove itself failing
        assert!(
            matches!(status.code(), Some(0 | 1)),
            "prove exited {status}: see {}",
            self.logs.display()
        );
        let out = fs::read_to_string(self.logs.join("prove.out")).expect("read prove output");
        parse_summary(&out, &format!("{}/", self.tests.display()))
    }
}

#[test]
fn runner_gives_each_file_a_directory_and_a_time_limit() {
    if !on_path("prove") || !on_path("timeout") {
        eprintln!("skipped: needs prove and timeout");
        return;
    }
    let tmp = common::tempdir();
    let tests = tmp.path().join("tests");
    let (rundir, logs) = (tmp.path().join("run"), tmp.path().join("logs"));
    for d in [tests.join("a"), rundir.clone(), logs.clone()] {
        fs::create_dir_all(d).unwrap();
    }
    let script = "echo 1..2; echo \"ok 1 - in $(basename \"$(pwd)\")\"; ";
    fs::write(
        tests.join("a/00.t"),
        format!("{script}echo 'not ok 2 - x'\n"),
    )
    .unwrap();
    // hangs: the limit must end it, and what it did not run counts as failed
    fs::write(tests.join("a/01.t"), format!("{script}exec sleep 600\n")).unwrap();
    let started = Instant::now();
    let s = Prove {
        tests: &tests,
        rundir: &rundir,
        logs: &logs,
        fresh: true,
        limit_secs: 1,
    }
    .run(tmp.path(), std::slice::from_ref(&tests));
    assert!(
        started.elapsed().as_secs() < 60,
        "the time limit did not apply"
    );
    assert_eq!((s.files_run, s.tests_run), (Some(2), Some(3)), "{s:?}");
    let f = Failures::collect(&s, &logs);
    assert!(
        f.describe().contains("a/00.t: subtests 2\n"),
        "{}",
        f.describe()
    );
    assert!(
        f.describe().contains("a/01.t: subtests 2\n"),
        "{}",
        f.describe()
    );
    assert!(
        f.describe().contains("Non-zero exit status: 124"),
        "{}",
        f.describe()
    );
    let tap = fs::read_to_string(logs.join("a_00.t.tap")).unwrap();
    assert!(tap.contains("ok 1 - in a_00.t"), "ran elsewhere: {tap}");
}

#[test]
fn files_that_only_make_and_enter_their_own_dir_are_told_apart() {
    let own = "#!/bin/sh\ndesc=\"x\"\ndir=`dirname $0`\n. ${dir}/../misc.sh\n\
               if supported lchmod; then\n\techo \"1..3\"\nelse\n\techo \"1..2\"\nfi\n\
               n0=`namegen`\nDATE1=1900000000 # 2030\nexpect 0 mkdir ${n0} 0755\n\
               cdir=`pwd`\ncd ${n0}\nexpect 0 create x 0644\ncd ${cdir}\nexpect 0 rmdir ${n0}\n";
    assert!(!works_in_start_dir(own));
    let cwd = own.replace("cd ${n0}\n", "");
    assert!(works_in_start_dir(&cwd));
    let after = format!("{own}expect 0 create ${{n1}} 0644\n");
    assert!(works_in_start_dir(&after));
}
