//! The container's streams in the monitor: its stdout and stderr (pipes, or the terminal's
//! master with `-t`) copied into the json-file log and, when a client is attached, to the
//! monitor's own stdout/stderr; the client's stdin copied into the terminal; the console
//! socket runc hands the terminal's master through.

use super::logs::{LogWriter, Stream};
use crate::sys;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Copy everything read from `src` into the log as `stream`, and to our own stdout or
/// stderr when `attached` (a client that went away is no reason to stop logging).
pub fn copy_out(
    src: OwnedFd,
    stream: Stream,
    log: Arc<LogWriter>,
    attached: bool,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("{stream:?}"))
        .spawn(move || {
            let mut f = File::from(src);
            let mut buf = vec![0u8; 32 * 1024];
            let mut client = attached;
            loop {
                let n = match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    // EIO: the terminal's last holder closed it.
                    Err(_) => break,
                };
                if let Err(e) = log.write(stream, &buf[..n]) {
                    log::error!("writing the container log: {e}");
                }
                if client {
                    let r = match stream {
                        Stream::Stdout => {
                            let mut o = std::io::stdout().lock();
                            o.write_all(&buf[..n]).and_then(|()| o.flush())
                        }
                        Stream::Stderr => std::io::stderr().lock().write_all(&buf[..n]),
                    };
                    client = r.is_ok();
                }
            }
        })
}

/// Copy our stdin into the container's terminal until either ends.
pub fn copy_in(master: OwnedFd) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut m = File::from(master);
            let mut buf = vec![0u8; 8 * 1024];
            let mut stdin = std::io::stdin().lock();
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => {
                        // End of input: the terminal's end-of-file character.
                        let _ = m.write_all(&[4]);
                        break;
                    }
                    Ok(n) => {
                        if m.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        })
}

/// The terminal's size from our stdin (a client's terminal) onto the container's.
pub fn copy_size(master: &OwnedFd) {
    let stdin = std::io::stdin();
    if let Some((r, c)) = sys::winsize(stdin.as_fd())
        && let Err(e) = sys::set_winsize(master.as_fd(), r, c)
    {
        log::debug!("setting the terminal size: {e}");
    }
}

/// runc's `--console-socket`: a listening unix socket in a private directory; the
/// terminal's master arrives on the first connection.
pub struct ConsoleSocket {
    pub path: PathBuf,
    dir: PathBuf,
    accept: Option<JoinHandle<std::io::Result<OwnedFd>>>,
}

impl ConsoleSocket {
    /// Listen in a fresh directory under `base` (short: socket paths have ~100 bytes).
    pub fn listen(base: &Path) -> Result<ConsoleSocket, String> {
        let dir = base.join(format!("layerfs-console-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let path = dir.join("sock");
        let l = UnixListener::bind(&path)
            .map_err(|e| format!("listening on {}: {e}", path.display()))?;
        let accept = std::thread::Builder::new()
            .name("console".into())
            .spawn(move || {
                let (s, _) = l.accept()?;
                sys::recv_fd(s.as_fd())
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        Ok(ConsoleSocket {
            path,
            dir,
            accept: Some(accept),
        })
    }

    /// The master, once runc has sent it (call after `runc create` succeeded).
    pub fn master(mut self) -> Result<OwnedFd, String> {
        let h = self.accept.take().ok_or("the console was taken already")?;
        h.join()
            .map_err(|_| "the console thread panicked".to_string())?
            .map_err(|e| format!("receiving the container's terminal from runc: {e}"))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
