//! docker's credential-helper protocol: `docker-credential-NAME get|store|erase`, the
//! server URL (or a JSON credential) on stdin, JSON on stdout. The secret travels only
//! through the pipes: it is never put in an error, even when the helper's answer is bad.

use super::{Credential, TOKEN_USERNAME};
use crate::registry::error::{Error, Result};
use serde_json::Value;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// What helpers print when they have nothing for the server (docker's `errCredentialsNotFound`).
const NOT_FOUND: &str = "credentials not found";

/// A helper program, found.
pub(super) struct Helper {
    name: String,
    program: PathBuf,
    /// Where it was configured (`credsStore in FILE`), for errors.
    origin: String,
}

impl Helper {
    /// `docker-credential-NAME` in `dirs` (else `$PATH`): an error naming it when absent.
    pub(super) fn find(name: &str, dirs: Option<&[PathBuf]>, origin: &str) -> Result<Helper> {
        if name.contains('/') || name.contains('\0') || name.starts_with('.') {
            return Err(Error::invalid(format!(
                "{origin}: \"{name}\" is not a credential helper name"
            )));
        }
        let file = format!("docker-credential-{name}");
        let search: Vec<PathBuf> = match dirs {
            Some(d) => d.to_vec(),
            None => std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect())
                .unwrap_or_default(),
        };
        let program = search
            .iter()
            .filter(|d| !d.as_os_str().is_empty())
            .map(|d| d.join(&file))
            .find(|p| is_executable(p));
        match program {
            Some(program) => Ok(Helper {
                name: name.to_string(),
                program,
                origin: origin.to_string(),
            }),
            None => Err(Error::invalid(format!(
                "credential helper {file} (from {origin}) not found in {}",
                if dirs.is_some() { "its dirs" } else { "PATH" }
            ))),
        }
    }

    /// `docker-credential-NAME`, as the place credentials were stored.
    pub(super) fn program_name(&self) -> String {
        format!("docker-credential-{}", self.name)
    }

    /// The helper's credential for `server`, `None` when it has none.
    pub(super) fn get(&self, server: &str) -> Result<Option<Credential>> {
        let out = self.run("get", server.as_bytes())?;
        if !out.status.success() {
            return if says_not_found(&out) {
                Ok(None)
            } else {
                Err(self.failed("get", server, &out, &[]))
            };
        }
        let bad = || {
            Error::corrupt(format!(
                "{} get {server}: the answer is not a JSON credential",
                self.program_name()
            ))
        };
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|_| bad())?;
        let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(user), Some(secret)) = (field("Username"), field("Secret")) else {
            return Err(bad());
        };
        if user.is_empty() && secret.is_empty() {
            return Ok(None);
        }
        if user == TOKEN_USERNAME {
            return Ok(Some(Credential {
                identity_token: Some(secret),
                ..Credential::default()
            }));
        }
        Ok(Some(Credential::new(user, secret)))
    }

    /// Give `cred` to the helper for `server`.
    pub(super) fn store(&self, server: &str, cred: &Credential) -> Result<()> {
        let (user, secret) = match &cred.identity_token {
            Some(t) => (TOKEN_USERNAME, t.as_str()),
            None => (cred.username.as_str(), cred.password.as_str()),
        };
        let input = serde_json::json!({
            "ServerURL": server,
            "Username": user,
            "Secret": secret,
        });
        let out = self.run("store", input.to_string().as_bytes())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(self.failed("store", server, &out, &[secret]))
        }
    }

    /// Make the helper forget `server`; true when it had something.
    pub(super) fn erase(&self, server: &str) -> Result<bool> {
        let out = self.run("erase", server.as_bytes())?;
        if out.status.success() {
            Ok(true)
        } else if says_not_found(&out) {
            Ok(false)
        } else {
            Err(self.failed("erase", server, &out, &[]))
        }
    }

    /// Run `VERB` with `input` on stdin; stdout and stderr collected.
    fn run(&self, verb: &str, input: &[u8]) -> Result<Output> {
        let mut child = self.spawn(verb)?;
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that exits without reading gives EPIPE: its exit status says more.
            match stdin.write_all(input) {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(self.io_error(verb, e));
                }
                _ => {}
            }
        }
        child.wait_with_output().map_err(|e| self.io_error(verb, e))
    }

    /// Start the helper. A program file being written by another thread of this process
    /// (its descriptor leaked into a concurrent fork) gives ETXTBSY for a moment: retried.
    fn spawn(&self, verb: &str) -> Result<std::process::Child> {
        let mut attempt = 0;
        loop {
            let r = Command::new(&self.program)
                .arg(verb)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn();
            match r {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 50 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                r => return r.map_err(|e| self.io_error(verb, e)),
            }
        }
    }

    fn io_error(&self, verb: &str, e: io::Error) -> Error {
        Error::io("running", &self.program, e).context(format!(
            "credential helper {} {verb} (from {})",
            self.program_name(),
            self.origin
        ))
    }

    /// A failed run: the exit status and the helper's first line of complaint, with any
    /// of `secrets` it echoes blanked.
    fn failed(&self, verb: &str, server: &str, out: &Output, secrets: &[&str]) -> Error {
        let mut said = complaint(out).unwrap_or_default();
        for s in secrets.iter().filter(|s| !s.is_empty()) {
            said = said.replace(s, "<redacted>");
        }
        if !said.is_empty() {
            said = format!(": {}", said.chars().take(200).collect::<String>());
        }
        Error::invalid(format!(
            "credential helper {} {verb} {server} (from {}): {}{said}",
            self.program_name(),
            self.origin,
            out.status,
        ))
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn says_not_found(out: &Output) -> bool {
    let has = |b: &[u8]| String::from_utf8_lossy(b).contains(NOT_FOUND);
    has(&out.stdout) || has(&out.stderr)
}

/// The first non-empty line of stderr, else stdout. Only read when the helper failed, so
/// it holds an error message, not a credential.
fn complaint(out: &Output) -> Option<String> {
    [&out.stderr, &out.stdout].iter().find_map(|b| {
        let text = String::from_utf8_lossy(b);
        let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
        Some(line.to_string())
    })
}
