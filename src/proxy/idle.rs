//! Idle: real work vs. polling. The engine is idle when no container runs
//! (asked of the engine), no active request is in flight (its response
//! not finished, or its upgraded connection open), and the last active
//! request ended (or a container was last seen running) at least
//! `idle_stop` ago. Passive requests never count.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::{OwnedRwLockReadGuard, RwLock};
use tokio::time::Instant;
use tracing::{info, warn};

use super::Shared;
use crate::control::{Awake, Held};
use crate::state::Phase;

/// Active requests in flight and when the last one ended.
pub struct Activity {
    active: AtomicUsize,
    last: std::sync::Mutex<Instant>,
    /// Active requests hold it shared; the idle stop takes it exclusively,
    /// so no active request can slip in between "idle" and "stopped".
    gate: Arc<RwLock<()>>,
    /// Passive requests in flight: never work, but the stop lets them
    /// finish (`passive_drained`) rather than cut them.
    passive: AtomicUsize,
    passive_done: tokio::sync::Notify,
}

/// A passive request in flight: counted until dropped.
pub struct Passive<'a>(&'a Activity);

impl Drop for Passive<'_> {
    fn drop(&mut self) {
        if self.0.passive.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.passive_done.notify_waiters();
        }
    }
}

/// How long an idle stop waits for passive requests in flight.
const PASSIVE_DRAIN: Duration = Duration::from_secs(2);

/// An active request in flight: counted until dropped.
pub struct Active {
    shared: Arc<Shared>,
    _gate: OwnedRwLockReadGuard<()>,
}

impl Drop for Active {
    fn drop(&mut self) {
        let a = &self.shared.idle;
        a.touch();
        a.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            active: AtomicUsize::new(0),
            last: std::sync::Mutex::new(Instant::now()),
            gate: Arc::new(RwLock::new(())),
            passive: AtomicUsize::new(0),
            passive_done: tokio::sync::Notify::new(),
        }
    }

    pub fn passive_begin(&self) -> Passive<'_> {
        self.passive.fetch_add(1, Ordering::SeqCst);
        Passive(self)
    }

    /// Wait until no passive request is in flight, at most `within`;
    /// false if some still are.
    async fn passive_drained(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let done = self.passive_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.passive.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, done).await.is_err() {
                return false;
            }
        }
    }

    /// Start an active request (waits while an idle stop is under way).
    pub async fn begin(shared: &Arc<Shared>) -> Active {
        let gate = shared.idle.gate.clone().read_owned().await;
        shared.idle.active.fetch_add(1, Ordering::SeqCst);
        Active {
            shared: shared.clone(),
            _gate: gate,
        }
    }

    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn last(&self) -> Instant {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }
}

/// How often the idle task looks: often enough for short `idle_stop`s in
/// tests, rarely enough to cost nothing (one small request to the engine).
fn tick(after: Duration) -> Duration {
    (after / 4).clamp(Duration::from_millis(250), Duration::from_secs(5))
}

/// Containers that an engine stop would stop: running, paused or
/// restarting (whoever started them), asked of the engine. `status=running`
/// alone misses paused ones: a paused container's status is `paused`.
pub const BUSY: &str = "/containers/json?all=1&filters=%7B%22status%22%3A%5B%22running%22%2C%22paused%22%2C%22restarting%22%5D%7D";

/// Containers running, paused or restarting, asked of the engine.
async fn running_containers(shared: &Shared) -> Result<u32, String> {
    let target = BUSY;
    let (head, body) = super::http::get(&shared.socket, target, Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?;
    if head.status != 200 {
        return Err(format!("the engine answered {}", head.status));
    }
    let list: Vec<serde_json::Value> =
        serde_json::from_slice(&body).map_err(|e| format!("unexpected answer: {e}"))?;
    Ok(list.len() as u32)
}

/// Containers that keep the engine awake. A remote engine's (ssh) run
/// without the connection: they don't keep it open.
async fn busy(shared: &Shared) -> Result<u32, String> {
    match shared.remote {
        true => Ok(0),
        false => running_containers(shared).await,
    }
}

/// Why an adopted engine without a process dockhand can verify is never
/// stopped as idle.
const NOT_OURS: &str = "never stopped as idle: the engine was running before dockhand and has no process dockhand can verify, so it isn't dockhand's to stop";

/// Watch for idleness while the engine runs; stop it when idle.
pub async fn run(shared: Arc<Shared>, after: Duration) {
    let step = tick(after);
    let mut reported: Option<Awake> = None;
    let mut state = shared.control.subscribe();
    loop {
        // Not running: nothing to watch until it is; the clock starts
        // when it becomes ready.
        if state
            .wait_for(|s| s.phase == Phase::Ready && s.held.is_none())
            .await
            .is_err()
        {
            return;
        }
        if reported.is_none() {
            shared.idle.touch();
        }
        tokio::time::sleep(step).await;
        let st = shared.control.state();
        if st.phase != Phase::Ready || st.held.is_some() {
            reported = None;
            continue;
        }
        // An engine dockhand found running and can't vouch for (no process
        // to stop) is never stopped as idle: it isn't ours to stop.
        if st.adopted && st.engine_pid.is_none() {
            let awake = not_ours(&shared);
            if reported.as_ref() != Some(&awake) {
                info!("idle_stop: {NOT_OURS}");
            }
            publish(&shared, &mut reported, awake);
            continue;
        }
        let (awake, due) = look(&shared, after).await;
        let idle = awake.idle_stop_at.is_some();
        publish(&shared, &mut reported, awake);
        if idle && Instant::now() >= due && stop_idle(&shared, after).await {
            reported = None;
        }
    }
}

/// What `status` shows for an engine that is never stopped as idle.
fn not_ours(shared: &Shared) -> Awake {
    Awake {
        running_containers: None,
        active_requests: shared.idle.active() as u32,
        idle_stop_at: None,
        never_idle_stopped: Some(NOT_OURS.into()),
    }
}

/// Ask the engine for running containers and count the active requests:
/// what `status` shows (with when the idle stop is due, when nothing
/// runs), and when that is.
async fn look(shared: &Shared, after: Duration) -> (Awake, Instant) {
    let running = match busy(shared).await {
        Ok(n) => Some(n),
        Err(e) => {
            warn!("idle check: cannot list running containers: {e}");
            None
        }
    };
    // A container seen running (or an engine we couldn't ask) is work.
    if running != Some(0) {
        shared.idle.touch();
    }
    let active = shared.idle.active();
    let due = shared.idle.last() + after;
    let awake = Awake {
        running_containers: running.filter(|_| !shared.remote),
        active_requests: active as u32,
        never_idle_stopped: None,
        idle_stop_at: (running == Some(0) && active == 0).then(|| {
            let left = due.saturating_duration_since(Instant::now());
            humantime::format_rfc3339_seconds(SystemTime::now() + left).to_string()
        }),
    };
    (awake, due)
}

/// Tell the supervisor (for `status`) when what it would show changed.
fn publish(shared: &Shared, reported: &mut Option<Awake>, awake: Awake) {
    if reported.as_ref() != Some(&awake) {
        shared.control.report_awake(Some(awake.clone()));
        *reported = Some(awake);
    }
}

/// Idle: record what pollers read, then stop the engine unless work came
/// meanwhile. The engine can't change while held stopped, so what pollers
/// read now is what they are answered until it runs again. Recording
/// takes a while (`system/df`): it runs before the gate is taken, so no
/// active request waits for it; one that came meanwhile calls the stop
/// off. False when the engine was not stopped.
async fn stop_idle(shared: &Shared, after: Duration) -> bool {
    let since = Instant::now();
    let api = shared.cache.api_version();
    shared
        .record
        .record_all(&shared.socket, api.as_deref())
        .await;
    // Hold the gate so no active request starts meanwhile.
    let Ok(gate) = shared.idle.gate.clone().try_write_owned() else {
        return false;
    };
    if shared.idle.active() > 0 || shared.idle.last() > since {
        return false;
    }
    // Pollers' requests in flight finish first, so none is cut by the
    // stop; a passive stream (an HTTP/1.0 `/events`, a path the profile
    // made passive) that outlasts the wait is cut, as any would be.
    if !shared.idle.passive_drained(PASSIVE_DRAIN).await {
        info!("idle stop: a passive request still in flight after {PASSIVE_DRAIN:?} is cut");
    }
    // Asked again with the gate held: a container started meanwhile
    // (also directly on the engine's socket) keeps it awake.
    if busy(shared).await != Ok(0) {
        shared.idle.touch();
        return false;
    }
    info!(
        "idle for {} (no container running, paused or restarting; no active request): stopping the engine",
        humantime::format_duration(after)
    );
    shared.control.stop(Held::Idle).await;
    drop(gate);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_bounded() {
        assert_eq!(tick(Duration::from_secs(1)), Duration::from_millis(250));
        assert_eq!(tick(Duration::from_secs(8)), Duration::from_secs(2));
        assert_eq!(tick(Duration::from_secs(3600)), Duration::from_secs(5));
    }
}
