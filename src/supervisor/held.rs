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
        if why == Held::Down {
            down_marker::set(&self.p);
        }
        self.ack_stops();
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
                    if why == Held::Down {
                        down_marker::set(&self.p);
                    }
                    self.st.held = Some(why);
                    self.set(Phase::Stopped, None, &format!("engine {why}"));
                    self.ack_stops();
                }
                Act::Nothing => {}
            }
        }
        info!("start requested");
        down_marker::clear(&self.p);
        self.held = None;
        self.failed_why = None;
        self.st.held = None;
        self.woken = true;
        true
    }

    /// Tell the `down`s (and idle stops) waiting that the engine is held.
    fn ack_stops(&mut self) {
        self.stop_acks.drain(..).for_each(|a| {
            let _ = a.send(());
        });
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

/// `<state_dir>/held-down`: a `down` outlasts a restart of dockhand (a
/// crash, `service restart`, an activation) until `up` or `restart`, and
/// until the next boot at most (it names the boot; at login after a boot
/// docker works again, as after `down --service`).
pub(super) mod down_marker {
    use crate::config::Profile;
    use crate::state::engine_record::boot_id;

    const NAME: &str = "held-down";

    pub fn set(p: &Profile) {
        let boot = boot_id().unwrap_or_default();
        if let Err(e) = crate::state::write_runtime(&p.state_dir.join(NAME), boot.as_bytes(), 0o600)
        {
            tracing::warn!("{e}: a restart of dockhand would start the engine again");
        }
    }

    pub fn clear(p: &Profile) {
        match crate::state::claimed() {
            Some(d) => d.remove(NAME),
            None => {
                let _ = std::fs::remove_file(p.state_dir.join(NAME));
            }
        }
    }

    /// A `down` of this boot is in force (read from the claimed state dir).
    pub fn in_force() -> bool {
        let Some(d) = crate::state::claimed() else {
            return false;
        };
        match d.read(NAME, 128) {
            Ok(Some(b)) => String::from_utf8_lossy(&b).trim() == boot_id().unwrap_or_default(),
            _ => false,
        }
    }
}
