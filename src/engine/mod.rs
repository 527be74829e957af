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
    /// Our record, read only from the state directory this supervisor
    /// claimed and still holds (a regular file of ours, no link): never
    /// the word of a file in a directory someone could have swapped.
    pub fn load(state_dir: &Path) -> Option<Record> {
        let dir = claimed_dir(state_dir)?;
        if let Err(e) = dir.still_ours() {
            tracing::error!("{e}");
            return None;
        }
        let bytes = match dir.read("engine.json", 4096) {
            Ok(b) => b?,
            Err(e) => {
                tracing::warn!("{}: {e}: ignored", Record::path(state_dir).display());
                return None;
            }
        };
        serde_json::from_slice(&bytes).ok()
    }
    pub fn remove(state_dir: &Path) {
        match claimed_dir(state_dir) {
            Some(d) => d.remove("engine.json"),
            None => {
                let _ = std::fs::remove_file(Record::path(state_dir));
            }
        }
    }
}

/// The state dir this supervisor claimed, if `state_dir` is it.
fn claimed_dir(state_dir: &Path) -> Option<&'static crate::state::Dir> {
    crate::state::claimed().filter(|d| d.path() == state_dir)
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

    /// After the engine's process ended (before or after it answered):
    /// the error that ends `run` if it went to the background instead.
    pub fn daemonized(&self, r: &mut Running) -> Option<crate::error::Error> {
        match self {
            Engine::Process(e) => e.daemonized(r),
            Engine::Colima(_) => None,
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

/// `engine.log` is kept under this size (plus what an engine writes in a
/// second), with `logging::KEEP` older files, like dockhand's own log.
pub const ENGINE_LOG_MAX: u64 = crate::logging::MAX_BYTES;
const ENGINE_LOG: &str = "engine.log";

/// Send the engine's stdout and stderr to `<state_dir>/engine.log` (opened
/// through the claimed state dir, never through a link). A file, not a
/// pipe of ours: if dockhand dies, a broken pipe would take the engine
/// down (SIGPIPE). `guard_engine_log` keeps it bounded.
pub fn log_output_to(cmd: &mut std::process::Command, state_dir: &Path) -> Result<()> {
    let path = state_dir.join(ENGINE_LOG);
    let err = |e| crate::error::Error::io(format!("cannot open {}", path.display()), e);
    let dir = claimed_dir(state_dir)
        .ok_or_else(|| err(std::io::Error::other("the state directory is not held")))?;
    if dir
        .open_rw(ENGINE_LOG)
        .and_then(|f| f.metadata())
        .is_ok_and(|m| m.len() > ENGINE_LOG_MAX)
    {
        rotate_in(dir, ENGINE_LOG);
    }
    // A link or FIFO in its place is replaced (ours: our 0700 dir); a
    // directory there ends `run` (exit 6).
    let (file, note) = crate::logging::open_in_state_dir(dir, ENGINE_LOG)?;
    if let Some(n) = note {
        tracing::warn!("{n}");
    }
    let errf = file.try_clone().map_err(err)?;
    cmd.stdout(file).stderr(errf);
    Ok(())
}

/// `name` → `name.1` → ... → `name.KEEP` inside `dir`.
fn rotate_in(dir: &crate::state::Dir, name: &str) {
    for n in (1..crate::logging::KEEP).rev() {
        dir.rename(&format!("{name}.{n}"), &format!("{name}.{}", n + 1));
    }
    dir.rename(name, &format!("{name}.1"));
}

/// Check `engine.log` for the supervisor's life and cut it when it
/// outgrows `ENGINE_LOG_MAX` (the engine keeps it open, so it is copied,
/// then truncated: the engine's appends continue at its start). Every
/// second while it grows; a quiet log is looked at less and less often
/// (up to every 8 s), so an idle supervisor stays idle.
pub fn guard_engine_log(dir: &'static crate::state::Dir) {
    tokio::spawn(async move {
        let mut last = None;
        let mut every = Duration::from_secs(1);
        loop {
            tokio::time::sleep(every).await;
            bound_log(dir, ENGINE_LOG, ENGINE_LOG_MAX);
            let size = dir
                .open_rw(ENGINE_LOG)
                .and_then(|f| f.metadata())
                .map(|m| m.len())
                .ok();
            every = if size != last {
                Duration::from_secs(1)
            } else {
                (every * 2).min(Duration::from_secs(8))
            };
            last = size;
        }
    });
}

/// If `name` is over `max`, keep its last `max` bytes as `name.1`
/// (older ones shifted) and truncate it. True when it was cut.
pub fn bound_log(dir: &crate::state::Dir, name: &str, max: u64) -> bool {
    use std::io::{Seek, SeekFrom};
    let Ok(mut f) = dir.open_rw(name) else {
        return false;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len <= max {
        return false;
    }
    for n in (1..crate::logging::KEEP).rev() {
        dir.rename(&format!("{name}.{n}"), &format!("{name}.{}", n + 1));
    }
    if let Ok(mut keep) = dir.create(&format!("{name}.1"))
        && f.seek(SeekFrom::Start(len - max)).is_ok()
    {
        let _ = std::io::copy(&mut std::io::Read::take(&mut f, max), &mut keep);
    }
    f.set_len(0).is_ok()
}

/// How much of `engine.log`'s end is read for an engine's last words.
const LAST_WORDS_BYTES: u64 = 16 * 1024;
const LAST_WORD_LINE_MAX: usize = 512;

/// The last lines the engine wrote, for error messages: only the file's
/// tail is read, decoded lossily (a stray byte doesn't hide the rest),
/// each line cut to a bounded length.
pub fn last_words(state_dir: &Path) -> String {
    let Some(dir) = claimed_dir(state_dir) else {
        return String::new();
    };
    let Ok(mut f) = dir.open_rw(ENGINE_LOG) else {
        return String::new();
    };
    let Ok(tail) = sys::file::read_tail(&mut f, LAST_WORDS_BYTES) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&tail);
    let lines: Vec<String> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .rev()
        .take(3)
        .map(|l| {
            if l.len() <= LAST_WORD_LINE_MAX {
                return l.to_string();
            }
            let mut end = LAST_WORD_LINE_MAX;
            while !l.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}[... {} bytes cut]", &l[..end], l.len() - end)
        })
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail: Vec<String> = lines.into_iter().rev().collect();
    format!(
        "; its last words ({}): {}",
        state_dir.join(ENGINE_LOG).display(),
        tail.join(" | ")
    )
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
/// With `group` (dockhand started it, in a group of its own, as our record
/// shows), the whole group is stopped as thoroughly as a child's: SIGTERM
/// and SIGCONT to the group, SIGKILL to what remains after `timeout`, and
/// the group waited for. The group is signalled only while the verified
/// leader lives, or while members keep its id in use.
pub async fn stop_proc(p: &sys::Proc, timeout: Duration, group: bool) {
    let group = group && p.alive() && p.leads_group();
    let pgid = p.pid();
    for sig in [sys::Signal::TERM, sys::Signal::CONT] {
        p.signal(sig);
        if group {
            sys::signal_group(pgid, sig);
        }
    }
    let gone = async {
        p.exited().await;
        if group {
            let deadline = Instant::now() + timeout;
            sys::poll_until(deadline, || !sys::group_exists(pgid)).await;
        }
    };
    if !within_grace(gone, timeout).await || (group && sys::group_exists(pgid)) {
        tracing::warn!("killing process {}", p.pid());
        if group && sys::group_exists(pgid) {
            sys::signal_group(pgid, sys::Signal::KILL);
        }
        p.signal(sys::Signal::KILL);
        if tokio::time::timeout(KILL_GRACE, p.exited()).await.is_err() {
            tracing::error!(
                "process {} survives SIGKILL (stuck in the kernel?): giving up on it",
                p.pid()
            );
        }
        if group {
            let deadline = Instant::now() + KILL_GRACE;
            sys::poll_until(deadline, || !sys::group_exists(pgid)).await;
        }
    }
    sys::reaper::reap();
}

/// Stop every process the engine left running below dockhand (on Linux,
/// dockhand is the subreaper of all its engine forks: a daemonized
/// process, a wrapper's background child, container shims come back to
/// it as its own children, so they are known to be ours): SIGTERM, up to
/// `timeout` to go, then SIGKILL to each and its group. Returns how many
/// there were.
pub async fn stop_orphans(timeout: Duration) -> usize {
    let mut seen = std::collections::BTreeSet::new();
    let term = Instant::now() + timeout;
    let deadline = term + KILL_GRACE;
    // A process that is forking as we look (a daemon's double fork) hands
    // its child to us only when it exits: the set is done when it has
    // stayed empty over a few scans, not at the first empty one.
    let mut empty_scans = 0;
    sys::poll_until(deadline, || {
        sys::reaper::reap();
        let left = sys::orphans();
        empty_scans = if left.is_empty() { empty_scans + 1 } else { 0 };
        for pid in &left {
            if seen.insert(*pid) {
                tracing::info!(
                    "stopping pid {pid}, which the engine left running in the background"
                );
                sys::signal(*pid, sys::Signal::TERM);
                sys::signal(*pid, sys::Signal::CONT);
            } else if forced() || Instant::now() >= term {
                // Our unreaped child: its pid can't name another process.
                sys::kill_child_tree(*pid);
            }
        }
        empty_scans >= 3
    })
    .await;
    seen.len()
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
        Ping::NoFds(e) => Err(crate::error::Error::io(
            format!(
                "cannot check {}: dockhand is out of file descriptors",
                socket.display()
            ),
            std::io::Error::other(e),
        )),
        other => Err(crate::error::Error::UnsafePath(format!(
            "{} is in use by another program ({other}): dockhand will not take it over; stop that program or set another socket path",
            socket.display()
        ))),
    }
}
