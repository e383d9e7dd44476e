//! What a start needs that can be known before anything runs: the container's run flags
//! (`run.json`) and image config resolved into its first process and user, its hostname,
//! its bind sources checked, and the `hostname`/`hosts`/`resolv.conf` files bound into it.
//! A failure here has started nothing.

use super::config::{self, Network, Process, RunConfig};
use super::state::Files;
use super::users::{self, ExecUser};
use crate::store::Store;
use crate::store::containers::Container;
use std::path::{Path, PathBuf};

/// A container ready to start.
pub struct Prepared {
    pub container: Container,
    pub files: Files,
    pub run: RunConfig,
    pub process: Process,
    pub user: ExecUser,
    pub hostname: String,
    /// The merged dir the rootfs is mounted on (absolute).
    pub rootfs: PathBuf,
}

/// The files of container `c`'s run.
pub fn files_of(store: &Store, c: &Container) -> Files {
    Files::new(store.layout.container_dir(&c.id), &c.id)
}

/// The run flags kept for `files` (none: a plain `container create`).
pub fn load_run_config(files: &Files) -> Result<RunConfig, String> {
    let p = files.run_config();
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| format!("reading {}: {e}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RunConfig::default()),
        Err(e) => Err(format!("reading {}: {e}", p.display())),
    }
}

/// Keep the run flags beside the container record.
pub fn save_run_config(files: &Files, rc: &RunConfig) -> Result<(), String> {
    let p = files.run_config();
    let b = serde_json::to_vec_pretty(rc).map_err(|e| e.to_string())?;
    std::fs::write(&p, b).map_err(|e| format!("writing {}: {e}", p.display()))
}

/// Every `-v` source must exist (docker's message names it).
pub fn check_volumes(rc: &RunConfig) -> Result<(), String> {
    for v in &rc.volumes {
        if std::fs::symlink_metadata(&v.host).is_err() {
            return Err(format!(
                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                v.host.display()
            ));
        }
    }
    Ok(())
}

fn text_file(store: &Store, c: &Container, rel: &str) -> Result<String, String> {
    let b = store
        .container_file(c, rel)
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// `USER[:GROUP]` resolved in the container's own passwd and group files.
pub fn resolve_user(store: &Store, c: &Container, spec: &str) -> Result<ExecUser, String> {
    let passwd = text_file(store, c, "etc/passwd")?;
    let group = text_file(store, c, "etc/group")?;
    users::resolve(spec, &passwd, &group)
}

/// The process of container `c` (its run flags over its image config).
pub fn process_of(store: &Store, c: &Container, rc: &RunConfig) -> Result<Process, String> {
    let image = store.config(&c.image).map_err(|e| e.to_string())?;
    config::resolve(&image, rc)
}

/// Read and resolve everything container `c` needs to start.
pub fn prepare(store: &Store, c: Container) -> Result<Prepared, String> {
    let files = files_of(store, &c);
    let run = load_run_config(&files)?;
    check_volumes(&run)?;
    let process = process_of(store, &c, &run)?;
    let user = resolve_user(store, &c, &process.user)?;
    let hostname = match (&run.hostname, run.network) {
        (Some(h), _) => h.clone(),
        (None, Network::Host) => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| c.id[..12].to_string()),
        (None, Network::None) => c.id[..12].to_string(),
    };
    let merged = store.layout.cache_dir(&c.mount_id).join("merged");
    let rootfs = std::path::absolute(&merged).map_err(|e| format!("{}: {e}", merged.display()))?;
    Ok(Prepared {
        container: c,
        files,
        run,
        process,
        user,
        hostname,
        rootfs,
    })
}

/// Write `hostname`, `hosts` and `resolv.conf` into the container dir; the bind mounts
/// of those whose target the image has (a missing one is not created in the container's
/// layer, where `diff` and `commit` would see it).
pub fn host_files(store: &Store, p: &Prepared) -> Result<Vec<(String, String)>, String> {
    let host = p.run.network == Network::Host;
    let hosts = if host {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{}\n",
            p.hostname
        )
    };
    let resolv = if host {
        std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
    } else {
        String::new()
    };
    let mut binds = Vec::new();
    for (name, text) in [
        ("hostname", format!("{}\n", p.hostname)),
        ("hosts", hosts),
        ("resolv.conf", resolv),
    ] {
        let rel = format!("etc/{name}");
        let present = store
            .container_file(&p.container, &rel)
            .map_err(|e| e.to_string())?
            .is_some();
        if !present {
            continue;
        }
        let src = p.files.dir.join(name);
        std::fs::write(&src, text).map_err(|e| format!("writing {}: {e}", src.display()))?;
        let src = std::path::absolute(&src).unwrap_or(src);
        binds.push((src.to_string_lossy().into_owned(), format!("/{rel}")));
    }
    Ok(binds)
}

/// The bundle dir with its `config.json`.
pub fn write_bundle(dir: &Path, config: &serde_json::Value) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let p = dir.join("config.json");
    let b = serde_json::to_vec_pretty(config).map_err(|e| e.to_string())?;
    std::fs::write(&p, b).map_err(|e| format!("writing {}: {e}", p.display()))
}
