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

impl Session {
    /// Serve queue `qid` until the kernel ends the session. Errors of the first
    /// registration come back here: the device fd then goes on serving.
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
        let mut ring = Ring::new((2 * DEPTH).next_power_of_two() as u32)?;
        let mut ents = (0..DEPTH)
            .map(|_| IoVecs::new(&[HEADER_SIZE, payload]))
            .collect::<io::Result<Vec<_>>>()?;
        for (i, e) in ents.iter().enumerate() {
            ring.push_cmd(dev.as_fd(), CMD_REGISTER, e, &cmd_req(qid, 0), i as u64)?;
        }
        let mut req = Vec::with_capacity(payload + IN_OUT + OP_IN);
        let mut live = DEPTH;
        let mut served = false;
        while live > 0 {
            wait_for_completion(&mut ring)?;
            while let Some((i, res)) = ring.next_completion() {
                let Some(e) = ents.get_mut(i as usize) else {
                    continue;
                };
                if res < 0 {
                    // The session's end (ENOTCONN, or cancelled), or a refused
                    // registration.
                    live -= 1;
                    let err = io::Error::from_raw_os_error(-res);
                    if !served && res != -libc::ENOTCONN && res != -libc::ECANCELED {
                        log::warn!("FUSE over io_uring, queue {qid}: {err}");
                        return Err(err);
                    }
                    continue;
                }
                if !served {
                    served = true;
                    self.ring_up
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                let commit_id = self.answer_entry(e, &mut req, handler);
                ring.push_cmd(
                    dev.as_fd(),
                    CMD_COMMIT_AND_FETCH,
                    e,
                    &cmd_req(qid, commit_id),
                    i,
                )?;
            }
        }
        Ok(())
    }

    /// Answer the request in entry `e`; its commit id.
    fn answer_entry(&self, e: &mut IoVecs, req: &mut Vec<u8>, handler: &dyn Handler) -> u64 {
        let mut bufs = e.bufs();
        let [hdr, payload] = bufs.as_mut_slice() else {
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
                if self.allowed(&h, &op) {
                    handler.request(&h, op, reply);
                } else {
                    reply.error(libc::EACCES);
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
