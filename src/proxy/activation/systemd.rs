//! systemd socket activation (sd_listen_fds(3)): `LISTEN_PID` must be our
//! pid and `LISTEN_FDS` the count of descriptors from 3 on; both are
//! removed from the environment so children don't take them for theirs.
//! The descriptors are marked close-on-exec (the engine must not inherit
//! them). Upstream: systemd src/libsystemd/sd-daemon/sd-daemon.c.

use std::os::fd::{FromRawFd, OwnedFd};

use crate::error::Result;

const SD_LISTEN_FDS_START: i32 = 3;

pub fn activation_fds() -> Result<Vec<OwnedFd>> {
    let pid = std::env::var("LISTEN_PID").ok();
    let n = std::env::var("LISTEN_FDS").ok();
    // SAFETY: called first thing in main, before any thread starts; the
    // variables are ours to consume (sd_listen_fds(unset_environment=1)).
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    let (Some(pid), Some(n)) = (pid, n) else {
        return Ok(Vec::new());
    };
    if pid.parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(Vec::new());
    }
    let Ok(n) = n.parse::<i32>() else {
        return Ok(Vec::new());
    };
    let mut fds = Vec::new();
    for fd in SD_LISTEN_FDS_START..SD_LISTEN_FDS_START.saturating_add(n.clamp(0, 64)) {
        // SAFETY: fcntl on a descriptor number; fails harmlessly if closed.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags < 0 {
            super::ignored(fd, "it is not open");
            continue;
        }
        // SAFETY: borrowed only to inspect it; not closed here.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        if let Err(why) = super::listening_unix_stream(borrowed) {
            super::ignored(fd, &why);
            continue;
        }
        // SAFETY: as above; sets FD_CLOEXEC.
        unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
        // SAFETY: systemd passed this listening socket to us to own.
        fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    Ok(fds)
}
