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

pub async fn wait_exit(pid: i32) -> std::io::Result<()> {
    let p = super::rpid(pid).ok_or(std::io::ErrorKind::InvalidInput)?;
    let fd = match rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    // SAFETY: the AsyncFd owns the descriptor, which stays open as long
    // as it is registered.
    let afd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
    }?;
    let _ = afd.readable().await?;
    Ok(())
}
