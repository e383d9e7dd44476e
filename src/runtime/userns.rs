//! Rootless: the user namespace a container runs in. The user is its root; where
//! `/etc/subuid` and `/etc/subgid` grant the user a range and `newuidmap`/`newgidmap` exist,
//! ids 1.. map onto that range (so an image's other users exist), else only root exists.
//! The process entering it must be single-threaded (the monitor, first thing).

use crate::sys;
use std::io::Write;
use std::process::{Command, Stdio};

/// One line of a uid or gid map: `inside outside count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// The maps of a new user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
}

impl Mapping {
    /// Whether the namespace knows id `gid` (inside numbering).
    pub fn has_gid(&self, gid: u32) -> bool {
        self.gids
            .iter()
            .any(|r| gid >= r.inside && gid - r.inside < r.count)
    }
}

/// The first range `/etc/subuid`-style `text` grants `name` (or its uid): (start, count).
pub fn subid_range(text: &str, name: &str, uid: u32) -> Option<(u32, u32)> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.trim().split(':').collect();
        if f.len() != 3 || (f[0] != name && f[0] != uid.to_string()) {
            return None;
        }
        let start = f[1].parse().ok()?;
        let count: u32 = f[2].parse().ok()?;
        (count > 0).then_some((start, count))
    })
}

/// The login name of `uid` in the host's passwd file.
fn user_name(uid: u32) -> Option<String> {
    let pw = std::fs::read_to_string("/etc/passwd").ok()?;
    pw.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2].parse() == Ok(uid)).then(|| f[0].to_string())
    })
}

fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

/// The mapping for the calling user: root = the user, plus the subordinate ranges when
/// they are granted and the setuid helpers exist.
pub fn mapping_for(uid: u32, gid: u32) -> Mapping {
    let mut m = Mapping {
        uids: vec![IdRange {
            inside: 0,
            outside: uid,
            count: 1,
        }],
        gids: vec![IdRange {
            inside: 0,
            outside: gid,
            count: 1,
        }],
    };
    let name = user_name(uid).unwrap_or_default();
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let su = subid_range(&read("/etc/subuid"), &name, uid);
    let sg = subid_range(&read("/etc/subgid"), &name, uid);
    if let (Some((us, uc)), Some((gs, gc))) = (su, sg)
        && on_path("newuidmap")
        && on_path("newgidmap")
    {
        m.uids.push(IdRange {
            inside: 1,
            outside: us,
            count: uc,
        });
        m.gids.push(IdRange {
            inside: 1,
            outside: gs,
            count: gc,
        });
    }
    m
}

fn helper(tool: &str, ranges: &[IdRange]) -> Result<std::process::Child, String> {
    let mut c = Command::new("sh");
    // Waits for the word that the namespace exists, then maps it.
    c.arg("-c")
        .arg("read _ && exec \"$@\"")
        .arg("sh")
        .arg(tool)
        .arg(std::process::id().to_string());
    for r in ranges {
        c.arg(r.inside.to_string())
            .arg(r.outside.to_string())
            .arg(r.count.to_string());
    }
    c.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {tool}: {e}"))
}

fn finish(tool: &str, mut child: std::process::Child) -> Result<(), String> {
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(b"go\n");
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for {tool}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{tool} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

fn write_proc(file: &str, text: &str) -> Result<(), String> {
    std::fs::write(format!("/proc/self/{file}"), text)
        .map_err(|e| format!("writing /proc/self/{file} ({text:?}): {e}"))
}

/// Move this (single-threaded) process into a new user namespace with mapping `m`, then
/// into a new mount namespace owned by it, with every mount private.
pub fn enter(m: &Mapping) -> Result<(), String> {
    let helpers = if m.uids.len() > 1 {
        Some((helper("newuidmap", &m.uids)?, helper("newgidmap", &m.gids)?))
    } else {
        None
    };
    sys::unshare(libc::CLONE_NEWUSER).map_err(|e| {
        format!("cannot create a user namespace: {e} (are unprivileged user namespaces enabled?)")
    })?;
    match helpers {
        Some((u, g)) => {
            let ru = finish("newuidmap", u);
            let rg = finish("newgidmap", g);
            ru.and(rg)?;
        }
        None => {
            let line = |r: &IdRange| format!("{} {} {}\n", r.inside, r.outside, r.count);
            write_proc("setgroups", "deny")?;
            write_proc("uid_map", &line(&m.uids[0]))?;
            write_proc("gid_map", &line(&m.gids[0]))?;
        }
    }
    enter_mount_namespace()
}

/// A mount namespace of this process's own, every mount private (as root: the container's
/// mount never shows outside it).
pub fn enter_mount_namespace() -> Result<(), String> {
    sys::unshare(libc::CLONE_NEWNS).map_err(|e| format!("cannot create a mount namespace: {e}"))?;
    sys::make_mounts_private().map_err(|e| format!("making the mounts private: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_by_name_or_uid() {
        let t = "alice:100000:65536\n1001:300000:1000\nbob:5:0\n";
        assert_eq!(subid_range(t, "alice", 1000), Some((100000, 65536)));
        assert_eq!(subid_range(t, "carol", 1001), Some((300000, 1000)));
        assert_eq!(subid_range(t, "bob", 7), None);
        let m = Mapping {
            uids: vec![],
            gids: vec![
                IdRange {
                    inside: 0,
                    outside: 1000,
                    count: 1,
                },
                IdRange {
                    inside: 1,
                    outside: 100000,
                    count: 65536,
                },
            ],
        };
        assert!(m.has_gid(5) && m.has_gid(0) && !m.has_gid(65537));
    }
}
