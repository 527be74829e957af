//! How `dockhand run` ends under a service manager: the reason told to
//! the manager, and an exit code that doesn't make it respawn dockhand
//! forever.

use crate::error::Error;

/// Set in the launchd agent's environment: the supervisor runs as a job
/// whose `KeepAlive` can't exclude exit codes.
pub use crate::logging::SUPERVISED_BY_ENV;

/// `dockhand run` ended with `e`: tell the service manager, and choose the
/// exit code. Under systemd the reason goes into `STATUS=` and the code
/// stays (RestartPreventExitStatus=2 3 4 6 keeps it stopped). Under launchd
/// (`KeepAlive = { SuccessfulExit = false; }`, which would respawn a
/// non-zero exit every ThrottleInterval forever, launchd.plist(5)) an
/// error a retry can't fix exits 0 after saying so: the job stays stopped
/// until `dockhand service restart` (or a login) starts it again.
pub fn run_failed(e: &Error) -> u8 {
    crate::supervisor::notify_fatal(&e.to_string());
    let code = e.exit_code();
    let launchd = std::env::var(SUPERVISED_BY_ENV).is_ok_and(|v| v == "launchd");
    if launchd && matches!(code, 2 | 3 | 4 | 6) {
        eprintln!(
            "dockhand (launchd): exiting 0, not {code}, so that launchd doesn't respawn dockhand every {}s; fix the cause, then run `dockhand service restart`",
            super::launchd::THROTTLE_INTERVAL
        );
        return 0;
    }
    code
}
