//! Restarts that keep a healthy engine.
//!
//! A supervisor told to stop (SIGTERM) stops its engine, unless the stop is
//! the first half of a restart of the supervisor itself. It is one when:
//! - `<state_dir>/handoff.json` names this supervisor's pid and hasn't
//!   expired: written by `dockhand service restart` (and by the nix
//!   modules' activation before they reload the agent or unit); its
//!   `keep_engine` is false for `service restart --engine`;
//! - under systemd, our own unit has a `restart` job (`systemctl --user
//!   restart`, home-manager's sd-switch): `systemctl --user list-jobs`
//!   shows `<id> <unit> restart running` while the old process is stopped,
//!   and `stop` for a stop or a logout.
//!
//! Before it keeps the engine, it checks that a successor can take it:
//! the config it was started from (the same `--config`, or the same
//! lookup) still loads, has the profile, and names the same engine kind
//! and state dir. If not (a typo in the config), it stops the engine like
//! on any stop: a successor that exits 2 would leave it to nobody.
//!
//! The supervisor then exits leaving the engine (in its own process group;
//! the unit has `KillMode=process`, the agent `AbandonProcessGroup`), and
//! the next supervisor adopts it. If none claims the state dir within
//! `crate::engine::watcher::BOUND` (the successor failed for another reason, or
//! the stop was a real one: `prepare-restart` then a logout), the
//! engine's watcher stops it. So that a config change that needs a new
//! engine still gets one, the engine's settings are recorded when it is
//! spawned (`engine-spec`); an adopted engine whose recorded settings differ
//! from the config's is restarted, and the supervisor says so.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::Profile;
use crate::error::Result;

/// How long a handoff request stays valid: it is written right before the
/// service manager is asked to stop the supervisor.
pub const VALID_FOR: Duration = Duration::from_secs(120);

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Request {
    /// The supervisor that is to hand over (its pid from the lock).
    pub pid: i32,
    /// Unix seconds after which the request is ignored.
    pub until: u64,
    /// false: `service restart --engine`, restart the engine too.
    pub keep_engine: bool,
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("handoff.json")
}

fn spec_path(state_dir: &Path) -> PathBuf {
    state_dir.join("engine-spec")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Ask the supervisor holding the profile's lock (if any) to leave the
/// engine running (or not) when it is stopped next. Returns its pid.
pub fn request(p: &Profile, keep_engine: bool) -> Result<Option<i32>> {
    let Some(pid) = crate::state::holder_pid(&p.lock_path()) else {
        return Ok(None);
    };
    let r = Request {
        pid,
        until: now() + VALID_FOR.as_secs(),
        keep_engine,
    };
    let bytes = serde_json::to_vec(&r).expect("a plain struct serializes");
    crate::state::write_atomic(&path(&p.state_dir), &bytes, 0o600)
        .map(|()| Some(pid))
        .or_else(|e| match e {
            // No state dir: no supervisor has run, nothing to hand over.
            crate::error::Error::Io { ref source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            e => Err(e),
        })
}

/// A small file of ours, read without following a link, at most `max` bytes.
fn read_bounded(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The request addressed to `pid`, consumed (removed) when read.
fn take_request(state_dir: &Path, pid: i32) -> Option<Request> {
    let p = path(state_dir);
    let text = read_bounded(&p, 4096).ok()?;
    let r: Request = serde_json::from_slice(&text).ok()?;
    if r.pid != pid || r.until < now() {
        return None;
    }
    let _ = std::fs::remove_file(&p);
    Some(r)
}

/// Decide, on a stop request, whether to leave the engine running for the
/// next supervisor. `Some(why)` keeps it.
pub async fn keep_engine(p: &Profile) -> Option<String> {
    let why = restart_asked(p).await?;
    if let Some(problem) = successor_problem(p) {
        tracing::warn!("{why}, but {problem}: stopping the engine instead of handing it over");
        return None;
    }
    Some(why)
}

async fn restart_asked(p: &Profile) -> Option<String> {
    let me = std::process::id() as i32;
    if let Some(r) = take_request(&p.state_dir, me) {
        return r
            .keep_engine
            .then(|| "`dockhand service restart`".to_string());
    }
    let unit = own_systemd_unit()?;
    restart_job(&unit)
        .await
        .then(|| format!("systemd is restarting {unit}"))
}

/// Where `dockhand run` read its config: `--config`/`$DOCKHAND_CONFIG`
/// (Some) or the default lookup (None), and the profile.
static SOURCE: std::sync::OnceLock<(Option<PathBuf>, String)> = std::sync::OnceLock::new();

/// Called by `dockhand run` before it starts supervising.
pub fn remember_source(source: &crate::config::Source, profile: &str) {
    let explicit = match source {
        crate::config::Source::Explicit(p) => Some(p.clone()),
        _ => None,
    };
    let _ = SOURCE.set((explicit, profile.to_string()));
}

/// Why a successor started like this supervisor could not adopt the
/// engine, if it could not.
fn successor_problem(p: &Profile) -> Option<String> {
    let (explicit, name) = SOURCE.get()?;
    let next = crate::config::Env::from_process()
        .and_then(|env| crate::config::Config::load(explicit.as_deref(), env))
        .and_then(|c| c.profile(name));
    successor_mismatch(p, next)
}

pub fn successor_mismatch(p: &Profile, next: Result<Profile>) -> Option<String> {
    match next {
        Err(e) => Some(format!("the next supervisor could not start: {e}")),
        Ok(n) if n.engine != p.engine => Some(format!(
            "the config now names another engine ({:?}, not {:?})",
            n.engine, p.engine
        )),
        Ok(n) if n.state_dir != p.state_dir => Some(format!(
            "the config now names another state dir ({}, not {})",
            n.state_dir.display(),
            p.state_dir.display()
        )),
        Ok(_) => None,
    }
}

/// The unit this process runs in, from `/proc/self/cgroup` (cgroup2 or
/// the `name=systemd` hierarchy): only when started by systemd.
fn own_systemd_unit() -> Option<String> {
    std::env::var_os("INVOCATION_ID")?;
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    unit_of_cgroup(&text)
}

pub fn unit_of_cgroup(text: &str) -> Option<String> {
    text.lines()
        .filter(|l| l.starts_with("0::") || l.contains(":name=systemd:"))
        .filter_map(|l| l.rsplit('/').next())
        .find(|u| u.ends_with(".service"))
        .map(str::to_string)
}

/// Whether `systemctl --user list-jobs` shows a `restart` job for `unit`.
async fn restart_job(unit: &str) -> bool {
    let Some(systemctl) = crate::sys::which("systemctl") else {
        return false;
    };
    let mut cmd = std::process::Command::new(systemctl);
    cmd.args(["--user", "list-jobs", "--no-legend", "--plain", unit]);
    match crate::sys::reaper::output(&mut cmd, Duration::from_secs(3)).await {
        Ok(out) => has_restart_job(&out.stdout, unit),
        Err(e) => {
            tracing::warn!("cannot ask systemd whether this is a restart: {e}");
            false
        }
    }
}

/// `JOB UNIT TYPE STATE` lines.
pub fn has_restart_job(list_jobs: &str, unit: &str) -> bool {
    list_jobs.lines().any(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        w.len() >= 3 && w[1] == unit && w[2] == "restart"
    })
}

/// The settings an engine was started with, as recorded in `engine-spec`.
pub fn spec(p: &Profile) -> String {
    let mut s = format!(
        "{:?}\n{}\n{:?}\n{:?}\n{:?}\n",
        p.engine,
        p.socket.display(),
        p.dockerd,
        p.command,
        p.colima
    );
    // Only for ssh profiles: the others' records stay as they were.
    if let Some(ssh) = &p.ssh {
        s.push_str(&format!("{ssh:?}\n"));
    }
    s
}

/// Record the settings of a freshly spawned engine.
pub fn record_spec(p: &Profile) -> Result<()> {
    let path = spec_path(&p.state_dir);
    let spec = spec(p);
    // The same engine again (a restart): nothing to write.
    if read_bounded(&path, 64 * 1024).is_ok_and(|old| old == spec.as_bytes()) {
        return Ok(());
    }
    crate::state::write_atomic(&path, spec.as_bytes(), 0o600)
}

/// Forget the recorded settings (the engine was stopped).
pub fn forget_spec(p: &Profile) {
    let _ = std::fs::remove_file(spec_path(&p.state_dir));
}

/// `Some(why)` when an adopted engine was started with other settings than
/// the config's now (so it must be restarted to apply them).
pub fn settings_changed(p: &Profile) -> Option<String> {
    let old = read_bounded(&spec_path(&p.state_dir), 64 * 1024).ok()?;
    (old != spec(p).as_bytes()).then(|| {
        "the engine's settings in the config changed since it was started: restarting it to apply them"
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_unit_in_either_hierarchy() {
        let v2 =
            "0::/user.slice/user-1000.slice/user@1000.service/app.slice/dockhand-default.service\n";
        assert_eq!(
            unit_of_cgroup(v2).as_deref(),
            Some("dockhand-default.service")
        );
        let hybrid = "9:name=systemd:/a.slice/user@1001.service/app.slice/dockhand-x.service\n4:memory:/\n0::/\n";
        assert_eq!(
            unit_of_cgroup(hybrid).as_deref(),
            Some("dockhand-x.service")
        );
        assert_eq!(unit_of_cgroup("0::/\n"), None);
    }

    #[test]
    fn restart_jobs_only() {
        let u = "dockhand-default.service";
        assert!(has_restart_job(
            "31 dockhand-default.service restart running\n",
            u
        ));
        assert!(!has_restart_job(
            "46 dockhand-default.service stop running\n",
            u
        ));
        assert!(!has_restart_job("31 other.service restart running\n", u));
        assert!(!has_restart_job("", u));
    }

    #[test]
    fn a_successor_must_load_the_same_engine_and_state_dir() {
        let t = tempfile::tempdir().unwrap();
        let env = crate::config::Env::bare(t.path().to_path_buf());
        let load = |text: &str| {
            let f = t.path().join("c.toml");
            std::fs::write(&f, text).unwrap();
            crate::config::Config::load(Some(&f), env.clone()).and_then(|c| c.profile("default"))
        };
        let p = load("[profiles.default]\nengine = \"dockerd\"\n").unwrap();
        assert_eq!(successor_mismatch(&p, Ok(p.clone())), None);
        let typo = load("[profiles.default]\nengine = \"dockerd\"\nbogus_key = 1\n");
        assert!(successor_mismatch(&p, typo).unwrap().contains("bogus_key"));
        let other = load(
            "[profiles.default]\nengine = \"command\"\nsocket = \"/tmp/x.sock\"\n[profiles.default.command]\nargv = [\"/bin/true\"]\n",
        );
        let why = successor_mismatch(&p, other).unwrap();
        assert!(why.contains("another engine"), "{why}");
        let dir = load(&format!(
            "[profiles.default]\nengine = \"dockerd\"\nstate_dir = {:?}\n",
            t.path().join("elsewhere").display().to_string()
        ));
        assert!(
            successor_mismatch(&p, dir)
                .unwrap()
                .contains("another state dir")
        );
    }

    #[test]
    fn a_request_is_for_one_pid_and_expires() {
        let t = tempfile::tempdir().unwrap();
        let write =
            |r: &Request| std::fs::write(path(t.path()), serde_json::to_vec(r).unwrap()).unwrap();
        let fresh = Request {
            pid: 7,
            until: now() + 60,
            keep_engine: true,
        };
        write(&fresh);
        assert_eq!(take_request(t.path(), 8), None);
        assert_eq!(take_request(t.path(), 7), Some(fresh));
        assert_eq!(take_request(t.path(), 7), None, "consumed");
        write(&Request {
            pid: 7,
            until: now() - 1,
            keep_engine: true,
        });
        assert_eq!(take_request(t.path(), 7), None, "expired");
    }
}
