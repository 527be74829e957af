//! Colima: a Lima VM with dockerd inside, its docker.sock forwarded to
//! the host. `colima start` daemonizes Lima's host agent and returns; we
//! watch the host agent (`ha.pid`) and the socket. After an unclean stop
//! the instance is "Broken" and `colima stop --force` is the fix.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::time::Instant;

use super::Running;
use crate::config::{self, Profile};
use crate::error::{Error, Result};
use crate::probe;
use crate::sys::{self, reaper};

/// How long `colima status` / `colima list` may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct ColimaEngine {
    c: config::Colima,
    socket: PathBuf,
    state_dir: PathBuf,
    stop_timeout: Duration,
}

impl ColimaEngine {
    pub fn new(p: &Profile) -> ColimaEngine {
        ColimaEngine {
            c: crate::context::colima_config(p),
            socket: p.socket.clone(),
            state_dir: p.state_dir.clone(),
            stop_timeout: p.stop_timeout,
        }
    }

    pub fn check(&self) -> Result<()> {
        if sys::which("colima").is_none() {
            return Err(Error::EngineMissing {
                what: "colima".into(),
                hint: "install it with `brew install colima` or nix (`nix profile install nixpkgs#colima`); under launchd, make sure its directory is in the agent's PATH (`dockhand service install` records it)".into(),
            });
        }
        if sys::which("limactl").is_none() {
            return Err(Error::EngineMissing {
                what: "limactl (Lima, which Colima drives)".into(),
                hint: "install it with `brew install lima` or nix (it comes with nixpkgs#colima)"
                    .into(),
            });
        }
        Ok(())
    }

    fn colima(&self) -> std::process::Command {
        // Colima ignores a COLIMA_HOME that doesn't exist and falls back to
        // another directory (and another instance): make sure ours exists.
        let _ = std::fs::create_dir_all(&self.c.home);
        let mut cmd = std::process::Command::new(sys::which("colima").unwrap_or("colima".into()));
        cmd.env("COLIMA_HOME", &self.c.home);
        cmd
    }

    async fn query(&self, args: &[&str]) -> Option<reaper::Output> {
        let mut cmd = self.colima();
        cmd.args(args);
        reaper::output(&mut cmd, QUERY_TIMEOUT).await.ok()
    }

    /// `colima status <p> --json` succeeds: the VM runs.
    async fn vm_running(&self) -> bool {
        self.query(&["status", &self.c.profile, "--json"])
            .await
            .is_some_and(|o| o.status.success())
    }

    /// Colima's own view from `colima list --json`: Running, Stopped, Broken.
    async fn listed_status(&self) -> Option<String> {
        let out = self.query(&["list", "--json"]).await?;
        let short = config::short_profile(&self.c.profile);
        out.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["name"].as_str() == Some(short))
            .and_then(|v| v["status"].as_str().map(str::to_owned))
    }

    fn pidfile(&self, name: &str) -> PathBuf {
        self.c.instance_dir().join(name)
    }

    /// Lima's host agent from `ha.pid`, if that process is it:
    /// `limactl hostagent --pidfile <dir>/ha.pid ... <instance>`.
    fn host_agent(&self) -> Option<sys::Proc> {
        let ha = self.pidfile("ha.pid");
        let pid = read_pid(&ha)?;
        sys::Proc::open(pid, |i| {
            i.argv.iter().any(|a| a == "hostagent") && i.has_arg("--pidfile", &ha)
        })
    }

    pub async fn adopt(&mut self) -> Option<Running> {
        if !self.vm_running().await
            || !probe::ping(&self.socket, Duration::from_secs(2))
                .await
                .is_ok()
        {
            return None;
        }
        let ha = self.host_agent();
        Some(Running {
            child: None,
            pid: ha.as_ref().map(sys::Proc::pid),
            watched: ha,
            adopted: true,
            own_group: false,
        })
    }

    pub async fn clean_stale(&mut self) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        let dir = self.c.instance_dir();
        // A pid file naming a live process that is not part of this
        // instance (a recycled pid) must not lead Lima to kill it: drop
        // the file, leave the process alone.
        let mut stale = false;
        for name in ["ha.pid", "qemu.pid", "vz.pid"] {
            let path = self.pidfile(name);
            let Some(pid) = read_pid(&path) else { continue };
            match sys::proc_info(pid) {
                Some(i) if !i.zombie && i.argv.iter().any(|a| Path::new(a).starts_with(&dir)) => {}
                Some(i) if !i.zombie => {
                    let _ = std::fs::remove_file(&path);
                    notes.push(format!(
                        "removed stale {}: pid {pid} is another program ({}), left alone",
                        path.display(),
                        i.program()
                    ));
                    stale = true;
                }
                _ => stale = true,
            }
        }
        let ha_alive = self.host_agent().is_some();
        if dir.join("ha.sock").exists() && !ha_alive {
            stale = true;
        }
        let listed = self.listed_status().await;
        if ha_alive && !stale && listed.as_deref() == Some("Running") {
            // The VM runs but docker doesn't answer: a clean stop first.
            notes.push("the VM runs but docker does not answer: colima stop".into());
            self.stop_within(self.stop_timeout)
                .await
                .map_err(|e| Error::Command {
                    command: format!("colima stop {0} / colima stop --force {0}", self.c.profile),
                    detail: e,
                })?;
            return Ok(notes);
        }
        if stale || listed.as_deref() == Some("Broken") {
            notes.push(format!(
                "instance {} was not stopped cleanly: colima stop --force",
                self.c.instance()
            ));
            self.run_stop(true, self.stop_timeout)
                .await
                .map_err(|e| Error::Command {
                    command: format!("colima stop --force {}", self.c.profile),
                    detail: e,
                })?;
        }
        if let Some(n) = super::remove_dead_socket(&self.socket).await? {
            notes.push(n);
        }
        Ok(notes)
    }

    async fn run_stop(&self, force: bool, timeout: Duration) -> Result<(), String> {
        let mut cmd = self.colima();
        cmd.arg("stop");
        if force {
            cmd.arg("--force");
        }
        cmd.arg(&self.c.profile);
        match reaper::output(&mut cmd, timeout).await {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!(
                "{}: {}",
                super::describe(o.status),
                o.stderr.lines().last().unwrap_or("").trim()
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    fn start_args(&self) -> Vec<String> {
        let c = &self.c;
        let mut a = vec!["start".to_string(), c.profile.clone()];
        let mut opt = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push(format!("--{k}"));
                a.push(v);
            }
        };
        opt("cpu", c.cpu.map(|v| v.to_string()));
        opt("memory", c.memory.map(|v| v.to_string()));
        opt("disk", c.disk.map(|v| v.to_string()));
        opt("vm-type", c.vm_type.clone());
        opt("arch", c.arch.clone());
        opt("runtime", Some(c.runtime.clone()));
        for m in &c.mounts {
            a.push("--mount".into());
            a.push(m.clone());
        }
        a.extend(c.args.iter().cloned());
        a
    }

    pub fn spawn(&mut self) -> Result<Running> {
        let args = self.start_args();
        let mut cmd = self.colima();
        cmd.args(&args).stdin(Stdio::null());
        super::log_output_to(&mut cmd, &self.state_dir)?;
        let child = reaper::spawn(&mut cmd).map_err(|e| Error::io("cannot run colima start", e))?;
        tracing::info!("colima {} (pid {})", args.join(" "), child.pid);
        Ok(Running {
            pid: Some(child.pid),
            child: Some(child),
            watched: None,
            adopted: false,
            own_group: false,
        })
    }

    pub async fn wait_ready(&mut self, r: &mut Running, deadline: Instant) -> Result<(), String> {
        // `colima start` returns once the VM is up and the host agent runs
        // in the background.
        if let Some(mut starter) = r.child.take() {
            let status = match tokio::time::timeout_at(deadline, starter.wait()).await {
                Ok(s) => s,
                Err(_) => {
                    r.child = Some(starter);
                    return Err("colima start did not finish in time".into());
                }
            };
            if !status.success() {
                return Err(format!(
                    "colima start {} failed ({}){}",
                    self.c.profile,
                    super::describe(status),
                    last_line(&self.state_dir.join("engine.log"))
                ));
            }
        }
        let ha = self.host_agent();
        r.pid = ha.as_ref().map(sys::Proc::pid);
        r.watched = ha;
        if r.watched.is_none() {
            tracing::warn!(
                "no host agent found via {}: watching the socket only",
                self.pidfile("ha.pid").display()
            );
        }
        super::ping_until(&self.socket, r, deadline, "colima's docker").await
    }

    /// Stop within `timeout` in all (the service manager's own stop
    /// timeout is stop_timeout plus a margin): an unfinished `colima start`
    /// first, then `colima stop`, then `colima stop --force` in a reserve.
    pub async fn stop(&mut self, mut r: Running, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        if let Some(starter) = r.child.as_mut() {
            super::stop_group(starter, (timeout / 4).min(Duration::from_secs(5))).await;
        }
        match self
            .stop_within(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(
                    "colima stop --force {} failed: {e}; the VM may still run",
                    self.c.profile
                );
                false
            }
        }
    }

    /// `colima stop`, and `colima stop --force` if that fails, within
    /// `timeout` in all (give or take a second for the forced stop). A
    /// forced stop (Ctrl-C twice) skips the graceful one.
    async fn stop_within(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let reserve = (timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(15));
        if !super::forced() && timeout > reserve {
            match self.run_stop(false, timeout - reserve).await {
                Ok(()) => return Ok(()),
                Err(e) => tracing::warn!("colima stop {} failed ({e}): forcing", self.c.profile),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        self.run_stop(true, left.max(Duration::from_secs(1))).await
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn last_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_owned)
        })
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default()
}
