//! FUSE over io_uring (`FUSE_OVER_IO_URING`, kernels from 6.14 with the fuse module's
//! `enable_uring` on): one queue per CPU, each served by a thread pinned to that CPU.
//! The kernel hands a request to the queue of the CPU that made it, so the program and
//! the daemon take turns on one CPU: no wake-up of another CPU per round trip, which
//! on a small VM is most of a round trip's cost. FORGET and INTERRUPT still come over
//! the device fd, as do all requests until every queue is registered.
//!
//! An entry is a header buffer (the request's `fuse_in_header`, its per-opcode struct,
//! and the entry's commit id and payload size) and a payload buffer (names, data; the
//! reply's body). REGISTER hands an entry to the kernel; COMMIT_AND_FETCH answers the
//! request in it and hands it back for the next.

use super::abi;
use super::reply::{Reply, RingAnswer};
use super::request;
use super::session::{Handler, SPIN, Session};
use crate::sys::{self, IoVecs, Ring};
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

/// `FUSE_OVER_IO_URING` in INIT's flags (flags2 bit 9).
pub const OVER_IO_URING: u64 = 1 << 41;
const CMD_REGISTER: u32 = 1;
const CMD_COMMIT_AND_FETCH: u32 = 2;
/// `struct fuse_uring_req_header`: the in/out header area, the per-opcode area, then
/// `struct fuse_uring_ent_in_out` (flags, commit_id, payload_sz, padding, reserved).
const IN_OUT: usize = 128;
const OP_IN: usize = 128;
const ENT: usize = IN_OUT + OP_IN;
const HEADER_SIZE: usize = ENT + 32;
/// Entries per queue: requests the kernel can hand a queue before its thread answers.
const DEPTH: usize = 4;

/// The 80-byte command area: `struct fuse_uring_cmd_req` (flags, commit_id, qid).
fn cmd_req(qid: u16, commit_id: u64) -> [u8; 80] {
    let mut c = [0u8; 80];
    c[8..16].copy_from_slice(&commit_id.to_ne_bytes());
    c[16..18].copy_from_slice(&qid.to_ne_bytes());
    c
}

/// How many queues this machine's rings need (one per possible CPU), when io_uring
/// works here (it can be switched off: `kernel.io_uring_disabled`); None otherwise.
pub(super) fn queues_here() -> Option<usize> {
    let probe = sys::possible_cpus().and_then(|n| Ring::new(2).map(|_| n));
    match probe {
        Ok(n) if n <= u16::MAX as usize => Some(n),
        Ok(n) => {
            log::warn!("FUSE over io_uring not used: {n} CPUs");
            None
        }
        Err(e) => {
            log::warn!("FUSE over io_uring not used: {e}");
            None
        }
    }
}

impl Session {
    /// Serve queue `qid` until the kernel ends the session. A queue that cannot be set
    /// up is refused to the kernel ([`refuse_queue`]), which then keeps the session on
    /// the device fd. Once registered, the thread never leaves while the kernel holds
    /// its entries: requests from this CPU would wait for it forever.
    pub(super) fn serve_queue(
        &self,
        dev: &File,
        qid: u16,
        payload: usize,
        handler: &dyn Handler,
    ) -> io::Result<()> {
        if let Err(e) = sys::pin_to_cpu(qid as usize) {
            log::debug!("FUSE queue {qid}: cannot run on CPU {qid} only: {e}");
        }
        // The buffers before the ring: dropped after it (the ring's teardown is what
        // ends the kernel's use of them).
        let set_up = (0..DEPTH)
            .map(|_| IoVecs::new(&[HEADER_SIZE, payload]))
            .collect::<io::Result<Vec<_>>>()
            .and_then(|ents| Ok((ents, Ring::new((2 * DEPTH).next_power_of_two() as u32)?)));
        let (mut ents, mut ring) = match set_up {
            Ok(r) => r,
            Err(e) => {
                refuse_queue(dev, qid, &e);
                return Err(e);
            }
        };
        for (i, e) in ents.iter().enumerate() {
            let pushed = ring.push_cmd(dev.as_fd(), CMD_REGISTER, e, &cmd_req(qid, 0), i as u64);
            pushed.unwrap_or_else(|e| fatal(qid, e));
        }
        let mut req = Vec::with_capacity(payload + IN_OUT + OP_IN);
        let mut live = DEPTH;
        while live > 0 {
            wait_for_completion(&mut ring).unwrap_or_else(|e| fatal(qid, e));
            while let Some((i, res)) = ring.next_completion() {
                let Some(e) = ents.get_mut(i as usize) else {
                    continue;
                };
                if res < 0 {
                    // The session's end, or a refused registration (the kernel then
                    // serves over the device fd).
                    live -= 1;
                    if ![libc::ENOTCONN, libc::ECONNABORTED, libc::ECANCELED].contains(&-res) {
                        let err = io::Error::from_raw_os_error(-res);
                        log::warn!("FUSE over io_uring, queue {qid}, entry {i}: {err}");
                    }
                    continue;
                }
                self.ring_up
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                let commit_id = self.answer_entry(e, &mut req, handler);
                let cmd = cmd_req(qid, commit_id);
                let pushed = ring.push_cmd(dev.as_fd(), CMD_COMMIT_AND_FETCH, e, &cmd, i);
                pushed.unwrap_or_else(|e| fatal(qid, e));
            }
        }
        Ok(())
    }

    /// Answer the request in entry `e`; its commit id.
    fn answer_entry(&self, e: &mut IoVecs, req: &mut Vec<u8>, handler: &dyn Handler) -> u64 {
        let Some((hdr, payload)) = e.pair() else {
            return 0;
        };
        let (in_out, rest) = hdr.split_at_mut(IN_OUT);
        let (op_in, ent) = rest.split_at_mut(OP_IN);
        let commit_id = u64::from_ne_bytes(ent[8..16].try_into().unwrap_or_default());
        let sent = u32::from_ne_bytes(ent[16..20].try_into().unwrap_or_default()) as usize;
        let sent = sent.min(payload.len());
        // One contiguous request, as the device fd gives it: header, the per-opcode
        // struct (the header's length says how long), then the payload.
        let len = u32::from_ne_bytes(in_out[0..4].try_into().unwrap_or_default()) as usize;
        let op_len = len.saturating_sub(abi::IN_HEADER + sent).min(OP_IN);
        req.clear();
        req.extend_from_slice(&in_out[..abi::IN_HEADER]);
        req.extend_from_slice(&op_in[..op_len]);
        req.extend_from_slice(&payload[..sent]);
        let mut payload_sz = 0u32;
        let unique = u64::from_ne_bytes(in_out[8..16].try_into().unwrap_or_default());
        let answer = RingAnswer {
            header: in_out,
            payload,
            payload_sz: &mut payload_sz,
        };
        match request::parse(req) {
            Some((mut h, op)) => {
                h.ring = true;
                let reply = Reply::to_ring(answer, h.unique);
                if !self.allowed(&h, &op) {
                    reply.error(libc::EACCES);
                } else if catch_unwind(AssertUnwindSafe(|| handler.request(&h, op, reply))).is_err()
                {
                    // The reply, dropped on the way out, answered EIO; the entry is still
                    // committed, so the queue goes on.
                    log::error!("a {} request panicked", h.opcode);
                }
            }
            None => {
                log::error!("a malformed request of {} bytes over io_uring", req.len());
                Reply::to_ring(answer, unique).error(libc::EINVAL);
            }
        }
        ent[16..20].copy_from_slice(&payload_sz.to_ne_bytes());
        commit_id
    }
}

/// Submit what is queued, then wait for a completion: for [`SPIN`] without sleeping
/// (the program that asked usually asks again within microseconds, and a CPU that went
/// idle is slow to wake on a VM), then in the kernel.
fn wait_for_completion(ring: &mut Ring) -> io::Result<()> {
    let until = Instant::now() + SPIN;
    loop {
        ring.submit_and_wait(0)?;
        if ring.completions_ready() > 0 {
            return Ok(());
        }
        if Instant::now() >= until {
            return ring.submit_and_wait(1);
        }
        std::hint::spin_loop();
    }
}

/// Queue `qid` will not be registered (`why`): a REGISTER the kernel refuses (an iovec
/// count other than 2) puts the session back on the device fd, where the kernel would
/// otherwise hold every request until all queues are up. When even that cannot be
/// sent, the daemon ends, so the mount fails (ENOTCONN) instead of hanging.
pub(super) fn refuse_queue(dev: &File, qid: u16, why: &io::Error) {
    let refused = (|| {
        let bad = IoVecs::new(&[HEADER_SIZE])?;
        let mut ring = Ring::new(2)?;
        ring.push_cmd(dev.as_fd(), CMD_REGISTER, &bad, &cmd_req(qid, 0), 0)?;
        ring.submit_and_wait(1)?;
        Ok::<_, io::Error>(ring.next_completion())
    })();
    match refused {
        Ok(Some((_, res))) if res < 0 => {
            log::warn!("FUSE over io_uring not used: queue {qid}: {why}");
        }
        other => {
            log::error!("queue {qid}: {why}, and it cannot be refused ({other:?})");
            std::process::abort();
        }
    }
}

/// A queue whose ring fails after registration cannot be given up (its entries stay
/// with the kernel): end the daemon, so the mount fails instead of hanging.
fn fatal(qid: u16, e: io::Error) -> ! {
    log::error!("FUSE over io_uring, queue {qid}: {e}");
    std::process::abort();
}
