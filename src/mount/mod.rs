//! Turning a MountPlan plus options into a running FUSE session: validation, the
//! daemon/foreground split, readiness signalling and clean unmount on signals.
//!
//! Without `-f`, `run` re-executes this binary as `layerfs mount -f ...` in a new
//! session with a pipe in `LAYERFS_READY_FD`; the daemon writes `OK` once the kernel has
//! answered INIT (the mount is usable) or the error text, and the caller returns then.

pub mod options;
pub mod plan;

pub use options::MountOptions;
pub use plan::MountPlan;

use crate::format::idmap::IdMapper;
use crate::fuse::LayerFs;
use crate::fuse::stats::Stats;
use crate::kernel::{self, Access, MountSpec, Session};
use crate::overlay::{Config, OverlayFs};
use crate::sys;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

/// Environment variable carrying the readiness pipe to a daemon child.
pub const READY_FD_ENV: &str = "LAYERFS_READY_FD";

/// Everything needed to start one mount.
#[derive(Debug, Clone)]
pub struct MountRequest {
    pub plan: MountPlan,
    pub mountpoint: PathBuf,
    pub options: MountOptions,
    /// Stay in the foreground (`-f`); otherwise return once the mount is ready.
    pub foreground: bool,
}

fn escape_path(p: &Path) -> String {
    p.to_string_lossy()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

/// The `-o` string that reproduces a plan and options (used to start the daemon).
pub fn to_option_string(plan: &MountPlan, o: &MountOptions) -> String {
    let mut v: Vec<String> = Vec::new();
    if !plan.lowers.is_empty() {
        let l: Vec<String> = plan.lowers.iter().map(|p| escape_path(p)).collect();
        v.push(format!("lowerdir={}", l.join(":")));
    }
    if let Some(u) = &plan.upper {
        v.push(format!("upperdir={}", escape_path(u).replace("\\:", ":")));
    }
    if let Some(w) = &plan.work {
        v.push(format!("workdir={}", escape_path(w).replace("\\:", ":")));
    }
    let flags = [
        (o.read_only, "ro"),
        (o.allow_other, "allow_other"),
        (o.allow_root, "allow_root"),
        (o.dev, "dev"),
        (!o.dev, "nodev"),
        (o.suid, "suid"),
        (!o.suid, "nosuid"),
        (!o.exec, "noexec"),
        (o.noatime, "noatime"),
        (o.auto_unmount, "auto_unmount"),
        (!o.fsync, "fsync=0"),
        (o.oci_whiteouts, "whiteouts=oci"),
        (!o.passthrough, "passthrough=off"),
        (!o.uring, "uring=off"),
        (o.no_xattrs, "noxattrs=1"),
        (o.xattr_permissions, "xattr_permissions=1"),
    ];
    for (on, s) in flags {
        if on {
            v.push(s.to_string());
        }
    }
    if o.timeout != MountOptions::default().timeout {
        v.push(format!("timeout={}", o.timeout));
    }
    if o.threads != 0 {
        v.push(format!("threads={}", o.threads));
    }
    let map = |m: &[crate::format::idmap::IdRange]| {
        m.iter()
            .map(|r| format!("{}:{}:{}", r.container, r.host, r.size))
            .collect::<Vec<_>>()
            .join(":")
    };
    if !o.uid_map.is_empty() {
        v.push(format!("uidmapping={}", map(&o.uid_map)));
    }
    if !o.gid_map.is_empty() {
        v.push(format!("gidmapping={}", map(&o.gid_map)));
    }
    if let Some(u) = o.squash_to_uid {
        v.push(format!("squash_to_uid={u}"));
    }
    if let Some(g) = o.squash_to_gid {
        v.push(format!("squash_to_gid={g}"));
    }
    if let Some(f) = &o.fsname {
        v.push(format!("fsname={}", f.replace(',', "\\,")));
    }
    for c in &o.passthrough_mount_opts {
        v.push(c.replace(',', "\\,"));
    }
    if let Some(d) = &o.remove_on_unmount {
        v.push(format!(
            "remove_on_unmount={}",
            escape_path(d).replace("\\:", ":")
        ));
    }
    if let Some(f) = &o.stats {
        v.push(format!("stats={}", escape_path(f).replace("\\:", ":")));
    }
    v.join(",")
}

/// Check the paths before anything is mounted; errors name the path and the reason.
fn validate(req: &MountRequest) -> Result<(), String> {
    let m = &req.mountpoint;
    match std::fs::metadata(m) {
        Ok(md) if md.is_dir() => {}
        Ok(_) => return Err(format!("mountpoint {}: not a directory", m.display())),
        Err(e) => return Err(format!("mountpoint {}: {}", m.display(), describe(&e))),
    }
    for (what, p) in req
        .plan
        .lowers
        .iter()
        .map(|p| ("lowerdir", p))
        .chain(req.plan.upper.iter().map(|p| ("upperdir", p)))
        .chain(req.plan.work.iter().map(|p| ("workdir", p)))
    {
        match std::fs::metadata(p) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => return Err(format!("{what} {}: not a directory", p.display())),
            Err(e) => return Err(format!("{what} {}: {}", p.display(), describe(&e))),
        }
    }
    Ok(())
}

fn describe(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOENT) => "no such file or directory".into(),
        Some(libc::EACCES) => "permission denied".into(),
        Some(libc::ENOTDIR) => "a path component is not a directory".into(),
        _ => e.to_string(),
    }
}

/// Mount and serve. Returns when the mount is ready (background) or when it ends
/// (foreground). The error names the path and the reason.
pub fn run(req: MountRequest) -> Result<(), String> {
    let r = run_inner(&req);
    if r.is_err() {
        // Nothing is mounted: a throwaway directory has no use any more.
        remove_throwaway(&req.options);
    }
    r
}

fn remove_throwaway(o: &MountOptions) {
    if let Some(d) = &o.remove_on_unmount
        && let Err(e) = sys::remove_tree(d)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        log::warn!("removing {}: {e}", d.display());
    }
}

fn run_inner(req: &MountRequest) -> Result<(), String> {
    let req = req.clone();
    validate(&req)?;
    if !req.foreground {
        return spawn_daemon(&req);
    }
    let mut ready: Option<OwnedFd> = sys::take_fd_from_env(READY_FD_ENV);
    if req.options.debug {
        log::set_max_level(log::LevelFilter::Debug);
    }
    match serve(&req, &mut ready) {
        Ok(()) => Ok(()),
        Err(e) => {
            if let Some(fd) = ready {
                let mut f = std::fs::File::from(fd);
                let _ = write!(f, "ERR {e}");
            }
            Err(e)
        }
    }
}

/// Start `layerfs mount -f ...` detached, and wait for its readiness line.
fn spawn_daemon(req: &MountRequest) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let (rfd, wfd) = sys::pipe().map_err(|e| format!("pipe: {e}"))?;
    let opts = to_option_string(&req.plan, &req.options);
    let mut cmd = Command::new(exe);
    cmd.arg("mount")
        .arg("-f")
        .arg("-o")
        .arg(&opts)
        .arg(&req.mountpoint)
        .env(READY_FD_ENV, wfd.as_raw_fd().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Not killed with the caller's process group; the pipe's write end survives exec.
    sys::spawn_in_new_session_keeping(&mut cmd, wfd.as_fd());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the mount daemon: {e}"))?;
    drop(wfd);
    let mut msg = String::new();
    let mut f = std::fs::File::from(rfd);
    let _ = f.read_to_string(&mut msg);
    if msg.starts_with("OK") {
        // The daemon lives on; do not wait for it.
        return Ok(());
    }
    let status = child.wait().ok();
    if let Some(rest) = msg.strip_prefix("ERR ") {
        return Err(rest.to_string());
    }
    Err(format!(
        "the mount daemon for {} exited before the mount was ready ({})",
        req.mountpoint.display(),
        status.map(|s| s.to_string()).unwrap_or_default()
    ))
}

fn threads(o: &MountOptions) -> usize {
    if o.threads > 0 {
        return o.threads;
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 16)
}

/// The union filesystem's configuration from a request.
fn overlay_config(req: &MountRequest) -> Config {
    let o = &req.options;
    Config {
        lowers: req.plan.lowers.clone(),
        upper: req.plan.upper.clone(),
        work: req.plan.work.clone(),
        read_only: o.read_only,
        fsync: o.fsync,
        oci_whiteouts: o.oci_whiteouts,
        no_xattrs: o.no_xattrs,
        xattr_permissions: o.xattr_permissions,
        ids: IdMapper {
            uid_map: o.uid_map.clone(),
            gid_map: o.gid_map.clone(),
            squash_uid: o.squash_to_uid,
            squash_gid: o.squash_to_gid,
        },
    }
}

/// The kernel mount's options.
fn mount_spec(o: &MountOptions, read_only: bool) -> MountSpec {
    MountSpec {
        fsname: o.fsname.clone().unwrap_or_else(|| "layerfs".to_string()),
        subtype: "layerfs".to_string(),
        read_only,
        dev: o.dev,
        suid: o.suid,
        exec: o.exec,
        noatime: o.noatime,
        access: if o.allow_other {
            Access::All
        } else if o.allow_root || o.auto_unmount {
            Access::RootAndOwner
        } else {
            Access::Owner
        },
        auto_unmount: o.auto_unmount,
        extra: o.passthrough_mount_opts.clone(),
    }
}

/// Mount and answer INIT: the mount is usable once this returns. Kernels without SELinux
/// refuse the context options; as containers-storage expects, they then simply do not
/// apply.
fn mount_session(
    req: &MountRequest,
    mut spec: MountSpec,
    handler: &LayerFs,
) -> Result<Session, String> {
    let mut first = kernel::mount(&req.mountpoint, &spec);
    if matches!(&first, Err(e) if e.raw_os_error() == Some(libc::EINVAL) || e.to_string().contains("EINVAL"))
        && !spec.extra.is_empty()
    {
        log::warn!(
            "the kernel refused {}: mounting without them",
            spec.extra.join(",")
        );
        spec.extra.clear();
        first = kernel::mount(&req.mountpoint, &spec);
    }
    let mounted = first.map_err(|e| {
        let why = match e.raw_os_error() {
            Some(libc::ENOENT) => format!("{e} (is /dev/fuse present and fusermount3 installed?)"),
            Some(libc::EACCES) | Some(libc::EPERM) => {
                format!("{e} (no permission: /dev/fuse access or the mountpoint)")
            }
            _ => e.to_string(),
        };
        format!("cannot mount on {}: {why}", req.mountpoint.display())
    })?;
    Session::init(mounted, spec.access, handler).map_err(|e| {
        // Nothing is served: take the mount down again (just made, it is on top).
        let left = match unmount(&req.mountpoint) {
            Ok(()) => String::new(),
            Err(u) => format!("; it is left mounted: {u}"),
        };
        format!("cannot mount on {}: {e}{left}", req.mountpoint.display())
    })
}

/// A thread that writes the request counters on SIGUSR1 and unmounts `mountpoint` on
/// the first termination signal.
fn unmount_on_signal(
    mountpoint: &Path,
    signals: sys::BlockedSignals,
    stats: Arc<Stats>,
    stats_file: Option<PathBuf>,
) -> Result<(), String> {
    let mp = mountpoint.to_path_buf();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while let Ok(sig) = signals.wait() {
                if sig == libc::SIGUSR1 {
                    write_stats(&stats, stats_file.as_deref());
                    continue;
                }
                log::info!("signal {sig}: unmounting {}", mp.display());
                // While we serve, the mount at this path is ours.
                if let Err(e) = unmount(&mp) {
                    log::error!("{e}");
                }
                break;
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot start the signal thread: {e}"))
}

/// The counters into `file` (replaced whole, so a reader never sees half a table), or
/// into the log without one.
fn write_stats(stats: &Stats, file: Option<&Path>) {
    let report = stats.report();
    let Some(f) = file else {
        log::info!("{report}");
        return;
    };
    let mut tmp = f.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let r = std::fs::write(&tmp, report).and_then(|()| std::fs::rename(&tmp, f));
    if let Err(e) = r {
        log::error!("writing the request counters to {}: {e}", f.display());
        let _ = std::fs::remove_file(&tmp);
    }
}

fn serve(req: &MountRequest, ready: &mut Option<OwnedFd>) -> Result<(), String> {
    let o = &req.options;
    let fs = Arc::new(OverlayFs::new(overlay_config(req))?);
    let spec = mount_spec(o, fs.read_only);
    // Modes of new entries are the caller's (the kernel applied its umask): ours must
    // not mask them again.
    sys::umask(0);
    // Blocked in every thread from here on; a dedicated thread waits for them.
    let signals =
        sys::BlockedSignals::block(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1])
            .map_err(|e| format!("blocking the termination signals: {e}"))?;
    let notifier = Arc::new(std::sync::OnceLock::new());
    let stats = Arc::new(Stats::default());
    let adapter = Arc::new(LayerFs::new(
        Arc::clone(&fs),
        o.timeout,
        o.passthrough,
        // fusermount3 unmounts a dead daemon's mount only once the kernel has aborted
        // the connection, and the kernel tears an io_uring connection down a moment
        // after the process is gone: too late for auto_unmount.
        o.uring && !o.auto_unmount,
        Arc::clone(&notifier),
        Arc::clone(&stats),
    ));
    let session = mount_session(req, spec, &adapter)?;
    let _ = notifier.set(session.notifier());
    // The kernel has answered INIT: the mount is usable now.
    if let Some(fd) = ready.take() {
        let mut f = std::fs::File::from(fd);
        let _ = f.write_all(b"OK\n");
        // Stop talking to the caller's pipes: a daemon must not hold them open.
        let _ = sys::stdout_stderr_to_null();
    }
    unmount_on_signal(
        &req.mountpoint,
        signals,
        Arc::clone(&stats),
        o.stats.clone(),
    )?;
    // The workers end when the kernel ends the session (umount, fusermount3 -u, our
    // signal thread); nothing here unmounts by path, so a new mount made at the same
    // path meanwhile is never taken down.
    let served = session
        .serve(adapter, threads(o))
        .map_err(|e| format!("serving {}: {e}", req.mountpoint.display()));
    if o.stats.is_some() {
        write_stats(&stats, o.stats.as_deref());
    }
    remove_throwaway(o);
    served
}

/// Unmount a layerfs mount: umount(2) when permitted, else `fusermount3 -u`. The daemon
/// exits once the kernel tells it the mount is gone.
pub fn unmount(mountpoint: &Path) -> Result<(), String> {
    let Err(err) = sys::umount(mountpoint) else {
        return Ok(());
    };
    if err.raw_os_error() == Some(libc::EBUSY) {
        return Err(format!("unmounting {}: {err}", mountpoint.display()));
    }
    let out = Command::new("fusermount3")
        .arg("-u")
        .arg(mountpoint)
        .output()
        .map_err(|e| {
            format!(
                "unmounting {}: {err}; fusermount3: {e}",
                mountpoint.display()
            )
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "unmounting {}: {}",
            mountpoint.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon is started with the `-o` string rendered from the parsed options: every
    /// option must survive the trip (a lost one is silently not applied).
    #[test]
    fn option_string_round_trips_every_option() {
        let plan = MountPlan {
            lowers: vec![PathBuf::from("/l:1"), PathBuf::from("/l,2")],
            upper: Some(PathBuf::from("/u")),
            work: Some(PathBuf::from("/w")),
            ..Default::default()
        };
        let o = MountOptions {
            read_only: true,
            allow_other: true,
            allow_root: false,
            debug: false,
            dev: true,
            suid: true,
            exec: false,
            noatime: true,
            auto_unmount: true,
            fsync: false,
            oci_whiteouts: true,
            passthrough: false,
            uring: false,
            no_xattrs: true,
            timeout: 2.5,
            threads: 3,
            uid_map: vec![crate::format::idmap::IdRange {
                container: 0,
                host: 1000,
                size: 1,
            }],
            gid_map: vec![crate::format::idmap::IdRange {
                container: 0,
                host: 1001,
                size: 2,
            }],
            squash_to_uid: Some(7),
            squash_to_gid: Some(8),
            fsname: Some("img,1".into()),
            passthrough_mount_opts: vec!["context=x".into()],
            remove_on_unmount: Some(PathBuf::from("/tmp/x")),
            stats: Some(PathBuf::from("/tmp/s,1")),
            xattr_permissions: true,
        };
        let s = to_option_string(&plan, &o);
        let (plan2, o2) = options::parse_for(std::slice::from_ref(&s), false).expect("parse");
        assert_eq!(plan2, plan, "{s}");
        assert_eq!(o2, o, "{s}");
    }
}
