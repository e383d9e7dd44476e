//! The calls on `/dev/fuse` and the FUSE mount itself: mount(2) of a fuse filesystem,
//! cloning a session's device fd (one queue per worker), and registering backing files
//! for passthrough.

use super::{check, cpath};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

// _IOR(229, 0, u32), _IOW(229, 1, struct fuse_backing_map), _IOW(229, 2, u32).
const FUSE_DEV_IOC_CLONE: libc::c_ulong = 0x8004_e500;
const FUSE_DEV_IOC_BACKING_OPEN: libc::c_ulong = 0x4010_e501;
const FUSE_DEV_IOC_BACKING_CLOSE: libc::c_ulong = 0x4004_e502;

/// `struct fuse_backing_map`.
#[repr(C)]
struct BackingMap {
    fd: i32,
    flags: u32,
    padding: u64,
}

/// Open `/dev/fuse` for a new session (or a clone of one).
pub fn open_fuse_dev() -> io::Result<OwnedFd> {
    let path = c"/dev/fuse";
    // SAFETY: a constant NUL-terminated path; the fd is ours on success.
    let fd = check(unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })?;
    // SAFETY: open returned a new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// mount(2) of a fuse filesystem: `data` carries `fd=N,rootmode=..` and the kernel's
/// fuse options; `flags` the MS_* flags.
pub fn mount_fuse(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let src = CString::new(source).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let ty = CString::new(fstype).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let d = CString::new(data).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let t = cpath(target)?;
    // SAFETY: all pointers are NUL-terminated strings alive for the call.
    check(unsafe {
        libc::mount(
            src.as_ptr(),
            t.as_ptr(),
            ty.as_ptr(),
            flags,
            d.as_ptr().cast(),
        )
    })?;
    Ok(())
}

/// A new device fd attached to `session`'s connection: requests read from it are
/// answered on it, so each worker thread has a queue of its own.
pub fn clone_fuse_dev(session: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let fd = open_fuse_dev()?;
    let mut id: u32 = session.as_raw_fd() as u32;
    // SAFETY: the ioctl reads one u32 (the session fd) from a live local.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), FUSE_DEV_IOC_CLONE, &mut id) })?;
    Ok(fd)
}

/// Register `file` as a passthrough backing file; the id goes in open replies.
pub fn fuse_backing_open(dev: BorrowedFd<'_>, file: BorrowedFd<'_>) -> io::Result<u32> {
    let map = BackingMap {
        fd: file.as_raw_fd(),
        flags: 0,
        padding: 0,
    };
    // SAFETY: the ioctl reads a struct fuse_backing_map from a live local.
    let id = check(unsafe { libc::ioctl(dev.as_raw_fd(), FUSE_DEV_IOC_BACKING_OPEN, &map) })?;
    Ok(id as u32)
}

/// Drop a backing file registration.
pub fn fuse_backing_close(dev: BorrowedFd<'_>, id: u32) -> io::Result<()> {
    // SAFETY: the ioctl reads one u32 from a live local.
    check(unsafe { libc::ioctl(dev.as_raw_fd(), FUSE_DEV_IOC_BACKING_CLOSE, &id) })?;
    Ok(())
}

/// Let `fd` survive exec (for a helper that gets it by number: fusermount3's socket).
pub fn clear_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl on a live descriptor with integer arguments.
    let flags = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) })?;
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flags & !libc::FD_CLOEXEC) })?;
    Ok(())
}

/// Make reads of `fd` return EAGAIN instead of blocking.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl on a live descriptor with integer arguments.
    let flags = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}
