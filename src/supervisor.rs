//! `dockhand run`: keep one profile's engine ready.
//!
//! starting ─▶ ready ─(probe fails)─▶ unhealthy ─(fails again)─▶ restarting
//!    │          │                        └─(answers)─▶ ready       │
//!    │          └─(engine exits)──────────────────────────▶ restarting
//!    └─(start fails)─▶ failed ─(backoff)─▶ restarting ─▶ starting
//! any ─(SIGTERM/SIGINT)─▶ stopping ─▶ stopped (exit 0)

use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until};
use tracing::{error, info, warn};

use crate::config::Profile;
use crate::control::{self, Commands, Control, Held, Request, Waiters};
use crate::engine::{Engine, Running};
use crate::error::{Error, Result};
use crate::probe;
use crate::state::{self, Phase, State};
use crate::sys;

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
/// How often the wall clock is compared with the monotonic clock to
/// notice a resume from sleep (cheap: two clock reads).
const CLOCK_CHECK: Duration = Duration::from_secs(5);
/// A wall-clock lead over the monotonic clock beyond this is a resume.
const RESUME_JUMP: Duration = Duration::from_secs(3);
/// After a resume the VM's forward often needs a few seconds (Lima's ssh
/// reconnects: lima #5420, colima #1033): failed probes are retried every
/// RESUME_RETRY for this long before a restart kills every container.
const RESUME_GRACE: Duration = Duration::from_secs(60);
const RESUME_RETRY: Duration = Duration::from_secs(3);

pub fn run(profile: Profile) -> Result<u8> {
    // Signals first: from here on SIGTERM, SIGINT and SIGHUP are stop
    // requests, held until their handlers are in place, never a death that
    // leaves an engine behind.
    let blocked = sys::signals::block();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the async runtime", e))?;
    rt.block_on(async {
        let signals = Signals::install()?;
        drop(blocked);
        let dir = state::claim(&profile)?;
        let p = profile.clone();
        let res = supervise(profile, signals, dir).await;
        if let Err(e) = &res {
            record_fatal(&p, dir, e);
        }
        res
    })
}

/// `run` once the state dir is ours.
async fn supervise(profile: Profile, signals: Signals, dir: &'static state::Dir) -> Result<u8> {
    let engine = Engine::new(&profile);
    engine.check()?;
    crate::service::launchd::bound_log(&profile.log_file);
    crate::logging::init(&profile.log_file)?;
    sys::become_subreaper();
    sys::reaper::start().map_err(|e| Error::io("cannot watch child processes", e))?;
    crate::engine::guard_engine_log(dir);
    let (sup, control) = Supervisor::new(profile, engine, signals.watch(), dir);
    serve(&sup.p, &control).await?;
    let p = sup.p.clone();
    let res = sup.run().await;
    crate::control_socket::remove(&p);
    res
}

/// A fatal error after the state dir was claimed (so writing in it is
/// safe): `state.json` says `failed` with the reason, unless the loop
/// already wrote it, so that `status` shows it after the process is gone
/// (under launchd the exit code can't: a fatal error exits 0, see
/// `service::run_failed`). Nothing is written once the dir isn't ours.
fn record_fatal(p: &Profile, dir: &state::Dir, e: &Error) {
    if dir.still_ours().is_err() {
        return;
    }
    let me = std::process::id();
    if let Ok(Some(s)) = state::read(p)
        && s.phase == Phase::Failed
        && s.supervisor_pid == me
    {
        return;
    }
    let st = State {
        adopted: false,
        profile: p.name.clone(),
        phase: Phase::Failed,
        engine_pid: None,
        socket: p.socket.clone(),
        restarts: 0,
        last_error: Some(format!("{e} (exit {}; dockhand exited)", e.exit_code())),
        since: state::now_rfc3339(),
        supervisor_pid: me,
        held: None,
        awake: None,
        dockhand_trouble: None,
    };
    let _ = state::write(p, &st);
}

/// The stop signals' streams, created before anything starts.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let err = |e| Error::io("cannot handle signals", e);
        sys::signals::install_flag().map_err(err)?;
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(err)?,
            int: signal(SignalKind::interrupt()).map_err(err)?,
            hup: signal(SignalKind::hangup()).map_err(err)?,
        })
    }

    /// The first stop signal sets the channel; a second SIGTERM or SIGINT
    /// kills the engine at once. SIGHUP (the terminal of a foreground
    /// `run` closed) stops as SIGTERM does; more of them change nothing.
    fn watch(mut self) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
                _ = self.hup.recv() => "SIGHUP (terminal closed?)",
            };
            info!(
                "{name} received: stopping (a second SIGTERM or Ctrl-C kills the engine at once)"
            );
            let _ = tx.send(true);
            loop {
                let name = tokio::select! {
                    _ = self.term.recv() => "SIGTERM",
                    _ = self.int.recv() => "SIGINT",
                    _ = self.hup.recv() => continue,
                };
                let n = crate::engine::force_stop();
                warn!("second {name}: stopping now (killed the process groups of {n} child(ren))");
            }
        });
        rx
    }
}

/// `fut`, unless a stop is requested first (then None).
async fn unless_shutdown<T>(
    shutdown: &watch::Receiver<bool>,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    if sys::signals::stop_requested() || *shutdown.borrow() {
        return None;
    }
    let mut rx = shutdown.clone();
    tokio::select! {
        biased;
        _ = rx.wait_for(|v| *v) => None,
        v = fut => Some(v),
    }
}

/// Start the tasks that talk to the supervisor through `control` (the
/// on-demand proxy, the control socket): each binds what it serves here,
/// so a path conflict ends `run` before the engine starts.
async fn serve(p: &Profile, control: &Control) -> Result<()> {
    crate::control_socket::serve(p, control.clone()).await?;
    if let Some(listen) = &p.listen {
        crate::proxy::spawn(p, control.clone(), crate::proxy::listen::bind(listen)?);
        if p.docker_context {
            let p = p.clone();
            tokio::spawn(async move {
                match crate::context::ensure(&p).await {
                    Ok(note) => info!("{note}"),
                    Err(e) => warn!("cannot keep the docker context: {e}"),
                }
            });
        }
    }
    Ok(())
}

struct Supervisor {
    p: Profile,
    engine: Engine,
    st: State,
    shutdown: watch::Receiver<bool>,
    /// Requests from `Control` handles; the state published to them.
    cmds: Commands,
    /// Why the engine is to be held stopped (see `control`).
    held: Option<Held>,
    /// Start requests waiting for the engine's next outcome.
    waiters: Waiters,
    /// Stop requests waiting for the engine to be stopped.
    stop_acks: Vec<tokio::sync::oneshot::Sender<()>>,
    /// The next start was requested (a held engine released).
    woken: bool,
    /// The claimed state directory.
    dir: &'static state::Dir,
}

/// Why the ready phase ended.
enum Exit {
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
enum Next {
    Again,
    Stop(Option<Running>),
}

/// What a request means for the phase the supervisor is in.
enum Act {
    Nothing,
    Start,
    Hold,
    Restart,
}

impl Supervisor {
    fn new(
        p: Profile,
        engine: Engine,
        shutdown: watch::Receiver<bool>,
        dir: &'static state::Dir,
    ) -> (Supervisor, Control) {
        let st = State {
            adopted: false,
            profile: p.name.clone(),
            phase: Phase::Starting,
            engine_pid: None,
            socket: p.socket.clone(),
            restarts: 0,
            last_error: None,
            since: state::now_rfc3339(),
            supervisor_pid: std::process::id(),
            held: None,
            awake: None,
            dockhand_trouble: None,
        };
        let (control, cmds) = control::channel(st.clone());
        let held = p.on_demand.then_some(Held::OnDemand);
        let sup = Supervisor {
            p,
            engine,
            st,
            shutdown,
            cmds,
            held,
            waiters: Waiters::default(),
            stop_acks: Vec::new(),
            woken: false,
            dir,
        };
        (sup, control)
    }

    /// Take a request: record it, and say what it asks of the current phase.
    fn take(&mut self, req: Request) -> Act {
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

    /// Write state.json and publish the state to `Control` subscribers.
    fn record(&mut self) {
        if let Err(e) = state::write(&self.p, &self.st) {
            error!("{e}");
        }
        self.cmds.state.send_replace(self.st.clone());
    }

    /// The next request; never ends (`Commands` keeps the queue open).
    async fn request(cmds: &mut Commands) -> Request {
        match cmds.rx.recv().await {
            Some(r) => r,
            None => std::future::pending().await,
        }
    }

    /// Hold the engine stopped until a start or restart request (true) or
    /// a shutdown (false).
    async fn hold(&mut self) -> bool {
        let Some(why) = self.held else { return true };
        if why == Held::OnDemand
            && probe::ping(&self.p.socket, self.p.probe_timeout)
                .await
                .is_ok()
        {
            info!(
                "on_demand: the engine already answers: adopting it rather than holding it stopped"
            );
            self.held = None;
            return true;
        }
        self.st.held = Some(why);
        self.st.awake = None;
        self.set(Phase::Stopped, None, &format!("engine {why}"));
        self.waiters.resolve(Err(format!("the engine was {why}")));
        self.stop_acks.drain(..).for_each(|a| {
            let _ = a.send(());
        });
        let mut shutdown = self.shutdown.clone();
        loop {
            let req = tokio::select! {
                req = Self::request(&mut self.cmds) => req,
                _ = shutdown.wait_for(|v| *v) => return false,
            };
            match self.take(req) {
                Act::Start | Act::Restart => break,
                Act::Hold => {
                    let why = self.held.unwrap_or(why);
                    self.st.held = Some(why);
                    self.set(Phase::Stopped, None, &format!("engine {why}"));
                    self.stop_acks.drain(..).for_each(|a| {
                        let _ = a.send(());
                    });
                }
                Act::Nothing => {}
            }
        }
        info!("start requested");
        self.held = None;
        self.st.held = None;
        self.woken = true;
        true
    }

    /// A stop was requested (the signal handler's flag counts at once,
    /// before the runtime has read the signal).
    fn stopping(&self) -> bool {
        sys::signals::stop_requested() || *self.shutdown.borrow()
    }

    /// Enter `phase`, record it atomically, log the reason.
    fn set(&mut self, phase: Phase, pid: Option<i32>, reason: &str) {
        let quoted = state::bounded(reason);
        let reason = quoted.as_str();
        let changed = self.st.phase != phase || self.st.engine_pid != pid;
        self.st.phase = phase;
        self.st.engine_pid = pid;
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

    async fn run(mut self) -> Result<u8> {
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
                    self.waiters.resolve(Err(why.clone()));
                    // A failed start always waits: at least a second.
                    let delay = backoff.next_delay().max(Duration::from_secs(1));
                    if !self.recover(&why, r, delay).await {
                        break None;
                    }
                    first = false;
                    continue;
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

    /// `ready`: how the engine came to answer, and the waiters told.
    fn ready(&mut self, r: &Running) {
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
    fn fail(&mut self, e: Error) -> Error {
        self.set(Phase::Failed, None, &e.to_string());
        self.waiters.resolve(Err(e.to_string()));
        e
    }

    /// What follows the end of `watch`: a restart (after the backoff), a
    /// hold, or the end of the loop (with the engine still to stop).
    async fn after(
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
                crate::service::handoff::forget_spec(&self.p);
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
    async fn finish(&mut self, mut running: Option<Running>) -> Result<u8> {
        self.waiters.resolve(Err("dockhand is stopping".into()));
        if running.is_some()
            && let Some(why) = crate::service::handoff::keep_engine(&self.p).await
        {
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
        crate::service::handoff::forget_spec(&self.p);
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
    async fn recover(&mut self, why: &str, r: Option<Running>, delay: Duration) -> bool {
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
    async fn pause(&mut self, d: Duration) -> bool {
        if d.is_zero() || self.stopping() {
            return !self.stopping();
        }
        let end = Instant::now() + d;
        let mut shutdown = self.shutdown.clone();
        loop {
            let req = tokio::select! {
                _ = sleep_until(end) => return true,
                _ = shutdown.wait_for(|v| *v) => return false,
                req = Self::request(&mut self.cmds) => req,
            };
            // A start waits for the next attempt; a stop or restart ends
            // the wait (the loop then holds, or starts at once).
            match self.take(req) {
                Act::Hold | Act::Restart => return true,
                Act::Start | Act::Nothing => {}
            }
        }
    }

    async fn obtain(&mut self, first: bool) -> Result<Option<Running>, Obtain> {
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
            match crate::service::handoff::settings_changed(&self.p) {
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
    async fn launch(&mut self) -> Result<Option<Running>, Obtain> {
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
        if let Err(e) = crate::service::handoff::record_spec(&self.p) {
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
    async fn await_ready(&mut self, r: &mut Running) -> Option<Result<(), String>> {
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

    async fn watch(&mut self, r: &mut Running) -> Exit {
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
    fn check_clock(&self, clock: &mut (Instant, SystemTime)) -> Option<Instant> {
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
    /// up: then retry for a while.
    async fn probe(
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
        self.set(Phase::Unhealthy, r.pid, &format!("probe failed: {first}"));
        let grace_end = resumed.map(|t| t + RESUME_GRACE);
        loop {
            let p = racing(r, shutdown, probe::ping(&self.p.socket, timeout)).await?;
            if self.own_trouble(&p) {
                return Ok(true); // can't tell: the next probe asks again
            }
            if p.is_ok() {
                self.set(Phase::Ready, r.pid, "probe answers again");
                return Ok(false);
            }
            if grace_end.is_none_or(|end| Instant::now() + RESUME_RETRY >= end) {
                return Err(Exit::Restart(format!("engine does not answer: {p}")));
            }
            info!(
                "probe failed again ({p}) shortly after a resume: retrying in {}s",
                RESUME_RETRY.as_secs()
            );
            racing(r, shutdown, sleep(RESUME_RETRY)).await?;
        }
    }
}

impl Supervisor {
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

/// `fut`, unless the engine exits or a shutdown comes first.
async fn racing<T>(
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
fn slept(mono: Duration, wall: Duration) -> Option<Duration> {
    (wall > mono + RESUME_JUMP).then(|| wall - mono)
}

enum Obtain {
    /// Retrying can't help (missing binary, a socket path someone else
    /// uses): exit with the error's code.
    Fatal(Error),
    /// Start failed; back off and try again.
    Failed(String, Option<Running>),
}

/// Tell systemd (Type=notify) where we are; a no-op elsewhere.
/// `STATUS=<phase>: <reason>` on every transition. `READY=1` once the
/// first start has an outcome: the engine answers (`ready`), or the start
/// failed (`failed`; dockhand goes on retrying with its own backoff, and
/// `dockhand service install` reports the reason). So systemd never times
/// a start out and restarts dockhand over its backoff. See README,
/// "Readiness under systemd".
/// `held`: the engine is held stopped while dockhand serves (on_demand,
/// idle_stop), which systemd must see as a service that is up.
fn notify(phase: Phase, reason: &str, held: bool) {
    use sd_notify::NotifyState;
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let status = format!("{phase}: {reason}");
    let mut states = vec![NotifyState::Status(&status)];
    match phase {
        Phase::Ready | Phase::Failed => states.push(NotifyState::Ready),
        Phase::Stopped if held => states.push(NotifyState::Ready),
        Phase::Stopping => states.push(NotifyState::Stopping),
        _ => {}
    }
    let _ = sd_notify::notify(false, &states);
}

/// A fatal error ends `dockhand run` (exit 2, 3, 4, 6): `STATUS=failed:
/// <reason>` (no READY=1), so `systemctl --user status` shows it without
/// the journal.
pub fn notify_fatal(reason: &str) {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        let status = format!("{}: {reason}", Phase::Failed);
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(&status)]);
    }
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

    /// The seam end to end with a stand-in engine (the ping-server
    /// fixture): held stopped at first (on_demand), started on request,
    /// held again by a stop, started by a restart, answered on shutdown.
    #[test]
    fn control_requests_drive_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let server = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/engine/ping-server"
        );
        let text = format!(
            "[profiles.default]\nstate_dir = {sd:?}\nsocket = {so:?}\nlisten = {li:?}\non_demand = true\nstop_timeout = \"5s\"\n[profiles.default.command]\nargv = [{server:?}, {so:?}]\n",
            sd = d.join("st").display().to_string(),
            so = d.join("e.sock").display().to_string(),
            li = d.join("l.sock").display().to_string(),
        );
        let env = crate::config::Env::bare(d.to_path_buf());
        let cfg = crate::config::Config::parse(
            crate::config::Source::Explicit(d.join("c.toml")),
            env,
            text,
        )
        .unwrap();
        let p = cfg.profile("default").unwrap();
        let dir = state::claim(&p).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let signals = Signals::install().unwrap();
            sys::reaper::start().unwrap();
            let engine = Engine::new(&p);
            let (sup, c) = Supervisor::new(p.clone(), engine, signals.watch(), dir);
            let task = tokio::spawn(sup.run());
            let mut rx = c.subscribe();
            let phase = |rx: &mut watch::Receiver<State>, ph: Phase, held: Option<Held>| {
                let mut rx = rx.clone();
                async move {
                    tokio::time::timeout(
                        Duration::from_secs(20),
                        rx.wait_for(|s| s.phase == ph && s.held == held),
                    )
                    .await
                    .expect("state in time")
                    .unwrap()
                    .clone()
                }
            };
            phase(&mut rx, Phase::Stopped, Some(Held::OnDemand)).await;
            assert!(!probe::ping(&p.socket, Duration::from_secs(1)).await.is_ok());
            assert_eq!(c.start().await, Ok(()));
            assert!(probe::ping(&p.socket, Duration::from_secs(2)).await.is_ok());
            assert_eq!(c.state().phase, Phase::Ready);
            assert_eq!(c.start().await, Ok(()), "ready: answered at once");
            c.stop(Held::Idle).await;
            let s = phase(&mut rx, Phase::Stopped, Some(Held::Idle)).await;
            assert_eq!(s.engine_pid, None);
            assert!(!probe::ping(&p.socket, Duration::from_secs(1)).await.is_ok());
            c.stop(Held::Down).await;
            phase(&mut rx, Phase::Stopped, Some(Held::Down)).await;
            c.stop(Held::Idle).await;
            assert_eq!(c.state().held, Some(Held::Down), "down outlasts idle");
            c.restart().await;
            let first = phase(&mut rx, Phase::Ready, None).await.engine_pid;
            c.restart().await;
            let mut rx2 = c.subscribe();
            tokio::time::timeout(
                Duration::from_secs(20),
                rx2.wait_for(|s| s.phase == Phase::Ready && s.engine_pid != first),
            )
            .await
            .expect("a new engine")
            .unwrap();
            let on_disk = state::read(&p).unwrap().unwrap();
            assert_eq!(on_disk.phase, Phase::Ready);
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::TERM)
                .ok();
            let code = tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("supervisor exits")
                .unwrap()
                .unwrap();
            assert_eq!(code, 0);
            assert!(c.start().await.is_err(), "no supervisor: start fails");
        });
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(10));
        let seq: Vec<u64> = (0..7).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(seq, [0, 1, 2, 4, 8, 10, 10]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::ZERO);
    }
}
