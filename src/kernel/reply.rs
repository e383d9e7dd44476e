//! Answers to the kernel: a [`Reply`] per request (written once, in one write, on the
//! device fd the request came from), notifications, and passthrough backing ids.

use super::abi::{self, Writer};
use crate::sys;
use std::fs::File;
use std::io::{IoSlice, Write};
use std::os::fd::AsFd;
use std::sync::Arc;

/// Write one message (header + body parts) to the device. ENOENT: the request was
/// interrupted and is gone, which is not an error of ours.
fn send(dev: &File, unique: u64, error: i32, body: &[&[u8]]) {
    let len: usize = abi::OUT_HEADER + body.iter().map(|b| b.len()).sum::<usize>();
    let mut h = Writer::with_capacity(abi::OUT_HEADER);
    h.u32(len as u32).u32(error as u32).u64(unique);
    let mut parts = Vec::with_capacity(1 + body.len());
    parts.push(IoSlice::new(&h.buf));
    parts.extend(body.iter().map(|b| IoSlice::new(b)));
    let mut dev = dev;
    match dev.write_vectored(&parts) {
        Ok(n) if n == len => {}
        Ok(n) => log::error!("reply {unique}: the kernel took {n} of {len} bytes"),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => log::error!("reply {unique}: {e}"),
    }
}

/// Where an answer goes: written to the device fd the request came from, or into the
/// io_uring entry that brought it (committed by the ring's thread afterwards).
pub(super) enum Sink<'a> {
    Dev(&'a File),
    Ring(RingAnswer<'a>),
}

/// A ring entry's reply space: `struct fuse_out_header` goes at the start of `header`,
/// the body into `payload`, and its length into `payload_sz`.
pub(super) struct RingAnswer<'a> {
    pub header: &'a mut [u8],
    pub payload: &'a mut [u8],
    pub payload_sz: &'a mut u32,
}

impl RingAnswer<'_> {
    fn write(&mut self, unique: u64, mut error: i32, body: &[&[u8]]) {
        let mut at = 0;
        if body.iter().map(|b| b.len()).sum::<usize>() > self.payload.len() {
            log::error!("reply {unique}: the body does not fit the ring's payload buffer");
            error = -libc::EIO;
        } else {
            for b in body {
                self.payload[at..at + b.len()].copy_from_slice(b);
                at += b.len();
            }
        }
        let mut h = Writer::with_capacity(abi::OUT_HEADER);
        h.u32((abi::OUT_HEADER + at) as u32)
            .u32(error as u32)
            .u64(unique);
        self.header[..abi::OUT_HEADER].copy_from_slice(&h.buf);
        *self.payload_sz = at as u32;
    }
}

/// The answer to one request. Dropped unanswered, it answers EIO, so a request is never
/// left waiting.
pub struct Reply<'a> {
    sink: Sink<'a>,
    unique: u64,
    done: bool,
}

impl<'a> Reply<'a> {
    pub(super) fn new(dev: &'a File, unique: u64, expects_reply: bool) -> Self {
        Reply {
            sink: Sink::Dev(dev),
            unique,
            done: !expects_reply,
        }
    }

    /// The answer to a request that came through an io_uring entry.
    pub(super) fn to_ring(answer: RingAnswer<'a>, unique: u64) -> Self {
        Reply {
            sink: Sink::Ring(answer),
            unique,
            done: false,
        }
    }

    fn send(&mut self, error: i32, body: &[&[u8]]) {
        if self.done {
            return;
        }
        self.done = true;
        match &mut self.sink {
            Sink::Dev(dev) => send(dev, self.unique, error, body),
            Sink::Ring(a) => a.write(self.unique, error, body),
        }
    }

    /// Fail with `errno` (positive).
    pub fn error(mut self, errno: i32) {
        self.send(-errno, &[]);
    }

    /// Success with no body.
    pub fn ok(mut self) {
        self.send(0, &[]);
    }

    /// Success with these bytes as the body.
    pub fn data(mut self, body: &[u8]) {
        self.send(0, &[body]);
    }

    /// Success with a built body.
    pub fn body(mut self, w: &Writer) {
        self.send(0, &[&w.buf]);
    }
}

impl Drop for Reply<'_> {
    fn drop(&mut self) {
        self.send(-libc::EIO, &[]);
    }
}

/// Tells the kernel to drop what it cached (any device fd of the session will do).
#[derive(Clone)]
pub struct Notifier {
    pub(super) dev: Arc<File>,
}

impl Notifier {
    /// Drop the cached attributes of node `ino`, and its page cache from `offset` for
    /// `len` bytes (offset -1: attributes only; len 0: to the end).
    pub fn inval_inode(&self, ino: u64, offset: i64, len: i64) {
        let mut w = Writer::with_capacity(24);
        w.u64(ino).u64(offset as u64).u64(len as u64);
        send(&self.dev, 0, abi::NOTIFY_INVAL_INODE, &[&w.buf]);
    }

    /// Register `file` as a passthrough backing file.
    pub fn open_backing(&self, file: &File) -> std::io::Result<BackingId> {
        let id = sys::fuse_backing_open(self.dev.as_fd(), file.as_fd())?;
        Ok(BackingId {
            dev: Arc::clone(&self.dev),
            id,
        })
    }
}

/// A registered backing file; the registration is dropped with it.
pub struct BackingId {
    dev: Arc<File>,
    pub id: u32,
}

impl Drop for BackingId {
    fn drop(&mut self) {
        if let Err(e) = sys::fuse_backing_close(self.dev.as_fd(), self.id) {
            log::debug!("closing backing {}: {e}", self.id);
        }
    }
}
