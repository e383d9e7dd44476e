//! `layerfs pull` and `layerfs push` (also under `image`): parse, run `transfer/`, print
//! docker's lines: per layer a bar on a terminal, a stable status line otherwise.

use super::{CliError, CliResult};
use crate::registry::manifest;
use crate::registry::reference::Reference;
use crate::registry::session::Session;
use crate::store::Store;
use crate::store::progress::{LayerEvent, Progress, Silent};
use crate::transfer::pull::{self, PullOptions};
use crate::transfer::push::{self, Compression, PushEvent, PushReport};
use clap::Parser;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Parser, Debug)]
#[command(name = "layerfs pull", about = "Download an image from a registry")]
pub struct PullCli {
    /// Print only the image reference
    #[arg(short, long)]
    quiet: bool,
    /// Pick this platform from a multi-platform image (OS/ARCH[/VARIANT])
    #[arg(long)]
    platform: Option<String>,
    /// Pull every tag of the repository
    #[arg(short = 'a', long)]
    all_tags: bool,
    /// Require verified HTTPS (=true) or allow plain HTTP and any certificate (=false)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    tls_verify: Option<bool>,
    /// Layers downloaded at once
    #[arg(long, default_value_t = 3)]
    max_concurrent_downloads: usize,
    /// NAME[:TAG|@DIGEST]
    reference: String,
}

#[derive(Parser, Debug)]
#[command(name = "layerfs push", about = "Upload an image to a registry")]
pub struct PushCli {
    /// Print only the manifest digest line
    #[arg(short, long)]
    quiet: bool,
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    tls_verify: Option<bool>,
    /// Compression of layers that must be uploaded: gzip (Docker manifest) or zstd (OCI)
    #[arg(long, default_value = "gzip")]
    compression: String,
    /// NAME[:TAG]
    reference: String,
}

pub fn pull_main(root: Option<PathBuf>, args: Vec<OsString>) -> i32 {
    super::parse_and_run::<PullCli>("layerfs pull", args, |c| run_pull(root, c))
}

pub fn push_main(root: Option<PathBuf>, args: Vec<OsString>) -> i32 {
    super::parse_and_run::<PushCli>("layerfs push", args, |c| run_push(root, c))
}

fn run_pull(root: Option<PathBuf>, c: PullCli) -> CliResult {
    let r = Reference::parse(&c.reference)?;
    let platform = c
        .platform
        .as_deref()
        .map(manifest::parse_platform)
        .transpose()?;
    if c.all_tags && (r.tag.is_some() || r.digest.is_some()) {
        return Err(CliError::Usage(format!(
            "--all-tags takes a repository name without a tag or digest, not {:?}",
            c.reference
        )));
    }
    let session = Session::discover(c.tls_verify)?;
    let opts = PullOptions {
        platform,
        threads: c.max_concurrent_downloads.max(1),
    };
    let store = open_store_with(root, c.quiet)?;
    let out = Out { stderr: false };
    pull_and_print(&store, &session, &r, &opts, c.quiet, c.all_tags, out)
}

/// Where pull lines go: stdout for `pull`, stderr when another verb pulls first (its own
/// output stays alone on stdout).
#[derive(Clone, Copy)]
pub struct Out {
    stderr: bool,
}

impl Out {
    fn say(&self, s: &str) {
        if self.stderr {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    }
}

/// Pull `r` (or all its tags) and print docker's lines to `out`.
fn pull_and_print(
    store: &Store,
    session: &Session,
    r: &Reference,
    opts: &PullOptions,
    quiet: bool,
    all_tags: bool,
    out: Out,
) -> CliResult {
    let what = |e: crate::transfer::Error| CliError::Pull(r.to_string(), e);
    let refs: Vec<Reference> = if all_tags {
        pull::tags(session, r)
            .map_err(what)?
            .iter()
            .map(|t| r.with_tag(t))
            .collect()
    } else {
        if r.tag.is_none() && r.digest.is_none() && !quiet {
            out.say("Using default tag: latest");
        }
        vec![r.clone()]
    };
    let mut newer = false;
    let mut last = None;
    for one in &refs {
        if !quiet {
            let at = one
                .digest
                .as_ref()
                .map(|d| d.to_string())
                .or(one.tag_or_default().map(str::to_string))
                .unwrap_or_default();
            out.say(&format!("{at}: Pulling from {}", one.path));
        }
        let p = pull::pull(store, session, one, opts)
            .map_err(|e| CliError::Pull(one.to_string(), e))?;
        for w in &p.warnings {
            eprintln!("layerfs: warning: {w}");
        }
        if !quiet {
            out.say(&format!("Digest: {}", p.digest));
        }
        newer |= !p.up_to_date;
        last = Some(p);
    }
    let shown = if all_tags {
        r.familiar_name()
    } else {
        familiar(r)
    };
    if !quiet {
        if newer {
            out.say(&format!("Status: Downloaded newer image for {shown}"));
        } else {
            out.say(&format!("Status: Image is up to date for {shown}"));
        }
    }
    match (&last, all_tags) {
        (_, true) => out.say(&r.full_name()),
        (Some(p), false) => out.say(&with_default_tag(&p.reference)),
        (None, false) => {}
    }
    Ok(())
}

/// `--pull` of `image mount` and `container create`, as `docker run` has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PullPolicy {
    /// Pull when the store does not have the image
    Missing,
    /// Pull every time (the registry may have a newer image under the tag)
    Always,
    /// Never pull
    Never,
}

/// Pull `image` first if the policy says so; the lines go to stderr.
pub fn ensure_image(root: Option<PathBuf>, image: &str, policy: PullPolicy) -> CliResult {
    if policy == PullPolicy::Never {
        return Ok(());
    }
    let store = Store::open(root)?.reporting_to(Arc::new(PullLines::new(Out { stderr: true })));
    if policy == PullPolicy::Missing {
        let repos = crate::store::images::Repositories::load(&store.layout)?;
        if store.resolve(image, &repos).is_ok() {
            return Ok(());
        }
    }
    let r = Reference::parse(image)?;
    if policy == PullPolicy::Missing {
        eprintln!("Unable to find image '{}' locally", familiar(&r));
    }
    let session = Session::discover(None)?;
    pull_and_print(
        &store,
        &session,
        &r,
        &PullOptions::default(),
        false,
        false,
        Out { stderr: true },
    )
}

/// `busybox:latest`, `127.0.0.1:5000/a:v1`, `a@sha256:..` (docker's FamiliarString).
fn familiar(r: &Reference) -> String {
    let mut s = r.familiar_name();
    if let Some(t) = r.tag_or_default() {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = &r.digest {
        s.push('@');
        s.push_str(&d.to_string());
    }
    s
}

fn with_default_tag(r: &Reference) -> String {
    let mut r = r.clone();
    if r.tag.is_none() && r.digest.is_none() {
        r.tag = Some("latest".into());
    }
    r.to_string()
}

/// The store, reporting pull events as docker prints them (nothing with `-q`).
fn open_store_with(root: Option<PathBuf>, quiet: bool) -> Result<Store, CliError> {
    let p: Arc<dyn Progress> = if quiet {
        Arc::new(Silent)
    } else {
        Arc::new(PullLines::new(Out { stderr: false }))
    };
    Ok(Store::open(root)?.reporting_to(p))
}

fn run_push(root: Option<PathBuf>, c: PushCli) -> CliResult {
    let r = Reference::parse(&c.reference)?;
    if r.digest.is_some() {
        return Err(CliError::Usage(format!(
            "push takes NAME[:TAG], not a digest: {:?}",
            c.reference
        )));
    }
    let compression = Compression::parse(&c.compression).map_err(CliError::Usage)?;
    let session = Session::discover(c.tls_verify)?;
    let store = super::open_store(root)?;
    if !c.quiet {
        println!("The push refers to repository [{}]", r.full_name());
    }
    let lines = PushLines { quiet: c.quiet };
    let p = push::push(&store, &session, &r, compression, &lines)
        .map_err(|e| CliError::Push(r.to_string(), e))?;
    println!("{}: digest: {} size: {}", p.tag, p.digest, p.size);
    Ok(())
}

struct PushLines {
    quiet: bool,
}

impl PushReport for PushLines {
    fn layer(&self, key: &str, event: &PushEvent) {
        if self.quiet {
            return;
        }
        let what = match event {
            PushEvent::Preparing => "Preparing".to_string(),
            PushEvent::Exists => "Layer already exists".to_string(),
            PushEvent::Mounted(from) => format!("Mounted from {from}"),
            PushEvent::Pushed => "Pushed".to_string(),
        };
        println!("{key}: {what}");
    }
}

/// Pull progress: docker's `ID: status` lines on stdout, or one bar per layer on a
/// terminal.
struct PullLines {
    bars: Option<MultiProgress>,
    layers: Mutex<HashMap<String, ProgressBar>>,
    out: Out,
}

impl PullLines {
    fn new(out: Out) -> PullLines {
        let tty = if out.stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        let bars = tty.then(|| {
            let target = if out.stderr {
                indicatif::ProgressDrawTarget::stderr()
            } else {
                indicatif::ProgressDrawTarget::stdout()
            };
            MultiProgress::with_draw_target(target)
        });
        PullLines {
            bars,
            layers: Mutex::new(HashMap::new()),
            out,
        }
    }

    fn line(&self, key: &str, status: &str) {
        let short = short_key(key);
        match &self.bars {
            Some(m) => {
                let _ = m.println(format!("{short}: {status}"));
            }
            None => self.out.say(&format!("{short}: {status}")),
        }
    }
}

/// 12 hex of `sha256:...` (or the name as it is).
fn short_key(key: &str) -> String {
    let hex = key.strip_prefix("sha256:").unwrap_or(key);
    hex.chars().take(12).collect()
}

impl Progress for PullLines {
    fn start(&self, _what: &str, _total: Option<u64>) {}
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
    fn waiting(&self, what: &str) {
        eprintln!("layerfs: waiting for {what}");
    }
    fn layer(&self, key: &str, event: LayerEvent) {
        let Some(m) = &self.bars else {
            match event {
                LayerEvent::Queued(_) => self.line(key, "Pulling fs layer"),
                LayerEvent::Exists => self.line(key, "Already exists"),
                LayerEvent::Done => self.line(key, "Pull complete"),
                LayerEvent::Bytes(_) | LayerEvent::Failed => {}
            }
            return;
        };
        let Ok(mut g) = self.layers.lock() else {
            return;
        };
        match event {
            LayerEvent::Queued(size) => {
                let b = m.add(ProgressBar::new(size.unwrap_or(0)));
                if let Ok(st) = ProgressStyle::with_template(
                    "{prefix}: {msg:12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                ) {
                    b.set_style(st.progress_chars("=> "));
                }
                b.set_prefix(short_key(key));
                b.set_message("Downloading");
                g.insert(key.to_string(), b);
            }
            LayerEvent::Exists => self.line(key, "Already exists"),
            LayerEvent::Bytes(n) => {
                if let Some(b) = g.get(key) {
                    b.inc(n);
                }
            }
            LayerEvent::Done | LayerEvent::Failed => {
                if let Some(b) = g.remove(key) {
                    b.finish_and_clear();
                    m.remove(&b);
                }
                if event == LayerEvent::Done {
                    self.line(key, "Pull complete");
                }
            }
        }
    }
}
