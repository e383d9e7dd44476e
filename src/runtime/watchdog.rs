//! The monitor's watchdog (`layerfs __watchdog ID`): started by the monitor inside the
//! container's namespaces, it waits on a pipe from it. `done` means the monitor finished
//! the run itself. End of file without it means the monitor was killed: the watchdog then
//! kills the container, deletes runc's state, unmounts the rootfs and records the exit, so
//! no container runs on and no mount stays behind unsupervised.

use super::prepare;
use super::runc::Runc;
use super::state::{self, State, Status};
use crate::store::Store;
use crate::store::human::now_rfc3339;
use crate::sys;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

/// The exit code recorded for a container whose monitor was killed (its SIGKILL).
const KILLED: i32 = 137;

pub fn main(root: PathBuf, id: &str) -> i32 {
    let mut said = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut said);
    if said.starts_with(b"done") {
        return 0;
    }
    match clean_up(root, id) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("container {id}: {e}");
            1
        }
    }
}

fn clean_up(root: PathBuf, id: &str) -> Result<(), String> {
    let store = Store::open(Some(root)).map_err(|e| e.to_string())?;
    let c = store.container(id).map_err(|e| e.to_string())?;
    let files = prepare::files_of(&store, &c);
    let mut st = State::load(&files)?;
    // The pipe closed without "done": the monitor is dead (perhaps not yet reaped).
    if st.status != Status::Running {
        return Ok(()); // the start failed before the container ran
    }
    if state::alive(st.pid, st.pid_start) {
        let pidfd = sys::pidfd_open(st.pid);
        let _ = sys::kill(st.pid, libc::SIGKILL);
        if let Ok(fd) = pidfd {
            let _ = sys::wait_readable(fd.as_fd(), Some(Duration::from_secs(10)));
        }
    }
    Runc {
        root: st.runc_root.clone(),
        log: files.runc_log(),
    }
    .delete(&c.id);
    let merged = store.layout.cache_dir(&c.mount_id).join("merged");
    if let Err(e) = crate::mount::unmount(&merged) {
        log::debug!("{e}");
    }
    st.status = Status::Exited;
    st.exit_code = KILLED;
    st.error = "the container's monitor was killed".into();
    st.finished_at = now_rfc3339();
    st.pid = 0;
    st.monitor_pid = 0;
    st.watchdog_pid = 0;
    st.save(&files)?;
    let rc = prepare::load_run_config(&files)?;
    if rc.auto_remove {
        store
            .remove_container(&c.id, true)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
