//! `layerfs container ...` verbs: create, ls, mount, diff, commit, export, rm, rename,
//! prune, inspect — the filesystem side of `docker container`.

use super::image::json_format;
use super::{CliError, CliResult};
use crate::runtime::state::{State, Status};
use crate::runtime::{ctl, prepare};
use crate::store::Store;
use crate::store::containers::Container;
use crate::store::error::{Error as StoreError, ResultExt};
use crate::store::human::{human_age, now_secs, parse_rfc3339};
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(
    name = "layerfs container",
    about = "Manage containers (writable layers over images)",
    after_help = "Also: create, run, start, stop, restart, kill, exec, logs, wait \
(see `layerfs run --help`, `layerfs exec --help`, ...)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// List containers
    #[command(alias = "list", alias = "ps")]
    Ls {
        #[arg(short, long)]
        all: bool,
        #[arg(short, long)]
        quiet: bool,
        #[arg(long)]
        no_trunc: bool,
        #[arg(long)]
        format: Option<String>,
    },
    /// Mount a container's merged rootfs (writes go to its upper dir)
    Mount {
        container: String,
        mountpoint: PathBuf,
        #[arg(long)]
        read_only: bool,
        #[arg(long)]
        allow_other: bool,
    },
    /// Print the mount plan (lowers, upper, work) and record as JSON
    Inspect { container: String },
    /// List changed files: A (added), C (changed), D (deleted)
    Diff { container: String },
    /// Make a new image from the container's changes; prints the image ID
    Commit {
        container: String,
        reference: Option<String>,
        #[arg(short, long)]
        message: Option<String>,
        #[arg(short, long)]
        author: Option<String>,
        #[arg(short, long)]
        change: Vec<String>,
    },
    /// Write the merged filesystem as a tar (stdout unless -o)
    Export {
        container: String,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Remove containers and their writable layers
    #[command(alias = "remove")]
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Rename a container
    Rename { old: String, new: String },
    /// Remove every container
    Prune {
        #[arg(short, long)]
        force: bool,
    },
}

pub fn main(root: Option<PathBuf>, args: Vec<OsString>) -> i32 {
    let word = args
        .first()
        .and_then(|a| a.to_str())
        .unwrap_or_default()
        .to_string();
    let rest = args.get(1..).map(<[OsString]>::to_vec).unwrap_or_default();
    match word.as_str() {
        "run" => return super::run::run_main(root, rest),
        "create" => return super::run::create_main(root, rest),
        "start" => return super::run::start_main(root, rest),
        "stop" | "restart" | "kill" | "exec" | "logs" | "wait" => {
            return super::runctl::main(root, &word, rest);
        }
        _ => {}
    }
    super::parse_and_run::<Cli>("layerfs container", args, |cli| run(root, cli.cmd))
}

fn run(root: Option<PathBuf>, cmd: Cmd) -> CliResult {
    let store = super::open_store(root.clone())?;
    match cmd {
        Cmd::Ls {
            all,
            quiet,
            no_trunc,
            format,
        } => ls(&store, all, quiet, no_trunc, json_format(&format)?),
        Cmd::Mount {
            container,
            mountpoint,
            read_only,
            allow_other,
        } => {
            let c = store.container(&container)?;
            let plan = store.container_mount_plan(&c, read_only)?;
            let what = format!("container {}", c.name);
            super::run_mount(plan, &mountpoint, allow_other, &what)
        }
        Cmd::Inspect { container } => inspect(&store, &container),
        Cmd::Diff { container } => {
            let c = store.container(&container)?;
            for ch in store.container_diff(&c)? {
                println!("{} {}", ch.kind, ch.path);
            }
            Ok(())
        }
        Cmd::Commit {
            container,
            reference,
            message,
            author,
            change,
        } => {
            let id = store.commit_container(
                &container,
                reference.as_deref(),
                message.as_deref(),
                author.as_deref(),
                &change,
            )?;
            println!("{id}");
            Ok(())
        }
        Cmd::Export { container, output } => export(&store, &container, output.as_deref()),
        Cmd::Rm { force, containers } => {
            let mut errs = Vec::new();
            for n in containers {
                match ctl::remove(&store, &n, force) {
                    Ok(()) => println!("{n}"),
                    Err(e) => errs.push(CliError::Usage(e)),
                }
            }
            super::all_or_each(errs)
        }
        Cmd::Rename { old, new } => Ok(store.rename_container(&old, &new)?),
        Cmd::Prune { force: _ } => {
            // Running containers are in use: they stay, as mounted ones do.
            let mut removed = Vec::new();
            for c in store.prune_candidates()? {
                if !ctl::state(&store, &c).map_err(CliError::Usage)?.running() {
                    removed.push(store.remove_container(&c.id, false)?);
                }
            }
            if !removed.is_empty() {
                println!("Deleted Containers:");
            }
            for c in removed {
                println!("{}", c.id);
            }
            Ok(())
        }
    }
}

/// What `ps` shows of a container's run: STATUS as docker words it, and COMMAND.
fn run_columns(
    store: &Store,
    c: &Container,
    now: i64,
) -> Result<(State, String, String), CliError> {
    let st = ctl::state(store, c).map_err(CliError::Usage)?;
    let age = |t: &str| human_age(parse_rfc3339(t), now);
    let status = match st.status {
        Status::Created => "Created".to_string(),
        Status::Running => format!("Up {}", age(&st.started_at).trim_end_matches(" ago")),
        Status::Exited => format!("Exited ({}) {}", st.exit_code, age(&st.finished_at)),
    };
    let files = prepare::files_of(store, c);
    let command = prepare::load_run_config(&files)
        .and_then(|rc| prepare::process_of(store, c, &rc))
        .map(|p| p.args.join(" "))
        .unwrap_or_default();
    Ok((st, status, command))
}

fn ls(store: &Store, all: bool, quiet: bool, no_trunc: bool, json: bool) -> CliResult {
    let now = now_secs();
    let mut rows = vec![
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>(),
    ];
    for c in store.containers()? {
        let (st, status, command) = run_columns(store, &c, now)?;
        if !all && !st.running() {
            continue;
        }
        let id = if no_trunc {
            c.id.clone()
        } else {
            c.id[..12].to_string()
        };
        if quiet {
            println!("{id}");
        } else if json {
            println!(
                "{}",
                serde_json::json!({"ID": id, "Image": c.image_ref, "ImageID": c.image.to_string(), "Command": command, "CreatedAt": c.created, "RunningFor": human_age(parse_rfc3339(&c.created), now), "State": st.status, "Status": status, "ExitCode": st.exit_code, "Ports": "", "Names": c.name, "UpperDir": store.layout.cache_dir(&c.mount_id).join("diff").display().to_string()})
            );
        } else {
            let shown = if !no_trunc && command.chars().count() > 20 {
                format!("{}…", command.chars().take(19).collect::<String>())
            } else {
                command
            };
            rows.push(vec![
                id,
                c.image_ref.clone(),
                format!("\"{shown}\""),
                human_age(parse_rfc3339(&c.created), now),
                status,
                String::new(),
                c.name.clone(),
            ]);
        }
    }
    if !quiet && !json {
        super::image::print_table(&rows);
    }
    Ok(())
}

fn inspect(store: &Store, container: &str) -> CliResult {
    let c = store.container(container)?;
    let plan = store.container_plan(&c)?;
    let st = ctl::state(store, &c).map_err(CliError::Usage)?;
    let files = prepare::files_of(store, &c);
    let v = serde_json::json!([{
        "Id": c.id, "Name": c.name, "Image": c.image.to_string(), "ImageRef": c.image_ref, "Created": c.created,
        "State": {
            "Status": st.status, "Running": st.running(), "Pid": st.pid, "ExitCode": st.exit_code,
            "Error": st.error, "StartedAt": st.started_at, "FinishedAt": st.finished_at,
            "MonitorPid": st.monitor_pid,
        },
        "LogPath": files.log().display().to_string(),
        "GraphDriver": {"Name": "overlay2", "Data": {
            "LowerDir": plan.lowers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"),
            "UpperDir": plan.upper.map(|p| p.display().to_string()),
            "WorkDir": plan.work.map(|p| p.display().to_string()),
            "MergedDir": store.layout.cache_dir(&c.mount_id).join("merged").display().to_string(),
        }}
    }]);
    println!("{v:#}");
    Ok(())
}

/// `export [-o FILE]`: to a temporary name beside FILE, renamed over it when complete; else
/// to stdout, unless that is a terminal.
fn export(store: &Store, container: &str, output: Option<&Path>) -> CliResult {
    let c = store.container(container)?;
    let Some(p) = output else {
        if std::io::stdout().is_terminal() {
            return Err(CliError::Usage(
                "refusing to write a tar to a terminal: use -o FILE or redirect stdout".into(),
            ));
        }
        let out = std::io::stdout();
        let mut w = store.export_container(&c, BufWriter::new(out.lock()))?;
        return Ok(w.flush().io("writing", "standard output")?);
    };
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = p.with_file_name(format!(".{name}.layerfs-tmp{}", std::process::id()));
    let write = || -> Result<(), StoreError> {
        let f = std::fs::File::create(&tmp).io("creating", &tmp)?;
        let w = store.export_container(&c, BufWriter::new(f))?;
        let f = w
            .into_inner()
            .map_err(|e| StoreError::io("writing", &tmp, e.into_error()))?;
        f.sync_all().io("writing", &tmp)?;
        std::fs::rename(&tmp, p).io("creating", p)
    };
    let r = write();
    if r.is_err() {
        // Cleanup after the failure, which is the error reported.
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(r?)
}
