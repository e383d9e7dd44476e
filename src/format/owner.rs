//! Ownership without root: the `override_stat` xattr (`UID:GID:MODE[:TYPE]`, one parse and
//! one format for every file type), the ids that stand for 0:0 in a layer an unprivileged
//! store wrote (`root-ids`), plain files standing in for symlinks, fifos and devices, and what
//! an entry presents once all of that is applied. Pure functions plus small readers.

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

impl Override {
    /// An override of owner and mode (with type bits), no device number.
    pub fn new(uid: u32, gid: u32, mode: u32) -> Override {
        Override {
            uid,
            gid,
            mode,
            rdev: None,
        }
    }

    /// The xattr value: `UID:GID:MODE` (octal, type bits in) for a directory or regular
    /// file; for any other type `UID:GID:MODE:TYPE` (`symlink`, `pipe`, `socket`,
    /// `char-MAJ-MIN`, `block-MAJ-MIN`), as [`parse_override`] reads it. Only regular files
    /// and directories can carry a user xattr, so an override of another type is always on
    /// a plain file standing in for it, and its type must be spelled out.
    pub fn value(&self) -> String {
        let base = format!("{}:{}:{:o}", self.uid, self.gid, self.mode);
        let rdev = self.rdev.unwrap_or(0);
        let (maj, min) = (sys::major(rdev), sys::minor(rdev));
        match self.mode & libc::S_IFMT {
            libc::S_IFLNK => format!("{base}:symlink"),
            libc::S_IFIFO => format!("{base}:pipe"),
            libc::S_IFSOCK => format!("{base}:socket"),
            libc::S_IFCHR => format!("{base}:char-{maj}-{min}"),
            libc::S_IFBLK => format!("{base}:block-{maj}-{min}"),
            _ => base,
        }
    }
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

/// Owner, mode (with type bits) and device type an entry presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presented {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub rdev: u64,
}

/// What an entry presents, by the same rules as the mount's attributes: its override (an
/// override's type wins on a plain file standing in for another type), else 0:0 when it is
/// owned by the layer's `root_ids`, else its real stat. A failure to read the override is an
/// error, never "no override".
pub fn presented(
    dir: BorrowedFd<'_>,
    rel: &Path,
    st: &sys::Stat,
    root_ids: Option<(u32, u32)>,
) -> io::Result<Presented> {
    let mut p = Presented {
        uid: st.st_uid,
        gid: st.st_gid,
        mode: st.st_mode,
        rdev: st.st_rdev,
    };
    let real = st.st_mode & libc::S_IFMT;
    // Only regular files and directories carry user xattrs.
    let over = if matches!(real, libc::S_IFREG | libc::S_IFDIR) {
        read_override_xattr(dir, rel)?
    } else {
        None
    };
    if let Some(o) = over.or_else(|| root_override(st, root_ids)) {
        p.uid = o.uid;
        p.gid = o.gid;
        let ty = if real == libc::S_IFREG && o.mode & libc::S_IFMT != 0 {
            o.mode & libc::S_IFMT
        } else {
            real
        };
        p.mode = ty | (o.mode & 0o7777);
        if let Some(r) = o.rdev {
            p.rdev = r;
        }
    }
    Ok(p)
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
        let s = Override::new(5, 6, libc::S_IFREG | 0o4755).value();
        assert_eq!(s, "5:6:104755");
        let o = parse_override(s.as_bytes()).unwrap();
        assert_eq!((o.uid, o.gid, o.mode), (5, 6, libc::S_IFREG | 0o4755));
        // Every type a stand-in can be, through one format and one parse.
        for (mode, rdev) in [
            (libc::S_IFLNK | 0o777, None),
            (libc::S_IFIFO | 0o640, None),
            (libc::S_IFSOCK | 0o755, None),
            (libc::S_IFCHR | 0o620, Some(sys::makedev(136, 4))),
            (libc::S_IFBLK | 0o660, Some(sys::makedev(8, 17))),
            (libc::S_IFDIR | 0o755, None),
            (libc::S_IFREG | 0o600, None),
        ] {
            let want = Override {
                uid: 7,
                gid: 8,
                mode,
                rdev,
            };
            let v = want.value();
            assert_eq!(parse_override(v.as_bytes()), Some(want), "{v}");
        }
    }
}
