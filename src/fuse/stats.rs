//! Request counters of the FUSE adapter: per request type, how many the kernel sent, how
//! many were answered with an error, and the daemon's wall time on them. Written out on
//! SIGUSR1 and at unmount (`-o stats=FILE`), so a workload's cost can be read as requests
//! x time per request.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

macro_rules! ops {
    ($($v:ident => $name:literal),* $(,)?) => {
        /// A FUSE request type, as the kernel names it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Op { $($v),* }
        const NAMES: &[&str] = &[$($name),*];
    };
}

ops! {
    Init => "INIT", Lookup => "LOOKUP",
    Forget => "FORGET", BatchForget => "BATCH_FORGET",
    Getattr => "GETATTR", Setattr => "SETATTR", Readlink => "READLINK", Mknod => "MKNOD",
    Mkdir => "MKDIR", Unlink => "UNLINK", Rmdir => "RMDIR", Symlink => "SYMLINK",
    Rename => "RENAME", Link => "LINK", Open => "OPEN", Read => "READ", Write => "WRITE",
    Release => "RELEASE", Fsync => "FSYNC", Opendir => "OPENDIR", Readdir => "READDIR",
    Readdirplus => "READDIRPLUS", Releasedir => "RELEASEDIR", Fsyncdir => "FSYNCDIR",
    Statfs => "STATFS", Setxattr => "SETXATTR", Getxattr => "GETXATTR",
    Listxattr => "LISTXATTR", Removexattr => "REMOVEXATTR", Access => "ACCESS",
    Create => "CREATE", Fallocate => "FALLOCATE", Lseek => "LSEEK",
}

#[derive(Default)]
struct PerOp {
    count: AtomicU64,
    failed: AtomicU64,
    nanos: AtomicU64,
}

/// The counters of one mount.
pub struct Stats {
    since: Instant,
    per: Vec<PerOp>,
    /// READDIRPLUS entries sent (each one a LOOKUP the kernel need not make).
    plus_entries: AtomicU64,
    /// Requests that came over io_uring queues.
    ring: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            since: Instant::now(),
            per: NAMES.iter().map(|_| PerOp::default()).collect(),
            plus_entries: AtomicU64::new(0),
            ring: AtomicU64::new(0),
        }
    }
}

/// Counts one request and, when dropped, the time it took.
pub struct Timer<'a> {
    stats: &'a Stats,
    op: Op,
    t0: Instant,
}

impl Timer<'_> {
    /// The request is answered with an error.
    pub fn failed(&self) {
        self.stats.per[self.op as usize]
            .failed
            .fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        let p = &self.stats.per[self.op as usize];
        p.count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(self.t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        p.nanos.fetch_add(ns, Ordering::Relaxed);
    }
}

impl Stats {
    pub fn start(&self, op: Op) -> Timer<'_> {
        Timer {
            stats: self,
            op,
            t0: Instant::now(),
        }
    }

    pub fn via_ring(&self) {
        self.ring.fetch_add(1, Ordering::Relaxed);
    }

    pub fn plus_entries(&self, n: u64) {
        self.plus_entries.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters as a table: one line per request type the kernel sent, then the total.
    pub fn report(&self) -> String {
        let mut s = format!(
            "layerfs requests, {:.3} s since the mount\n{:<13} {:>10} {:>9} {:>11} {:>9}\n",
            self.since.elapsed().as_secs_f64(),
            "request",
            "count",
            "failed",
            "daemon ms",
            "us/req"
        );
        let (mut n, mut f, mut ns) = (0u64, 0u64, 0u64);
        for (name, p) in NAMES.iter().zip(&self.per) {
            let c = p.count.load(Ordering::Relaxed);
            if c == 0 {
                continue;
            }
            let (fl, t) = (
                p.failed.load(Ordering::Relaxed),
                p.nanos.load(Ordering::Relaxed),
            );
            (n, f, ns) = (n + c, f + fl, ns + t);
            row(&mut s, name, c, fl, t);
        }
        row(&mut s, "total", n, f, ns);
        let _ = writeln!(
            s,
            "READDIRPLUS entries: {}",
            self.plus_entries.load(Ordering::Relaxed)
        );
        let _ = writeln!(s, "over io_uring: {}", self.ring.load(Ordering::Relaxed));
        s
    }
}

fn row(s: &mut String, name: &str, count: u64, failed: u64, nanos: u64) {
    let ms = nanos as f64 / 1e6;
    let per = if count == 0 {
        0.0
    } else {
        nanos as f64 / 1e3 / count as f64
    };
    let _ = writeln!(
        s,
        "{name:<13} {count:>10} {failed:>9} {ms:>11.1} {per:>9.1}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_failures_and_totals() {
        let st = Stats::default();
        for i in 0..3 {
            let t = st.start(Op::Lookup);
            if i == 0 {
                t.failed();
            }
        }
        drop(st.start(Op::Getattr));
        st.plus_entries(5);
        let r = st.report();
        let line = |name: &str| {
            r.lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        };
        assert_eq!(line("LOOKUP").as_deref(), Some("LOOKUP 3 1"), "{r}");
        assert_eq!(line("GETATTR").as_deref(), Some("GETATTR 1 0"), "{r}");
        assert_eq!(line("total").as_deref(), Some("total 4 1"), "{r}");
        assert_eq!(
            line("SETATTR"),
            None,
            "a request never sent is not listed: {r}"
        );
        assert!(r.contains("READDIRPLUS entries: 5"), "{r}");
        assert_eq!(NAMES.len(), Op::Lseek as usize + 1);
    }
}
