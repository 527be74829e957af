//! `dockhand service` under a real `systemd --user` (Debian's systemd 252),
//! brought up per test by `tests/systemd-user/rig.sh` in a private mount
//! namespace with its own delegated cgroup and journald, and torn down
//! after it (see that script and the platform notes).
//!
//! Two rounds: a command engine (tests/fixtures/engine/ping-server) under
//! the user manager of `dockhand-test`, a uid >= 1000 user (what a
//! developer's login looks like; its journal lines show in `systemctl
//! --user status`), and dockerd under root's user manager (dockerd needs
//! root; `user@0.service` is a real thing on systemd hosts).
//!
//! Needs root, systemd, nsenter/setpriv (util-linux) and python3; the
//! dockerd round also dockerd. Skipped with a note when absent, a failure
//! with CI=true. `benches/service.rs` reuses the rig for its figures.

#![allow(dead_code, unused_imports)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{BIN, DOCKERD_ARGS, alive, eventually, fixture, kill, which};

const RIG_USER: &str = "dockhand-test";

fn rig_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/systemd-user/rig.sh")
}

/// Whether a real user manager can be brought up here.
pub(crate) fn available(dockerd: bool) -> bool {
    let root = rustix::process::geteuid().is_root();
    let systemd = Path::new("/lib/systemd/systemd").exists();
    let tools = ["nsenter", "setpriv", "unshare", "python3", "systemctl"]
        .iter()
        .all(|t| which(t).is_some());
    let engine = !dockerd || crate::harness::engine_available();
    if root && systemd && tools && engine {
        return true;
    }
    let why = format!(
        "real systemd --user tests need root ({root}), /lib/systemd/systemd ({systemd}), nsenter/setpriv/unshare/python3/systemctl ({tools}) and, for the dockerd round, dockerd ({engine}); run scripts/test"
    );
    assert!(!std::env::var("CI").is_ok_and(|v| v == "true"), "{why}");
    eprintln!("SKIP: {why}");
    false
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Round {
    /// ping-server as a command engine, as dockhand-test.
    Command,
    /// dockerd, as root (root's user manager).
    Dockerd,
}

/// One user manager, its home, and dockhand's files in it.
pub(crate) struct Rig {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    home: PathBuf,
    bin: PathBuf,
    config: PathBuf,
    state: PathBuf,
    uid: u32,
    gid: u32,
    round: Round,
}

impl Rig {
    pub(crate) fn up(round: Round) -> Rig {
        let tmp = tempfile::Builder::new()
            .prefix("dhs")
            .tempdir_in("/tmp")
            .unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let user = match round {
            Round::Command => RIG_USER,
            Round::Dockerd => "root",
        };
        let out = Command::new(rig_script())
            .args(["up", dir.to_str().unwrap(), user])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "rig up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = std::fs::read_to_string(dir.join("user")).unwrap();
        let w: Vec<&str> = line.split_whitespace().collect();
        let (uid, gid) = (w[1].parse().unwrap(), w[2].parse().unwrap());
        let home = PathBuf::from(w[3]);
        // The binary and the engine where the user can run them.
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        crate::harness::copy_executable(Path::new(BIN), &bin.join("dockhand"));
        crate::harness::copy_executable(&fixture("engine/ping-server"), &bin.join("ping-server"));
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        Rig {
            config: home.join("config.toml"),
            state: home.join("state"),
            home,
            bin,
            dir,
            uid,
            gid,
            round,
            _tmp: tmp,
        }
    }

    fn socket(&self) -> PathBuf {
        self.state.join("docker.sock")
    }

    /// Write the profile `default`: the round's engine, short timeouts,
    /// and `extra` lines (overriding nothing: keys must be new).
    pub(crate) fn write_config(&self, extra: &str, engine_argv_extra: &[&str]) {
        let common = format!(
            "state_dir = {:?}\nsocket = {:?}\nprobe_interval = \"1s\"\nprobe_timeout = \"500ms\"\nrestart_backoff_max = \"2s\"\n{extra}\n",
            self.state.display().to_string(),
            self.socket().display().to_string(),
        );
        let text = match self.round {
            Round::Command => {
                let mut argv = vec![
                    self.bin.join("ping-server").display().to_string(),
                    self.socket().display().to_string(),
                ];
                argv.extend(engine_argv_extra.iter().map(|s| s.to_string()));
                let argv: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
                format!(
                    "[profiles.default]\nengine = \"command\"\n{common}[profiles.default.command]\nargv = [{}]\n",
                    argv.join(", ")
                )
            }
            Round::Dockerd => format!(
                "[profiles.default]\nengine = \"dockerd\"\n{common}[profiles.default.dockerd]\nargs = {DOCKERD_ARGS}\n"
            ),
        };
        let with_timeouts = if extra.contains("stop_timeout") {
            text
        } else {
            text.replacen("state_dir", "stop_timeout = \"10s\"\nstate_dir", 1)
        };
        std::fs::write(&self.config, with_timeouts).unwrap();
        rustix::fs::chown(
            &self.config,
            Some(rustix::fs::Uid::from_raw(self.uid)),
            Some(rustix::fs::Gid::from_raw(self.gid)),
        )
        .unwrap();
    }

    /// Run a program as the rig's user inside its namespace.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(rig_script())
            .args(["run", self.dir.to_str().unwrap(), "--"])
            .args(args)
            .output()
            .unwrap()
    }

    pub(crate) fn dockhand(&self, args: &[&str]) -> Output {
        let bin = self.bin.join("dockhand");
        let config = self.config.display().to_string();
        let mut a = vec![bin.to_str().unwrap(), "--config", &config];
        a.extend_from_slice(args);
        self.run(&a)
    }

    pub(crate) fn systemctl(&self, args: &[&str]) -> String {
        let mut a = vec!["systemctl", "--user"];
        a.extend_from_slice(args);
        String::from_utf8_lossy(&self.run(&a).stdout).into_owned()
    }

    fn show(&self, prop: &str) -> String {
        let out = self.systemctl(&["show", UNIT, "-p", prop, "--value"]);
        out.trim().to_string()
    }

    pub(crate) fn state(&self) -> Value {
        std::fs::read_to_string(self.state.join("state.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    }

    pub(crate) fn engine_pid(&self) -> i64 {
        self.state()["engine_pid"].as_i64().unwrap_or(0)
    }

    fn wait_state(&self, what: &str, within: Duration, cond: impl Fn(&Value) -> bool) -> Value {
        eventually(what, within, || cond(&self.state()));
        self.state()
    }

    /// Pids in the unit's cgroup, in every hierarchy the rig uses.
    fn unit_cgroup_pids(&self, cgroup: &str) -> Vec<String> {
        let mut pids = Vec::new();
        let tops = std::fs::read_to_string(self.dir.join("cgroups")).unwrap();
        for top in tops.lines() {
            let h = Path::new(top).parent().unwrap();
            let d = h.join(cgroup.trim_start_matches('/'));
            if let Ok(t) = std::fs::read_to_string(d.join("cgroup.procs")) {
                pids.extend(t.lines().map(str::to_string));
            }
        }
        pids
    }

    fn journal(&self) -> String {
        let out = self.run(&["journalctl", "--user", "-u", UNIT, "--no-pager", "-n", "60"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn diag(&self) -> String {
        format!(
            "--- status ---\n{}\n--- state ---\n{}\n--- log ---\n{}",
            self.systemctl(&["status", UNIT, "--no-pager"]),
            self.state(),
            std::fs::read_to_string(self.state.join("dockhand.log")).unwrap_or_default()
        )
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = Command::new(rig_script())
            .args(["down", self.dir.to_str().unwrap()])
            .status();
    }
}

pub(crate) const UNIT: &str = "dockhand-default.service";

pub(crate) fn ok(o: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{what}: {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

/// install waits for readiness; status shows the phase; `service restart`
/// and a killed dockhand keep the engine (adopted); `--engine` restarts
/// it; a stop leaves nothing in the unit's cgroup; uninstall leaves
/// nothing.
fn lifecycle(round: Round) {
    let rig = Rig::up(round);
    rig.write_config("start_timeout = \"60s\"", &[]);

    // Install returns once the engine answers: READY=1 after `ready`.
    let out = rig.dockhand(&["service", "install"]);
    let text = ok(&out, "install");
    assert!(text.contains("is ready:"), "{text}");
    assert_eq!(rig.state()["phase"], "ready", "{}", rig.diag());
    assert!(crate::harness::docker_answers(&rig.socket()) || round == Round::Command);
    let engine = rig.engine_pid();
    assert!(engine > 0 && alive(engine as i32));

    // systemctl --user status shows the phase (STATUS=).
    let status = rig.systemctl(&["status", UNIT, "--no-pager"]);
    assert!(status.contains("Status: \"ready:"), "{status}");
    assert_eq!(rig.show("StatusText").split(':').next(), Some("ready"));

    // With dockerd, a running container: it must survive the restarts.
    let container = (round == Round::Dockerd).then(|| run_container(&rig));

    // An upgrade as `cargo install` or Homebrew do it (a new file renamed
    // over the binary), then `dockhand service restart`: a new supervisor
    // running the new binary, the same engine.
    let exe = rig.bin.join("dockhand");
    crate::harness::copy_executable(Path::new(BIN), &rig.bin.join("dockhand.new"));
    std::fs::rename(rig.bin.join("dockhand.new"), &exe).unwrap();
    let main = rig.show("MainPID");
    let text = ok(&rig.dockhand(&["service", "restart"]), "restart");
    assert!(text.contains("is ready:"), "{text}");
    assert_ne!(rig.show("MainPID"), main);
    let st = rig.state();
    assert_eq!(st["adopted"], true, "{}", rig.diag());
    assert_eq!(
        rig.engine_pid(),
        engine,
        "service restart must keep the engine"
    );
    let running = std::fs::read_link(format!("/proc/{}/exe", rig.show("MainPID"))).unwrap();
    assert_eq!(running, exe, "the new binary runs");

    // Plain `systemctl --user restart` (home-manager's sd-switch does the
    // same): the engine stays too.
    let main: i64 = rig.show("MainPID").parse().unwrap();
    rig.systemctl(&["restart", UNIT]);
    let st = rig.wait_state("a new supervisor", Duration::from_secs(30), |s| {
        s["phase"] == "ready" && s["supervisor_pid"].as_i64() != Some(main)
    });
    assert_eq!(st["adopted"], true, "{}", rig.diag());
    assert_eq!(
        rig.engine_pid(),
        engine,
        "systemctl restart must keep the engine"
    );

    // SIGKILL of dockhand: systemd restarts it (Restart=on-failure), the
    // new one adopts the engine.
    let main: i32 = rig.show("MainPID").parse().unwrap();
    kill(main, rustix::process::Signal::KILL);
    let st = rig.wait_state("a restarted supervisor", Duration::from_secs(30), |s| {
        s["phase"] == "ready" && s["supervisor_pid"].as_i64() != Some(main.into())
    });
    assert_eq!(st["adopted"], true, "{}", rig.diag());
    assert_eq!(rig.engine_pid(), engine, "{}", rig.diag());
    assert_eq!(rig.show("NRestarts"), "1");

    if let Some(id) = &container {
        let o = docker(&rig, &["inspect", "-f", "{{.State.Running}}", id]);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "true",
            "the container was stopped"
        );
    }

    // An activation that stops and starts the unit itself (sd-switch's
    // stop-start, nix activation scripts) after `prepare-restart`.
    ok(
        &rig.dockhand(&["service", "prepare-restart"]),
        "prepare-restart",
    );
    rig.systemctl(&["stop", UNIT]);
    assert!(alive(engine as i32), "prepared: the engine was handed over");
    rig.systemctl(&["start", UNIT]);
    let st = rig.wait_state("the next supervisor", Duration::from_secs(30), |s| {
        s["phase"] == "ready"
    });
    assert_eq!(st["adopted"], true, "{}", rig.diag());
    assert_eq!(rig.engine_pid(), engine);

    // `--engine`: the engine is restarted too. (Six starts in a few
    // seconds reach systemd's default start limit, 5 per 10 s: reset it.)
    rig.systemctl(&["reset-failed", UNIT]);
    let text = ok(
        &rig.dockhand(&["service", "restart", "--engine"]),
        "restart --engine",
    );
    assert!(text.contains("is ready:"), "{text}");
    assert_eq!(rig.state()["adopted"], false);
    let engine2 = rig.engine_pid();
    assert!(engine2 > 0 && engine2 != engine);
    assert!(!alive(engine as i32), "the old engine was stopped");

    // A stop stops the engine: nothing left in the unit's cgroup.
    let cgroup = rig.show("ControlGroup");
    assert!(!rig.unit_cgroup_pids(&cgroup).is_empty());
    rig.systemctl(&["stop", UNIT]);
    assert_eq!(rig.show("ActiveState"), "inactive", "{}", rig.diag());
    assert_eq!(rig.unit_cgroup_pids(&cgroup), Vec::<String>::new());
    assert!(!alive(engine2 as i32));
    assert_eq!(rig.state()["phase"], "stopped");

    // Uninstall: no unit file, nothing loaded, nothing running.
    rig.systemctl(&["start", UNIT]);
    ok(&rig.dockhand(&["service", "uninstall"]), "uninstall");
    assert!(!rig.home.join(".config/systemd/user").join(UNIT).exists());
    assert_eq!(rig.show("LoadState"), "not-found");
    assert_eq!(rig.unit_cgroup_pids(&cgroup), Vec::<String>::new());
    assert!(!rig.socket().exists() || !crate::harness::docker_answers(&rig.socket()));
}

fn docker(rig: &Rig, args: &[&str]) -> Output {
    Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", rig.socket().display()))
        .args(args)
        .output()
        .unwrap()
}

/// `docker run -d` of an image made of busybox-static (no registry here).
fn run_container(rig: &Rig) -> String {
    let tar = crate::harness::busybox_tar(&rig.dir);
    let o = docker(rig, &["import", tar.to_str().unwrap(), "bb"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = docker(
        rig,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "bb",
            "/bin/busybox",
            "sleep",
            "600",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn systemd_user_lifecycle_command_engine() {
    if available(false) {
        lifecycle(Round::Command);
    }
}

#[test]
fn systemd_user_lifecycle_dockerd() {
    if available(true) {
        lifecycle(Round::Dockerd);
    }
}

/// An engine that ignores SIGTERM is killed after stop_timeout on a stop:
/// nothing left in the cgroup, though KillMode=process leaves the engine
/// to dockhand.
#[test]
fn systemd_user_stubborn_engine_killed_after_stop_timeout() {
    if !available(false) {
        return;
    }
    let rig = Rig::up(Round::Command);
    rig.write_config("stop_timeout = \"2s\"", &["--ignore-term"]);
    ok(&rig.dockhand(&["service", "install"]), "install");
    let engine = rig.engine_pid() as i32;
    let cgroup = rig.show("ControlGroup");
    rig.systemctl(&["stop", UNIT]);
    assert!(!alive(engine), "{}", rig.diag());
    assert_eq!(rig.unit_cgroup_pids(&cgroup), Vec::<String>::new());
    let st = rig.state();
    assert_eq!(st["phase"], "stopped", "{}", rig.diag());
}

/// A bad config: dockhand exits 2 with `STATUS=failed: <reason>`; systemd
/// doesn't restart it (RestartPreventExitStatus); `service status` shows
/// the manager's view next to the config error. A fixed config and
/// `service restart` recover.
#[test]
fn systemd_user_bad_config_is_not_restarted() {
    if !available(false) {
        return;
    }
    let rig = Rig::up(Round::Command);
    rig.write_config("", &[]);
    ok(&rig.dockhand(&["service", "install"]), "install");
    let engine = rig.engine_pid() as i32;
    let cgroup = rig.show("ControlGroup");
    let good = std::fs::read_to_string(&rig.config).unwrap();
    std::fs::write(&rig.config, format!("{good}\nbogus_key = 1\n")).unwrap();
    rig.systemctl(&["restart", UNIT]);
    eventually("the unit to fail", Duration::from_secs(30), || {
        rig.show("ActiveState") == "failed"
    });
    // Issue 17: the successor can't load the config, so the stopping
    // supervisor did not hand the engine over: it stopped it.
    assert!(
        !alive(engine),
        "the engine runs on unsupervised\n{}",
        rig.diag()
    );
    eventually("an empty cgroup", Duration::from_secs(10), || {
        rig.unit_cgroup_pids(&cgroup).is_empty()
    });
    let text = rig.show("StatusText");
    assert!(
        text.starts_with("failed: ") && text.contains("config.toml") && text.contains("bogus_key"),
        "{text}"
    );
    assert_eq!(rig.show("ExecMainStatus"), "2");
    // Not restarted: past RestartSec (5 s) it is still failed, no restart.
    let deadline = Instant::now() + Duration::from_secs(7);
    while Instant::now() < deadline {
        assert_eq!(rig.show("ActiveState"), "failed");
        assert_eq!(rig.show("NRestarts"), "0");
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = rig.dockhand(&["service", "status"]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bogus_key"), "{stderr}");
    assert!(
        stdout.contains("failed") && stdout.contains("last exit status: 2"),
        "{stdout}"
    );
    // Fixed: restart recovers, with a new engine.
    std::fs::write(&rig.config, good).unwrap();
    let text = ok(&rig.dockhand(&["service", "restart"]), "restart");
    assert!(text.contains("is ready:"), "{text}");
    let now = rig.engine_pid() as i32;
    assert!(now > 0 && now != engine && alive(now), "{}", rig.diag());
}

/// The longest an engine nobody claims may run on: the watcher's bound,
/// its stop grace, and slack for a loaded machine.
const UNCLAIMED: Duration = Duration::from_secs(20 + 10 + 10);

/// Issue 17: `prepare-restart`, then a real stop and no successor: the
/// engine is handed over, and stopped by its watcher after the bound.
#[test]
fn systemd_user_prepare_restart_then_stop_leaves_no_engine() {
    if !available(false) {
        return;
    }
    let rig = Rig::up(Round::Command);
    rig.write_config("", &[]);
    ok(&rig.dockhand(&["service", "install"]), "install");
    let engine = rig.engine_pid() as i32;
    let cgroup = rig.show("ControlGroup");
    ok(
        &rig.dockhand(&["service", "prepare-restart"]),
        "prepare-restart",
    );
    rig.systemctl(&["stop", UNIT]);
    assert_eq!(rig.show("ActiveState"), "inactive", "{}", rig.diag());
    assert!(alive(engine), "handed over: kept for a successor at first");
    eventually("the unclaimed engine stopped", UNCLAIMED, || !alive(engine));
    eventually("an empty cgroup", Duration::from_secs(10), || {
        rig.unit_cgroup_pids(&cgroup).is_empty()
    });
    assert!(!rig.socket().exists() || !crate::harness::docker_answers(&rig.socket()));
}

/// Issue 17: dockhand SIGKILLed, then `systemctl --user stop` while
/// systemd waits `RestartSec` to restart it: with `KillMode=process`
/// systemd signals nothing then; the watcher stops the engine.
#[test]
fn systemd_user_stop_during_restart_sec_leaves_no_engine() {
    if !available(false) {
        return;
    }
    let rig = Rig::up(Round::Command);
    rig.write_config("", &[]);
    ok(&rig.dockhand(&["service", "install"]), "install");
    let engine = rig.engine_pid() as i32;
    let cgroup = rig.show("ControlGroup");
    let main: i32 = rig.show("MainPID").parse().unwrap();
    kill(main, rustix::process::Signal::KILL);
    eventually("systemd waiting to restart", Duration::from_secs(5), || {
        rig.show("SubState") == "auto-restart"
    });
    rig.systemctl(&["stop", UNIT]);
    assert_eq!(rig.show("ActiveState"), "inactive", "{}", rig.diag());
    assert_eq!(rig.show("NRestarts"), "0", "restarted before the stop");
    eventually("the orphaned engine stopped", UNCLAIMED, || !alive(engine));
    eventually("an empty cgroup", Duration::from_secs(10), || {
        rig.unit_cgroup_pids(&cgroup).is_empty()
    });
}

/// An engine that never answers: `install` reports the failed start with
/// the engine's reason within start_timeout + its margin (not systemd's
/// TimeoutStartSec), and systemd leaves dockhand to its own backoff.
#[test]
fn systemd_user_failed_start_is_reported_by_install() {
    if !available(false) {
        return;
    }
    let rig = Rig::up(Round::Command);
    // ping-server answering 500: the socket exists but never says OK.
    rig.write_config("start_timeout = \"3s\"", &["--status", "500"]);
    let t = Instant::now();
    let out = rig.dockhand(&["service", "install"]);
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", rig.diag());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("engine did not start: failed:") && err.contains("keeps retrying"),
        "{err}"
    );
    assert!(
        took < Duration::from_secs(3 + 15),
        "install took {took:?}, beyond start_timeout + 15 s"
    );
    // systemd did not restart dockhand: its own backoff runs.
    let main = rig.show("MainPID");
    rig.wait_state("a retry by dockhand", Duration::from_secs(30), |s| {
        s["restarts"].as_u64().unwrap_or(0) >= 1
    });
    assert_eq!(rig.show("MainPID"), main);
    assert_eq!(rig.show("NRestarts"), "0");
    assert_eq!(rig.show("ActiveState"), "active");
    let _ = rig.journal();
}

/// A config change that needs a new engine: the restarted supervisor finds
/// the adopted engine's recorded settings differ, restarts it and says so.
#[test]
fn systemd_user_changed_engine_settings_restart_the_engine() {
    if !available(false) {
        return;
    }
    let rig = Rig::up(Round::Command);
    rig.write_config("", &[]);
    ok(&rig.dockhand(&["service", "install"]), "install");
    let engine = rig.engine_pid();
    // Same engine program, another argument: a different engine.
    rig.write_config("", &["--status", "200"]);
    ok(&rig.dockhand(&["service", "restart"]), "restart");
    let st = rig.state();
    assert_eq!(st["adopted"], false, "{}", rig.diag());
    assert_ne!(rig.engine_pid(), engine);
    assert!(!alive(engine as i32));
    let journal = rig.journal();
    assert!(
        rig.diag().contains("settings in the config changed")
            || journal.contains("settings in the config changed"),
        "{}\n{journal}",
        rig.diag()
    );
}
