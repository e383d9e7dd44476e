//! `layerfs container ...` verbs: create, ls, mount, diff, commit, export, rm, rename,
//! prune, inspect — the filesystem side of `docker container`.

use super::image::json_format;
use super::{CliError, CliResult};
use crate::store::Store;
use crate::store::error::{Error as StoreError, ResultExt};
use crate::store::human::{human_age, now_secs, parse_rfc3339};
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(
    name = "layerfs container",
    about = "Manage containers (writable layers over images)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a writable layer over an image; prints the container ID
    Create {
        image: String,
        #[arg(long)]
        name: Option<String>,
        /// Pull the image first: missing (when not in the store), always, never
        #[arg(long, value_enum, default_value = "missing")]
        pull: super::pull::PullPolicy,
    },
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
    super::parse_and_run::<Cli>("layerfs container", args, |cli| run(root, cli.cmd))
}

fn run(root: Option<PathBuf>, cmd: Cmd) -> CliResult {
    let store = super::open_store(root.clone())?;
    match cmd {
        Cmd::Create { image, name, pull } => {
            super::pull::ensure_image(root.clone(), &image, pull)?;
            let c = store.create_container(&image, name.as_deref())?;
            println!("{}", c.id);
            Ok(())
        }
        Cmd::Ls {
            all: _,
            quiet,
            no_trunc,
            format,
        } => ls(&store, quiet, no_trunc, json_format(&format)?),
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
                match store.remove_container(&n, force) {
                    Ok(_) => println!("{n}"),
                    Err(e) => errs.push(e.into()),
                }
            }
            super::all_or_each(errs)
        }
        Cmd::Rename { old, new } => Ok(store.rename_container(&old, &new)?),
        Cmd::Prune { force: _ } => {
            let removed = store.prune_containers()?;
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

fn ls(store: &Store, quiet: bool, no_trunc: bool, json: bool) -> CliResult {
    let now = now_secs();
    let mut rows = vec![
        ["CONTAINER ID", "IMAGE", "CREATED", "NAMES"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    ];
    for c in store.containers()? {
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
                serde_json::json!({"ID": id, "Image": c.image_ref, "ImageID": c.image.to_string(), "CreatedAt": c.created, "RunningFor": human_age(parse_rfc3339(&c.created), now), "Names": c.name, "UpperDir": store.layout.cache_dir(&c.mount_id).join("diff").display().to_string()})
            );
        } else {
            rows.push(vec![
                id,
                c.image_ref.clone(),
                human_age(parse_rfc3339(&c.created), now),
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
    let v = serde_json::json!([{
        "Id": c.id, "Name": c.name, "Image": c.image.to_string(), "ImageRef": c.image_ref, "Created": c.created,
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
