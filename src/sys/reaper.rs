//! Children and their exit statuses. One task reaps every child of this
//! process (`waitpid(-1)` on SIGCHLD), including orphans re-parented to us
//! as a subreaper, and hands each status to whoever spawned that child.
//! Nothing else in the supervisor may wait on a child.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

/// Children we spawned and haven't seen exit. Registration follows spawn
/// on the one runtime thread, before the reaper can run again, so a
/// status reaped for an unregistered pid belongs to an orphan re-parented
/// to us (containerd after dockerd died): it is dropped, never handed to a
/// later child that happens to get the same pid.
#[derive(Default)]
struct Table {
    waiters: HashMap<i32, oneshot::Sender<ExitStatus>>,
}

static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();

fn table() -> &'static Mutex<Table> {
    TABLE.get_or_init(Default::default)
}

/// Start the reaping task. Call once, inside the runtime, before spawning.
pub fn start() -> std::io::Result<()> {
    let mut sig = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())?;
    tokio::spawn(async move {
        loop {
            reap();
            if sig.recv().await.is_none() {
                return;
            }
        }
    });
    Ok(())
}

/// Reap every child that has exited.
pub fn reap() {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with WNOHANG on any child; status is a plain int.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        let status = ExitStatus::from_raw(status);
        let mut t = table().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = t.waiters.remove(&pid) {
            let _ = tx.send(status);
        }
    }
}

/// `pid` is a child we spawned and haven't seen exit.
pub fn is_registered(pid: i32) -> bool {
    let t = table().lock().unwrap_or_else(|e| e.into_inner());
    t.waiters.contains_key(&pid)
}

/// SIGKILL the process group of every child we spawned that hasn't exited
/// (a second Ctrl-C). Safe: an unreaped child's pid can't be reused.
pub fn kill_all_children() -> usize {
    let t = table().lock().unwrap_or_else(|e| e.into_inner());
    for pid in t.waiters.keys() {
        super::signal_group(*pid, super::Signal::KILL);
    }
    t.waiters.len()
}

/// A child we spawned: its pid (also its process group) and its exit.
#[derive(Debug)]
pub struct Child {
    pub pid: i32,
    exit: oneshot::Receiver<ExitStatus>,
    status: Option<ExitStatus>,
}

impl Child {
    /// Wait for the exit status (cancel-safe: can be polled again).
    pub async fn wait(&mut self) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let s = (&mut self.exit)
            .await
            .unwrap_or_else(|_| ExitStatus::from_raw(0));
        self.status = Some(s);
        s
    }

    /// The status if the child has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.exit.try_recv().ok();
        }
        self.status
    }
}

/// Spawn `cmd` in a process group of its own; its exit arrives via the
/// reaper. `cmd` must name its program by absolute path (see `sys::which`)
/// so exec failures are reported by spawn itself.
pub fn spawn(cmd: &mut std::process::Command) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    unshare_supervisor_env(cmd);
    let child = cmd.spawn()?;
    let pid = child.id() as i32;
    // Never `wait` on std's handle: the reaper owns waiting.
    drop(child);
    Ok(register(pid))
}

/// systemd's notification socket is ours: dockerd would otherwise send
/// its own READY=1 (and speak for us) when it sees NOTIFY_SOCKET.
fn unshare_supervisor_env(cmd: &mut std::process::Command) {
    cmd.env_remove("NOTIFY_SOCKET").env_remove("WATCHDOG_USEC");
}

fn register(pid: i32) -> Child {
    let (tx, rx) = oneshot::channel();
    let mut t = table().lock().unwrap_or_else(|e| e.into_inner());
    t.waiters.insert(pid, tx);
    Child {
        pid,
        exit: rx,
        status: None,
    }
}

/// What a short command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Run a short command to completion (`colima status`, `colima stop`),
/// capturing its output; killed (its whole group) after `timeout`.
pub async fn output(cmd: &mut std::process::Command, timeout: Duration) -> std::io::Result<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    unshare_supervisor_env(cmd);
    let mut std_child = cmd.spawn()?;
    let pid = std_child.id() as i32;
    let out = std_child.stdout.take().map(std::os::fd::OwnedFd::from);
    let err = std_child.stderr.take().map(std::os::fd::OwnedFd::from);
    drop(std_child);
    let mut child = register(pid);
    async fn read_all(fd: Option<std::os::fd::OwnedFd>) -> String {
        let Some(fd) = fd else { return String::new() };
        let Ok(mut rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
            return String::new();
        };
        let mut buf = Vec::new();
        let _ = rx.read_to_end(&mut buf).await;
        String::from_utf8_lossy(&buf).into_owned()
    }
    let work = async {
        let (stdout, stderr) = tokio::join!(read_all(out), read_all(err));
        let status = child.wait().await;
        (status, stdout, stderr)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok((status, stdout, stderr)) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        Err(_) => {
            super::signal_group(pid, super::Signal::KILL);
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {}", humantime::format_duration(timeout)),
            ))
        }
    }
}
