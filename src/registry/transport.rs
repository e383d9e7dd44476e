//! HTTP to one registry endpoint: the scheme (verified HTTPS; for insecure registries
//! unverified HTTPS, then plain HTTP), the `/v2/` ping, auth on every request (a 401 is
//! answered once with the challenge's credentials or token), retries with backoff for
//! transient failures, the registry's error bodies turned into messages, and blob bodies
//! that resume with `Range` when a connection drops.

use super::auth::{self, Auth, TokenRequest};
use super::credentials::Credential;
use super::error::{Error, Result};
use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;
use ureq::http::Response;
use ureq::tls::{Certificate, ClientCert, RootCerts, TlsConfig};

/// How to reach an endpoint, resolved from the config, certs.d and the credentials.
pub struct Spec {
    /// The registry as references name it (`docker.io`, `127.0.0.1:5000`): for messages.
    pub name: String,
    /// Where to connect: `host[:port]`, or a full base URL (`http://mirror:5000`).
    pub address: String,
    /// Insecure: unverified HTTPS, falling back to plain HTTP.
    pub insecure: bool,
    /// CAs trusted beyond the system's, and a client certificate.
    pub cas: Vec<Certificate<'static>>,
    pub client_cert: Option<ClientCert>,
    pub system_roots: Vec<Certificate<'static>>,
    pub credential: Option<Credential>,
}

/// A request body.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// Sent chunked; not replayable, so it is never retried.
    Stream(&'a mut dyn Read),
}

/// One request: method, path (from `/v2/`) or absolute URL, the auth scope it needs, extra
/// headers, and what it is for the error message ("GET manifest v1").
pub struct Call<'a> {
    pub method: &'static str,
    pub url: String,
    pub scope: &'a str,
    pub headers: Vec<(&'static str, String)>,
    pub what: String,
}

impl<'a> Call<'a> {
    pub fn new(method: &'static str, url: impl Into<String>, scope: &'a str) -> Call<'a> {
        let url = url.into();
        Call {
            method,
            what: format!("{method} {url}"),
            url,
            scope,
            headers: Vec::new(),
        }
    }
    pub fn header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }
    pub fn what(mut self, w: impl Into<String>) -> Self {
        self.what = w.into();
        self
    }
}

/// A registry endpoint after a successful ping.
pub struct Endpoint {
    pub name: String,
    /// `https://host[:port]` or `http://...`, no trailing slash.
    pub base: String,
    agent: ureq::Agent,
    auth: Auth,
}

const RETRIES: u32 = 4;

fn agent(tls: TlsConfig) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(120)))
        .user_agent(format!("layerfs/{}", env!("CARGO_PKG_VERSION")))
        .max_redirects(10)
        .build()
        .new_agent()
}

impl Endpoint {
    /// Connect: pick the scheme, ping `/v2/`, and learn the challenge.
    pub fn connect(spec: Spec) -> Result<Endpoint> {
        let a = &spec.address;
        let bases: Vec<String> = if a.starts_with("http://") || a.starts_with("https://") {
            vec![a.trim_end_matches('/').to_string()]
        } else if spec.insecure {
            vec![format!("https://{a}"), format!("http://{a}")]
        } else {
            vec![format!("https://{a}")]
        };
        let tls = tls_config(&spec);
        let agent = agent(tls);
        let mut last: Option<Error> = None;
        for base in bases {
            let ep = Endpoint {
                name: spec.name.clone(),
                base,
                agent: agent.clone(),
                auth: Auth::new(spec.credential.clone()),
            };
            match ep.ping() {
                Ok(()) => return Ok(ep),
                Err(e) => {
                    log::debug!("{}: {e}", ep.base);
                    let answered = e.status().is_some();
                    last = Some(e);
                    if answered {
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::invalid(format!("no address for {}", spec.name))))
    }

    /// `GET /v2/`: 200, or 401 with a challenge we remember, means a registry.
    fn ping(&self) -> Result<()> {
        let url = format!("{}/v2/", self.base);
        let what = format!("registry {} ({url})", self.name);
        let resp = self.retrying(&what, true, || self.agent.get(&url).call())?;
        let status = resp.status().as_u16();
        let is_registry = resp
            .headers()
            .get("docker-distribution-api-version")
            .is_some();
        match status {
            200..=299 => Ok(()),
            401 => {
                if let Some(c) = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .and_then(auth::parse_challenge)
                {
                    self.auth.challenged(c);
                }
                Ok(())
            }
            s => Err(Error::Status {
                what,
                status: s,
                detail: if is_registry {
                    String::new()
                } else {
                    "not a registry: GET /v2/ should answer 200 or 401".into()
                },
            }),
        }
    }

    /// Send a request, answering auth challenges, retrying transient failures (bodies that
    /// can be replayed only). Any status below 400 is returned; 400 and above is an error
    /// with the registry's own message.
    pub fn send(&self, call: &Call<'_>, mut body: Body<'_>) -> Result<Response<ureq::Body>> {
        let url = self.url(&call.url);
        for attempt in 0..2 {
            let authz = self.auth.header(call.scope, &|req| self.fetch_token(req))?;
            let replayable = !matches!(body, Body::Stream(_));
            let resp = self.retrying(&call.what, replayable, || {
                let mut rb = ureq::http::Request::builder().method(call.method).uri(&url);
                for (k, v) in &call.headers {
                    rb = rb.header(*k, v);
                }
                if let Some(a) = &authz {
                    rb = rb.header("authorization", a);
                }
                match &mut body {
                    Body::Empty => self.agent.run(rb.body(()).map_err(http_err)?),
                    Body::Bytes(b) => self.agent.run(rb.body(*b).map_err(http_err)?),
                    Body::Stream(r) => {
                        let sb = ureq::SendBody::from_reader(&mut **r);
                        self.agent.run(rb.body(sb).map_err(http_err)?)
                    }
                }
            })?;
            let status = resp.status().as_u16();
            if status == 401 && attempt == 0 && replayable {
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .and_then(auth::parse_challenge);
                if let Some(c) = challenge {
                    self.auth.forget_tokens();
                    self.auth.challenged(c);
                    continue;
                }
            }
            if status >= 400 {
                return Err(self.status_error(&call.what, resp));
            }
            return Ok(resp);
        }
        Err(Error::Unauthorized(format!(
            "{}: the registry {} refused the credentials",
            call.what, self.name
        )))
    }

    /// A relative path (`/v2/...`) on this endpoint, or an absolute URL as it is.
    pub fn url(&self, u: &str) -> String {
        if u.starts_with("http://") || u.starts_with("https://") {
            u.to_string()
        } else {
            format!("{}{u}", self.base)
        }
    }

    fn fetch_token(&self, req: TokenRequest<'_>) -> Result<Vec<u8>> {
        let realm = match &req {
            TokenRequest::Get { url, .. } => url.split('?').next().unwrap_or(url),
            TokenRequest::Refresh { realm, .. } => realm,
        };
        let what = format!("token from {realm}");
        let resp = self.retrying(&what, true, || match &req {
            TokenRequest::Get { url, basic } => {
                let mut r = self.agent.get(*url);
                if let Some(b) = basic {
                    r = r.header("authorization", *b);
                }
                r.call()
            }
            TokenRequest::Refresh { realm, form } => self
                .agent
                .post(*realm)
                .header("content-type", "application/x-www-form-urlencoded")
                .send(form.as_bytes()),
        })?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(Error::Unauthorized(format!(
                "{what}: {} (HTTP {status}): {}",
                if self.auth.has_credentials() {
                    "the credentials were refused"
                } else {
                    "anonymous access refused; log in first (layerfs login)"
                },
                self.name
            )));
        }
        if status >= 400 {
            return Err(self.status_error(&what, resp));
        }
        read_small(resp, &what, 1 << 20)
    }

    /// Run `f` up to RETRIES times while it fails in a transient way (backoff 0.5 s, 1 s,
    /// 2 s); `replayable` false: once.
    fn retrying(
        &self,
        what: &str,
        replayable: bool,
        mut f: impl FnMut() -> std::result::Result<Response<ureq::Body>, ureq::Error>,
    ) -> Result<Response<ureq::Body>> {
        let tries = if replayable { RETRIES } else { 1 };
        let mut delay = Duration::from_millis(500);
        for i in 0..tries {
            let r = f();
            let transient = match &r {
                Ok(resp) => {
                    let s = resp.status().as_u16();
                    s == 429 || s == 502 || s == 503 || s == 504
                }
                Err(e) => is_transient(e),
            };
            if !transient || i + 1 == tries {
                return r.map_err(|e| transport_error(what, &self.name, e));
            }
            log::debug!("{what}: retrying in {delay:?}");
            std::thread::sleep(delay);
            delay *= 2;
        }
        unreachable!("the last try returns")
    }

    /// The registry's error answer: status plus its `errors[].code/message`.
    fn status_error(&self, what: &str, resp: Response<ureq::Body>) -> Error {
        let status = resp.status().as_u16();
        let body = read_small(resp, what, 64 << 10).unwrap_or_default();
        let detail = registry_errors(&body);
        if status == 401 || (status == 403 && detail.contains("DENIED")) {
            let how = if self.auth.has_credentials() {
                "the credentials were refused"
            } else {
                "authentication required; log in first (layerfs login)"
            };
            return Error::Unauthorized(format!(
                "{what}: {how}: registry {} answered HTTP {status}{}",
                self.name,
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({detail})")
                }
            ));
        }
        Error::Status {
            what: what.to_string(),
            status,
            detail,
        }
    }
}

fn http_err(e: ureq::http::Error) -> ureq::Error {
    ureq::Error::Http(e)
}

fn tls_config(spec: &Spec) -> TlsConfig {
    let mut roots = spec.system_roots.clone();
    roots.extend(spec.cas.iter().cloned());
    TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(roots)))
        .client_cert(spec.client_cert.clone())
        .disable_verification(spec.insecure)
        .build()
}

fn is_transient(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => matches!(
            io.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted
        ),
        ureq::Error::Timeout(_) => true,
        _ => false,
    }
}

/// A failure with no answer, said plainly (the URL never carries credentials).
fn transport_error(what: &str, registry: &str, e: ureq::Error) -> Error {
    let cause = match &e {
        ureq::Error::ConnectionFailed => "connection refused".to_string(),
        ureq::Error::HostNotFound => format!("host not found ({registry})"),
        ureq::Error::Io(io) if io.kind() == io::ErrorKind::ConnectionRefused => {
            "connection refused".to_string()
        }
        ureq::Error::Protocol(p) => format!("not an HTTP answer ({p})"),
        ureq::Error::Tls(t) => format!("TLS: {t}"),
        ureq::Error::Io(io) if io.to_string().contains("certificate") => {
            format!("TLS: {io}")
        }
        ureq::Error::Io(io) if io.to_string().contains("InvalidContentType") => format!(
            "TLS: the server does not speak TLS ({io}); a plain-HTTP registry needs \
             --tls-verify=false or an insecure-registries entry"
        ),
        ureq::Error::Io(io) if io.to_string().contains("lookup address") => {
            format!("host not found: {io}")
        }
        ureq::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    };
    Error::Transport {
        what: what.to_string(),
        cause,
    }
}

/// Read a small answer body (manifests, tokens, error texts) with a size limit.
pub fn read_small(resp: Response<ureq::Body>, what: &str, limit: u64) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    resp.into_body()
        .into_reader()
        .take(limit + 1)
        .read_to_end(&mut v)
        .map_err(|e| Error::Transport {
            what: what.to_string(),
            cause: format!("reading the answer: {e}"),
        })?;
    if v.len() as u64 > limit {
        return Err(Error::corrupt(format!(
            "{what}: the answer is larger than {limit} bytes"
        )));
    }
    Ok(v)
}

/// `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}` -> text.
fn registry_errors(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let Some(errs) = v.get("errors").and_then(|e| e.as_array()) else {
        return String::new();
    };
    errs.iter()
        .map(|e| {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
            let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
            match (code, msg) {
                ("", m) => m.to_string(),
                (c, "") => c.to_string(),
                (c, m) => format!("{c}: {m}"),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A blob body that resumes: when the connection drops before `size` bytes, it asks again
/// with `Range: bytes=N-` (up to 5 times) and goes on, so the bytes read are the whole blob.
pub struct BlobReader {
    ep: Arc<Endpoint>,
    url: String,
    scope: String,
    what: String,
    body: Option<ureq::BodyReader<'static>>,
    got: u64,
    size: u64,
    resumes: u32,
}

impl BlobReader {
    pub fn open(
        ep: Arc<Endpoint>,
        url: String,
        scope: String,
        what: String,
        size: u64,
    ) -> Result<BlobReader> {
        let mut r = BlobReader {
            ep,
            url,
            scope,
            what,
            body: None,
            got: 0,
            size,
            resumes: 0,
        };
        r.body = Some(r.request(0)?);
        Ok(r)
    }

    fn request(&self, from: u64) -> Result<ureq::BodyReader<'static>> {
        let mut call = Call::new("GET", self.url.clone(), &self.scope).what(self.what.clone());
        if from > 0 {
            call = call.header("range", format!("bytes={from}-"));
        }
        let resp = self.ep.send(&call, Body::Empty)?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body().into_reader();
        if from > 0 && status == 200 {
            // The server ignored the range: skip what we have.
            io::copy(&mut (&mut body).take(from), &mut io::sink()).map_err(|e| {
                Error::Transport {
                    what: self.what.clone(),
                    cause: format!("skipping the {from} bytes already read: {e}"),
                }
            })?;
        }
        Ok(body)
    }

    fn resume(&mut self, why: &str) -> io::Result<()> {
        if self.resumes >= 5 {
            return Err(io::Error::other(format!(
                "the transfer broke off at {} of {} bytes ({why}), 5 times",
                self.got, self.size
            )));
        }
        self.resumes += 1;
        log::info!("{}: resuming at byte {} ({why})", self.what, self.got);
        match self.request(self.got) {
            Ok(b) => {
                self.body = Some(b);
                Ok(())
            }
            // Nothing from there on: the registry's blob is shorter than the manifest says.
            Err(e) if e.status() == Some(416) => Err(io::Error::other(format!(
                "the registry has only {} bytes of a blob the manifest says is {} bytes",
                self.got, self.size
            ))),
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(body) = self.body.as_mut() else {
                return Ok(0);
            };
            match body.read(buf) {
                Ok(0) if self.got < self.size => self.resume("end of data")?,
                Ok(n) => {
                    self.got += n as u64;
                    if self.got > self.size {
                        return Err(io::Error::other(format!(
                            "the registry sent more than the manifest's {} bytes",
                            self.size
                        )));
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => self.resume(&e.to_string())?,
            }
        }
    }
}
