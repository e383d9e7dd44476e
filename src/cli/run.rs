//! `layerfs run` / `create` / `start`: docker's flags turned into a container's run
//! config, the container created (the image pulled if missing) and started, attached
//! (exit status = the container's) or detached (prints the ID). Also the hidden
//! `__monitor` and `__watchdog` entry points of [`crate::runtime`].

use super::pull::PullPolicy;
use super::{CliError, CliResult};
use crate::runtime::config::{self, Network, RunConfig, Volume};
use crate::runtime::{Failure, ctl, prepare};
use crate::store::Store;
use crate::store::containers::Container;
use crate::sys;
use clap::Parser;
use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::PathBuf;

/// The flags `run` and `create` share (docker's).
#[derive(clap::Args, Debug, Clone)]
pub struct CreateFlags {
    /// Keep stdin open (attached runs read it)
    #[arg(short, long)]
    interactive: bool,
    /// Give the container a terminal
    #[arg(short, long)]
    tty: bool,
    #[arg(long)]
    name: Option<String>,
    /// Set an environment variable (K=V; a bare K takes this shell's value)
    #[arg(short, long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Read environment variables from a file (K=V lines)
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// USER[:GROUP], names or numbers
    #[arg(short, long)]
    user: Option<String>,
    /// Bind mount HOST:CONTAINER[:ro]
    #[arg(short, long = "volume", value_name = "HOST:CTR[:ro]")]
    volume: Vec<String>,
    /// host (the host's network) or none (only loopback)
    #[arg(long, default_value = "host")]
    network: String,
    #[arg(long)]
    hostname: Option<String>,
    /// Replace the image's entrypoint (and drop its Cmd)
    #[arg(long)]
    entrypoint: Option<String>,
    /// Pull the image first: missing, always, never
    #[arg(long, value_enum, default_value = "missing")]
    pull: PullPolicy,
    /// Mount the container's root filesystem read-only
    #[arg(long)]
    read_only: bool,
    /// Not supported (no port publishing: use --network host)
    #[arg(short, long = "publish", value_name = "PORTS")]
    publish: Vec<String>,
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    image: String,
}

#[derive(Parser, Debug)]
#[command(
    name = "layerfs run",
    about = "Create a container from an image and run a command in it"
)]
struct RunCli {
    /// Run in the background and print the container ID
    #[arg(short, long)]
    detach: bool,
    #[command(flatten)]
    flags: CreateFlags,
}

#[derive(Parser, Debug)]
#[command(
    name = "layerfs create",
    about = "Create a container (run it later with start)"
)]
struct CreateCli {
    #[command(flatten)]
    flags: CreateFlags,
}

#[derive(Parser, Debug)]
#[command(name = "layerfs start", about = "Start stopped containers")]
struct StartCli {
    /// Attach: print the container's output, exit with its status
    #[arg(short, long)]
    attach: bool,
    /// Attach stdin (with -a)
    #[arg(short, long)]
    interactive: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Options of `run`/`create` that take a value: the image is the first word that is
/// neither an option nor such a value; everything after it is the command.
const VALUE_OPTS: &[&str] = &[
    "--name",
    "-e",
    "--env",
    "--env-file",
    "-w",
    "--workdir",
    "-u",
    "--user",
    "-v",
    "--volume",
    "--network",
    "--hostname",
    "--entrypoint",
    "--pull",
    "-p",
    "--publish",
];

/// Split docker-style `[OPTIONS] WORD [ARGS...]` after WORD (options after it are the
/// command's); `value_opts` are the options that take a separate value.
pub fn split_after_first_word(
    args: &[OsString],
    value_opts: &[&str],
) -> (Vec<OsString>, Vec<String>) {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if a == "--" {
            i += 1;
            break;
        }
        if !a.starts_with('-') || a == "-" {
            i += 1;
            break;
        }
        i += if value_opts.contains(&a.as_ref()) {
            2
        } else {
            1
        };
    }
    let i = i.min(args.len());
    let mut head: Vec<OsString> = args[..i].iter().filter(|a| *a != "--").cloned().collect();
    let tail = args[i..]
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if head.is_empty() {
        head = args.to_vec();
    }
    (head, tail)
}

fn usage(msg: impl Into<String>) -> CliError {
    CliError::Status(125, Some(msg.into()))
}

fn failure(f: Failure) -> CliError {
    CliError::Status(f.code, Some(f.message))
}

/// The run config the flags describe (checked: volumes exist, env files read).
fn run_config(f: &CreateFlags, cmd: Vec<String>) -> Result<RunConfig, CliError> {
    if !f.publish.is_empty() {
        return Err(usage(format!(
            "cannot publish ports ({}): layerfs containers use the host's network (--network host, the default: a server in the container is reachable on the host's ports) or none; port mapping would need slirp4netns or pasta, which layerfs does not use",
            f.publish.join(", ")
        )));
    }
    let network = match f.network.as_str() {
        "host" => Network::Host,
        "none" => Network::None,
        n => {
            return Err(usage(format!(
                "unsupported --network {n:?}: use host or none"
            )));
        }
    };
    let look = |k: &str| std::env::var(k).ok();
    let mut env = Vec::new();
    for p in &f.env_file {
        let text = std::fs::read_to_string(p)
            .map_err(|e| usage(format!("reading the env file {}: {e}", p.display())))?;
        env.extend(config::parse_env_file(&text, &look));
    }
    env.extend(f.env.iter().filter_map(|e| config::env_arg(e, &look)));
    let volumes = f
        .volume
        .iter()
        .map(|v| Volume::parse(v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(usage)?;
    let rc = RunConfig {
        entrypoint: f.entrypoint.clone(),
        cmd,
        env,
        workdir: f.workdir.clone(),
        user: f.user.clone(),
        volumes,
        network,
        hostname: f.hostname.clone(),
        read_only: f.read_only,
        tty: f.tty,
        interactive: f.interactive,
        auto_remove: f.rm,
    };
    prepare::check_volumes(&rc).map_err(usage)?;
    Ok(rc)
}

/// Create the container the flags describe (pulling its image first if the policy says).
fn create(
    root: Option<PathBuf>,
    f: &CreateFlags,
    cmd: Vec<String>,
) -> Result<(Store, Container), CliError> {
    let rc = run_config(f, cmd)?;
    let status = |e: CliError| match e {
        CliError::Status(..) => e,
        e => CliError::Status(125, Some(e.to_string())),
    };
    super::pull::ensure_image(root.clone(), &f.image, f.pull).map_err(status)?;
    let store = super::open_store(root).map_err(status)?;
    let c = store
        .create_container(&f.image, f.name.as_deref())
        .map_err(|e| status(e.into()))?;
    let files = prepare::files_of(&store, &c);
    if let Err(e) = prepare::save_run_config(&files, &rc) {
        let _ = store.remove_container(&c.id, true);
        return Err(usage(e));
    }
    Ok((store, c))
}

/// `layerfs create ...`: prints the new container's ID.
pub fn create_main(root: Option<PathBuf>, args: Vec<OsString>) -> i32 {
    let (mut head, mut cmd) = split_after_first_word(&args, VALUE_OPTS);
    // `container create IMAGE --name N --pull P` (the older form, options after the
    // image): taken as options when nothing else follows them.
    while cmd.len() >= 2 && ["--name", "--pull"].contains(&cmd[0].as_str()) {
        head.extend(cmd.drain(..2).map(OsString::from));
    }
    super::parse_and_run_usage::<CreateCli>("layerfs create", head, 125, |cli| {
        let (_, c) = create(root, &cli.flags, cmd)?;
        println!("{}", c.id);
        Ok(())
    })
}

/// `layerfs run ...`.
pub fn run_main(root: Option<PathBuf>, args: Vec<OsString>) -> i32 {
    let (head, cmd) = split_after_first_word(&args, VALUE_OPTS);
    super::parse_and_run_usage::<RunCli>("layerfs run", head, 125, |cli| {
        let f = &cli.flags;
        let stdin = std::io::stdin();
        if f.interactive && f.tty && !cli.detach && !sys::isatty(stdin.as_fd()) {
            return Err(usage(
                "the input device is not a TTY (drop -t, or run from a terminal)",
            ));
        }
        let (store, c) = create(root, f, cmd)?;
        if cli.detach {
            match ctl::start(&store, &c, false) {
                Ok(_) => {
                    println!("{}", c.id);
                    Ok(())
                }
                Err(e) => Err(removing_if(f.rm, &store, &c, e)),
            }
        } else {
            let code = attached(&store, &c, f.tty && f.interactive)
                .map_err(|e| removing_if(f.rm, &store, &c, e))?;
            exit_with(code)
        }
    })
}

/// A start that failed leaves a `--rm` container removed.
fn removing_if(rm: bool, store: &Store, c: &Container, f: Failure) -> CliError {
    if rm {
        let _ = store.remove_container(&c.id, true);
    }
    failure(f)
}

fn exit_with(code: i32) -> CliResult {
    if code == 0 {
        Ok(())
    } else {
        Err(CliError::Status(code, None))
    }
}

/// Start `c` attached: our terminal raw for an interactive terminal, our termination
/// signals passed to the monitor (and on to the container); the container's exit code.
fn attached(store: &Store, c: &Container, raw: bool) -> Result<i32, Failure> {
    let signals =
        sys::BlockedSignals::block(&crate::runtime::monitor::FORWARDED).map_err(|e| Failure {
            code: 125,
            message: format!("blocking signals: {e}"),
        })?;
    let stdin = std::io::stdin();
    let term = if raw {
        sys::RawTerminal::enter(stdin.as_fd()).ok()
    } else {
        None
    };
    let mut monitor = ctl::start(store, c, true)?;
    let pid = monitor.id() as i32;
    let forward = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while let Ok(sig) = signals.wait() {
                if sys::kill(pid, sig).is_err() {
                    break;
                }
            }
        });
    if let Err(e) = forward {
        log::warn!("signals will not reach the container: {e}");
    }
    let code = match monitor.wait() {
        Ok(s) => s.code().unwrap_or(255),
        Err(_) => 255,
    };
    drop(term);
    Ok(code)
}

/// `layerfs start [-a] [-i] NAME...`.
pub fn start_main(root: Option<PathBuf>, args: Vec<OsString>) -> i32 {
    super::parse_and_run::<StartCli>("layerfs start", args, |cli| {
        let store = super::open_store(root)?;
        if cli.attach {
            if cli.containers.len() != 1 {
                return Err(CliError::Usage("start -a takes one container".into()));
            }
            let c = store.container(&cli.containers[0])?;
            let rc = prepare::load_run_config(&prepare::files_of(&store, &c)).map_err(usage)?;
            let code = attached(&store, &c, rc.tty && cli.interactive).map_err(failure)?;
            return exit_with(code);
        }
        let mut errs = Vec::new();
        for n in &cli.containers {
            let r = store
                .container(n)
                .map_err(CliError::from)
                .and_then(|c| ctl::start(&store, &c, false).map_err(failure));
            match r {
                Ok(_) => println!("{n}"),
                Err(e) => errs.push(e),
            }
        }
        super::all_or_each(errs)
    })
}

/// `layerfs __monitor ID [--attach]` / `__watchdog ID`: the processes behind a run.
pub fn hidden_main(root: Option<PathBuf>, word: &str, args: &[OsString]) -> i32 {
    let Some(root) = root else {
        eprintln!("layerfs: {word} needs --root");
        return 125;
    };
    let Some(id) = args.first().and_then(|a| a.to_str()) else {
        eprintln!("layerfs: {word} needs a container ID");
        return 125;
    };
    let attach = args.iter().any(|a| a == "--attach");
    match word {
        "__monitor" => crate::runtime::monitor::main(root, id, attach),
        _ => crate::runtime::watchdog::main(root, id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &[&str]) -> Vec<OsString> {
        s.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_command_starts_after_the_image() {
        let (h, t) = split_after_first_word(
            &w(&[
                "-it", "--name", "x", "-e", "A=1", "img", "ls", "-l", "--name",
            ]),
            VALUE_OPTS,
        );
        assert_eq!(h, w(&["-it", "--name", "x", "-e", "A=1", "img"]));
        assert_eq!(t, ["ls", "-l", "--name"]);
        let (h, t) = split_after_first_word(&w(&["--rm", "--name=x", "img"]), VALUE_OPTS);
        assert_eq!((h.len(), t.len()), (3, 0));
        let (h, t) = split_after_first_word(&w(&["img", "--", "x"]), VALUE_OPTS);
        assert_eq!(
            (h, t),
            (w(&["img"]), vec!["--".to_string(), "x".to_string()])
        );
    }
}
