//! An engine held stopped while the supervisor serves: `on_demand`
//! (not started yet), `idle_stop` (stopped as idle), `dockhand down`, or
//! a failure retrying can't fix (held `failed` until `up`/`restart`).

use tracing::{error, info};

use super::Supervisor;
use super::machine::Act;
use crate::control::Held;
use crate::probe;
use crate::state::Phase;

impl Supervisor {
    /// Hold the engine stopped until a start or restart request (true) or
    /// a shutdown (false).
    pub(super) async fn hold(&mut self) -> bool {
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
        match (why, self.failed_why.clone()) {
            (Held::Failed, Some(msg)) => {
                self.set(Phase::Failed, None, &msg);
                self.waiters.resolve(Err(msg));
            }
            _ => {
                self.set(Phase::Stopped, None, &format!("engine {why}"));
                self.waiters.resolve(Err(format!("the engine was {why}")));
            }
        }
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
        self.failed_why = None;
        self.st.held = None;
        self.woken = true;
        true
    }

    /// A failure retrying can't fix (the engine's `fatal`): held `failed`
    /// with `msg` (its fix) until `up` or `restart`; the waiters told.
    pub(super) fn hold_failed(&mut self, msg: String) {
        error!("{msg}");
        self.held = Some(Held::Failed);
        self.failed_why = Some(msg.clone());
        self.waiters.resolve(Err(msg));
    }
}
