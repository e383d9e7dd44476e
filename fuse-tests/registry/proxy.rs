//! Network faults in test code: `Proxy`, an HTTP/1.1 forwarder in front of a plain registry
//! that records every request (method, path, Range) and can cut a blob's body after N bytes
//! or hold it there until the test releases it; and `Junk`, a port that answers anything with
//! bytes that are not HTTP, counting the connections it got.

use super::http;
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub enum Fault {
    /// Close the connection after `after` body bytes of `GET .../blobs/DIGEST`, `times` times.
    Cut {
        digest: String,
        after: usize,
        times: usize,
    },
    /// Hold every `GET .../blobs/D` (D in `digests`) after `after` body bytes until
    /// `release()`.
    Stall { digests: Vec<String>, after: usize },
}

/// One request that went through.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    /// The body was cut short on purpose.
    pub cut: bool,
}

struct Inner {
    fault: Fault,
    log: Vec<Seen>,
    stalled: usize,
    released: bool,
}

struct Shared {
    m: Mutex<Inner>,
    cv: Condvar,
    upstream: u16,
}

pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Forward to the plain registry on 127.0.0.1:`upstream`.
    pub fn start(upstream: u16, fault: Fault) -> Proxy {
        let shared = Arc::new(Shared {
            m: Mutex::new(Inner {
                fault,
                log: Vec::new(),
                stalled: 0,
                released: false,
            }),
            cv: Condvar::new(),
            upstream,
        });
        let l = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = l.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let (sh, sp) = (shared.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for c in l.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = c {
                    let sh = sh.clone();
                    std::thread::spawn(move || {
                        let _ = forward(&sh, c);
                    });
                }
            }
        });
        Proxy {
            port,
            shared,
            stop,
            thread: Some(thread),
        }
    }
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.m.lock().expect("proxy").log.clone()
    }
    /// Wait (condition variable, with a limit) until `n` transfers are being held.
    pub fn wait_stalled(&self, n: usize, limit: Duration) -> bool {
        self.wait(limit, |i| i.stalled >= n)
    }
    /// Wait until the requests so far satisfy `cond`.
    pub fn wait_log(&self, limit: Duration, cond: impl Fn(&[Seen]) -> bool) -> bool {
        self.wait(limit, |i| cond(&i.log))
    }
    fn wait(&self, limit: Duration, cond: impl Fn(&Inner) -> bool) -> bool {
        let end = Instant::now() + limit;
        let mut g = self.shared.m.lock().expect("proxy");
        while !cond(&g) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            g = self.shared.cv.wait_timeout(g, left).expect("proxy").0;
        }
        true
    }
    /// Let held transfers go on (and hold no more).
    pub fn release(&self) {
        self.shared.m.lock().expect("proxy").released = true;
        self.shared.cv.notify_all();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.release();
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What to do with this response body: (cut after, stall after).
fn plan(sh: &Shared, method: &str, path: &str) -> (Option<usize>, Option<usize>) {
    let mut g = sh.m.lock().expect("proxy");
    let is_blob = |d: &str| method == "GET" && path.ends_with(&format!("/blobs/{d}"));
    match &mut g.fault {
        Fault::Cut {
            digest,
            after,
            times,
        } if *times > 0 && is_blob(digest) => {
            *times -= 1;
            (Some(*after), None)
        }
        Fault::Stall { digests, after } if digests.iter().any(|d| is_blob(d)) => {
            (None, Some(*after))
        }
        _ => (None, None),
    }
}

/// One exchange per client connection (both sides get `Connection: close`).
fn forward(sh: &Shared, client: TcpStream) -> std::io::Result<()> {
    let mut cr = BufReader::new(client.try_clone()?);
    let mut cw = client;
    let Some(req) = http::read_request(&mut cr)? else {
        return Ok(());
    };
    let path = req.path().to_string();
    let (cut, stall) = plan(sh, &req.method, &path);
    let up = TcpStream::connect(("127.0.0.1", sh.upstream))?;
    let mut uw = up.try_clone()?;
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
    for (k, v) in &req.headers {
        if !k.eq_ignore_ascii_case("connection") {
            head += &format!("{k}: {v}\r\n");
        }
    }
    head += "Connection: close\r\n\r\n";
    uw.write_all(head.as_bytes())?;
    uw.write_all(&req.body)?;
    let mut ur = BufReader::new(up);
    let (status, headers) = http::read_head(&mut ur)?.unwrap_or_default();
    let mut rh = format!("{status}\r\n");
    for (k, v) in &headers {
        if !k.eq_ignore_ascii_case("connection") {
            rh += &format!("{k}: {v}\r\n");
        }
    }
    rh += "Connection: close\r\n\r\n";
    cw.write_all(rh.as_bytes())?;
    {
        let mut g = sh.m.lock().expect("proxy");
        g.log.push(Seen {
            method: req.method.clone(),
            path,
            range: req.header("range").map(str::to_string),
            cut: cut.is_some(),
        });
        sh.cv.notify_all();
    }
    let no_body = req.method == "HEAD" || status.contains(" 204 ") || status.contains(" 304 ");
    if no_body {
        return Ok(());
    }
    if let Some(n) = cut.or(stall) {
        copy_n(&mut ur, &mut cw, n)?;
        cw.flush()?;
        if cut.is_some() {
            let _ = cw.shutdown(Shutdown::Both);
            return Ok(());
        }
        hold(sh);
    }
    std::io::copy(&mut ur, &mut cw)?;
    cw.flush()
}

fn copy_n(r: &mut impl Read, w: &mut impl Write, n: usize) -> std::io::Result<()> {
    std::io::copy(&mut r.take(n as u64), w).map(|_| ())
}

/// Count this transfer as held and wait for `release()` (no limit: Drop releases).
fn hold(sh: &Shared) {
    let mut g = sh.m.lock().expect("proxy");
    if g.released {
        return;
    }
    g.stalled += 1;
    sh.cv.notify_all();
    while !g.released {
        g = sh.cv.wait(g).expect("proxy");
    }
}

/// A port that answers every connection with a line that is not HTTP, then closes.
pub struct Junk {
    port: u16,
    count: Arc<Mutex<usize>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Junk {
    pub fn start() -> Junk {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let count = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c2, s2) = (count.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for c in l.incoming() {
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(mut c) = c {
                    *c2.lock().expect("count") += 1;
                    let _ = c.write_all(b"SSH-2.0-OpenSSH_9.2p1 not-a-registry\r\n");
                    let _ = c.shutdown(Shutdown::Both);
                }
            }
        });
        Junk {
            port,
            count,
            stop,
            thread: Some(thread),
        }
    }
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        *self.count.lock().expect("count")
    }
}

impl Drop for Junk {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
