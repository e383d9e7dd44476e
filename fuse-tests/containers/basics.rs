//! Foreground `run`: output, exit codes (the container's; 125/126/127 as docker), the image
//! config (Entrypoint + Cmd, Env, WorkingDir, User) against the flags that override it,
//! `--hostname`, `--network`, and bad input refused with one clear `layerfs: ` line.

use super::harness::Ctx;

modes!(
    echo_and_exit_codes,
    cannot_invoke,
    bad_input_125,
    entrypoint_and_cmd,
    env,
    workdir,
    user,
    hostname_and_network,
);

/// A foreground `run --rm`'s stdout.
fn run_out(ctx: &Ctx, args: &[&str]) -> String {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(args);
    ctx.ok(&a)
}

fn echo_and_exit_codes(ctx: &Ctx) {
    let o = ctx.lf(&["run", "--rm", "ct", "echo", "hello"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "hello\n"), "{o:?}");
    for code in [0, 1, 42] {
        let o = ctx.lf(&["run", "--rm", "ct", "sh", "-c", &format!("exit {code}")]);
        assert_eq!(o.code, code, "exit {code} propagates: {o:?}");
    }
    let o = ctx.lf(&["run", "--rm", "ct", "false"]);
    assert_eq!(o.code, 1, "false: {o:?}");
    // stdout and stderr stay apart.
    let o = ctx.lf(&["run", "--rm", "ct", "sh", "-c", "echo out; echo err >&2"]);
    assert_eq!(o.stdout, "out\n", "{o:?}");
    assert!(o.stderr.contains("err\n"), "{o:?}");
    // The image's Cmd when none is given.
    assert_eq!(run_out(ctx, &["ct"]), "default-cmd\n");
    // --rm left nothing: no container, no mount.
    assert_eq!(
        ctx.ps_ids(true),
        Vec::<String>::new(),
        "--rm containers remain"
    );
    // Without --rm the container stays, exited with its code, and its mount is gone.
    let o = ctx.lf(&["run", "--name", "kept", "ct", "sh", "-c", "exit 3"]);
    assert_eq!(o.code, 3, "{o:?}");
    let st = ctx.state("kept");
    assert_eq!(st["Status"], "exited", "{st}");
    assert_eq!(st["ExitCode"], 3, "{st}");
    assert_eq!(st["Running"], false, "{st}");
    assert_eq!(st["Pid"], 0, "{st}");
    let id = ctx.full_id("kept");
    ctx.assert_no_mounts(&id);
}

fn cannot_invoke(ctx: &Ctx) {
    let o = ctx.fails(
        &["run", "--rm", "ct", "nosuchcmd"],
        Some(127),
        &["nosuchcmd"],
    );
    assert!(o.stdout.is_empty(), "{o:?}");
    ctx.fails(
        &["run", "--rm", "ct", "/bin/nosuch", "x"],
        Some(127),
        &["/bin/nosuch"],
    );
    // A file without x bits, a directory.
    ctx.fails(
        &["run", "--rm", "ct", "/etc/passwd"],
        Some(126),
        &["/etc/passwd"],
    );
    ctx.fails(&["run", "--rm", "ct", "/etc"], Some(126), &["/etc"]);
    // Nothing half-made: --rm removed each, and no mount stays.
    assert_eq!(ctx.ps_ids(true), Vec::<String>::new(), "containers remain");
    let o = ctx.lf(&["run", "--name", "nf", "ct", "nosuchcmd"]);
    assert_eq!(o.code, 127, "{o:?}");
    let id = ctx.full_id("nf");
    ctx.assert_no_mounts(&id);
    let st = ctx.state("nf");
    assert_eq!(st["Running"], false, "{st}");
}

fn bad_input_125(ctx: &Ctx) {
    let before = ctx.ps_ids(true).len();
    ctx.fails(
        &["run", "--rm", "--pull", "never", "nosuchimage:v9", "true"],
        Some(125),
        &["nosuchimage:v9"],
    );
    // A bad flag value, port publishing (not supported without slirp4netns/pasta).
    ctx.fails(
        &["run", "--rm", "--network", "bridge9", "ct", "true"],
        Some(125),
        &[],
    );
    ctx.fails(
        &["run", "--rm", "--pull", "sometimes", "ct", "true"],
        Some(125),
        &[],
    );
    let o = ctx.fails(
        &["run", "--rm", "-p", "8080:80", "ct", "true"],
        Some(125),
        &[],
    );
    assert!(
        o.stderr.contains("-p") || o.stderr.contains("publish") || o.stderr.contains("port"),
        "-p refused without saying why: {o:?}"
    );
    assert_eq!(
        ctx.ps_ids(true).len(),
        before,
        "a refused run left a container"
    );
    // Unknown containers, for every verb that takes one.
    for verb in [
        &["start", "nosuchctr"][..],
        &["stop", "nosuchctr"],
        &["kill", "nosuchctr"],
        &["logs", "nosuchctr"],
        &["wait", "nosuchctr"],
        &["exec", "nosuchctr", "true"],
        &["rm", "nosuchctr"],
        &["restart", "nosuchctr"],
    ] {
        ctx.fails(verb, None, &["nosuchctr"]);
    }
}

fn entrypoint_and_cmd(ctx: &Ctx) {
    // Entrypoint + Cmd; CMD args replace Cmd.
    assert_eq!(run_out(ctx, &["ct:ep"]), "ep c1 c2\n");
    assert_eq!(run_out(ctx, &["ct:ep", "x", "y"]), "ep x y\n");
    // --entrypoint replaces Entrypoint and drops the image's Cmd.
    assert_eq!(run_out(ctx, &["--entrypoint", "echo", "ct:ep"]), "\n");
    assert_eq!(
        run_out(ctx, &["--entrypoint", "printf", "ct:ep", "%s-", "a", "b"]),
        "a-b-"
    );
    assert_eq!(
        run_out(ctx, &["--entrypoint", "/bin/echo", "ct", "z"]),
        "z\n"
    );
    // An image without Entrypoint: CMD args are the whole command.
    assert_eq!(run_out(ctx, &["ct", "echo", "plain"]), "plain\n");
}

/// `env` output as a sorted list of lines.
fn env_lines(s: &str) -> Vec<String> {
    s.lines().map(str::to_string).collect()
}

fn env(ctx: &Ctx) {
    let e = env_lines(&run_out(ctx, &["ct", "env"]));
    assert!(e.contains(&super::image::PATH_ENV.to_string()), "{e:?}");
    assert!(e.contains(&"FOO=image".to_string()), "{e:?}");
    let e = env_lines(&run_out(
        ctx,
        &["-e", "FOO=flag", "-e", "BAR=b=c", "ct", "env"],
    ));
    assert!(e.contains(&"FOO=flag".to_string()), "{e:?}");
    assert!(!e.contains(&"FOO=image".to_string()), "{e:?}");
    assert!(e.contains(&"BAR=b=c".to_string()), "{e:?}");
    let f = ctx.path("env.list");
    std::fs::write(&f, "# a comment\nFOO=file\n\nBAZ=from file\n").expect("write env file");
    let fs = f.to_str().expect("utf8");
    let e = env_lines(&run_out(ctx, &["--env-file", fs, "ct", "env"]));
    assert!(e.contains(&"FOO=file".to_string()), "{e:?}");
    assert!(e.contains(&"BAZ=from file".to_string()), "{e:?}");
    assert!(!e.iter().any(|l| l.contains("comment")), "{e:?}");
    // -e wins over --env-file (docker reads the file first).
    let e = env_lines(&run_out(
        ctx,
        &["--env-file", fs, "-e", "FOO=flag", "ct", "env"],
    ));
    assert!(e.contains(&"FOO=flag".to_string()), "{e:?}");
    assert!(e.contains(&"BAZ=from file".to_string()), "{e:?}");
    // The shell sees it too.
    assert_eq!(
        run_out(ctx, &["-e", "X=1 2", "ct", "sh", "-c", "echo \"$X|$FOO\""]),
        "1 2|image\n"
    );
    ctx.fails(
        &[
            "run",
            "--rm",
            "--env-file",
            "/nonexistent/env.list",
            "ct",
            "true",
        ],
        Some(125),
        &["/nonexistent/env.list"],
    );
}

fn workdir(ctx: &Ctx) {
    assert_eq!(run_out(ctx, &["ct", "pwd"]), "/\n");
    assert_eq!(run_out(ctx, &["ct:wd"]), "/home/app\n");
    assert_eq!(run_out(ctx, &["-w", "/tmp", "ct:wd"]), "/tmp\n");
    assert_eq!(run_out(ctx, &["-w", "/etc", "ct", "pwd"]), "/etc\n");
    // Relative paths in the command resolve from there.
    assert_eq!(
        run_out(ctx, &["-w", "/etc", "ct", "cat", "motd"]),
        "image motd\n"
    );
}

fn user(ctx: &Ctx) {
    let ids = "echo $(id -u) $(id -g)";
    assert_eq!(run_out(ctx, &["ct:user"]), "1000\n");
    assert_eq!(run_out(ctx, &["ct:user", "sh", "-c", ids]), "1000 1000\n");
    assert_eq!(
        run_out(ctx, &["-u", "0", "ct:user", "sh", "-c", ids]),
        "0 0\n"
    );
    assert_eq!(
        run_out(ctx, &["-u", "app:root", "ct", "sh", "-c", ids]),
        "1000 0\n"
    );
    assert_eq!(
        run_out(ctx, &["-u", "app", "ct", "sh", "-c", ids]),
        "1000 1000\n"
    );
    // Numeric ids not in /etc/passwd work (gid 0 when none is given, as docker).
    assert_eq!(
        run_out(ctx, &["-u", "1234", "ct", "sh", "-c", ids]),
        "1234 0\n"
    );
    assert_eq!(
        run_out(ctx, &["-u", "1234:5678", "ct", "sh", "-c", ids]),
        "1234 5678\n"
    );
    assert_eq!(run_out(ctx, &["ct", "sh", "-c", ids]), "0 0\n");
    // The ids are real: app writes its home and /tmp, not /etc; root writes /etc.
    let o = ctx.lf(&[
        "run",
        "--rm",
        "ct:user",
        "sh",
        "-c",
        "touch /home/app/f && touch /tmp/f && echo ok; touch /etc/f && echo wrote-etc",
    ]);
    assert_eq!(o.stdout, "ok\n", "app's writes: {o:?}");
    assert_eq!(
        run_out(ctx, &["ct", "sh", "-c", "touch /etc/f && echo root-ok"]),
        "root-ok\n"
    );
    // HOME from passwd.
    assert_eq!(
        run_out(ctx, &["ct:user", "sh", "-c", "echo $HOME"]),
        "/home/app\n"
    );
    ctx.fails(
        &["run", "--rm", "-u", "nosuchuser", "ct", "true"],
        None,
        &["nosuchuser"],
    );
}

/// Interface names in /proc/net/dev text.
fn ifaces(dev: &str) -> Vec<String> {
    let mut v: Vec<String> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|s| s.trim().to_string())
        .collect();
    v.sort();
    v
}

fn hostname_and_network(ctx: &Ctx) {
    let host = ifaces(&std::fs::read_to_string("/proc/net/dev").expect("/proc/net/dev"));
    let none = ifaces(&run_out(
        ctx,
        &["--network", "none", "ct", "cat", "/proc/net/dev"],
    ));
    assert_eq!(none, vec!["lo".to_string()], "--network none");
    let hostnet = ifaces(&run_out(
        ctx,
        &["--network", "host", "ct", "cat", "/proc/net/dev"],
    ));
    assert_eq!(hostnet, host, "--network host sees the host's interfaces");
    assert_eq!(
        run_out(
            ctx,
            &["--network", "none", "--hostname", "box1", "ct", "hostname"]
        ),
        "box1\n"
    );
    assert_eq!(
        run_out(ctx, &["--hostname", "box2", "ct", "hostname"]),
        "box2\n"
    );
    // The host's name did not change.
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert!(
        h.trim() != "box1" && h.trim() != "box2",
        "host renamed: {h}"
    );
}
