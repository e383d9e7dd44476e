//! The per-container monitor (`layerfs __monitor ID`, like conmon): it enters the
//! container's namespaces (rootless: a user namespace, the user as root), mounts the
//! rootfs with layerfs, starts a watchdog, has runc create and start the container, becomes
//! the parent of its first process (child subreaper), logs its streams, forwards signals,
//! and when it exits records the code, deletes runc's state and unmounts. It tells the
//! client how the start went on the pipe in `LAYERFS_READY_FD`: `OK`, or `ERR CODE TEXT`.

use super::Failure;
use super::bundle::{self, Inputs};
use super::logs::{LogWriter, Stream};
use super::prepare::{self, Prepared};
use super::relay::{self, ConsoleSocket};
use super::runc::{self, Runc};
use super::state::{self, State, Status};
use super::userns;
use crate::mount::{MountOptions, READY_FD_ENV};
use crate::store::Store;
use crate::store::human::now_rfc3339;
use crate::sys;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        code: 125,
        message: message.into(),
    }
}

/// What the running container holds on to until it exits.
struct Running {
    runc: Runc,
    pid: i32,
    outputs: Vec<std::thread::JoinHandle<()>>,
    watchdog: Option<Child>,
    mounted: Option<PathBuf>,
}

/// The monitor's main: returns the container's exit code (125 when it did not start).
pub fn main(root: PathBuf, id: &str, attach: bool) -> i32 {
    let mut ready = sys::take_fd_from_env(READY_FD_ENV).map(File::from);
    let store = match Store::open(Some(root.clone())) {
        Ok(s) => s,
        Err(e) => return report(&mut ready, &fail(e.to_string())),
    };
    let prepared = match store
        .container(id)
        .map_err(|e| e.to_string())
        .and_then(|c| prepare::prepare(&store, c))
    {
        Ok(p) => p,
        Err(e) => return report(&mut ready, &fail(e)),
    };
    let mut cleanup = Cleanup::default();
    let started = start(&store, &root, &prepared, attach, &mut cleanup);
    let mut running = match started {
        Ok(r) => r,
        Err(f) => {
            cleanup.run();
            let mut st = State::load(&prepared.files).unwrap_or_default();
            st.status = if st.started_at.is_empty() {
                Status::Created
            } else {
                Status::Exited
            };
            st.error = f.message.clone();
            st.monitor_pid = 0;
            st.pid = 0;
            let _ = st.save(&prepared.files);
            return report(&mut ready, &f);
        }
    };
    if let Some(mut r) = ready.take() {
        let _ = r.write_all(b"OK\n");
    }
    let code = wait_for(running.pid);
    for h in running.outputs.drain(..) {
        let _ = h.join();
    }
    finish(&store, &prepared, &mut running, code);
    code
}

fn report(ready: &mut Option<File>, f: &Failure) -> i32 {
    match ready.take() {
        Some(mut r) => {
            let _ = writeln!(r, "ERR {} {}", f.code, f.message.replace('\n', " "));
        }
        None => log::error!("{}", f.message),
    }
    f.code
}

/// Tell the watchdog that we are done (it exits without doing anything) and reap it.
fn dismiss(mut w: Child) {
    if let Some(mut i) = w.stdin.take() {
        let _ = i.write_all(b"done\n");
    }
    let _ = w.wait();
}

/// Undo a start that failed half-way.
#[derive(Default)]
struct Cleanup {
    runc: Option<(Runc, String)>,
    mounted: Option<PathBuf>,
    pid: i32,
    watchdog: Option<Child>,
}

impl Cleanup {
    fn run(&mut self) {
        if let Some(w) = self.watchdog.take() {
            dismiss(w);
        }
        if self.pid > 0 {
            let _ = sys::kill(self.pid, libc::SIGKILL);
        }
        if let Some((r, id)) = self.runc.take() {
            r.delete(&id);
        }
        if let Some(m) = self.mounted.take()
            && let Err(e) = crate::mount::unmount(&m)
        {
            log::error!("{e}");
        }
    }
}

/// The mount options of a container's rootfs: everyone in the container may use it
/// (its users are not the mount's owner); rootless, ownership stays in the xattrs the
/// unprivileged store writes, and there is no passthrough (not allowed in a namespace).
fn rootfs_options(rootless: bool) -> MountOptions {
    MountOptions {
        allow_other: true,
        suid: true,
        dev: !rootless,
        passthrough: !rootless,
        xattr_permissions: rootless,
        ..Default::default()
    }
}

fn start(
    store: &Store,
    root: &Path,
    p: &Prepared,
    attach: bool,
    cleanup: &mut Cleanup,
) -> Result<Running, Failure> {
    let rootless = sys::geteuid() != 0;
    // Chosen as the user we are (inside the namespace we are its root).
    let runc_root = runc::state_root(root, sys::geteuid());
    let mapping = userns::mapping_for(sys::getuid(), sys::getgid());
    if rootless {
        userns::enter(&mapping).map_err(fail)?;
    } else {
        userns::enter_mount_namespace().map_err(fail)?;
    }
    // From here on, termination signals are for the container (a thread forwards them).
    let signals = sys::BlockedSignals::block(&FORWARDED)
        .map_err(|e| fail(format!("blocking signals: {e}")))?;
    sys::set_child_subreaper().map_err(|e| fail(format!("becoming a subreaper: {e}")))?;
    let c = &p.container;
    let plan = store.container_plan(c).map_err(|e| fail(e.to_string()))?;
    crate::mount::run(plan.into_request(p.rootfs.clone(), rootfs_options(rootless))).map_err(
        |e| {
            fail(format!(
                "cannot mount the rootfs of {} on {}: {e}",
                c.name,
                p.rootfs.display()
            ))
        },
    )?;
    cleanup.mounted = Some(p.rootfs.clone());
    let files = prepare::host_files(store, p).map_err(fail)?;
    let cfg = bundle::config(&Inputs {
        process: &p.process,
        user: &p.user,
        run: &p.run,
        rootfs: &p.rootfs,
        hostname: &p.hostname,
        rootless,
        tty_gid: !rootless || mapping.has_gid(5),
        files,
    });
    prepare::write_bundle(&p.files.bundle(), &cfg).map_err(fail)?;
    let runc = Runc {
        root: runc_root,
        log: p.files.runc_log(),
    };
    runc.delete(&c.id); // a leftover of a run whose monitor and watchdog both died
    cleanup.runc = Some((runc.clone(), c.id.clone()));
    let log = Arc::new(
        LogWriter::open(&p.files.log())
            .map_err(|e| fail(format!("opening {}: {e}", p.files.log().display())))?,
    );
    cleanup.watchdog = Some(spawn_watchdog(root, &c.id)?);
    let (pid, outputs) = create_and_start(p, &runc, &log, attach, cleanup)?;
    let watchdog = cleanup
        .watchdog
        .take()
        .ok_or_else(|| fail("the watchdog is gone"))?;
    let st = State {
        status: Status::Running,
        pid,
        pid_start: state::start_time(pid).unwrap_or(0),
        monitor_pid: std::process::id() as i32,
        monitor_start: state::start_time(std::process::id() as i32).unwrap_or(0),
        watchdog_pid: watchdog.id() as i32,
        watchdog_start: state::start_time(watchdog.id() as i32).unwrap_or(0),
        started_at: now_rfc3339(),
        stop_signal: p.process.stop_signal,
        runc_root: runc.root.clone(),
        ..Default::default()
    };
    st.save(&p.files).map_err(fail)?;
    forward_signals(signals, pid, outputs.master.clone())?;
    Ok(Running {
        runc,
        pid,
        outputs: outputs.threads,
        watchdog: Some(watchdog),
        mounted: cleanup.mounted.take(),
    })
}

/// Signals the monitor (and an attached client, to the monitor) passes on to the
/// container's first process.
pub const FORWARDED: [libc::c_int; 7] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

struct Outputs {
    threads: Vec<std::thread::JoinHandle<()>>,
    /// The terminal's master (`-t`), for resizes.
    master: Option<Arc<OwnedFd>>,
}

/// The watchdog: waits on a pipe from us; if we die without saying "done", it kills the
/// container, unmounts and records the exit (see [`super::watchdog`]).
fn spawn_watchdog(root: &Path, id: &str) -> Result<Child, Failure> {
    let exe = std::env::current_exe().map_err(|e| fail(format!("finding our own binary: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--root").arg(root).arg("__watchdog").arg(id);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    sys::with_default_signals(&mut cmd);
    sys::in_new_session(&mut cmd);
    cmd.spawn()
        .map_err(|e| fail(format!("cannot start the watchdog: {e}")))
}

fn create_and_start(
    p: &Prepared,
    runc: &Runc,
    log: &Arc<LogWriter>,
    attach: bool,
    cleanup: &mut Cleanup,
) -> Result<(i32, Outputs), Failure> {
    let c = &p.container;
    let _ = std::fs::remove_file(&runc.log);
    let _ = std::fs::remove_file(p.files.pid_file());
    let console = if p.run.tty {
        Some(ConsoleSocket::listen(&std::env::temp_dir()).map_err(fail)?)
    } else {
        None
    };
    let mut cmd = runc.create(
        &c.id,
        &p.files.bundle(),
        &p.files.pid_file(),
        console.as_ref().map(|s| s.path.as_path()),
    );
    let mut pipes = Vec::new();
    if console.is_some() {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    } else {
        cmd.stdin(if p.run.interactive && attach {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
        for stream in [Stream::Stdout, Stream::Stderr] {
            let (r, w) = sys::pipe().map_err(|e| fail(format!("making a pipe: {e}")))?;
            match stream {
                Stream::Stdout => cmd.stdout(Stdio::from(w)),
                Stream::Stderr => cmd.stderr(Stdio::from(w)),
            };
            pipes.push((r, stream));
        }
    }
    sys::with_default_signals(&mut cmd);
    let status = cmd
        .status()
        .map_err(|e| fail(format!("cannot run {}: {e}", runc::binary().display())))?;
    // The write ends went to runc and, through it, to the container; ours are closed.
    drop(cmd);
    if !status.success() {
        let msg =
            runc::last_error(&runc.log).unwrap_or_else(|| format!("runc create failed ({status})"));
        let short = runc::short_error(&msg);
        return Err(Failure {
            code: runc::start_failure_code(short),
            message: format!("cannot start container {}: {short}", c.name),
        });
    }
    let pid: i32 = std::fs::read_to_string(p.files.pid_file())
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| {
            fail(format!(
                "runc wrote no pid to {}",
                p.files.pid_file().display()
            ))
        })?;
    cleanup.pid = pid;
    let mut out = Outputs {
        threads: Vec::new(),
        master: None,
    };
    let spawn_err = |e: std::io::Error| fail(format!("cannot start a thread: {e}"));
    if let Some(sock) = console {
        let master = sock.master().map_err(fail)?;
        if attach {
            relay::copy_size(&master);
        }
        let reader = master.try_clone().map_err(|e| fail(format!("dup: {e}")))?;
        out.threads.push(
            relay::copy_out(reader, Stream::Stdout, Arc::clone(log), attach).map_err(spawn_err)?,
        );
        if attach && p.run.interactive {
            let writer = master.try_clone().map_err(|e| fail(format!("dup: {e}")))?;
            // Not joined: it ends with our stdin, or with us.
            drop(relay::copy_in(writer).map_err(spawn_err)?);
        }
        out.master = Some(Arc::new(master));
    } else {
        for (r, stream) in pipes {
            out.threads
                .push(relay::copy_out(r, stream, Arc::clone(log), attach).map_err(spawn_err)?);
        }
    }
    if let Err(e) = runc.run(&["start", &c.id]) {
        return Err(fail(format!("cannot start container {}: {e}", c.name)));
    }
    Ok((pid, out))
}

/// A thread passing our termination signals on to `pid`, and terminal resizes on to the
/// container's terminal.
fn forward_signals(
    signals: sys::BlockedSignals,
    pid: i32,
    master: Option<Arc<OwnedFd>>,
) -> Result<(), Failure> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while let Ok(sig) = signals.wait() {
                if sig == libc::SIGWINCH {
                    if let Some(m) = &master {
                        relay::copy_size(m);
                    }
                    continue;
                }
                if let Err(e) = sys::kill(pid, sig) {
                    log::debug!("forwarding signal {sig} to {pid}: {e}");
                }
            }
        })
        .map(drop)
        .map_err(|e| fail(format!("cannot start a thread: {e}")))
}

/// Reap children until `pid` (the container's first process, ours as subreaper) ends:
/// its exit code (128 + signal when killed).
fn wait_for(pid: i32) -> i32 {
    loop {
        match sys::wait_any() {
            Ok(Some((p, code))) if p == pid => return code,
            Ok(Some(_)) => {}
            Ok(None) => return 255,
            Err(e) => {
                log::error!("waiting for the container: {e}");
                return 255;
            }
        }
    }
}

/// After the exit: runc's state, the mount, the state file, the watchdog, `--rm`.
fn finish(store: &Store, p: &Prepared, r: &mut Running, code: i32) {
    r.runc.delete(&p.container.id);
    if let Some(m) = r.mounted.take()
        && let Err(e) = crate::mount::unmount(&m)
    {
        log::error!("{e}");
    }
    let mut st = State::load(&p.files).unwrap_or_default();
    st.status = Status::Exited;
    st.exit_code = code;
    st.finished_at = now_rfc3339();
    st.pid = 0;
    st.monitor_pid = 0;
    st.watchdog_pid = 0;
    st.error.clear();
    if let Err(e) = st.save(&p.files) {
        log::error!("{e}");
    }
    if let Some(w) = r.watchdog.take() {
        dismiss(w);
    }
    if p.run.auto_remove
        && let Err(e) = store.remove_container(&p.container.id, true)
    {
        log::error!("removing {}: {e}", p.container.name);
    }
}
