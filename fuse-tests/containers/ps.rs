//! `ps` (= `container ls`): which containers each form lists and their STATUS as docker
//! shows it (`Created`, `Up ...`, `Exited (N) ... ago`), in the table and as JSON; `rm` of
//! a running container refused and `rm -f` ending it; `container prune` keeping it.

use super::harness::{Ctx, WAIT, poll};
use super::lifecycle::looping;
use crate::common::mount::pid_alive;

modes!(ps_states, rm_and_prune);

/// (NAMES, STATUS) of each row of a `ps` table, the columns found from the header.
fn table(out: &str) -> Vec<(String, String)> {
    let mut lines = out.lines();
    let header = lines.next().unwrap_or("");
    let cols = [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ];
    let start = header
        .find("STATUS")
        .unwrap_or_else(|| panic!("no STATUS column: {out}"));
    assert!(header.contains("NAMES"), "no NAMES column: {out}");
    let end = cols
        .iter()
        .filter_map(|c| header.find(c))
        .filter(|p| *p > start)
        .min();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let status = match end {
                Some(e) => l.get(start..e.min(l.len())),
                None => l.get(start..),
            };
            let name = l.split_whitespace().last().unwrap_or("").to_string();
            (name, status.unwrap_or("").trim().to_string())
        })
        .collect()
}

fn status_of(rows: &[(String, String)], name: &str) -> Option<String> {
    rows.iter().find(|r| r.0 == name).map(|r| r.1.clone())
}

/// The objects of `--format json` output: one a line, or one array.
fn json_rows(out: &str) -> Vec<serde_json::Value> {
    if let Ok(serde_json::Value::Array(v)) = serde_json::from_str(out) {
        return v;
    }
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("ps json {l:?}: {e}")))
        .collect()
}

fn is_up(s: &str) -> bool {
    s.starts_with("Up ") && !s.contains("Exited")
}

fn is_exited(s: &str, code: i32) -> bool {
    s.starts_with(&format!("Exited ({code}) ")) && s.ends_with(" ago")
}

fn ps_states(ctx: &Ctx) {
    ctx.ok(&["container", "create", "--name", "cr", "ct"]);
    let up = ctx.run_d(&[
        "--name",
        "up",
        "ct",
        "sh",
        "-c",
        &looping("trap 'exit 0' TERM;"),
    ]);
    let o = ctx.lf(&["run", "--name", "ex", "ct", "sh", "-c", "exit 3"]);
    assert_eq!(o.code, 3, "{o:?}");
    let ids = |n: &str| ctx.full_id(n)[..12].to_string();
    let (cr, ex) = (ids("cr"), ids("ex"));
    // Plain ps: the running one only.
    let rows = table(&ctx.ok(&["ps"]));
    assert_eq!(
        rows.len(),
        1,
        "ps lists the running container only: {rows:?}"
    );
    let s = status_of(&rows, "up").unwrap_or_default();
    assert!(is_up(&s), "STATUS of a running container: {s:?}");
    // ps -a: every state.
    let out = ctx.ok(&["ps", "-a"]);
    let rows = table(&out);
    assert_eq!(rows.len(), 3, "{out}");
    assert_eq!(status_of(&rows, "cr").as_deref(), Some("Created"), "{out}");
    assert!(is_up(&status_of(&rows, "up").unwrap_or_default()), "{out}");
    let s = status_of(&rows, "ex").unwrap_or_default();
    assert!(
        is_exited(&s, 3),
        "STATUS of an exited container: {s:?}\n{out}"
    );
    assert!(
        out.contains(&cr) && out.contains(&up[..12]) && out.contains(&ex),
        "{out}"
    );
    // container ls is ps.
    assert_eq!(table(&ctx.ok(&["container", "ls", "-a"])).len(), 3);
    // -q: short ids.
    assert_eq!(ctx.ps_ids(false), vec![up[..12].to_string()]);
    let mut all = ctx.ps_ids(true);
    all.sort();
    let mut want = vec![cr.clone(), up[..12].to_string(), ex.clone()];
    want.sort();
    assert_eq!(all, want);
    // --format json.
    let rows = json_rows(&ctx.ok(&["ps", "-a", "--format", "json"]));
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (name, check) in [
        ("cr", &(|s: &str| s == "Created") as &dyn Fn(&str) -> bool),
        ("up", &is_up),
        ("ex", &|s: &str| is_exited(s, 3)),
    ] {
        let r = rows
            .iter()
            .find(|r| r["Names"] == name || r["Names"][0] == name)
            .unwrap_or_else(|| panic!("{name} not in {rows:?}"));
        let s = r["Status"].as_str().unwrap_or("");
        assert!(check(s), "json Status of {name}: {r}");
    }
    let rows = json_rows(&ctx.ok(&["ps", "--format", "json"]));
    assert_eq!(rows.len(), 1, "{rows:?}");
    // After a stop the running one shows exited with its code.
    ctx.ok(&["stop", "up"]);
    assert_eq!(ctx.wait_code("up"), 0);
    let rows = table(&ctx.ok(&["ps", "-a"]));
    assert!(
        is_exited(&status_of(&rows, "up").unwrap_or_default(), 0),
        "{rows:?}"
    );
    assert!(table(&ctx.ok(&["ps"])).is_empty());
}

fn rm_and_prune(ctx: &Ctx) {
    let id = ctx.run_d(&[
        "--name",
        "keep",
        "ct",
        "sh",
        "-c",
        &looping("trap 'exit 0' TERM;"),
    ]);
    ctx.wait_logs("keep", "ready");
    let st = ctx.state("keep");
    let (pid, mon) = (
        st["Pid"].as_u64().unwrap_or(0) as u32,
        st["MonitorPid"].as_u64().unwrap_or(0) as u32,
    );
    // rm of a running container: refused, still running.
    ctx.fails(&["rm", "keep"], None, &["keep"]);
    assert_eq!(ctx.state("keep")["Status"], "running");
    assert!(pid_alive(pid));
    // Exited and created ones, then prune: only the running one stays.
    let o = ctx.lf(&["run", "--name", "gone1", "ct", "true"]);
    assert_eq!(o.code, 0, "{o:?}");
    ctx.ok(&["container", "create", "--name", "gone2", "ct"]);
    let gone1 = ctx.full_id("gone1");
    let out = ctx.ok(&["container", "prune", "-f"]);
    assert!(out.contains(&gone1), "prune lists what it removed: {out}");
    assert_eq!(
        ctx.ps_ids(true),
        vec![id[..12].to_string()],
        "prune kept the running one only"
    );
    assert!(pid_alive(pid), "prune touched the running container");
    assert!(!ctx.root.join("containers").join(&gone1).exists());
    // rm -f: ends it, removes it, its processes and mount gone.
    let o = ctx.lf(&["rm", "-f", "keep"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(poll(WAIT, || !pid_alive(pid)), "init {pid} outlived rm -f");
    assert!(
        poll(WAIT, || !pid_alive(mon)),
        "monitor {mon} outlived rm -f"
    );
    assert_eq!(ctx.ps_ids(true), Vec::<String>::new());
    assert!(
        !ctx.root.join("containers").join(&id).exists(),
        "container dir left"
    );
    ctx.wait_no_mounts(&id);
    ctx.fails(&["container", "inspect", "keep"], None, &["keep"]);
    // rm of several at once, rm -f of a stopped one.
    ctx.ok(&["run", "--name", "a", "ct", "true"]);
    ctx.ok(&["run", "--name", "b", "ct", "true"]);
    let o = ctx.lf(&["rm", "a", "b"]);
    assert_eq!(o.code, 0, "{o:?}");
    ctx.ok(&["run", "--name", "c", "ct", "true"]);
    ctx.ok(&["rm", "-f", "c"]);
    assert_eq!(ctx.ps_ids(true), Vec::<String>::new());
}
