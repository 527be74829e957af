//! Engines: what the supervisor starts, adopts, watches and stops. One
//! file per kind (`process`: dockerd or any command; `colima`); `Engine`
//! dispatches to them, and says what the supervisor may count on (its
//! resume policy, whether a stop leaves runtime files, whether an exit
//! means it went to the background). Every kind answers the Docker API
//! on `Profile::socket`. Shared by the kinds: `log` (`engine.log`),
//! `socket` (waiting for it, removing a dead one), `stop` (process
//! groups, verified processes, orphans, a forced stop); `engine.json`'s
//! record is `state::engine_record`.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{EngineKind, Profile};
use crate::error::Result;
use crate::sys::{self, reaper::Child};

pub mod colima;
pub mod colima_version;
mod log;
pub mod process;
mod socket;
pub mod ssh;
mod stop;
pub mod watcher;

pub use log::{
    ENGINE_LOG_MAX, bound_engine_log, bound_log, guard_engine_log, last_words, log_output_to,
};
pub use socket::{ping_until, remove_dead_socket, remove_dead_socket_or};
pub(crate) use stop::forced;
pub use stop::{force_stop, stop_group, stop_orphans, stop_proc};

pub use crate::state::engine_record::Record;

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
    /// Stops the engine if this supervisor ends without stopping it and
    /// no other claims it in time (`crate::engine::watcher`); released when
    /// dropped, kept on a handoff (`hand_over`).
    pub watcher: Option<crate::engine::watcher::Watcher>,
}

impl Running {
    /// The engine stays for the next supervisor: its watcher takes over
    /// when this process ends.
    pub fn hand_over(mut self) {
        if let Some(w) = self.watcher.take() {
            w.hand_over();
        }
    }
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

/// The state dir this supervisor claimed, if `state_dir` is it.
fn claimed_dir(state_dir: &Path) -> Option<&'static crate::state::Dir> {
    crate::state::claimed().filter(|d| d.path() == state_dir)
}

/// The engine in a few words, for progress lines: "colima (vz, 4 CPU,
/// 8 GiB)", "dockerd", or the command's program.
pub fn summary(p: &Profile) -> String {
    match p.engine {
        EngineKind::Colima => colima::summary(p),
        EngineKind::Dockerd | EngineKind::Command => process::summary(p),
        EngineKind::Ssh => ssh::summary(p),
    }
}

/// Logs the engine writes besides `engine.log` (not rotated by dockhand),
/// for `dockhand logs`.
pub fn other_logs(p: &Profile) -> Vec<PathBuf> {
    match p.engine {
        EngineKind::Colima => colima::other_logs(p),
        EngineKind::Dockerd | EngineKind::Command | EngineKind::Ssh => Vec::new(),
    }
}

/// After a resume from sleep, failed probes are retried every `retry`
/// for up to `grace` before the engine is restarted (a restart kills
/// every container).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePolicy {
    pub grace: Duration,
    pub retry: Duration,
}

impl ResumePolicy {
    /// A forward that reconnects after a resume: a VM's often needs a few
    /// seconds (Lima's ssh reconnects: lima #5420, colima #1033).
    pub const RECONNECTS: ResumePolicy = ResumePolicy {
        grace: Duration::from_secs(60),
        retry: Duration::from_secs(3),
    };
    /// A forward that never recovers by itself (an ssh connection):
    /// no grace, a dead one is replaced at once.
    pub const AT_ONCE: ResumePolicy = ResumePolicy {
        grace: Duration::ZERO,
        retry: Duration::from_secs(3),
    };
}

/// The engine kinds. A new kind is a file here, a variant, and its arms in
/// the methods below and in `summary` and `other_logs` (plus its settings
/// in `config`): the supervisor only calls these methods.
pub enum Engine {
    Process(process::ProcessEngine),
    Colima(colima::ColimaEngine),
    // Boxed: its ssh state is several times the size of the others.
    Ssh(Box<ssh::SshEngine>),
}

impl Engine {
    pub fn new(p: &Profile) -> Engine {
        match p.engine {
            EngineKind::Colima => Engine::Colima(colima::ColimaEngine::new(p)),
            EngineKind::Dockerd | EngineKind::Command => {
                Engine::Process(process::ProcessEngine::new(p))
            }
            EngineKind::Ssh => Engine::Ssh(Box::new(ssh::SshEngine::new(p))),
        }
    }

    /// Binaries present, privileges sufficient: checked once, before the
    /// supervisor starts (exit code 4 when not).
    pub fn check(&self) -> Result<()> {
        match self {
            Engine::Process(e) => e.check(),
            Engine::Colima(e) => e.check(),
            Engine::Ssh(e) => e.check(),
        }
    }

    /// An engine that already answers on the socket, taken over as is.
    pub async fn adopt(&mut self) -> Option<Running> {
        match self {
            Engine::Process(e) => e.adopt().await,
            Engine::Colima(e) => e.adopt().await,
            Engine::Ssh(e) => e.adopt().await,
        }
    }

    /// Remove what an unclean stop left behind that is ours; never touch
    /// what isn't. Returns notes for the log.
    pub async fn clean_stale(&mut self) -> Result<Vec<String>> {
        match self {
            Engine::Process(e) => e.clean_stale().await,
            Engine::Colima(e) => e.clean_stale().await,
            Engine::Ssh(e) => e.clean_stale().await,
        }
    }

    /// Launch the engine; `wait_ready` then waits for it to answer.
    pub async fn spawn(&mut self) -> Result<Running> {
        match self {
            Engine::Process(e) => e.spawn(),
            Engine::Colima(e) => e.spawn(),
            Engine::Ssh(e) => e.spawn(),
        }
    }

    /// Wait until the engine answers `/_ping`, or fails.
    pub async fn wait_ready(&mut self, r: &mut Running, deadline: Instant) -> Result<(), String> {
        match self {
            Engine::Process(e) => e.wait_ready(r, deadline).await,
            Engine::Colima(e) => e.wait_ready(r, deadline).await,
            Engine::Ssh(e) => e.wait_ready(r, deadline).await,
        }
    }

    /// Stop gracefully within `timeout`, then kill what remains; returns
    /// once nothing of it is left; false if it may still run (an adopted
    /// engine dockhand can't vouch for is left alone; a failed colima stop).
    pub async fn stop(&mut self, r: Running, timeout: Duration) -> bool {
        match self {
            Engine::Process(e) => e.stop(r, timeout).await,
            Engine::Colima(e) => e.stop(r, timeout).await,
            Engine::Ssh(e) => e.stop(r, timeout).await,
        }
    }

    /// After the engine's process ended (before or after it answered):
    /// the error that ends `run` if it went to the background instead.
    pub fn daemonized(&self, r: &mut Running) -> Option<crate::error::Error> {
        match self {
            Engine::Process(e) => e.daemonized(r),
            Engine::Colima(_) | Engine::Ssh(_) => None,
        }
    }

    /// Remove runtime files after a stop.
    pub async fn remove_runtime_files(&mut self) {
        match self {
            Engine::Process(e) => e.remove_runtime_files().await,
            Engine::Ssh(e) => e.remove_runtime_files().await,
            Engine::Colima(_) => {}
        }
    }

    /// After a failed start or an exit: a failure that retrying can't fix
    /// (the ssh engine's host key, login or configuration), with its fix.
    /// The supervisor then holds the profile `failed` until `up`/`restart`.
    pub fn fatal(&self) -> Option<String> {
        match self {
            Engine::Ssh(e) => e.fatal(),
            _ => None,
        }
    }

    /// After a failed probe or start: the engine's process is fine but
    /// what it serves is down (the ssh engine's forward is up, the remote
    /// engine isn't). The supervisor keeps the process and probes at the
    /// backoff's pace instead of restarting it.
    pub fn serving_down(&mut self) -> Option<String> {
        match self {
            Engine::Ssh(e) => e.remote_down(),
            _ => None,
        }
    }

    /// After a failed start: it failed because what the engine serves is
    /// down, not the engine's process (see `serving_down`).
    pub fn started_degraded(&self) -> bool {
        match self {
            Engine::Ssh(e) => e.started_degraded(),
            _ => false,
        }
    }

    /// A client request cuts a wait short (between attempts, after a
    /// failure): true where an attempt is cheap and may now succeed (an
    /// ssh connection that failed on the network, which may be back).
    pub fn retry_on_request(&self) -> bool {
        match self {
            Engine::Ssh(e) => e.retry_on_request(),
            _ => false,
        }
    }

    /// How failed probes shortly after a resume from sleep are treated.
    pub fn resume_policy(&self) -> ResumePolicy {
        match self {
            Engine::Process(e) => e.resume_policy(),
            Engine::Colima(e) => e.resume_policy(),
            Engine::Ssh(e) => e.resume_policy(),
        }
    }
}
