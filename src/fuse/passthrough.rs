//! FUSE passthrough bookkeeping: one backing file per inode while it is open, shared by
//! every open of it that may use passthrough, and the open replies that attach to it.

use super::LayerFs;
use crate::kernel::BackingId;
use crate::kernel::abi::{FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE, FOPEN_PASSTHROUGH};
use std::io;
use std::sync::atomic::Ordering;

/// One passthrough backing file shared by every open of an inode.
pub(super) struct Backing {
    pub(super) id: BackingId,
    pub(super) upper: bool,
    pub(super) opens: usize,
}

impl LayerFs {
    /// The open reply's flags and backing id: passthrough when allowed and consistent
    /// with other opens of the inode, else through the daemon.
    pub(super) fn open_mode(&self, ino: u64, fh: u64, upper: bool) -> (u32, u32) {
        if !self.passthrough.load(Ordering::Relaxed) {
            return (FOPEN_KEEP_CACHE, 0);
        }
        match self.attach_backing(ino, fh, upper) {
            // We hold a reference: the backing cannot go away under us.
            Ok(true) => match self.backings.get(&ino) {
                Some(b) => (FOPEN_PASSTHROUGH, b.id.id),
                None => (FOPEN_DIRECT_IO, 0),
            },
            Ok(false) => (FOPEN_DIRECT_IO, 0),
            Err(_) => (FOPEN_KEEP_CACHE, 0),
        }
    }

    /// Take a reference on the inode's backing file, creating it if needed. `Ok(false)`:
    /// the inode's backing is the other copy (a reader still on the lower file after a
    /// copy-up), so this open must not use passthrough.
    fn attach_backing(&self, ino: u64, fh: u64, upper: bool) -> io::Result<bool> {
        let mut entry = match self.backings.entry(ino) {
            dashmap::Entry::Occupied(o) => o,
            dashmap::Entry::Vacant(v) => {
                let (file, file_upper) = self.fs.backing_file(ino)?;
                if file_upper != upper {
                    return Ok(false);
                }
                let Some(n) = self.notifier.get() else {
                    return Ok(false);
                };
                match n.open_backing(&file) {
                    Ok(id) => {
                        v.insert(Backing {
                            id,
                            upper,
                            opens: 1,
                        });
                        self.fh_backing.insert(fh, ino);
                        return Ok(true);
                    }
                    Err(e) => {
                        log::info!("FUSE passthrough refused ({e}); serving reads ourselves");
                        self.passthrough.store(false, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
        };
        let b = entry.get_mut();
        if b.upper != upper {
            return Ok(false);
        }
        b.opens += 1;
        self.fh_backing.insert(fh, ino);
        Ok(true)
    }

    pub(super) fn detach_backing(&self, fh: u64) {
        if let Some((_, ino)) = self.fh_backing.remove(&fh) {
            self.backings.remove_if_mut(&ino, |_, b| {
                b.opens -= 1;
                b.opens == 0
            });
        }
    }
}
