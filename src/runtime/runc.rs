//! Calling runc: the state root, `create` / `start` / `delete` / `exec` command lines,
//! runc's own error out of its JSON log, and docker's exit codes for a process that could
//! not start (127 not found, 126 not invokable, 125 anything else).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The runc binary (`LAYERFS_RUNC` overrides, for tests and odd installs).
pub fn binary() -> PathBuf {
    std::env::var_os("LAYERFS_RUNC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("runc"))
}

/// runc's state root for containers of `store_root`: `$XDG_RUNTIME_DIR/layerfs-runc` when
/// that is a directory of ours; as root `/run/layerfs-runc`; else inside the store.
pub fn state_root(store_root: &Path, euid: u32) -> PathBuf {
    if euid == 0 {
        return PathBuf::from("/run/layerfs-runc");
    }
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from)
        && x.is_absolute()
        && std::fs::metadata(&x).is_ok_and(|m| {
            use std::os::unix::fs::MetadataExt;
            m.is_dir() && m.uid() == euid
        })
    {
        return x.join("layerfs-runc");
    }
    store_root.join("runc")
}

/// One container's runc: its state root and the JSON log runc writes its errors to.
#[derive(Debug, Clone)]
pub struct Runc {
    pub root: PathBuf,
    pub log: PathBuf,
}

impl Runc {
    /// `runc --root R --log L --log-format json` (the caller adds the verb).
    pub fn command(&self) -> Command {
        let mut c = Command::new(binary());
        c.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .arg("--log-format")
            .arg("json");
        c
    }

    /// `runc create` of `id` from `bundle`, the first process's pid into `pid_file`;
    /// with a terminal, its master goes to `console`.
    pub fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console: Option<&Path>,
    ) -> Command {
        let mut c = self.command();
        c.arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(pid_file);
        if let Some(s) = console {
            c.arg("--console-socket").arg(s);
        }
        c.arg(id);
        c
    }

    /// Run a verb that must succeed (`start ID`, `delete --force ID`): runc's error if not.
    pub fn run(&self, args: &[&str]) -> Result<(), String> {
        let _ = std::fs::remove_file(&self.log);
        let st = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run {}: {e}", binary().display()))?;
        if st.success() {
            Ok(())
        } else {
            Err(last_error(&self.log)
                .unwrap_or_else(|| format!("runc {} failed ({st})", args.join(" "))))
        }
    }

    /// `runc delete --force ID`, quietly: used in cleanup, where the container may be gone.
    pub fn delete(&self, id: &str) {
        if let Err(e) = self.run(&["delete", "--force", id]) {
            log::debug!("runc delete {id}: {e}");
        }
    }
}

/// The last error runc logged (its JSON log: `{"level":"error","msg":...}`).
pub fn last_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == "error" || v["level"] == "fatal")
        .filter_map(|v| v["msg"].as_str().map(str::to_string))
        .next_back()
}

/// docker's exit code for a start that failed with `msg`.
pub fn start_failure_code(msg: &str) -> i32 {
    // Only the process's own exec says "not found" or "permission denied" about it.
    if !msg.starts_with("exec") {
        return 125;
    }
    if msg.contains("executable file not found")
        || msg.contains("no such file or directory")
        || msg.contains("system cannot find the file specified")
    {
        127
    } else if msg.contains("permission denied") || msg.contains("is a directory") {
        126
    } else {
        125
    }
}

/// runc's long error without its wrapping (`runc create failed: unable to start container
/// process: exec: "x": ...` -> `exec: "x": ...`).
pub fn short_error(msg: &str) -> &str {
    msg.rsplit_once("unable to start container process: ")
        .map_or(msg, |(_, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_docker() {
        let nf = "runc create failed: unable to start container process: exec: \"nope\": executable file not found in $PATH";
        assert_eq!(start_failure_code(short_error(nf)), 127);
        assert_eq!(
            short_error(nf),
            "exec: \"nope\": executable file not found in $PATH"
        );
        assert_eq!(start_failure_code("exec: \"/etc\": is a directory"), 126);
        assert_eq!(
            start_failure_code("exec: \"/etc/passwd\": permission denied"),
            126
        );
        assert_eq!(start_failure_code("cgroup trouble"), 125);
        assert_eq!(start_failure_code("lstat /run/x: permission denied"), 125);
        let dir = std::env::temp_dir().join(format!("layerfs-runc-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("runc.log");
        std::fs::write(
            &log,
            "{\"level\":\"warning\",\"msg\":\"w\"}\n{\"level\":\"error\",\"msg\":\"boom\"}\n",
        )
        .unwrap();
        assert_eq!(last_error(&log).as_deref(), Some("boom"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
