//! Extended attributes by directory fd + relative path (never following a symlink):
//! `getxattrat`/`listxattrat` where the kernel has them, else the path-based calls
//! through `/proc/self/fd/N/rel`; the `f*xattr` calls for the empty path.

use super::{check, check_ssize, cpath, cstr, is_long, walk_long};
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// The path through which path-based xattr calls reach `rel` under `dir` without
/// going through the mount: `/proc/self/fd/N/rel`.
fn xattr_path(dir: BorrowedFd<'_>, rel: &Path) -> io::Result<CString> {
    let mut p = format!("/proc/self/fd/{}", dir.as_raw_fd()).into_bytes();
    if !rel.as_os_str().is_empty() {
        p.push(b'/');
        p.extend_from_slice(rel.as_os_str().as_bytes());
    }
    CString::new(p).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `getxattrat(2)`/`listxattrat(2)` (Linux 6.13+): xattrs by dir fd + relative path
/// without a walk through /proc. Falls back to `/proc/self/fd/N/rel` when missing.
static XATTRAT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

#[repr(C)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const SYS_GETXATTRAT: libc::c_long = 464;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const SYS_LISTXATTRAT: libc::c_long = 465;

/// The answer of a *xattrat syscall; `None` (and never again) when the kernel lacks it.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn xattrat_result(r: libc::c_long) -> Option<io::Result<usize>> {
    if r >= 0 {
        return Some(Ok(r as usize));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOSYS) {
        XATTRAT.store(false, std::sync::atomic::Ordering::Relaxed);
        return None;
    }
    Some(Err(e))
}

/// `Some(result)` when the *at syscall answered, `None` when it is not available.
fn getxattrat(
    dir: BorrowedFd<'_>,
    rel: &CString,
    name: &CString,
    buf: &mut [u8],
) -> Option<io::Result<usize>> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        if !XATTRAT.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let mut args = XattrArgs {
            value: buf.as_mut_ptr() as u64,
            size: buf.len() as u32,
            flags: 0,
        };
        let r = unsafe {
            libc::syscall(
                SYS_GETXATTRAT,
                dir.as_raw_fd(),
                rel.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
                name.as_ptr(),
                &mut args as *mut XattrArgs,
                std::mem::size_of::<XattrArgs>(),
            )
        };
        xattrat_result(r)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (dir, rel, name, buf);
        None
    }
}

fn listxattrat(dir: BorrowedFd<'_>, rel: &CString, buf: &mut [u8]) -> Option<io::Result<usize>> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        if !XATTRAT.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let r = unsafe {
            libc::syscall(
                SYS_LISTXATTRAT,
                dir.as_raw_fd(),
                rel.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        xattrat_result(r)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (dir, rel, buf);
        None
    }
}

/// Read an xattr of `rel` (no symlink following). `Ok(None)` when absent (ENODATA).
pub fn get_xattr_at(dir: BorrowedFd<'_>, rel: &Path, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
    if is_long(rel) {
        return walk_long(dir, rel, |d, p| get_xattr_at(d, p, name));
    }
    let n = cstr(name)?;
    if rel.as_os_str().is_empty() {
        return fget_xattr(dir, name);
    }
    let p = xattr_path(dir, rel)?;
    let crel = cpath(rel)?;
    read_growing(256, |buf| {
        if let Some(r) = getxattrat(dir, &crel, &n, buf) {
            return r;
        }
        check_ssize(unsafe {
            libc::lgetxattr(
                p.as_ptr(),
                n.as_ptr(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
            )
        })
    })
}

/// Call `f` with a buffer that grows on ERANGE (up to 16 MiB); ENODATA is `Ok(None)`.
fn read_growing(
    initial: usize,
    mut f: impl FnMut(&mut [u8]) -> io::Result<usize>,
) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; initial];
    loop {
        match f(&mut buf) {
            Ok(len) => {
                buf.truncate(len);
                return Ok(Some(buf));
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) && buf.len() < 1 << 24 => {
                let n = buf.len() * 16;
                buf.resize(n, 0);
            }
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// Set an xattr of `rel` (no symlink following); `flags` are XATTR_CREATE/REPLACE.
pub fn set_xattr_at(
    dir: BorrowedFd<'_>,
    rel: &Path,
    name: &OsStr,
    value: &[u8],
    flags: i32,
) -> io::Result<()> {
    if is_long(rel) {
        return walk_long(dir, rel, |d, p| set_xattr_at(d, p, name, value, flags));
    }
    let n = cstr(name)?;
    let v = value.as_ptr() as *const libc::c_void;
    if rel.as_os_str().is_empty() {
        check(unsafe { libc::fsetxattr(dir.as_raw_fd(), n.as_ptr(), v, value.len(), flags) })?;
    } else {
        let p = xattr_path(dir, rel)?;
        check(unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), v, value.len(), flags) })?;
    }
    Ok(())
}

pub fn remove_xattr_at(dir: BorrowedFd<'_>, rel: &Path, name: &OsStr) -> io::Result<()> {
    if is_long(rel) {
        return walk_long(dir, rel, |d, p| remove_xattr_at(d, p, name));
    }
    let n = cstr(name)?;
    if rel.as_os_str().is_empty() {
        check(unsafe { libc::fremovexattr(dir.as_raw_fd(), n.as_ptr()) })?;
    } else {
        let p = xattr_path(dir, rel)?;
        check(unsafe { libc::lremovexattr(p.as_ptr(), n.as_ptr()) })?;
    }
    Ok(())
}

/// List xattr names of `rel` (no symlink following).
pub fn list_xattr_at(dir: BorrowedFd<'_>, rel: &Path) -> io::Result<Vec<OsString>> {
    if is_long(rel) {
        return walk_long(dir, rel, list_xattr_at);
    }
    let root = rel.as_os_str().is_empty();
    let p = xattr_path(dir, rel)?;
    let crel = cpath(rel)?;
    let list = read_growing(1024, |buf| {
        if root {
            return check_ssize(unsafe {
                libc::flistxattr(
                    dir.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_char,
                    buf.len(),
                )
            });
        }
        if let Some(r) = listxattrat(dir, &crel, buf) {
            return r;
        }
        check_ssize(unsafe {
            libc::llistxattr(p.as_ptr(), buf.as_mut_ptr() as *mut libc::c_char, buf.len())
        })
    })?
    .unwrap_or_default();
    Ok(list
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| OsString::from_vec(s.to_vec()))
        .collect())
}

/// Read an xattr through an open fd. `Ok(None)` when absent.
pub fn fget_xattr(fd: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
    let n = cstr(name)?;
    read_growing(256, |buf| {
        check_ssize(unsafe {
            libc::fgetxattr(
                fd.as_raw_fd(),
                n.as_ptr(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
            )
        })
    })
}
