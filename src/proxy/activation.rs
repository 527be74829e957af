//! Socket activation, the platform seam for the `listen` socket: the
//! service manager binds it at login and hands it over when the first
//! client connects (systemd: `LISTEN_FDS`; launchd: `Sockets` and
//! `launch_activate_socket`). Also: a descriptor limit fit for many
//! clients.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use tokio::net::UnixListener;

use crate::error::{Error, Result};

#[cfg(target_os = "linux")]
#[path = "activation/systemd.rs"]
mod imp;
#[cfg(target_os = "macos")]
#[path = "activation/launchd.rs"]
mod imp;

/// The socket name in the launchd plist's `Sockets` dictionary.
pub const LAUNCHD_SOCKET_NAME: &str = "Listeners";

/// A listening socket for `path` handed to us by the service manager, if
/// any. A handed-over socket bound elsewhere is refused (exit 6): the
/// service definition and the config disagree.
pub fn inherited(path: &Path) -> Result<Option<UnixListener>> {
    let fds = imp::activation_fds()?;
    let mut found = None;
    for fd in fds {
        if found.is_none() && listens_at(&fd, path) {
            found = Some(fd);
        }
        // Others are dropped (closed): we serve one socket.
    }
    let Some(fd) = found else {
        return Ok(None);
    };
    // SAFETY: `fd` is an owned, listening unix stream socket.
    let std_l = unsafe { std::os::unix::net::UnixListener::from_raw_fd(into_raw(fd)) };
    std_l
        .set_nonblocking(true)
        .map_err(|e| Error::io("cannot use the activated socket", e))?;
    tracing::info!("serving {} (socket activation)", path.display());
    UnixListener::from_std(std_l)
        .map(Some)
        .map_err(|e| Error::io("cannot use the activated socket", e))
}

fn into_raw(fd: OwnedFd) -> i32 {
    use std::os::fd::IntoRawFd;
    fd.into_raw_fd()
}

/// `fd` is a listening unix stream socket bound to `path`.
fn listens_at(fd: &OwnedFd, path: &Path) -> bool {
    use rustix::net::sockopt;
    let stream = sockopt::socket_type(fd).is_ok_and(|t| t == rustix::net::SocketType::STREAM);
    let listening = accepts_connections(fd);
    // SAFETY: borrowing a valid fd as a listener only to read its address;
    // ManuallyDrop keeps it from being closed here.
    let l = std::mem::ManuallyDrop::new(unsafe {
        std::os::unix::net::UnixListener::from_raw_fd(fd.as_raw_fd())
    });
    let at = l
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(Path::to_path_buf));
    stream && listening && at.as_deref() == Some(path)
}

/// SO_ACCEPTCONN: the socket is listening (rustix lacks it on macOS).
fn accepts_connections(fd: &OwnedFd) -> bool {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt into an int of the given length on a valid fd.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0 && v != 0
}

/// Raise the soft limit on open files to the hard limit (at most 64 Ki):
/// launchd's default of 256 is too few for many clients plus their engine
/// connections.
pub fn raise_nofile() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    let want = lim.maximum.unwrap_or(65536).min(65536);
    if lim.current.is_some_and(|c| c >= want) {
        return;
    }
    lim.current = Some(want);
    if let Err(e) = setrlimit(Resource::Nofile, lim) {
        tracing::warn!("cannot raise the open-files limit to {want}: {e}");
    }
}
