//! `layerfs container ...` verbs: create, ls, mount, diff, commit, export, rm, rename,
//! prune, inspect — the filesystem side of `docker container`.

use crate::store::Store;
use crate::store::human::{human_age, now_secs, parse_rfc3339};
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

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

fn run(root: Option<PathBuf>, cmd: Cmd) -> Result<(), String> {
    let store = Store::open(root)?;
    match cmd {
        Cmd::Create { image, name } => {
            let c = store.create_container(&image, name.as_deref())?;
            println!("{}", c.id);
            Ok(())
        }
        Cmd::Ls {
            all: _,
            quiet,
            no_trunc,
            format,
        } => {
            let json = match format.as_deref() {
                None | Some("table") => false,
                Some("json") | Some("{{json .}}") => true,
                Some(o) => return Err(format!("unsupported --format {o:?} (use json or table)")),
            };
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
        Cmd::Mount {
            container,
            mountpoint,
            read_only,
            allow_other,
        } => {
            let c = store.container(&container)?;
            let mut plan = store.container_plan(&c)?;
            if read_only {
                // The upper becomes the top lower: nothing is written.
                if let Some(u) = plan.upper.take() {
                    plan.lowers.insert(0, u);
                }
                plan.work = None;
            }
            let req = crate::mount::MountRequest {
                plan,
                mountpoint: mountpoint.clone(),
                options: crate::mount::MountOptions {
                    read_only,
                    allow_other,
                    fsname: Some(crate::store::containers::container_fsname(&c)),
                    ..Default::default()
                },
                foreground: false,
            };
            crate::mount::run(req).map_err(|e| {
                format!(
                    "cannot mount container {} on {}: {e}",
                    c.name,
                    mountpoint.display()
                )
            })
        }
        Cmd::Inspect { container } => {
            let c = store.container(&container)?;
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
            println!(
                "{}",
                serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
            );
            Ok(())
        }
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
        Cmd::Export { container, output } => {
            let c = store.container(&container)?;
            match output {
                Some(p) => {
                    let name = p
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let tmp =
                        p.with_file_name(format!(".{name}.layerfs-tmp{}", std::process::id()));
                    let f = std::fs::File::create(&tmp)
                        .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
                    let r = store
                        .export_container(&c, std::io::BufWriter::new(f))
                        .and_then(|w| {
                            w.into_inner()
                                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))
                        })
                        .and_then(|f| {
                            f.sync_all()
                                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))
                        })
                        .and_then(|_| {
                            std::fs::rename(&tmp, &p)
                                .map_err(|e| format!("cannot create {}: {e}", p.display()))
                        });
                    if r.is_err() {
                        let _ = std::fs::remove_file(&tmp);
                    }
                    r
                }
                None => {
                    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                        return Err(
                            "refusing to write a tar to a terminal: use -o FILE or redirect stdout"
                                .into(),
                        );
                    }
                    let out = std::io::stdout();
                    let mut w = store.export_container(&c, std::io::BufWriter::new(out.lock()))?;
                    std::io::Write::flush(&mut w).map_err(|e| format!("write failed: {e}"))
                }
            }
        }
        Cmd::Rm { force, containers } => {
            let mut errs = Vec::new();
            for n in containers {
                match store.remove_container(&n, force) {
                    Ok(_) => println!("{n}"),
                    Err(e) => errs.push(e),
                }
            }
            if errs.is_empty() {
                Ok(())
            } else {
                Err(errs.join("\nlayerfs: "))
            }
        }
        Cmd::Rename { old, new } => store.rename_container(&old, &new),
        Cmd::Prune { force: _ } => {
            // Mounted containers are in use: they stay.
            let mut first = true;
            for c in store.containers()? {
                if store.remove_container(&c.id, false).is_ok() {
                    if first {
                        println!("Deleted Containers:");
                        first = false;
                    }
                    println!("{}", c.id);
                }
            }
            Ok(())
        }
    }
}
