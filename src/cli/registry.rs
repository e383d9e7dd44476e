//! `layerfs login`, `logout` and `search`: parse, talk to the registry through
//! `registry/`, print docker's lines and tables.

use super::{CliError, CliResult};
use crate::registry::client;
use crate::registry::credentials::Credential;
use crate::registry::reference::{DOCKER_HUB, normalize_registry};
use crate::registry::session::{Session, Source, origin};
use crate::registry::transport::{Body, Call};
use clap::Parser;
use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};

#[derive(Parser, Debug)]
#[command(
    name = "layerfs login",
    about = "Log in to a registry (docker.io when none is given)"
)]
struct LoginCli {
    #[arg(short, long)]
    username: Option<String>,
    /// The password (visible to other users in `ps`: prefer --password-stdin)
    #[arg(short, long)]
    password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    password_stdin: bool,
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    tls_verify: Option<bool>,
    registry: Option<String>,
}

#[derive(Parser, Debug)]
#[command(
    name = "layerfs logout",
    about = "Forget the credentials of a registry"
)]
struct LogoutCli {
    registry: Option<String>,
}

#[derive(Parser, Debug)]
#[command(name = "layerfs search", about = "Search a registry for repositories")]
struct SearchCli {
    /// At most this many results
    #[arg(long, default_value_t = 25)]
    limit: usize,
    /// table (default) or json (one object a line)
    #[arg(long)]
    format: Option<String>,
    #[arg(long)]
    no_trunc: bool,
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    tls_verify: Option<bool>,
    /// [REGISTRY/]TERM
    term: String,
}

pub fn login_main(args: Vec<OsString>) -> i32 {
    super::parse_and_run::<LoginCli>("layerfs login", args, login)
}

pub fn logout_main(args: Vec<OsString>) -> i32 {
    super::parse_and_run::<LogoutCli>("layerfs logout", args, logout)
}

pub fn search_main(args: Vec<OsString>) -> i32 {
    super::parse_and_run::<SearchCli>("layerfs search", args, search)
}

fn login(c: LoginCli) -> CliResult {
    let registry = normalize_registry(c.registry.as_deref())?;
    if c.password.is_some() && c.password_stdin {
        return Err(CliError::Usage(
            "--password and --password-stdin are mutually exclusive".into(),
        ));
    }
    if c.password_stdin && c.username.is_none() {
        return Err(CliError::Usage(
            "--password-stdin needs --username (-u)".into(),
        ));
    }
    let username = match c.username {
        Some(u) => u,
        None => prompt("Username: ", true)?,
    };
    let password = match (c.password, c.password_stdin) {
        (Some(p), _) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p
        }
        (None, true) => read_stdin_password()?,
        (None, false) => prompt("Password: ", false)?,
    };
    if username.is_empty() || password.is_empty() {
        return Err(CliError::Usage(format!(
            "login to {registry}: a username and a password are required"
        )));
    }
    let session = Session::discover(c.tls_verify)?;
    let src = origin(&registry);
    let cred = Credential::new(username, password);
    let ep = session
        .connect_with(&src, Some(cred.clone()))
        .map_err(|e| e.context(format!("login to {registry}")))?;
    let call = Call::new("GET", "/v2/", "").what(format!("login to {registry}"));
    ep.send(&call, Body::Empty)?;
    let at = session
        .credentials()
        .store(&registry, &cred)
        .map_err(|e| e.context(format!("login to {registry}: storing the credentials")))?;
    if !at.starts_with("docker-credential-") {
        eprintln!("WARNING! Your password is stored unencrypted in {at}.");
    }
    println!("Login Succeeded");
    Ok(())
}

/// The first line of stdin, without its line end (docker's `--password-stdin`).
fn read_stdin_password() -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Usage(format!("reading the password from standard input: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Ask on the terminal; a password is read with echo off (`stty -echo`).
fn prompt(what: &str, echo: bool) -> Result<String, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(format!(
            "{}: no terminal to ask on; give -u USER and --password-stdin",
            what.trim_end_matches([':', ' '])
        )));
    }
    eprint!("{what}");
    let _ = std::io::stderr().flush();
    let stty = |arg: &str| {
        let _ = std::process::Command::new("stty").arg(arg).status();
    };
    if !echo {
        stty("-echo");
    }
    let mut line = String::new();
    let r = std::io::stdin().lock().read_line(&mut line);
    if !echo {
        stty("echo");
        eprintln!();
    }
    r.map_err(|e| CliError::Usage(format!("reading from the terminal: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn logout(c: LogoutCli) -> CliResult {
    let registry = normalize_registry(c.registry.as_deref())?;
    let creds = crate::registry::credentials::Credentials::discover();
    if creds.erase(&registry)? {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(())
}

/// One search result, as docker shows it.
struct Hit {
    name: String,
    description: String,
    stars: u64,
    official: bool,
    automated: bool,
}

fn search(c: SearchCli) -> CliResult {
    let (registry, term) = split_term(&c.term)?;
    if c.limit == 0 || c.limit > 100 {
        return Err(CliError::Usage(format!(
            "--limit {}: must be between 1 and 100",
            c.limit
        )));
    }
    let session = Session::discover(c.tls_verify)?;
    let hits = if registry == DOCKER_HUB {
        v1_search(&session, "index.docker.io", &term, c.limit)?
    } else {
        match v1_search(&session, &registry, &term, c.limit) {
            Ok(h) => h,
            Err(e) if e.status() == Some(404) => {
                catalog_search(&session, &registry, &term, c.limit)?
            }
            Err(e) => return Err(e.into()),
        }
    };
    print_hits(&hits, c.format.as_deref(), c.no_trunc)
}

/// `[REGISTRY/]TERM`: a first component with `.` or `:`, or `localhost`, is a registry.
fn split_term(t: &str) -> Result<(String, String), CliError> {
    match t.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            Ok((normalize_registry(Some(first))?, rest.to_string()))
        }
        _ => Ok((DOCKER_HUB.to_string(), t.to_string())),
    }
}

/// docker's `/v1/search?q=TERM&n=LIMIT` (Docker Hub and registries that have it).
fn v1_search(
    session: &Session,
    registry: &str,
    term: &str,
    limit: usize,
) -> Result<Vec<Hit>, crate::registry::Error> {
    let src = Source {
        name: registry.to_string(),
        address: registry.to_string(),
        mirror: false,
    };
    let ep = session.connect(&src)?;
    let url = format!(
        "/v1/search?q={}&n={limit}",
        crate::registry::auth::query_escape(term)
    );
    let what = format!("search {registry} for {term:?}");
    let resp = ep.send(&Call::new("GET", url, "").what(what.clone()), Body::Empty)?;
    let body = crate::registry::transport::read_small(resp, &what, 16 << 20)?;
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        crate::registry::Error::corrupt(format!("{what}: the answer is not JSON ({e})"))
    })?;
    let results = v
        .get("results")
        .and_then(|r| r.as_array())
        .cloned()
        .unwrap_or_default();
    let s = |r: &serde_json::Value, k: &str| {
        r.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string()
    };
    let b = |r: &serde_json::Value, k: &str| r.get(k).and_then(|x| x.as_bool()).unwrap_or(false);
    Ok(results
        .iter()
        .take(limit)
        .map(|r| Hit {
            name: s(r, "name"),
            description: s(r, "description"),
            stars: r.get("star_count").and_then(|x| x.as_u64()).unwrap_or(0),
            official: b(r, "is_official"),
            automated: b(r, "is_automated"),
        })
        .collect())
}

/// A registry without a search endpoint: its catalog, filtered by TERM.
fn catalog_search(
    session: &Session,
    registry: &str,
    term: &str,
    limit: usize,
) -> Result<Vec<Hit>, CliError> {
    let ep = session.endpoint(registry)?;
    let repos = client::catalog(&ep, usize::MAX)?;
    Ok(repos
        .into_iter()
        .filter(|r| r.contains(term))
        .take(limit)
        .map(|r| Hit {
            name: format!("{registry}/{r}"),
            description: String::new(),
            stars: 0,
            official: false,
            automated: false,
        })
        .collect())
}

fn print_hits(hits: &[Hit], format: Option<&str>, no_trunc: bool) -> CliResult {
    let ok = |b: bool| if b { "[OK]" } else { "" };
    match format {
        Some("json") => {
            for h in hits {
                let v = serde_json::json!({
                    "Name": h.name,
                    "Description": h.description,
                    "StarCount": h.stars.to_string(),
                    "IsOfficial": ok(h.official),
                    "IsAutomated": ok(h.automated),
                });
                println!("{v}");
            }
            Ok(())
        }
        None | Some("table") => {
            let mut rows = vec![vec![
                "NAME".to_string(),
                "DESCRIPTION".into(),
                "STARS".into(),
                "OFFICIAL".into(),
                "AUTOMATED".into(),
            ]];
            for h in hits {
                let mut d = h.description.replace('\n', " ");
                if !no_trunc && d.chars().count() > 45 {
                    d = d.chars().take(44).collect::<String>() + "…";
                }
                rows.push(vec![
                    h.name.clone(),
                    d,
                    h.stars.to_string(),
                    ok(h.official).into(),
                    ok(h.automated).into(),
                ]);
            }
            super::image::print_table(&rows);
            Ok(())
        }
        Some(f) => Err(CliError::Usage(format!(
            "unknown --format {f:?}: table or json"
        ))),
    }
}
