//! Colima: a Lima VM with dockerd inside, its docker.sock forwarded to
//! the host. `colima start` daemonizes Lima's host agent and returns; we
//! watch the host agent (`ha.pid`) and the socket. After an unclean stop
//! the instance is "Broken" and `colima stop --force` is the fix.
//!
//! Lima and Colima signal whatever their pid files name, unchecked (lima
//! pkg/instance/stop.go, pkg/networks/usernet/recoincile.go; colima
//! cmd/daemon/daemon.go `pkill -F`): before every `colima start`/`stop`,
//! [`ColimaEngine::check_pid_files`] removes those that name someone
//! else's process (a pid recycled after a power cut).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::time::Instant;

use super::watcher::{Target, Watcher};
use super::{ResumePolicy, Running};
use crate::config::{self, Profile};
use crate::error::{Error, Result};
use crate::probe;
use crate::sys::file::StalePid;
use crate::sys::{self, reaper};

/// How long `colima status` / `colima list` may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct ColimaEngine {
    c: config::Colima,
    socket: PathBuf,
    state_dir: PathBuf,
    stop_timeout: Duration,
    /// When the current `colima start` creates the instance (no
    /// `lima.yaml` yet: an image download), it may take `create_timeout`.
    creating: Option<Instant>,
}

impl ColimaEngine {
    pub fn new(p: &Profile) -> ColimaEngine {
        ColimaEngine {
            c: colima_config(p),
            socket: p.socket.clone(),
            state_dir: p.state_dir.clone(),
            stop_timeout: p.stop_timeout,
            creating: None,
        }
    }

    pub fn check(&self) -> Result<()> {
        if sys::which("colima").is_none() {
            return Err(Error::EngineMissing {
                what: "colima not found on PATH".into(),
                hint: "install it with `brew install colima` or nix (`nix profile install nixpkgs#colima`); under launchd, make sure its directory is in the agent's PATH (`dockhand service install` records it)".into(),
            });
        }
        if let (Some(v), Some(major)) = (&self.c.vm_type, sys::os_major())
            && major < 13
        {
            return Err(Error::EngineUnusable(format!(
                "vm_type = {v:?} needs macOS 13 or later (this is macOS {major}; colima has no --vm-type flag there): remove vm_type from the profile's [colima] table"
            )));
        }
        if sys::which("limactl").is_none() {
            return Err(Error::EngineMissing {
                what: "limactl (Lima, which Colima drives) not found on PATH".into(),
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
        // It would pick the profile of any colima call that names none
        // (colima cmd/root/root.go); ours are named, keep it that way.
        cmd.env_remove("COLIMA_PROFILE");
        cmd
    }

    async fn query(&self, args: &[&str]) -> Option<reaper::Output> {
        let mut cmd = self.colima();
        cmd.args(args);
        reaper::output(&mut cmd, QUERY_TIMEOUT).await.ok()
    }

    /// `colima status <p> --json` succeeds: the VM runs. Before 0.8.1
    /// `--json` is an unknown flag (exit 1); plain `colima status <p>`
    /// exits 0 only when running in every release (v0.7.6 app/app.go).
    async fn vm_running(&self) -> bool {
        let mut args = vec!["status", self.c.profile.as_str()];
        if super::colima_version::installed().status_json() {
            args.push("--json");
        }
        self.query(&args).await.is_some_and(|o| o.status.success())
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
        let pid = sys::file::read_pid(&ha).ok()??;
        sys::Proc::open(pid, |i| Owner::HostAgent.recognises(i, &ha, self))
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
            watcher: self.watcher(ha.as_ref()),
            watched: ha,
            adopted: true,
            own_group: false,
        })
    }

    /// A watcher that stops this VM (`colima stop`) if this supervisor
    /// ends without doing so and none claims the profile in time.
    fn watcher(&self, host_agent: Option<&sys::Proc>) -> Option<Watcher> {
        let vm = Vm {
            profile: self.c.profile.clone(),
            home: self.c.home.clone(),
            lima_home: self.c.lima_home.clone(),
        };
        let target = Target::Colima {
            host_agent: host_agent.map(sys::Proc::pid),
            vm,
        };
        Watcher::start(target, &self.state_dir, self.stop_timeout)
    }

    /// The VM's forwarded socket reconnects after a resume (Lima's ssh).
    pub fn resume_policy(&self) -> ResumePolicy {
        ResumePolicy::RECONNECTS
    }

    pub async fn clean_stale(&mut self) -> Result<Vec<String>> {
        let (mut notes, mut stale) = self.check_pid_files();
        let ha_alive = self.host_agent().is_some();
        if self.c.instance_dir().join("ha.sock").exists() && !ha_alive {
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
        } else if let Some(why) = self.unclean(stale, listed.as_deref()) {
            notes.push(format!(
                "instance {} was not stopped cleanly ({why}): colima stop --force",
                self.c.instance()
            ));
            self.run_stop(true, self.stop_timeout)
                .await
                .map_err(|e| Error::Command {
                    command: format!("colima stop --force {}", self.c.profile),
                    detail: e,
                })?;
        }
        if let Some(n) = self.release_socket().await? {
            notes.push(n);
        }
        Ok(notes)
    }

    /// Why the instance needs a forced stop before it can start, if it
    /// does: stale pid files, a state other than Stopped, or a disk lock
    /// left behind (Lima before 2.1.1 refuses any: pkg/store/disk.go).
    fn unclean(&self, stale: bool, listed: Option<&str>) -> Option<String> {
        if stale {
            return Some("stale pid files".into());
        }
        if let Some(s) = listed.filter(|s| *s != "Stopped") {
            return Some(format!("colima list says {s}"));
        }
        self.stale_disk_lock()
            .map(|l| format!("disk lock {} left behind", l.display()))
    }

    /// `<LIMA_HOME>/_disks/<instance>/in_use_by` (Colima's runtime disk is
    /// the Lima disk named after the instance: colima environment/vm/lima/
    /// disk.go), when it is dangling or names this instance while it isn't
    /// running. A lock naming another live instance is not ours.
    fn stale_disk_lock(&self) -> Option<PathBuf> {
        let lock = self
            .c
            .lima_home
            .join("_disks")
            .join(self.c.instance())
            .join("in_use_by");
        let target = std::fs::read_link(&lock).ok()?;
        let target = lock.parent()?.join(target);
        let dangling = !target.exists();
        (dangling || sys::same_path(&target, &self.c.instance_dir())).then_some(lock)
    }

    /// The pid files Lima or Colima would signal without a check, each with
    /// who may be named there. A live process that isn't that owner (a
    /// recycled pid) has its file removed and is left alone. Returns notes
    /// and whether the instance's own files were stale (dead or foreign).
    pub fn check_pid_files(&self) -> (Vec<String>, bool) {
        let mut notes = Vec::new();
        let mut stale = false;
        for (path, owner) in self.pid_files() {
            let ours = |i: &sys::ProcInfo| owner.recognises(i, &path, self);
            match sys::file::stale_pid(&path, ours) {
                Ok(None) | Ok(Some(StalePid::NoPid)) | Err(_) => {}
                Ok(Some(why @ StalePid::Foreign(..))) => {
                    let _ = std::fs::remove_file(&path);
                    notes.push(why.removed(&path));
                    stale |= owner.of_instance();
                }
                Ok(Some(_)) => stale |= owner.of_instance(),
            }
        }
        (notes, stale)
    }

    fn pid_files(&self) -> Vec<(PathBuf, Owner)> {
        let dir = self.c.instance_dir();
        let mut v = vec![(dir.join("ha.pid"), Owner::HostAgent)];
        // The driver: <vmType>.pid (lima pkg/store/instance.go), krunkit's,
        // and external drivers' `*.drv.pid` (pkg/driver/external/server/
        // server.go): all SIGKILLed by `limactl stop --force`.
        for n in ["qemu.pid", "vz.pid", "krunkit.pid"] {
            v.push((dir.join(n), Owner::Driver));
        }
        if let Ok(rd) = std::fs::read_dir(&dir) {
            let mut drv: Vec<PathBuf> = rd
                .flatten()
                .take(10_000) // an instance directory holds a few dozen files
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(".drv.pid"))
                .collect();
            drv.sort();
            v.extend(drv.into_iter().map(|p| (p, Owner::Driver)));
        }
        v.push((self.c.usernet_pidfile(), Owner::Usernet));
        v.push((self.c.daemon_pidfile(), Owner::ColimaDaemon));
        v
    }

    /// Remove a dead socket; wait for one that Lima's ssh ControlMaster
    /// still holds after a forced stop (then stop that ssh).
    async fn release_socket(&self) -> Result<Option<String>> {
        let ctl = self.c.instance_dir().join("ssh.sock");
        super::remove_dead_socket_or(&self.socket, SSH_GRACE, "Lima's ssh", |i| {
            i.program() == "ssh" && i.argv.iter().any(|a| mentions(a, &ctl))
        })
        .await
    }

    async fn run_stop(&self, force: bool, timeout: Duration) -> Result<(), String> {
        self.check_pid_files()
            .0
            .iter()
            .for_each(|n| tracing::info!("{n}"));
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
        // `-c`: `--cpu` before 0.8.2, `--cpus` (with `--cpu` a hidden
        // alias) since (colima cmd/start.go).
        if let Some(n) = c.cpu {
            a.push("-c".into());
            a.push(n.to_string());
        }
        let mut opt = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push(format!("--{k}"));
                a.push(v);
            }
        };
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
        self.check_pid_files()
            .0
            .iter()
            .for_each(|n| tracing::info!("{n}"));
        // Lima's instance config (pkg/limatype/filenames LimaYAML): absent
        // until the first start has created the instance.
        let create = !self.c.instance_dir().join("lima.yaml").exists();
        self.creating = create.then(Instant::now);
        if create {
            tracing::info!(
                "instance {} does not exist yet: creating it may take up to create_timeout ({})",
                self.c.instance(),
                humantime::format_duration(self.c.create_timeout)
            );
        }
        let args = self.start_args();
        let mut cmd = self.colima();
        cmd.args(&args).stdin(Stdio::null());
        super::log_output_to(&mut cmd, &self.state_dir)?; // its words: Lima's logs
        let child = reaper::spawn(&mut cmd).map_err(|e| Error::io("cannot run colima start", e))?;
        tracing::info!("colima {} (pid {})", args.join(" "), child.pid);
        Ok(Running {
            pid: Some(child.pid),
            child: Some(child),
            watched: None,
            adopted: false,
            own_group: false,
            watcher: None,
        })
    }

    pub async fn wait_ready(&mut self, r: &mut Running, deadline: Instant) -> Result<(), String> {
        let deadline = match self.creating.take() {
            Some(t) => deadline.max(t + self.c.create_timeout),
            None => deadline,
        };
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
        if r.watcher.is_none() {
            r.watcher = self.watcher(ha.as_ref());
        }
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
                // `colima stop` exits 0 on a Broken instance without
                // touching it (colima environment/vm/lima/lima.go Stop):
                // only a clean Stopped counts.
                Ok(()) => match self.unclean(false, self.listed_status().await.as_deref()) {
                    None => return Ok(()),
                    Some(why) => tracing::warn!(
                        "colima stop {} left the instance unclean ({why}): forcing",
                        self.c.profile
                    ),
                },
                Err(e) => tracing::warn!("colima stop {} failed ({e}): forcing", self.c.profile),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        self.run_stop(true, left.max(Duration::from_secs(1))).await
    }
}

/// A Colima VM as a watcher knows it: enough to run `colima stop` as the
/// supervisor would, without the config (which may no longer load).
#[derive(Debug, Clone, PartialEq)]
pub struct Vm {
    pub profile: String,
    pub home: PathBuf,
    pub lima_home: PathBuf,
}

/// The watcher's stop of a VM no supervisor claimed
/// (`crate::engine::watcher`): `colima stop`, forced if that fails or
/// leaves the instance unclean, after the pid-file checks.
pub async fn stop_unclaimed(vm: &Vm, state_dir: &Path, timeout: Duration) -> Result<(), String> {
    let c = config::Colima {
        profile: vm.profile.clone(),
        cpu: None,
        memory: None,
        disk: None,
        vm_type: None,
        arch: None,
        runtime: String::new(),
        mounts: Vec::new(),
        args: Vec::new(),
        create_timeout: Duration::ZERO,
        home: vm.home.clone(),
        lima_home: vm.lima_home.clone(),
    };
    let e = ColimaEngine {
        c,
        socket: PathBuf::new(),
        state_dir: state_dir.to_path_buf(),
        stop_timeout: timeout,
        creating: None,
    };
    e.stop_within(timeout).await
}

/// How long Lima's ssh ControlMaster may keep serving docker.sock after a
/// forced stop before dockhand stops it.
const SSH_GRACE: Duration = Duration::from_secs(10);

/// Who a pid file may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// `limactl hostagent --pidfile <inst>/ha.pid ... <instance>`.
    HostAgent,
    /// qemu, krunkit, an external driver (`--inst-dir <inst>`), vz (the
    /// host agent itself): a command line that mentions the instance dir.
    Driver,
    /// `limactl usernet -p <pidfile> ...` (lima pkg/networks/usernet/
    /// recoincile.go).
    Usernet,
    /// `colima daemon start <profile> ...` (colima daemon/daemon.go).
    ColimaDaemon,
}

impl Owner {
    fn recognises(self, i: &sys::ProcInfo, pidfile: &Path, e: &ColimaEngine) -> bool {
        let dir = e.c.instance_dir();
        match self {
            Owner::HostAgent => {
                i.argv.iter().any(|a| a == "hostagent") && arg_is(i, "--pidfile", pidfile)
            }
            Owner::Driver => i.argv.iter().any(|a| mentions(a, &dir)),
            Owner::Usernet => {
                i.argv.iter().any(|a| a == "usernet")
                    && (arg_is(i, "-p", pidfile) || arg_is(i, "--pidfile", pidfile))
            }
            Owner::ColimaDaemon => {
                let short = config::short_profile(&e.c.profile);
                i.argv
                    .iter()
                    .any(|a| a.rsplit('/').next() == Some("colima"))
                    && i.argv
                        .windows(3)
                        .any(|w| w[0] == "daemon" && w[1] == "start" && w[2] == short)
            }
        }
    }

    /// The instance's own files (a dead or foreign one makes it unclean);
    /// usernet and Colima's daemon outlive or precede instances.
    fn of_instance(self) -> bool {
        matches!(self, Owner::HostAgent | Owner::Driver)
    }
}

/// `flag VALUE` or `flag=VALUE` in argv, VALUE the same file as `path`
/// (Lima writes resolved paths).
fn arg_is(i: &sys::ProcInfo, flag: &str, path: &Path) -> bool {
    let eq = format!("{flag}=");
    i.argv.iter().enumerate().any(|(n, a)| {
        let v = if a == flag {
            i.argv.get(n + 1).map(String::as_str)
        } else {
            a.strip_prefix(&eq)
        };
        v.is_some_and(|v| sys::same_path(Path::new(v), path))
    })
}

/// `arg` names `dir` or a path inside it, as given or resolved
/// (`path=/x/y/disk`, `ControlPath="/x/y/ssh.sock"`, `/x/y`).
fn mentions(arg: &str, dir: &Path) -> bool {
    // Lima quotes some: `ControlPath="<inst>/ssh.sock"` (pkg/sshutil/sshutil.go).
    let arg = arg.trim_end_matches('"');
    [dir.to_path_buf(), sys::canonical(dir)].iter().any(|d| {
        let d = d.to_string_lossy();
        arg.ends_with(d.as_ref()) || arg.contains(&format!("{d}/"))
    })
}

/// The last non-empty line of `path` (of its last 64 KiB), for messages.
fn last_line(path: &Path) -> String {
    std::fs::File::open(path)
        .and_then(|mut f| sys::file::read_tail(&mut f, 64 << 10))
        .ok()
        .and_then(|t| {
            String::from_utf8_lossy(&t)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_owned)
        })
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default()
}

/// Colima's own output goes to Lima's host agent logs (lima
/// pkg/limatype/filenames: ha.stdout.log, ha.stderr.log).
pub fn other_logs(p: &Profile) -> Vec<PathBuf> {
    let Some(c) = &p.colima else {
        return Vec::new();
    };
    ["ha.stdout.log", "ha.stderr.log"]
        .iter()
        .map(|f| c.instance_dir().join(f))
        .collect()
}

/// "colima (vz, 4 CPU, 8 GiB)": the VM's settings that were given.
pub fn summary(p: &Profile) -> String {
    let Some(c) = &p.colima else {
        return "colima".into();
    };
    let mut parts = Vec::new();
    if let Some(v) = &c.vm_type {
        parts.push(v.clone());
    }
    if let Some(n) = c.cpu {
        parts.push(format!("{n} CPU"));
    }
    if let Some(m) = c.memory {
        parts.push(format!("{m} GiB"));
    }
    if parts.is_empty() {
        "colima".into()
    } else {
        format!("colima ({})", parts.join(", "))
    }
}

/// A Colima table for `colima start`: with `--activate=false` appended
/// while dockhand manages the context, or every start makes Colima's own
/// context current again (colima cmd/start.go: `--activate`, default true).
pub fn colima_config(p: &Profile) -> crate::config::Colima {
    let mut c = p.colima.clone().expect("colima engine has a colima table");
    if p.docker_context && p.listen.is_some() {
        c.args.push("--activate=false".into());
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_argument_mentions_the_instance_dir_not_a_sibling() {
        let dir = Path::new("/nonexistent/_lima/colima");
        assert!(mentions("/nonexistent/_lima/colima", dir));
        assert!(mentions("path=/nonexistent/_lima/colima/diffdisk", dir));
        assert!(mentions(
            "ControlPath=\"/nonexistent/_lima/colima/ssh.sock\"",
            &dir.join("ssh.sock")
        ));
        assert!(!mentions("/nonexistent/_lima/colima-work/qemu.pid", dir));
        assert!(!mentions("/nonexistent/_lima/colimax", dir));
    }

    #[test]
    fn pidfile_arguments_compare_resolved_paths() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        std::fs::write(real.join("ha.pid"), "1").unwrap();
        let info = |argv: &[&str]| sys::ProcInfo {
            pid: 1,
            argv: argv.iter().map(|s| s.to_string()).collect(),
            start: 0,
            zombie: false,
        };
        let real_arg = real.join("ha.pid").display().to_string();
        let i = info(&["limactl", "hostagent", "--pidfile", &real_arg, "colima"]);
        assert!(arg_is(&i, "--pidfile", &link.join("ha.pid")));
        let eq = format!("-p={real_arg}");
        assert!(arg_is(
            &info(&["limactl", "usernet", &eq]),
            "-p",
            &link.join("ha.pid")
        ));
        assert!(!arg_is(&i, "--pidfile", &link.join("other.pid")));
    }
}
