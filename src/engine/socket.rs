//! The engine's socket: waiting for it to answer, and removing one that
//! nobody serves (never one someone else serves).

use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use super::{Running, stop_proc};
use crate::error::Result;
use crate::probe::{self, Ping};
use crate::sys;

/// Poll `/_ping` until it answers 200, the child exits, or the deadline.
pub async fn ping_until(
    socket: &Path,
    r: &mut Running,
    deadline: Instant,
    what: &str,
) -> Result<(), String> {
    let mut step = Duration::from_millis(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let last = probe::ping(socket, Duration::from_millis(500)).await;
            return Err(format!(
                "{what} did not answer on {} in time ({last})",
                socket.display()
            ));
        }
        if probe::ping(socket, left.min(Duration::from_secs(2))).await == Ping::Ok {
            return Ok(());
        }
        tokio::select! {
            why = r.exited() => return Err(format!("{what} {why} before it answered on {}", socket.display())),
            _ = tokio::time::sleep(step) => {}
        }
        step = (step * 2).min(Duration::from_millis(200));
    }
}

/// Like [`remove_dead_socket`], but a socket still served by a process
/// that `ours` recognises (Lima's ssh ControlMaster after a forced stop,
/// identified by the socket's peer credentials) is waited for, up to
/// `grace`; then that process is stopped and the socket removed. Anyone
/// else's socket stays an error.
pub async fn remove_dead_socket_or(
    socket: &Path,
    grace: Duration,
    what: &str,
    ours: impl Fn(&sys::ProcInfo) -> bool,
) -> Result<Option<String>> {
    let deadline = Instant::now() + grace;
    let mut held = None;
    loop {
        if matches!(
            probe::ping(socket, Duration::from_secs(2)).await,
            Ping::Refused | Ping::NoSocket
        ) {
            break;
        }
        let Some(holder) = sys::socket_holder(socket).filter(|i| !i.zombie && ours(i)) else {
            break; // someone else (or nobody now): remove_dead_socket decides
        };
        if held.is_none() {
            tracing::info!(
                "{} is still held by {what} (pid {}): waiting up to {} for it to go",
                socket.display(),
                holder.pid,
                humantime::format_duration(grace)
            );
        }
        held = Some(holder.pid);
        if Instant::now() >= deadline {
            if let Some(p) = sys::Proc::open(holder.pid, &ours) {
                tracing::warn!(
                    "{what} (pid {}) still holds {}: stopping it",
                    p.pid(),
                    socket.display()
                );
                stop_proc(&p, Duration::from_secs(5), false).await;
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let note = remove_dead_socket(socket).await?;
    Ok(match held {
        Some(pid) => Some(format!(
            "{} was held by {what} (pid {pid}) after the stop; it is free now",
            socket.display()
        )),
        None => note,
    })
}

/// Remove a socket file that nobody serves; leave anything else alone.
pub async fn remove_dead_socket(socket: &Path) -> Result<Option<String>> {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::symlink_metadata(socket) else {
        return Ok(None);
    };
    let uid = rustix::process::geteuid().as_raw();
    if md.file_type().is_socket() && md.uid() != uid {
        return Err(crate::error::Error::UnsafePath(format!(
            "{} belongs to uid {}, not to you: dockhand will not remove or replace it; set another socket path",
            socket.display(),
            md.uid()
        )));
    }
    if !md.file_type().is_socket() {
        return Err(crate::error::Error::UnsafePath(format!(
            "{} exists and is not a socket: dockhand will not replace it; move it away or set another socket path",
            socket.display()
        )));
    }
    match probe::ping(socket, Duration::from_secs(2)).await {
        Ping::Refused => {
            let _ = std::fs::remove_file(socket);
            Ok(Some(format!("removed dead socket {}", socket.display())))
        }
        Ping::NoSocket => Ok(None),
        Ping::NoFds(e) => Err(crate::error::Error::io(
            format!(
                "cannot check {}: dockhand is out of file descriptors",
                socket.display()
            ),
            std::io::Error::other(e),
        )),
        other => Err(crate::error::Error::UnsafePath(format!(
            "{} is in use by another program ({other}): dockhand will not take it over; stop that program or set another socket path",
            socket.display()
        ))),
    }
}
