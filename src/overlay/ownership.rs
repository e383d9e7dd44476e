//! Ownership without root: the `override_stat` xattr (`UID:GID:MODE[:TYPE]`), the ids that
//! stand for 0:0 in a layer an unprivileged store wrote (`root-ids`), plain files standing in
//! for symlinks, uid/gid mapping (`uidmapping=`/`gidmapping=`) and squashing. Pure functions
//! plus small readers.

use crate::mount::options::IdRange;
use crate::sys;
use dashmap::DashMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::sync::OnceLock;

/// The xattr we write; the others are read too.
pub const OVERRIDE_XATTR: &str = "user.containers.override_stat";
pub const OVERRIDE_XATTRS_READ: [&str; 3] = [
    "user.containers.override_stat",
    "user.fuseoverlayfs.override_stat",
    "security.fuseoverlayfs.override_stat",
];

/// A parsed override: presented owner, mode (with type bits) and device number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Override {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub rdev: Option<u64>,
}

/// Parse `UID:GID:MODE[:TYPE]`. MODE is octal; without type bits the real type is kept.
pub fn parse_override(v: &[u8]) -> Option<Override> {
    let s = std::str::from_utf8(v).ok()?.trim_end_matches('\0');
    let mut it = s.split(':');
    let uid = it.next()?.parse().ok()?;
    let gid = it.next()?.parse().ok()?;
    let mut mode = u32::from_str_radix(it.next()?, 8).ok()?;
    let mut rdev = None;
    if let Some(t) = it.next() {
        let ty = match t {
            "dir" => libc::S_IFDIR,
            "file" => libc::S_IFREG,
            "symlink" => libc::S_IFLNK,
            "pipe" => libc::S_IFIFO,
            "socket" => libc::S_IFSOCK,
            t if t.starts_with("block-") || t.starts_with("char-") => {
                let (kind, rest) = t.split_once('-')?;
                let (maj, min) = rest.split_once('-')?;
                rdev = Some(sys::makedev(maj.parse().ok()?, min.parse().ok()?));
                if kind == "block" {
                    libc::S_IFBLK
                } else {
                    libc::S_IFCHR
                }
            }
            _ => return None,
        };
        mode = (mode & !libc::S_IFMT) | ty;
    }
    if it.next().is_some() {
        return None;
    }
    Some(Override {
        uid,
        gid,
        mode,
        rdev,
    })
}

/// Format an override as `UID:GID:MODE` (octal mode with type bits).
pub fn format_override(uid: u32, gid: u32, mode: u32) -> String {
    format!("{uid}:{gid}:{mode:o}")
}

/// The override of `rel` under `dir`: one of the xattr forms, else, in a layer that an
/// unprivileged store wrote, 0:0 for an entry its owner owns (see [`ROOT_IDS_FILE`]).
pub fn read_override(dir: BorrowedFd<'_>, rel: &Path) -> io::Result<Option<Override>> {
    if let Some(o) = read_override_xattr(dir, rel)? {
        return Ok(Some(o));
    }
    let Some(ids) = cached_root_ids(dir)? else {
        return Ok(None);
    };
    Ok(root_override(&sys::lstat_at(dir, rel)?, Some(ids)))
}

/// Next to a layer dir written by an unprivileged image store (`overlay2/<id>/root-ids`
/// beside `overlay2/<id>/diff`): `UID:GID` of the store owner. There those ids stand for
/// the image's 0:0, the way a user namespace maps the user to root: an entry of the layer
/// that has no override and is really owned by them presents as 0:0 (with its real mode and
/// type). That is how a root-owned symlink or fifo, which cannot carry a user xattr, keeps
/// its owner; every other entry carries an override.
pub const ROOT_IDS_FILE: &str = "root-ids";

/// Parse the content of a [`ROOT_IDS_FILE`]: `UID:GID` and an optional newline.
pub fn parse_root_ids(v: &[u8]) -> Option<(u32, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (u, g) = s.strip_suffix('\n').unwrap_or(s).split_once(':')?;
    Some((u.parse().ok()?, g.parse().ok()?))
}

/// The [`ROOT_IDS_FILE`] beside layer dir `layer` (an fd of the layer root), if any.
pub fn read_root_ids(layer: BorrowedFd<'_>) -> io::Result<Option<(u32, u32)>> {
    let p = Path::new("..").join(ROOT_IDS_FILE);
    let fd = match sys::open_at(layer, &p, libc::O_RDONLY | libc::O_NOFOLLOW, 0) {
        Ok(fd) => fd,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::ENOTDIR | libc::EACCES | libc::ELOOP)
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let mut v = Vec::new();
    std::fs::File::from(fd).take(64).read_to_end(&mut v)?;
    Ok(parse_root_ids(&v))
}

/// [`read_root_ids`] once per layer dir (by device and inode) for the life of the process:
/// the mount asks on every attribute request of an entry without an override.
fn cached_root_ids(dir: BorrowedFd<'_>) -> io::Result<Option<(u32, u32)>> {
    /// (st_dev, st_ino) of a layer dir -> its root ids.
    type Cache = DashMap<(u64, u64), Option<(u32, u32)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let st = sys::fstat(dir)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Ok(None); // an open file (read_override_fd), not a layer root
    }
    let cache = CACHE.get_or_init(DashMap::new);
    let key = (st.st_dev, st.st_ino);
    if let Some(v) = cache.get(&key) {
        return Ok(*v);
    }
    let v = read_root_ids(dir)?;
    cache.insert(key, v);
    Ok(v)
}

/// The override an entry without one presents under `root_ids`: 0:0 and its real mode when
/// it is really owned by those ids.
pub fn root_override(st: &sys::Stat, root_ids: Option<(u32, u32)>) -> Option<Override> {
    (root_ids == Some((st.st_uid, st.st_gid))).then_some(Override {
        uid: 0,
        gid: 0,
        mode: st.st_mode,
        rdev: None,
    })
}

/// The target of a plain file standing in for a symlink (its override's type is
/// `symlink`): the file's content. `None` when `rel` is no such stand-in.
pub fn read_standin_link(dir: BorrowedFd<'_>, rel: &Path) -> io::Result<Option<OsString>> {
    let st = sys::lstat_at(dir, rel)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(None);
    }
    match read_override_xattr(dir, rel)? {
        Some(o) if o.mode & libc::S_IFMT == libc::S_IFLNK => {}
        _ => return Ok(None),
    }
    if st.st_size >= libc::PATH_MAX as i64 {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    let fd = sys::open_at(dir, rel, libc::O_RDONLY | libc::O_NOFOLLOW, 0)?;
    let mut v = Vec::new();
    std::fs::File::from(fd)
        .take(libc::PATH_MAX as u64)
        .read_to_end(&mut v)?;
    Ok(Some(OsString::from_vec(v)))
}

/// The override of `rel` under `dir` from the xattr forms only.
pub fn read_override_xattr(dir: BorrowedFd<'_>, rel: &Path) -> io::Result<Option<Override>> {
    // One listxattr answers the common case (no override) in a single syscall; this runs
    // on every getattr of an unprivileged mount.
    let names = match sys::list_xattr_at(dir, rel) {
        Ok(n) => n,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP | libc::EACCES)) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    for x in OVERRIDE_XATTRS_READ {
        if !names.iter().any(|n| n.as_os_str() == OsStr::new(x)) {
            continue;
        }
        match sys::get_xattr_at(dir, rel, OsStr::new(x)) {
            Ok(Some(v)) => {
                if let Some(o) = parse_override(&v) {
                    return Ok(Some(o));
                }
            }
            Ok(None) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EPERM | libc::ENOTSUP | libc::EACCES)
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Read the override through an open fd (a file that has lost its name).
pub fn read_override_fd(fd: BorrowedFd<'_>) -> io::Result<Option<Override>> {
    // The empty path makes the *at helpers use the fd itself (flistxattr/fgetxattr).
    read_override_xattr(fd, Path::new(""))
}

/// Id translation between what the filesystem stores (host) and what the mount shows.
#[derive(Debug, Clone, Default)]
pub struct IdMapper {
    pub uid_map: Vec<IdRange>,
    pub gid_map: Vec<IdRange>,
    pub squash_uid: Option<u32>,
    pub squash_gid: Option<u32>,
}

fn to_container(map: &[IdRange], host: u32) -> u32 {
    if map.is_empty() {
        return host;
    }
    for r in map {
        if host >= r.host && host - r.host < r.size {
            return r.container + (host - r.host);
        }
    }
    65534
}

fn to_host(map: &[IdRange], cont: u32) -> u32 {
    if map.is_empty() {
        return cont;
    }
    for r in map {
        if cont >= r.container && cont - r.container < r.size {
            return r.host + (cont - r.container);
        }
    }
    65534
}

impl IdMapper {
    pub fn is_identity(&self) -> bool {
        self.uid_map.is_empty()
            && self.gid_map.is_empty()
            && self.squash_uid.is_none()
            && self.squash_gid.is_none()
    }

    /// Stored ids -> presented ids. As fuse-overlayfs (and so containers-storage) reads
    /// `uidmapping=C:H:N`: the layers keep the image's (container) ids C+i, the mount shows
    /// them as host ids H+i, which the container's user namespace maps back to C+i.
    pub fn present(&self, uid: u32, gid: u32) -> (u32, u32) {
        (
            self.squash_uid
                .unwrap_or_else(|| to_host(&self.uid_map, uid)),
            self.squash_gid
                .unwrap_or_else(|| to_host(&self.gid_map, gid)),
        )
    }

    /// Presented (caller, host) ids -> ids to store (container ids).
    pub fn store(&self, uid: u32, gid: u32) -> (u32, u32) {
        (
            to_container(&self.uid_map, uid),
            to_container(&self.gid_map, gid),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        let o = parse_override(b"0:0:100755").unwrap();
        assert_eq!((o.uid, o.gid, o.mode), (0, 0, 0o100755));
        let o = parse_override(b"1000:1000:40700").unwrap();
        assert_eq!(o.mode, libc::S_IFDIR | 0o700);
        let o = parse_override(b"0:0:644:char-1-3").unwrap();
        assert_eq!(o.mode, libc::S_IFCHR | 0o644);
        assert_eq!(o.rdev, Some(sys::makedev(1, 3)));
        let o = parse_override(b"0:0:755:dir").unwrap();
        assert_eq!(o.mode, libc::S_IFDIR | 0o755);
        assert!(parse_override(b"0:0").is_none());
        assert!(parse_override(b"a:0:644").is_none());
        assert!(parse_override(b"0:0:9").is_none());
        assert!(parse_override(b"0:0:644:weird").is_none());
    }

    #[test]
    fn root_ids() {
        assert_eq!(parse_root_ids(b"1000:1001\n"), Some((1000, 1001)));
        assert_eq!(parse_root_ids(b"1000:1001"), Some((1000, 1001)));
        assert!(parse_root_ids(b"1000").is_none());
        assert!(parse_root_ids(b"a:b\n").is_none());
        assert!(parse_root_ids(b"1:2\n\n").is_none());
        let mut st = sys::zeroed_stat();
        st.st_uid = 1000;
        st.st_gid = 1001;
        st.st_mode = libc::S_IFLNK | 0o777;
        let o = root_override(&st, Some((1000, 1001))).unwrap();
        assert_eq!((o.uid, o.gid, o.mode), (0, 0, libc::S_IFLNK | 0o777));
        assert!(root_override(&st, Some((1000, 1000))).is_none());
        assert!(root_override(&st, None).is_none());
    }

    #[test]
    fn format_roundtrip() {
        let s = format_override(5, 6, libc::S_IFREG | 0o4755);
        assert_eq!(s, "5:6:104755");
        let o = parse_override(s.as_bytes()).unwrap();
        assert_eq!((o.uid, o.gid, o.mode), (5, 6, libc::S_IFREG | 0o4755));
    }

    #[test]
    fn mapping() {
        let m = IdMapper {
            uid_map: vec![
                IdRange {
                    container: 0,
                    host: 1000,
                    size: 1,
                },
                IdRange {
                    container: 1,
                    host: 100000,
                    size: 65536,
                },
            ],
            gid_map: vec![],
            squash_uid: None,
            squash_gid: None,
        };
        assert_eq!(m.present(0, 5), (1000, 5));
        assert_eq!(m.present(2, 5), (100001, 5));
        assert_eq!(m.present(65537, 5), (65534, 5));
        assert_eq!(m.store(1000, 7), (0, 7));
        assert_eq!(m.store(100001, 7), (2, 7));
        assert_eq!(m.store(42, 7), (65534, 7));
        let sq = IdMapper {
            squash_uid: Some(0),
            squash_gid: Some(0),
            ..Default::default()
        };
        assert_eq!(sq.present(1234, 99), (0, 0));
    }
}
