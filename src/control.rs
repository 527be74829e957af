//! The supervisor's command seam: how tasks running inside `dockhand run`
//! (the on-demand proxy, the control socket server) ask the supervisor to
//! start, stop or restart the engine, and learn what it is doing.
//!
//! # API
//!
//! [`channel`] makes one [`Control`] (cheap to clone, hand one to each
//! task) and the [`Commands`] the supervisor loop reads. With no request
//! ever sent, the supervisor behaves exactly as it does without this seam.
//!
//! - [`Control::start`]`().await` → `Ok(())` once the engine answers
//!   (at once if it is ready), `Err(reason)` when the start attempt fails
//!   (the reason is the supervisor's `last_error`), when the engine is
//!   held stopped again before it came up, or when dockhand shuts down.
//!   While the engine is held stopped ([`Held`]) this releases the hold.
//!   It never times out by itself: callers bound it (the proxy by
//!   `start_timeout`).
//! - [`Control::stop`]`(Held::Down | Held::Idle).await` → stops the engine
//!   gracefully (within `stop_timeout`) and keeps it stopped until the
//!   next `start`/`restart`; resolves once it is stopped. `Down` is the
//!   user's `dockhand down`, `Idle` is the proxy's `idle_stop`. A `Down`
//!   hold is not replaced by a later `Idle` one.
//! - [`Control::restart`]`().await` → stops and starts the engine again
//!   (no backoff); starts it when held. Resolves when the request is taken,
//!   not when the engine is back: follow [`Control::subscribe`] or `start`.
//! - [`Control::subscribe`]`()` → a `watch::Receiver<State>`: the same
//!   [`State`] that `state.json` records, sent on every change. `State::held`
//!   says why a stopped engine stays stopped; `State::awake` what keeps it
//!   running (filled in by the proxy through [`Control::report_awake`]).
//! - [`Control::state`]`()` → the current [`State`] (a clone);
//!   [`Control::engine_up`]`()` → ready (or unhealthy) and not held.
//!
//! Requests go through a bounded queue; a supervisor that has exited makes
//! `start` return `Err`, `stop`/`restart` return at once.

use tokio::sync::{mpsc, oneshot, watch};

pub use crate::state::{Awake, Held, State};

/// A request to the supervisor loop.
#[derive(Debug)]
pub enum Request {
    /// Start the engine (release a hold); answer when ready or failed.
    Start(oneshot::Sender<Result<(), String>>),
    /// Stop the engine and hold it stopped; answer once stopped.
    Stop(Held, oneshot::Sender<()>),
    /// Stop and start again, or start a held engine.
    Restart,
    /// What keeps the engine awake (recorded in state.json when it changes).
    Awake(Option<Awake>),
}

/// The handle tasks hold. Clone it freely.
#[derive(Clone, Debug)]
pub struct Control {
    tx: mpsc::Sender<Request>,
    state: watch::Receiver<State>,
}

/// The supervisor's end: requests to read, and the state to publish.
pub struct Commands {
    pub rx: mpsc::Receiver<Request>,
    pub state: watch::Sender<State>,
    /// Keeps `rx` open while the supervisor runs, even with no handle left.
    _keep: mpsc::Sender<Request>,
}

/// A new seam, publishing `initial` until the supervisor sends more.
pub fn channel(initial: State) -> (Control, Commands) {
    let (tx, rx) = mpsc::channel(64);
    let tx2 = tx.clone();
    let (state_tx, state_rx) = watch::channel(initial);
    (
        Control {
            tx,
            state: state_rx,
        },
        Commands {
            rx,
            state: state_tx,
            _keep: tx2,
        },
    )
}

impl Control {
    /// Start the engine (or wait for the start under way); see the module
    /// documentation.
    pub async fn start(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Request::Start(tx)).await.is_err() {
            return Err("dockhand is stopping".into());
        }
        rx.await
            .unwrap_or_else(|_| Err("dockhand is stopping".into()))
    }

    /// Stop the engine and keep it stopped for `why`; resolves once stopped.
    pub async fn stop(&self, why: Held) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Request::Stop(why, tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Restart the engine (start it when held).
    pub async fn restart(&self) {
        let _ = self.tx.send(Request::Restart).await;
    }

    /// Record what keeps the engine awake; never blocks (dropped when the
    /// queue is full: the next report carries the news).
    pub fn report_awake(&self, awake: Option<Awake>) {
        let _ = self.tx.try_send(Request::Awake(awake));
    }

    /// Follow the supervisor's state.
    pub fn subscribe(&self) -> watch::Receiver<State> {
        self.state.clone()
    }

    /// The supervisor's state now.
    pub fn state(&self) -> State {
        self.state.borrow().clone()
    }

    /// The engine answers and is not held: what the proxy asks of every
    /// request, without copying the state.
    pub fn engine_up(&self) -> bool {
        let s = self.state.borrow();
        matches!(
            s.phase,
            crate::state::Phase::Ready | crate::state::Phase::Unhealthy
        ) && s.held.is_none()
    }
}

/// Start requests waiting for the engine's next outcome.
#[derive(Default)]
pub struct Waiters(Vec<oneshot::Sender<Result<(), String>>>);

impl Waiters {
    pub fn push(&mut self, w: oneshot::Sender<Result<(), String>>) {
        self.0.push(w);
    }
    /// Answer every waiter with `res`.
    pub fn resolve(&mut self, res: Result<(), String>) {
        for w in self.0.drain(..) {
            let _ = w.send(res.clone());
        }
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Phase;

    fn state() -> State {
        State::new("t", std::path::Path::new("/x"), Phase::Starting)
    }

    #[tokio::test]
    async fn start_resolves_with_the_supervisors_answer() {
        let (c, mut cmds) = channel(state());
        let t = tokio::spawn(async move { c.start().await });
        let Some(Request::Start(w)) = cmds.rx.recv().await else {
            panic!("expected a start request")
        };
        let mut ws = Waiters::default();
        ws.push(w);
        ws.resolve(Err("no".into()));
        assert_eq!(t.await.unwrap(), Err("no".into()));
    }

    #[tokio::test]
    async fn a_gone_supervisor_fails_start_and_returns_stop() {
        let (c, cmds) = channel(state());
        drop(cmds);
        assert!(c.start().await.is_err());
        c.stop(Held::Down).await;
        c.restart().await;
    }

    #[test]
    fn a_held_status_is_recognised_and_nothing_else() {
        // What supervisor::set sends for a held engine: "<phase>: engine <held>".
        let sent = |h: Held| format!("{}: engine {h}", Phase::Stopped);
        assert!(Held::in_status(&sent(Held::OnDemand)));
        assert!(Held::in_status(&sent(Held::Idle)));
        assert!(!Held::in_status("stopped: engine stopped"));
        assert!(!Held::in_status(
            "failed: engine not started yet (on_demand)"
        ));
    }

    #[tokio::test]
    async fn subscribers_see_state_changes() {
        let (c, cmds) = channel(state());
        let mut rx = c.subscribe();
        cmds.state.send_modify(|s| s.held = Some(Held::Idle));
        rx.changed().await.unwrap();
        assert_eq!(rx.borrow().held, Some(Held::Idle));
        assert_eq!(c.state().held, Some(Held::Idle));
    }
}
