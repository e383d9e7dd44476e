//! `layerfs search` on a registry without `/v1/search`: `/v2/_catalog` followed page by page
//! (the registry's page size is 2 here), filtered by the term, names shown as REGISTRY/REPO,
//! docker's table columns, `--limit`, `--format json`; and the token flow for the catalog.

use super::cli::{Lf, assert_failure};
use super::images::{self, Comp, Format, Image};
use super::server::{Opts, Registry};
use super::token::Grant;

const REPOS: [&str; 6] = [
    "team/app",
    "team/api",
    "team/web",
    "other/app",
    "misc/tool",
    "zz/last-app",
];

fn catalog_registry(opts: Opts, creds: super::images::Creds) -> Registry {
    let reg = Registry::start(opts);
    let tmp = tempfile::tempdir().expect("tmp");
    let img = Image::sample("search", Comp::Gzip);
    let dir = images::layout_of(tmp.path(), &img);
    for r in REPOS {
        images::push_dir(&reg, &dir, &format!("{r}:v1"), Format::Oci, false, creds).expect("push");
    }
    reg
}

/// Names in the table (header checked and dropped).
fn table_names(out: &str) -> Vec<String> {
    let mut lines = out.lines();
    let head: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        head,
        ["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"],
        "{out}"
    );
    lines
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn catalog_search_filters_and_limits() {
    let reg = catalog_registry(Opts::default(), None);
    let h = reg.host();
    let lf = Lf::new();
    check_filtered(&lf, &h);
    let one = table_names(&lf.ok(&["search", "--limit", "1", &format!("{h}/team")]));
    assert_eq!(one.len(), 1, "--limit 1: {one:?}");
    let js = lf.ok(&["search", "--format", "json", &format!("{h}/tool")]);
    let rows: Vec<serde_json::Value> = js
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(
        rows,
        // docker's `{{json .}}` of its search context: every field a string, a true flag
        // "[OK]", a false one "".
        vec![serde_json::json!({
            "Name": format!("{h}/misc/tool"),
            "Description": "",
            "StarCount": "0",
            "IsOfficial": "",
            "IsAutomated": ""
        })],
        "{js}"
    );
    let none = table_names(&lf.ok(&["search", &format!("{h}/nothing-matches")]));
    assert!(none.is_empty(), "{none:?}");
}

/// The term filters the whole catalog (substring of the repository).
fn check_filtered(lf: &Lf, h: &str) {
    let mut names = table_names(&lf.ok(&["search", &format!("{h}/app")]));
    names.sort();
    let mut want: Vec<String> = ["team/app", "other/app", "zz/last-app"]
        .iter()
        .map(|r| format!("{h}/{r}"))
        .collect();
    want.sort();
    assert_eq!(
        names, want,
        "every repository of the catalog, filtered by the term"
    );
    let team = table_names(&lf.ok(&["search", &format!("{h}/team")]));
    assert_eq!(team.len(), 3, "{team:?}");
}

/// A registry whose catalog pages hold 2 names (`catalog.maxentries`, which distribution
/// also enforces as the largest `n` a client may ask for).
#[test]
fn catalog_search_follows_pages() {
    let reg = catalog_registry(
        Opts {
            catalog_max: Some(2),
            ..Opts::default()
        },
        None,
    );
    let lf = Lf::new();
    check_filtered(&lf, &reg.host());
}

#[test]
fn catalog_search_with_token_auth() {
    let pw = "search-pw";
    let grants = vec![
        Grant::new(Some("alice"), "", &["pull", "push"]),
        Grant::new(Some("alice"), "catalog", &["*"]),
        Grant::new(None, "", &["pull"]),
    ];
    let reg = catalog_registry(
        Opts {
            auth: super::server::Auth::Token(vec![("alice".into(), pw.into())], grants),
            ..Opts::default()
        },
        Some(("alice", pw)),
    );
    let h = reg.host();
    let lf = Lf::new();
    let o = lf.run(&["search", &format!("{h}/team")]);
    assert_failure(&o, "anonymous catalog search");
    assert!(o.stderr.contains(&h), "{}", o.stderr);
    let l = lf.run_input(
        &["login", "-u", "alice", "--password-stdin", &h],
        &format!("{pw}\n"),
    );
    assert_eq!(l.code, 0, "login: {}", l.stderr);
    let names = table_names(&lf.ok(&["search", &format!("{h}/team")]));
    assert_eq!(names.len(), 3, "{names:?}");
}

#[test]
fn search_of_docker_hub_fails_clearly_offline() {
    let lf = Lf::new();
    let o = lf.run(&["search", "layerfs-test-term"]);
    if o.code == 0 {
        eprintln!("Docker Hub answered (online): {}", o.stdout);
        table_names(&o.stdout);
        return;
    }
    assert_failure(&o, "search on Docker Hub offline");
    assert!(
        o.stderr.contains("docker.io") || o.stderr.contains("index.docker.io"),
        "{}",
        o.stderr
    );
}
