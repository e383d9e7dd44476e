//! The test image, built in code: one layer with the host's static busybox as
//! `/bin/busybox` plus a symlink per applet the tests use, `/etc/passwd` and `/etc/group`
//! (root, `app` 1000:1000, nobody), `/tmp` 1777, `/home/app` owned by 1000:1000 and empty
//! `proc`, `sys`, `dev`; several image configs over that one layer, in one docker-archive:
//!
//! | tag        | config                                                            |
//! | ---        | ---                                                               |
//! | `ct`       | Env PATH + `FOO=image`, Cmd `echo default-cmd`                    |
//! | `ct:ep`    | Entrypoint `echo ep`, Cmd `c1 c2`                                 |
//! | `ct:wd`    | WorkingDir `/home/app`, Cmd `pwd`                                 |
//! | `ct:user`  | User `app`, Cmd `id -u`                                           |
//! | `ct:stop`  | StopSignal `SIGUSR1`, Cmd: traps USR1 (exit 10) and TERM (exit 15) |

use sha2::Digest;

pub const BUSYBOX: &str = "/bin/busybox";
pub const PATH_ENV: &str = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

pub const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "id", "pwd", "env", "ls", "touch", "true", "false", "printf",
    "tty", "kill", "mkdir", "rm", "test", "[", "hostname", "wc", "head", "grep", "stat", "date",
    "mount", "seq", "dd", "tr",
];

/// The script of `ct:stop`: ready, then wait for a signal.
pub const STOP_SCRIPT: &str = "trap 'echo got-usr1; exit 10' USR1; trap 'echo got-term; exit 15' TERM; \
                               echo ready; while :; do sleep 0.1; done";

fn sha(b: &[u8]) -> String {
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// A 64-bit little-endian ELF executable with no program interpreter (PT_INTERP).
fn is_static_elf(b: &[u8]) -> bool {
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().expect("8 bytes")) as usize;
    let (size, num) = (u16_at(0x36), u16_at(0x38));
    (0..num).all(|i| {
        let o = phoff + i * size;
        o + 4 <= b.len() && u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes")) != 3
    })
}

/// The host's busybox, when it is a static one.
pub fn busybox() -> Result<Vec<u8>, String> {
    let b = std::fs::read(BUSYBOX)
        .map_err(|e| format!("{BUSYBOX}: {e} (Debian: apt-get install busybox-static)"))?;
    if !is_static_elf(&b) {
        return Err(format!(
            "{BUSYBOX} is not a static executable (Debian: apt-get install busybox-static)"
        ));
    }
    Ok(b)
}

struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn hdr(kind: tar::EntryType, mode: u32, uid: u64, gid: u64, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(1_700_000_000);
        h.set_size(size);
        h
    }
    fn dir(mut self, p: &str, mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = Tar::hdr(tar::EntryType::Directory, mode, uid, gid, 0);
        self.0
            .append_data(&mut h, format!("{p}/"), std::io::empty())
            .expect("dir");
        self
    }
    fn file(mut self, p: &str, data: &[u8], mode: u32) -> Self {
        let mut h = Tar::hdr(tar::EntryType::Regular, mode, 0, 0, data.len() as u64);
        self.0.append_data(&mut h, p, data).expect("file");
        self
    }
    fn symlink(mut self, p: &str, target: &str) -> Self {
        let mut h = Tar::hdr(tar::EntryType::Symlink, 0o777, 0, 0, 0);
        self.0.append_link(&mut h, p, target).expect("symlink");
        self
    }
    fn done(self) -> Vec<u8> {
        self.0.into_inner().expect("tar")
    }
}

/// The one layer of every test image.
pub fn rootfs_layer(busybox: &[u8]) -> Vec<u8> {
    let mut t = Tar(tar::Builder::new(Vec::new()))
        .dir("bin", 0o755, 0, 0)
        .dir("etc", 0o755, 0, 0)
        .dir("tmp", 0o1777, 0, 0)
        .dir("root", 0o700, 0, 0)
        .dir("home", 0o755, 0, 0)
        .dir("home/app", 0o755, 1000, 1000)
        .dir("proc", 0o555, 0, 0)
        .dir("sys", 0o555, 0, 0)
        .dir("dev", 0o755, 0, 0)
        .dir("usr", 0o755, 0, 0)
        .dir("usr/bin", 0o755, 0, 0)
        .file("bin/busybox", busybox, 0o755)
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n\
              nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
            0o644,
        )
        .file(
            "etc/group",
            b"root:x:0:\napp:x:1000:\nnogroup:x:65534:\n",
            0o644,
        )
        .file("etc/motd", b"image motd\n", 0o644);
    for a in APPLETS {
        t = t.symlink(&format!("bin/{a}"), "busybox");
    }
    t.done()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn config(diff_id: &str, extra: serde_json::Value) -> Vec<u8> {
    let mut cfg = serde_json::json!({"Env": [PATH_ENV, "FOO=image"]});
    for (k, v) in extra.as_object().expect("object") {
        cfg[k] = v.clone();
    }
    serde_json::to_vec(&serde_json::json!({
        "architecture": arch(),
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "2024-01-02T03:04:05Z", "created_by": "layerfs tests: busybox"}],
    }))
    .expect("json")
}

/// The configs of the test images (tag, config fields over the defaults).
fn variants() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "ct:latest",
            serde_json::json!({"Cmd": ["echo", "default-cmd"]}),
        ),
        (
            "ct:ep",
            serde_json::json!({"Entrypoint": ["echo", "ep"], "Cmd": ["c1", "c2"]}),
        ),
        (
            "ct:wd",
            serde_json::json!({"WorkingDir": "/home/app", "Cmd": ["pwd"]}),
        ),
        (
            "ct:user",
            serde_json::json!({"User": "app", "Cmd": ["id", "-u"]}),
        ),
        (
            "ct:stop",
            serde_json::json!({"StopSignal": "SIGUSR1", "Cmd": ["sh", "-c", STOP_SCRIPT]}),
        ),
    ]
}

fn append(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, name, data).expect("append");
}

/// The docker-archive holding every test image (`docker save` layout: `<hex>/layer.tar`,
/// `<config hex>.json`, manifest.json).
pub fn archive() -> Result<Vec<u8>, String> {
    let layer = rootfs_layer(&busybox()?);
    let lh = sha(&layer);
    let diff = format!("sha256:{lh}");
    let mut b = tar::Builder::new(Vec::new());
    append(&mut b, &format!("{lh}/layer.tar"), &layer);
    append(&mut b, &format!("{lh}/VERSION"), b"1.0");
    let mut manifest = Vec::new();
    for (tag, extra) in variants() {
        let cfg = config(&diff, extra);
        let name = format!("{}.json", sha(&cfg));
        append(&mut b, &name, &cfg);
        manifest.push(serde_json::json!({
            "Config": name, "RepoTags": [tag], "Layers": [format!("{lh}/layer.tar")]
        }));
    }
    append(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("json"),
    );
    Ok(b.into_inner().expect("tar"))
}
