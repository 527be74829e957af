//! Stop signals (SIGTERM, SIGINT, SIGHUP; a second one kills the engine)
//! and systemd's notify protocol.

use tokio::sync::watch;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::state::Phase;
use crate::sys;

/// The stop signals' streams, created before anything starts.
pub(super) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn install() -> Result<Signals> {
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
    pub(super) fn watch(mut self) -> watch::Receiver<bool> {
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
pub(super) async fn unless_shutdown<T>(
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

/// Tell systemd (Type=notify) where we are; a no-op elsewhere.
/// `STATUS=<phase>: <reason>` on every transition. `READY=1` once the
/// first start has an outcome: the engine answers (`ready`), or the start
/// failed (`failed`; dockhand goes on retrying with its own backoff, and
/// `dockhand service install` reports the reason). So systemd never times
/// a start out and restarts dockhand over its backoff. See README,
/// "Readiness under systemd".
/// `held`: the engine is held stopped while dockhand serves (on_demand,
/// idle_stop), which systemd must see as a service that is up.
pub(super) fn notify(phase: Phase, reason: &str, held: bool) {
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
