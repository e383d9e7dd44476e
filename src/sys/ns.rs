//! The process calls of running containers: namespaces, the child subreaper, signals and
//! waits by pid and pidfd, terminals (size, raw mode) and fd passing over a unix socket.

use super::check;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Real uid of this process.
pub fn getuid() -> u32 {
    unsafe { libc::getuid() }
}

/// Real gid of this process.
pub fn getgid() -> u32 {
    unsafe { libc::getgid() }
}

/// Move this process into new namespaces (`libc::CLONE_NEW*` flags). A new user
/// namespace needs a single-threaded process.
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    check(unsafe { libc::unshare(flags) }).map(drop)
}

/// Make every mount of this process's mount namespace private, so that nothing mounted
/// here propagates back to the namespace it was copied from.
pub fn make_mounts_private() -> io::Result<()> {
    let root = c"/";
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })
    .map(drop)
}

/// Orphaned descendants are re-parented to this process (and reaped by it).
pub fn set_child_subreaper() -> io::Result<()> {
    check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }).map(drop)
}

/// Send `sig` to process `pid` (0 checks that it exists and may be signalled).
pub fn kill(pid: i32, sig: libc::c_int) -> io::Result<()> {
    if pid <= 0 {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    check(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// Wait for any child to end: its pid and its status as a shell reports it (the exit
/// code, or 128 + the signal that killed it). `None` when there are no children left.
pub fn wait_any() -> io::Result<Option<(i32, i32)>> {
    loop {
        let mut status: libc::c_int = 0;
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return Ok(None),
                _ => return Err(e),
            }
        }
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else if libc::WIFSIGNALED(status) {
            128 + libc::WTERMSIG(status)
        } else {
            continue;
        };
        return Ok(Some((pid, code)));
    }
}

/// A pidfd of process `pid`: it becomes readable when the process ends.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel has just opened it for us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Wait until `fd` is readable (a pidfd: its process ended), at most `limit`; whether it
/// became readable.
pub fn wait_readable(fd: BorrowedFd<'_>, limit: Option<Duration>) -> io::Result<bool> {
    let ms = limit.map_or(-1, |d| d.as_millis().min(i32::MAX as u128) as libc::c_int);
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        return Ok(r > 0);
    }
}

/// Children of `cmd` start with no signal blocked and the default action for each (the
/// caller may have blocked the termination signals to wait for them in a thread).
pub fn with_default_signals(cmd: &mut Command) {
    // SAFETY: between fork and exec the hook calls only async-signal-safe functions.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            for s in [libc::SIGPIPE, libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::signal(s, libc::SIG_DFL);
            }
            Ok(())
        });
    }
}

/// Start `cmd`'s child in a new session (no controlling terminal).
pub fn in_new_session(cmd: &mut Command) {
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// Whether `fd` is a terminal.
pub fn isatty(fd: BorrowedFd<'_>) -> bool {
    unsafe { libc::isatty(fd.as_raw_fd()) == 1 }
}

/// A terminal's size: (rows, columns).
pub fn winsize(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some((ws.ws_row, ws.ws_col))
}

/// Set a terminal's size (a pty master: the container's terminal).
pub fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) }).map(drop)
}

/// A terminal put in raw mode; its old mode comes back when this is dropped.
pub struct RawTerminal {
    fd: RawFd,
    saved: libc::termios,
}

impl RawTerminal {
    /// Raw mode on terminal `fd` (which must stay open while this lives).
    pub fn enter(fd: BorrowedFd<'_>) -> io::Result<RawTerminal> {
        let raw = fd.as_raw_fd();
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        check(unsafe { libc::tcgetattr(raw, &mut t) })?;
        let saved = t;
        unsafe { libc::cfmakeraw(&mut t) };
        check(unsafe { libc::tcsetattr(raw, libc::TCSANOW, &t) })?;
        Ok(RawTerminal { fd: raw, saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

/// Receive one file descriptor sent with SCM_RIGHTS on unix socket `sock` (runc's
/// `--console-socket`: the container terminal's master).
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut data = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space;
    loop {
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        break;
    }
    // SAFETY: the control buffer was filled by recvmsg and msg describes it.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    if cmsg.is_null() {
        return Err(io::Error::other("no file descriptor came with the message"));
    }
    let (level, kind) = unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type) };
    if level != libc::SOL_SOCKET || kind != libc::SCM_RIGHTS {
        return Err(io::Error::other("the message carried no file descriptor"));
    }
    let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>()) };
    // SAFETY: SCM_RIGHTS installed this descriptor in our table for us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Unmount `target` lazily (MNT_DETACH): gone from the namespace now, released once
/// nothing uses it.
pub fn umount_detach(target: &Path) -> io::Result<()> {
    let c = super::cpath(target)?;
    check(unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) }).map(drop)
}
