//! Linux: /proc for identity, pidfd for exit, PR_SET_CHILD_SUBREAPER.

use super::ProcInfo;

pub fn proc_info(pid: i32) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ... starttime(22nd field) ...": comm may hold
    // spaces and parentheses, so split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = *fields.first()?;
    let start = fields.get(19)?.parse().ok()?;
    let argv = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default();
    Some(ProcInfo {
        pid,
        argv,
        start,
        zombie: state == "Z" || state == "X",
    })
}

/// Orphans of the engine (containerd after dockerd dies) are re-parented
/// to us and reaped at once, instead of lingering as zombies that look
/// alive to the next engine.
pub fn become_subreaper() {
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
}

/// A pidfd: readable once the process has exited.
pub fn exit_fd(pid: i32) -> std::io::Result<std::os::fd::OwnedFd> {
    let p = super::rpid(pid).ok_or(std::io::ErrorKind::InvalidInput)?;
    Ok(rustix::process::pidfd_open(
        p,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// Signal through the pidfd: it names exactly one process.
pub fn signal_via(fd: &std::os::fd::OwnedFd, sig: super::Signal) -> Option<std::io::Result<()>> {
    Some(rustix::process::pidfd_send_signal(fd, sig).map_err(Into::into))
}

/// Live children of this process (zombies excluded), from /proc.
pub fn children() -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                return false;
            };
            let mut f = rest.split_whitespace();
            let state = f.next().unwrap_or("");
            let ppid: i32 = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            ppid == me && state != "Z" && state != "X"
        })
        .collect()
}

/// The pid of the process that listens on the other end of a connected
/// unix socket (SO_PEERCRED: its credentials at `listen()` time).
pub fn peer_pid(fd: std::os::fd::BorrowedFd<'_>) -> Option<i32> {
    use std::os::fd::AsRawFd;
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    (r == 0 && cred.pid > 0).then_some(cred.pid)
}

/// macOS's major version; None here.
pub fn os_major() -> Option<u32> {
    None
}
