//! One test's world: a temp dir with a store (owned by the unprivileged test user in the
//! user modes), HOME and, in one mode, XDG_RUNTIME_DIR; every layerfs command run with a
//! deadline (a hung container kills the command, never the suite); and a teardown that runs
//! whatever happened: `rm -f` of every container of the store, SIGKILL of every process left
//! (marked by an environment variable, recorded from `State`, or rooted in the temp dir),
//! unmount of everything under the temp dir.

use super::image;
use crate::common;
use crate::common::mount::{pid_alive, wait_until};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_layerfs");
/// The bound of one layerfs command (the machine is small and shared: generous).
pub const CMD_LIMIT: Duration = Duration::from_secs(120);
/// The bound of a wait for a state (running, exited, a log line).
pub const WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Root,
    /// The unprivileged test user; `xdg`: XDG_RUNTIME_DIR set to a dir it owns (else unset).
    User {
        xdg: bool,
    },
}

/// What a command did: exit code (128+N when killed by signal N) and its output.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Its stdout/stderr stayed open after it exited (a descendant holds them).
    pub held: bool,
}

pub struct Ctx {
    pub mode: Mode,
    pub name: String,
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub home: PathBuf,
    pub xdg: Option<PathBuf>,
    /// (uid, gid) of the user commands run as (0, 0 as root).
    pub ids: (u32, u32),
    tag: String,
    pids: Mutex<Vec<u32>>,
    transcript: Mutex<String>,
}

fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// Why containers cannot run here in `mode`, if they cannot.
fn skip_reason(mode: Mode) -> Option<String> {
    if !common::is_root() {
        return Some("needs root (creates the test user, runs as root and as that user)".into());
    }
    if which("runc").is_none() {
        return Some("runc not installed (Debian: apt-get install runc)".into());
    }
    if let Err(why) = image::busybox() {
        return Some(why);
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("no /dev/fuse".into());
    }
    if let Mode::User { .. } = mode {
        let (uid, _) = common::test_user();
        for f in ["/etc/subuid", "/etc/subgid"] {
            let has = fs::read_to_string(f).unwrap_or_default().lines().any(|l| {
                let n = l.split(':').next().unwrap_or("");
                n == common::TEST_USER || n == uid.to_string()
            });
            if !has {
                return Some(format!("{} has no range in {f}", common::TEST_USER));
            }
        }
        let (code, _, err) = common::sh_as_user("unshare -r true", Path::new("/"));
        if code != 0 {
            return Some(format!("unprivileged user namespaces not allowed: {err}"));
        }
    }
    None
}

/// Run `f` in a fresh world for `mode`, the test image loaded; skips with a printed reason.
pub fn case(name: &str, mode: Mode, f: fn(&Ctx)) {
    if let Some(why) = skip_reason(mode) {
        eprintln!("SKIP containers {name} ({mode:?}): {why}");
        return;
    }
    let ctx = Ctx::new(name, mode);
    ctx.load_image();
    f(&ctx);
}

fn chown(p: &Path, (uid, gid): (u32, u32)) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown");
}

impl Ctx {
    fn new(name: &str, mode: Mode) -> Ctx {
        let dir = common::tempdir();
        let ids = match mode {
            Mode::Root => (0, 0),
            Mode::User { .. } => common::test_user(),
        };
        let root = dir.path().join("store");
        let home = dir.path().join("home");
        for d in [&root, &home] {
            fs::create_dir(d).expect("mkdir");
            chown(d, ids);
        }
        let xdg = match mode {
            Mode::User { xdg: true } => {
                let x = dir.path().join("xdg");
                fs::create_dir(&x).expect("mkdir xdg");
                fs::set_permissions(&x, fs::Permissions::from_mode(0o700)).expect("chmod");
                chown(&x, ids);
                Some(x)
            }
            _ => None,
        };
        let tag = dir
            .path()
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        Ctx {
            mode,
            name: name.to_string(),
            dir,
            root,
            home,
            xdg,
            ids,
            tag,
            pids: Mutex::new(Vec::new()),
            transcript: Mutex::new(String::new()),
        }
    }

    pub fn is_user(&self) -> bool {
        self.mode != Mode::Root
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A directory on the host the container's user can write (owned by the test user in
    /// the user modes).
    pub fn host_dir(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(&p).expect("mkdir host dir");
        chown(&p, self.ids);
        p
    }

    fn load_image(&self) {
        let a = self.path("image.tar");
        fs::write(&a, image::archive().expect("image")).expect("write image archive");
        self.ok(&["load", "-i", a.to_str().expect("utf8")]);
    }

    /// `layerfs --root STORE ARGS` as this world's user with its environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = match self.mode {
            Mode::Root => Command::new(BIN),
            Mode::User { .. } => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={}", self.ids.0))
                    .arg(format!("--regid={}", self.ids.1))
                    .arg("--init-groups")
                    .arg(BIN);
                c
            }
        };
        let user = if self.is_user() {
            common::TEST_USER
        } else {
            "root"
        };
        c.arg("--root")
            .arg(&self.root)
            .args(args)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", &self.home)
            .env("USER", user)
            .env("LOGNAME", user)
            .env("LANG", "C")
            .env("LAYERFS_CTEST", &self.tag)
            .current_dir(self.dir.path());
        if let Some(x) = &self.xdg {
            c.env("XDG_RUNTIME_DIR", x);
        }
        c
    }

    fn note(&self, args: &[&str], o: &Out) {
        let mut t = self.transcript.lock().unwrap_or_else(|e| e.into_inner());
        t.push_str(&format!(
            "$ layerfs {}\n-> {} {}{}{}\n",
            args.join(" "),
            o.code,
            if o.held { "(pipes held) " } else { "" },
            o.stdout,
            o.stderr
        ));
    }

    /// Run with stdin from `input` (else /dev/null), bounded by `limit`.
    pub fn lf_with(&self, args: &[&str], input: Option<&[u8]>, limit: Duration) -> Out {
        let o = bounded(self.command(args), input, limit)
            .unwrap_or_else(|o| panic!("layerfs {args:?} timed out after {limit:?}: {o:?}"));
        self.note(args, &o);
        o
    }

    pub fn lf(&self, args: &[&str]) -> Out {
        self.lf_with(args, None, CMD_LIMIT)
    }

    /// Run, assert exit 0, return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.lf(args);
        assert_eq!(o.code, 0, "layerfs {args:?} ({:?}): {o:?}", self.mode);
        o.stdout
    }

    /// Run, assert it fails (with `code` when given) and prints one `layerfs: ` line that
    /// names each of `names`.
    pub fn fails(&self, args: &[&str], code: Option<i32>, names: &[&str]) -> Out {
        let o = self.lf(args);
        match code {
            Some(c) => assert_eq!(o.code, c, "layerfs {args:?} exit code: {o:?}"),
            None => assert_ne!(o.code, 0, "layerfs {args:?} should fail: {o:?}"),
        }
        assert_error_line(&o, names, args);
        o
    }

    /// Start a command in the background (stdout and stderr collected as they come).
    pub fn spawn(&self, args: &[&str]) -> Bg {
        let mut c = self.command(args);
        Bg::start(&mut c, args)
    }

    /// `run -d ARGS`: prints the full id (64 hex), exits 0 with its pipes closed.
    pub fn run_d(&self, args: &[&str]) -> String {
        let mut a = vec!["run", "-d"];
        a.extend_from_slice(args);
        let o = self.lf(&a);
        assert_eq!(o.code, 0, "layerfs {a:?}: {o:?}");
        let id = o.stdout.trim().to_string();
        assert!(
            id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "run -d printed {:?}, not a 64-hex id",
            o.stdout
        );
        assert!(!o.held, "run -d exited but its stdout/stderr stay open");
        let st = self.state(&id);
        self.record(&st);
        id
    }

    /// The first object of `container inspect NAME`.
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let s = self.ok(&["container", "inspect", name]);
        let v: serde_json::Value =
            serde_json::from_str(&s).unwrap_or_else(|e| panic!("inspect JSON: {e}: {s}"));
        let v = if v.is_array() { v[0].clone() } else { v };
        self.record(&v["State"]);
        v
    }

    pub fn state(&self, name: &str) -> serde_json::Value {
        let v = self.inspect(name)["State"].clone();
        assert!(v.is_object(), "inspect {name} has no State object");
        v
    }

    pub fn full_id(&self, name: &str) -> String {
        self.inspect(name)["Id"]
            .as_str()
            .expect("inspect Id")
            .to_string()
    }

    /// Remember the pids a State shows (the teardown kills them if they outlive the test).
    fn record(&self, st: &serde_json::Value) {
        let mut p = self.pids.lock().unwrap_or_else(|e| e.into_inner());
        for k in ["Pid", "MonitorPid"] {
            if let Some(n) = st[k].as_u64().filter(|n| *n > 1) {
                p.push(n as u32);
            }
        }
    }

    /// Wait (bounded) until `State.Status` of `name` is `status`; the last State.
    pub fn wait_status(&self, name: &str, status: &str) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        let ok = poll(WAIT, || {
            last = self.state(name);
            last["Status"] == status
        });
        assert!(ok, "{name} never became {status}: State {last}");
        last
    }

    /// `wait NAME` (bounded): its exit code line.
    pub fn wait_code(&self, name: &str) -> i32 {
        let o = self.lf_with(&["wait", name], None, CMD_LIMIT);
        assert_eq!(o.code, 0, "wait {name}: {o:?}");
        o.stdout
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("wait {name} printed {:?}", o.stdout))
    }

    /// Poll `logs NAME` until its stdout has `needle`; the logs.
    pub fn wait_logs(&self, name: &str, needle: &str) -> String {
        let mut last = String::new();
        let ok = poll(WAIT, || {
            let o = self.lf(&["logs", name]);
            last = format!("{}{}", o.stdout, o.stderr);
            o.stdout.contains(needle)
        });
        assert!(ok, "logs of {name} never showed {needle:?}: {last:?}");
        last
    }

    /// `ps -q` (`-a` when `all`): the ids listed.
    pub fn ps_ids(&self, all: bool) -> Vec<String> {
        let args: &[&str] = if all {
            &["ps", "-a", "-q"]
        } else {
            &["ps", "-q"]
        };
        self.ok(args)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// No mount, in any mount namespace of the machine, names the container `id` (its
    /// fsname `layerfs:container:<12 hex>`, or its dir under the store as a mount point).
    pub fn assert_no_mounts(&self, id: &str) {
        let left = mounts_naming(id, &self.root);
        assert!(left.is_empty(), "mounts left for {id}: {left:#?}");
    }

    /// Like `assert_no_mounts`, waiting (bounded) for the mounts to go.
    pub fn wait_no_mounts(&self, id: &str) {
        poll(WAIT, || mounts_naming(id, &self.root).is_empty());
        self.assert_no_mounts(id);
    }

    /// The uid a file written by the container's root has on the host.
    pub fn host_root_uid(&self) -> u32 {
        self.ids.0
    }

    /// The container ids the store knows (its `containers/` dir), whatever `ps` says.
    fn stored_ids(&self) -> Vec<String> {
        fs::read_dir(self.root.join("containers"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.len() == 64)
            .collect()
    }
}

/// stderr has a line starting `layerfs: ` naming each of `names`.
pub fn assert_error_line(o: &Out, names: &[&str], what: &[&str]) {
    let line = o
        .stderr
        .lines()
        .find(|l| l.starts_with("layerfs: ") && names.iter().all(|n| l.contains(n)));
    assert!(
        line.is_some(),
        "{what:?}: no `layerfs: ` line naming {names:?} in stderr: {o:?}"
    );
}

impl Drop for Ctx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let t = self.transcript.lock().unwrap_or_else(|e| e.into_inner());
            let tail: String = if t.len() > 12000 {
                format!("...{}", &t[t.floor_char_boundary(t.len() - 12000)..])
            } else {
                t.clone()
            };
            eprintln!("--- {} ({:?}) commands ---\n{tail}", self.name, self.mode);
        }
        for id in self.stored_ids() {
            let _ = bounded(
                self.command(&["rm", "-f", &id]),
                None,
                Duration::from_secs(30),
            );
        }
        let mine = self.dir.path().display().to_string();
        for _ in 0..3 {
            let recorded = self.pids.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let left = leftover_pids(&self.tag, &mine, &recorded);
            if left.is_empty() {
                break;
            }
            for p in &left {
                unsafe { libc::kill(*p as i32, libc::SIGKILL) };
            }
            wait_until(Duration::from_secs(5), || {
                left.iter().all(|p| !pid_alive(*p))
            });
        }
        let mut ms: Vec<String> = common::mount::mounts()
            .into_iter()
            .map(|(m, _)| m)
            .filter(|m| m.starts_with(&format!("{mine}/")))
            .collect();
        ms.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ms {
            common::mount::force_unmount(Path::new(&m));
        }
    }
}

/// Processes this world left: its marker in their environment, rooted under `dir`, a pid
/// a State showed, or a child of one of those.
fn leftover_pids(tag: &str, dir: &str, recorded: &[u32]) -> Vec<u32> {
    let me = std::process::id();
    let marker = format!("LAYERFS_CTEST={tag}");
    let mut procs = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me || !pid_alive(pid) {
            continue;
        }
        let env = fs::read(e.path().join("environ")).unwrap_or_default();
        let marked = env.split(|b| *b == 0).any(|v| v == marker.as_bytes());
        let rooted = fs::read_link(e.path().join("root"))
            .is_ok_and(|r| r.display().to_string().starts_with(dir));
        let ppid = ppid(pid).unwrap_or(0);
        procs.push((pid, ppid, marked || rooted || recorded.contains(&pid)));
    }
    let mut set: Vec<u32> = procs.iter().filter(|p| p.2).map(|p| p.0).collect();
    loop {
        let more: Vec<u32> = procs
            .iter()
            .filter(|p| !set.contains(&p.0) && set.contains(&p.1))
            .map(|p| p.0)
            .collect();
        if more.is_empty() {
            break;
        }
        set.extend(more);
    }
    set
}

pub fn ppid(pid: u32) -> Option<u32> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Mount lines of every mount namespace that name container `id`.
pub fn mounts_naming(id: &str, store: &Path) -> Vec<String> {
    let fsname = format!("layerfs:container:{}", &id[..12]);
    let store = store.display().to_string();
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let Ok(ns) = fs::read_link(e.path().join("ns/mnt")) else {
            continue;
        };
        if seen.contains(&ns) {
            continue;
        }
        let Ok(text) = fs::read_to_string(e.path().join("mountinfo")) else {
            continue;
        };
        seen.push(ns);
        for l in text.lines() {
            let f: Vec<&str> = l.split(' ').collect();
            let Some(sep) = f.iter().position(|x| *x == "-") else {
                continue;
            };
            let source = f.get(sep + 2).copied().unwrap_or("");
            let point = f.get(4).copied().unwrap_or("");
            let under_store = point.starts_with(&store) && point.contains(id);
            if source.starts_with(&fsname) || under_store {
                out.push(format!("{}: {l}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}

/// A reader thread collecting a pipe into a shared buffer; `done` set at EOF.
fn collect(mut r: impl Read + Send + 'static) -> (Arc<Mutex<Vec<u8>>>, Arc<Mutex<bool>>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(Mutex::new(false));
    let (b, d) = (buf.clone(), done.clone());
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => b
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(&chunk[..n]),
            }
        }
        *d.lock().unwrap_or_else(|e| e.into_inner()) = true;
    });
    (buf, done)
}

fn text(b: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&b.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

fn is_done(d: &Mutex<bool>) -> bool {
    *d.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn code_of(st: std::process::ExitStatus) -> i32 {
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}

/// A command running in the background, in its own process group.
pub struct Bg {
    child: Child,
    what: String,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    out_done: Arc<Mutex<bool>>,
    err_done: Arc<Mutex<bool>>,
    status: Option<i32>,
}

impl Bg {
    fn start(c: &mut Command, args: &[&str]) -> Bg {
        Bg::start_with(c, args, Stdio::null())
    }

    fn start_with(c: &mut Command, args: &[&str], stdin: Stdio) -> Bg {
        let mut child = c
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn layerfs");
        let (out, out_done) = collect(child.stdout.take().expect("stdout"));
        let (err, err_done) = collect(child.stderr.take().expect("stderr"));
        Bg {
            child,
            what: args.join(" "),
            out,
            err,
            out_done,
            err_done,
            status: None,
        }
    }

    pub fn stdout(&self) -> String {
        text(&self.out)
    }

    pub fn stderr(&self) -> String {
        text(&self.err)
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Exited (reaped) already?
    pub fn exited(&mut self) -> Option<i32> {
        if self.status.is_none()
            && let Ok(Some(st)) = self.child.try_wait()
        {
            self.status = Some(code_of(st));
        }
        self.status
    }

    /// Wait (bounded) until stdout contains `needle`.
    pub fn wait_stdout(&mut self, needle: &str, limit: Duration) -> bool {
        wait_until(limit, || self.stdout().contains(needle))
    }

    /// Wait for the end (bounded; killed with its group on timeout, which fails the test).
    pub fn finish(mut self, limit: Duration) -> Out {
        let ended = wait_until(limit, || self.exited().is_some());
        if !ended {
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
            let _ = self.child.wait();
            panic!(
                "`layerfs {}` still running after {limit:?}; stdout {:?} stderr {:?}",
                self.what,
                self.stdout(),
                self.stderr()
            );
        }
        let drained = wait_until(Duration::from_secs(10), || {
            is_done(&self.out_done) && is_done(&self.err_done)
        });
        Out {
            code: self.status.unwrap_or(-1),
            stdout: self.stdout(),
            stderr: self.stderr(),
            held: !drained,
        }
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if self.exited().is_none() {
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

/// Run `c` to its end within `limit`, stdin from `input`; Err (with what it printed) when
/// it had to be killed.
pub fn bounded(mut c: Command, input: Option<&[u8]>, limit: Duration) -> Result<Out, Out> {
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut bg = Bg::start_with(&mut c, &[], stdin);
    if let Some(data) = input {
        let mut w = bg.child.stdin.take().expect("stdin");
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
        });
    }
    let start = Instant::now();
    let ended = wait_until(limit, || bg.exited().is_some());
    if !ended {
        unsafe { libc::kill(-(bg.child.id() as i32), libc::SIGKILL) };
        let _ = bg.child.wait();
        return Err(Out {
            code: -1,
            stdout: bg.stdout(),
            stderr: format!("{} (killed after {:?})", bg.stderr(), start.elapsed()),
            held: false,
        });
    }
    let drained = wait_until(Duration::from_secs(10), || {
        is_done(&bg.out_done) && is_done(&bg.err_done)
    });
    Ok(Out {
        code: bg.status.unwrap_or(-1),
        stdout: bg.stdout(),
        stderr: bg.stderr(),
        held: !drained,
    })
}

/// Poll `cond` every 100 ms up to `limit`: for conditions that run a layerfs command (a
/// tighter loop would load this small machine).
pub fn poll(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
