//! `layerfs image ...` verbs (also `layerfs images` and `layerfs rmi`): parse with clap,
//! call the store, print docker-shaped tables or JSON.

use crate::digest::Digest;
use crate::store::Store;
use crate::store::human::{human_age, human_size, now_secs};
use crate::store::images::Repositories;
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "layerfs image", about = "Manage images in the layerfs store")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Load images from a docker-archive, oci-archive or OCI layout dir (stdin if no -i)
    Load {
        #[arg(short, long)]
        input: Option<PathBuf>,
        /// Print only the image IDs
        #[arg(short, long)]
        quiet: bool,
    },
    /// Save images to a docker-archive (default), oci-archive or OCI layout dir
    Save {
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[arg(long, default_value = "docker-archive")]
        format: String,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// List images
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        all: bool,
        #[arg(short, long)]
        quiet: bool,
        #[arg(long)]
        digests: bool,
        #[arg(long)]
        no_trunc: bool,
        /// `json` (one object per line) or `table`
        #[arg(long)]
        format: Option<String>,
        /// Only images of this repository (optionally :tag)
        reference: Option<String>,
    },
    /// Show image details as a JSON array
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Show the history of an image
    History {
        image: String,
        #[arg(long)]
        no_trunc: bool,
        #[arg(short, long)]
        quiet: bool,
        #[arg(long)]
        format: Option<String>,
    },
    /// Add a name to an image
    Tag { source: String, target: String },
    /// Untag and delete images
    #[command(alias = "remove", alias = "rmi")]
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Delete dangling images (-a: every image no container uses)
    Prune {
        #[arg(short, long)]
        all: bool,
        #[arg(short, long)]
        force: bool,
    },
    /// Make a one-layer image from a rootfs tarball (FILE or - for stdin)
    Import {
        file: PathBuf,
        reference: Option<String>,
        /// Dockerfile-like change: CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE
        #[arg(short, long)]
        change: Vec<String>,
        #[arg(short, long)]
        message: Option<String>,
    },
    /// Mount an image's rootfs (read-only unless --rw, whose writes are thrown away)
    Mount {
        image: String,
        mountpoint: PathBuf,
        #[arg(long)]
        rw: bool,
        #[arg(long)]
        allow_other: bool,
    },
    /// Print the layer chain: diffID, chainID, size and the layer directory
    Layers {
        image: String,
        #[arg(long)]
        format: Option<String>,
    },
}

/// Print rows as docker's tabwriter does (min width 10, padding 3).
pub fn print_table(rows: &[Vec<String>]) {
    let n = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut w = vec![0usize; n];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max((c.chars().count() + 3).max(10));
        }
    }
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(c);
                line.push_str(&" ".repeat(w[i] - c.chars().count()));
            }
        }
        println!("{}", line.trim_end());
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

fn json_format(f: &Option<String>) -> Result<bool, String> {
    match f.as_deref() {
        None | Some("table") => Ok(false),
        Some("json") | Some("{{json .}}") => Ok(true),
        Some(o) => Err(format!("unsupported --format {o:?} (use json or table)")),
    }
}

pub fn main(root: Option<PathBuf>, args: Vec<OsString>) -> i32 {
    super::parse_and_run::<Cli>("layerfs image", args, |cli| run(root, cli.cmd))
}

fn run(root: Option<PathBuf>, cmd: Cmd) -> Result<(), String> {
    let store = Store::open(root)?;
    match cmd {
        Cmd::Load { input, quiet } => {
            let loaded = store.load(input.as_deref())?;
            for l in loaded {
                for w in &l.warnings {
                    eprintln!("layerfs: warning: {w}");
                }
                if quiet {
                    println!("{}", l.id);
                } else if l.tags.is_empty() {
                    println!("Loaded image ID: {}", l.id);
                } else {
                    for t in &l.tags {
                        println!("Loaded image: {t}");
                    }
                }
            }
            Ok(())
        }
        Cmd::Save {
            output,
            format,
            images,
        } => {
            let fmt = crate::store::save::Format::parse(&format)?;
            if output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                return Err(
                    "refusing to write an archive to a terminal: use -o FILE or redirect stdout"
                        .into(),
                );
            }
            store.save(&images, output.as_deref(), fmt)
        }
        Cmd::Ls {
            all: _,
            quiet,
            digests,
            no_trunc,
            format,
            reference,
        } => ls(
            &store,
            quiet,
            digests,
            no_trunc,
            json_format(&format)?,
            reference.as_deref(),
        ),
        Cmd::Inspect { images } => inspect(&store, &images),
        Cmd::History {
            image,
            no_trunc,
            quiet,
            format,
        } => history(&store, &image, no_trunc, quiet, json_format(&format)?),
        Cmd::Tag { source, target } => store.tag(&source, &target),
        Cmd::Rm { force, images } => {
            for l in store.remove_images(&images, force)? {
                println!("{l}");
            }
            Ok(())
        }
        Cmd::Prune { all, force: _ } => {
            let (lines, bytes) = store.prune_images(all)?;
            if !lines.is_empty() {
                println!("Deleted Images:");
                for l in lines {
                    println!("{l}");
                }
                println!();
            }
            println!("Total reclaimed space: {}", human_size(bytes));
            Ok(())
        }
        Cmd::Import {
            file,
            reference,
            change,
            message,
        } => {
            let id = store.import(
                Some(&file),
                reference.as_deref(),
                &change,
                message.as_deref(),
            )?;
            println!("{id}");
            Ok(())
        }
        Cmd::Mount {
            image,
            mountpoint,
            rw,
            allow_other,
        } => {
            let repos = Repositories::load(&store.layout)?;
            let id = store.resolve(&image, &repos)?;
            let lowers = store.image_lowers(&id)?;
            let (upper, work) = if rw {
                let base = std::env::temp_dir().join(format!(
                    "layerfs-rw-{}",
                    crate::store::layout::random_hex(6)
                ));
                for d in ["upper", "work"] {
                    std::fs::create_dir_all(base.join(d))
                        .map_err(|e| format!("cannot create {}: {e}", base.join(d).display()))?;
                }
                eprintln!(
                    "layerfs: writes go to the throwaway dir {} (removed at unmount)",
                    base.join("upper").display()
                );
                (Some(base.join("upper")), Some(base.join("work")))
            } else {
                (None, None)
            };
            let throwaway = upper.as_ref().and_then(|u| u.parent()).map(PathBuf::from);
            let req = crate::mount::MountRequest {
                plan: crate::mount::MountPlan {
                    lowers,
                    upper,
                    work,
                },
                mountpoint: mountpoint.clone(),
                options: crate::mount::MountOptions {
                    read_only: !rw,
                    allow_other,
                    fsname: Some(format!("layerfs:{}", id.short())),
                    remove_on_unmount: throwaway,
                    ..Default::default()
                },
                foreground: false,
            };
            crate::mount::run(req)
                .map_err(|e| format!("cannot mount {image} on {}: {e}", mountpoint.display()))
        }
        Cmd::Layers { image, format } => layers(&store, &image, json_format(&format)?),
    }
}

fn ls(
    store: &Store,
    quiet: bool,
    digests: bool,
    no_trunc: bool,
    json: bool,
    filter: Option<&str>,
) -> Result<(), String> {
    let repos = Repositories::load(&store.layout)?;
    let now = now_secs();
    let mut imgs = Vec::new();
    for id in store.image_ids()? {
        imgs.push(store.image(&id, &repos)?);
    }
    imgs.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    let mut rows = vec![];
    let mut header = vec!["REPOSITORY", "TAG"];
    if digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    rows.push(header.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let mut seen = std::collections::BTreeSet::new();
    for img in &imgs {
        let idstr = if no_trunc {
            img.id.to_string()
        } else {
            img.id.short().to_string()
        };
        let mut entries: Vec<(String, String)> = img
            .tags
            .iter()
            .map(|r| (r.name.clone(), r.tag.clone()))
            .collect();
        if entries.is_empty() {
            entries.push(("<none>".into(), "<none>".into()));
        }
        for (repo, tag) in entries {
            if let Some(f) = filter {
                let (fr, ft) = match f.rsplit_once(':') {
                    Some((r, t)) if !t.contains('/') => (r, Some(t)),
                    _ => (f, None),
                };
                if repo != fr || ft.is_some_and(|t| t != tag) {
                    continue;
                }
            }
            let digest = img
                .digests
                .iter()
                .find_map(|d| d.strip_prefix(&format!("{repo}@")))
                .unwrap_or("<none>")
                .to_string();
            if quiet {
                if seen.insert(idstr.clone()) {
                    println!("{idstr}");
                }
                continue;
            }
            if json {
                let v = serde_json::json!({
                    "Containers": "N/A",
                    "CreatedAt": img.created_str(),
                    "CreatedSince": human_age(img.created, now),
                    "Digest": digest,
                    "ID": idstr,
                    "Repository": repo,
                    "SharedSize": "N/A",
                    "Size": human_size(img.size),
                    "Tag": tag,
                    "UniqueSize": "N/A",
                    "VirtualSize": human_size(img.size),
                });
                println!("{v}");
                continue;
            }
            let mut r = vec![repo, tag];
            if digests {
                r.push(digest);
            }
            r.extend([
                idstr.clone(),
                human_age(img.created, now),
                human_size(img.size),
            ]);
            rows.push(r);
        }
    }
    if !quiet && !json {
        print_table(&rows);
    }
    Ok(())
}

fn inspect(store: &Store, names: &[String]) -> Result<(), String> {
    let repos = Repositories::load(&store.layout)?;
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for n in names {
        let img = match store
            .resolve(n, &repos)
            .and_then(|id| store.image(&id, &repos))
        {
            Ok(i) => i,
            Err(e) => {
                errs.push(e);
                continue;
            }
        };
        let layers = store.layers_of(&img.diff_ids)?;
        let dirs: Vec<String> = layers
            .iter()
            .rev()
            .map(|l| l.diff_dir.display().to_string())
            .collect();
        let c = &img.config;
        let md = store.layout.image_metadata(&img.id);
        let parent = std::fs::read_to_string(md.join("parent")).unwrap_or_default();
        let last = std::fs::read_to_string(md.join("lastUpdated")).unwrap_or_default();
        out.push(serde_json::json!({
            "Id": img.id.to_string(),
            "RepoTags": img.tags.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            "RepoDigests": img.digests,
            "Parent": parent.trim(),
            "Comment": c.get("comment").cloned().unwrap_or_else(|| "".into()),
            "Created": c.get("created").cloned().unwrap_or_else(|| "".into()),
            "DockerVersion": c.get("docker_version").cloned().unwrap_or_else(|| "".into()),
            "Author": c.get("author").cloned().unwrap_or_else(|| "".into()),
            "Config": c.get("config").cloned().unwrap_or(serde_json::Value::Null),
            "Architecture": c.get("architecture").cloned().unwrap_or_else(|| "".into()),
            "Variant": c.get("variant").cloned(),
            "Os": c.get("os").cloned().unwrap_or_else(|| "".into()),
            "Size": img.size,
            "GraphDriver": {
                "Name": "overlay2",
                "Data": {
                    "LowerDir": dirs.get(1..).map(|d| d.join(":")).unwrap_or_default(),
                    "UpperDir": dirs.first().cloned().unwrap_or_default(),
                    "LayerDirs": dirs,
                }
            },
            "RootFS": {
                "Type": "layers",
                "Layers": img.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                "ChainIDs": img.chain_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            },
            "Metadata": {"LastTagTime": last.trim()},
        }));
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
    );
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("\nlayerfs: "))
    }
}

fn history(
    store: &Store,
    name: &str,
    no_trunc: bool,
    quiet: bool,
    json: bool,
) -> Result<(), String> {
    let repos = Repositories::load(&store.layout)?;
    let id = store.resolve(name, &repos)?;
    let img = store.image(&id, &repos)?;
    let layers = store.layers_of(&img.diff_ids)?;
    let now = now_secs();
    let hist: Vec<serde_json::Value> = img
        .config
        .get("history")
        .and_then(|h| h.as_array())
        .cloned()
        .unwrap_or_default();
    // (created, created_by, size, comment), bottom first.
    let mut entries: Vec<(Option<i64>, String, u64, String)> = Vec::new();
    let mut li = 0;
    if hist.is_empty() {
        for l in &layers {
            entries.push((img.created, String::new(), l.size, String::new()));
        }
    }
    for h in &hist {
        let empty = h
            .get("empty_layer")
            .and_then(|e| e.as_bool())
            .unwrap_or(false);
        let size = if empty {
            0
        } else {
            let s = layers.get(li).map(|l| l.size).unwrap_or(0);
            li += 1;
            s
        };
        let created = h
            .get("created")
            .and_then(|c| c.as_str())
            .and_then(crate::store::human::parse_rfc3339);
        let by = h
            .get("created_by")
            .and_then(|c| c.as_str())
            .unwrap_or("")
            .to_string();
        let comment = h
            .get("comment")
            .and_then(|c| c.as_str())
            .unwrap_or("")
            .to_string();
        entries.push((created, by, size, comment));
    }
    entries.reverse();
    let mut rows = vec![
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    ];
    for (i, (created, by, size, comment)) in entries.into_iter().enumerate() {
        let image = if i == 0 {
            if no_trunc {
                id.to_string()
            } else {
                id.short().to_string()
            }
        } else {
            "<missing>".to_string()
        };
        if quiet {
            println!("{image}");
            continue;
        }
        if json {
            println!(
                "{}",
                serde_json::json!({"ID": image, "CreatedSince": human_age(created, now), "CreatedBy": by, "Size": human_size(size), "Comment": comment})
            );
            continue;
        }
        let by = if no_trunc { by } else { truncate(&by, 45) };
        rows.push(vec![
            image,
            human_age(created, now),
            by,
            human_size(size),
            comment,
        ]);
    }
    if !quiet && !json {
        print_table(&rows);
    }
    Ok(())
}

fn layers(store: &Store, name: &str, json: bool) -> Result<(), String> {
    let repos = Repositories::load(&store.layout)?;
    let id: Digest = store.resolve(name, &repos)?;
    let img = store.image(&id, &repos)?;
    let layers = store.layers_of(&img.diff_ids)?;
    let mut rows = vec![
        ["LAYER", "DIFF ID", "CHAIN ID", "SIZE", "DIR"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    ];
    for (i, l) in layers.iter().enumerate() {
        if json {
            println!(
                "{}",
                serde_json::json!({"Index": i + 1, "DiffID": l.diff_id.to_string(), "ChainID": l.chain_id.to_string(), "Size": l.size, "CacheID": l.cache_id, "Dir": l.diff_dir.display().to_string()})
            );
        } else {
            rows.push(vec![
                (i + 1).to_string(),
                l.diff_id.to_string(),
                l.chain_id.to_string(),
                human_size(l.size),
                l.diff_dir.display().to_string(),
            ]);
        }
    }
    if !json {
        print_table(&rows);
    }
    Ok(())
}
