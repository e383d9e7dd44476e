//! podman as a client of layerfs, and layerfs without root.
//!
//! - `podman_*`: podman (Debian's 4.3 with runc) uses the layerfs binary as its overlay
//!   `mount_program` (storage.conf `[storage.options.overlay] mount_program = ...`) on a store
//!   of its own in a temp dir: load the fixture image, run it, write in a container, commit,
//!   run the new image, save it and load the archive back (into podman and into layerfs's own
//!   store). As root, and as the unprivileged `layerfs-test` user (rootless podman: user
//!   namespace through newuidmap, layerfs mounts as root of that namespace).
//! - `rootless_layerfs_*`: no podman; layerfs mounted by the unprivileged user (through
//!   fusermount3) and inside `unshare -r -m`, then the upper dir is checked for the
//!   unprivileged on-disk forms (`user.overlay.*`, `user.containers.override_stat`).
//!
//! Each test prints why it skips when its tools, root, or `../shared/fixtures` are missing.
//! Temp dirs, containers, mounts and podman's pause process are cleaned up by guards.

use crate::common;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_layerfs");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures");
const IMAGE: &str = "docker.io/library/busybox:latest";
const NEW_IMAGE: &str = "localhost/layerfs-podman-test:latest";

/// A program found on PATH.
fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
}

/// Why this test cannot run here, if it cannot.
fn missing(progs: &[&str], need_root: bool, need_fixture: bool) -> Option<String> {
    if need_root && !common::is_root() {
        return Some("needs root (creates the test user, runs podman as root)".into());
    }
    let absent: Vec<&str> = progs
        .iter()
        .copied()
        .filter(|p| which(p).is_none())
        .collect();
    if !absent.is_empty() {
        return Some(format!(
            "not installed: {} (Debian: apt-get install -y podman runc uidmap)",
            absent.join(", ")
        ));
    }
    if need_fixture && !fixture().is_file() {
        return Some(format!("no fixture {}", fixture().display()));
    }
    None
}

fn fixture() -> PathBuf {
    Path::new(FIXTURES).join("busybox.docker.tar")
}

fn skip(test: &str, why: &str) {
    eprintln!("SKIP {test}: {why}");
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Copy the layerfs binary where any user can run it (the target dir may be private).
fn public_binary(dir: &Path) -> PathBuf {
    let dst = dir.join("layerfs");
    fs::copy(BIN, &dst).expect("copy layerfs binary");
    fs::set_permissions(&dst, fs::Permissions::from_mode(0o755)).expect("chmod layerfs");
    dst
}

fn chown_tree(p: &Path, uid: u32, gid: u32) {
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(p)
        .status()
        .expect("run chown");
    assert!(st.success(), "chown -R {}", p.display());
}

/// Mount points under `root`, deepest first (mountinfo of this process's namespace).
fn mounts_under(root: &Path) -> Vec<String> {
    let root = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let prefix = format!("{}/", root.display());
    let mut v: Vec<String> = common::mount::mounts()
        .into_iter()
        .map(|(m, _)| m)
        .filter(|m| m.starts_with(&prefix))
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.len()));
    v
}

/// Unmounts a mount point when dropped (whatever happened in between).
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        common::mount::force_unmount(&self.0);
    }
}

/// The fs type of the mount at `p`, if `p` is a mount point.
fn fstype_at(p: &str) -> Option<String> {
    common::mount::mounts()
        .into_iter()
        .find(|(m, _)| m == p)
        .map(|(_, t)| t)
}

// ---------------------------------------------------------------------------------------
// podman
// ---------------------------------------------------------------------------------------

/// A podman with its own store, config and runtime dirs in a temp dir, run as root or as
/// the test user. Dropping it removes containers, unmounts leftovers, stops the rootless
/// pause process and deletes the temp dir.
struct Podman {
    dir: tempfile::TempDir,
    /// (uid, gid) for rootless podman; None for root.
    user: Option<(u32, u32)>,
    env: Vec<(String, String)>,
    /// Every podman command line and its output, for the failure message.
    log: std::cell::RefCell<String>,
}

impl Podman {
    fn new(user: Option<(u32, u32)>) -> Podman {
        let dir = common::tempdir();
        let base = dir.path().to_path_buf();
        let layerfs = public_binary(&base);
        // Everything podman writes lives under home/ (owned by the user when rootless).
        let home = base.join("home");
        let run = home.join("run");
        fs::create_dir_all(&run).expect("mkdir home/run");
        fs::set_permissions(&run, fs::Permissions::from_mode(0o700)).expect("chmod run");
        let graph = home.join("graph");
        let storage_conf = home.join("storage.conf");
        let q = |p: &Path| format!("{:?}", p.display().to_string());
        fs::write(
            &storage_conf,
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = {g}\nrunroot = {r}\n\
                 rootless_storage_path = {g}\n\n[storage.options.overlay]\nmount_program = {m}\n",
                g = q(&graph),
                r = q(&run.join("storage")),
                m = q(&layerfs),
            ),
        )
        .expect("write storage.conf");
        let containers_conf = home.join("containers.conf");
        // Root keeps podman's default tmp_dir (/run/libpod): a fresh one makes podman
        // "refresh", which frees every lock in the host-wide SHM lock segment, also those of
        // containers that are not ours. Rootless, the default is under XDG_RUNTIME_DIR (ours).
        fs::write(
            &containers_conf,
            format!(
                "[engine]\nevents_logger = \"file\"\nevents_logfile_path = {}\n",
                q(&home.join("events.log")),
            ),
        )
        .expect("write containers.conf");
        fs::copy(fixture(), home.join("busybox.docker.tar")).expect("copy fixture");
        if let Some((uid, gid)) = user {
            chown_tree(&home, uid, gid);
        }
        let mut env = vec![
            (
                "CONTAINERS_STORAGE_CONF".into(),
                storage_conf.display().to_string(),
            ),
            (
                "CONTAINERS_CONF".into(),
                containers_conf.display().to_string(),
            ),
            ("HOME".into(), home.display().to_string()),
            ("XDG_RUNTIME_DIR".into(), run.display().to_string()),
            (
                "XDG_CONFIG_HOME".into(),
                home.join("config").display().to_string(),
            ),
            (
                "XDG_DATA_HOME".into(),
                home.join("data").display().to_string(),
            ),
            ("LANG".into(), "C".into()),
        ];
        if let Some(p) = std::env::var_os("PATH") {
            env.push(("PATH".into(), p.to_string_lossy().into_owned()));
        }
        Podman {
            dir,
            user,
            env,
            log: Default::default(),
        }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn graph(&self) -> PathBuf {
        self.home().join("graph")
    }

    /// `podman --runtime runc ARGS` (as the user when rootless), cwd = home.
    fn run(&self, args: &[&str]) -> Output {
        let mut c = match self.user {
            None => Command::new("podman"),
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.args([
                    format!("--reuid={uid}"),
                    format!("--regid={gid}"),
                    "--init-groups".into(),
                    "podman".into(),
                ]);
                c
            }
        };
        c.args(["--runtime", "runc"])
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.home())
            .stdin(Stdio::null());
        let out = c.output().expect("run podman");
        let mut log = self.log.borrow_mut();
        log.push_str(&format!(
            "$ podman {}\n-> {:?}\n{}{}",
            args.join(" "),
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
                .lines()
                .filter(|l| !l.contains("is not a shared mount"))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        ));
        out
    }

    /// Run; panic with the whole podman log unless it succeeded; stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        if !out.status.success() {
            panic!(
                "podman {} failed ({:?}):\n{}\n--- podman log ---\n{}",
                args.join(" "),
                out.status.code(),
                text(&out.stderr),
                self.log.borrow()
            );
        }
        text(&out.stdout)
    }

    /// `podman run --rm` (or `--name NAME`) with the rlimits this machine accepts.
    fn run_args<'a>(name: Option<&'a str>, image: &'a str, cmd: &'a str) -> Vec<&'a str> {
        let mut v = vec!["run", "--network", "none"];
        v.extend([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ]);
        match name {
            Some(n) => v.extend(["--name", n]),
            None => v.push("--rm"),
        }
        v.extend([image, "sh", "-c", cmd]);
        v
    }

    /// The rootless pause process podman left (its pid file is under our runtime dir).
    fn pause_pids(&self) -> Vec<i32> {
        let mut out = Vec::new();
        let mut stack = vec![self.home().join("run")];
        while let Some(d) = stack.pop() {
            let Ok(rd) = fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(p);
                } else if e.file_name() == "pause.pid" {
                    let pid = fs::read_to_string(&p).ok();
                    out.extend(pid.and_then(|s| s.trim().parse::<i32>().ok()));
                }
            }
        }
        out
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-f", "-a", "-t", "0"]);
        // Root podman mounts in our namespace: nothing of it may stay mounted.
        for m in mounts_under(self.dir.path()) {
            common::mount::force_unmount(Path::new(&m));
        }
        // Rootless: the mounts live in the pause process's namespaces; ending it ends them
        // (the layerfs daemons see their connection go and exit).
        for pid in self.pause_pids() {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// The common flow; `tag` names the run in messages.
fn podman_flow(p: &Podman, tag: &str) {
    let out = p.ok(&["load", "-i", "busybox.docker.tar"]);
    assert!(
        out.contains(IMAGE),
        "{tag}: load did not report {IMAGE}: {out}"
    );

    // The container's root is a layerfs mount, and shows the fixture's files and owners.
    let out = p.ok(&Podman::run_args(
        None,
        IMAGE,
        "grep ' / ' /proc/mounts; cat /app/data/a; stat -c '%n %u:%g %a' /app/secret /app/suid-tool",
    ));
    assert!(
        out.lines()
            .any(|l| l.split(' ').nth(2) == Some("fuse.layerfs")),
        "{tag}: the container root is not a layerfs mount:\n{out}"
    );
    assert!(
        out.contains("/app/secret 1000:1000 600"),
        "{tag}: owner/mode of /app/secret:\n{out}"
    );
    assert!(
        out.contains("/app/suid-tool 0:0 4755"),
        "{tag}: setuid bit lost:\n{out}"
    );

    // Write, delete and rename inside a container, then commit it.
    p.ok(&Podman::run_args(
        Some("c"),
        IMAGE,
        "echo hi > /hello && rm /app/hello.txt && mv /app/data /app/data2 && chmod 600 /etc/passwd",
    ));
    let diff = p.ok(&["diff", "c"]);
    for want in [
        "A /hello",
        "D /app/hello.txt",
        "A /app/data2",
        "D /app/data",
    ] {
        assert!(
            diff.lines().any(|l| l == want),
            "{tag}: podman diff lacks {want}:\n{diff}"
        );
    }
    let id = p.ok(&["commit", "-q", "c", NEW_IMAGE]);
    assert!(!id.trim().is_empty(), "{tag}: commit printed no id");

    let check_new = |what: &str| {
        let out = p.ok(&Podman::run_args(
            None,
            NEW_IMAGE,
            "cat /hello; ls /app; cat /app/data2/a; stat -c '%n %u:%g %a' /etc/passwd /app/secret",
        ));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.first(), Some(&"hi"), "{tag} {what}: /hello:\n{out}");
        assert!(
            lines.contains(&"data2"),
            "{tag} {what}: renamed dir missing:\n{out}"
        );
        assert!(
            !lines.contains(&"data"),
            "{tag} {what}: renamed dir still there:\n{out}"
        );
        assert!(
            !lines.contains(&"hello.txt"),
            "{tag} {what}: deleted file back:\n{out}"
        );
        assert!(
            out.contains("/etc/passwd 0:0 600"),
            "{tag} {what}: chmod lost:\n{out}"
        );
        assert!(
            out.contains("/app/secret 1000:1000 600"),
            "{tag} {what}: owner lost:\n{out}"
        );
    };
    check_new("committed image");

    // Save, forget the image, load the archive back and run it again.
    p.ok(&["save", "-o", "saved.tar", NEW_IMAGE]);
    p.ok(&["rm", "c"]);
    p.ok(&["rmi", NEW_IMAGE]);
    let out = p.ok(&["load", "-i", "saved.tar"]);
    assert!(
        out.contains(NEW_IMAGE),
        "{tag}: saved archive did not load: {out}"
    );
    check_new("after save + load");

    // The archive is a real docker-archive: layerfs's own store loads and mounts it too.
    let store = p.dir.path().join("layerfs-store");
    let mnt = p.dir.path().join("layerfs-mnt");
    fs::create_dir_all(&mnt).expect("mkdir mnt");
    let o = Command::new(BIN)
        .arg("--root")
        .arg(&store)
        .args(["image", "load", "-i"])
        .arg(p.home().join("saved.tar"))
        .output()
        .expect("run layerfs image load");
    assert!(
        o.status.success(),
        "{tag}: layerfs image load: {}",
        text(&o.stderr)
    );
    let o = Command::new(BIN)
        .arg("--root")
        .arg(&store)
        .args(["image", "mount", NEW_IMAGE])
        .arg(&mnt)
        .output()
        .expect("run layerfs image mount");
    assert!(
        o.status.success(),
        "{tag}: layerfs image mount: {}",
        text(&o.stderr)
    );
    let guard = Unmount(mnt.clone());
    let hello = fs::read_to_string(mnt.join("hello"));
    let gone = mnt.join("app/hello.txt").exists();
    drop(guard);
    assert!(
        !common::mount::is_mounted(&mnt),
        "{tag}: layerfs image mount left mounted"
    );
    assert_eq!(
        hello.ok().as_deref(),
        Some("hi\n"),
        "{tag}: /hello in layerfs's mount"
    );
    assert!(!gone, "{tag}: deleted file visible in layerfs's mount");
}

#[test]
fn podman_root_uses_layerfs() {
    if let Some(why) = missing(&["podman", "runc"], true, true) {
        return skip("podman_root_uses_layerfs", &why);
    }
    let p = Podman::new(None);
    podman_flow(&p, "root");

    // While a container runs, podman's mount of its rootfs is layerfs's, on the host.
    p.ok(&["create", "--name", "m", "--network", "none", IMAGE, "true"]);
    let merged = p.ok(&["mount", "m"]).trim().to_string();
    assert!(
        merged.starts_with(&p.graph().display().to_string()),
        "mount point {merged}"
    );
    assert_eq!(
        fstype_at(&merged).as_deref(),
        Some("fuse.layerfs"),
        "podman mount m -> {merged}"
    );
    assert_eq!(
        fs::read_to_string(Path::new(&merged).join("app/data/a"))
            .ok()
            .as_deref(),
        Some("a\n")
    );
    p.ok(&["umount", "m"]);
    assert!(
        fstype_at(&merged).is_none(),
        "{merged} still mounted after podman umount"
    );
    p.ok(&["rm", "m"]);
    assert!(
        mounts_under(p.dir.path()).is_empty(),
        "leftover mounts: {:?}",
        mounts_under(p.dir.path())
    );
}

/// A container whose process is not root must be able to use its rootfs (any image with a
/// `USER`): fuse-overlayfs mounts with allow_other (and suid) when it runs as root, also as
/// root of rootless podman's user namespace, and podman relies on it.
fn container_user_not_root(p: &Podman, tag: &str) {
    p.ok(&["load", "-i", "busybox.docker.tar"]);
    let mut args = Podman::run_args(None, IMAGE, "id -u; cat /app/secret; ls /app/data");
    args.splice(1..1, ["--user", "1000:1000"]);
    let out = p.ok(&args);
    assert_eq!(
        out, "1000\nsecret\na\n",
        "{tag}: as uid 1000 in the container"
    );
}

#[test]
fn podman_root_container_user_not_root() {
    if let Some(why) = missing(&["podman", "runc"], true, true) {
        return skip("podman_root_container_user_not_root", &why);
    }
    container_user_not_root(&Podman::new(None), "root");
}

#[test]
fn podman_rootless_container_user_not_root() {
    match rootless_ready() {
        Ok(ids) => container_user_not_root(&Podman::new(Some(ids)), "rootless"),
        Err(why) => skip("podman_rootless_container_user_not_root", &why),
    }
}

/// podman's own id mapping (`run --uidmap`, rootless `--userns=keep-id`): containers-storage
/// asks the mount program to map, with `uidmapping=:C:H:N[:C:H:N...]` (note the leading ':'):
/// as fuse-overlayfs reads it, a file stored with id C+i shows as H+i, which the container's
/// user namespace maps back to C+i. `want` lines must appear in the container's output.
fn container_id_mapping(p: &Podman, tag: &str, image: &str, run_opts: &[&str], want: &[String]) {
    let script = "id -u; stat -c '%n %u:%g %a' /app /app/secret /app/suid-tool /etc/hostname; \
                  echo w > /tmp/w && stat -c '%n %u:%g' /tmp/w";
    let mut args = Podman::run_args(None, image, script);
    args.splice(1..1, run_opts.iter().copied());
    let out = p.ok(&args);
    for w in want {
        assert!(
            out.lines().any(|l| l == w),
            "{tag}: expected '{w}' in:\n{out}"
        );
    }
}

#[test]
fn podman_root_uidmap() {
    if let Some(why) = missing(&["podman", "runc"], true, true) {
        return skip("podman_root_uidmap", &why);
    }
    let p = Podman::new(None);
    p.ok(&["load", "-i", "busybox.docker.tar"]);
    // The fixture has no /etc/hostname: podman would create it through the mount as host
    // root, an id outside the mapping, which runc (container root) may not open. The same
    // happens with fuse-overlayfs; a committed container has the file.
    p.ok(&Podman::run_args(Some("prep"), IMAGE, "true"));
    p.ok(&["commit", "-q", "prep", NEW_IMAGE]);
    // Lower files' owners are not checked: podman 4.3 also id-maps the lower layers on
    // this kernel, so fuse-overlayfs shows them as 65534 too.
    let want = ["0", "/etc/hostname 0:0 644", "/tmp/w 0:0"].map(String::from);
    let map = ["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"];
    container_id_mapping(&p, "root --uidmap", NEW_IMAGE, &map, &want);
}

#[test]
fn podman_rootless_keep_id() {
    let (uid, gid) = match rootless_ready() {
        Ok(ids) => ids,
        Err(why) => return skip("podman_rootless_keep_id", &why),
    };
    let p = Podman::new(Some((uid, gid)));
    p.ok(&["load", "-i", "busybox.docker.tar"]);
    let want = [
        uid.to_string(),
        "/app 0:0 755".into(),
        "/app/secret 1000:1000 600".into(),
        "/app/suid-tool 0:0 4755".into(),
        format!("/tmp/w {uid}:{gid}"),
    ];
    container_id_mapping(&p, "rootless keep-id", IMAGE, &["--userns=keep-id"], &want);
}

/// Rootless podman needs the test user, its subordinate ids and newuidmap, and unprivileged
/// user namespaces.
fn rootless_ready() -> Result<(u32, u32), String> {
    if let Some(why) = missing(
        &["podman", "runc", "newuidmap", "newgidmap", "setpriv"],
        true,
        true,
    ) {
        return Err(why);
    }
    let (uid, gid) = common::test_user();
    for f in ["/etc/subuid", "/etc/subgid"] {
        let has = fs::read_to_string(f).unwrap_or_default().lines().any(|l| {
            let name = l.split(':').next().unwrap_or("");
            name == common::TEST_USER || name == uid.to_string()
        });
        if !has {
            return Err(format!(
                "{} has no range in {f} (usermod --add-subuids)",
                common::TEST_USER
            ));
        }
    }
    let (code, _, err) = common::sh_as_user("unshare -r true", Path::new("/"));
    if code != 0 {
        return Err(format!(
            "unprivileged user namespaces are not allowed here: {err}"
        ));
    }
    Ok((uid, gid))
}

#[test]
fn podman_rootless_uses_layerfs() {
    let (uid, gid) = match rootless_ready() {
        Ok(ids) => ids,
        Err(why) => return skip("podman_rootless_uses_layerfs", &why),
    };
    let p = Podman::new(Some((uid, gid)));
    podman_flow(&p, "rootless");
    // The store was written by the user (through its subordinate ids), never by root.
    let md = fs::metadata(p.graph()).expect("graphroot");
    assert_eq!(md.uid(), uid, "rootless graphroot owner");
}

mod rootless;
