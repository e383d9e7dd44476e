//! What goes in and out of a foreground container besides its exit code: bind mounts
//! (read, written, `:ro`, a missing source), `--read-only`, stdin with `-i` (and none
//! without it), a pty with `-t`.

use super::harness::{CMD_LIMIT, Ctx};
use std::os::unix::fs::MetadataExt;

modes!(bind_mounts, read_only_rootfs, stdin, tty);

fn bind_mounts(ctx: &Ctx) {
    let host = ctx.host_dir("hostdata");
    std::fs::write(host.join("in.txt"), "from-host\n").expect("write");
    std::os::unix::fs::chown(host.join("in.txt"), Some(ctx.ids.0), Some(ctx.ids.1)).expect("chown");
    let v = format!("{}:/data", host.display());
    let o = ctx.lf(&[
        "run",
        "--rm",
        "-v",
        &v,
        "ct",
        "sh",
        "-c",
        "cat /data/in.txt; echo written > /data/out.txt; echo more >> /data/in.txt",
    ]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "from-host\n"), "{o:?}");
    let out = host.join("out.txt");
    assert_eq!(
        std::fs::read_to_string(&out).ok().as_deref(),
        Some("written\n"),
        "the host file"
    );
    assert_eq!(
        std::fs::read_to_string(host.join("in.txt")).expect("in.txt"),
        "from-host\nmore\n"
    );
    // The container's root is root on the host as root, the user rootless.
    let md = std::fs::metadata(&out).expect("stat out.txt");
    assert_eq!(
        md.uid(),
        ctx.host_root_uid(),
        "owner of a file the container wrote"
    );
    // The bind does not land in the container's upper dir.
    let o = ctx.lf(&[
        "run",
        "--name",
        "b",
        "-v",
        &v,
        "ct",
        "sh",
        "-c",
        "echo z > /data/z",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    let diff = ctx.ok(&["container", "diff", "b"]);
    assert!(
        !diff.contains("/data/z"),
        "bind-mounted write in the upper dir: {diff}"
    );
    assert!(host.join("z").is_file());
    // Read-only bind: reads work, writes fail, the host is untouched.
    let ro = format!("{}:/data:ro", host.display());
    let o = ctx.lf(&["run", "--rm", "-v", &ro, "ct", "cat", "/data/in.txt"]);
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "from-host\nmore\n"),
        "{o:?}"
    );
    let o = ctx.lf(&[
        "run",
        "--rm",
        "-v",
        &ro,
        "ct",
        "sh",
        "-c",
        "echo x > /data/ro.txt",
    ]);
    assert_ne!(o.code, 0, "write to a :ro bind: {o:?}");
    assert!(o.stderr.contains("Read-only file system"), "{o:?}");
    assert!(!host.join("ro.txt").exists(), "a :ro bind was written");
    // A single file, and two binds at once.
    let other = ctx.host_dir("other");
    std::fs::write(other.join("note"), "note\n").expect("write");
    let fv = format!("{}:/etc/note:ro", other.join("note").display());
    let ov = format!("{}:/mnt/other", other.display());
    let o = ctx.lf(&[
        "run",
        "--rm",
        "-v",
        &fv,
        "-v",
        &ov,
        "-v",
        &v,
        "ct",
        "sh",
        "-c",
        "cat /etc/note /mnt/other/note /data/out.txt",
    ]);
    assert_eq!(o.stdout, "note\nnote\nwritten\n", "{o:?}");
    // A missing source: 125 naming it, nothing created.
    let before = ctx.ps_ids(true).len();
    let missing = ctx.path("no/such/dir");
    let mv = format!("{}:/data", missing.display());
    ctx.fails(
        &["run", "--rm", "-v", &mv, "ct", "true"],
        Some(125),
        &[missing.to_str().expect("utf8")],
    );
    ctx.fails(
        &["run", "--name", "m", "-v", &mv, "ct", "true"],
        Some(125),
        &[],
    );
    assert_eq!(
        ctx.ps_ids(true).len(),
        before,
        "a refused run left a container"
    );
    assert!(!missing.exists(), "the missing source was created");
}

fn read_only_rootfs(ctx: &Ctx) {
    let o = ctx.lf(&[
        "run",
        "--rm",
        "--read-only",
        "ct",
        "sh",
        "-c",
        "echo x > /f",
    ]);
    assert_ne!(o.code, 0, "write to / with --read-only: {o:?}");
    assert!(o.stderr.contains("Read-only file system"), "{o:?}");
    let o = ctx.lf(&["run", "--rm", "--read-only", "ct", "touch", "/etc/passwd"]);
    assert_ne!(o.code, 0, "touch a lower file with --read-only: {o:?}");
    let o = ctx.lf(&["run", "--rm", "--read-only", "ct", "cat", "/etc/motd"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "image motd\n"), "{o:?}");
    // Binds stay writable.
    let host = ctx.host_dir("rw");
    let v = format!("{}:/data", host.display());
    let o = ctx.lf(&[
        "run",
        "--rm",
        "--read-only",
        "-v",
        &v,
        "ct",
        "sh",
        "-c",
        "echo y > /data/y",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(
        std::fs::read_to_string(host.join("y")).ok().as_deref(),
        Some("y\n")
    );
    // Nothing reached the upper dir.
    let o = ctx.lf(&[
        "run",
        "--name",
        "r",
        "--read-only",
        "ct",
        "sh",
        "-c",
        "echo x > /f",
    ]);
    assert_ne!(o.code, 0, "{o:?}");
    let diff = ctx.ok(&["container", "diff", "r"]);
    assert!(
        !diff.contains("/f"),
        "--read-only container changed: {diff}"
    );
    // Without the flag the same write works.
    let o = ctx.lf(&["run", "--rm", "ct", "sh", "-c", "echo x > /f && cat /f"]);
    assert_eq!(o.stdout, "x\n", "{o:?}");
}

fn stdin(ctx: &Ctx) {
    let o = ctx.lf_with(
        &["run", "--rm", "-i", "ct", "cat"],
        Some(b"abc\n"),
        CMD_LIMIT,
    );
    assert_eq!((o.code, o.stdout.as_str()), (0, "abc\n"), "{o:?}");
    // EOF reaches the container; a MiB goes through intact.
    let big: Vec<u8> = (0..1024 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    let o = ctx.lf_with(
        &["run", "--rm", "-i", "ct", "wc", "-c"],
        Some(&big),
        CMD_LIMIT,
    );
    assert_eq!(o.stdout.trim(), "1048576", "{o:?}");
    let o = ctx.lf_with(
        &[
            "run",
            "--rm",
            "-i",
            "ct",
            "sh",
            "-c",
            "read a; read b; echo \"$b-$a\"",
        ],
        Some(b"one\ntwo\n"),
        CMD_LIMIT,
    );
    assert_eq!(o.stdout, "two-one\n", "{o:?}");
    // Without -i the container's stdin is empty, whatever run's is.
    let o = ctx.lf_with(
        &["run", "--rm", "ct", "cat"],
        Some(b"not forwarded\n"),
        CMD_LIMIT,
    );
    assert_eq!((o.code, o.stdout.as_str()), (0, ""), "{o:?}");
}

fn tty(ctx: &Ctx) {
    let o = ctx.lf(&["run", "--rm", "-t", "ct", "tty"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout.trim().starts_with("/dev/pts/"),
        "-t gives a pty: {o:?}"
    );
    let o = ctx.lf(&[
        "run",
        "--rm",
        "-t",
        "ct",
        "sh",
        "-c",
        "test -t 0 && test -t 1 && exit 3",
    ]);
    assert_eq!(
        o.code, 3,
        "stdin and stdout are the pty, the code propagates: {o:?}"
    );
    let o = ctx.lf(&["run", "--rm", "-t", "ct", "echo", "through-pty"]);
    assert_eq!(o.stdout.replace('\r', ""), "through-pty\n", "{o:?}");
    // Without -t, no terminal.
    let o = ctx.lf(&["run", "--rm", "ct", "tty"]);
    assert_eq!(o.code, 1, "tty without -t: {o:?}");
    assert_eq!(o.stdout.trim(), "not a tty", "{o:?}");
}
