//! What a container runs and how: the `run` flags kept beside the container record
//! (`containers/<id>/run.json`, docker's hostconfig), and their combination with the
//! image config by docker's rules (Entrypoint + Cmd, Env, WorkingDir, User, StopSignal).
//! Pure functions.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;

/// The run flags of one container, as given at `run` / `create` time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    /// `--entrypoint`: replaces the image's (and drops its Cmd); `""` clears it.
    pub entrypoint: Option<String>,
    /// The command and arguments after the image: they replace the image's Cmd.
    pub cmd: Vec<String>,
    /// `-e` / `--env-file`, in order (`K=V`; a bare `K` was resolved at parse time).
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub volumes: Vec<Volume>,
    pub network: Network,
    pub hostname: Option<String>,
    pub read_only: bool,
    pub tty: bool,
    pub interactive: bool,
    /// `--rm`: the container is removed when it exits.
    pub auto_remove: bool,
}

/// `-v HOST:CTR[:ro]`: a bind mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub host: PathBuf,
    pub container: String,
    pub read_only: bool,
}

/// `--network`: the host's network, or a network namespace with only loopback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Network {
    #[default]
    Host,
    None,
}

/// What the container's first process is, resolved against the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    /// `USER[:GROUP]` as given (resolved against the image's passwd later); "" = root.
    pub user: String,
    pub stop_signal: i32,
}

/// docker's PATH when neither the image nor the flags set one.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    let a = v?.as_array()?;
    Some(
        a.iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
    )
}

fn text<'a>(cfg: &'a Value, key: &str) -> Option<&'a str> {
    cfg.get(key)?.as_str().filter(|s| !s.is_empty())
}

impl Volume {
    /// Parse `HOST:CTR[:ro|rw]` (HOST must be absolute: named volumes do not exist here).
    pub fn parse(s: &str) -> Result<Volume, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let (host, ctr, mode) = match parts.as_slice() {
            [h, c] => (*h, *c, ""),
            [h, c, m] => (*h, *c, *m),
            _ => return Err(format!("invalid volume {s:?}: use HOST:CONTAINER[:ro]")),
        };
        if !host.starts_with('/') {
            return Err(format!(
                "invalid volume {s:?}: the host path must be absolute (named volumes are not supported)"
            ));
        }
        if !ctr.starts_with('/') {
            return Err(format!(
                "invalid volume {s:?}: the container path {ctr:?} must be absolute"
            ));
        }
        let read_only = match mode {
            "" | "rw" => false,
            "ro" => true,
            m => {
                return Err(format!(
                    "invalid volume {s:?}: unknown mode {m:?} (ro or rw)"
                ));
            }
        };
        Ok(Volume {
            host: PathBuf::from(host),
            container: ctr.to_string(),
            read_only,
        })
    }
}

/// The `config` object of an image config (empty when absent).
pub fn image_config(image: &Value) -> Value {
    image
        .get("config")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| Value::Object(Default::default()))
}

/// The first process by docker's rules: `--entrypoint` replaces the image's Entrypoint
/// and drops its Cmd; arguments after the image replace Cmd; `-e` overrides the image's
/// Env by name; `-w` and `-u` replace WorkingDir and User.
pub fn resolve(image: &Value, rc: &RunConfig) -> Result<Process, String> {
    let cfg = image_config(image);
    let entrypoint = match &rc.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => strings(cfg.get("Entrypoint")).unwrap_or_default(),
    };
    let cmd = if !rc.cmd.is_empty() {
        rc.cmd.clone()
    } else if rc.entrypoint.is_some() {
        Vec::new()
    } else {
        strings(cfg.get("Cmd")).unwrap_or_default()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err("no command specified: the image has no Entrypoint or Cmd".into());
    }
    let mut env = strings(cfg.get("Env")).unwrap_or_default();
    for e in &rc.env {
        set_env(&mut env, e);
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    let cwd = rc
        .workdir
        .clone()
        .or_else(|| text(&cfg, "WorkingDir").map(str::to_string))
        .unwrap_or_else(|| "/".to_string());
    if !cwd.starts_with('/') {
        return Err(format!(
            "the working directory {cwd:?} is invalid: it needs to be an absolute path"
        ));
    }
    let user = rc
        .user
        .clone()
        .or_else(|| text(&cfg, "User").map(str::to_string))
        .unwrap_or_default();
    let stop_signal = match text(&cfg, "StopSignal") {
        Some(s) => parse_signal(s)
            .ok_or_else(|| format!("the image's StopSignal {s:?} is not a signal"))?,
        None => libc::SIGTERM,
    };
    Ok(Process {
        args,
        env,
        cwd,
        user,
        stop_signal,
    })
}

/// Set `K=V` in `env`, replacing an earlier value of `K`.
pub fn set_env(env: &mut Vec<String>, kv: &str) {
    let key = kv.split('=').next().unwrap_or(kv);
    let prefix = format!("{key}=");
    env.retain(|e| !e.starts_with(&prefix) && e != key);
    env.push(kv.to_string());
}

const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// A signal by number, name or SIG-name (`15`, `TERM`, `SIGTERM`, any case).
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    SIGNALS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// `--env-file`: `K=V` lines; blank lines and `#` comments skipped; a bare `K` takes the
/// value from `lookup` (the caller's environment) and is dropped when unset there.
pub fn parse_env_file(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_start())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| env_arg(l, lookup))
        .collect()
}

/// One `-e` value: `K=V` as is; a bare `K` from `lookup`, or nothing when unset.
pub fn env_arg(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if s.contains('=') {
        Some(s.to_string())
    } else {
        lookup(s).map(|v| format!("{s}={v}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn img(c: Value) -> Value {
        json!({ "config": c })
    }

    fn run(cmd: &[&str]) -> RunConfig {
        RunConfig {
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn entrypoint_and_cmd_combine_as_docker_does() {
        let i = img(json!({"Entrypoint": ["/ep", "-x"], "Cmd": ["a", "b"]}));
        assert_eq!(
            resolve(&i, &run(&[])).unwrap().args,
            ["/ep", "-x", "a", "b"]
        );
        assert_eq!(resolve(&i, &run(&["c"])).unwrap().args, ["/ep", "-x", "c"]);
        let mut rc = run(&[]);
        rc.entrypoint = Some("/other".into());
        assert_eq!(resolve(&i, &rc).unwrap().args, ["/other"]);
        rc.cmd = vec!["z".into()];
        assert_eq!(resolve(&i, &rc).unwrap().args, ["/other", "z"]);
        rc.entrypoint = Some(String::new());
        assert_eq!(resolve(&i, &rc).unwrap().args, ["z"]);
        rc.cmd.clear();
        assert!(resolve(&i, &rc).is_err());
        assert!(resolve(&img(json!({})), &run(&[])).is_err());
    }

    #[test]
    fn env_workdir_user_and_stop_signal() {
        let i = img(
            json!({"Env": ["FOO=image", "PATH=/bin"], "WorkingDir": "/w", "User": "app", "StopSignal": "SIGUSR1"}),
        );
        let mut rc = run(&["sh"]);
        rc.env = vec!["FOO=flag".into(), "NEW=1".into()];
        let p = resolve(&i, &rc).unwrap();
        assert_eq!(p.env, ["PATH=/bin", "FOO=flag", "NEW=1"]);
        assert_eq!((p.cwd.as_str(), p.user.as_str()), ("/w", "app"));
        assert_eq!(p.stop_signal, libc::SIGUSR1);
        rc.workdir = Some("/tmp".into());
        rc.user = Some("0".into());
        let p = resolve(&i, &rc).unwrap();
        assert_eq!((p.cwd.as_str(), p.user.as_str()), ("/tmp", "0"));
        let p = resolve(&img(json!({})), &run(&["sh"])).unwrap();
        assert_eq!((p.env[0].as_str(), p.cwd.as_str()), (DEFAULT_PATH, "/"));
        assert_eq!(p.stop_signal, libc::SIGTERM);
        rc.workdir = Some("rel".into());
        assert!(resolve(&i, &rc).is_err());
    }

    #[test]
    fn signals_volumes_and_env_files() {
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("usr2"), Some(libc::SIGUSR2));
        assert_eq!(parse_signal("SIGKILL"), Some(libc::SIGKILL));
        assert_eq!(parse_signal("NOPE"), None);
        assert_eq!(parse_signal("0"), None);
        let v = Volume::parse("/h:/c:ro").unwrap();
        assert!(v.read_only && v.container == "/c");
        assert!(Volume::parse("rel:/c").is_err());
        assert!(Volume::parse("/h:c").is_err());
        assert!(Volume::parse("/h:/c:zz").is_err());
        let look = |k: &str| (k == "HOME").then(|| "/root".to_string());
        let e = parse_env_file("# c\n\nA=1\nHOME\nUNSET\n  B=x y\n", &look);
        assert_eq!(e, ["A=1", "HOME=/root", "B=x y"]);
    }
}
