//! A minimal io_uring for FUSE over io_uring: a ring with 128-byte submission entries,
//! `IORING_OP_URING_CMD` submissions on the FUSE device, completions read back, and the
//! buffers the kernel fills with requests and reads replies from. Nothing else of
//! io_uring is used, so this is all there is of it (the io-uring crate cannot set the
//! length field a FUSE registration needs).

use super::check;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

const SETUP_SQE128: u32 = 1 << 10;
const SETUP_SINGLE_ISSUER: u32 = 1 << 12;
const SETUP_DEFER_TASKRUN: u32 = 1 << 13;
const FEAT_SINGLE_MMAP: u32 = 1;
const ENTER_GETEVENTS: u32 = 1;
const OFF_SQES: libc::off_t = 0x1000_0000;
const OP_URING_CMD: u8 = 46;
const SQE_SIZE: usize = 128;
const CQE_SIZE: usize = 16;

/// `struct io_sqring_offsets` / `io_cqring_offsets` (the same size and shape).
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct RingOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    /// sq: flags; cq: overflow.
    a: u32,
    /// sq: dropped; cq: cqes.
    b: u32,
    /// sq: array; cq: flags.
    c: u32,
    resv1: u32,
    user_addr: u64,
}

/// `struct io_uring_params`.
#[repr(C)]
#[derive(Default)]
struct Params {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    sq_off: RingOffsets,
    cq_off: RingOffsets,
}

/// An anonymous or ring mapping, unmapped on drop.
struct Map {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory; who may touch which part when is the ring
// protocol's business (head/tail atomics, entries owned by one side at a time).
unsafe impl Send for Map {}

impl Map {
    fn new(fd: Option<BorrowedFd<'_>>, len: usize, offset: libc::off_t) -> io::Result<Map> {
        let (flags, raw) = match fd {
            Some(f) => (libc::MAP_SHARED | libc::MAP_POPULATE, f.as_raw_fd()),
            None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a fresh mapping of `len` bytes; nothing aliases it yet.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                raw,
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        Ok(Map { ptr, len })
    }

    /// The u32 at byte `off`, shared with the kernel.
    fn atomic(&self, off: u32) -> &AtomicU32 {
        assert!(off as usize + 4 <= self.len && off.is_multiple_of(4));
        // SAFETY: in bounds and aligned (checked); the kernel accesses it atomically too.
        unsafe { &*self.ptr.as_ptr().add(off as usize).cast::<AtomicU32>() }
    }

    fn addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no references into it outlive self.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// One io_uring instance, used from one thread.
pub struct Ring {
    fd: OwnedFd,
    rings: Map,
    sqes: Map,
    sq: RingOffsets,
    cq: RingOffsets,
    sq_mask: u32,
    cq_mask: u32,
    sq_entries: u32,
    /// Submissions written but not yet passed to io_uring_enter.
    pending: u32,
}

impl Ring {
    /// A ring of `entries` (a power of two) 128-byte submission entries.
    pub fn new(entries: u32) -> io::Result<Ring> {
        let mut p = Params {
            flags: SETUP_SQE128 | SETUP_SINGLE_ISSUER | SETUP_DEFER_TASKRUN,
            ..Params::default()
        };
        // SAFETY: io_uring_setup reads and fills `p`, a live local of the kernel's layout.
        let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, entries, &mut p as *mut Params) };
        let fd = check(fd as libc::c_int)?;
        // SAFETY: io_uring_setup returned a new descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        if p.features & FEAT_SINGLE_MMAP == 0 {
            return Err(io::Error::other("io_uring without IORING_FEAT_SINGLE_MMAP"));
        }
        let sq_len = p.sq_off.c as usize + p.sq_entries as usize * 4;
        let cq_len = p.cq_off.b as usize + p.cq_entries as usize * CQE_SIZE;
        let rings = Map::new(Some(fd.as_fd()), sq_len.max(cq_len), 0)?;
        let sqes = Map::new(Some(fd.as_fd()), p.sq_entries as usize * SQE_SIZE, OFF_SQES)?;
        let ring = Ring {
            sq_mask: rings.atomic(p.sq_off.ring_mask).load(Ordering::Relaxed),
            cq_mask: rings.atomic(p.cq_off.ring_mask).load(Ordering::Relaxed),
            sq_entries: p.sq_entries,
            sq: p.sq_off,
            cq: p.cq_off,
            fd,
            rings,
            sqes,
            pending: 0,
        };
        Ok(ring)
    }

    /// Queue an `IORING_OP_URING_CMD` on `dev`: `addr`/`len` and the 80-byte command
    /// area as the command wants them. Sent by the next [`Ring::submit_and_wait`].
    pub fn push_cmd(
        &mut self,
        dev: BorrowedFd<'_>,
        cmd_op: u32,
        iov: &IoVecs,
        cmd: &[u8; 80],
        user_data: u64,
    ) -> io::Result<()> {
        let head = self.rings.atomic(self.sq.head).load(Ordering::Acquire);
        let tail = self.rings.atomic(self.sq.tail).load(Ordering::Relaxed) + self.pending;
        if tail.wrapping_sub(head) >= self.sq_entries {
            return Err(io::Error::other("io_uring submission queue full"));
        }
        let idx = tail & self.sq_mask;
        let mut sqe = [0u8; SQE_SIZE];
        sqe[0] = OP_URING_CMD;
        sqe[4..8].copy_from_slice(&dev.as_raw_fd().to_ne_bytes());
        sqe[8..12].copy_from_slice(&cmd_op.to_ne_bytes());
        sqe[16..24].copy_from_slice(&(iov.iov.as_ptr() as u64).to_ne_bytes());
        sqe[24..28].copy_from_slice(&(iov.iov.len() as u32).to_ne_bytes());
        sqe[32..40].copy_from_slice(&user_data.to_ne_bytes());
        sqe[48..128].copy_from_slice(cmd);
        // SAFETY: slot `idx` is ours (between the kernel's head and our tail) and in
        // bounds of the SQE mapping; the array slot likewise.
        unsafe {
            let dst = self.sqes.ptr.as_ptr().add(idx as usize * SQE_SIZE);
            std::ptr::copy_nonoverlapping(sqe.as_ptr(), dst, SQE_SIZE);
        }
        self.rings
            .atomic(self.sq.c + idx * 4)
            .store(idx, Ordering::Relaxed);
        self.pending += 1;
        Ok(())
    }

    /// Pass the queued submissions to the kernel, and wait until at least `min`
    /// completions are there (0: only gather those ready).
    pub fn submit_and_wait(&mut self, min: u32) -> io::Result<()> {
        let tail_a = self.rings.atomic(self.sq.tail);
        let tail = tail_a.load(Ordering::Relaxed).wrapping_add(self.pending);
        tail_a.store(tail, Ordering::Release);
        self.pending = 0;
        loop {
            // Without a polling thread the kernel takes submissions inside the call:
            // its head says what is left.
            let head = self.rings.atomic(self.sq.head).load(Ordering::Acquire);
            let left = tail.wrapping_sub(head);
            if left == 0 && min > 0 && self.completions_ready() >= min {
                return Ok(());
            }
            // GETEVENTS also with min 0: completions whose work was deferred to us
            // (IORING_SETUP_DEFER_TASKRUN) are made now.
            let flags = ENTER_GETEVENTS;
            // SAFETY: io_uring_enter on our ring with no signal mask.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_io_uring_enter,
                    self.fd.as_raw_fd(),
                    left,
                    min,
                    flags,
                    std::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            };
            match check(r as libc::c_int) {
                Ok(_) if min == 0 && left == 0 => return Ok(()),
                Ok(_) => {}
                // Interrupted, or the kernel is short of room for completions for now.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY)
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Completions there to be taken.
    pub fn completions_ready(&self) -> u32 {
        let head = self.rings.atomic(self.cq.head).load(Ordering::Relaxed);
        let tail = self.rings.atomic(self.cq.tail).load(Ordering::Acquire);
        tail.wrapping_sub(head)
    }

    /// The next completion: (user_data, result).
    pub fn next_completion(&mut self) -> Option<(u64, i32)> {
        let head_a = self.rings.atomic(self.cq.head);
        let head = head_a.load(Ordering::Relaxed);
        let tail = self.rings.atomic(self.cq.tail).load(Ordering::Acquire);
        if head == tail {
            return None;
        }
        let off = self.cq.b as usize + (head & self.cq_mask) as usize * CQE_SIZE;
        let mut cqe = [0u8; CQE_SIZE];
        assert!(off + CQE_SIZE <= self.rings.len);
        // SAFETY: the entry at head is written by the kernel before it moved the tail
        // (acquire above) and stays ours until we move the head.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.rings.ptr.as_ptr().add(off),
                cqe.as_mut_ptr(),
                CQE_SIZE,
            )
        };
        head_a.store(head.wrapping_add(1), Ordering::Release);
        let user_data = u64::from_ne_bytes(cqe[0..8].try_into().unwrap_or_default());
        let res = i32::from_ne_bytes(cqe[8..12].try_into().unwrap_or_default());
        Some((user_data, res))
    }
}

/// Memory the kernel reads and writes while a command is with it: a FUSE ring entry's
/// header and payload buffers, and the two-element iovec that names them.
pub struct IoVecs {
    bufs: Vec<Map>,
    iov: Box<[libc::iovec]>,
}

// SAFETY: the iovecs point into `bufs`, which moves with them.
unsafe impl Send for IoVecs {}

impl IoVecs {
    /// Zeroed buffers of these sizes.
    pub fn new(sizes: &[usize]) -> io::Result<IoVecs> {
        let bufs = sizes
            .iter()
            .map(|&n| Map::new(None, n.max(1), 0))
            .collect::<io::Result<Vec<_>>>()?;
        let iov = bufs
            .iter()
            .map(|m| libc::iovec {
                iov_base: m.addr() as *mut libc::c_void,
                iov_len: m.len,
            })
            .collect();
        Ok(IoVecs { bufs, iov })
    }

    /// The first two buffers, to read what the kernel wrote and write what it will read
    /// (None with fewer). Only while the kernel does not hold
    /// the command (after its completion, before it is submitted again): `&mut self`
    /// keeps our side to one user at a time.
    pub fn pair(&mut self) -> Option<(&mut [u8], &mut [u8])> {
        let [a, b, ..] = self.bufs.as_slice() else {
            return None;
        };
        // SAFETY: two of our own mappings, disjoint, of a.len and b.len bytes; the kernel
        // does not touch them while we hold the entry (see above), and &mut self makes
        // these the only references.
        unsafe {
            Some((
                std::slice::from_raw_parts_mut(a.ptr.as_ptr(), a.len),
                std::slice::from_raw_parts_mut(b.ptr.as_ptr(), b.len),
            ))
        }
    }
}

/// The size of a memory page.
pub fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the system.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).unwrap_or(4096).max(4096)
}

/// Run the calling thread on `cpu` only.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and sched_setaffinity get a
    // live local of the right size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        check(libc::sched_setaffinity(
            0,
            std::mem::size_of::<libc::cpu_set_t>(),
            &set,
        ))?;
    }
    Ok(())
}

/// How many CPUs the kernel may ever run (FUSE makes a queue for each), from
/// `/sys/devices/system/cpu/possible` ("0-3", "0,2-5").
pub fn possible_cpus() -> io::Result<usize> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    parse_cpu_list(&s).ok_or_else(|| io::Error::other(format!("cannot read the CPU list {s:?}")))
}

fn parse_cpu_list(s: &str) -> Option<usize> {
    let mut n = 0;
    for part in s.trim().split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        n += b.checked_sub(a)? + 1;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_give_the_number_of_cpus() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(2));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0,2-5,7"), Some(6));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn a_ring_completes_nothing_it_was_not_given() {
        let Ok(mut r) = Ring::new(4) else {
            eprintln!("skipped: no io_uring here");
            return;
        };
        r.submit_and_wait(0).unwrap();
        assert_eq!(r.next_completion(), None);
    }
}
