//! `dockhand run`: keep one profile's engine ready.
//!
//! starting ─▶ ready ─(probe fails)─▶ unhealthy ─(fails again)─▶ restarting
//!    │          │                        └─(answers)─▶ ready       │
//!    │          └─(engine exits)──────────────────────────▶ restarting
//!    └─(start fails)─▶ failed ─(backoff)─▶ restarting ─▶ starting
//! any ─(SIGTERM/SIGINT)─▶ stopping ─▶ stopped (exit 0)
//!
//! The rooms: `machine` (the phases, their transitions, the backoff),
//! `steps` (what a phase does: adopt or launch, wait for ready, watch,
//! probe, notice a resume), `held` (an engine held stopped: on_demand,
//! idle_stop, down), `signals` (stop signals and systemd's notify).

pub mod handoff;
mod held;
mod machine;
mod signals;
mod steps;

use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::Profile;
use crate::control::{self, Commands, Control, Held, Request, Waiters};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::state::{self, Phase, State};
use crate::sys;

pub use machine::Backoff;
use signals::Signals;
pub use signals::notify_fatal;

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
async fn supervise(mut profile: Profile, signals: Signals, dir: &'static state::Dir) -> Result<u8> {
    // Colima: its release, asked once per start, decides its directory.
    let notes = crate::engine::colima_version::adapt(&mut profile)?;
    let engine = Engine::new(&profile);
    engine.check()?;
    crate::logging::bound_launchd_log(&profile.log_file);
    crate::logging::init(&profile.log_file)?;
    notes.iter().for_each(|n| tracing::info!("{n}"));
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
        last_error: Some(format!("{e} (exit {}; dockhand exited)", e.exit_code())),
        ..State::new(&p.name, &p.socket, Phase::Failed)
    };
    let _ = state::write(p, &st);
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
    /// Why the engine is held `failed` (`Held::Failed`).
    failed_why: Option<String>,
}

impl Supervisor {
    fn new(
        p: Profile,
        engine: Engine,
        shutdown: watch::Receiver<bool>,
        dir: &'static state::Dir,
    ) -> (Supervisor, Control) {
        let st = State::new(&p.name, &p.socket, Phase::Starting);
        let (control, cmds) = control::channel(st.clone());
        let held = match held::down_marker::in_force() {
            true => Some(Held::Down),
            false => p.on_demand.then_some(Held::OnDemand),
        };
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
            failed_why: None,
        };
        (sup, control)
    }

    /// Write state.json and publish the state to `Control` subscribers.
    pub(super) fn record(&mut self) {
        if let Err(e) = state::write(&self.p, &self.st) {
            error!("{e}");
        }
        self.cmds.state.send_replace(self.st.clone());
    }

    /// The next request; never ends (`Commands` keeps the queue open).
    pub(super) async fn request(cmds: &mut Commands) -> Request {
        match cmds.rx.recv().await {
            Some(r) => r,
            None => std::future::pending().await,
        }
    }

    /// A stop was requested (the signal handler's flag counts at once,
    /// before the runtime has read the signal).
    pub(super) fn stopping(&self) -> bool {
        sys::signals::stop_requested() || *self.shutdown.borrow()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::probe;

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
}
