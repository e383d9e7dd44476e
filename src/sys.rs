//! The thin unsafe libc layer: `*at` calls relative to a directory fd, xattrs, mknod,
//! renameat2, FICLONE / copy_file_range, and the process calls of the daemon. Fallible calls
//! return `io::Result`; nothing here knows about layers, FUSE or images.
//!
//! Paths passed as `rel` are relative to `dir` (a layer root fd); the empty path means
//! the directory itself. Working through fds opened before the mount keeps layerfs safe
//! when the mountpoint sits on top of one of its own layers.
//!
//! The only module with `unsafe` code (the crate root denies it everywhere else): each
//! call is wrapped in a safe function here, split by theme into `xattr`, `process` and `ns`; the `/dev/fuse` calls are at the end.

#![allow(unsafe_code)]

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

mod ns;
mod process;
mod uring;
mod xattr;
pub use ns::*;
pub use process::*;
pub use uring::{IoVecs, Ring, page_size, pin_to_cpu, possible_cpus};
pub use xattr::*;

/// A `struct stat` as the kernel returned it.
pub type Stat = libc::stat;

/// `-1` return value -> last OS error.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_ssize(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// The errno of an I/O error (EIO when it carries none).
pub fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// Relative paths at least this long are walked in pieces: the kernel refuses a path of
/// PATH_MAX (4096) bytes or more in one call, but a merged tree may be deeper than that
/// (it is reached through directory fds, as `rm -r` and `tar` reach deep trees).
const LONG_PATH: usize = 3072;

fn is_long(rel: &Path) -> bool {
    rel.as_os_str().len() >= LONG_PATH
}

/// Call `f(dir', rest)` where `dir'` is the directory `rel`'s leading components name
/// (opened with `O_PATH | O_NOFOLLOW` a chunk at a time) and `rest` is short enough for
/// one syscall.
fn walk_long<R>(
    dir: BorrowedFd<'_>,
    rel: &Path,
    f: impl FnOnce(BorrowedFd<'_>, &Path) -> io::Result<R>,
) -> io::Result<R> {
    let mut held: Option<OwnedFd> = None;
    let mut rest: &[u8] = rel.as_os_str().as_bytes();
    while rest.len() >= LONG_PATH {
        // The last '/' that keeps the chunk short; a name is at most 255 bytes, so one
        // is always there.
        let cut = rest[..LONG_PATH]
            .iter()
            .rposition(|b| *b == b'/')
            .filter(|i| *i > 0)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENAMETOOLONG))?;
        let chunk = Path::new(OsStr::from_bytes(&rest[..cut]));
        let base = held.as_ref().map_or(dir, |h| h.as_fd());
        let next = open_at(
            base,
            chunk,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )?;
        held = Some(next);
        rest = &rest[cut + 1..];
    }
    let base = held.as_ref().map_or(dir, |h| h.as_fd());
    f(base, Path::new(OsStr::from_bytes(rest)))
}

/// A C string for a relative path; the empty path becomes ".".
pub fn cpath(rel: &Path) -> io::Result<CString> {
    let bytes = rel.as_os_str().as_bytes();
    let bytes = if bytes.is_empty() {
        b"." as &[u8]
    } else {
        bytes
    };
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// A C string for a name or absolute path.
pub fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Open a directory by absolute or cwd-relative path (used for layer roots).
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = cstr(path.as_os_str())?;
    let fd = check(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fstatat(dir, rel, AT_SYMLINK_NOFOLLOW)`; the empty path stats `dir` itself.
pub fn lstat_at(dir: BorrowedFd<'_>, rel: &Path) -> io::Result<Stat> {
    if is_long(rel) {
        return walk_long(dir, rel, lstat_at);
    }
    let mut st: Stat = unsafe { std::mem::zeroed() };
    if rel.as_os_str().is_empty() {
        check(unsafe { libc::fstat(dir.as_raw_fd(), &mut st) })?;
    } else {
        let c = cpath(rel)?;
        check(unsafe {
            libc::fstatat(
                dir.as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })?;
    }
    Ok(st)
}

/// `fstat(fd)`.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    let mut st: Stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// `openat(dir, rel, flags | O_CLOEXEC, mode)`.
pub fn open_at(dir: BorrowedFd<'_>, rel: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    if is_long(rel) {
        return walk_long(dir, rel, |d, p| open_at(d, p, flags, mode));
    }
    let c = cpath(rel)?;
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open `rel` under `dir` anew with `flags`; the empty path opens the file `dir` itself
/// is (through /proc, which works for an unlinked file too).
pub fn reopen(dir: BorrowedFd<'_>, rel: &Path, flags: i32) -> io::Result<OwnedFd> {
    if !rel.as_os_str().is_empty() {
        return open_at(dir, rel, flags | libc::O_NOFOLLOW, 0);
    }
    let p = format!("/proc/self/fd/{}", dir.as_raw_fd());
    let c = cstr(OsStr::new(&p))?;
    let fd = check(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn mkdir_at(dir: BorrowedFd<'_>, rel: &Path, mode: u32) -> io::Result<()> {
    if is_long(rel) {
        return walk_long(dir, rel, |d, p| mkdir_at(d, p, mode));
    }
    let c = cpath(rel)?;
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) })?;
    Ok(())
}

pub fn mknod_at(dir: BorrowedFd<'_>, rel: &Path, mode: u32, rdev: u64) -> io::Result<()> {
    if is_long(rel) {
        return walk_long(dir, rel, |d, p| mknod_at(d, p, mode, rdev));
    }
    let c = cpath(rel)?;
    check(unsafe {
        libc::mknodat(
            dir.as_raw_fd(),
            c.as_ptr(),
            mode as libc::mode_t,
            rdev as libc::dev_t,
        )
    })?;
    Ok(())
}

pub fn symlink_at(target: &OsStr, dir: BorrowedFd<'_>, rel: &Path) -> io::Result<()> {
    if is_long(rel) {
        return walk_long(dir, rel, |d, p| symlink_at(target, d, p));
    }
    let t = cstr(target)?;
    let c = cpath(rel)?;
    check(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), c.as_ptr()) })?;
    Ok(())
}

pub fn link_at(
    olddir: BorrowedFd<'_>,
    old: &Path,
    newdir: BorrowedFd<'_>,
    new: &Path,
) -> io::Result<()> {
    if is_long(old) {
        return walk_long(olddir, old, |d, p| link_at(d, p, newdir, new));
    }
    if is_long(new) {
        return walk_long(newdir, new, |d, p| link_at(olddir, old, d, p));
    }
    let o = cpath(old)?;
    let n = cpath(new)?;
    check(unsafe {
        libc::linkat(
            olddir.as_raw_fd(),
            o.as_ptr(),
            newdir.as_raw_fd(),
            n.as_ptr(),
            0,
        )
    })?;
    Ok(())
}

/// `unlinkat`; `dir_flag` removes a directory (AT_REMOVEDIR).
pub fn unlink_at(dir: BorrowedFd<'_>, rel: &Path, dir_flag: bool) -> io::Result<()> {
    if is_long(rel) {
        return walk_long(dir, rel, |d, p| unlink_at(d, p, dir_flag));
    }
    let c = cpath(rel)?;
    let flags = if dir_flag { libc::AT_REMOVEDIR } else { 0 };
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) })?;
    Ok(())
}

pub const RENAME_NOREPLACE: u32 = libc::RENAME_NOREPLACE;
pub const RENAME_EXCHANGE: u32 = libc::RENAME_EXCHANGE;
pub const RENAME_WHITEOUT: u32 = libc::RENAME_WHITEOUT;

pub fn rename_at(
    olddir: BorrowedFd<'_>,
    old: &Path,
    newdir: BorrowedFd<'_>,
    new: &Path,
    flags: u32,
) -> io::Result<()> {
    if is_long(old) {
        return walk_long(olddir, old, |d, p| rename_at(d, p, newdir, new, flags));
    }
    if is_long(new) {
        return walk_long(newdir, new, |d, p| rename_at(olddir, old, d, p, flags));
    }
    let o = cpath(old)?;
    let n = cpath(new)?;
    check(unsafe {
        libc::renameat2(
            olddir.as_raw_fd(),
            o.as_ptr(),
            newdir.as_raw_fd(),
            n.as_ptr(),
            flags as libc::c_uint,
        )
    })?;
    Ok(())
}

pub fn readlink_at(dir: BorrowedFd<'_>, rel: &Path) -> io::Result<OsString> {
    if is_long(rel) {
        return walk_long(dir, rel, readlink_at);
    }
    let c = cpath(rel)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    let n = check_ssize(unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            c.as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
        )
    })?;
    buf.truncate(n);
    Ok(OsString::from_vec(buf))
}

/// `fchownat(.., AT_SYMLINK_NOFOLLOW)`; `u32::MAX` leaves an id unchanged.
pub fn chown_at(dir: BorrowedFd<'_>, rel: &Path, uid: u32, gid: u32) -> io::Result<()> {
    if is_long(rel) {
        return walk_long(dir, rel, |d, p| chown_at(d, p, uid, gid));
    }
    let c = cpath(rel)?;
    let flags = if rel.as_os_str().is_empty() {
        libc::AT_EMPTY_PATH
    } else {
        libc::AT_SYMLINK_NOFOLLOW
    };
    let c = if rel.as_os_str().is_empty() {
        CString::default()
    } else {
        c
    };
    check(unsafe { libc::fchownat(dir.as_raw_fd(), c.as_ptr(), uid, gid, flags) })?;
    Ok(())
}

/// `fchmodat` (symlinks have no mode of their own: callers skip them).
pub fn chmod_at(dir: BorrowedFd<'_>, rel: &Path, mode: u32) -> io::Result<()> {
    if is_long(rel) {
        return walk_long(dir, rel, |d, p| chmod_at(d, p, mode));
    }
    if rel.as_os_str().is_empty() {
        return fchmod(dir, mode);
    }
    let c = cpath(rel)?;
    check(unsafe { libc::fchmodat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t, 0) })?;
    Ok(())
}

pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })?;
    Ok(())
}

pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })?;
    Ok(())
}

/// A timestamp for [`utimens_at`]: keep, now, or a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Time {
    Omit,
    Now,
    At(i64, i64),
}

fn timespec(t: Time) -> libc::timespec {
    match t {
        Time::Omit => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Time::Now => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Time::At(s, ns) => libc::timespec {
            tv_sec: s,
            tv_nsec: ns,
        },
    }
}

/// `utimensat(.., AT_SYMLINK_NOFOLLOW)` (symlinks included).
pub fn utimens_at(dir: BorrowedFd<'_>, rel: &Path, atime: Time, mtime: Time) -> io::Result<()> {
    if is_long(rel) {
        return walk_long(dir, rel, |d, p| utimens_at(d, p, atime, mtime));
    }
    let times = [timespec(atime), timespec(mtime)];
    if rel.as_os_str().is_empty() {
        check(unsafe { libc::futimens(dir.as_raw_fd(), times.as_ptr()) })?;
        return Ok(());
    }
    let c = cpath(rel)?;
    check(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

pub fn futimens(fd: BorrowedFd<'_>, atime: Time, mtime: Time) -> io::Result<()> {
    let times = [timespec(atime), timespec(mtime)];
    check(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) })?;
    Ok(())
}

pub fn ftruncate(fd: BorrowedFd<'_>, size: u64) -> io::Result<()> {
    check(unsafe { libc::ftruncate(fd.as_raw_fd(), size as libc::off_t) })?;
    Ok(())
}

/// Clone `src` into `dst` with FICLONE (whole file, shares extents).
pub fn ficlone(dst: BorrowedFd<'_>, src: BorrowedFd<'_>) -> io::Result<()> {
    const FICLONE: libc::c_ulong = 0x4004_9409;
    check(unsafe { libc::ioctl(dst.as_raw_fd(), FICLONE as _, src.as_raw_fd()) })?;
    Ok(())
}

/// One `copy_file_range` call at explicit offsets; returns bytes copied (0 at EOF).
pub fn copy_file_range(
    src: BorrowedFd<'_>,
    src_off: u64,
    dst: BorrowedFd<'_>,
    dst_off: u64,
    len: usize,
) -> io::Result<usize> {
    let mut so = src_off as libc::loff_t;
    let mut d = dst_off as libc::loff_t;
    check_ssize(unsafe {
        libc::copy_file_range(src.as_raw_fd(), &mut so, dst.as_raw_fd(), &mut d, len, 0)
    } as libc::ssize_t)
}

/// `lseek(fd, off, SEEK_DATA/SEEK_HOLE)`; `Ok(None)` on ENXIO (no more data).
pub fn seek_data_hole(fd: BorrowedFd<'_>, off: u64, data: bool) -> io::Result<Option<u64>> {
    let whence = if data {
        libc::SEEK_DATA
    } else {
        libc::SEEK_HOLE
    };
    let r = unsafe { libc::lseek(fd.as_raw_fd(), off as libc::off_t, whence) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENXIO) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(r as u64))
}

pub fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], off: u64) -> io::Result<usize> {
    check_ssize(unsafe {
        libc::pread(
            fd.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            off as libc::off_t,
        )
    })
}

pub fn pwrite(fd: BorrowedFd<'_>, buf: &[u8], off: u64) -> io::Result<usize> {
    check_ssize(unsafe {
        libc::pwrite(
            fd.as_raw_fd(),
            buf.as_ptr() as *const libc::c_void,
            buf.len(),
            off as libc::off_t,
        )
    })
}

pub fn fsync(fd: BorrowedFd<'_>, datasync: bool) -> io::Result<()> {
    check(unsafe {
        if datasync {
            libc::fdatasync(fd.as_raw_fd())
        } else {
            libc::fsync(fd.as_raw_fd())
        }
    })?;
    Ok(())
}

pub fn fstatvfs(fd: BorrowedFd<'_>) -> io::Result<libc::statvfs> {
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

pub fn fallocate(fd: BorrowedFd<'_>, mode: i32, off: u64, len: u64) -> io::Result<()> {
    check(unsafe {
        libc::fallocate(fd.as_raw_fd(), mode, off as libc::off_t, len as libc::off_t)
    })?;
    Ok(())
}

/// Read all entries of an open directory fd: (name, d_type, d_ino), without "." and "..".
pub fn read_dir_fd(fd: OwnedFd) -> io::Result<Vec<(OsString, u8, u64)>> {
    let raw = fd.as_raw_fd();
    let dirp = unsafe { libc::fdopendir(raw) };
    if dirp.is_null() {
        return Err(io::Error::last_os_error());
    }
    // fdopendir took ownership of the fd.
    std::mem::forget(fd);
    let mut out = Vec::new();
    loop {
        unsafe { *libc::__errno_location() = 0 };
        let ent = unsafe { libc::readdir64(dirp) };
        if ent.is_null() {
            let err = unsafe { *libc::__errno_location() };
            unsafe { libc::closedir(dirp) };
            if err != 0 {
                return Err(io::Error::from_raw_os_error(err));
            }
            return Ok(out);
        }
        let ent = unsafe { &*ent };
        let name = unsafe { std::ffi::CStr::from_ptr(ent.d_name.as_ptr()) };
        let b = name.to_bytes();
        if b == b"." || b == b".." {
            continue;
        }
        out.push((OsStr::from_bytes(b).to_os_string(), ent.d_type, ent.d_ino));
    }
}

/// `lseek(fd, offset, whence)` (SEEK_DATA / SEEK_HOLE included): the new offset.
pub fn lseek(fd: BorrowedFd<'_>, offset: i64, whence: i32) -> io::Result<i64> {
    let r = unsafe { libc::lseek(fd.as_raw_fd(), offset, whence) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An all-zero `struct stat`, for building one field by field (tests, synthetic entries).
pub fn zeroed_stat() -> Stat {
    unsafe { std::mem::zeroed() }
}

/// `makedev(major, minor)`.
pub fn makedev(major: u32, minor: u32) -> u64 {
    libc::makedev(major, minor)
}

pub fn major(dev: u64) -> u32 {
    libc::major(dev)
}

pub fn minor(dev: u64) -> u32 {
    libc::minor(dev)
}

/// Remove `rel` under `dir` and everything below it; symlinks are removed, never followed;
/// absent is success. A directory of ours that is not readable, searchable and writable by
/// us (an image's `0500` dir in an unprivileged store) is opened up to `0700` first, as
/// removing a tree one owns needs. The one tree remover of the program.
pub fn remove_tree_at(dir: BorrowedFd<'_>, rel: &Path) -> io::Result<()> {
    let st = match lstat_at(dir, rel) {
        Ok(s) => s,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return unlink_at(dir, rel, false);
    }
    if st.st_mode & 0o700 != 0o700 && st.st_uid == geteuid() {
        chmod_at(dir, rel, 0o700)?;
    }
    let fd = open_at(
        dir,
        rel,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )?;
    for (n, _, _) in read_dir_fd(fd)? {
        remove_tree_at(dir, &rel.join(n))?;
    }
    unlink_at(dir, rel, true)
}

/// [`remove_tree_at`] of a path.
pub fn remove_tree(p: &Path) -> io::Result<()> {
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = p.file_name() else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    let dir = match open_dir(parent) {
        Ok(d) => d,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    remove_tree_at(dir.as_fd(), Path::new(name))
}

// ---- /dev/fuse and the FUSE mount: mount(2) of a fuse filesystem, cloning a session's
// device fd (one per worker), passthrough backing files.

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
/// answered on it (each worker thread reads its own; new requests come from one
/// shared queue).
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

/// Make reads of `fd` return EAGAIN instead of blocking (`on`), or block again.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on a live descriptor with integer arguments.
    let flags = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    let flags = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) })?;
    Ok(())
}
