//! A Docker token server (the registry's `auth.token` realm) on a loopback port: `GET /token
//! ?service=..&scope=repository:NAME:pull,push` (and the OAuth2 form `POST /token`), optional
//! Basic credentials checked against the test's users, access granted from the test's rules,
//! answered with an RS256 JWT (x5c = the signing certificate, which the registry trusts as
//! its `rootcertbundle`). Every request is recorded so tests can count them.

use super::http::{self, Request};
use super::pki::{self, CertKey};
use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

pub const SERVICE: &str = "layerfs-test-registry";
pub const ISSUER: &str = "layerfs-test-token-issuer";

/// Who may do what: `user` None means anyone (anonymous too); `prefix` matches repository
/// names that start with it (`team/`), or a `registry:catalog:*` scope when it is "catalog".
#[derive(Clone, Debug)]
pub struct Grant {
    pub user: Option<String>,
    pub prefix: String,
    pub actions: Vec<String>,
}

impl Grant {
    pub fn new(user: Option<&str>, prefix: &str, actions: &[&str]) -> Grant {
        Grant {
            user: user.map(str::to_string),
            prefix: prefix.to_string(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }
}

/// One request the server answered.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// The authenticated user (None: anonymous).
    pub user: Option<String>,
    pub scopes: Vec<String>,
    pub status: u16,
}

struct State {
    users: Vec<(String, String)>,
    grants: Vec<Grant>,
    signer: CertKey,
    x5c: String,
    log: Mutex<Vec<TokenRequest>>,
    issued: Mutex<Vec<String>>,
}

pub struct TokenServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    state: Arc<State>,
}

impl TokenServer {
    /// Start on a free loopback port; the signing key and certificate go into `dir`.
    pub fn start(dir: &Path, users: &[(&str, &str)], grants: Vec<Grant>) -> TokenServer {
        let signer = pki::self_signed(dir, "token-signer", "layerfs test token signer");
        let x5c = pki::der_base64(&signer.cert);
        let state = Arc::new(State {
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            grants,
            signer,
            x5c,
            log: Mutex::new(Vec::new()),
            issued: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the token server");
        let port = listener.local_addr().expect("local addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = conn {
                    let st = st.clone();
                    std::thread::spawn(move || serve(&st, c));
                }
            }
        });
        TokenServer {
            port,
            stop,
            thread: Some(thread),
            state,
        }
    }
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
    /// The certificate the registry trusts (`rootcertbundle`).
    pub fn cert(&self) -> &Path {
        &self.state.signer.cert
    }
    /// How many token requests came in (answered or refused).
    pub fn count(&self) -> usize {
        self.requests().len()
    }
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.log.lock().expect("log").clone()
    }
    /// Every token handed out (tests check none is ever printed).
    pub fn issued(&self) -> Vec<String> {
        self.state.issued.lock().expect("issued").clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(st: &State, conn: TcpStream) {
    let mut r = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut w = conn;
    let Ok(Some(req)) = http::read_request(&mut r) else {
        return;
    };
    let (status, body) = answer(st, &req);
    let hdrs = [("Content-Type", "application/json".to_string())];
    let _ = http::respond(&mut w, status, &hdrs, body.as_bytes());
}

/// Parameters of either form: the query of a GET, the form body of a POST.
fn params(req: &Request) -> Vec<(String, String)> {
    if req.method == "POST" {
        http::form_pairs(&String::from_utf8_lossy(&req.body))
    } else {
        req.query()
    }
}

fn answer(st: &State, req: &Request) -> (u16, String) {
    let p = params(req);
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let scopes: Vec<String> = p
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    // Basic credentials (GET) or the password grant (POST).
    let creds = req
        .header("authorization")
        .and_then(http::basic_credentials)
        .or_else(|| Some((get("username")?, get("password")?)));
    let record = |user: Option<String>, status: u16| {
        st.log.lock().expect("log").push(TokenRequest {
            user,
            scopes: scopes.clone(),
            status,
        });
    };
    if req.path() != "/token" || get("service").as_deref() != Some(SERVICE) {
        record(None, 400);
        return (
            400,
            r#"{"errors":[{"code":"UNSUPPORTED","message":"bad path or service"}]}"#.into(),
        );
    }
    let user = match creds {
        None => None,
        Some((u, pw)) if st.users.iter().any(|(a, b)| *a == u && *b == pw) => Some(u),
        Some((u, _)) => {
            record(Some(u), 401);
            return (
                401,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"wrong user name or password"}]}"#
                    .into(),
            );
        }
    };
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| grant(st, user.as_deref(), s))
        .collect();
    let token = match jwt(st, user.as_deref().unwrap_or(""), access) {
        Ok(t) => t,
        Err(e) => {
            record(user, 500);
            return (
                500,
                format!(r#"{{"errors":[{{"code":"SIGN","message":"{e}"}}]}}"#),
            );
        }
    };
    st.issued.lock().expect("issued").push(token.clone());
    record(user, 200);
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": 300,
        "issued_at": rfc3339_now(),
    });
    (200, body.to_string())
}

/// The access entry this user gets for one `type:name:actions` scope (None: nothing).
fn grant(st: &State, user: Option<&str>, scope: &str) -> Option<serde_json::Value> {
    let mut parts = scope.splitn(3, ':');
    let (typ, name, wanted) = (parts.next()?, parts.next()?, parts.next()?);
    let allowed: Vec<String> = st
        .grants
        .iter()
        .filter(|g| g.user.is_none() || g.user.as_deref() == user)
        .filter(|g| match typ {
            "repository" => name.starts_with(&g.prefix) || name == g.prefix,
            "registry" => g.prefix == "catalog" && name == "catalog",
            _ => false,
        })
        .flat_map(|g| g.actions.clone())
        .collect();
    let actions: Vec<&str> = wanted
        .split(',')
        .filter(|a| allowed.iter().any(|g| g == a || g == "*"))
        .collect();
    if actions.is_empty() {
        return None;
    }
    Some(serde_json::json!({"type": typ, "name": name, "actions": actions}))
}

fn b64url(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn jwt(st: &State, sub: &str, access: Vec<serde_json::Value>) -> std::io::Result<String> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [st.x5c]});
    let t = now();
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": sub,
        "aud": SERVICE,
        "exp": t + 300,
        "nbf": t - 10,
        "iat": t,
        "jti": format!("{}-{}", t, SEQ.fetch_add(1, Ordering::SeqCst)),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = pki::sign_rs256(&st.signer.key, signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", b64url(&sig)))
}

/// Now as RFC 3339 UTC (`2024-01-02T03:04:05Z`), from date(1).
fn rfc3339_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
