//! When things die: SIGKILL of layerfs's monitor (`State.MonitorPid`) or of the container's
//! init (`State.Pid`) must end the container, leave it `exited` and leave no mount behind;
//! SIGTERM/SIGINT to a foreground `run` reach the container. And writes inside a container
//! land in its upper dir: `container diff`, `commit`, `export` see them.

use super::harness::{Ctx, WAIT, poll};
use super::lifecycle::looping;
use crate::common::mount::pid_alive;

modes!(xdg: monitor_sigkill);
modes!(
    init_sigkill,
    signals_to_foreground_run,
    write_diff_commit_run
);

fn pids(ctx: &Ctx, name: &str) -> (u32, u32) {
    let st = ctx.state(name);
    let p = |k: &str| st[k].as_u64().unwrap_or(0) as u32;
    let (pid, mon) = (p("Pid"), p("MonitorPid"));
    assert!(pid > 1 && pid_alive(pid), "{name}: State.Pid: {st}");
    assert!(mon > 1 && pid_alive(mon), "{name}: State.MonitorPid: {st}");
    assert_ne!(pid, mon);
    (pid, mon)
}

/// After its processes died: exited (ps -a and inspect), wait returns, no mount, rm works.
fn assert_dead_and_clean(ctx: &Ctx, name: &str, id: &str, pid: u32) {
    assert!(
        poll(WAIT, || !pid_alive(pid)),
        "init {pid} of {name} still alive"
    );
    let st = ctx.wait_status(name, "exited");
    assert_eq!(
        (st["Running"].clone(), st["Pid"].clone()),
        (false.into(), 0.into()),
        "{st}"
    );
    let o = ctx.lf(&["wait", name]);
    assert_eq!(o.code, 0, "wait after the crash: {o:?}");
    assert!(o.stdout.trim().parse::<i32>().is_ok(), "wait printed {o:?}");
    let ps = ctx.ok(&["ps", "-a"]);
    let row = ps.lines().find(|l| l.ends_with(name)).unwrap_or("");
    assert!(row.contains("Exited ("), "ps -a row of {name}: {ps}");
    assert!(
        !ctx.ps_ids(false).contains(&id[..12].to_string()),
        "still in ps"
    );
    ctx.wait_no_mounts(id);
    ctx.ok(&["rm", name]);
    assert!(!ctx.root.join("containers").join(id).exists());
}

fn monitor_sigkill(ctx: &Ctx) {
    let id = ctx.run_d(&["--name", "m", "ct", "sh", "-c", &looping("")]);
    ctx.wait_logs("m", "ready");
    let (pid, mon) = pids(ctx, "m");
    unsafe { libc::kill(mon as i32, libc::SIGKILL) };
    assert!(
        poll(WAIT, || !pid_alive(mon)),
        "monitor {mon} survived SIGKILL"
    );
    assert_dead_and_clean(ctx, "m", &id, pid);
    // The store still runs containers afterwards.
    let o = ctx.lf(&["run", "--rm", "ct", "echo", "after"]);
    assert_eq!(o.stdout, "after\n", "{o:?}");
}

fn init_sigkill(ctx: &Ctx) {
    let id = ctx.run_d(&["--name", "i", "ct", "sh", "-c", &looping("")]);
    ctx.wait_logs("i", "ready");
    let (pid, mon) = pids(ctx, "i");
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert_eq!(ctx.wait_code("i"), 137, "an init killed by SIGKILL");
    assert!(
        poll(WAIT, || !pid_alive(mon)),
        "monitor {mon} outlived the container"
    );
    assert_dead_and_clean(ctx, "i", &id, pid);
}

fn signals_to_foreground_run(ctx: &Ctx) {
    for (sig, code, trap) in [(libc::SIGTERM, 21, "TERM"), (libc::SIGINT, 22, "INT")] {
        let script = looping(&format!("trap 'exit {code}' {trap};"));
        let name = format!("fg{code}");
        let mut fg = ctx.spawn(&["run", "--name", &name, "ct", "sh", "-c", &script]);
        assert!(
            fg.wait_stdout("ready", WAIT),
            "foreground run never ran: {:?} {:?}",
            fg.stdout(),
            fg.stderr()
        );
        fg.signal(sig);
        let o = fg.finish(WAIT);
        assert_eq!(o.code, code, "SIG{trap} to `layerfs run`: {o:?}");
        let st = ctx.state(&name);
        assert_eq!(
            (st["Status"].clone(), st["ExitCode"].clone()),
            ("exited".into(), code.into())
        );
        ctx.wait_no_mounts(&ctx.full_id(&name));
    }
    // --rm too: the container is gone after the signal.
    let script = looping("trap 'exit 23' TERM;");
    let mut fg = ctx.spawn(&["run", "--rm", "ct", "sh", "-c", &script]);
    assert!(fg.wait_stdout("ready", WAIT), "{:?}", fg.stderr());
    let before = ctx.ps_ids(true).len();
    fg.signal(libc::SIGTERM);
    assert_eq!(fg.finish(WAIT).code, 23);
    assert_eq!(
        ctx.ps_ids(true).len(),
        before - 1,
        "--rm container left after SIGTERM"
    );
}

fn write_diff_commit_run(ctx: &Ctx) {
    let o = ctx.lf(&[
        "run",
        "--name",
        "w",
        "ct",
        "sh",
        "-c",
        "echo x > /file && rm /etc/motd && mkdir -p /srv/d && echo y > /srv/d/f",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    let diff = ctx.ok(&["container", "diff", "w"]);
    for want in ["A /file", "D /etc/motd", "A /srv", "A /srv/d/f"] {
        assert!(diff.lines().any(|l| l == want), "diff lacks {want}: {diff}");
    }
    // The upper dir holds the write (as after a `container mount`).
    let v = ctx.inspect("w");
    let upper = v["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_eq!(
        std::fs::read_to_string(std::path::Path::new(&upper).join("file"))
            .ok()
            .as_deref(),
        Some("x\n"),
        "upper dir {upper}"
    );
    // export sees it.
    let tar_path = ctx.host_dir("out").join("w.tar");
    ctx.ok(&[
        "container",
        "export",
        "-o",
        tar_path.to_str().expect("utf8"),
        "w",
    ]);
    let mut names = Vec::new();
    let mut ar = tar::Archive::new(std::fs::File::open(&tar_path).expect("open export"));
    for e in ar.entries().expect("entries") {
        let e = e.expect("entry");
        names.push(e.path().expect("path").display().to_string());
    }
    assert!(
        names.iter().any(|n| n.trim_start_matches("./") == "file"),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.trim_start_matches("./") == "etc/motd"),
        "{names:?}"
    );
    // commit, and run the new image.
    let o = ctx.ok(&["container", "commit", "w", "newimg"]);
    assert!(!o.trim().is_empty(), "commit printed no id");
    let o = ctx.lf(&[
        "run",
        "--rm",
        "newimg",
        "sh",
        "-c",
        "cat /file /srv/d/f; test -e /etc/motd || echo nomotd",
    ]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "x\ny\nnomotd\n"), "{o:?}");
    // The committed image keeps the config (Env) of its parent.
    let o = ctx.lf(&["run", "--rm", "newimg", "sh", "-c", "echo $FOO"]);
    assert_eq!(o.stdout, "image\n", "{o:?}");
    // A running container's writes show in diff while it runs.
    let script = looping("echo live > /live;");
    ctx.run_d(&["--name", "live", "ct", "sh", "-c", &script]);
    ctx.wait_logs("live", "ready");
    let diff = ctx.ok(&["container", "diff", "live"]);
    assert!(
        diff.lines().any(|l| l == "A /live"),
        "diff of a running container: {diff}"
    );
}
