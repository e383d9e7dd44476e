//! Registry credentials as docker and podman keep them: docker's `config.json` (`auths`,
//! `credsStore`, `credHelpers`) and podman's `auth.json` (same shape), read in that order;
//! login and logout write docker's file (atomically, 0600) or its credential helper.
//! A password never reaches a log line, an error or a `Debug` string.

mod helper;

use super::error::{Error, Result, ResultExt};
use base64::Engine;
use serde_json::{Map, Value};
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The key Docker Hub's credentials live under in `config.json` (what `docker login` writes).
pub const DOCKER_IO_KEY: &str = "https://index.docker.io/v1/";

/// Every key docker or podman may have used for Docker Hub, preferred first.
const DOCKER_IO_KEYS: [&str; 4] = [
    DOCKER_IO_KEY,
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
];

/// What a helper reports as the user name when the secret is an identity (refresh) token.
const TOKEN_USERNAME: &str = "<token>";

/// A user name and password (or an identity token) for one registry.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
    /// A refresh token (`identitytoken` in config.json; a helper's `<token>` user): traded
    /// for access tokens at the registry's token endpoint instead of the password.
    pub identity_token: Option<String>,
}

impl Credential {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credential {
        Credential {
            username: username.into(),
            password: password.into(),
            identity_token: None,
        }
    }

    /// Nothing to authenticate with.
    fn is_empty(&self) -> bool {
        self.username.is_empty() && self.password.is_empty() && self.identity_token.is_none()
    }
}

/// Shows the user name only: secrets are replaced by `<redacted>` (or `""` when empty).
impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hide = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &hide(&self.password))
            .field("identity_token", &self.identity_token.as_deref().map(hide))
            .finish()
    }
}

/// Where credentials are looked up, and where login writes them.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// docker's config.json: read first, and the one file login/logout write.
    docker_config: PathBuf,
    /// Read after docker's, in order (podman's auth.json).
    extra: Vec<PathBuf>,
    /// Where `docker-credential-NAME` is searched; `None`: `$PATH`.
    helper_dirs: Option<Vec<PathBuf>>,
}

/// A credential helper a file names for a registry, and which key named it (for errors).
struct HelperChoice {
    name: String,
    origin: String,
}

impl Credentials {
    /// docker's `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`; then podman's
    /// `$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json` (without
    /// `XDG_RUNTIME_DIR`, podman's `/run/containers/UID/auth.json`).
    pub fn discover() -> Credentials {
        let uid = crate::sys::geteuid();
        Self::discover_from(&|k| std::env::var_os(k), uid)
    }

    /// [`Credentials::discover`] with the environment given (tests).
    fn discover_from(env: &dyn Fn(&str) -> Option<OsString>, uid: u32) -> Credentials {
        let var = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let docker = match (var("DOCKER_CONFIG"), var("HOME")) {
            (Some(d), _) => d.join("config.json"),
            (None, Some(h)) => h.join(".docker/config.json"),
            (None, None) => PathBuf::from(".docker/config.json"),
        };
        let podman = match (var("REGISTRY_AUTH_FILE"), var("XDG_RUNTIME_DIR")) {
            (Some(f), _) => f,
            (None, Some(r)) => r.join("containers/auth.json"),
            (None, None) => PathBuf::from(format!("/run/containers/{uid}/auth.json")),
        };
        Credentials::with_files(docker, vec![podman])
    }

    /// Explicit files: `docker_config` is read first and is the one written; `extra` after.
    pub fn with_files(docker_config: PathBuf, extra: Vec<PathBuf>) -> Credentials {
        Credentials {
            docker_config,
            extra,
            helper_dirs: None,
        }
    }

    /// Look for credential helpers in these dirs only, not `$PATH`.
    pub fn with_helper_dirs(mut self, dirs: Vec<PathBuf>) -> Credentials {
        self.helper_dirs = Some(dirs);
        self
    }

    /// The config.json login writes.
    pub fn docker_config(&self) -> &Path {
        &self.docker_config
    }

    /// The credential for `registry` (`host[:port]`, or `docker.io`), from the first file
    /// that has one. In a file, a helper (`credHelpers[host]`, else `credsStore`) answers
    /// alone, as in docker; without one, the matching `auths` entry.
    pub fn get(&self, registry: &str) -> Result<Option<Credential>> {
        let host = host_of(registry);
        let files = std::iter::once(&self.docker_config).chain(&self.extra);
        for path in files {
            let Some(doc) = read_file(path)? else {
                continue;
            };
            if let Some(choice) = helper_for(path, &doc, &host)? {
                let found = self.helper(path, &choice)?.get(&server_key(&host))?;
                if found.is_some() {
                    return Ok(found);
                }
                continue;
            }
            if let Some(c) = auths_lookup(path, &doc, &host)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// Save `cred` for `registry`: in the helper config.json names, else in config.json's
    /// `auths` under the registry's key (every other key kept). Returns where it went.
    pub fn store(&self, registry: &str, cred: &Credential) -> Result<String> {
        let host = host_of(registry);
        let path = &self.docker_config;
        let mut doc = read_file(path)?.unwrap_or_default();
        if let Some(choice) = helper_for(path, &doc, &host)? {
            let h = self.helper(path, &choice)?;
            h.store(&server_key(&host), cred)?;
            return Ok(h.program_name());
        }
        let auths = object_entry(path, &mut doc, "auths")?;
        let entry = auths
            .entry(server_key(&host))
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Value::Object(e) = entry {
            fill_entry(e, cred);
        }
        write_atomic(path, &doc)?;
        Ok(path.display().to_string())
    }

    /// Forget `registry` (logout): its helper's entry and every config.json key for it.
    /// True when something was removed.
    pub fn erase(&self, registry: &str) -> Result<bool> {
        let host = host_of(registry);
        let path = &self.docker_config;
        let Some(mut doc) = read_file(path)? else {
            return Ok(false);
        };
        let mut removed = false;
        if let Some(choice) = helper_for(path, &doc, &host)? {
            removed = self.helper(path, &choice)?.erase(&server_key(&host))?;
        }
        let mut removed_key = false;
        if let Some(Value::Object(auths)) = doc.get_mut("auths") {
            let keys: Vec<String> = matching_keys(auths, &host)
                .into_iter()
                .map(str::to_string)
                .collect();
            for k in &keys {
                auths.remove(k);
            }
            removed_key = !keys.is_empty();
        }
        if removed_key {
            write_atomic(path, &doc)?;
        }
        Ok(removed || removed_key)
    }

    fn helper(&self, file: &Path, choice: &HelperChoice) -> Result<helper::Helper> {
        helper::Helper::find(
            &choice.name,
            self.helper_dirs.as_deref(),
            &format!("{} in {}", choice.origin, file.display()),
        )
    }
}

/// The key credentials for `registry` are stored under, and what a helper is asked about:
/// `https://index.docker.io/v1/` for Docker Hub, else `host[:port]`.
pub fn server_key(registry: &str) -> String {
    let host = host_of(registry);
    if host == "docker.io" {
        DOCKER_IO_KEY.to_string()
    } else {
        host
    }
}

/// The `host[:port]` a registry name or a config key stands for (scheme and path dropped,
/// lower case); `docker.io` for every name of Docker Hub.
fn host_of(key: &str) -> String {
    let s = key.trim();
    let lower = s.to_ascii_lowercase();
    let s = ["https://", "http://"]
        .iter()
        .find(|p| lower.starts_with(*p))
        .map_or(lower.as_str(), |p| &lower[p.len()..]);
    let s = s.split('/').next().unwrap_or_default();
    match s {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        s => s.to_string(),
    }
}

/// The keys of `map` that stand for `host`, the preferred first (docker.io's canonical key,
/// else `host`, `https://host`, `http://host`; any other spelling after, by name).
fn matching_keys<'a>(map: &'a Map<String, Value>, host: &str) -> Vec<&'a str> {
    let preferred: Vec<String> = if host == "docker.io" {
        DOCKER_IO_KEYS.iter().map(|k| k.to_string()).collect()
    } else {
        vec![
            host.to_string(),
            format!("https://{host}"),
            format!("http://{host}"),
        ]
    };
    let rank = |k: &str| {
        preferred
            .iter()
            .position(|p| p.eq_ignore_ascii_case(k))
            .unwrap_or(preferred.len())
    };
    let mut keys: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| host_of(k) == host)
        .collect();
    keys.sort_by_key(|k| rank(k));
    keys
}

/// The parsed file, or `None` when it does not exist. Errors name the path, never the
/// content (a syntax error's line and column only).
fn read_file(path: &Path) -> Result<Option<Map<String, Value>>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(Map::new()));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(Error::invalid(format!(
            "{}: not a credentials file (not a JSON object)",
            path.display()
        ))),
        Err(e) => Err(Error::invalid(format!(
            "{}: not valid JSON (line {}, column {})",
            path.display(),
            e.line(),
            e.column()
        ))),
    }
}

/// `doc[key]` as an object, made when missing; an error when it is something else.
fn object_entry<'a>(
    path: &Path,
    doc: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Map<String, Value>> {
    let v = doc
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(Error::invalid(format!(
            "{}: \"{key}\" is not a JSON object",
            path.display()
        ))),
    }
}

/// The helper a file configures for `host`: `credHelpers[key for host]`, else `credsStore`.
fn helper_for(path: &Path, doc: &Map<String, Value>, host: &str) -> Result<Option<HelperChoice>> {
    let bad = |what: &str| Error::invalid(format!("{}: {what} is not a string", path.display()));
    if let Some(helpers) = doc.get("credHelpers") {
        let Value::Object(helpers) = helpers else {
            return Err(Error::invalid(format!(
                "{}: \"credHelpers\" is not a JSON object",
                path.display()
            )));
        };
        if let Some(key) = matching_keys(helpers, host).first() {
            let origin = format!("credHelpers[\"{key}\"]");
            let name = helpers[*key].as_str().ok_or_else(|| bad(&origin))?;
            if !name.is_empty() {
                return Ok(Some(HelperChoice {
                    name: name.to_string(),
                    origin,
                }));
            }
        }
    }
    match doc.get("credsStore") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(HelperChoice {
            name: s.clone(),
            origin: "credsStore".to_string(),
        })),
        Some(_) => Err(bad("\"credsStore\"")),
    }
}

/// The first `auths` entry for `host` that holds a credential.
fn auths_lookup(path: &Path, doc: &Map<String, Value>, host: &str) -> Result<Option<Credential>> {
    let Some(auths) = doc.get("auths") else {
        return Ok(None);
    };
    let Value::Object(auths) = auths else {
        return Err(Error::invalid(format!(
            "{}: \"auths\" is not a JSON object",
            path.display()
        )));
    };
    for key in matching_keys(auths, host) {
        if let Some(c) = entry_credential(path, key, &auths[key])? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// One `auths` entry: `auth` (base64 of `user:password`), or `username` + `password`, and
/// an optional `identitytoken`. `None` for an empty entry (a helper's placeholder).
fn entry_credential(path: &Path, key: &str, entry: &Value) -> Result<Option<Credential>> {
    let at = || format!("{}: auths[\"{key}\"]", path.display());
    let Value::Object(e) = entry else {
        return Err(Error::invalid(format!("{} is not a JSON object", at())));
    };
    let field = |name: &str| -> Result<String> {
        match e.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(Error::invalid(format!("{}.{name} is not a string", at()))),
        }
    };
    let mut cred = Credential::new(field("username")?, field("password")?);
    let auth = field("auth")?;
    if !auth.is_empty() {
        let (user, pass) = decode_auth(&auth).ok_or_else(|| {
            Error::invalid(format!("{}.auth is not base64 of user:password", at()))
        })?;
        cred.username = user;
        cred.password = pass;
    }
    let token = field("identitytoken")?;
    if !token.is_empty() {
        cred.identity_token = Some(token);
    }
    Ok((!cred.is_empty()).then_some(cred))
}

fn decode_auth(auth: &str) -> Option<(String, String)> {
    let cleaned: String = auth.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT
        .decode(cleaned)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Write `cred` into an `auths` entry, dropping whatever credential fields it had before
/// (other fields, an `email`, say, stay).
fn fill_entry(e: &mut Map<String, Value>, cred: &Credential) {
    for k in ["auth", "username", "password", "identitytoken"] {
        e.remove(k);
    }
    if !cred.username.is_empty() || !cred.password.is_empty() {
        let plain = format!("{}:{}", cred.username, cred.password);
        let b64 = base64::engine::general_purpose::STANDARD.encode(plain);
        e.insert("auth".to_string(), Value::String(b64));
    }
    if let Some(t) = &cred.identity_token {
        e.insert("identitytoken".to_string(), Value::String(t.clone()));
    }
}

/// The file a write to `path` lands in: a symlink's target (as docker does), else `path`.
fn write_target(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..16 {
        match std::fs::symlink_metadata(&p) {
            Ok(md) if md.file_type().is_symlink() => {
                let to = std::fs::read_link(&p).io("reading the link", &p)?;
                p = match p.parent() {
                    Some(dir) => dir.join(to),
                    None => to,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(Error::invalid(format!(
        "{}: too many levels of symbolic links",
        path.display()
    )))
}

/// Replace `path` with `doc` (tab-indented, as docker writes it): a 0600 temp file in the
/// same dir, renamed over it; the dir is made 0700 when missing.
fn write_atomic(path: &Path, doc: &Map<String, Value>) -> Result<()> {
    use serde::Serialize;
    use std::io::Write;
    use std::os::unix::fs::DirBuilderExt;

    let target = write_target(path)?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .io("creating", &dir)?;
    let mut bytes = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut bytes, fmt);
    doc.serialize(&mut ser)
        .map_err(|e| Error::invalid(format!("{}: cannot encode: {e}", path.display())))?;
    bytes.push(b'\n');
    let name = target.file_name().map_or_else(
        || "config.json".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let (tmp, mut f) = create_temp(&dir, &name)?;
    let written = f.write_all(&bytes).and_then(|()| f.sync_all());
    drop(f);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("writing", &tmp, e));
    }
    if let Err(e) = std::fs::rename(&tmp, &target) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("replacing", &target, e));
    }
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A new 0600 file `.NAME.PID.N.tmp` in `dir` (N counts up past leftovers and other threads).
fn create_temp(dir: &Path, name: &str) -> Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut attempts = 0;
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => attempts += 1,
            Err(e) => return Err(Error::io("creating", &tmp, e)),
        }
    }
}

#[cfg(test)]
mod tests;
