//! Making the FUSE mount: mount(2) with a `/dev/fuse` fd as root, else (or for
//! `auto_unmount`) through the set-uid helper `fusermount3`, which mounts and hands the
//! fd back over a socket.

use crate::sys;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Who may use the mount besides the kernel's own rule (only the mounting user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The mounting user only.
    Owner,
    /// The mounting user and root (`allow_other` to the kernel, checked per request).
    RootAndOwner,
    /// Everyone (`allow_other`).
    All,
}

/// The kernel mount's options.
#[derive(Debug, Clone)]
pub struct MountSpec {
    pub fsname: String,
    pub subtype: String,
    pub read_only: bool,
    pub dev: bool,
    pub suid: bool,
    pub exec: bool,
    pub noatime: bool,
    pub access: Access,
    /// Keep `fusermount3` watching, to unmount when the daemon dies.
    pub auto_unmount: bool,
    /// Further options passed as they are (SELinux contexts).
    pub extra: Vec<String>,
}

/// A mounted session's device, and fusermount3's socket while it must stay open.
pub struct Mounted {
    pub dev: OwnedFd,
    /// Closing it tells a watching fusermount3 (auto_unmount) to unmount.
    pub watch: Option<(UnixStream, Child)>,
}

/// Mount `spec` on `target`.
pub fn mount(target: &Path, spec: &MountSpec) -> io::Result<Mounted> {
    if sys::geteuid() == 0 && !spec.auto_unmount {
        match mount_direct(target, spec) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                log::debug!("mount(2) refused ({e}): trying fusermount3");
            }
            r => return r,
        }
    }
    mount_with_fusermount(target, spec)
}

fn mount_direct(target: &Path, spec: &MountSpec) -> io::Result<Mounted> {
    let rootmode = std::fs::metadata(target)?.mode() & libc::S_IFMT;
    let dev = sys::open_fuse_dev()?;
    let mut data = format!(
        "fd={},rootmode={rootmode:o},user_id={},group_id={},default_permissions",
        dev.as_raw_fd(),
        sys::geteuid(),
        sys::getegid()
    );
    if spec.access != Access::Owner {
        data.push_str(",allow_other");
    }
    for e in &spec.extra {
        data.push(',');
        data.push_str(e);
    }
    let mut flags: libc::c_ulong = 0;
    for (on, f) in [
        (spec.read_only, libc::MS_RDONLY),
        (!spec.dev, libc::MS_NODEV),
        (!spec.suid, libc::MS_NOSUID),
        (!spec.exec, libc::MS_NOEXEC),
        (spec.noatime, libc::MS_NOATIME),
    ] {
        if on {
            flags |= f;
        }
    }
    let fstype = format!("fuse.{}", spec.subtype);
    sys::mount_fuse(&spec.fsname, target, &fstype, flags, &data)?;
    Ok(Mounted { dev, watch: None })
}

/// fusermount3's `-o` list.
fn helper_options(spec: &MountSpec) -> String {
    let mut o = vec![
        format!("fsname={}", spec.fsname),
        format!("subtype={}", spec.subtype),
        "default_permissions".to_string(),
    ];
    let pick = |on: bool, yes: &str, no: &str| if on { yes } else { no }.to_string();
    o.push(pick(spec.read_only, "ro", "rw"));
    o.push(pick(spec.dev, "dev", "nodev"));
    o.push(pick(spec.suid, "suid", "nosuid"));
    o.push(pick(spec.exec, "exec", "noexec"));
    if spec.noatime {
        o.push("noatime".into());
    }
    if spec.access != Access::Owner {
        o.push("allow_other".into());
    }
    if spec.auto_unmount {
        o.push("auto_unmount".into());
    }
    o.extend(spec.extra.iter().cloned());
    o.join(",")
}

fn mount_with_fusermount(target: &Path, spec: &MountSpec) -> io::Result<Mounted> {
    let (ours, theirs) = UnixStream::pair()?;
    sys::clear_cloexec(theirs.as_fd())?;
    let mut child = Command::new("fusermount3")
        .arg("-o")
        .arg(helper_options(spec))
        .arg("--")
        .arg(target)
        .env("_FUSE_COMMFD", theirs.as_raw_fd().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("running fusermount3: {e}")))?;
    drop(theirs);
    let fd = match sys::recv_fd(ours.as_fd()) {
        Ok(fd) => fd,
        Err(e) => {
            drop(ours);
            let mut text = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = err.read_to_string(&mut text);
            }
            let _ = child.wait();
            let text = text.trim();
            let kind = if text.contains("user_allow_other") || text.contains("ermission") {
                io::ErrorKind::PermissionDenied
            } else {
                io::ErrorKind::Other
            };
            let why = if text.is_empty() {
                e.to_string()
            } else {
                text.to_string()
            };
            return Err(io::Error::new(kind, format!("fusermount3: {why}")));
        }
    };
    if spec.auto_unmount {
        // It watches the socket and unmounts once it closes (our exit included).
        return Ok(Mounted {
            dev: fd,
            watch: Some((ours, child)),
        });
    }
    drop(ours);
    let _ = child.wait();
    Ok(Mounted {
        dev: fd,
        watch: None,
    })
}
