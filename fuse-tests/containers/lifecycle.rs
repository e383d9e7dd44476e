//! Detached containers: `run -d`, the json-file log and `logs` (`--tail`, `-f`), `stop`
//! (a TERM trap's code, the image's StopSignal, SIGKILL after `-t`), `wait`, `start` again
//! (logs appended) and `start -a`, `restart`, `kill -s`.

use super::harness::{Ctx, WAIT, poll};
use crate::common::mount::pid_alive;
use std::time::{Duration, Instant};

modes!(xdg: detached_logs_stop_wait, start_again_and_attach);
modes!(
    stop_signal_and_timeout,
    restart_and_kill,
    logs_tail_and_follow
);

/// A shell that runs `setup`, says `ready` and waits for signals.
pub fn looping(setup: &str) -> String {
    format!("{setup} echo ready; while :; do sleep 0.1; done")
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm)`.
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    if b.len() < 20 || !digits(0..4) || !digits(5..7) || !digits(8..10) || !digits(11..13) {
        return false;
    }
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        rest = &r[n..];
    }
    rest == "Z" || (rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')))
}

/// The State of a container that `run -d` just started: running, with live processes.
fn assert_running(ctx: &Ctx, name: &str) -> (u32, u32) {
    let st = ctx.state(name);
    assert_eq!(st["Status"], "running", "{name}: {st}");
    assert_eq!(st["Running"], true, "{name}: {st}");
    let pid = st["Pid"].as_u64().unwrap_or(0) as u32;
    let mon = st["MonitorPid"].as_u64().unwrap_or(0) as u32;
    assert!(
        pid > 1 && pid_alive(pid),
        "{name}: State.Pid not a live process: {st}"
    );
    assert!(
        mon > 1 && pid_alive(mon),
        "{name}: State.MonitorPid not live: {st}"
    );
    assert!(
        is_rfc3339(st["StartedAt"].as_str().unwrap_or("")),
        "StartedAt: {st}"
    );
    (pid, mon)
}

fn detached_logs_stop_wait(ctx: &Ctx) {
    let script = looping("echo started; echo to-err >&2; trap 'echo got-term; exit 7' TERM;");
    let id = ctx.run_d(&["--name", "d", "ct", "sh", "-c", &script]);
    let (pid, mon) = assert_running(ctx, "d");
    assert_eq!(ctx.full_id("d"), id);
    let logs = ctx.wait_logs("d", "ready");
    assert!(logs.contains("started\n"), "{logs:?}");
    // stdout and stderr stay apart in `logs`.
    let o = ctx.lf(&["logs", "d"]);
    assert_eq!(o.stdout, "started\nready\n", "{o:?}");
    assert_eq!(o.stderr, "to-err\n", "{o:?}");
    // The json-file log, docker's format.
    let file = ctx.root.join(format!("containers/{id}/{id}-json.log"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut seen = Vec::new();
    for l in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("log line {l:?}: {e}"));
        let time = v["time"].as_str().unwrap_or("");
        assert!(time.ends_with('Z') && is_rfc3339(time), "time of {l}");
        seen.push((
            v["stream"].as_str().unwrap_or("?").to_string(),
            v["log"].as_str().unwrap_or("?").to_string(),
        ));
    }
    for want in [
        ("stdout", "started\n"),
        ("stderr", "to-err\n"),
        ("stdout", "ready\n"),
    ] {
        assert!(
            seen.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not in {seen:?}"
        );
    }
    // ps shows it running.
    assert!(ctx.ps_ids(false).contains(&id[..12].to_string()));
    // stop: TERM reaches the trap; wait prints its code.
    let o = ctx.lf(&["stop", "-t", "20", "d"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout.trim(), "d", "stop prints the name: {o:?}");
    assert_eq!(ctx.wait_code("d"), 7);
    let st = ctx.state("d");
    assert_eq!(st["Status"], "exited", "{st}");
    assert_eq!(
        (st["Running"].clone(), st["ExitCode"].clone()),
        (false.into(), 7.into())
    );
    assert_eq!(
        (st["Pid"].clone(), st["MonitorPid"].clone()),
        (0.into(), 0.into()),
        "{st}"
    );
    assert!(is_rfc3339(st["FinishedAt"].as_str().unwrap_or("")), "{st}");
    assert!(!pid_alive(pid), "the container's init {pid} outlived stop");
    assert!(
        poll(WAIT, || !pid_alive(mon)),
        "monitor {mon} outlived its container"
    );
    assert!(ctx.lf(&["logs", "d"]).stdout.contains("got-term\n"));
    ctx.wait_no_mounts(&id);
    // wait on an exited container answers at once, again.
    assert_eq!(ctx.wait_code("d"), 7);
    // stop of a stopped container is not an error (docker).
    let o = ctx.lf(&["stop", "d"]);
    assert_eq!(o.code, 0, "{o:?}");
}

fn start_again_and_attach(ctx: &Ctx) {
    let id = ctx.run_d(&["--name", "s", "ct", "sh", "-c", "echo hello-log; exit 5"]);
    assert_eq!(ctx.wait_code("s"), 5);
    assert_eq!(ctx.ok(&["logs", "s"]), "hello-log\n");
    let o = ctx.lf(&["start", "s"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout.trim(), "s", "start prints the name: {o:?}");
    assert_eq!(ctx.wait_code("s"), 5);
    assert_eq!(
        ctx.ok(&["logs", "s"]),
        "hello-log\nhello-log\n",
        "logs appended"
    );
    // start -a: the output, and the container's code as start's.
    let o = ctx.lf(&["start", "-a", "s"]);
    assert_eq!((o.code, o.stdout.as_str()), (5, "hello-log\n"), "{o:?}");
    assert_eq!(ctx.ok(&["logs", "s"]).lines().count(), 3);
    ctx.wait_no_mounts(&id);
    // Writes survive a restart of the container (the same upper dir).
    let o = ctx.lf(&[
        "run",
        "--name",
        "p",
        "ct",
        "sh",
        "-c",
        "cat /count 2>/dev/null; echo x >> /count",
    ]);
    assert_eq!((o.code, o.stdout.as_str()), (0, ""), "{o:?}");
    let o = ctx.lf(&["start", "-a", "p"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "x\n"), "{o:?}");
    // A created container: start -a runs the image's Cmd; -i forwards stdin.
    ctx.ok(&["container", "create", "--name", "c", "ct"]);
    assert_eq!(ctx.state("c")["Status"], "created");
    let o = ctx.lf(&["start", "-a", "c"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "default-cmd\n"), "{o:?}");
    assert_eq!(ctx.state("c")["Status"], "exited");
    let o = ctx.lf_with(
        &["run", "-i", "--name", "i", "ct", "cat"],
        Some(b"one\n"),
        WAIT,
    );
    assert_eq!(o.stdout, "one\n", "{o:?}");
    let o = ctx.lf_with(&["start", "-a", "-i", "i"], Some(b"two\n"), WAIT);
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "two\n"),
        "start -a -i: {o:?}"
    );
}

fn stop_signal_and_timeout(ctx: &Ctx) {
    // The image's StopSignal (SIGUSR1): its trap exits 10; TERM's would exit 15.
    let id = ctx.run_d(&["--name", "sig", "ct:stop"]);
    ctx.wait_logs("sig", "ready");
    ctx.ok(&["stop", "-t", "20", "sig"]);
    assert_eq!(ctx.wait_code("sig"), 10, "StopSignal honoured");
    assert!(ctx.ok(&["logs", "sig"]).contains("got-usr1"));
    ctx.wait_no_mounts(&id);
    // TERM ignored: SIGKILL after the timeout, 137.
    let script = looping("trap '' TERM;");
    let id = ctx.run_d(&["--name", "stubborn", "ct", "sh", "-c", &script]);
    ctx.wait_logs("stubborn", "ready");
    let pid = ctx.state("stubborn")["Pid"].as_u64().unwrap_or(0) as u32;
    let t = Instant::now();
    let o = ctx.lf(&["stop", "-t", "1", "stubborn"]);
    let took = t.elapsed();
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        took >= Duration::from_millis(900),
        "stop -t 1 did not wait: {took:?}"
    );
    assert!(took < Duration::from_secs(30), "stop -t 1 took {took:?}");
    assert_eq!(ctx.wait_code("stubborn"), 137);
    let st = ctx.state("stubborn");
    assert_eq!(
        (st["Status"].clone(), st["ExitCode"].clone()),
        ("exited".into(), 137.into())
    );
    assert!(!pid_alive(pid), "init {pid} survived SIGKILL");
    ctx.wait_no_mounts(&id);
    // stop -t 0 kills at once.
    ctx.run_d(&["--name", "now", "ct", "sh", "-c", &script]);
    ctx.wait_logs("now", "ready");
    let t = Instant::now();
    ctx.ok(&["stop", "-t", "0", "now"]);
    assert_eq!(ctx.wait_code("now"), 137);
    assert!(t.elapsed() < Duration::from_secs(30));
}

fn restart_and_kill(ctx: &Ctx) {
    let script = looping("echo boot; trap 'exit 0' TERM;");
    ctx.run_d(&["--name", "r", "ct", "sh", "-c", &script]);
    ctx.wait_logs("r", "ready");
    let (old, _) = assert_running(ctx, "r");
    let o = ctx.lf(&["restart", "-t", "10", "r"]);
    assert_eq!(o.code, 0, "{o:?}");
    let st = ctx.wait_status("r", "running");
    let new = st["Pid"].as_u64().unwrap_or(0) as u32;
    assert!(
        new != old && pid_alive(new),
        "restart: new init {new}, old {old}: {st}"
    );
    assert!(!pid_alive(old), "old init {old} alive after restart");
    let ok = poll(WAIT, || {
        ctx.lf(&["logs", "r"]).stdout.matches("boot\n").count() == 2
    });
    assert!(ok, "logs after restart: {:?}", ctx.lf(&["logs", "r"]));
    // restart of an exited container starts it.
    ctx.ok(&["stop", "r"]);
    assert_eq!(ctx.wait_code("r"), 0);
    ctx.ok(&["restart", "r"]);
    ctx.wait_status("r", "running");
    // kill -s USR1 reaches the trap; plain kill is SIGKILL.
    let usr = looping("trap 'echo usr1; exit 12' USR1; trap '' TERM;");
    ctx.run_d(&["--name", "k", "ct", "sh", "-c", &usr]);
    ctx.run_d(&["--name", "k9", "ct", "sh", "-c", &usr]);
    ctx.wait_logs("k", "ready");
    ctx.wait_logs("k9", "ready");
    let o = ctx.lf(&["kill", "-s", "USR1", "k"]);
    assert_eq!((o.code, o.stdout.trim()), (0, "k"), "{o:?}");
    ctx.ok(&["kill", "k9"]);
    // wait on two names: one code a line, in order.
    let o = ctx.lf(&["wait", "k", "k9"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "12\n137\n"), "{o:?}");
    assert!(ctx.ok(&["logs", "k"]).contains("usr1\n"));
    // kill -s SIGUSR1 (the SIG form) and a number.
    ctx.ok(&["start", "k"]);
    ctx.wait_status("k", "running");
    let ok = poll(WAIT, || {
        ctx.lf(&["logs", "k"]).stdout.matches("ready").count() == 2
    });
    assert!(ok, "second start of k");
    ctx.ok(&["kill", "-s", "SIGUSR1", "k"]);
    assert_eq!(ctx.wait_code("k"), 12);
    ctx.fails(&["kill", "k"], None, &["k"]);
}

fn logs_tail_and_follow(ctx: &Ctx) {
    ctx.run_d(&[
        "--name",
        "t",
        "ct",
        "sh",
        "-c",
        "echo one; echo two; echo three",
    ]);
    assert_eq!(ctx.wait_code("t"), 0);
    assert_eq!(ctx.ok(&["logs", "t"]), "one\ntwo\nthree\n");
    assert_eq!(ctx.ok(&["logs", "--tail", "1", "t"]), "three\n");
    assert_eq!(ctx.ok(&["logs", "--tail", "2", "t"]), "two\nthree\n");
    assert_eq!(ctx.ok(&["logs", "--tail", "0", "t"]), "");
    // logs -f follows until the container exits.
    let sig = ctx.host_dir("sig");
    let v = format!("{}:/sig", sig.display());
    let script = "echo a; while [ ! -e /sig/go ]; do sleep 0.1; done; echo b";
    ctx.run_d(&["--name", "f", "-v", &v, "ct", "sh", "-c", script]);
    let mut follow = ctx.spawn(&["logs", "-f", "f"]);
    assert!(
        follow.wait_stdout("a\n", WAIT),
        "logs -f showed nothing: {:?} {:?}",
        follow.stdout(),
        follow.stderr()
    );
    assert_eq!(
        follow.exited(),
        None,
        "logs -f returned while the container runs"
    );
    std::fs::write(sig.join("go"), "").expect("write go");
    let o = follow.finish(WAIT);
    assert_eq!((o.code, o.stdout.as_str()), (0, "a\nb\n"), "logs -f: {o:?}");
    // -f on an exited container prints and returns.
    let o = ctx.lf(&["logs", "-f", "f"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "a\nb\n"), "{o:?}");
    // --tail with -f.
    let o = ctx.lf(&["logs", "-f", "--tail", "1", "t"]);
    assert_eq!(o.stdout, "three\n", "{o:?}");
}
