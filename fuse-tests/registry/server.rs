//! `Registry`: a real registry (Debian's `docker-registry`, CNCF distribution 2.8) on a free
//! loopback port, with a config the test writes: storage in a temp dir, and plain HTTP,
//! htpasswd Basic auth, TLS with a test CA, or token auth against `token::TokenServer`.
//! Ready when its log says "listening on" and `GET /v2/` answers; Drop kills and reaps it.

use super::http::{self, Curl};
use super::pki::Tls;
use super::token::{self, Grant, TokenServer};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = "docker-registry";

/// How clients must authenticate.
pub enum Auth {
    None,
    /// Users and passwords, stored bcrypt-hashed (`htpasswd -Bbn`).
    Htpasswd(Vec<(String, String)>),
    /// A token server with these users and grants.
    Token(Vec<(String, String)>, Vec<Grant>),
}

pub struct Opts {
    pub tls: bool,
    pub auth: Auth,
    /// `catalog.maxentries`: the page size of `/v2/_catalog` (pagination tests).
    pub catalog_max: Option<usize>,
    /// Accept schema1 manifests (`compatibility.schema1.enabled`).
    pub schema1: bool,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            tls: false,
            auth: Auth::None,
            catalog_max: None,
            schema1: false,
        }
    }
}

pub struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    tls: Option<Tls>,
    token: Option<TokenServer>,
    log: Arc<Mutex<String>>,
}

fn users(u: &[(&str, &str)]) -> Vec<(String, String)> {
    u.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

impl Registry {
    pub fn plain() -> Registry {
        Registry::start(Opts::default())
    }
    pub fn htpasswd(u: &[(&str, &str)]) -> Registry {
        Registry::start(Opts {
            auth: Auth::Htpasswd(users(u)),
            ..Opts::default()
        })
    }
    pub fn tls() -> Registry {
        Registry::start(Opts {
            tls: true,
            ..Opts::default()
        })
    }
    pub fn token(u: &[(&str, &str)], grants: Vec<Grant>) -> Registry {
        Registry::start(Opts {
            auth: Auth::Token(users(u), grants),
            ..Opts::default()
        })
    }

    pub fn start(opts: Opts) -> Registry {
        require(BIN);
        let dir = tempfile::Builder::new()
            .prefix("layerfs-registry")
            .tempdir()
            .expect("registry temp dir");
        std::fs::create_dir(dir.path().join("storage")).expect("mkdir storage");
        let tls = opts.tls.then(|| Tls::new(dir.path()));
        let token = match &opts.auth {
            Auth::Token(u, g) => {
                let u: Vec<(&str, &str)> =
                    u.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
                Some(TokenServer::start(dir.path(), &u, g.clone()))
            }
            _ => None,
        };
        if let Auth::Htpasswd(u) = &opts.auth {
            write_htpasswd(&dir.path().join("htpasswd"), u);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        while Instant::now() < deadline {
            let port = free_port();
            let cfg = config(dir.path(), port, &opts, tls.as_ref(), token.as_ref());
            let path = dir.path().join("config.yml");
            std::fs::write(&path, cfg).expect("write config.yml");
            match launch(&path, deadline) {
                Ok((child, log)) => {
                    let r = Registry {
                        child,
                        port,
                        dir,
                        tls,
                        token,
                        log,
                    };
                    r.confirm_v2();
                    return r;
                }
                Err(e) => last = e,
            }
        }
        panic!("docker-registry did not start within 60 s; last attempt: {last}");
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }
    /// The CA that signed the server certificate (TLS variant only).
    pub fn ca(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca.cert.as_path())
    }
    /// The registry's filesystem storage root.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }
    /// Where the registry keeps the bytes of blob `sha256:HEX`.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }
    /// Everything the registry logged so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
    /// curl `PATH` (e.g. `/v2/`) on this registry, trusting its CA; `extra` before the URL.
    pub fn curl(&self, path: &str, extra: &[&str]) -> Curl {
        let url = format!("{}{path}", self.url());
        let mut args: Vec<&str> = Vec::new();
        let ca;
        if let Some(p) = self.ca() {
            ca = p.display().to_string();
            args.extend(["--cacert", &ca]);
        }
        args.extend_from_slice(extra);
        args.push(&url);
        http::curl(&args)
    }

    /// The ready line is printed after the listener is bound; still ask the API once.
    fn confirm_v2(&self) {
        let c = self.curl("/v2/", &[]);
        assert!(
            c.status == 200 || c.status == 401,
            "GET {}/v2/ answered {} ({}); registry log:\n{}",
            self.url(),
            c.status,
            c.stderr,
            self.log()
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Panic with the way to get `tool` when it is not installed.
pub fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed: run fuse-tests/run.sh as root once (it installs \
         docker-registry, skopeo, umoci, apache2-utils, openssl, curl, pigz)"
    );
}

/// A port nobody listens on right now (bound, read, released; a race is retried).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

fn write_htpasswd(path: &Path, users: &[(String, String)]) {
    require("htpasswd");
    let mut text = String::new();
    for (u, p) in users {
        let o = Command::new("htpasswd")
            .args(["-Bbn", u, p])
            .stdin(Stdio::null())
            .output()
            .expect("run htpasswd");
        assert!(o.status.success(), "htpasswd -Bbn {u}: failed");
        text += String::from_utf8_lossy(&o.stdout).trim();
        text += "\n";
    }
    std::fs::write(path, text).expect("write htpasswd");
}

fn config(
    dir: &Path,
    port: u16,
    o: &Opts,
    tls: Option<&Tls>,
    token: Option<&TokenServer>,
) -> String {
    let mut c = format!(
        "version: 0.1\nlog:\n  level: info\n  formatter: text\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: layerfs-test-secret\n",
        dir.join("storage").display()
    );
    if let Some(t) = tls {
        c += &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            t.server.cert.display(),
            t.server.key.display()
        );
    }
    match (&o.auth, token) {
        (Auth::Htpasswd(_), _) => {
            c += &format!(
                "auth:\n  htpasswd:\n    realm: layerfs-test\n    path: {}\n",
                dir.join("htpasswd").display()
            );
        }
        (Auth::Token(..), Some(t)) => {
            c += &format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    \
                 rootcertbundle: {}\n",
                t.realm(),
                token::SERVICE,
                token::ISSUER,
                t.cert().display()
            );
        }
        _ => {}
    }
    if let Some(n) = o.catalog_max {
        c += &format!("catalog:\n  maxentries: {n}\n");
    }
    if o.schema1 {
        c += "compatibility:\n  schema1:\n    enabled: true\n";
    }
    c
}

type Log = Arc<Mutex<String>>;

/// Start the registry and read its log until "listening on" (Ok) or its exit (Err, with the
/// log: a port taken in the meantime is retried by the caller).
fn launch(cfg: &Path, deadline: Instant) -> Result<(Child, Log), String> {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve").arg(cfg).stdin(Stdio::null());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    // The registry reads REGISTRY_* variables as config overrides: none from outside.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("REGISTRY_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd.spawn().map_err(|e| format!("spawn {BIN}: {e}"))?;
    let log: Log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel::<String>();
    let out = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    drain(BufReader::new(out), log.clone(), tx.clone());
    drain(BufReader::new(err), log.clone(), tx);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("listening on") => return Ok((child, log)),
            Ok(_) => continue,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let text = log.lock().map(|l| l.clone()).unwrap_or_default();
                return Err(format!(
                    "the registry exited or hung before listening:\n{text}"
                ));
            }
        }
    }
}

/// Copy a pipe into the log (forever: the registry logs every request), announcing lines.
fn drain(r: impl BufRead + Send + 'static, log: Log, tx: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in r.lines() {
            let Ok(line) = line else { break };
            if let Ok(mut l) = log.lock() {
                l.push_str(&line);
                l.push('\n');
            }
            let _ = tx.send(line);
        }
    });
}
