//! Thin libc wrappers the tests need and std does not offer: xattrs, mknod, renameat2,
//! utimensat, lchown, statfs, and errno names for readable assertions.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("name without NUL")
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn check_len(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// lsetxattr with flags (0, XATTR_CREATE, XATTR_REPLACE).
pub fn setxattr(p: &Path, name: &str, value: &[u8], flags: i32) -> io::Result<()> {
    let (p, n) = (cpath(p), cstr(name));
    check(unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
}

/// lgetxattr into a buffer of exactly `size` bytes (to provoke ERANGE); size 0 asks the length.
pub fn getxattr_sized(p: &Path, name: &str, size: usize) -> io::Result<Vec<u8>> {
    let (p, n) = (cpath(p), cstr(name));
    let mut buf = vec![0u8; size];
    let len = check_len(unsafe {
        libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), size)
    })?;
    if size == 0 {
        return Ok(len.to_string().into_bytes());
    }
    buf.truncate(len);
    Ok(buf)
}

pub fn getxattr(p: &Path, name: &str) -> io::Result<Vec<u8>> {
    let (pc, n) = (cpath(p), cstr(name));
    let len =
        check_len(unsafe { libc::lgetxattr(pc.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) })?;
    getxattr_sized(p, name, len.max(1)).or_else(|e| {
        // the value may have grown between the two calls; one retry with room to spare
        if e.raw_os_error() == Some(libc::ERANGE) {
            getxattr_sized(p, name, len + 4096)
        } else {
            Err(e)
        }
    })
}

/// Sorted xattr names of a path (not following symlinks).
pub fn listxattr(p: &Path) -> io::Result<Vec<String>> {
    let pc = cpath(p);
    let len = check_len(unsafe { libc::llistxattr(pc.as_ptr(), std::ptr::null_mut(), 0) })?;
    let mut buf = vec![0u8; len + 256];
    let len =
        check_len(unsafe { libc::llistxattr(pc.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })?;
    buf.truncate(len);
    let mut names: Vec<String> = buf
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// llistxattr into a buffer of exactly `size` bytes (ERANGE checks).
pub fn listxattr_sized(p: &Path, size: usize) -> io::Result<usize> {
    let pc = cpath(p);
    let mut buf = vec![0u8; size];
    check_len(unsafe { libc::llistxattr(pc.as_ptr(), buf.as_mut_ptr().cast(), size) })
}

pub fn removexattr(p: &Path, name: &str) -> io::Result<()> {
    let (p, n) = (cpath(p), cstr(name));
    check(unsafe { libc::lremovexattr(p.as_ptr(), n.as_ptr()) })
}

/// mknod with a full mode (type bits included) and device number.
pub fn mknod(p: &Path, mode: u32, major: u32, minor: u32) -> io::Result<()> {
    let pc = cpath(p);
    check(unsafe {
        libc::mknod(
            pc.as_ptr(),
            mode as libc::mode_t,
            libc::makedev(major, minor),
        )
    })
}

pub fn mkfifo(p: &Path) -> io::Result<()> {
    mknod(p, libc::S_IFIFO | 0o644, 0, 0)
}

pub fn renameat2(from: &Path, to: &Path, flags: u32) -> io::Result<()> {
    let (f, t) = (cpath(from), cpath(to));
    check(unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            flags,
        )
    })
}

/// Set atime and mtime (seconds, nanoseconds) without following symlinks.
pub fn utimens(p: &Path, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    let pc = cpath(p);
    let ts = [
        libc::timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1,
        },
        libc::timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1,
        },
    ];
    check(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            pc.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

pub fn lchown(p: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let pc = cpath(p);
    check(unsafe { libc::lchown(pc.as_ptr(), uid, gid) })
}

pub fn chmod(p: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

pub fn statfs(p: &Path) -> io::Result<libc::statfs> {
    let pc = cpath(p);
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    check(unsafe { libc::statfs(pc.as_ptr(), &mut s) })?;
    Ok(s)
}

/// Bind a unix socket at `p` (mknod of S_IFSOCK is the other way; both are tested).
pub fn make_socket(p: &Path) -> io::Result<()> {
    std::os::unix::net::UnixListener::bind(p).map(drop)
}

/// The symbolic name of an errno, for messages and comparisons.
pub fn errno_name(n: i32) -> String {
    let name = match n {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::ENODATA => "ENODATA",
        libc::ENOTSUP => "EOPNOTSUPP",
        libc::ENOTCONN => "ENOTCONN",
        libc::ESTALE => "ESTALE",
        libc::E2BIG => "E2BIG",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENXIO => "ENXIO",
        libc::ENOSYS => "ENOSYS",
        _ => return format!("errno {n}"),
    };
    name.to_string()
}

/// An io::Result reduced to something comparable across two mounts: the value or the errno name.
pub fn outcome<T>(r: io::Result<T>) -> Result<T, String> {
    r.map_err(|e| match e.raw_os_error() {
        Some(n) => errno_name(n),
        None => format!("non-os error: {e}"),
    })
}
