//! The bits of HTTP/1.1 the test servers speak by hand (the token server, the fault proxy,
//! the non-registry listener): reading a request or a response head, writing a response,
//! query strings and percent-decoding, Basic credentials; and `curl` as an outside client.

use std::io::{self, BufRead, Write};
use std::process::{Command, Stdio};

/// One request as read off the socket.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The request target as sent (`/token?service=...`).
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    /// Decoded query pairs, in order (a key may repeat: `scope` does).
    pub fn query(&self) -> Vec<(String, String)> {
        match self.target.split_once('?') {
            Some((_, q)) => form_pairs(q),
            None => Vec::new(),
        }
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// `a=1&b=x%20y` -> pairs (also the body of a form POST).
pub fn form_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub type Headers = Vec<(String, String)>;

/// Read one head (request or response) up to the blank line: the first line and the headers;
/// None at a clean EOF.
pub fn read_head(r: &mut impl BufRead) -> io::Result<Option<(String, Headers)>> {
    let mut first = String::new();
    if r.read_line(&mut first)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "head cut short",
            ));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Some((first.trim_end().to_string(), headers)))
}

/// Read a request with its Content-Length body; None when the peer closed first.
pub fn read_request(r: &mut impl BufRead) -> io::Result<Option<Request>> {
    let Some((line, headers)) = read_head(r)? else {
        return Ok(None);
    };
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let len: usize = header(&headers, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Some(Request {
        method,
        target,
        headers,
        body,
    }))
}

/// Write a whole response and close the exchange (`Connection: close`).
pub fn respond(
    w: &mut impl Write,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += &format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    w.write_all(head.as_bytes())?;
    w.write_all(body)?;
    w.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Status",
    }
}

/// `(user, password)` of an `Authorization: Basic ...` header.
pub fn basic_credentials(value: &str) -> Option<(String, String)> {
    use base64::Engine;
    let b64 = value.strip_prefix("Basic ")?.trim();
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// What curl said: the HTTP status (0 when none), the headers, the body, and its stderr.
#[derive(Debug)]
pub struct Curl {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
    pub stderr: String,
}

impl Curl {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Run curl with `args` (a URL among them); the status comes from `-w`, headers from `-D`;
/// the body is captured unless `args` sends it elsewhere with `-o`.
pub fn curl(args: &[&str]) -> Curl {
    let hdr = tempfile::NamedTempFile::new().expect("temp file for headers");
    let mut c = Command::new("curl");
    c.args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"]);
    if !args.contains(&"-o") {
        c.args(["-o", "-"]);
    }
    let o = c
        .arg("-D")
        .arg(hdr.path())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl (fuse-tests/run.sh installs it)");
    let mut body = o.stdout;
    let nl = body.iter().rposition(|&b| b == b'\n').unwrap_or(0);
    let code = String::from_utf8_lossy(&body[nl..]).trim().to_string();
    body.truncate(nl);
    Curl {
        status: code.parse().unwrap_or(0),
        headers: std::fs::read_to_string(hdr.path()).unwrap_or_default(),
        body,
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}
