//! Engines that are one process we run as a child in its own process
//! group: dockerd, or any command that serves the Docker API (`podman
//! system service`, rootless dockerd, ...).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::time::Instant;

use super::watcher::{Target, Watcher};
use super::{Record, ResumePolicy, Running};
use crate::config::{EngineKind, Profile};
use crate::error::{Error, Result};
use crate::probe;
use crate::sys::{self, reaper};

/// dockerd's own files, which an unclean stop leaves behind.
struct DockerdFiles {
    pidfile: PathBuf,
    exec_root: PathBuf,
}

pub struct ProcessEngine {
    kind: EngineKind,
    name: String,
    argv: Vec<String>,
    socket: PathBuf,
    state_dir: PathBuf,
    stop_timeout: Duration,
    dockerd: Option<DockerdFiles>,
    /// Where the running engine's output starts in `engine.log`.
    log_from: u64,
}

impl ProcessEngine {
    pub fn new(p: &Profile) -> ProcessEngine {
        let (argv, dockerd) = match (&p.dockerd, &p.command) {
            (Some(d), _) => {
                let pidfile = p.state_dir.join("dockerd.pid");
                let mut argv = vec![
                    d.binary.clone(),
                    "--host".into(),
                    format!("unix://{}", p.socket.display()),
                    "--pidfile".into(),
                    pidfile.display().to_string(),
                    "--data-root".into(),
                    d.data_root.display().to_string(),
                    "--exec-root".into(),
                    d.exec_root.display().to_string(),
                ];
                argv.extend(d.args.iter().cloned());
                (
                    argv,
                    Some(DockerdFiles {
                        pidfile,
                        exec_root: d.exec_root.clone(),
                    }),
                )
            }
            (None, Some(c)) => (c.argv.clone(), None),
            (None, None) => (Vec::new(), None),
        };
        ProcessEngine {
            log_from: 0,
            kind: p.engine,
            name: if p.engine == EngineKind::Dockerd {
                "dockerd".into()
            } else {
                argv.first().cloned().unwrap_or_default()
            },
            argv,
            socket: p.socket.clone(),
            state_dir: p.state_dir.clone(),
            stop_timeout: p.stop_timeout,
            dockerd,
        }
    }

    /// A process engine running `argv` (the ssh engine's forward).
    pub fn with_argv(p: &Profile, name: &str, argv: Vec<String>) -> ProcessEngine {
        ProcessEngine {
            log_from: 0,
            kind: p.engine,
            name: name.into(),
            argv,
            socket: p.socket.clone(),
            state_dir: p.state_dir.clone(),
            stop_timeout: p.stop_timeout,
            dockerd: None,
        }
    }

    pub fn check(&self) -> Result<()> {
        let program = &self.argv[0];
        if program.contains('/') && sys::which(program).is_none() {
            // A path that exists but can't be run is not "missing".
            let what = sys::explain_program(program);
            if what != "does not exist" {
                let key = match self.kind {
                    EngineKind::Dockerd => "[dockerd] binary",
                    _ => "argv[0] of [command]",
                };
                return Err(Error::EngineUnusable(format!("{key} {program} {what}")));
            }
        }
        if sys::which(program).is_none() {
            let hint = match self.kind {
                EngineKind::Dockerd => "install Docker's engine (Debian/Ubuntu: `sudo apt install docker.io`; Fedora: `sudo dnf install moby-engine`), or set [profiles.<name>.dockerd] binary to its path".to_string(),
                _ => "install it, or fix argv in the profile's [command] table (the program is run directly, without a shell)".to_string(),
            };
            return Err(Error::EngineMissing {
                what: format!("`{program}` {}", sys::explain_program(program)),
                hint,
            });
        }
        if self.kind == EngineKind::Dockerd && !rustix::process::geteuid().is_root() {
            return Err(Error::EngineUnusable(
                "dockerd needs root: run `dockhand run` as root, or use rootless Docker with engine = \"command\" and argv = [\"dockerd-rootless.sh\"] and its socket".into(),
            ));
        }
        Ok(())
    }

    /// Our engine from an earlier run, if it still runs: the process in
    /// our record (same pid and start time; true: dockhand started it, in
    /// a group of its own), or the dockerd its pid file names (its
    /// `--pidfile` argument is ours; it may have been started by hand).
    fn earlier_engine(&self) -> Option<(sys::Proc, bool)> {
        // We start every engine as the leader of its own process group:
        // a process that isn't one was not started by us, whatever the
        // record says.
        if let Some(rec) = Record::load(&self.state_dir)
            && rec.this_boot()
            && let Some(p) = sys::Proc::open(rec.pid, |i| i.start == rec.start)
        {
            if p.leads_group() {
                return Some((p, true));
            }
            tracing::warn!(
                "{} names pid {}, which dockhand did not start (not a process group leader): left alone",
                Record::path(&self.state_dir).display(),
                rec.pid
            );
        }
        let files = self.dockerd.as_ref()?;
        let pid = sys::file::read_pid(&files.pidfile).ok()??;
        sys::Proc::open(pid, |i| is_our_dockerd(i, &files.pidfile)).map(|p| (p, false))
    }

    pub async fn adopt(&mut self) -> Option<Running> {
        if !probe::ping(&self.socket, Duration::from_secs(2))
            .await
            .is_ok()
        {
            return None;
        }
        let (watched, own_group) = match self.earlier_engine() {
            Some((p, own)) => (Some(p), own),
            None => (None, false),
        };
        let watcher = watched.as_ref().and_then(|p| {
            let target = Target::Process {
                pid: p.pid(),
                group: own_group,
            };
            Watcher::start(target, &self.state_dir, self.stop_timeout)
        });
        Some(Running {
            child: None,
            pid: watched.as_ref().map(sys::Proc::pid),
            watched,
            adopted: true,
            own_group,
            watcher,
        })
    }

    /// A local socket answers at once after a resume; the same grace
    /// applies (it costs nothing while the engine answers).
    pub fn resume_policy(&self) -> ResumePolicy {
        ResumePolicy::RECONNECTS
    }

    pub async fn clean_stale(&mut self) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        // Our previous engine, still running but not answering: stop it.
        if let Some((p, own_group)) = self.earlier_engine() {
            tracing::info!(
                "stopping our earlier engine (pid {}), which no longer answers",
                p.pid()
            );
            notes.push(format!(
                "stopped our earlier engine (pid {}) that no longer answered",
                p.pid()
            ));
            super::stop_proc(&p, self.stop_timeout, own_group).await;
        }
        Record::remove(&self.state_dir);
        if let Some(files) = &self.dockerd {
            if let Some(note) =
                remove_stale_pidfile(&files.pidfile, |i| is_our_dockerd(i, &files.pidfile))
            {
                notes.push(note);
            }
            // containerd, started by dockerd: a pid file naming a dead or
            // zombie process (or another program) makes the next dockerd
            // wait for a containerd that will never answer.
            let cpid = files.exec_root.join("containerd/containerd.pid");
            let exec_root = files.exec_root.clone();
            if let Some(note) = remove_stale_pidfile(&cpid, |i| {
                i.program().starts_with("containerd")
                    && i.argv.iter().any(|a| Path::new(a).starts_with(&exec_root))
            }) {
                notes.push(note);
            }
        }
        if let Some(note) = super::remove_dead_socket(&self.socket).await? {
            notes.push(note);
        }
        Ok(notes)
    }

    pub fn spawn(&mut self) -> Result<Running> {
        if let Some(dir) = self.socket.parent()
            && dir.starts_with(&self.state_dir)
        {
            crate::state::private_dir(dir, "socket directory")?;
        }
        let program = sys::which(&self.argv[0]).ok_or_else(|| Error::EngineMissing {
            what: format!("`{}` {}", self.argv[0], sys::explain_program(&self.argv[0])),
            hint: "it was there when dockhand started; reinstall it".into(),
        })?;
        let mut cmd = std::process::Command::new(&program);
        cmd.arg0(&self.argv[0])
            .args(&self.argv[1..])
            .stdin(Stdio::null());
        self.log_from = super::log_output_to(&mut cmd, &self.state_dir)?;
        let child = reaper::spawn(&mut cmd)
            .map_err(|e| Error::io(format!("cannot start {}", program.display()), e))?;
        let pid = child.pid;
        if let Some(Err(e)) = Record::of(pid).map(|rec| rec.save(&self.state_dir)) {
            // Unrecorded, a restarted dockhand couldn't vouch for it: don't
            // leave it running.
            sys::signal_group(pid, sys::Signal::KILL);
            drop(child);
            return Err(e);
        }
        tracing::info!("started {} (pid {pid}): {}", self.name, self.argv.join(" "));
        Ok(Running {
            child: Some(child),
            watched: None,
            pid: Some(pid),
            adopted: false,
            own_group: false,
            watcher: Watcher::start(
                Target::Process { pid, group: true },
                &self.state_dir,
                self.stop_timeout,
            ),
        })
    }

    pub async fn wait_ready(&mut self, r: &mut Running, deadline: Instant) -> Result<(), String> {
        super::ping_until(&self.socket, r, deadline, &self.name)
            .await
            .map_err(|e| format!("{e}{}", self.log_tail()))
    }

    /// The last lines the engine wrote, for error messages.
    fn log_tail(&self) -> String {
        super::last_words(&self.state_dir, self.log_from)
    }

    /// The engine's process exited 0 and left processes running in the
    /// background (a daemonizing command): dockhand supervises a process
    /// that stays in the foreground, so it refuses such an engine rather
    /// than adopt what it can't watch. `r`'s child must have exited.
    /// (dockerd never daemonizes: what it leaves, such as a containerd
    /// dying with it, is only stopped.)
    pub fn daemonized(&self, r: &mut Running) -> Option<Error> {
        if self.kind != EngineKind::Command {
            return None;
        }
        let status = r.child.as_mut()?.try_status()?;
        if status.code() != Some(0) {
            return None;
        }
        let left = sys::orphans();
        let first = *left.first()?;
        let what = sys::proc_info(first)
            .map(|i| format!(" ({})", i.argv.join(" ")))
            .unwrap_or_default();
        Some(Error::EngineUnusable(format!(
            "the engine `{}` went to the background: its process exited 0 and left pid {first}{what} running; dockhand supervises a process that stays in the foreground, so it stopped those and gives up. Run the program in the foreground (most daemons have a flag such as --foreground, -f or --nodaemon)",
            self.argv.join(" ")
        )))
    }

    /// False when the engine was left running (not ours to stop).
    pub async fn stop(&mut self, mut r: Running, timeout: Duration) -> bool {
        if let Some(child) = r.child.as_mut() {
            super::stop_group(child, timeout).await;
            // What it left in the background came back to us: stop it too.
            super::stop_orphans(timeout).await;
        } else if let Some(p) = &r.watched {
            // Adopted and verified at adoption; the handle can't name
            // another process since.
            super::stop_proc(p, timeout, r.own_group).await;
        } else if r.adopted {
            tracing::warn!(
                "the engine on {} was not started by dockhand and has no process dockhand can verify: left running",
                self.socket.display()
            );
            return false;
        }
        true
    }

    pub async fn remove_runtime_files(&mut self) {
        Record::remove(&self.state_dir);
        if let Some(files) = &self.dockerd {
            let _ = remove_stale_pidfile(&files.pidfile, |i| is_our_dockerd(i, &files.pidfile));
        }
        // A socket left by an engine that is gone (dockerd removes its own).
        if probe::ping(&self.socket, Duration::from_secs(1)).await == probe::Ping::Refused {
            let _ = std::fs::remove_file(&self.socket);
        }
    }
}

/// "dockerd", or the command's program.
pub fn summary(p: &Profile) -> String {
    match p.engine {
        EngineKind::Dockerd => "dockerd".into(),
        _ => p
            .command
            .as_ref()
            .and_then(|c| c.argv.first())
            .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
            .unwrap_or_else(|| "the engine".into()),
    }
}

fn is_our_dockerd(info: &sys::ProcInfo, pidfile: &Path) -> bool {
    info.program().starts_with("dockerd") && info.has_arg("--pidfile", pidfile)
}

/// Remove `path` if the pid in it is not a live process that `ours`
/// recognises. Never signals anything.
fn remove_stale_pidfile(path: &Path, ours: impl Fn(&sys::ProcInfo) -> bool) -> Option<String> {
    let why = sys::file::stale_pid(path, ours).ok()??;
    let _ = std::fs::remove_file(path);
    Some(why.removed(path))
}
