//! The engine watcher: a small process a supervisor leaves next to every
//! engine it starts or adopts, so that no engine runs unsupervised for
//! long, whatever happens to the supervisor (SIGKILL, a crash, a handoff
//! to a successor that never comes: a broken config, a `prepare-restart`
//! followed by a real stop, `systemctl --user stop` while systemd waits
//! `RestartSec`).
//!
//! The supervisor holds the write end of a pipe that is the watcher's
//! stdin. When it has stopped the engine itself it writes one byte (the
//! watcher exits at once). When it ends without doing so (a handoff, or
//! killed) the watcher reads end-of-file and waits up to [`BOUND`] for a
//! supervisor to claim the state dir again (the successor adopts the
//! engine and leaves its own watcher); the engine ending also ends the
//! watch. If neither happens, it stops the engine as the supervisor would
//! ([`Target`]):
//! - a process engine: checked to be the process it was given (pid and
//!   start time, then held by a handle that can't name another process),
//!   SIGTERM to it and its process group, SIGKILL after at most
//!   [`STOP_GRACE`]; so it is left unsupervised for at most
//!   `BOUND + STOP_GRACE` (30 s);
//! - a Colima VM: `colima stop <profile>` with the profile's `COLIMA_HOME`
//!   (given on the command line: the config may no longer load), and
//!   `colima stop --force` if that fails or leaves it unclean, within the
//!   profile's `stop_timeout`, each after the pid-file checks of
//!   `engine::colima`. Lima's host agent (when known) is the VM's process:
//!   its end ends the watch.
//!
//! The watcher runs in a process group of its own, ignores SIGHUP and
//! SIGINT (a closed terminal or Ctrl-C are the supervisor's business) and
//! lives in the service's cgroup / launchd job (`KillMode=process`,
//! `AbandonProcessGroup`), which is why those may leave processes behind.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a handed-over or orphaned engine waits for a supervisor.
pub const BOUND: Duration = Duration::from_secs(20);
/// The most a watcher waits after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// The hidden first argument that makes `dockhand` a watcher.
const ARG: &str = "__watch-engine";

/// What a watcher stops when no supervisor claims it.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A process engine dockhand started: a process group leader when
    /// `group`.
    Process { pid: i32, group: bool },
    /// A Colima VM, with Lima's host agent when it is known.
    Colima {
        host_agent: Option<i32>,
        vm: crate::engine::colima::Vm,
    },
}

/// The supervisor's end of a watcher.
#[derive(Debug)]
pub struct Watcher {
    release: Option<OwnedFd>,
    pid: i32,
}

impl Watcher {
    /// Leave a watcher for `target`. None (logged) when it can't be
    /// started: the engine is still supervised, only not watched past
    /// this supervisor.
    pub fn start(target: Target, state_dir: &Path, stop_timeout: Duration) -> Option<Watcher> {
        match Self::try_start(&target, state_dir, stop_timeout) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("cannot start the engine watcher: {e}");
                None
            }
        }
    }

    fn try_start(
        target: &Target,
        state_dir: &Path,
        stop_timeout: Duration,
    ) -> std::io::Result<Watcher> {
        let pid = match target {
            Target::Process { pid, .. } => Some(*pid),
            Target::Colima { host_agent, .. } => *host_agent,
        };
        let start = match pid {
            Some(pid) => {
                crate::sys::proc_info(pid)
                    .ok_or_else(|| {
                        std::io::Error::other(format!("the engine (pid {pid}) is gone"))
                    })?
                    .start
            }
            None => 0,
        };
        let (r, w) = pipe()?;
        let exe = std::env::current_exe()?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg(ARG)
            .arg(state_dir)
            .arg(BOUND.as_millis().to_string())
            .arg(grace(target, stop_timeout).as_millis().to_string())
            .arg(pid.unwrap_or(0).to_string())
            .arg(start.to_string());
        match target {
            Target::Process { group, .. } => {
                cmd.arg(if *group { "group" } else { "process" });
            }
            Target::Colima { vm, .. } => {
                cmd.arg("colima")
                    .arg(&vm.profile)
                    .arg(&vm.home)
                    .arg(&vm.lima_home);
            }
        }
        cmd.stdin(std::process::Stdio::from(r))
            .stdout(std::process::Stdio::null());
        let child = crate::sys::reaper::spawn(&mut cmd)?;
        tracing::debug!("engine watcher pid {}", child.pid);
        Ok(Watcher {
            release: Some(w),
            pid: child.pid,
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The engine goes on without this supervisor (a handoff): the
    /// watcher takes over when this process ends.
    pub fn hand_over(mut self) {
        // Kept open until exit: the watcher then reads end-of-file.
        std::mem::forget(self.release.take());
    }
}

impl Drop for Watcher {
    /// The supervisor is done with the engine (stopped it, or lets it go
    /// knowingly): the watcher exits. Not waited for here (a restart
    /// goes on at once); [`wait_released`] before the supervisor exits.
    fn drop(&mut self) {
        let Some(fd) = self.release.take() else {
            return;
        };
        if rustix::io::write(fd.as_fd(), b"x").is_ok() {
            RELEASED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(self.pid);
        }
    }
}

/// Watchers told to exit, maybe not yet gone.
static RELEASED: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

/// Wait (at most a second) until the released watchers have exited, so
/// that a stopped service leaves nothing in its cgroup. Each is our
/// unreaped child until then: its pid can't name another process.
pub fn wait_released() {
    let mut pids = std::mem::take(&mut *RELEASED.lock().unwrap_or_else(|e| e.into_inner()));
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        pids.retain(|p| crate::sys::proc_info(*p).is_some_and(|i| !i.zombie));
        if pids.is_empty() || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(target_os = "linux")]
    {
        Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
    }
    #[cfg(not(target_os = "linux"))]
    {
        // No pipe2 on macOS; the supervisor forks from one thread.
        let (r, w) = rustix::pipe::pipe()?;
        for fd in [&r, &w] {
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
        }
        Ok((r, w))
    }
}

/// How long the watcher's stop may take: a process gets SIGKILL after at
/// most [`STOP_GRACE`]; `colima stop` (and its forced stop) gets the
/// profile's `stop_timeout`, as a supervisor's stop.
fn grace(target: &Target, stop_timeout: Duration) -> Duration {
    match target {
        Target::Process { .. } => stop_timeout.min(STOP_GRACE),
        Target::Colima { .. } => stop_timeout,
    }
}

/// What a watcher was given.
#[derive(Debug, PartialEq)]
struct Args {
    state_dir: PathBuf,
    bound: Duration,
    grace: Duration,
    /// The engine's process and its start time (0: none known).
    pid: i32,
    start: u64,
    target: Target,
}

fn parse(args: &[String]) -> Option<Args> {
    let [state_dir, bound, grace, pid, start, kind, rest @ ..] = args else {
        return None;
    };
    let pid: i32 = pid.parse().ok()?;
    let target = match (kind.as_str(), rest) {
        ("group" | "process", []) if pid > 0 => Target::Process {
            pid,
            group: kind == "group",
        },
        ("colima", [profile, home, lima_home]) => Target::Colima {
            host_agent: (pid > 0).then_some(pid),
            vm: crate::engine::colima::Vm {
                profile: profile.clone(),
                home: home.into(),
                lima_home: lima_home.into(),
            },
        },
        _ => return None,
    };
    Some(Args {
        state_dir: PathBuf::from(state_dir),
        bound: Duration::from_millis(bound.parse().ok()?),
        grace: Duration::from_millis(grace.parse().ok()?),
        pid,
        start: start.parse().ok()?,
        target,
    })
}

/// When this process was started as a watcher: watch, and the exit code.
pub fn main_if_asked() -> Option<u8> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(ARG) {
        return None;
    }
    let Some(a) = parse(&args[2..]) else {
        eprintln!(
            "dockhand: {ARG} is internal: it takes STATE_DIR BOUND_MS GRACE_MS PID START group|process, or ... colima PROFILE COLIMA_HOME LIMA_HOME"
        );
        return Some(2);
    };
    Some(watch(&a))
}

impl Args {
    /// The engine's process is still the one given (or none was given).
    fn same(&self, i: &crate::sys::ProcInfo) -> bool {
        i.start == self.start && !i.zombie
    }

    fn alive(&self) -> bool {
        self.pid == 0 || crate::sys::proc_info(self.pid).is_some_and(|i| self.same(&i))
    }

    fn what(&self) -> String {
        match &self.target {
            Target::Process { pid, .. } => format!("the engine (pid {pid})"),
            Target::Colima { vm, .. } => format!("the Colima VM {}", vm.profile),
        }
    }
}

fn watch(a: &Args) -> u8 {
    for sig in [libc::SIGHUP, libc::SIGINT] {
        // SAFETY: ignoring a signal in this single-threaded process.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
    if released() {
        return 0;
    }
    let lock = a.state_dir.join("lock");
    let deadline = Instant::now() + a.bound;
    loop {
        if !a.alive() || crate::state::holder_pid(&lock).is_some() {
            return 0; // gone, or a supervisor has it again
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "dockhand: no supervisor took over {} of {} within {}: stopping it",
        a.what(),
        a.state_dir.display(),
        humantime::format_duration(a.bound)
    );
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return 1;
    };
    rt.block_on(stop(a))
}

/// Stop the unclaimed engine as its supervisor would.
async fn stop(a: &Args) -> u8 {
    match &a.target {
        Target::Process { pid, group } => {
            // The same process (pid and start time), held by a handle that
            // can't name another one from here on.
            if let Some(p) = crate::sys::Proc::open(*pid, |i| a.same(i)) {
                crate::engine::stop_proc(&p, a.grace, *group).await;
            }
            0
        }
        Target::Colima { vm, .. } => {
            if crate::sys::reaper::start().is_err() {
                return 1;
            }
            match crate::engine::colima::stop_unclaimed(vm, &a.state_dir, a.grace).await {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!(
                        "dockhand: colima stop --force {} failed: {e}; the VM may still run",
                        vm.profile
                    );
                    1
                }
            }
        }
    }
}

/// Block until the supervisor writes its byte (true) or is gone (false).
fn released() -> bool {
    let stdin = std::io::stdin();
    let mut b = [0u8; 1];
    loop {
        match rustix::io::read(stdin.as_fd(), &mut b) {
            Ok(1) => return true,
            Ok(_) => return false,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_round_trip() {
        let v = args(&["/s", "20000", "3000", "42", "99", "group"]);
        assert_eq!(
            parse(&v),
            Some(Args {
                state_dir: "/s".into(),
                bound: Duration::from_secs(20),
                grace: Duration::from_secs(3),
                pid: 42,
                start: 99,
                target: Target::Process {
                    pid: 42,
                    group: true
                },
            })
        );
        assert_eq!(parse(&v[..5]), None);
        // A process engine needs its pid.
        assert_eq!(parse(&args(&["/s", "1", "1", "0", "0", "process"])), None);
    }

    #[test]
    fn a_colima_vm_is_named_by_profile_and_homes() {
        let v = args(&["/s", "1", "2", "0", "0", "colima", "work", "/c", "/c/_lima"]);
        let a = parse(&v).unwrap();
        assert_eq!(
            a.target,
            Target::Colima {
                host_agent: None,
                vm: crate::engine::colima::Vm {
                    profile: "work".into(),
                    home: "/c".into(),
                    lima_home: "/c/_lima".into(),
                },
            }
        );
        assert!(a.alive(), "no host agent known: nothing ends the watch");
        assert_eq!(parse(&v[..8]), None);
    }
}
