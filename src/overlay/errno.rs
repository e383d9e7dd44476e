//! The error of an overlay operation: the errno the request is answered with. An I/O
//! error converts with `?` (its OS error, EIO when it has none, as the kernel would
//! answer); [`IoOp::op`] converts too and first notes at debug level which operation on
//! which path failed, which the errno alone does not say.

use std::fmt;
use std::io;
use std::path::Path;

/// An errno code, as a request is answered (`raw()` for the FUSE reply).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(i32);

/// The result of an overlay operation.
pub type Res<T> = Result<T, Errno>;

impl Errno {
    pub const EBADF: Errno = Errno(libc::EBADF);
    pub const EEXIST: Errno = Errno(libc::EEXIST);
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    pub const EIO: Errno = Errno(libc::EIO);
    pub const EISDIR: Errno = Errno(libc::EISDIR);
    pub const ELOOP: Errno = Errno(libc::ELOOP);
    pub const ENAMETOOLONG: Errno = Errno(libc::ENAMETOOLONG);
    pub const ENODATA: Errno = Errno(libc::ENODATA);
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    pub const ENOSYS: Errno = Errno(libc::ENOSYS);
    pub const ENOTDIR: Errno = Errno(libc::ENOTDIR);
    pub const ENOTEMPTY: Errno = Errno(libc::ENOTEMPTY);
    pub const ENOTSUP: Errno = Errno(libc::ENOTSUP);
    pub const EPERM: Errno = Errno(libc::EPERM);
    pub const ERANGE: Errno = Errno(libc::ERANGE);
    pub const EROFS: Errno = Errno(libc::EROFS);
    pub const ESTALE: Errno = Errno(libc::ESTALE);
    pub const EXDEV: Errno = Errno(libc::EXDEV);

    /// Any errno by number.
    pub const fn new(raw: i32) -> Errno {
        Errno(raw)
    }

    /// The number, for the kernel.
    pub const fn raw(self) -> i32 {
        self.0
    }
}

impl From<io::Error> for Errno {
    fn from(e: io::Error) -> Errno {
        Errno(crate::sys::errno(&e))
    }
}

impl From<Errno> for io::Error {
    fn from(e: Errno) -> io::Error {
        io::Error::from_raw_os_error(e.0)
    }
}

impl fmt::Display for Errno {
    /// As `io::Error` says it ("No such file or directory (os error 2)").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        io::Error::from_raw_os_error(self.0).fmt(f)
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Errno({}: {self})", self.0)
    }
}

impl std::error::Error for Errno {}

/// The errno of a failed operation `op` on `path` (relative to its layer), noted at
/// debug level.
pub fn errno_at(op: &str, path: &Path, e: io::Error) -> Errno {
    log::debug!("{op} {}: {e}", path.display());
    Errno::from(e)
}

/// [`errno_at`] on an `io::Result`: `sys::lstat_at(fd, rel).op("stat", rel)?`.
pub trait IoOp<T> {
    fn op(self, op: &str, path: &Path) -> Res<T>;
}

impl<T> IoOp<T> for io::Result<T> {
    fn op(self, op: &str, path: &Path) -> Res<T> {
        self.map_err(|e| errno_at(op, path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_keep_their_number_and_others_are_eio() {
        let e: Errno = io::Error::from_raw_os_error(libc::ENOENT).into();
        assert_eq!(e, Errno::ENOENT);
        let e: Errno = io::Error::other("no number").into();
        assert_eq!(e, Errno::EIO);
        let r: io::Result<()> = Err(io::Error::from_raw_os_error(libc::EXDEV));
        assert_eq!(r.op("rename", Path::new("a/b")), Err(Errno::EXDEV));
        assert_eq!(Errno::EROFS.raw(), libc::EROFS);
        assert_eq!(
            Errno::ENOENT.to_string(),
            io::Error::from_raw_os_error(libc::ENOENT).to_string()
        );
    }
}
