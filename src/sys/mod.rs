//! Processes, the platform seam: who a pid is, waiting for any process to
//! exit, reaping children, signalling after an identity check. Linux uses
//! /proc and pidfd, macOS libproc/sysctl and kqueue; chosen here, once.

use std::path::Path;
use std::time::Duration;

pub mod file;
pub mod reaper;
pub mod signals;

#[cfg(target_os = "linux")]
#[path = "linux.rs"]
mod imp;
#[cfg(target_os = "macos")]
#[path = "macos.rs"]
mod imp;
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
compile_error!("dockhand supports Linux and macOS");

pub use imp::become_subreaper;
/// The macOS major version (None off macOS): Colima's `--vm-type` exists
/// only from macOS 13.
pub use imp::os_major;

/// What we know about a live process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: i32,
    pub argv: Vec<String>,
    /// Start time in a platform unit; with the pid, it names one process
    /// for the life of the machine (a recycled pid has another start time).
    pub start: u64,
    pub zombie: bool,
}

impl ProcInfo {
    /// The basename of argv[0].
    pub fn program(&self) -> &str {
        self.argv
            .first()
            .map(|a| a.rsplit('/').next().unwrap_or(a))
            .unwrap_or("")
    }
    /// `flag VALUE` or `flag=VALUE` appears in argv.
    pub fn has_arg(&self, flag: &str, value: &Path) -> bool {
        let value = value.to_string_lossy();
        let joined = format!("{flag}={value}");
        self.argv.windows(2).any(|w| w[0] == flag && w[1] == value) || self.argv.contains(&joined)
    }
}

/// Information on `pid`, or None when no such process exists.
pub fn proc_info(pid: i32) -> Option<ProcInfo> {
    if pid <= 0 {
        return None;
    }
    imp::proc_info(pid)
}

fn rpid(pid: i32) -> Option<rustix::process::Pid> {
    rustix::process::Pid::from_raw(pid)
}

/// Some process of group `pgid` still exists (zombies included).
pub fn group_exists(pgid: i32) -> bool {
    rpid(pgid).is_some_and(|p| rustix::process::test_kill_process_group(p).is_ok())
}

pub use rustix::process::Signal;

/// Signal one process that the caller has identified. Gone is fine.
pub fn signal(pid: i32, sig: Signal) {
    if let Some(p) = rpid(pid) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// Signal a process group that we created. Gone is fine.
pub fn signal_group(pgid: i32, sig: Signal) {
    if let Some(p) = rpid(pgid) {
        let _ = rustix::process::kill_process_group(p, sig);
    }
}

/// A process that is not our child (an adopted engine, Lima's host agent),
/// verified once and from then on watched and signalled through a handle
/// that a later process with the same pid can't be confused with: a pidfd
/// on Linux; on macOS a kqueue for its exit, and its start time checked
/// again right before each signal.
pub struct Proc {
    pid: i32,
    start: u64,
    fd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl std::fmt::Debug for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Proc({})", self.pid)
    }
}

impl Proc {
    /// `pid`, if it is alive and `ours` recognises it. Call inside the
    /// runtime.
    pub fn open(pid: i32, ours: impl Fn(&ProcInfo) -> bool) -> Option<Proc> {
        let info = proc_info(pid).filter(|i| !i.zombie && ours(i))?;
        let fd = imp::exit_fd(pid).ok();
        // It may have died, and its pid been reused, between the check and
        // the handle: the same start time means the same process.
        let again = proc_info(pid)?;
        if again.start != info.start || again.zombie {
            return None;
        }
        // SAFETY: the AsyncFd owns the descriptor for as long as it is
        // registered.
        let fd = fd.and_then(|fd| unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE).ok()
        });
        Some(Proc {
            pid,
            start: info.start,
            fd,
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Still the same, unexited process.
    pub fn alive(&self) -> bool {
        proc_info(self.pid).is_some_and(|i| !i.zombie && i.start == self.start)
    }

    /// Resolves when the process has exited.
    pub async fn exited(&self) {
        match &self.fd {
            Some(fd) => {
                let _ = fd.readable().await;
            }
            None => {
                while self.alive() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Signal it, never another process that has its pid now.
    pub fn signal(&self, sig: Signal) {
        let sent = self
            .fd
            .as_ref()
            .and_then(|fd| imp::signal_via(fd.get_ref(), sig));
        if sent.is_none() && self.alive() {
            signal(self.pid, sig);
        }
    }

    /// It leads its own process group (we started it so).
    pub fn leads_group(&self) -> bool {
        rpid(self.pid).is_some_and(|p| {
            rustix::process::getpgid(Some(p)).is_ok_and(|g| g.as_raw_nonzero().get() == self.pid)
        })
    }
}

/// Poll `cond` until it holds or `deadline` passes; true if it held.
pub async fn poll_until(deadline: tokio::time::Instant, mut cond: impl FnMut() -> bool) -> bool {
    let mut step = Duration::from_millis(5);
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(step).await;
        step = (step * 2).min(Duration::from_millis(100));
    }
}

/// Processes re-parented to dockhand (it is their subreaper on Linux):
/// live children it did not spawn itself. In `dockhand run` with a
/// process engine they can only be what that engine left running.
pub fn orphans() -> Vec<i32> {
    imp::children()
        .into_iter()
        .filter(|p| !reaper::is_registered(*p))
        .collect()
}

/// SIGKILL our unreaped child `pid` (its pid can't be reused before we
/// reap it), and its process group if it leads one.
pub fn kill_child_tree(pid: i32) {
    if let Some(p) = rpid(pid)
        && rustix::process::getpgid(Some(p)).is_ok_and(|g| g.as_raw_nonzero().get() == pid)
    {
        signal_group(pid, Signal::KILL);
    }
    signal(pid, Signal::KILL);
}

/// What is wrong with `program` when `which` can't use it, for messages:
/// a path that is missing, a directory, or not executable is said so.
pub fn explain_program(program: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    if !program.contains('/') {
        return "not found on PATH".into();
    }
    match std::fs::metadata(program) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist".into(),
        Err(e) => format!("cannot be inspected ({e})"),
        Ok(m) if !m.is_file() => format!("is {}, not a program", file::kind(m.file_type())),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => format!(
            "is not executable (mode {:o}): `chmod +x {program}`",
            m.permissions().mode() & 0o7777
        ),
        Ok(_) => "cannot be run".into(),
    }
}

/// Who serves the unix socket at `path`: connect, and ask the kernel for
/// the peer's pid (SO_PEERCRED on Linux, LOCAL_PEERPID on macOS). None when
/// nobody accepts connections there or the platform can't tell.
pub fn socket_holder(path: &Path) -> Option<ProcInfo> {
    use std::os::fd::AsFd;
    let s = std::os::unix::net::UnixStream::connect(path).ok()?;
    proc_info(imp::peer_pid(s.as_fd())?)
}

/// The same file or directory: equal after resolving symlinks (Lima
/// records real paths: `/private/tmp/...` for `/tmp/...` on macOS, the
/// target of a symlinked home). Paths that don't exist compare as given.
pub fn same_path(a: &Path, b: &Path) -> bool {
    a == b || canonical(a) == canonical(b)
}

/// `p` with symlinks resolved where it exists; its longest existing
/// ancestor resolved and the rest appended, where it doesn't.
pub fn canonical(p: &Path) -> std::path::PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) if parent != p => canonical(parent).join(name),
        _ => p.to_path_buf(),
    }
}

/// A regular file with an execute bit.
pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Find `program` on PATH (or check it when it contains a slash).
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    if program.contains('/') {
        let p = Path::new(program);
        return is_executable(p).then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}
