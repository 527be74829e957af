//! The state machine: the phases a supervised engine goes through (see
//! the diagram in `supervisor`), the transitions between them, and the
//! backoff between failed starts.

use std::time::Duration;

use tokio::time::{Instant, sleep_until};
use tracing::{error, info, warn};

use super::Supervisor;
use super::signals::notify;
use super::steps::Obtain;
use crate::control::{Held, Request};
use crate::engine::Running;
use crate::error::{Error, Result};
use crate::state::{self, Phase};

/// A restart waits 0 s the first time after a stable run, then 1 s, 2 s,
/// 4 s ... up to `restart_backoff_max`.
pub struct Backoff {
    failures: u32,
    max: Duration,
}

impl Backoff {
    pub fn new(max: Duration) -> Backoff {
        Backoff { failures: 0, max }
    }
    pub fn next_delay(&mut self) -> Duration {
        let d = match self.failures {
            0 => Duration::ZERO,
            n => Duration::from_secs(1u64 << (n - 1).min(20)).min(self.max),
        };
        self.failures = self.failures.saturating_add(1);
        d
    }
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// How long an engine must stay ready before the backoff resets.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// The least time from a failed attempt (or probe) to the next one that a
/// request brings forward: a client or `up` asking in a loop makes at most
/// one attempt a second, never a storm against the server.
pub(super) const REQUEST_RETRY_GAP: Duration = Duration::from_secs(1);

/// Why the ready phase ended.
pub(super) enum Exit {
    Shutdown,
    Restart(String),
    /// A `Control::restart`: no backoff.
    Requested,
    /// A `Control::stop`: stop the engine and hold it stopped.
    Hold,
    /// The state dir was removed or replaced: stop and exit with this.
    Lost(Error),
}

/// After `watch`: go round the loop again, or stop (with the engine to
/// stop, if one runs).
pub(super) enum Next {
    Again,
    Stop(Option<Running>),
}

/// After a failed start: go round again, serve this engine, or stop.
pub(super) enum Failed {
    Again,
    Serve(Running),
    Stop(Option<Running>),
}

/// What a request means for the phase the supervisor is in.
pub(super) enum Act {
    Nothing,
    Start,
    Hold,
    Restart,
}

impl Supervisor {
    /// Take a request: record it, and say what it asks of the current phase.
    pub(super) fn take(&mut self, req: Request) -> Act {
        match req {
            Request::Start(w) => {
                self.waiters.push(w);
                Act::Start
            }
            Request::Stop(why, ack) => {
                // The user's `down` outlasts the idle policy's stop.
                if self.held != Some(Held::Down) {
                    self.held = Some(why);
                }
                // Recorded at once: from now on the proxy answers for the
                // engine as it will once it is stopped.
                self.st.held = self.held;
                self.stop_acks.push(ack);
                Act::Hold
            }
            Request::Restart => Act::Restart,
            Request::Awake(a) => {
                if self.st.awake != a {
                    self.st.awake = a;
                    self.record();
                }
                Act::Nothing
            }
        }
    }

    /// Enter `phase`, record it atomically, log the reason.
    pub(super) fn set(&mut self, phase: Phase, pid: Option<i32>, reason: &str) {
        let quoted = state::bounded(reason);
        let reason = quoted.as_str();
        let changed = self.st.phase != phase || self.st.engine_pid != pid;
        self.st.phase = phase;
        self.st.engine_pid = pid;
        if phase != Phase::Unhealthy {
            self.st.serving_down = false;
        }
        if changed {
            self.st.since = state::now_rfc3339();
        }
        if matches!(phase, Phase::Failed | Phase::Unhealthy | Phase::Restarting) {
            self.st.last_error = Some(reason.to_string());
        }
        match phase {
            Phase::Failed => error!("{phase}: {reason}"),
            Phase::Unhealthy | Phase::Restarting => warn!("{phase}: {reason}"),
            _ => info!("{phase}: {reason}"),
        }
        self.record();
        // A held engine is dockhand at work, not dockhand stopping.
        if self.held.is_none() || !matches!(phase, Phase::Stopping) {
            notify(phase, reason, self.st.held.is_some());
        }
    }

    pub(super) async fn run(mut self) -> Result<u8> {
        info!(
            "dockhand {} supervising profile `{}` ({:?} engine, socket {})",
            env!("CARGO_PKG_VERSION"),
            self.p.name,
            self.p.engine,
            self.p.socket.display()
        );
        let mut backoff = Backoff::new(self.p.restart_backoff_max);
        let mut first = true;
        let running = loop {
            if self.stopping() {
                break None;
            }
            // 0. Held stopped (on_demand, idle_stop, down): wait for a request.
            if self.held.is_some() && !self.hold().await {
                break None;
            }
            // 1. An engine: adopt one that answers, else clean up and start.
            let mut r = match self.obtain(first).await {
                Ok(Some(r)) => r,
                Ok(None) => continue, // shutdown or hold during start
                Err(Obtain::Fatal(e)) => return Err(self.fail(e)),
                Err(Obtain::Failed(why, r)) => {
                    first = false;
                    match self.start_failed(why, r, &mut backoff).await? {
                        Failed::Again => continue,
                        Failed::Serve(r) => r,
                        Failed::Stop(r) => break r,
                    }
                }
            };
            first = false;
            self.ready(&r);
            let ready_at = Instant::now();
            // 2. Watch it until it ends, hangs, or we are told to stop.
            let exit = self.watch(&mut r).await;
            if let Next::Stop(r) = self.after(exit, r, ready_at, &mut backoff).await? {
                break r;
            }
        };
        self.finish(running).await
    }

    /// A failed start: held `failed` when retrying can't fix it (the
    /// engine's `fatal`); served as is when only what the engine serves
    /// is down (`started_degraded`: watched in `degraded` until it
    /// answers); else retried after the backoff (at least a second).
    async fn start_failed(
        &mut self,
        why: String,
        r: Option<Running>,
        backoff: &mut Backoff,
    ) -> Result<Failed> {
        if let Some(msg) = self.engine.fatal() {
            if let Some(r) = r {
                self.engine.stop(r, self.p.stop_timeout).await;
            }
            self.hold_failed(msg);
            return Ok(Failed::Again);
        }
        let r = match r {
            Some(mut r) if self.engine.started_degraded() => {
                return Ok(match self.degraded(&mut r, why).await {
                    Ok(()) => Failed::Serve(r),
                    Err(exit) => match self.after(exit, r, Instant::now(), backoff).await? {
                        Next::Stop(r) => Failed::Stop(r),
                        Next::Again => Failed::Again,
                    },
                });
            }
            r => r,
        };
        self.waiters.resolve(Err(why.clone()));
        let delay = backoff.next_delay().max(Duration::from_secs(1));
        Ok(match self.recover(&why, r, delay).await {
            true => Failed::Again,
            false => Failed::Stop(None),
        })
    }

    /// `ready`: how the engine came to answer, and the waiters told.
    pub(super) fn ready(&mut self, r: &Running) {
        self.st.adopted = r.adopted;
        let how = match (r.adopted, r.pid) {
            (false, _) => "engine answers /_ping",
            (true, Some(_)) => "adopted the running engine",
            (true, None) => {
                "adopted the running engine (not started by dockhand: watched by probes, never signalled)"
            }
        };
        self.set(Phase::Ready, r.pid, how);
        self.waiters.resolve(Ok(()));
    }

    /// A failure retrying can't fix: `failed`, the waiters told; `run`
    /// returns the error (its exit code).
    pub(super) fn fail(&mut self, e: Error) -> Error {
        self.set(Phase::Failed, None, &e.to_string());
        self.waiters.resolve(Err(e.to_string()));
        e
    }

    /// What follows the end of `watch`: a restart (after the backoff), a
    /// hold, or the end of the loop (with the engine still to stop).
    pub(super) async fn after(
        &mut self,
        exit: Exit,
        mut r: Running,
        ready_at: Instant,
        backoff: &mut Backoff,
    ) -> Result<Next> {
        let restarted = match exit {
            Exit::Shutdown => return Ok(Next::Stop(Some(r))),
            Exit::Lost(e) => {
                error!("{e}");
                self.set(Phase::Stopping, r.pid, "state_dir replaced");
                self.engine.stop(r, self.p.stop_timeout).await;
                return Err(self.fail(e));
            }
            Exit::Restart(why) => {
                if let Some(e) = self.engine.daemonized(&mut r) {
                    self.engine.stop(r, self.p.stop_timeout).await;
                    return Err(self.fail(e));
                }
                if ready_at.elapsed() >= STABLE_AFTER {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                self.recover(&why, Some(r), delay).await
            }
            Exit::Requested => {
                self.recover("restart requested", Some(r), Duration::ZERO)
                    .await
            }
            Exit::Hold => {
                let why = self.held.unwrap_or(Held::Down);
                self.set(
                    Phase::Stopping,
                    r.pid,
                    &format!("stopping the engine: {why}"),
                );
                if !self.engine.stop(r, self.p.stop_timeout).await {
                    warn!("the engine may still run (see above); holding it as stopped");
                }
                self.engine.remove_runtime_files().await;
                crate::engine::bound_engine_log(&self.p.state_dir);
                super::handoff::forget_spec(&self.p);
                true
            }
        };
        Ok(if restarted {
            Next::Again
        } else {
            Next::Stop(None)
        })
    }

    /// Step 3: stop within stop_timeout, remove runtime files, exit 0; or, when
    /// this stop is half of a restart of dockhand, leave a running engine
    /// to the next supervisor (service::handoff).
    pub(super) async fn finish(&mut self, mut running: Option<Running>) -> Result<u8> {
        self.waiters.resolve(Err("dockhand is stopping".into()));
        if running.is_some()
            && let Some(why) = super::handoff::keep_engine(&self.p).await
        {
            // Its watcher stops it if no supervisor claims it in time.
            if let Some(r) = running.take() {
                r.hand_over();
            }
            let how = format!(
                "supervisor stopped for a restart ({why}); the engine keeps running for the next supervisor to adopt"
            );
            self.set(Phase::Stopped, self.st.engine_pid, &how);
            return Ok(0);
        }
        self.set(Phase::Stopping, self.st.engine_pid, "stop requested");
        let mut stopped = true;
        if let Some(r) = running.take() {
            stopped = self.engine.stop(r, self.p.stop_timeout).await;
        }
        self.engine.remove_runtime_files().await;
        crate::engine::bound_engine_log(&self.p.state_dir);
        super::handoff::forget_spec(&self.p);
        crate::engine::watcher::wait_released();
        self.set(
            Phase::Stopped,
            None,
            if stopped {
                "engine stopped"
            } else {
                "supervisor stopped; the engine was left running (see above)"
            },
        );
        Ok(0)
    }

    /// After a failed start or an engine that ended: stop what is left of
    /// it, wait out the backoff in `failed` (saying why and until when),
    /// count the restart. False when a shutdown came first.
    pub(super) async fn recover(&mut self, why: &str, r: Option<Running>, delay: Duration) -> bool {
        if let Some(r) = r {
            self.set(Phase::Restarting, r.pid, why);
            self.engine.stop(r, self.p.stop_timeout).await;
        }
        // Asked to stop while the old engine was stopping: no new start.
        if self.stopping() {
            return false;
        }
        if !delay.is_zero() {
            let delay = humantime::format_duration(delay);
            info!("next start in {delay} (backoff)");
            self.set(
                Phase::Failed,
                None,
                &format!("{why} (next attempt in {delay})"),
            );
        }
        if !self.pause(delay).await {
            return false;
        }
        self.st.restarts += 1;
        true
    }

    /// Sleep `d` unless a shutdown comes first; false on shutdown.
    pub(super) async fn pause(&mut self, d: Duration) -> bool {
        if d.is_zero() || self.stopping() {
            return !self.stopping();
        }
        let began = Instant::now();
        let mut end = began + d;
        let mut shutdown = self.shutdown.clone();
        loop {
            let req = tokio::select! {
                _ = sleep_until(end) => return true,
                _ = shutdown.wait_for(|v| *v) => return false,
                req = Self::request(&mut self.cmds) => req,
            };
            // A start waits for the next attempt (or brings it forward,
            // to at most REQUEST_RETRY_GAP after the failure, where
            // attempts are cheap); a stop or restart ends the wait (the
            // loop then holds, or starts at once).
            match self.take(req) {
                Act::Hold | Act::Restart => return true,
                Act::Start if self.engine.retry_on_request() => {
                    end = end.min(began + REQUEST_RETRY_GAP);
                }
                Act::Start | Act::Nothing => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(10));
        let seq: Vec<u64> = (0..7).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(seq, [0, 1, 2, 4, 8, 10, 10]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::ZERO);
    }
}
