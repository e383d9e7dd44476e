//! Registry authentication: the `WWW-Authenticate` challenge (Basic, or Bearer with realm,
//! service and scope), tokens fetched from the realm (anonymously, or with the user's
//! credentials), kept per scope until they expire. Nothing here is ever logged or printed:
//! errors say which realm refused, never what was sent.

use super::credentials::Credential;
use super::error::{Error, Result};
use base64::Engine as _;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the registry asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        /// The scope the registry says the request needs (when it says).
        scope: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` value: `Bearer realm="..",service="..",scope=".."` or
/// `Basic realm=".."`. `None` for a scheme we do not speak.
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        })
    } else {
        None
    }
}

/// `k="v", k2=v2` (quoted values may hold commas and `\"`).
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => val.extend(chars.next()),
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        out.push((key.trim().to_string(), val.trim().to_string()));
    }
    out
}

/// `Authorization: Basic base64(user:password)`.
pub fn basic_header(c: &Credential) -> String {
    let raw = format!("{}:{}", c.username, c.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

struct Token {
    value: String,
    until: Instant,
}

/// The auth state of one registry endpoint: its challenge once seen, tokens per scope.
pub struct Auth {
    cred: Option<Credential>,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<HashMap<String, Token>>,
}

/// How a token is asked for.
pub enum TokenRequest<'a> {
    /// `GET realm?service=..&scope=..`, with Basic credentials when there are some.
    Get {
        url: &'a str,
        basic: Option<&'a str>,
    },
    /// OAuth2 with a refresh token (an `identitytoken` from `docker login`): `POST realm`
    /// with a form body.
    Refresh { realm: &'a str, form: &'a str },
}

/// Fetches a token and returns the JSON body. The transport supplies it (auth knows no
/// HTTP client).
pub type TokenFetch<'a> = dyn Fn(TokenRequest<'_>) -> Result<Vec<u8>> + 'a;

impl Auth {
    pub fn new(cred: Option<Credential>) -> Auth {
        Auth {
            cred,
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Whether credentials were configured for this registry.
    pub fn has_credentials(&self) -> bool {
        self.cred.is_some()
    }

    /// Remember the challenge a 401 carried.
    pub fn challenged(&self, c: Challenge) {
        if let Ok(mut g) = self.challenge.lock() {
            *g = Some(c);
        }
    }

    /// The `Authorization` value for a request needing `scope`, if the registry asked for
    /// auth: Basic with the credentials, or a Bearer token (cached, else fetched).
    pub fn header(&self, scope: &str, fetch: &TokenFetch<'_>) -> Result<Option<String>> {
        let challenge = self.challenge.lock().ok().and_then(|g| g.clone());
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.cred.as_ref().map(basic_header)),
            Some(Challenge::Bearer {
                realm,
                service,
                scope: asked,
            }) => {
                let scope = merge_scopes(scope, asked.as_deref());
                if let Some(t) = self.cached(&scope) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let t = self.fetch_token(&realm, service.as_deref(), &scope, fetch)?;
                Ok(Some(format!("Bearer {t}")))
            }
        }
    }

    fn cached(&self, scope: &str) -> Option<String> {
        let g = self.tokens.lock().ok()?;
        g.get(scope)
            .filter(|t| t.until > Instant::now())
            .map(|t| t.value.clone())
    }

    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        fetch: &TokenFetch<'_>,
    ) -> Result<String> {
        let mut url = realm.to_string();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        if let Some(s) = service {
            url.push_str(&format!("{sep}service={}", query_escape(s)));
            sep = '&';
        }
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            url.push_str(&format!("{sep}scope={}", query_escape(s)));
            sep = '&';
        }
        let refresh = self.cred.as_ref().and_then(|c| c.identity_token.as_deref());
        let body = match refresh {
            Some(rt) => {
                let mut form = format!(
                    "grant_type=refresh_token&client_id=layerfs&refresh_token={}",
                    query_escape(rt)
                );
                if let Some(s) = service {
                    form.push_str(&format!("&service={}", query_escape(s)));
                }
                if !scope.is_empty() {
                    form.push_str(&format!("&scope={}", query_escape(scope)));
                }
                fetch(TokenRequest::Refresh { realm, form: &form })?
            }
            None => {
                let basic = self.cred.as_ref().map(basic_header);
                fetch(TokenRequest::Get {
                    url: &url,
                    basic: basic.as_deref(),
                })?
            }
        };
        let (value, ttl) = parse_token(&body)
            .map_err(|why| Error::Unauthorized(format!("token server {realm}: {why}")))?;
        // Renew a little early: a token must not expire between our check and its use.
        let until = Instant::now() + ttl.saturating_sub(Duration::from_secs(10));
        if let Ok(mut g) = self.tokens.lock() {
            g.insert(
                scope.to_string(),
                Token {
                    value: value.clone(),
                    until,
                },
            );
        }
        Ok(value)
    }

    /// Forget every token (the registry refused one: fetch anew).
    pub fn forget_tokens(&self) {
        if let Ok(mut g) = self.tokens.lock() {
            g.clear();
        }
    }
}

/// The scope we need plus the one the registry named, without repeats.
fn merge_scopes(ours: &str, asked: Option<&str>) -> String {
    let mut all: Vec<&str> = ours.split(' ').filter(|s| !s.is_empty()).collect();
    for s in asked.unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
        if !all.contains(&s) {
            all.push(s);
        }
    }
    all.join(" ")
}

/// `{"token": .., "access_token": .., "expires_in": N}`; 60 s when it does not say.
fn parse_token(body: &[u8]) -> std::result::Result<(String, Duration), String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON ({e})"))?;
    let tok = v
        .get("token")
        .or_else(|| v.get("access_token"))
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or("the answer has no token")?;
    let ttl = v
        .get("expires_in")
        .and_then(|e| e.as_u64())
        .filter(|n| *n > 0)
        .unwrap_or(60);
    Ok((tok.to_string(), Duration::from_secs(ttl)))
}

/// Percent-encode a query value (RFC 3986 unreserved characters stay).
pub fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
        let c = parse_challenge(r#"bearer realm="a,b", scope=x"#);
        assert!(matches!(c, Some(Challenge::Bearer { realm, scope, .. })
            if realm == "a,b" && scope.as_deref() == Some("x")));
    }

    #[test]
    fn tokens_are_fetched_once_per_scope() {
        let auth = Auth::new(Some(Credential {
            username: "alice".into(),
            password: "pw".into(),
            identity_token: None,
        }));
        assert_eq!(auth.header("s", &|_| unreachable!()).unwrap(), None);
        auth.challenged(Challenge::Bearer {
            realm: "http://t/token".into(),
            service: Some("reg".into()),
            scope: None,
        });
        let urls = RefCell::new(Vec::new());
        let fetch = |req: TokenRequest<'_>| {
            let TokenRequest::Get { url: u, basic: b } = req else {
                panic!("a GET was expected")
            };
            assert!(b.is_some_and(|b| b.starts_with("Basic ")));
            urls.borrow_mut().push(u.to_string());
            Ok(br#"{"token":"T1","expires_in":300}"#.to_vec())
        };
        let h = auth.header("repository:a/b:pull", &fetch).unwrap();
        assert_eq!(h.as_deref(), Some("Bearer T1"));
        auth.header("repository:a/b:pull", &fetch).unwrap();
        assert_eq!(urls.borrow().len(), 1);
        assert_eq!(
            urls.borrow()[0],
            "http://t/token?service=reg&scope=repository%3Aa%2Fb%3Apull"
        );
        auth.header("repository:a/b:pull,push", &fetch).unwrap();
        assert_eq!(urls.borrow().len(), 2);
    }

    #[test]
    fn bad_token_answers() {
        assert!(parse_token(b"nope").is_err());
        assert!(parse_token(b"{}").is_err());
        let (t, ttl) = parse_token(br#"{"access_token":"x"}"#).unwrap();
        assert_eq!((t.as_str(), ttl.as_secs()), ("x", 60));
    }
}
