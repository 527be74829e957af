//! Stopping what an engine runs: a process group we created, a verified
//! process that is not our child, the orphans it left below dockhand,
//! and a forced stop (a second Ctrl-C) that cuts every grace short.

use std::time::Duration;

use tokio::time::Instant;

use crate::sys::{self, reaper::Child};

/// Stop a process group we created: SIGTERM (and SIGCONT, so a stopped
/// process can act on it), wait up to `timeout`, then SIGKILL; returns
/// when the group is gone and the leader reaped.
pub async fn stop_group(child: &mut Child, timeout: Duration) {
    let pgid = child.pid;
    sys::signal_group(pgid, sys::Signal::TERM);
    sys::signal_group(pgid, sys::Signal::CONT);
    if !within_grace(child.wait(), timeout).await {
        tracing::warn!("killing process group {pgid}");
    }
    // Whatever is left of the group (the leader exited, helpers didn't).
    sys::signal_group(pgid, sys::Signal::KILL);
    if tokio::time::timeout(KILL_GRACE, child.wait())
        .await
        .is_err()
    {
        // Stuck in the kernel (a hung mount): nothing more to do but say so.
        tracing::error!("process {pgid} survives SIGKILL (stuck in the kernel?): giving up on it");
    }
    sys::reaper::reap();
    let deadline = Instant::now() + Duration::from_secs(5);
    sys::poll_until(deadline, || {
        sys::reaper::reap();
        !sys::group_exists(pgid)
    })
    .await;
}

static FORCE: std::sync::LazyLock<tokio::sync::watch::Sender<bool>> =
    std::sync::LazyLock::new(|| tokio::sync::watch::channel(false).0);

/// Stop now, without waiting out the grace periods (a second Ctrl-C):
/// our children's process groups are killed, and graceful waits end.
pub fn force_stop() -> usize {
    FORCE.send_replace(true);
    sys::reaper::kill_all_children()
}

pub(crate) fn forced() -> bool {
    *FORCE.borrow()
}

/// Wait for `done` up to `timeout`, or until a forced stop; true if it
/// finished in time.
async fn within_grace(done: impl std::future::Future, timeout: Duration) -> bool {
    let mut force = FORCE.subscribe();
    tokio::select! {
        _ = done => true,
        _ = tokio::time::sleep(timeout) => {
            tracing::warn!("did not stop within {}", humantime::format_duration(timeout));
            false
        }
        _ = force.wait_for(|v| *v) => false,
    }
}

/// How long a SIGKILLed process may take to go (a process stuck in the
/// kernel may never): waits after SIGKILL are bounded by this.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// Stop a verified process that is not our child (an adopted engine).
/// With `group` (dockhand started it, in a group of its own, as our record
/// shows), the whole group is stopped as thoroughly as a child's: SIGTERM
/// and SIGCONT to the group, SIGKILL to what remains after `timeout`, and
/// the group waited for. The group is signalled only while the verified
/// leader lives, or while members keep its id in use.
pub async fn stop_proc(p: &sys::Proc, timeout: Duration, group: bool) {
    let group = group && p.alive() && p.leads_group();
    let pgid = p.pid();
    for sig in [sys::Signal::TERM, sys::Signal::CONT] {
        p.signal(sig);
        if group {
            sys::signal_group(pgid, sig);
        }
    }
    let gone = async {
        p.exited().await;
        if group {
            let deadline = Instant::now() + timeout;
            sys::poll_until(deadline, || !sys::group_exists(pgid)).await;
        }
    };
    if !within_grace(gone, timeout).await || (group && sys::group_exists(pgid)) {
        tracing::warn!("killing process {}", p.pid());
        if group && sys::group_exists(pgid) {
            sys::signal_group(pgid, sys::Signal::KILL);
        }
        p.signal(sys::Signal::KILL);
        if tokio::time::timeout(KILL_GRACE, p.exited()).await.is_err() {
            tracing::error!(
                "process {} survives SIGKILL (stuck in the kernel?): giving up on it",
                p.pid()
            );
        }
        if group {
            let deadline = Instant::now() + KILL_GRACE;
            sys::poll_until(deadline, || !sys::group_exists(pgid)).await;
        }
    }
    sys::reaper::reap();
}

/// Stop every process the engine left running below dockhand (on Linux,
/// dockhand is the subreaper of all its engine forks: a daemonized
/// process, a wrapper's background child, container shims come back to
/// it as its own children, so they are known to be ours): SIGTERM, up to
/// `timeout` to go, then SIGKILL to each and its group. Returns how many
/// there were. Call it once the engine's own process is reaped.
pub async fn stop_orphans(timeout: Duration) -> usize {
    stop_orphans_with(timeout, || {
        sys::reaper::reap();
        sys::orphans()
    })
    .await
}

/// How many scans in a row must find nothing before the set is final,
/// once some orphan was seen.
const EMPTY_SCANS_AFTER_ORPHANS: u32 = 3;

/// [`stop_orphans`] over `scan` (the live orphans now).
///
/// On Linux dockhand is the subreaper and the engine is already reaped:
/// every live descendant of it has been re-parented to dockhand by the
/// time its parent exited (the kernel re-parents before the parent turns
/// zombie), so a first scan that finds nothing is final and costs one
/// scan. Only when orphans were seen can one of them be forking as we
/// look (a daemon's double fork in flight: its child comes to us only
/// when it exits), so then the set is done when it stayed empty over a
/// few scans. On macOS there is no subreaper: orphans go to launchd,
/// `sys::orphans` is always empty there, and this returns at once; the
/// engine's process group kill in `stop_group` is all there is.
async fn stop_orphans_with(timeout: Duration, mut scan: impl FnMut() -> Vec<i32>) -> usize {
    let mut seen = std::collections::BTreeSet::new();
    let term = Instant::now() + timeout;
    let deadline = term + KILL_GRACE;
    let mut empty_scans = 0;
    sys::poll_until(deadline, || {
        let left = scan();
        empty_scans = if left.is_empty() { empty_scans + 1 } else { 0 };
        for pid in &left {
            if seen.insert(*pid) {
                tracing::info!(
                    "stopping pid {pid}, which the engine left running in the background"
                );
                sys::signal(*pid, sys::Signal::TERM);
                sys::signal(*pid, sys::Signal::CONT);
            } else if forced() || Instant::now() >= term {
                // Our unreaped child: its pid can't name another process.
                sys::kill_child_tree(*pid);
            }
        }
        match seen.is_empty() {
            true => empty_scans >= 1,
            false => empty_scans >= EMPTY_SCANS_AFTER_ORPHANS,
        }
    })
    .await;
    seen.len()
}

#[cfg(test)]
mod orphan_tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn no_orphan_at_the_first_scan_is_final() {
        let mut scans = 0;
        let n = stop_orphans_with(Duration::from_secs(5), || {
            scans += 1;
            Vec::new()
        })
        .await;
        assert_eq!((n, scans), (0, 1), "one empty scan must end it");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn orphans_seen_need_the_set_to_stay_empty() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let mut scans = 0;
        let n = stop_orphans_with(Duration::from_secs(5), || {
            scans += 1;
            if scans == 1 { vec![pid] } else { Vec::new() }
        })
        .await;
        let status = child.wait().unwrap();
        assert_eq!(n, 1);
        assert_eq!(scans, 1 + EMPTY_SCANS_AFTER_ORPHANS);
        assert!(!status.success(), "the orphan got SIGTERM");
    }
}
