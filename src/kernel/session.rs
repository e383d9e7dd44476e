//! A served FUSE session: the INIT handshake, then worker threads, each reading
//! requests from its own clone of the device fd and answering on it, until the kernel
//! ends the session (unmount: ENODEV).

use super::abi::{self, Writer};
use super::mount::{Access, Mounted};
use super::reply::{Notifier, Reply};
use super::request::{self, Header, InitIn, Op};
use super::uring::{self, OVER_IO_URING};
use crate::sys;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a worker with nothing to do keeps asking for the next request before it
/// sleeps. A program's next request usually comes a few microseconds after our answer
/// (a stat walk, git's lstat()s, tar): found by asking, it costs no wake-up of a sleeping
/// thread, which on a small VM is the larger part of a round trip. One worker at a time
/// asks; the others sleep in read(2).
pub(super) const SPIN: Duration = Duration::from_micros(50);

/// What the filesystem answers to INIT.
#[derive(Debug, Clone, Copy)]
pub struct InitOut {
    /// Capabilities wanted; only those the kernel offered are granted.
    pub flags: u64,
    pub max_write: u32,
    /// Passthrough's file stacking depth (0 without passthrough).
    pub max_stack_depth: u32,
}

/// The filesystem behind a session.
pub trait Handler: Send + Sync + 'static {
    /// INIT: `offered` holds the kernel's capability flags.
    fn init(&self, init: &InitIn) -> InitOut;
    /// One request. Requests that expect no answer get a reply that sends nothing.
    fn request(&self, h: &Header, op: Op<'_>, reply: Reply<'_>);
}

/// A mounted, initialized session, ready to serve.
pub struct Session {
    dev: Arc<File>,
    watch: Option<(UnixStream, Child)>,
    access: Access,
    owner: u32,
    /// The read buffer size the granted max_write needs.
    buf_size: usize,
    /// A worker is asking for requests without sleeping (see [`SPIN`]).
    spinning: AtomicBool,
    /// FUSE over io_uring was granted at INIT: this many queues are served too
    /// ([`super::uring`]); 0 without.
    queues: usize,
    /// The size of a queue entry's payload buffer.
    payload: usize,
    /// A ring queue has served a request: the device fd now brings only FORGETs and
    /// INTERRUPTs, not worth asking for without sleeping.
    pub(super) ring_up: AtomicBool,
}

impl Session {
    /// Answer the kernel's INIT (sent at mount time) with what `handler` wants.
    pub fn init(m: Mounted, access: Access, handler: &dyn Handler) -> io::Result<Session> {
        let dev = Arc::new(File::from(m.dev));
        let mut buf = vec![0u8; 64 * 1024];
        let n = read_request(&dev, &mut buf)?
            .ok_or_else(|| io::Error::other("the kernel ended the session before INIT"))?;
        let Some((h, Op::Init(init))) = request::parse(&buf[..n]) else {
            return Err(io::Error::other("the kernel's first request was not INIT"));
        };
        let reply = Reply::new(&dev, h.unique, true);
        if init.major != abi::MAJOR || init.minor < 31 {
            reply.error(libc::EPROTO);
            return Err(io::Error::other(format!(
                "FUSE protocol {}.{} is not supported (7.31 or later is needed)",
                init.major, init.minor
            )));
        }
        // allow_root: every open must be asked for, so that others' are refused.
        let mut offered = init;
        if access == Access::RootAndOwner {
            offered.flags &= !abi::NO_OPENDIR_SUPPORT;
        }
        let want = handler.init(&offered);
        let mut flags = want.flags & offered.flags;
        // FUSE over io_uring, accepted only where a ring can be made. Accepted, the
        // kernel holds new requests until every queue is registered (a queue that cannot
        // be is refused to it, see uring::refuse_queue), and the session keeps its rings
        // even if enable_uring is switched off meanwhile.
        let queues = if flags & OVER_IO_URING != 0 {
            uring::queues_here()
        } else {
            None
        };
        if queues.is_none() {
            flags &= !OVER_IO_URING;
        }
        let max_write = want.max_write.max(4096);
        // A WRITE of max_write bytes plus its header; SETXATTR values up to 64 KiB.
        let buf_size = max_write as usize + 64 * 1024 + 4096;
        let mut w = Writer::with_capacity(64);
        w.u32(abi::MAJOR).u32(abi::MINOR).u32(init.max_readahead);
        w.u32((flags | (init.flags & abi::INIT_EXT)) as u32);
        w.u16(16).u16(12); // max_background, congestion_threshold
        w.u32(max_write).u32(1); // time_gran: nanoseconds
        w.u16(max_write.div_ceil(4096) as u16).u16(0);
        w.u32((flags >> 32) as u32);
        let depth = if flags & abi::PASSTHROUGH != 0 {
            want.max_stack_depth
        } else {
            0
        };
        w.u32(depth);
        w.bytes(&[0u8; 24]);
        reply.body(&w);
        Ok(Session {
            dev,
            watch: m.watch,
            access,
            owner: sys::geteuid(),
            buf_size,
            spinning: AtomicBool::new(false),
            queues: queues.unwrap_or(0),
            // Room for max_write bytes, or max_pages pages, whichever the kernel counts.
            payload: buf_size.max(max_write.div_ceil(4096) as usize * sys::page_size()),
            ring_up: AtomicBool::new(false),
        })
    }

    /// For invalidations and passthrough registrations.
    pub fn notifier(&self) -> Notifier {
        Notifier {
            dev: Arc::clone(&self.dev),
        }
    }

    /// Serve with `threads` workers until the kernel ends the session.
    pub fn serve(self, handler: Arc<dyn Handler>, threads: usize) -> io::Result<()> {
        let this = Arc::new(self);
        let mut workers = Vec::new();
        let mut failed = None;
        for i in 0..threads.max(1) {
            // Each worker its own fd, so it can switch between asking without sleeping
            // and sleeping in read(2) alone (O_NONBLOCK belongs to the open file). The
            // kernel's queue of new requests is shared by the clones; a request is
            // answered on the fd it was read from. A worker that cannot be set up is
            // done without: fewer workers serve the same requests.
            let dev = match i {
                0 => Arc::clone(&this.dev),
                _ => match sys::clone_fuse_dev(this.dev.as_fd()) {
                    Ok(fd) => Arc::new(File::from(fd)),
                    Err(e) => {
                        log::warn!("cloning the FUSE device: {e}; serving with {i} workers");
                        break;
                    }
                },
            };
            let (s, h) = (Arc::clone(&this), Arc::clone(&handler));
            match std::thread::Builder::new()
                .name(format!("fuse-{i}"))
                .spawn(move || s.worker(&dev, &*h))
            {
                Ok(t) => workers.push(t),
                Err(e) => {
                    log::warn!("starting a FUSE worker: {e}; serving with {i} workers");
                    failed = Some(e);
                    break;
                }
            }
        }
        if workers.is_empty() {
            return Err(failed.unwrap_or_else(|| io::Error::other("no FUSE worker started")));
        }
        let rings = this.start_queues(&handler);
        let mut result = Ok(());
        for t in workers {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(io::Error::other("a worker thread panicked")),
            }
        }
        // The session is over: the kernel ends every registered entry (ENOTCONN). A
        // queue thread that still waits is not waited for long.
        let until = Instant::now() + Duration::from_secs(5);
        while rings.iter().any(|t| !t.is_finished()) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        for t in rings {
            if !t.is_finished() {
                log::warn!("an io_uring queue thread outlived its session");
                continue;
            }
            match t.join() {
                Ok(Err(e)) => log::debug!("an io_uring queue: {e}"),
                Ok(Ok(())) => {}
                Err(_) => result = Err(io::Error::other("a queue thread panicked")),
            }
        }
        if let Ok(mut s) = Arc::try_unwrap(this)
            && let Some((sock, mut child)) = s.watch.take()
        {
            drop(sock);
            let _ = child.wait();
        }
        result
    }

    /// One thread per CPU serving its io_uring queue (none without FUSE over io_uring).
    /// A queue whose thread cannot start is refused to the kernel, which then goes on
    /// with the device fd.
    fn start_queues(
        self: &Arc<Self>,
        handler: &Arc<dyn Handler>,
    ) -> Vec<JoinHandle<io::Result<()>>> {
        let mut threads = Vec::new();
        for qid in 0..self.queues as u16 {
            let (s, h) = (Arc::clone(self), Arc::clone(handler));
            let t = std::thread::Builder::new()
                .name(format!("fuse-q{qid}"))
                .spawn(move || s.serve_queue(&s.dev, qid, s.payload, &*h));
            match t {
                Ok(t) => threads.push(t),
                Err(e) => {
                    uring::refuse_queue(&self.dev, qid, &e);
                    break;
                }
            }
        }
        threads
    }

    fn worker(&self, dev: &File, handler: &dyn Handler) -> io::Result<()> {
        let mut buf = vec![0u8; self.buf_size];
        let mut nonblocking = false;
        while let Some(n) = self.next_request(dev, &mut nonblocking, &mut buf)? {
            let Some((h, op)) = request::parse(&buf[..n]) else {
                log::error!("a malformed request of {n} bytes");
                if n >= abi::IN_HEADER {
                    let unique = u64::from_le_bytes(buf[8..16].try_into().unwrap_or([0; 8]));
                    Reply::new(dev, unique, true).error(libc::EINVAL);
                }
                continue;
            };
            if let Op::Interrupt = op {
                // Requests are answered in microseconds and none waits on anything the
                // caller could give up. ENOSYS tells the kernel to send no more, when it
                // reaches the request (read on this fd); else it finds nothing (ENOENT).
                Reply::new(dev, h.unique, true).error(libc::ENOSYS);
                continue;
            }
            let expects = !matches!(op, Op::Forget(_) | Op::BatchForget(_));
            let reply = Reply::new(dev, h.unique, expects);
            if expects && !self.allowed(&h, &op) {
                reply.error(libc::EACCES);
                continue;
            }
            handler.request(&h, op, reply);
        }
        Ok(())
    }

    /// `allow_root`: the kernel lets everyone in (allow_other); only root and the owner
    /// are served. Requests on files already open pass (as with fuser and libfuse): they
    /// carry the uid of whoever does them, not of who opened the file. Opening is what
    /// is refused, so under allow_root directories are opened with OPENDIR (see
    /// [`Session::init`]).
    pub(super) fn allowed(&self, h: &Header, op: &Op<'_>) -> bool {
        self.access != Access::RootAndOwner
            || h.uid == 0
            || h.uid == self.owner
            || matches!(
                op,
                Op::Read { .. }
                    | Op::Write { .. }
                    | Op::Fsync { .. }
                    | Op::Fsyncdir
                    | Op::Readdir { .. }
                    | Op::Release { .. }
                    | Op::Releasedir
                    | Op::Destroy
            )
    }
}

impl Session {
    /// The next request (None once the session is over): asked for without sleeping for
    /// a while by one worker at a time, else waited for in a blocking read(2), where the
    /// kernel wakes one sleeping worker per request (poll(2) would wake them all).
    fn next_request(
        &self,
        dev: &File,
        nonblocking: &mut bool,
        buf: &mut [u8],
    ) -> io::Result<Option<usize>> {
        if !self.ring_up.load(Ordering::Relaxed)
            && self
                .spinning
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let got = spin_for_request(dev, nonblocking, buf);
            self.spinning.store(false, Ordering::Release);
            if let Some(r) = got? {
                return Ok(r);
            }
        }
        if *nonblocking {
            sys::set_nonblocking(dev.as_fd(), false)?;
            *nonblocking = false;
        }
        read_request(dev, buf)
    }
}

/// Ask for a request without sleeping for [`SPIN`]: Some(what read said), or None when
/// none came.
fn spin_for_request(
    dev: &File,
    nonblocking: &mut bool,
    buf: &mut [u8],
) -> io::Result<Option<Option<usize>>> {
    if !*nonblocking {
        sys::set_nonblocking(dev.as_fd(), true)?;
        *nonblocking = true;
    }
    let until = Instant::now() + SPIN;
    loop {
        match read_request(dev, buf) {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
            r => return r.map(Some),
        }
        if Instant::now() >= until {
            return Ok(None);
        }
        std::hint::spin_loop();
    }
}

/// Read one request: None once the session is over (EAGAIN on a non-blocking fd with
/// nothing queued).
fn read_request(dev: &File, buf: &mut [u8]) -> io::Result<Option<usize>> {
    let mut dev = dev;
    loop {
        match dev.read(buf) {
            Ok(n) => return Ok(Some(n)),
            Err(e) => match e.raw_os_error() {
                // Interrupted, or the request was withdrawn before we read it.
                Some(libc::EINTR) | Some(libc::ENOENT) => continue,
                // Unmounted, or aborted through /sys/fs/fuse/connections.
                Some(libc::ENODEV) | Some(libc::ECONNABORTED) => return Ok(None),
                _ => return Err(e),
            },
        }
    }
}
