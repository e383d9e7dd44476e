//! `exec` into a running container (its files, env, exit code, `-e -w -u -i -t`), and the
//! refusals that must leave nothing behind: exec into a container that is not running, a
//! second `start` of a running one, a name in use.

use super::harness::{CMD_LIMIT, Ctx};
use super::lifecycle::looping;
use crate::common::mount::pid_alive;

modes!(xdg: exec_into_running);
modes!(refusals);

fn exec_into_running(ctx: &Ctx) {
    let script = looping("echo mark > /tmp/mark; trap 'exit 0' TERM;");
    let id = ctx.run_d(&[
        "--name", "e", "-e", "RUNENV=r", "ct:user", "sh", "-c", &script,
    ]);
    ctx.wait_logs("e", "ready");
    // It sees what the container wrote, as the image's user, in the image's env.
    assert_eq!(ctx.ok(&["exec", "e", "cat", "/tmp/mark"]), "mark\n");
    assert_eq!(ctx.ok(&["exec", "e", "id", "-u"]), "1000\n");
    let env = ctx.ok(&["exec", "e", "env"]);
    assert!(env.lines().any(|l| l == "FOO=image"), "{env}");
    assert!(env.lines().any(|l| l == "RUNENV=r"), "run's -e: {env}");
    // The same container: the same pid namespace, the init is pid 1 there.
    let o = ctx.ok(&[
        "exec",
        "e",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    assert!(
        o.contains("while"),
        "pid 1 of the exec is not the container's init: {o:?}"
    );
    // Exit codes propagate; 126/127 as run.
    let o = ctx.lf(&["exec", "e", "sh", "-c", "exit 9"]);
    assert_eq!(o.code, 9, "{o:?}");
    let o = ctx.lf(&["exec", "e", "nosuchcmd"]);
    assert_eq!(o.code, 127, "{o:?}");
    super::harness::assert_error_line(&o, &["nosuchcmd"], &["exec"]);
    // -e, -w, -u.
    let o = ctx.ok(&[
        "exec",
        "-e",
        "X=1",
        "-e",
        "FOO=exec",
        "e",
        "sh",
        "-c",
        "echo $X $FOO",
    ]);
    assert_eq!(o, "1 exec\n");
    assert_eq!(ctx.ok(&["exec", "-w", "/etc", "e", "pwd"]), "/etc\n");
    assert_eq!(ctx.ok(&["exec", "-u", "0", "e", "id", "-u"]), "0\n");
    assert_eq!(ctx.ok(&["exec", "-u", "1234", "e", "id", "-u"]), "1234\n");
    assert_eq!(
        ctx.ok(&["exec", "-u", "root", "e", "sh", "-c", "id -u; id -g"]),
        "0\n0\n"
    );
    // -i forwards stdin, -t gives a pty.
    let o = ctx.lf_with(&["exec", "-i", "e", "cat"], Some(b"xyz\n"), CMD_LIMIT);
    assert_eq!((o.code, o.stdout.as_str()), (0, "xyz\n"), "{o:?}");
    // exec -t needs a terminal on the caller's side (runc's own console); without one
    // it is refused clearly (docs/containers.md).
    let o = ctx.lf(&["exec", "-t", "e", "tty"]);
    assert!(
        o.code == 125 && o.stderr.contains("terminal"),
        "exec -t: {o:?}"
    );
    // A write by exec lands in the container's upper dir.
    ctx.ok(&["exec", "-u", "0", "e", "sh", "-c", "echo hi > /from-exec"]);
    let diff = ctx.ok(&["container", "diff", "e"]);
    assert!(diff.lines().any(|l| l == "A /from-exec"), "{diff}");
    // The container ran on through all of it, and the execs are gone.
    let st = ctx.state("e");
    assert_eq!(st["Status"], "running", "{st}");
    ctx.ok(&["stop", "e"]);
    assert_eq!(ctx.wait_code("e"), 0);
    ctx.wait_no_mounts(&id);
    // exec into the stopped container is refused.
    ctx.fails(&["exec", "e", "true"], None, &["e"]);
}

fn refusals(ctx: &Ctx) {
    // exec into a created, never started container.
    ctx.ok(&["container", "create", "--name", "made", "ct"]);
    ctx.fails(&["exec", "made", "true"], None, &["made"]);
    assert_eq!(ctx.state("made")["Status"], "created");
    // A second start of a running container: an error, the container untouched.
    let script = looping("trap 'exit 0' TERM;");
    let id = ctx.run_d(&["--name", "busy", "ct", "sh", "-c", &script]);
    ctx.wait_logs("busy", "ready");
    let pid = ctx.state("busy")["Pid"].clone();
    ctx.fails(&["start", "busy"], None, &["busy"]);
    let st = ctx.state("busy");
    assert_eq!(
        (st["Status"].clone(), st["Pid"].clone()),
        ("running".into(), pid),
        "{st}"
    );
    assert_eq!(
        ctx.ok(&["logs", "busy"]),
        "ready\n",
        "a second start ran something"
    );
    // A name in use: refused by run (125), run -d and container create, nothing created.
    let before = ctx.ps_ids(true);
    let dirs = std::fs::read_dir(ctx.root.join("containers"))
        .map(|d| d.count())
        .unwrap_or(0);
    ctx.fails(
        &["run", "--name", "busy", "ct", "true"],
        Some(125),
        &["busy"],
    );
    ctx.fails(
        &["run", "-d", "--name", "busy", "ct", "true"],
        Some(125),
        &["busy"],
    );
    ctx.fails(
        &["run", "--rm", "--name", "made", "ct", "true"],
        Some(125),
        &["made"],
    );
    ctx.fails(
        &["container", "create", "--name", "busy", "ct"],
        None,
        &["busy"],
    );
    assert_eq!(ctx.ps_ids(true), before, "ps -a -q changed");
    let after = std::fs::read_dir(ctx.root.join("containers"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(after, dirs, "a refused container left a dir in the store");
    // The running one was not disturbed.
    let n = ctx.state("busy")["Pid"].as_u64().unwrap_or(0) as u32;
    assert!(pid_alive(n), "busy's init died");
    assert!(ctx.ps_ids(false).contains(&id[..12].to_string()));
}
