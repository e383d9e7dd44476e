//! The OCI runtime bundle handed to runc: `config.json` (process, root, mounts,
//! namespaces, docker's default capabilities and masked paths) for a container whose rootfs
//! is layerfs's mount. Rootless, runc runs inside the user namespace layerfs made, so the
//! config asks for no user namespace of its own and bind-mounts `/sys` when the container
//! shares the host's network (sysfs cannot be mounted there). Pure: builds JSON.

use super::config::{Network, Process, RunConfig};
use super::users::ExecUser;
use serde_json::{Value, json};
use std::path::Path;

/// docker's default capability set.
const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// docker's default capabilities (also for `exec`'d processes).
pub fn default_caps() -> &'static [&'static str] {
    CAPS
}

/// Everything the config is made from.
pub struct Inputs<'a> {
    pub process: &'a Process,
    pub user: &'a ExecUser,
    pub run: &'a RunConfig,
    pub rootfs: &'a Path,
    pub hostname: &'a str,
    /// runc runs in layerfs's user namespace (not as the host's root).
    pub rootless: bool,
    /// Whether gid 5 (tty) exists in the namespace (devpts `gid=5`).
    pub tty_gid: bool,
    /// Bind mounts of files made for the container: (source on the host, target path).
    pub files: Vec<(String, String)>,
}

fn mount(dest: &str, kind: &str, source: &str, options: &[&str]) -> Value {
    json!({"destination": dest, "type": kind, "source": source, "options": options})
}

fn mounts(i: &Inputs<'_>) -> Vec<Value> {
    let mut pts = vec![
        "nosuid",
        "noexec",
        "newinstance",
        "ptmxmode=0666",
        "mode=0620",
    ];
    if i.tty_gid {
        pts.push("gid=5");
    }
    let mut m = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount("/dev/pts", "devpts", "devpts", &pts),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
    ];
    if i.rootless && i.run.network == Network::Host {
        m.push(mount(
            "/sys",
            "bind",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        ));
    } else {
        m.push(mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ));
    }
    for (src, dst) in &i.files {
        m.push(mount(dst, "bind", src, &["rbind", "rprivate"]));
    }
    for v in &i.run.volumes {
        let rw = if v.read_only { "ro" } else { "rw" };
        m.push(mount(
            &v.container,
            "bind",
            &v.host.to_string_lossy(),
            &["rbind", "rprivate", rw],
        ));
    }
    m
}

/// The bundle's `config.json`.
pub fn config(i: &Inputs<'_>) -> Value {
    let mut ns = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if i.run.network == Network::None {
        ns.push(json!({"type": "network"}));
    }
    let mut env = i.process.env.clone();
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        env.push(format!("HOSTNAME={}", i.hostname));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", i.user.home));
    }
    if i.run.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": i.run.tty,
            "user": {"uid": i.user.uid, "gid": i.user.gid, "additionalGids": i.user.additional_gids},
            "args": i.process.args,
            "env": env,
            "cwd": i.process.cwd,
            "capabilities": {"bounding": CAPS, "effective": CAPS, "permitted": CAPS},
            "noNewPrivileges": false,
        },
        "root": {"path": i.rootfs, "readonly": i.run.read_only},
        "hostname": i.hostname,
        "mounts": mounts(i),
        "linux": {
            "namespaces": ns,
            "maskedPaths": MASKED,
            "readonlyPaths": READONLY,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::config::Volume;

    #[test]
    fn rootless_host_network_binds_sys_and_volumes_keep_their_mode() {
        let p = Process {
            args: vec!["sh".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            user: String::new(),
            stop_signal: libc::SIGTERM,
        };
        let u = ExecUser {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![10],
            home: "/home/app".into(),
        };
        let mut run = RunConfig {
            volumes: vec![Volume::parse("/h:/data:ro").unwrap()],
            ..Default::default()
        };
        let mk = |run: &RunConfig, rootless| {
            config(&Inputs {
                process: &p,
                user: &u,
                run,
                rootfs: Path::new("/r"),
                hostname: "h",
                rootless,
                tty_gid: false,
                files: vec![("/c/hosts".into(), "/etc/hosts".into())],
            })
        };
        let c = mk(&run, true);
        let ms = c["mounts"].as_array().unwrap();
        let sys = ms.iter().find(|m| m["destination"] == "/sys").unwrap();
        assert_eq!(sys["type"], "bind");
        let data = ms.iter().find(|m| m["destination"] == "/data").unwrap();
        assert!(data["options"].as_array().unwrap().contains(&json!("ro")));
        assert!(ms.iter().any(|m| m["destination"] == "/etc/hosts"));
        assert_eq!(c["process"]["user"]["uid"], 1000);
        let env = c["process"]["env"].as_array().unwrap();
        assert!(env.contains(&json!("HOME=/home/app")) && env.contains(&json!("HOSTNAME=h")));
        assert!(
            !c["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .contains(&json!({"type": "network"}))
        );
        run.network = Network::None;
        let c = mk(&run, true);
        let ms = c["mounts"].as_array().unwrap();
        assert_eq!(
            ms.iter().find(|m| m["destination"] == "/sys").unwrap()["type"],
            "sysfs"
        );
        assert!(
            c["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .contains(&json!({"type": "network"}))
        );
    }
}
