//! Running the tools doctor asks (`docker`, `colima --version`, ...):
//! no shell, a deadline, and bounded output.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MAX_OUTPUT: u64 = 256 * 1024;

pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Programs that timed out once: doctor asks them nothing more (each
/// question would wait its whole timeout again).
static HUNG: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Run `program args` with `env` added, or say why there is no output:
/// "timed out after N s" (the tool hangs; it was killed after `timeout`)
/// or "could not be started: …".
pub fn run_or_why(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<Out, String> {
    let hung = |p: &Path| {
        HUNG.lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|h| h == p)
    };
    if hung(program) {
        return Err("not asked: it timed out before".into());
    }
    let r = run_once(program, args, env, timeout);
    if r.as_ref().is_err_and(|e| e.starts_with("timed out")) {
        HUNG.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(program.to_path_buf());
    }
    r
}

/// The child is killed when doctor dies (Linux: PR_SET_PDEATHSIG), so a
/// doctor ended by a signal (which skips its cleanup) leaves no ssh
/// behind. The parent is checked after the prctl: one that died before
/// it was set makes the child exit at once. macOS has no such thing:
/// there each child's life is bounded by doctor's deadline for it, which
/// a killed doctor no longer enforces.
pub fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = rustix::process::getpid();
        // SAFETY: between fork and exec the closure only makes two
        // syscalls (async-signal-safe) and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                use rustix::process::{Signal, getppid, set_parent_process_death_signal};
                set_parent_process_death_signal(Some(Signal::KILL))?;
                if getppid() != Some(parent) {
                    return Err(rustix::io::Errno::SRCH.into());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

fn run_once(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<Out, String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not be started: {e}"))?;
    // Readers report through channels: a grandchild that keeps a pipe open
    // after the tool is gone must not hold doctor up.
    let reader = |p: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(p) = p {
                let mut p = p.take(MAX_OUTPUT);
                let _ = p.read_to_end(&mut s);
                let _ = tx.send(String::from_utf8_lossy(&s).into_owned());
                // Drain the rest so the child never blocks on a full pipe.
                let _ = std::io::copy(&mut p.into_inner(), &mut std::io::sink());
            } else {
                let _ = tx.send(String::new());
            }
        });
        rx
    };
    let out = reader(child.stdout.take().map(|p| Box::new(p) as _));
    let err = reader(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let grace = Duration::from_secs(1);
    let stdout = out.recv_timeout(grace).unwrap_or_default();
    let stderr = err.recv_timeout(grace).unwrap_or_default();
    match status {
        Some(s) => Ok(Out {
            ok: s.success(),
            stdout,
            stderr,
        }),
        None => Err(format!("timed out after {} s", timeout.as_secs())),
    }
}

/// The first `x.y` or `x.y.z` in `text` ("Docker version 20.10.24+dfsg1").
pub fn version(text: &str) -> Option<Vec<u64>> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|w| w.contains('.'))
        .find_map(|w| {
            let parts: Vec<u64> = w.split('.').take(3).map_while(|n| n.parse().ok()).collect();
            (parts.len() >= 2).then_some(parts)
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_are_found_in_tool_output() {
        use super::version;
        assert_eq!(
            version("Docker version 20.10.24+dfsg1, build 297e128"),
            Some(vec![20, 10, 24])
        );
        assert_eq!(
            version("colima version 0.10.3\ngit commit: abc"),
            Some(vec![0, 10, 3])
        );
        assert_eq!(version("limactl version 2.0.1"), Some(vec![2, 0, 1]));
        assert_eq!(version("no version here"), None);
    }
}
