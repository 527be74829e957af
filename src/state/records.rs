//! The records kept in the state directory: `state.json` (the phase the
//! supervisor is in, what holds the engine stopped or keeps it awake) and
//! the bounded quotes in it.

use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::config::Profile;
use crate::error::Result;

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
    /// Only in `status`: state.json could not be read.
    Unknown,
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
    /// dockhand's own trouble (its probe out of file descriptors): never
    /// counted against the engine, shown by `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockhand_trouble: Option<String>,
    /// `unhealthy` because what the engine serves is down while its
    /// process runs (ssh connected, the remote engine down): no reconnect
    /// is under way, so nothing is answered for the engine meanwhile.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub serving_down: bool,
}

impl State {
    /// A profile's state entered now by this process: no engine, no
    /// restarts, no error, nothing held or awake.
    pub fn new(profile: &str, socket: &std::path::Path, phase: Phase) -> State {
        State {
            profile: profile.to_string(),
            phase,
            engine_pid: None,
            socket: socket.to_path_buf(),
            restarts: 0,
            last_error: None,
            since: now_rfc3339(),
            supervisor_pid: std::process::id(),
            adopted: false,
            held: None,
            awake: None,
            dockhand_trouble: None,
            serving_down: false,
        }
    }
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
    /// A failure retrying can't fix (the ssh engine's host key or login):
    /// phase `failed`, `last_error` says what to do; `up` or `restart`
    /// tries again, client requests don't.
    Failed,
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
            Held::Failed => "held after a failure retrying can't fix",
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
    /// Why this engine is never stopped as idle (an adopted engine
    /// dockhand can't stop), when it isn't.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub never_idle_stopped: Option<String>,
}

/// The most of a message (an engine's last words) that is quoted in
/// `last_error`, the log and `status`.
pub const QUOTE_MAX_BYTES: usize = 4096;
pub const QUOTE_MAX_LINES: usize = 8;

/// `s` cut to a few lines and a few KiB: its start and its end (where an
/// engine's last words are), with what was cut said in between.
pub fn bounded(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let mut out = if lines.len() > QUOTE_MAX_LINES {
        let (head, tail) = (2, QUOTE_MAX_LINES - 3);
        format!(
            "{}\n[... {} lines cut ...]\n{}",
            lines[..head].join("\n"),
            lines.len() - head - tail,
            lines[lines.len() - tail..].join("\n")
        )
    } else {
        s.to_string()
    };
    if out.len() > QUOTE_MAX_BYTES {
        let head = floor_char(&out, QUOTE_MAX_BYTES / 4);
        let tail = ceil_char(&out, out.len() - QUOTE_MAX_BYTES / 2);
        out = format!(
            "{}[... {} bytes cut ...]{}",
            &out[..head],
            tail - head,
            &out[tail..]
        );
    }
    out
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// The largest `state.json` read (it holds a few KiB at most).
pub const STATE_MAX: u64 = 1 << 20;

/// `state.json`: None when there is none, Err when it can't be read.
pub fn read(profile: &Profile) -> Result<Option<State>, String> {
    let path = profile.state_path();
    let what = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let bytes = match crate::sys::file::read_regular(&path, STATE_MAX, false) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(what(&e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| what(&e))
}

pub fn write(profile: &Profile, state: &State) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(state).expect("state serializes");
    json.push(b'\n');
    super::atomic::write_runtime(&profile.state_path(), &json, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_bounded_for_every_size_and_shape() {
        for len in [0usize, 1, 100, 4095, 4096, 4097, 10_000, 1 << 20, 20 << 20] {
            for unit in ["x", "é", "🦀", "line\n", "\u{fffd}", "ab\ncd\r\n"] {
                let s = unit.repeat(len / unit.len() + 1);
                let b = bounded(&s);
                assert!(
                    b.len() <= QUOTE_MAX_BYTES + 64,
                    "{len} {unit:?}: {}",
                    b.len()
                );
                assert!(b.lines().count() <= QUOTE_MAX_LINES + 1, "{len} {unit:?}");
                if s.len() <= QUOTE_MAX_BYTES && s.lines().count() <= QUOTE_MAX_LINES {
                    assert_eq!(b, s);
                } else {
                    assert!(b.contains("cut"), "{b}");
                }
            }
        }
        let last = format!("{}THE END", "y".repeat(20 << 20));
        assert!(bounded(&last).ends_with("THE END"));
    }
}
