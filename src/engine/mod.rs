//! Engines: what the supervisor starts, adopts, watches and stops. One
//! file per kind; `Engine` dispatches to them. Every kind answers the
//! Docker API on `Profile::socket`.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::config::{EngineKind, Profile};
use crate::error::Result;
use crate::probe::{self, Ping};
use crate::sys::{self, reaper::Child};

pub mod colima;
pub mod process;

/// A running (or starting) engine the supervisor holds.
#[derive(Debug, Default)]
pub struct Running {
    /// The child we spawned (dockerd, the command, or `colima start`).
    pub child: Option<Child>,
    /// The process whose exit means the engine is gone, when it is not
    /// our child (an adopted dockerd, Lima's host agent): verified once,
    /// then held by a handle that can't name another process.
    pub watched: Option<sys::Proc>,
    /// For messages and state.json.
    pub pid: Option<i32>,
    pub adopted: bool,
    /// `watched` is an engine dockhand started (in a process group of its
    /// own), found again through our record: its group is ours to kill.
    pub own_group: bool,
}

impl Running {
    /// Resolves when the engine process ends; never, if we know none.
    pub async fn exited(&mut self) -> String {
        if let Some(child) = self.child.as_mut() {
            return describe(child.wait().await);
        }
        if let Some(p) = &self.watched {
            p.exited().await;
            return format!("process {} exited", p.pid());
        }
        std::future::pending().await
    }
}

pub fn describe(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (_, Some(sig)) => format!("killed by signal {sig}"),
        _ => s.to_string(),
    }
}

/// Our record of the engine process we started: pid plus start time,
/// which together name one process (a recycled pid has another start).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub pid: i32,
    pub start: u64,
}

impl Record {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("engine.json")
    }
    pub fn of(pid: i32) -> Option<Record> {
        sys::proc_info(pid).map(|p| Record {
            pid,
            start: p.start,
        })
    }
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).expect("record serializes");
        crate::state::write_atomic(&Record::path(state_dir), &json, 0o600)
    }
    pub fn load(state_dir: &Path) -> Option<Record> {
        let text = std::fs::read_to_string(Record::path(state_dir)).ok()?;
        serde_json::from_str(&text).ok()
    }
    pub fn remove(state_dir: &Path) {
        let _ = std::fs::remove_file(Record::path(state_dir));
    }
}

pub enum Engine {
    Process(process::ProcessEngine),
    Colima(colima::ColimaEngine),
}

impl Engine {
    pub fn new(p: &Profile) -> Engine {
        match p.engine {
            EngineKind::Colima => Engine::Colima(colima::ColimaEngine::new(p)),
            EngineKind::Dockerd | EngineKind::Command => {
                Engine::Process(process::ProcessEngine::new(p))
            }
        }
    }

    /// Binaries present, privileges sufficient: checked once, before the
    /// supervisor starts (exit code 4 when not).
    pub fn check(&self) -> Result<()> {
        match self {
            Engine::Process(e) => e.check(),
            Engine::Colima(e) => e.check(),
        }
    }

    /// An engine that already answers on the socket, taken over as is.
    pub async fn adopt(&mut self) -> Option<Running> {
        match self {
            Engine::Process(e) => e.adopt().await,
            Engine::Colima(e) => e.adopt().await,
        }
    }

    /// Remove what an unclean stop left behind that is ours; never touch
    /// what isn't. Returns notes for the log.
    pub async fn clean_stale(&mut self) -> Result<Vec<String>> {
        match self {
            Engine::Process(e) => e.clean_stale().await,
            Engine::Colima(e) => e.clean_stale().await,
        }
    }

    /// Launch the engine; `wait_ready` then waits for it to answer.
    pub async fn spawn(&mut self) -> Result<Running> {
        match self {
            Engine::Process(e) => e.spawn(),
            Engine::Colima(e) => e.spawn(),
        }
    }

    /// Wait until the engine answers `/_ping`, or fails.
    pub async fn wait_ready(&mut self, r: &mut Running, deadline: Instant) -> Result<(), String> {
        match self {
            Engine::Process(e) => e.wait_ready(r, deadline).await,
            Engine::Colima(e) => e.wait_ready(r, deadline).await,
        }
    }

    /// Stop gracefully within `timeout`, then kill what remains; returns
    /// once nothing of it is left; false if it may still run (an adopted
    /// engine dockhand can't vouch for is left alone; a failed colima stop).
    pub async fn stop(&mut self, r: Running, timeout: Duration) -> bool {
        match self {
            Engine::Process(e) => e.stop(r, timeout).await,
            Engine::Colima(e) => e.stop(r, timeout).await,
        }
    }

    /// Remove runtime files after a stop.
    pub async fn remove_runtime_files(&mut self) {
        match self {
            Engine::Process(e) => e.remove_runtime_files().await,
            Engine::Colima(_) => {}
        }
    }
}

const ENGINE_LOG_MAX: u64 = 10 * 1024 * 1024;

/// Send the engine's stdout and stderr to `<state_dir>/engine.log`
/// (rotated at each start once over 10 MiB). A file, not a pipe of ours:
/// if dockhand dies, a broken pipe would take the engine down (SIGPIPE).
pub fn log_output_to(cmd: &mut std::process::Command, state_dir: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = state_dir.join("engine.log");
    if std::fs::metadata(&path).is_ok_and(|m| m.len() > ENGINE_LOG_MAX) {
        crate::logging::rotate_files(&path);
    }
    let open = || {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
    };
    let (out, err) = open()
        .and_then(|f| Ok((f.try_clone()?, f)))
        .map_err(|e| crate::error::Error::io(format!("cannot open {}", path.display()), e))?;
    cmd.stdout(out).stderr(err);
    Ok(())
}

/// Poll `/_ping` until it answers 200, the child exits, or the deadline.
pub async fn ping_until(
    socket: &Path,
    r: &mut Running,
    deadline: Instant,
    what: &str,
) -> Result<(), String> {
    let mut step = Duration::from_millis(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let last = probe::ping(socket, Duration::from_millis(500)).await;
            return Err(format!(
                "{what} did not answer on {} in time ({last})",
                socket.display()
            ));
        }
        if probe::ping(socket, left.min(Duration::from_secs(2))).await == Ping::Ok {
            return Ok(());
        }
        tokio::select! {
            why = r.exited() => return Err(format!("{what} {why} before it answered on {}", socket.display())),
            _ = tokio::time::sleep(step) => {}
        }
        step = (step * 2).min(Duration::from_millis(200));
    }
}

/// Stop a process group we created: SIGTERM (and SIGCONT, so a stopped
/// process can act on it), wait up to `timeout`, then SIGKILL; returns
/// when the group is gone and the leader reaped.
pub async fn stop_group(child: &mut Child, timeout: Duration) {
    let pgid = child.pid;
    sys::signal_group(pgid, sys::Signal::TERM);
    sys::signal_group(pgid, sys::Signal::CONT);
    if !within_grace(child.wait(), timeout).await {
        tracing::warn!("killing process group {pgid}");
    }
    // Whatever is left of the group (the leader exited, helpers didn't).
    sys::signal_group(pgid, sys::Signal::KILL);
    if tokio::time::timeout(KILL_GRACE, child.wait())
        .await
        .is_err()
    {
        // Stuck in the kernel (a hung mount): nothing more to do but say so.
        tracing::error!("process {pgid} survives SIGKILL (stuck in the kernel?): giving up on it");
    }
    sys::reaper::reap();
    let deadline = Instant::now() + Duration::from_secs(5);
    sys::poll_until(deadline, || {
        sys::reaper::reap();
        !sys::group_exists(pgid)
    })
    .await;
}

static FORCE: std::sync::LazyLock<tokio::sync::watch::Sender<bool>> =
    std::sync::LazyLock::new(|| tokio::sync::watch::channel(false).0);

/// Stop now, without waiting out the grace periods (a second Ctrl-C):
/// our children's process groups are killed, and graceful waits end.
pub fn force_stop() -> usize {
    FORCE.send_replace(true);
    sys::reaper::kill_all_children()
}

pub(crate) fn forced() -> bool {
    *FORCE.borrow()
}

/// Wait for `done` up to `timeout`, or until a forced stop; true if it
/// finished in time.
async fn within_grace(done: impl std::future::Future, timeout: Duration) -> bool {
    let mut force = FORCE.subscribe();
    tokio::select! {
        _ = done => true,
        _ = tokio::time::sleep(timeout) => {
            tracing::warn!("did not stop within {}", humantime::format_duration(timeout));
            false
        }
        _ = force.wait_for(|v| *v) => false,
    }
}

/// How long a SIGKILLed process may take to go (a process stuck in the
/// kernel may never): waits after SIGKILL are bounded by this.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// Stop a verified process that is not our child (an adopted engine).
/// With `group` (dockhand started it, in a group of its own), SIGKILL
/// goes to its whole group.
pub async fn stop_proc(p: &sys::Proc, timeout: Duration, group: bool) {
    p.signal(sys::Signal::TERM);
    p.signal(sys::Signal::CONT);
    if !within_grace(p.exited(), timeout).await {
        tracing::warn!("killing process {}", p.pid());
        if group && p.alive() && p.leads_group() {
            sys::signal_group(p.pid(), sys::Signal::KILL);
        }
        p.signal(sys::Signal::KILL);
        if tokio::time::timeout(KILL_GRACE, p.exited()).await.is_err() {
            tracing::error!(
                "process {} survives SIGKILL (stuck in the kernel?): giving up on it",
                p.pid()
            );
        }
    }
    sys::reaper::reap();
}

/// Like [`remove_dead_socket`], but a socket still served by a process
/// that `ours` recognises (Lima's ssh ControlMaster after a forced stop,
/// identified by the socket's peer credentials) is waited for, up to
/// `grace`; then that process is stopped and the socket removed. Anyone
/// else's socket stays an error.
pub async fn remove_dead_socket_or(
    socket: &Path,
    grace: Duration,
    what: &str,
    ours: impl Fn(&sys::ProcInfo) -> bool,
) -> Result<Option<String>> {
    let deadline = Instant::now() + grace;
    let mut held = None;
    loop {
        if matches!(
            probe::ping(socket, Duration::from_secs(2)).await,
            Ping::Refused | Ping::NoSocket
        ) {
            break;
        }
        let Some(holder) = sys::socket_holder(socket).filter(|i| !i.zombie && ours(i)) else {
            break; // someone else (or nobody now): remove_dead_socket decides
        };
        if held.is_none() {
            tracing::info!(
                "{} is still held by {what} (pid {}): waiting up to {} for it to go",
                socket.display(),
                holder.pid,
                humantime::format_duration(grace)
            );
        }
        held = Some(holder.pid);
        if Instant::now() >= deadline {
            if let Some(p) = sys::Proc::open(holder.pid, &ours) {
                tracing::warn!(
                    "{what} (pid {}) still holds {}: stopping it",
                    p.pid(),
                    socket.display()
                );
                stop_proc(&p, Duration::from_secs(5), false).await;
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let note = remove_dead_socket(socket).await?;
    Ok(match held {
        Some(pid) => Some(format!(
            "{} was held by {what} (pid {pid}) after the stop; it is free now",
            socket.display()
        )),
        None => note,
    })
}

/// Remove a socket file that nobody serves; leave anything else alone.
pub async fn remove_dead_socket(socket: &Path) -> Result<Option<String>> {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::symlink_metadata(socket) else {
        return Ok(None);
    };
    let uid = rustix::process::geteuid().as_raw();
    if md.file_type().is_socket() && md.uid() != uid {
        return Err(crate::error::Error::UnsafePath(format!(
            "{} belongs to uid {}, not to you: dockhand will not remove or replace it; set another socket path",
            socket.display(),
            md.uid()
        )));
    }
    if !md.file_type().is_socket() {
        return Err(crate::error::Error::UnsafePath(format!(
            "{} exists and is not a socket: dockhand will not replace it; move it away or set another socket path",
            socket.display()
        )));
    }
    match probe::ping(socket, Duration::from_secs(2)).await {
        Ping::Refused => {
            let _ = std::fs::remove_file(socket);
            Ok(Some(format!("removed dead socket {}", socket.display())))
        }
        Ping::NoSocket => Ok(None),
        other => Err(crate::error::Error::UnsafePath(format!(
            "{} is in use by another program ({other}): dockhand will not take it over; stop that program or set another socket path",
            socket.display()
        ))),
    }
}
