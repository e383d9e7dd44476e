//! A container's run state on disk (`containers/<id>/state.json`): created, running (with
//! the pids of its first process and of its monitor) or exited (with the code), and the
//! files beside it. Written whole (temp + rename) by the one process that owns the run: the
//! monitor while it lives, its watchdog when the monitor is killed.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Exited,
}

/// What `state.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    /// The container's first process (host pid) and its start time (clock ticks after
    /// boot, from /proc: a pid reused by another process does not match).
    pub pid: i32,
    pub pid_start: u64,
    pub monitor_pid: i32,
    pub monitor_start: u64,
    /// The monitor's watchdog, which records the end if the monitor is killed.
    pub watchdog_pid: i32,
    pub watchdog_start: u64,
    /// The signal `stop` sends first (the image's StopSignal, else SIGTERM).
    pub stop_signal: i32,
    pub started_at: String,
    pub finished_at: String,
    pub exit_code: i32,
    /// Why the last start failed or the run ended abnormally (the monitor was killed).
    pub error: String,
    /// runc's state root for this container (`runc --root`).
    pub runc_root: PathBuf,
}

/// The files of a container's run, all in its container dir.
#[derive(Debug, Clone)]
pub struct Files {
    pub dir: PathBuf,
    pub id: String,
}

impl Files {
    pub fn new(dir: PathBuf, id: &str) -> Files {
        Files {
            dir,
            id: id.to_string(),
        }
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn run_config(&self) -> PathBuf {
        self.dir.join("run.json")
    }
    /// docker's json-file log: `<id>-json.log`.
    pub fn log(&self) -> PathBuf {
        self.dir.join(format!("{}-json.log", self.id))
    }
    pub fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }
    pub fn runc_log(&self) -> PathBuf {
        self.dir.join("runc.log")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("init.pid")
    }
}

/// The start time of process `pid` (field 22 of /proc/PID/stat), `None` when it is gone
/// (or a zombie).
pub fn start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    // A zombie has ended: only its parent has not reaped it yet.
    if matches!(f.next(), Some("Z" | "X")) {
        return None;
    }
    f.nth(18)?.parse().ok()
}

/// Whether `pid` is still the process that started at `start`.
pub fn alive(pid: i32, start: u64) -> bool {
    pid > 0 && start_time(pid) == Some(start)
}

impl State {
    /// The state on disk; `Created` when the container never ran.
    pub fn load(files: &Files) -> Result<State, String> {
        let p = files.state();
        match std::fs::read(&p) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|e| format!("reading {}: {e}", p.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(format!("reading {}: {e}", p.display())),
        }
    }

    /// Write the state whole.
    pub fn save(&self, files: &Files) -> Result<(), String> {
        let p = files.state();
        let tmp = files
            .dir
            .join(format!(".state.json.tmp{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &p))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                format!("writing {}: {e}", p.display())
            })
    }

    /// Whether its monitor still runs (the container is up, or starting, or stopping).
    pub fn monitor_alive(&self) -> bool {
        alive(self.monitor_pid, self.monitor_start)
    }

    /// The state as it is: one recorded as running whose monitor and watchdog are both
    /// gone (a reboot, a kill of both) has exited, with no code known (docker's 255).
    pub fn current(mut self) -> State {
        if self.status == Status::Running
            && !self.monitor_alive()
            && !alive(self.watchdog_pid, self.watchdog_start)
        {
            self.status = Status::Exited;
            self.exit_code = 255;
            if self.error.is_empty() {
                self.error = "the container's monitor is gone".into();
            }
            self.pid = 0;
            self.monitor_pid = 0;
        }
        self
    }

    pub fn running(&self) -> bool {
        self.status == Status::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_read_and_a_dead_monitor_means_exited() {
        let me = std::process::id() as i32;
        let t = start_time(me).expect("own start time");
        assert!(alive(me, t));
        assert!(!alive(me, t + 1));
        assert!(!alive(0, 0));
        let s = State {
            status: Status::Running,
            monitor_pid: me,
            monitor_start: t + 1,
            ..Default::default()
        };
        let c = s.current();
        assert_eq!((c.status, c.exit_code), (Status::Exited, 255));
        let dir = std::env::temp_dir().join(format!("layerfs-state-test-{me}"));
        std::fs::create_dir_all(&dir).unwrap();
        let f = Files::new(dir.clone(), "abc");
        assert_eq!(State::load(&f).unwrap(), State::default());
        c.save(&f).unwrap();
        assert_eq!(State::load(&f).unwrap(), c);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
