//! The store-wide lock: an exclusive `flock(2)` on `ROOT/lock` held by every command that
//! writes. Readers take no lock: every write is a rename, so they never see half a change.
//! Taking the lock clears staging left behind by a writer that was killed; releasing it
//! clears the holder's own staging.

use super::error::{Error, Result, ResultExt};
use super::layout::Layout;
use std::fs::File;

/// Held while a command writes to the store; released on drop (or process death).
pub struct StoreLock {
    _file: File,
    layout: Layout,
}

impl Drop for StoreLock {
    /// Staging never outlives the command that made it (success or failure); this runs
    /// before the file (and so the flock) is released.
    fn drop(&mut self) {
        clear_tmp(&self.layout);
    }
}

impl StoreLock {
    /// Wait for the lock (calling `waiting` first if someone else holds it), then clean
    /// `tmp/`.
    pub fn exclusive(layout: &Layout, waiting: impl FnOnce()) -> Result<StoreLock> {
        layout.ensure()?;
        let path = layout.lock_file();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .io("opening the store lock", &path)?;
        // flock(2), as std implements it on Linux: released when the file is closed.
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                log::info!("waiting for the store lock {}", path.display());
                waiting();
                file.lock().io("locking", &path)?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("locking", &path, e)),
        }
        let lock = StoreLock {
            _file: file,
            layout: layout.clone(),
        };
        clear_tmp(layout);
        Ok(lock)
    }
}

/// Remove everything under `tmp/` (only the lock holder stages there). Best effort: it
/// runs on drop and after failures, and what it cannot remove now the next writer tries
/// again.
pub fn clear_tmp(layout: &Layout) {
    let tmp = layout.tmp();
    if let Ok(rd) = std::fs::read_dir(&tmp) {
        for e in rd.flatten() {
            let p = e.path();
            let _ = super::remove_tree(&p);
        }
    }
}
