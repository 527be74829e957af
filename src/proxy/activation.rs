//! Socket activation, the platform seam for the `listen` socket: the
//! service manager binds it at login and hands it over when the first
//! client connects (systemd: `LISTEN_FDS`; launchd: `Sockets` and
//! `launch_activate_socket`). Also: a descriptor limit fit for many
//! clients.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
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

/// What the service manager handed over, taken at process start (see
/// `take_at_start`), and the warnings about what was ignored (logging
/// starts later).
type Taken = Option<(Vec<OwnedFd>, Vec<String>)>;
static TAKEN: std::sync::Mutex<Taken> = std::sync::Mutex::new(None);
static IGNORED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Take the activation descriptors first thing in `main`, before dockhand
/// opens any of its own (as sd_listen_fds(3) expects): a descriptor
/// number named by `LISTEN_FDS` later may be one of ours. Only listening
/// unix stream sockets are taken; anything else is left alone, with a
/// warning once logging runs.
pub fn take_at_start() {
    let fds = imp::activation_fds().unwrap_or_default();
    let warnings = std::mem::take(&mut *IGNORED.lock().unwrap_or_else(|e| e.into_inner()));
    *TAKEN.lock().unwrap_or_else(|e| e.into_inner()) = Some((fds, warnings));
}

/// Note an inherited descriptor that is not taken.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))] // LISTEN_FDS only
fn ignored(fd: i32, why: &str) {
    IGNORED.lock().unwrap_or_else(|e| e.into_inner()).push(format!(
        "socket activation: ignoring descriptor {fd}: {why} (a listening unix stream socket was expected)"
    ));
}

/// A listening socket for `path` handed to us by the service manager, if
/// any (taken at start by `take_at_start`). Other handed-over sockets are
/// closed: we serve one.
pub fn inherited(path: &Path) -> Result<Option<UnixListener>> {
    let (fds, warnings) = TAKEN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default();
    for w in warnings {
        tracing::warn!("{w}");
    }
    let mut found = None;
    for fd in fds {
        if found.is_none() && bound_at(&fd, path) {
            found = Some(fd);
        } else {
            tracing::warn!(
                "socket activation: a socket not bound to {} was handed over: closed",
                path.display()
            );
        }
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

/// `fd` is a listening unix stream socket, or why not.
fn listening_unix_stream(fd: BorrowedFd<'_>) -> std::result::Result<(), String> {
    use rustix::net::sockopt;
    match sockopt::socket_type(fd) {
        Ok(t) if t == rustix::net::SocketType::STREAM => {}
        Ok(_) => return Err("it is not a stream socket".into()),
        Err(e) => return Err(format!("it is not a socket ({e})")),
    }
    // SAFETY: getsockname into storage of the given size on a valid fd.
    let family = unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let rc = libc::getsockname(
            fd.as_raw_fd(),
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        );
        if rc != 0 { -1 } else { ss.ss_family as i32 }
    };
    if family != libc::AF_UNIX {
        return Err("it is not a unix socket".into());
    }
    if !accepts_connections(fd) {
        return Err("it is not listening".into());
    }
    Ok(())
}

/// `fd` (a listening unix stream socket) is bound to `path`.
fn bound_at(fd: &OwnedFd, path: &Path) -> bool {
    if listening_unix_stream(fd.as_fd()).is_err() {
        return false;
    }
    // SAFETY: borrowing a valid fd as a listener only to read its address;
    // ManuallyDrop keeps it from being closed here.
    let l = std::mem::ManuallyDrop::new(unsafe {
        std::os::unix::net::UnixListener::from_raw_fd(fd.as_raw_fd())
    });
    let at = l
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(Path::to_path_buf));
    at.as_deref() == Some(path)
}

/// SO_ACCEPTCONN: the socket is listening (rustix lacks it on macOS).
fn accepts_connections(fd: BorrowedFd<'_>) -> bool {
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
