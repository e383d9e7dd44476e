//! What `layerfs` commands do to a container's run, talking to its monitor only through
//! the files under the store and through signals: start (spawn the monitor and hear how the
//! start went), wait, stop, kill, exec (runc exec inside the run's namespaces), rm.

use super::Failure;
use super::prepare;
use super::runc::{self, Runc};
use super::state::{self, State};
use super::users::ExecUser;
use crate::mount::READY_FD_ENV;
use crate::store::Store;
use crate::store::containers::Container;
use crate::sys;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn fail(code: i32, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

/// The run state of `c` as it is now.
pub fn state(store: &Store, c: &Container) -> Result<State, String> {
    Ok(State::load(&prepare::files_of(store, c))?.current())
}

/// Start `c`: spawn its monitor (attached: sharing our stdin/stdout/stderr) and wait for
/// word of the start. Returns the monitor, which exits with the container's code.
pub fn start(store: &Store, c: &Container, attach: bool) -> Result<Child, Failure> {
    let st = state(store, c).map_err(|e| fail(125, e))?;
    if st.running() {
        return Err(fail(
            125,
            format!("container {} is already running", c.name),
        ));
    }
    let exe =
        std::env::current_exe().map_err(|e| fail(125, format!("finding our own binary: {e}")))?;
    let (r, w) = sys::pipe().map_err(|e| fail(125, format!("making a pipe: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--root")
        .arg(&store.layout.root)
        .arg("__monitor")
        .arg(&c.id);
    if attach {
        cmd.arg("--attach");
    } else {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    }
    cmd.env(
        READY_FD_ENV,
        std::os::fd::AsRawFd::as_raw_fd(&w).to_string(),
    );
    sys::with_default_signals(&mut cmd);
    sys::spawn_in_new_session_keeping(&mut cmd, w.as_fd());
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(125, format!("cannot start the monitor of {}: {e}", c.name)))?;
    drop(cmd);
    drop(w);
    let mut said = String::new();
    let _ = std::fs::File::from(r).read_to_string(&mut said);
    let line = said.lines().next().unwrap_or_default();
    if line == "OK" {
        return Ok(child);
    }
    let _ = child.wait();
    if let Some(rest) = line.strip_prefix("ERR ") {
        let (code, msg) = rest.split_once(' ').unwrap_or((rest, ""));
        return Err(fail(code.parse().unwrap_or(125), msg));
    }
    Err(fail(
        125,
        format!(
            "the monitor of {} ended before the container started",
            c.name
        ),
    ))
}

/// Wait until process `pid` (which started at `start`) ends, at most `limit`: whether it did.
fn wait_gone(pid: i32, start: u64, limit: Option<Duration>) -> bool {
    if !state::alive(pid, start) {
        return true;
    }
    match sys::pidfd_open(pid) {
        Ok(fd) => {
            sys::wait_readable(fd.as_fd(), limit).unwrap_or(false) || !state::alive(pid, start)
        }
        Err(_) => !state::alive(pid, start),
    }
}

/// Wait until the run of `c` is over (its monitor and watchdog gone), at most `limit`;
/// the state then.
pub fn wait_end(store: &Store, c: &Container, limit: Option<Duration>) -> Result<State, String> {
    let st = State::load(&prepare::files_of(store, c))?;
    let ok = wait_gone(st.monitor_pid, st.monitor_start, limit)
        && wait_gone(st.watchdog_pid, st.watchdog_start, limit);
    let st = state(store, c)?;
    if !ok && st.running() {
        return Err(format!("container {} did not stop", c.name));
    }
    Ok(st)
}

/// Send `sig` to the container's first process.
pub fn kill(store: &Store, c: &Container, sig: i32) -> Result<(), String> {
    let st = state(store, c)?;
    if !st.running() || !state::alive(st.pid, st.pid_start) {
        return Err(format!("container {} is not running", c.name));
    }
    sys::kill(st.pid, sig).map_err(|e| format!("cannot signal container {}: {e}", c.name))
}

/// `stop -t SECS`: the stop signal, then SIGKILL after the timeout; waits for the end.
pub fn stop(store: &Store, c: &Container, timeout: Duration) -> Result<(), String> {
    let st = state(store, c)?;
    if !st.running() {
        return Ok(());
    }
    let sig = if st.stop_signal > 0 {
        st.stop_signal
    } else {
        libc::SIGTERM
    };
    if state::alive(st.pid, st.pid_start) {
        let _ = sys::kill(st.pid, sig);
    }
    if !wait_gone(st.monitor_pid, st.monitor_start, Some(timeout))
        && state::alive(st.pid, st.pid_start)
    {
        let _ = sys::kill(st.pid, libc::SIGKILL);
    }
    wait_end(store, c, Some(Duration::from_secs(30))).map(drop)
}

/// `rm [-f]`: a running container only with force (killed first).
pub fn remove(store: &Store, name: &str, force: bool) -> Result<(), String> {
    let c = store.container(name).map_err(|e| e.to_string())?;
    let st = state(store, &c)?;
    if st.running() {
        if !force {
            return Err(format!(
                "cannot remove container {}: it is running (stop it first, or use rm -f)",
                c.name
            ));
        }
        if state::alive(st.pid, st.pid_start) {
            let _ = sys::kill(st.pid, libc::SIGKILL);
        }
        wait_end(store, &c, Some(Duration::from_secs(30)))?;
        if store.container(&c.id).is_err() {
            return Ok(()); // it had --rm: its monitor removed it
        }
    }
    store
        .remove_container(&c.id, force)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// `exec`'s choices.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub interactive: bool,
    pub tty: bool,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub args: Vec<String>,
}

fn process_json(c: &ExecOptions, env: Vec<String>, cwd: String, u: &ExecUser) -> serde_json::Value {
    let caps = super::bundle::default_caps();
    serde_json::json!({
        "terminal": c.tty,
        "user": {"uid": u.uid, "gid": u.gid, "additionalGids": u.additional_gids},
        "args": c.args,
        "env": env,
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
    })
}

/// A process to run in the running container `c`: the command line (runc exec, entered
/// into the run's namespaces when rootless) and the files to remove after it.
pub fn exec_command(
    store: &Store,
    c: &Container,
    o: &ExecOptions,
) -> Result<(Command, Vec<PathBuf>), Failure> {
    let st = state(store, c).map_err(|e| fail(125, e))?;
    if !st.running() {
        return Err(fail(1, format!("container {} is not running", c.name)));
    }
    let files = prepare::files_of(store, c);
    let rc = prepare::load_run_config(&files).map_err(|e| fail(125, e))?;
    let p = prepare::process_of(store, c, &rc).map_err(|e| fail(125, e))?;
    let mut env = p.env.clone();
    for e in &o.env {
        super::config::set_env(&mut env, e);
    }
    let spec = o.user.clone().unwrap_or(p.user.clone());
    let u = prepare::resolve_user(store, c, &spec).map_err(|e| fail(125, e))?;
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", u.home));
    }
    let cwd = o.workdir.clone().unwrap_or(p.cwd.clone());
    let me = std::process::id();
    let pj = files.dir.join(format!("exec-{me}.json"));
    let log = files.dir.join(format!("exec-{me}.log"));
    let b =
        serde_json::to_vec(&process_json(o, env, cwd, &u)).map_err(|e| fail(125, e.to_string()))?;
    std::fs::write(&pj, b).map_err(|e| fail(125, format!("writing {}: {e}", pj.display())))?;
    let runc = Runc {
        root: st.runc_root.clone(),
        log: log.clone(),
    };
    let mut cmd = if sys::geteuid() == 0 {
        runc.command()
    } else {
        let mut n = Command::new("nsenter");
        n.arg("-t")
            .arg(st.monitor_pid.to_string())
            .args(["-U", "-m", "--preserve-credentials", "--"])
            .arg(runc::binary())
            .args(runc.command().get_args());
        n
    };
    cmd.arg("exec").arg("--process").arg(&pj).arg(&c.id);
    if !o.interactive {
        cmd.stdin(Stdio::null());
    }
    sys::with_default_signals(&mut cmd);
    Ok((cmd, vec![pj, log]))
}

/// runc exec's exit code as docker reports it: the process's own, or 126/127 when it
/// could not be started (runc's error in `log`).
pub fn exec_code(code: i32, log: &Path) -> (i32, Option<String>) {
    if code != 255 {
        return (code, None);
    }
    match runc::last_error(log) {
        Some(m) => {
            let short = runc::short_error(&m).to_string();
            (runc::start_failure_code(&short), Some(short))
        }
        None => (code, None),
    }
}
