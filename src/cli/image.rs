//! `layerfs image ...` verbs (also `layerfs images` and `layerfs rmi`): parse with clap,
//! call the store, print docker-shaped tables or JSON.

use super::{CliError, CliResult};
use crate::digest::Digest;
use crate::store::Store;
use crate::store::human::{human_age, human_size, now_secs, parse_rfc3339};
use crate::store::images::{Image, Repositories};
use crate::store::save::{Format, SaveTo};
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

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
        /// Pull the image first: missing (when not in the store), always, never
        #[arg(long, value_enum, default_value = "missing")]
        pull: super::pull::PullPolicy,
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

/// `--format`: `json` (one object per line) or the table.
pub(super) fn json_format(f: &Option<String>) -> Result<bool, CliError> {
    match f.as_deref() {
        None | Some("table") => Ok(false),
        Some("json") | Some("{{json .}}") => Ok(true),
        Some(o) => Err(CliError::Usage(format!(
            "unsupported --format {o:?} (use json or table)"
        ))),
    }
}

/// Whether `image VERB` exists (the top-level aliases are checked against it).
#[cfg(test)]
pub(super) fn has_verb(verb: &str) -> bool {
    use clap::CommandFactory;
    Cli::command().find_subcommand(verb).is_some()
}

pub fn main(root: Option<PathBuf>, args: Vec<OsString>) -> i32 {
    super::parse_and_run::<Cli>("layerfs image", args, |cli| run(root, cli.cmd))
}

fn run(root: Option<PathBuf>, cmd: Cmd) -> CliResult {
    let store = super::open_store(root.clone())?;
    match cmd {
        Cmd::Load { input, quiet } => load(&store, input.as_deref(), quiet),
        Cmd::Save {
            output,
            format,
            images,
        } => save(&store, &images, output.as_deref(), &format),
        Cmd::Ls {
            all: _,
            quiet,
            digests,
            no_trunc,
            format,
            reference,
        } => {
            let show = Show {
                quiet,
                no_trunc,
                json: json_format(&format)?,
            };
            ls(&store, show, digests, reference.as_deref())
        }
        Cmd::Inspect { images } => inspect(&store, &images),
        Cmd::History {
            image,
            no_trunc,
            quiet,
            format,
        } => {
            let show = Show {
                quiet,
                no_trunc,
                json: json_format(&format)?,
            };
            history(&store, &image, show)
        }
        Cmd::Tag { source, target } => Ok(store.tag(&source, &target)?),
        Cmd::Rm { force, images } => rm(&store, &images, force),
        Cmd::Prune { all, force: _ } => prune(&store, all),
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
            pull,
        } => {
            super::pull::ensure_image(root.clone(), &image, pull)?;
            let plan = store.image_mount_plan(&image, rw)?;
            if let (Some(_), Some(u)) = (&plan.throwaway, &plan.upper) {
                eprintln!(
                    "layerfs: writes go to the throwaway dir {} (removed at unmount)",
                    u.display()
                );
            }
            super::run_mount(plan, &mountpoint, allow_other, &image)
        }
        Cmd::Layers { image, format } => layers(&store, &image, json_format(&format)?),
    }
}

/// How a listing is printed.
#[derive(Clone, Copy)]
struct Show {
    /// IDs only.
    quiet: bool,
    /// Full IDs and texts.
    no_trunc: bool,
    /// One JSON object per line instead of the table.
    json: bool,
}

fn load(store: &Store, input: Option<&Path>, quiet: bool) -> CliResult {
    for l in store.load(input)? {
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

fn save(store: &Store, images: &[String], output: Option<&Path>, format: &str) -> CliResult {
    let fmt = Format::parse(format)?;
    if let Some(p) = output {
        return Ok(store.save(images, SaveTo::Path(p), fmt)?);
    }
    if std::io::stdout().is_terminal() {
        return Err(CliError::Usage(
            "refusing to write an archive to a terminal: use -o FILE or redirect stdout".into(),
        ));
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    Ok(store.save(images, SaveTo::Stream(&mut out), fmt)?)
}

/// `image rm`: each argument's lines, then its error (all of them reported at the end).
fn rm(store: &Store, images: &[String], force: bool) -> CliResult {
    let mut errs = Vec::new();
    for r in store.remove_images(images, force)? {
        for l in &r.lines {
            println!("{l}");
        }
        if let Err(e) = r.result {
            errs.push(e.into());
        }
    }
    super::all_or_each(errs)
}

fn prune(store: &Store, all: bool) -> CliResult {
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

fn ls(store: &Store, show: Show, digests: bool, filter: Option<&str>) -> CliResult {
    let repos = Repositories::load(&store.layout)?;
    let now = now_secs();
    let mut imgs = Vec::new();
    for id in store.image_ids()? {
        imgs.push(store.image(&id, &repos)?);
    }
    imgs.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    let mut header = vec!["REPOSITORY", "TAG"];
    if digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    let mut rows = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    let mut seen = std::collections::BTreeSet::new();
    for img in &imgs {
        let idstr = if show.no_trunc {
            img.id.to_string()
        } else {
            img.id.short().to_string()
        };
        for (repo, tag) in repo_tags(img) {
            if !matches_filter(filter, &repo, &tag) {
                continue;
            }
            let digest = img
                .digests
                .iter()
                .find_map(|d| d.strip_prefix(&format!("{repo}@")))
                .unwrap_or("<none>")
                .to_string();
            if show.quiet {
                if seen.insert(idstr.clone()) {
                    println!("{idstr}");
                }
            } else if show.json {
                println!("{}", ls_json(img, &idstr, &repo, &tag, &digest, now));
            } else {
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
    }
    if !show.quiet && !show.json {
        print_table(&rows);
    }
    Ok(())
}

/// (repository, tag) of every tag of an image; a repository it has only a digest in (a
/// pull by digest) with tag `<none>`, as docker lists it; `<none>` twice for an image with
/// neither.
fn repo_tags(img: &Image) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = img
        .tags
        .iter()
        .map(|r| (r.name.clone(), r.tag.clone()))
        .collect();
    for d in &img.digests {
        if let Some((name, _)) = d.split_once('@')
            && !entries.iter().any(|(n, _)| n == name)
        {
            entries.push((name.to_string(), "<none>".into()));
        }
    }
    if entries.is_empty() {
        entries.push(("<none>".into(), "<none>".into()));
    }
    entries
}

/// Does `repo:tag` match the `image ls REPO[:TAG]` filter?
fn matches_filter(filter: Option<&str>, repo: &str, tag: &str) -> bool {
    let Some(f) = filter else {
        return true;
    };
    let (fr, ft) = match f.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t)),
        _ => (f, None),
    };
    repo == fr && ft.is_none_or(|t| t == tag)
}

/// One line of `image ls --format json`, as docker writes it.
fn ls_json(
    img: &Image,
    id: &str,
    repo: &str,
    tag: &str,
    digest: &str,
    now: i64,
) -> serde_json::Value {
    serde_json::json!({
        "Containers": "N/A",
        "CreatedAt": img.created_str(),
        "CreatedSince": human_age(img.created, now),
        "Digest": digest,
        "ID": id,
        "Repository": repo,
        "SharedSize": "N/A",
        "Size": human_size(img.size),
        "Tag": tag,
        "UniqueSize": "N/A",
        "VirtualSize": human_size(img.size),
    })
}

fn inspect(store: &Store, names: &[String]) -> CliResult {
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
                errs.push(e.into());
                continue;
            }
        };
        out.push(inspect_json(store, &img)?);
    }
    println!("{:#}", serde_json::Value::Array(out));
    super::all_or_each(errs)
}

/// One image of `image inspect`, in docker's shape.
fn inspect_json(store: &Store, img: &Image) -> Result<serde_json::Value, CliError> {
    let layers = store.layers_of(&img.diff_ids)?;
    let dirs: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| l.diff_dir.display().to_string())
        .collect();
    let c = &img.config;
    let md = store.image_metadata(&img.id)?;
    let field = |k: &str| c.get(k).cloned().unwrap_or_else(|| "".into());
    Ok(serde_json::json!({
        "Id": img.id.to_string(),
        "RepoTags": img.tags.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        "RepoDigests": img.digests,
        "Parent": md.parent.unwrap_or_default(),
        "Comment": field("comment"),
        "Created": field("created"),
        "DockerVersion": field("docker_version"),
        "Author": field("author"),
        "Config": c.get("config").cloned().unwrap_or(serde_json::Value::Null),
        "Architecture": field("architecture"),
        "Variant": c.get("variant").cloned(),
        "Os": field("os"),
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
        "Metadata": {"LastTagTime": md.last_updated.unwrap_or_default()},
    }))
}

/// One line of `image history`, before it is printed.
struct Step {
    created: Option<i64>,
    by: String,
    size: u64,
    comment: String,
}

/// An image's history, newest first: its config's `history`, each non-empty step with the
/// size of the next layer; one unnamed step per layer when the config has none.
fn steps(store: &Store, img: &Image) -> Result<Vec<Step>, CliError> {
    let layers = store.layers_of(&img.diff_ids)?;
    let hist: Vec<serde_json::Value> = img
        .config
        .get("history")
        .and_then(|h| h.as_array())
        .cloned()
        .unwrap_or_default();
    let text = |h: &serde_json::Value, k: &str| {
        h.get(k).and_then(|c| c.as_str()).unwrap_or("").to_string()
    };
    let mut out: Vec<Step> = Vec::new();
    if hist.is_empty() {
        for l in &layers {
            out.push(Step {
                created: img.created,
                by: String::new(),
                size: l.size,
                comment: String::new(),
            });
        }
    }
    let mut sizes = layers.iter().map(|l| l.size);
    for h in &hist {
        let empty = h
            .get("empty_layer")
            .and_then(|e| e.as_bool())
            .unwrap_or(false);
        out.push(Step {
            created: h
                .get("created")
                .and_then(|c| c.as_str())
                .and_then(parse_rfc3339),
            by: text(h, "created_by"),
            size: if empty { 0 } else { sizes.next().unwrap_or(0) },
            comment: text(h, "comment"),
        });
    }
    out.reverse();
    Ok(out)
}

fn history(store: &Store, name: &str, show: Show) -> CliResult {
    let repos = Repositories::load(&store.layout)?;
    let id = store.resolve(name, &repos)?;
    let img = store.image(&id, &repos)?;
    let now = now_secs();
    let mut rows = vec![
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    ];
    for (i, st) in steps(store, &img)?.into_iter().enumerate() {
        let image = match (i, show.no_trunc) {
            (0, true) => id.to_string(),
            (0, false) => id.short().to_string(),
            _ => "<missing>".to_string(),
        };
        if show.quiet {
            println!("{image}");
            continue;
        }
        let age = human_age(st.created, now);
        if show.json {
            println!(
                "{}",
                serde_json::json!({"ID": image, "CreatedSince": age, "CreatedBy": st.by, "Size": human_size(st.size), "Comment": st.comment})
            );
            continue;
        }
        let by = if show.no_trunc {
            st.by
        } else {
            truncate(&st.by, 45)
        };
        rows.push(vec![image, age, by, human_size(st.size), st.comment]);
    }
    if !show.quiet && !show.json {
        print_table(&rows);
    }
    Ok(())
}

fn layers(store: &Store, name: &str, json: bool) -> CliResult {
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
