//! The steps the state machine drives: obtain an engine (adopt one that
//! answers, else clean up and launch), wait for it to answer, watch it
//! (probes, its exit, requests), and notice a resume from sleep.

use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until};
use tracing::{info, warn};

use super::Supervisor;
use super::machine::{Act, Exit};
use super::signals::unless_shutdown;
use crate::control::{Held, Request};
use crate::engine::Running;
use crate::error::Error;
use crate::probe;
use crate::state::Phase;

/// How often the wall clock is compared with the monotonic clock to
/// notice a resume from sleep (cheap: two clock reads).
const CLOCK_CHECK: Duration = Duration::from_secs(5);
/// A wall-clock lead over the monotonic clock beyond this is a resume.
const RESUME_JUMP: Duration = Duration::from_secs(3);

impl Supervisor {
    pub(super) async fn obtain(&mut self, first: bool) -> Result<Option<Running>, Obtain> {
        self.st.adopted = false;
        self.st.awake = None;
        let woken = std::mem::take(&mut self.woken);
        self.set(
            Phase::Starting,
            None,
            if woken {
                "starting the engine on request"
            } else if first {
                "supervisor started"
            } else {
                "restarting the engine"
            },
        );
        if self.stopping() {
            return Ok(None);
        }
        // Records in the state dir are trusted only while it is ours.
        self.dir.still_ours().map_err(Obtain::Fatal)?;
        let adopted = match unless_shutdown(&self.shutdown, self.engine.adopt()).await {
            None => return Ok(None),
            Some(r) => r,
        };
        if let Some(r) = adopted {
            match super::handoff::settings_changed(&self.p) {
                None => return Ok(Some(r)),
                Some(why) => {
                    self.set(Phase::Restarting, r.pid, &why);
                    self.engine.stop(r, self.p.stop_timeout).await;
                }
            }
        }
        let Some(mut r) = self.launch().await? else {
            return Ok(None);
        };
        let res = self.await_ready(&mut r).await;
        match res {
            Some(Ok(())) => Ok(Some(r)),
            Some(Err(why)) => match self.engine.daemonized(&mut r) {
                Some(e) => {
                    self.engine.stop(r, self.p.stop_timeout).await;
                    Err(Obtain::Fatal(e))
                }
                None => Err(Obtain::Failed(why, Some(r))),
            },
            None => {
                self.set(Phase::Stopping, r.pid, "stop requested during start");
                self.engine.stop(r, self.p.stop_timeout).await;
                Ok(None)
            }
        }
    }

    /// Clean up after an earlier engine and spawn a new one (`None` on a
    /// shutdown in between).
    pub(super) async fn launch(&mut self) -> Result<Option<Running>, Obtain> {
        // Not raced: it may be stopping an earlier engine, which must end.
        match self.engine.clean_stale().await {
            Ok(notes) => notes.iter().for_each(|n| info!("{n}")),
            Err(
                e @ (Error::UnsafePath(_) | Error::EngineMissing { .. } | Error::EngineUnusable(_)),
            ) => {
                return Err(Obtain::Fatal(e));
            }
            Err(e) => return Err(Obtain::Failed(e.to_string(), None)),
        }
        if self.stopping() {
            return Ok(None);
        }
        let r = match self.engine.spawn().await {
            Ok(r) => r,
            Err(e @ (Error::EngineMissing { .. } | Error::UnsafePath(_))) => {
                return Err(Obtain::Fatal(e));
            }
            Err(e) => return Err(Obtain::Failed(e.to_string(), None)),
        };
        if let Err(e) = super::handoff::record_spec(&self.p) {
            warn!("{e}");
        }
        self.set(
            Phase::Starting,
            r.pid,
            "engine launched, waiting for /_ping",
        );
        Ok(Some(r))
    }

    /// Wait up to start_timeout for the engine to answer, taking requests
    /// meanwhile: `None` on a shutdown or a stop request.
    pub(super) async fn await_ready(&mut self, r: &mut Running) -> Option<Result<(), String>> {
        let deadline = Instant::now() + self.p.start_timeout;
        let mut shutdown = self.shutdown.clone();
        let ready = self.engine.wait_ready(r, deadline);
        tokio::pin!(ready);
        loop {
            tokio::select! {
                res = &mut ready => break Some(res),
                _ = shutdown.wait_for(|v| *v) => break None,
                req = Self::request(&mut self.cmds) => match req {
                    Request::Start(w) => self.waiters.push(w),
                    Request::Stop(why, ack) => {
                        if self.held != Some(Held::Down) {
                            self.held = Some(why);
                        }
                        self.st.held = self.held;
                        self.stop_acks.push(ack);
                        break None;
                    }
                    // Already starting; what keeps it awake comes later.
                    Request::Restart | Request::Awake(_) => {}
                },
            }
        }
    }

    pub(super) async fn watch(&mut self, r: &mut Running) -> Exit {
        let interval = self.p.probe_interval;
        let mut next_probe = Instant::now() + interval;
        let mut clock = (Instant::now(), SystemTime::now());
        let mut next_clock = Instant::now() + CLOCK_CHECK;
        let mut shutdown = self.shutdown.clone();
        let mut resumed: Option<Instant> = None;
        loop {
            let mut probe_now = false;
            tokio::select! {
                why = r.exited() => return Exit::Restart(format!("engine {why}")),
                req = Self::request(&mut self.cmds) => match self.take(req) {
                    Act::Start => self.waiters.resolve(Ok(())),
                    Act::Hold => return Exit::Hold,
                    Act::Restart => return Exit::Requested,
                    Act::Nothing => {}
                },
                _ = shutdown.wait_for(|v| *v) => return Exit::Shutdown,
                _ = sleep_until(next_probe) => probe_now = true,
                _ = sleep_until(next_clock) => {
                    if let Some(t) = self.check_clock(&mut clock) {
                        probe_now = true;
                        resumed = Some(t);
                    }
                    next_clock = clock.0 + CLOCK_CHECK;
                    if let Err(e) = self.dir.still_ours() {
                        return Exit::Lost(e);
                    }
                }
            }
            if probe_now {
                next_probe = Instant::now() + interval;
                match self.probe(r, &mut shutdown, resumed).await {
                    Ok(true) => {}
                    Ok(false) => next_probe = Instant::now() + interval,
                    Err(exit) => return exit,
                }
            }
        }
    }

    /// Every `CLOCK_CHECK`: the instant the machine resumed from sleep, if
    /// it slept since the last check.
    pub(super) fn check_clock(&self, clock: &mut (Instant, SystemTime)) -> Option<Instant> {
        let (mono, wall) = (Instant::now(), SystemTime::now());
        let wall_d = wall.duration_since(clock.1).unwrap_or_default();
        let last = std::mem::replace(clock, (mono, wall));
        let slept = slept(mono - last.0, wall_d)?;
        info!(
            "resumed from sleep (about {} asleep): probing now",
            humantime::format_duration(Duration::from_secs(slept.as_secs()))
        );
        Some(mono)
    }

    /// Probe the engine: `Ok(true)` when it answers, `Ok(false)` when it
    /// answers again after a failure, the reason to leave `ready` otherwise. One failure may be
    /// a blip; a second one in a row is not, unless the machine just woke
    /// up: then retry as the engine's `ResumePolicy` says.
    pub(super) async fn probe(
        &mut self,
        r: &mut Running,
        shutdown: &mut watch::Receiver<bool>,
        resumed: Option<Instant>,
    ) -> Result<bool, Exit> {
        let timeout = self.p.probe_timeout;
        // Every wait races the engine's exit and a stop request.
        let first = racing(r, shutdown, probe::ping(&self.p.socket, timeout)).await?;
        if self.own_trouble(&first) || first.is_ok() {
            return Ok(true);
        }
        if let Some(why) = self.engine.serving_down() {
            self.degraded(r, why).await?;
            self.set(Phase::Ready, r.pid, "the engine answers again");
            self.waiters.resolve(Ok(()));
            return Ok(false);
        }
        self.set(Phase::Unhealthy, r.pid, &format!("probe failed: {first}"));
        let resume = self.engine.resume_policy();
        let grace_end = resumed.map(|t| t + resume.grace);
        loop {
            let p = racing(r, shutdown, probe::ping(&self.p.socket, timeout)).await?;
            if self.own_trouble(&p) {
                return Ok(true); // can't tell: the next probe asks again
            }
            if p.is_ok() {
                self.set(Phase::Ready, r.pid, "probe answers again");
                return Ok(false);
            }
            if grace_end.is_none_or(|end| Instant::now() + resume.retry >= end) {
                return Err(Exit::Restart(format!("engine does not answer: {p}")));
            }
            info!(
                "probe failed again ({p}) shortly after a resume: retrying in {}s",
                resume.retry.as_secs()
            );
            racing(r, shutdown, sleep(resume.retry)).await?;
        }
    }

    /// A probe that could not run for dockhand's own reasons (out of file
    /// descriptors) says nothing about the engine: noted for `status`,
    /// never a reason to restart it (true). Cleared by a probe that runs.
    fn own_trouble(&mut self, p: &probe::Ping) -> bool {
        let trouble = match p {
            probe::Ping::NoFds(_) => Some(p.to_string()),
            _ => None,
        };
        if self.st.dockhand_trouble != trouble {
            match &trouble {
                Some(t) => warn!("{t}: the engine is not blamed"),
                None => info!("dockhand's probe runs again"),
            }
            self.st.dockhand_trouble = trouble.clone();
            self.record();
        }
        trouble.is_some()
    }
}

impl Supervisor {
    /// The engine's process runs but what it serves is down (the ssh
    /// engine's remote engine): `unhealthy` with `why`, the process kept,
    /// probed at the backoff's pace (soon on a start request) until it
    /// answers (Ok) or something else ends it.
    pub(super) async fn degraded(&mut self, r: &mut Running, mut why: String) -> Result<(), Exit> {
        self.st.serving_down = true;
        self.set(Phase::Unhealthy, r.pid, &why);
        self.waiters.resolve(Err(why.clone()));
        let mut backoff = super::Backoff::new(self.p.restart_backoff_max);
        backoff.next_delay();
        let mut shutdown = self.shutdown.clone();
        loop {
            let probed = Instant::now();
            let mut end = probed + backoff.next_delay();
            loop {
                tokio::select! {
                    exit = r.exited() => return Err(Exit::Restart(format!("engine {exit}"))),
                    _ = shutdown.wait_for(|v| *v) => return Err(Exit::Shutdown),
                    _ = tokio::time::sleep_until(end) => break,
                    req = Self::request(&mut self.cmds) => match self.take(req) {
                        // Probed again soon, not at once: at most one
                        // probe a REQUEST_RETRY_GAP for clients in a loop.
                        Act::Start => end = end.min(probed + super::machine::REQUEST_RETRY_GAP),
                        Act::Hold => return Err(Exit::Hold),
                        Act::Restart => return Err(Exit::Requested),
                        Act::Nothing => {}
                    },
                }
            }
            let ping = probe::ping(&self.p.socket, self.p.probe_timeout);
            let p = racing(r, &mut shutdown, ping).await?;
            if p.is_ok() {
                return Ok(());
            }
            match self.engine.serving_down() {
                Some(w) => {
                    if w != why {
                        self.set(Phase::Unhealthy, r.pid, &w);
                        why = w;
                    }
                    self.waiters.resolve(Err(why.clone()));
                }
                None => return Err(Exit::Restart(format!("engine does not answer: {p}"))),
            }
        }
    }
}

/// `fut`, unless the engine exits or a shutdown comes first.
pub(super) async fn racing<T>(
    r: &mut Running,
    shutdown: &mut watch::Receiver<bool>,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, Exit> {
    tokio::select! {
        v = fut => Ok(v),
        why = r.exited() => Err(Exit::Restart(format!("engine {why}"))),
        _ = shutdown.wait_for(|v| *v) => Err(Exit::Shutdown),
    }
}

/// The monotonic clock stops while the machine sleeps (CLOCK_MONOTONIC
/// on Linux, mach_absolute_time on macOS); the wall clock doesn't. A wall
/// clock well ahead of the monotonic one over the same span is a resume.
pub(super) fn slept(mono: Duration, wall: Duration) -> Option<Duration> {
    (wall > mono + RESUME_JUMP).then(|| wall - mono)
}

pub(super) enum Obtain {
    /// Retrying can't help (missing binary, a socket path someone else
    /// uses): exit with the error's code.
    Fatal(Error),
    /// Start failed; back off and try again.
    Failed(String, Option<Running>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wall_clock_jump_is_a_resume() {
        let s = Duration::from_secs;
        assert_eq!(slept(s(5), s(5)), None);
        assert_eq!(slept(s(5), s(7)), None, "NTP-sized drift is not sleep");
        assert_eq!(slept(s(5), s(3605)), Some(s(3600)));
        assert_eq!(slept(s(5), s(0)), None, "the clock set back");
    }
}
