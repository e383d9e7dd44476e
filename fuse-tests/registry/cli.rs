//! Running layerfs against a registry: `Lf` is a throwaway store plus a private home (docker
//! config, XDG dirs, `LAYERFS_CONFIG`), so no test sees the host's credentials or config;
//! optionally as the unprivileged test user. Also the store checks every fault test makes
//! (nothing new, nothing staged) and image mounts behind an always-unmount guard.

pub use super::storeutil::{BIN, MountGuard, Out, St, can_fuse, out};
use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Lf {
    pub st: St,
    pub home: PathBuf,
    /// Run as the unprivileged test user (`setpriv`).
    pub user: bool,
}

impl Lf {
    pub fn new() -> Lf {
        let st = St::new();
        let home = st.path("home");
        std::fs::create_dir_all(home.join(".docker")).expect("mkdir home");
        Lf {
            st,
            home,
            user: false,
        }
    }

    /// A store and home owned by the test user; every command runs as that user.
    pub fn unprivileged() -> Lf {
        let (uid, gid) = crate::common::test_user();
        let st = St::new();
        std::fs::set_permissions(st.dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the temp dir");
        let home = st.path("home");
        for d in [&st.root, &home, &home.join(".docker")] {
            std::fs::create_dir_all(d).expect("mkdir");
            std::os::unix::fs::chown(d, Some(uid), Some(gid)).expect("chown");
        }
        Lf {
            st,
            home,
            user: true,
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.st.path(p)
    }
    /// A fresh dir the commands can write (owned by the test user when `user`).
    pub fn dir(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::create_dir_all(&p).expect("mkdir");
        if self.user {
            let (uid, gid) = crate::common::test_user();
            std::os::unix::fs::chown(&p, Some(uid), Some(gid)).expect("chown");
        }
        p
    }
    /// `$DOCKER_CONFIG` of the commands.
    pub fn docker_config(&self) -> PathBuf {
        self.home.join(".docker")
    }
    /// `$LAYERFS_CONFIG` of the commands (absent until `write_config`).
    pub fn config_path(&self) -> PathBuf {
        self.home.join("layerfs.json")
    }
    pub fn write_config(&self, v: &serde_json::Value) {
        std::fs::write(self.config_path(), v.to_string()).expect("write layerfs config");
    }
    /// Trust `ca` for `host` the per-user way (`$XDG_CONFIG_HOME/containers/certs.d/HOST/`).
    pub fn trust_ca(&self, host: &str, ca: &Path) {
        let d = self.home.join(".config/containers/certs.d").join(host);
        std::fs::create_dir_all(&d).expect("mkdir certs.d");
        std::fs::copy(ca, d.join("ca.crt")).expect("copy ca.crt");
    }

    /// The command with the private environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = if self.user {
            let (uid, gid) = crate::common::test_user();
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--init-groups".to_string(),
            ]);
            c.arg(BIN);
            c
        } else {
            Command::new(BIN)
        };
        c.arg("--root").arg(&self.st.root).args(args);
        for k in [
            "LAYERFS_ROOT",
            "REGISTRY_AUTH_FILE",
            "RUST_LOG",
            "DOCKER_HOST",
        ] {
            c.env_remove(k);
        }
        c.env("HOME", &self.home)
            .env("DOCKER_CONFIG", self.docker_config())
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_RUNTIME_DIR", self.home.join("run"))
            .env("LAYERFS_CONFIG", self.config_path());
        c
    }

    pub fn run(&self, args: &[&str]) -> Out {
        out(self
            .cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("run layerfs"))
    }

    /// Run with `input` on stdin (`login --password-stdin`).
    pub fn run_input(&self, args: &[&str], input: &str) -> Out {
        let mut c = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn layerfs");
        c.stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        out(c.wait_with_output().expect("wait layerfs"))
    }

    /// Run, assert exit 0, return stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(
            o.code, 0,
            "layerfs {args:?} failed:\n{}\n{}",
            o.stderr, o.stdout
        );
        o.stdout
    }

    pub fn state(&self) -> StoreState {
        StoreState::of(&self.st.root)
    }

    /// `image mount IMG` on a fresh mount point, unmounted when the guard drops.
    pub fn mount(&self, img: &str) -> (MountGuard, PathBuf) {
        let mnt = self.dir(&format!("mnt-{}", img.replace([':', '/', '@'], "_")));
        let m = mnt.to_str().expect("utf8");
        let o = self.run(&["image", "mount", "--allow-other", img, m]);
        assert_eq!(o.code, 0, "image mount {img}: {}", o.stderr);
        (MountGuard(mnt.clone()), mnt)
    }
}

/// Exit 1 and exactly one `layerfs: ` line on stderr.
#[track_caller]
pub fn assert_failure(o: &Out, what: &str) {
    assert_eq!(
        o.code, 1,
        "{what} should fail with exit 1; stdout:\n{}\nstderr:\n{}",
        o.stdout, o.stderr
    );
    let lines = o
        .stderr
        .lines()
        .filter(|l| l.starts_with("layerfs: "))
        .count();
    assert_eq!(
        lines, 1,
        "{what}: one `layerfs: ` line on stderr, got:\n{}",
        o.stderr
    );
    // Shown with --nocapture: the messages are part of what is reviewed.
    eprintln!("{what}: {}", o.stderr.trim_end());
}

/// What a failed pull must not change: images, layers, layer dirs; and staging left behind.
#[derive(Debug, PartialEq, Eq)]
pub struct StoreState {
    pub images: BTreeSet<String>,
    pub layers: BTreeSet<String>,
    pub layer_dirs: BTreeSet<String>,
    pub tmp: BTreeSet<String>,
}

fn names(p: &Path) -> BTreeSet<String> {
    std::fs::read_dir(p)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

impl StoreState {
    pub fn of(root: &Path) -> StoreState {
        StoreState {
            images: names(&root.join("image/overlay2/imagedb/content/sha256")),
            layers: names(&root.join("image/overlay2/layerdb/sha256")),
            // `l` holds the short links (made with the store), not a layer.
            layer_dirs: names(&root.join("overlay2"))
                .into_iter()
                .filter(|n| n != "l")
                .collect(),
            tmp: names(&root.join("tmp")),
        }
    }
    /// After a failure: the same images, layers and layer dirs as `before`, and tmp/ empty.
    #[track_caller]
    pub fn assert_unchanged(&self, before: &StoreState, what: &str) {
        assert_eq!(self.images, before.images, "{what}: images changed");
        assert_eq!(self.layers, before.layers, "{what}: layers changed");
        assert_eq!(
            self.layer_dirs, before.layer_dirs,
            "{what}: layer dirs changed"
        );
        assert!(
            self.tmp.is_empty(),
            "{what}: left in the store's tmp/: {:?}",
            self.tmp
        );
    }
}

/// Neither `secret` nor its base64 forms appear in what a command printed.
#[track_caller]
pub fn assert_no_secret(o: &Out, secret: &str, what: &str) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    for s in [secret, b64.trim_end_matches('=')] {
        assert!(
            !o.stdout.contains(s) && !o.stderr.contains(s),
            "{what} printed a secret:\n{}\n{}",
            o.stdout,
            o.stderr
        );
    }
}
