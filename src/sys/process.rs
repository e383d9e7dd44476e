//! The process around the filesystem: ids, memory, umask, termination signals, the
//! daemon's pipes and session, unmounting, file locks, random bytes.

use super::{check, cstr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// Give freed heap memory back to the system (glibc `malloc_trim(0)`).
pub fn malloc_trim() {
    unsafe { libc::malloc_trim(0) };
}

/// Effective uid of this process.
pub fn geteuid() -> u32 {
    unsafe { libc::geteuid() }
}

pub fn getegid() -> u32 {
    unsafe { libc::getegid() }
}

/// Set this process's file mode creation mask; the previous one.
pub fn umask(mask: u32) -> u32 {
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// A pipe with both ends close-on-exec: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [RawFd; 2] = [-1; 2];
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 has just opened both; nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Start `cmd`'s child in a new session (no controlling terminal, not killed with the
/// caller's process group) and let it inherit `keep` (same number) across exec.
pub fn spawn_in_new_session_keeping(cmd: &mut Command, keep: BorrowedFd<'_>) {
    let raw = keep.as_raw_fd();
    // SAFETY: between fork and exec the hook calls only async-signal-safe functions.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            let fl = libc::fcntl(raw, libc::F_GETFD);
            libc::fcntl(raw, libc::F_SETFD, fl & !libc::FD_CLOEXEC);
            Ok(())
        });
    }
}

/// The file descriptor a parent passed down across exec, its number in environment
/// variable `var`: taken (close-on-exec from now on, so no child of ours inherits it)
/// and the variable removed. `None` when unset, not a number or not open.
pub fn take_fd_from_env(var: &str) -> Option<OwnedFd> {
    let value = std::env::var_os(var)?;
    remove_env_var(var);
    let fd: RawFd = value.to_str()?.parse().ok()?;
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return None;
    }
    // SAFETY: an inherited descriptor named for us: nothing in this process owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Remove environment variable `var` while this process has a single thread (libc's
/// environment may not change while another thread reads it); otherwise leave it.
pub fn remove_env_var(var: &str) -> bool {
    let threads = std::fs::read_dir("/proc/self/task").map(|d| d.count());
    if threads.ok() != Some(1) {
        log::debug!("not removing {var} from the environment: more than one thread");
        return false;
    }
    // SAFETY: this is the only thread, so nothing reads the environment meanwhile (and
    // only this thread could start another).
    unsafe { std::env::remove_var(var) };
    true
}

/// Point stdout and stderr at /dev/null (a daemon must not hold its caller's pipes).
pub fn stdout_stderr_to_null() -> io::Result<()> {
    let null = File::options().read(true).write(true).open("/dev/null")?;
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        check(unsafe { libc::dup2(null.as_raw_fd(), fd) })?;
    }
    Ok(())
}

/// Signals blocked in the thread that made this (and in the threads it starts later),
/// to be taken one at a time with [`BlockedSignals::wait`].
#[derive(Clone, Copy)]
pub struct BlockedSignals(libc::sigset_t);

impl BlockedSignals {
    pub fn block(signals: &[libc::c_int]) -> io::Result<BlockedSignals> {
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        check(unsafe { libc::sigemptyset(&mut set) })?;
        for s in signals {
            check(unsafe { libc::sigaddset(&mut set, *s) })?;
        }
        let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(BlockedSignals(set))
    }

    /// Wait for one of the signals: its number.
    pub fn wait(&self) -> io::Result<libc::c_int> {
        let mut sig: libc::c_int = 0;
        let r = unsafe { libc::sigwait(&self.0, &mut sig) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(sig)
    }
}

/// `umount2(target, 0)`.
pub fn umount(target: &Path) -> io::Result<()> {
    let c = cstr(target.as_os_str())?;
    check(unsafe { libc::umount2(c.as_ptr(), 0) })?;
    Ok(())
}
