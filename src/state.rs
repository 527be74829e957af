//! The profile's state directory: its lock, `state.json`, and the rules
//! that keep it safe (0700, ours, written atomically).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::config::Profile;
use crate::error::{Error, IoContext, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Starting,
    Ready,
    Unhealthy,
    Restarting,
    Stopping,
    Stopped,
    Failed,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        f.write_str(&s)
    }
}

/// The contents of `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub profile: String,
    pub phase: Phase,
    pub engine_pid: Option<i32>,
    pub socket: PathBuf,
    pub restarts: u32,
    pub last_error: Option<String>,
    /// When `phase` was entered, RFC 3339.
    pub since: String,
    pub supervisor_pid: u32,
    /// The engine was running before this supervisor started (adopted).
    #[serde(default)]
    pub adopted: bool,
    /// Why the engine is held stopped while the supervisor runs (on-demand
    /// profiles); absent when it is not held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Held>,
    /// What keeps a running engine awake (profiles with `idle_stop`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awake: Option<Awake>,
}

/// Why a supervised engine is stopped and stays stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Held {
    /// Stopped by the user (`dockhand down`); the next request or `up` starts it.
    Down,
    /// Stopped by `idle_stop`; an active request or the docker CLI starts it.
    Idle,
    /// `on_demand`: not started yet; the first request that needs it starts it.
    OnDemand,
}

impl Held {
    /// `text` is the `STATUS=` of a supervisor holding its engine stopped
    /// (what `supervisor::set` sends: "stopped: engine <held>"): it is up
    /// and serving `listen`, as good as ready for a service manager.
    pub fn in_status(text: &str) -> bool {
        [Held::Down, Held::Idle, Held::OnDemand]
            .iter()
            .any(|h| text == format!("stopped: engine {h}"))
    }
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Held::Down => "stopped by `dockhand down`",
            Held::Idle => "stopped by dockhand's idle policy (idle_stop)",
            Held::OnDemand => "not started yet (on_demand)",
        })
    }
}

/// What keeps a running engine from being stopped as idle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Awake {
    /// Containers running, as the engine last said (None: not asked yet).
    pub running_containers: Option<u32>,
    /// Active requests in flight (responses not finished, upgraded
    /// connections open).
    pub active_requests: u32,
    /// When the engine stops as idle if nothing changes, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_stop_at: Option<String>,
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Create `dir` (and missing parents) 0700, or check an existing one: it
/// must be ours and writable by nobody else (a world-writable directory
/// such as /tmp lets anyone plant files and links there). An existing
/// directory's mode is never changed: it may be one the user shares.
pub fn private_dir(dir: &Path, what: &str) -> Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .ctx(|| format!("cannot create {what} {}", dir.display()))?;
    }
    let md = std::fs::metadata(dir).ctx(|| format!("cannot inspect {}", dir.display()))?;
    let uid = rustix::process::geteuid().as_raw();
    if md.uid() != uid {
        return Err(Error::UnsafePath(format!(
            "{what} {} belongs to uid {}, not to you (uid {uid}): choose a directory of your own (or remove it so dockhand creates it)",
            dir.display(),
            md.uid()
        )));
    }
    if md.mode() & 0o022 != 0 {
        return Err(Error::UnsafePath(format!(
            "{what} {} is writable by others (mode {:o}): others could plant files or links there; choose a private directory or `chmod go-w` it",
            dir.display(),
            md.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Write `bytes` to `path` atomically: a new temporary file beside it
/// (never opened through a link), `mode` set regardless of the umask,
/// synced, renamed over `path`, and the directory synced.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let res = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    res.ctx(|| format!("cannot write {}", path.display()))
}

/// The exclusive per-profile lock, held for the supervisor's lifetime.
/// A POSIX record lock: the kernel drops it when the process dies, and
/// others can ask who holds it without taking it.
pub struct Lock {
    _file: File,
}

/// A write lock on the whole file (F_WRLCK's type differs by platform).
fn lock_struct() -> libc::flock {
    // SAFETY: flock is a plain C struct; zero is a valid start.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl
}

impl Lock {
    pub fn acquire(profile: &Profile) -> Result<Lock> {
        let path = profile.lock_path();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .ctx(|| format!("cannot open lock {}", path.display()))?;
        let fl = lock_struct();
        // SAFETY: fcntl(F_SETLK) with a valid flock struct on our fd.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) } != 0 {
            let holder = holder_pid(&path)
                .map(|p| p.to_string())
                .unwrap_or_else(|| "unknown".into());
            return Err(Error::AlreadyRunning {
                profile: profile.name.clone(),
                lock: path,
                pid: holder,
            });
        }
        file.set_len(0)
            .ctx(|| format!("cannot write {}", path.display()))?;
        let _ = writeln!(file, "{}", std::process::id());
        Ok(Lock { _file: file })
    }
}

/// The pid of the process holding the profile's lock, if any. Never call
/// this in the process that holds the lock: closing any descriptor of the
/// file drops a POSIX lock.
pub fn holder_pid(lock: &Path) -> Option<i32> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(lock)
        .ok()?;
    let mut fl = lock_struct();
    // SAFETY: F_GETLK fills `fl` with a conflicting lock, if any.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut fl) } != 0 {
        return None;
    }
    if i64::from(fl.l_type) == i64::from(libc::F_UNLCK) {
        return None;
    }
    Some(fl.l_pid)
}

/// `state.json`: None when there is none, Err when it can't be read.
pub fn read(profile: &Profile) -> Result<Option<State>, String> {
    let path = profile.state_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub fn write(profile: &Profile, state: &State) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(state).expect("state serializes");
    json.push(b'\n');
    write_atomic(&profile.state_path(), &json, 0o600)
}
