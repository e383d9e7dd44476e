//! The verbs on a container's run: `stop`, `restart`, `kill`, `wait`, `logs`, `exec`
//! (docker's grammar), over [`crate::runtime::ctl`].

use super::{CliError, CliResult};
use crate::runtime::config::parse_signal;
use crate::runtime::logs::{self, Stream};
use crate::runtime::{ctl, prepare};
use crate::store::Store;
use clap::Parser;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "layerfs stop",
    about = "Stop running containers (StopSignal, then SIGKILL)"
)]
struct StopCli {
    /// Seconds to wait before SIGKILL
    #[arg(short = 't', long = "time", default_value_t = 10)]
    time: u64,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Parser, Debug)]
#[command(name = "layerfs kill", about = "Send a signal to running containers")]
struct KillCli {
    /// Signal name or number
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Parser, Debug)]
#[command(
    name = "layerfs wait",
    about = "Wait for containers to stop; print their exit codes"
)]
struct WaitCli {
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Parser, Debug)]
#[command(name = "layerfs logs", about = "Print a container's output")]
struct LogsCli {
    /// Follow the output until the container exits
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines (or all)
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    container: String,
}

#[derive(Parser, Debug)]
#[command(name = "layerfs exec", about = "Run a command in a running container")]
struct ExecCli {
    #[arg(short, long)]
    interactive: bool,
    #[arg(short, long)]
    tty: bool,
    #[arg(short, long = "env", value_name = "K=V")]
    env: Vec<String>,
    #[arg(short, long)]
    workdir: Option<String>,
    #[arg(short, long)]
    user: Option<String>,
    container: String,
}

/// Dispatch `verb` (stop restart kill wait logs exec).
pub fn main(root: Option<PathBuf>, verb: &str, args: Vec<OsString>) -> i32 {
    let prog = format!("layerfs {verb}");
    match verb {
        "stop" | "restart" => {
            let restart = verb == "restart";
            super::parse_and_run::<StopCli>(&prog, args, |c| stop(root, c, restart))
        }
        "kill" => super::parse_and_run::<KillCli>(&prog, args, |c| kill(root, c)),
        "wait" => super::parse_and_run::<WaitCli>(&prog, args, |c| wait(root, c)),
        "logs" => super::parse_and_run::<LogsCli>(&prog, args, |c| logs_cmd(root, c)),
        _ => {
            let (head, cmd) = super::run::split_after_first_word(
                &args,
                &["-e", "--env", "-w", "--workdir", "-u", "--user"],
            );
            super::parse_and_run::<ExecCli>(&prog, head, |c| exec(root, c, cmd))
        }
    }
}

/// Run `f` on each named container; print the name of each that succeeded.
fn each(
    store: &Store,
    names: &[String],
    f: impl Fn(&crate::store::containers::Container) -> Result<(), String>,
) -> CliResult {
    let mut errs = Vec::new();
    for n in names {
        let r = store
            .container(n)
            .map_err(CliError::from)
            .and_then(|c| f(&c).map_err(CliError::Usage));
        match r {
            Ok(()) => println!("{n}"),
            Err(e) => errs.push(e),
        }
    }
    super::all_or_each(errs)
}

fn stop(root: Option<PathBuf>, c: StopCli, restart: bool) -> CliResult {
    let store = super::open_store(root)?;
    let t = Duration::from_secs(c.time);
    each(&store, &c.containers, |ct| {
        ctl::stop(&store, ct, t)?;
        if restart {
            ctl::start(&store, ct, false).map_err(|f| f.message)?;
        }
        Ok(())
    })
}

fn kill(root: Option<PathBuf>, c: KillCli) -> CliResult {
    let store = super::open_store(root)?;
    let sig = parse_signal(&c.signal)
        .ok_or_else(|| CliError::Usage(format!("invalid signal {:?}", c.signal)))?;
    each(&store, &c.containers, |ct| ctl::kill(&store, ct, sig))
}

fn wait(root: Option<PathBuf>, c: WaitCli) -> CliResult {
    let store = super::open_store(root)?;
    let mut errs = Vec::new();
    for n in &c.containers {
        let r = store
            .container(n)
            .map_err(CliError::from)
            .and_then(|ct| ctl::wait_end(&store, &ct, None).map_err(CliError::Usage));
        match r {
            Ok(st) => println!("{}", st.exit_code),
            Err(e) => errs.push(e),
        }
    }
    super::all_or_each(errs)
}

fn print_lines(lines: &[logs::Line]) {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    for (s, text) in lines {
        let _ = match s {
            Stream::Stdout => out.write_all(text.as_bytes()),
            Stream::Stderr => err.write_all(text.as_bytes()),
        };
    }
    let _ = out.flush();
}

fn logs_cmd(root: Option<PathBuf>, c: LogsCli) -> CliResult {
    let store = super::open_store(root)?;
    let ct = store.container(&c.container)?;
    let tail = match c.tail.as_str() {
        "all" => None,
        n => Some(
            n.parse::<usize>()
                .map_err(|_| CliError::Usage(format!("--tail {n:?}: a number or all")))?,
        ),
    };
    let files = prepare::files_of(&store, &ct);
    let path = files.log();
    let io = |e: std::io::Error| CliError::Usage(format!("reading {}: {e}", path.display()));
    let (lines, mut off) = logs::read(&path, tail).map_err(io)?;
    print_lines(&lines);
    if !c.follow {
        return Ok(());
    }
    loop {
        let running = ctl::state(&store, &ct).map_err(CliError::Usage)?.running();
        let (new, o) = logs::read_from(&path, off).map_err(io)?;
        print_lines(&new);
        off = o;
        if !running {
            // The last words were written before the state said exited.
            let (new, _) = logs::read_from(&path, off).map_err(io)?;
            print_lines(&new);
            return Ok(());
        }
        if new.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn exec(root: Option<PathBuf>, c: ExecCli, cmd: Vec<String>) -> CliResult {
    if cmd.is_empty() {
        return Err(CliError::Usage("exec needs a command to run".into()));
    }
    let stdin = std::io::stdin();
    if c.tty && !crate::sys::isatty(std::os::fd::AsFd::as_fd(&stdin)) {
        return Err(CliError::Status(
            125,
            Some("exec -t needs a terminal on this side (stdin is not one): drop -t".into()),
        ));
    }
    let store = super::open_store(root)?;
    let ct = store.container(&c.container)?;
    let o = ctl::ExecOptions {
        interactive: c.interactive,
        tty: c.tty,
        env: c.env,
        workdir: c.workdir,
        user: c.user,
        args: cmd,
    };
    let (mut command, temp) = ctl::exec_command(&store, &ct, &o)
        .map_err(|f| CliError::Status(f.code, Some(f.message)))?;
    let status = command.status();
    let log = temp.get(1).cloned().unwrap_or_default();
    let code = match status {
        Ok(s) => s.code().unwrap_or(255),
        Err(e) => {
            temp.iter().for_each(|p| drop(std::fs::remove_file(p)));
            return Err(CliError::Status(
                125,
                Some(format!("cannot run runc exec: {e}")),
            ));
        }
    };
    let (code, why) = ctl::exec_code(code, &log);
    temp.iter().for_each(|p| drop(std::fs::remove_file(p)));
    match (code, why) {
        (0, _) => Ok(()),
        (c, Some(m)) => Err(CliError::Status(
            c,
            Some(format!("cannot exec in {}: {m}", ct.name)),
        )),
        (c, None) => Err(CliError::Status(c, None)),
    }
}
