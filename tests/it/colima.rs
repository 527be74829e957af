//! The colima engine. Colima can't run on Linux: these tests drive a
//! stand-in `colima` and `limactl` (tests/fixtures/colima/) that follow
//! Colima's documented CLI and Lima's file layout, and serve docker.sock
//! with a real dockerd as the "VM".

use std::path::PathBuf;
use std::time::Duration;

use rustix::process::Signal;

use crate::harness::{self, Env, alive, eventually, require_engine};

struct Colima {
    env: Env,
    home: PathBuf,
    log: PathBuf,
}

impl Colima {
    fn new() -> Colima {
        let mut env = Env::new();
        let home = env.root.join("colima");
        let log = env.root.join("colima-calls.log");
        let path = format!(
            "{}:{}",
            harness::fixture("colima").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        env.extra_env = vec![
            ("PATH".into(), path),
            ("COLIMA_HOME".into(), home.display().to_string()),
            ("STANDIN_LOG".into(), log.display().to_string()),
        ];
        env.write_config(&format!(
            "[profiles.default]\nengine = \"colima\"\nstate_dir = \"{}\"\nprobe_interval = \"1s\"\nprobe_timeout = \"1s\"\nstop_timeout = \"30s\"\nstart_timeout = \"90s\"\nrestart_backoff_max = \"4s\"\n[profiles.default.colima]\ncpu = 2\nmemory = 4\n",
            env.state.display()
        ));
        Colima { env, home, log }
    }

    fn socket(&self) -> PathBuf {
        self.home.join("default/docker.sock")
    }

    fn instance(&self) -> PathBuf {
        self.home.join("_lima/colima")
    }

    /// The stand-in's invocations, one per line.
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            // "colima start default --cpu 2 ...": the arguments.
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .collect()
    }

    fn count(&self, prefix: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.starts_with(prefix))
            .count()
    }

    fn wait_ready(&self) -> serde_json::Value {
        let v = self.env.wait_ready();
        assert_eq!(v["socket"], self.socket().display().to_string());
        v
    }

    fn read_pid(&self, name: &str) -> i32 {
        std::fs::read_to_string(self.instance().join(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn docker_works(&self) -> bool {
        harness::docker_answers(&self.socket())
    }

    /// `dockhand run` that must end by itself (not retry forever): its
    /// exit code and output, or a failure after a bound.
    fn run_to_exit(&mut self) -> (Option<i32>, String) {
        let i = self.env.run();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let out = self.env.root.join(format!("run-{}.out", i + 1));
        loop {
            if let Some(s) = self.env.supervisors_try_wait(i) {
                return (s.code(), std::fs::read_to_string(&out).unwrap_or_default());
            }
            if std::time::Instant::now() > deadline {
                self.env.stop(i, Duration::from_secs(40));
                panic!(
                    "dockhand run kept going instead of exiting 4\n{}",
                    std::fs::read_to_string(&out).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Model Colima `version`; where it keeps its files follows.
    fn release(&mut self, version: &str) {
        self.set_env("STANDIN_VERSION", version);
        let v: Vec<u32> = version.split('.').map(|n| n.parse().unwrap()).collect();
        if v < vec![0, 6, 10] {
            self.home = self.env.root.join("xdg-config/colima");
        }
    }

    fn set_env(&mut self, k: &str, v: &str) {
        self.env.extra_env.retain(|(key, _)| key != k);
        self.env.extra_env.push((k.into(), v.into()));
    }

    fn usernet_pidfile(&self) -> PathBuf {
        self.home
            .join("_lima/_networks/user-v2/usernet_user-v2.pid")
    }

    fn daemon_pidfile(&self) -> PathBuf {
        self.home.join("default/daemon/daemon.pid")
    }

    /// A power cut as the next boot sees it: dockhand and every process of
    /// the instance gone at once (SIGKILL), their pid files left behind.
    fn power_cut(&mut self, supervisor: usize) {
        self.env.signal(supervisor, Signal::KILL);
        self.env.wait_exit(supervisor, Duration::from_secs(5));
        let pids: Vec<i32> = [
            self.instance().join("ha.pid"),
            self.instance().join("qemu.pid"),
            self.instance().join("exec/containerd/containerd.pid"),
            self.usernet_pidfile(),
            self.daemon_pidfile(),
        ]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok()?.trim().parse().ok())
        .collect();
        for &p in &pids {
            harness::kill(p, Signal::KILL);
        }
        eventually(
            "the instance's processes to die",
            Duration::from_secs(10),
            || pids.iter().all(|&p| !alive(p)),
        );
        harness::unmount_under(&self.instance());
    }
}

/// Write `pid` into `path` (creating its directory).
fn name_in(path: &std::path::Path, pid: i32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("{pid}\n")).unwrap();
}

/// One supervisor life per Colima release in the supported range: the
/// oldest, one per behaviour change and the newest (the stand-in's
/// STANDIN_VERSION; tests/fixtures/colima/colima cites each change).
/// 0.6.9: `COLIMA_HOME` not read, so `$XDG_CONFIG_HOME/colima` (set by the
/// harness) on this Linux host; before 0.8.1 no `status --json`, so the
/// adoption after a crash goes through plain `colima status`.
macro_rules! per_release {
    ($($name:ident: $v:expr,)*) => {$(
        #[test]
        fn $name() {
            starts_adopts_and_stops_colima($v)
        }
    )*};
}
per_release! {
    colima_0_6_9_first_start_with_xdg_config_home_then_adopted: "0.6.9",
    colima_0_7_6_starts_adopts_and_stops: "0.7.6",
    colima_0_8_0_adopted_after_a_dockhand_crash: "0.8.0",
    colima_0_8_1_starts_adopts_and_stops: "0.8.1",
    colima_0_9_1_starts_adopts_and_stops: "0.9.1",
    colima_0_10_3_starts_adopts_and_stops: "0.10.3",
}

fn starts_adopts_and_stops_colima(version: &str) {
    require_engine!();
    let mut c = Colima::new();
    c.release(version);
    let first = c.env.run();
    let v = c.wait_ready();
    let ha = c.read_pid("ha.pid");
    assert_eq!(v["engine_pid"], ha, "the host agent is the watched process");
    assert!(c.docker_works());
    assert!(
        c.calls()
            .iter()
            .any(|l| l.starts_with("start default -c 2 --memory 4 --runtime docker")),
        "{:?}",
        c.calls()
    );

    // dockhand dies; the VM lives on and is adopted, not started again.
    c.env.signal(first, Signal::KILL);
    c.env.wait_exit(first, Duration::from_secs(5));
    let second = c.env.run();
    let v = c.wait_ready();
    assert_eq!(v["engine_pid"], ha);
    assert_eq!(c.count("start"), 1, "{:?}", c.calls());
    assert!(c.env.log().contains("adopted the running engine"));

    // SIGTERM: `colima stop`, nothing left.
    assert_eq!(c.env.stop(second, Duration::from_secs(40)).code(), Some(0));
    assert_eq!(c.count("stop default"), 1, "{:?}", c.calls());
    assert!(!alive(ha));
    assert_eq!(c.env.our_processes(), vec![]);
}

#[test]
fn a_dead_host_agent_is_noticed_and_the_broken_instance_forced_down() {
    require_engine!();
    let mut c = Colima::new();
    // A long probe interval: the exit watch on ha.pid must notice.
    c.env.write_config(
        &std::fs::read_to_string(&c.env.config)
            .unwrap()
            .replace("probe_interval = \"1s\"", "probe_interval = \"1h\""),
    );
    c.env.run();
    c.wait_ready();
    let ha = c.read_pid("ha.pid");
    let vm = c.read_pid("qemu.pid");
    // A power cut, as Lima sees it: host agent and VM die uncleanly and
    // leave ha.pid, qemu.pid and the sockets behind ("Broken").
    harness::kill(ha, Signal::KILL);
    harness::kill(vm, Signal::KILL);
    let v = c.env.wait_until("a new VM", Duration::from_secs(90), |v| {
        v["phase"] == "ready" && v["socket_answers"] == true && v["engine_pid"] != ha
    });
    assert_eq!(v["restarts"], 1);
    let calls = c.calls();
    let force = calls.iter().position(|l| l == "stop --force default");
    let restart = calls.iter().rposition(|l| l.starts_with("start default"));
    assert!(
        force.is_some() && restart > force,
        "expected stop --force before the new start: {calls:?}"
    );
    assert!(c.docker_works());
}

#[test]
fn a_broken_instance_found_at_startup_is_recovered() {
    require_engine!();
    let mut c = Colima::new();
    let first = c.env.run();
    c.wait_ready();
    let ha = c.read_pid("ha.pid");
    let vm = c.read_pid("qemu.pid");
    // Everything dies at once: dockhand, host agent, VM.
    c.env.signal(first, Signal::KILL);
    c.env.wait_exit(first, Duration::from_secs(5));
    harness::kill(ha, Signal::KILL);
    harness::kill(vm, Signal::KILL);
    eventually("the VM to die", Duration::from_secs(10), || !alive(vm));
    harness::unmount_under(&c.instance());
    assert!(c.instance().join("ha.pid").exists());

    // A bystander whose pid a stale qemu.pid names (pid reuse after boot).
    let mut victim = harness::bystander();
    let vpid = victim.id() as i32;
    std::fs::write(c.instance().join("qemu.pid"), format!("{vpid}\n")).unwrap();

    c.env.run();
    c.wait_ready();
    let log = c.env.log();
    assert!(
        log.contains("was not stopped cleanly (stale pid files): colima stop --force"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "pid {vpid} is another program (sleep), left alone"
        )),
        "{log}"
    );
    assert!(
        alive(vpid),
        "a bystander named by a stale pid file was killed"
    );
    assert!(c.docker_works());
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[test]
fn missing_colima_says_how_to_install_it() {
    let mut env = Env::new();
    env.extra_env = vec![("PATH".into(), "/nonexistent".into())];
    env.write_config(&format!(
        "[profiles.default]\nengine = \"colima\"\nstate_dir = \"{}\"\n",
        env.state.display()
    ));
    let (code, _, err) = env.output(&["run"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("colima not found on PATH"), "{err}");
    assert!(err.contains("brew install colima"), "{err}");
}

/// Item 1: Lima and Colima signal whatever their pid files name (usernet's,
/// `*.drv.pid`, `krunkit.pid`, Colima's daemon.pid): after a power cut those
/// pids may belong to unrelated programs, which must survive the recovery.
#[test]
fn bystanders_named_by_lima_and_colima_pid_files_survive_a_recovery() {
    require_engine!();
    let mut c = Colima::new();
    let first = c.env.run();
    c.wait_ready();
    c.power_cut(first);
    let files = [
        c.usernet_pidfile(),
        c.instance().join("ext.drv.pid"),
        c.instance().join("krunkit.pid"),
        c.daemon_pidfile(),
        c.instance().join("qemu.pid"),
    ];
    let mut victims = Vec::new();
    for f in &files {
        let v = harness::bystander();
        name_in(f, v.id() as i32);
        victims.push(v);
    }
    c.env.run();
    c.wait_ready();
    for (f, v) in files.iter().zip(&victims) {
        assert!(
            alive(v.id() as i32),
            "the bystander named by {} was signalled\n{}",
            f.display(),
            c.env.log()
        );
    }
    assert!(c.docker_works());
    for mut v in victims {
        v.kill().unwrap();
        v.wait().unwrap();
    }
}

/// Item 2: Lima resolves symlinks in its home, so the host agent's
/// `--pidfile` is the real path; a symlinked COLIMA_HOME must still find
/// (and adopt) the live host agent instead of calling it foreign.
#[test]
fn a_symlinked_colima_home_keeps_the_live_vm() {
    require_engine!();
    let mut c = Colima::new();
    let real = c.env.root.join("real-colima");
    std::fs::create_dir_all(&real).unwrap();
    std::os::unix::fs::symlink(&real, &c.home).unwrap();
    let first = c.env.run();
    let v = c.wait_ready();
    let ha = c.read_pid("ha.pid");
    assert_eq!(
        v["engine_pid"],
        ha,
        "the host agent is watched\n{}",
        c.env.log()
    );
    c.env.signal(first, Signal::KILL);
    c.env.wait_exit(first, Duration::from_secs(5));
    c.env.run();
    let v = c.wait_ready();
    assert_eq!(
        v["engine_pid"],
        ha,
        "adopted, not restarted\n{}",
        c.env.log()
    );
    assert!(alive(ha));
    assert_eq!(c.count("start"), 1, "{:?}", c.calls());
    assert!(c.instance().join("ha.pid").exists());
}

/// Item 3: `colima stop` on a stopped or Broken instance exits 0 without
/// cleaning anything; a dangling disk lock (Lima before 2.1.1) then fails
/// every start until a forced stop unlocks it.
#[test]
fn a_dangling_disk_lock_is_cleared_by_one_forced_stop() {
    require_engine!();
    let mut c = Colima::new();
    let lock = c.home.join("_lima/_disks/colima/in_use_by");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(c.home.join("_lima/colima.gone"), &lock).unwrap();
    c.env.run();
    c.wait_ready();
    assert_eq!(c.count("stop --force"), 1, "{:?}", c.calls());
    assert!(c.docker_works());
}

/// Item 3, Broken variant: after a power cut, `ha.pid` names a reused pid
/// (a live process that isn't the host agent: Lima calls the instance
/// Broken, lima pkg/store/instance.go), `ha.sock` is left behind, and the
/// disk lock dangles. One forced stop clears all of it (the stale pid file
/// neutralised first: colima's forced stop SIGKILLs whatever `ha.pid`
/// names), and the start succeeds.
#[test]
fn a_broken_instance_with_a_dangling_disk_lock_starts_after_one_forced_stop() {
    require_engine!();
    let mut c = Colima::new();
    let first = c.env.run();
    c.wait_ready();
    c.power_cut(first);
    let mut victim = harness::bystander();
    name_in(&c.instance().join("ha.pid"), victim.id() as i32);
    std::fs::write(c.instance().join("ha.sock"), "").unwrap();
    let lock = c.home.join("_lima/_disks/colima/in_use_by");
    let _ = std::fs::remove_file(&lock);
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(c.home.join("_lima/colima.gone"), &lock).unwrap();
    let forced_before = c.count("stop --force");
    let starts_before = c.count("start");
    let second = c.env.run();
    c.wait_ready();
    assert_eq!(
        c.count("stop --force") - forced_before,
        1,
        "{:?}",
        c.calls()
    );
    assert!(c.count("start") > starts_before, "{:?}", c.calls());
    assert!(c.docker_works());
    assert!(
        alive(victim.id() as i32),
        "the bystander in ha.pid was killed"
    );
    assert_eq!(c.env.stop(second, Duration::from_secs(40)).code(), Some(0));
    victim.kill().unwrap();
    victim.wait().unwrap();
}

/// Item 4: after a forced stop, Lima's ssh ControlMaster may hold
/// docker.sock a moment longer; that is ours, not "another program".
#[test]
fn a_socket_briefly_held_by_limas_ssh_does_not_end_run() {
    require_engine!();
    let mut c = Colima::new();
    c.set_env("STANDIN_SSH_LINGER", "4");
    let first = c.env.run();
    c.wait_ready();
    c.power_cut(first);
    // A reused pid in ha.pid: Lima calls the instance Broken.
    let mut victim = harness::bystander();
    name_in(&c.instance().join("ha.pid"), victim.id() as i32);
    let second = c.env.run();
    c.wait_ready();
    let log = c.env.log();
    assert!(log.contains("held by Lima's ssh"), "{log}");
    assert!(c.count("stop --force") >= 1, "{:?}", c.calls());
    assert!(alive(victim.id() as i32));
    assert_eq!(c.env.stop(second, Duration::from_secs(40)).code(), Some(0));
    victim.kill().unwrap();
    victim.wait().unwrap();
}

fn libfaketime() -> Option<PathBuf> {
    let lib = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists());
    if lib.is_none() {
        assert!(
            std::env::var("CI").ok().as_deref() != Some("true"),
            "libfaketime is missing: apt-get install faketime"
        );
        eprintln!("SKIP: libfaketime not installed (apt-get install faketime)");
    }
    lib
}

/// Item 5: right after a wake, the VM's forward often needs a few seconds:
/// two failed probes and then an answer must not restart the VM (and kill
/// every container). (A socket that stays dead is still recovered after the
/// grace period: supervisor.rs `a_resume_from_sleep_probes_at_once`.)
#[test]
fn a_resume_with_two_failed_probes_then_an_answer_keeps_the_vm() {
    require_engine!();
    let Some(lib) = libfaketime() else { return };
    let mut c = Colima::new();
    let offset = c.env.root.join("faketime");
    std::fs::write(&offset, "+0\n").unwrap();
    c.env.write_config(
        &std::fs::read_to_string(&c.env.config)
            .unwrap()
            .replace("probe_interval = \"1s\"", "probe_interval = \"1h\""),
    );
    c.set_env("LD_PRELOAD", &lib.display().to_string());
    c.set_env("FAKETIME_TIMESTAMP_FILE", &offset.display().to_string());
    c.set_env("FAKETIME_NO_CACHE", "1");
    c.set_env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    c.env.run();
    let v = c.wait_ready();
    let ha = c.read_pid("ha.pid");
    let vm = c.read_pid("qemu.pid");
    // Asleep: the VM doesn't answer; the wall clock jumps two hours.
    harness::kill(vm, Signal::STOP);
    std::fs::write(&offset, "+2h\n").unwrap();
    eventually(
        "two failed probes after the resume",
        Duration::from_secs(30),
        || {
            let log = c.env.log();
            log.contains("resumed from sleep")
                && log.matches("probe failed").count() + log.matches("does not answer").count() >= 2
        },
    );
    harness::kill(vm, Signal::CONT);
    c.env
        .wait_until("the VM answers again", Duration::from_secs(30), |v| {
            v["phase"] == "ready" && v["socket_answers"] == true
        });
    let v2 = c.wait_ready();
    assert_eq!(v2["engine_pid"], v["engine_pid"], "{}", c.env.log());
    assert_eq!(v2["restarts"], 0, "{}", c.env.log());
    assert_eq!(c.count("stop"), 0, "{:?}\n{}", c.calls(), c.env.log());
    assert!(alive(ha) && alive(vm));
}

/// Item 5, the other half: Lima's ssh forward lost while the VM runs
/// (lima #5420, colima #1033): `colima status` fails, the socket is gone,
/// the host agent lives on. Not a resume, so no grace: a clean stop and a
/// new start, without a forced stop.
#[test]
fn a_lost_ssh_forward_is_recovered_with_a_clean_restart() {
    require_engine!();
    let mut c = Colima::new();
    c.env.run();
    let v = c.wait_ready();
    let ha = c.read_pid("ha.pid");
    std::fs::remove_file(c.instance().join("ssh.sock")).unwrap();
    std::fs::rename(c.socket(), c.env.root.join("lost.sock")).unwrap();
    c.env.wait_until("a new VM", Duration::from_secs(60), |w| {
        w["phase"] == "ready" && w["socket_answers"] == true && w["engine_pid"] != v["engine_pid"]
    });
    assert!(!alive(ha));
    assert_eq!(c.count("stop default"), 1, "{:?}", c.calls());
    assert_eq!(c.count("stop --force"), 0, "{:?}", c.calls());
    assert!(c.docker_works());
}

/// Item 6: another agent (brew services, home-manager, limactl autostart)
/// managing the same instance is reported by `service install` (which
/// refuses without --force) and by `status`.
#[test]
fn a_brew_services_colima_agent_is_reported_by_install_and_status() {
    let mut c = Colima::new();
    let agents = c.env.home.join("Library/LaunchAgents");
    std::fs::create_dir_all(&agents).unwrap();
    let brew = agents.join("homebrew.mxcl.colima.plist");
    std::fs::write(&brew, "<?xml version=\"1.0\"?>\n<plist version=\"1.0\"><dict><key>Label</key><string>homebrew.mxcl.colima</string></dict></plist>\n").unwrap();
    let bin = c.env.root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(harness::fixture("service/launchctl"), bin.join("launchctl")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        c.env.extra_env.iter().find(|(k, _)| k == "PATH").unwrap().1
    );
    c.set_env("PATH", &path);
    c.set_env("DOCKHAND_SERVICE_PLATFORM", "launchd");
    c.set_env(
        "DOCKHAND_TEST_LOG",
        &c.env.root.join("launchctl.log").display().to_string(),
    );
    c.set_env(
        "STANDIN_STATE",
        &c.env.root.join("launchd").display().to_string(),
    );

    let (code, _, err) = c.env.output(&["service", "install"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains(&brew.display().to_string()), "{err}");
    assert!(err.contains("brew services stop colima"), "{err}");
    assert!(err.contains("--force"), "{err}");
    let ours = agents.join("local.docker.plist");
    assert!(!ours.exists(), "nothing installed");

    let (_, out, err) = c.env.output(&["status"]);
    assert!(out.contains(&brew.display().to_string()), "{out}{err}");
    assert!(out.contains("brew services stop colima"), "{out}{err}");

    let (code, _, err) = c.env.output(&["service", "install", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("brew services stop colima"),
        "still warned: {err}"
    );
    assert!(ours.exists());
}

/// Item 7: the flag spellings every supported Colima accepts: `-c` (the
/// long name is `--cpu` before 0.8.2 and `--cpus` after, `--cpu` hidden).
#[test]
fn the_oldest_supported_colima_accepts_the_start_flags() {
    require_engine!();
    let mut c = Colima::new();
    c.release("0.6.0");
    let run = c.env.run();
    c.wait_ready();
    assert!(
        c.calls()
            .iter()
            .any(|l| l.starts_with("start default -c 2")),
        "{:?}",
        c.calls()
    );
    assert_eq!(c.env.stop(run, Duration::from_secs(40)).code(), Some(0));
}

/// `vm_type = "krunkit"` on a Colima before 0.10.0 (5e32efa): exit 4 at
/// once, naming both versions, no `colima start` retried forever.
#[test]
fn krunkit_on_an_old_colima_is_refused() {
    let mut c = Colima::new();
    c.set_env("STANDIN_VERSION", "0.9.1");
    let text = std::fs::read_to_string(&c.env.config).unwrap();
    c.env
        .write_config(&text.replace("cpu = 2\n", "cpu = 2\nvm_type = \"krunkit\"\n"));
    let (code, err) = c.run_to_exit();
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("0.10.0") && err.contains("installed: 0.9.1"),
        "{err}"
    );
    assert_eq!(c.count("start"), 0, "{:?}", c.calls());
}

/// Below the supported range: exit 4 naming the installed and the
/// required release and how to upgrade.
#[test]
fn a_colima_below_the_minimum_is_refused() {
    let mut c = Colima::new();
    c.set_env("STANDIN_VERSION", "0.5.6");
    let (code, err) = c.run_to_exit();
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("Colima 0.5.6 is installed")
            && err.contains("0.6.0 or later")
            && err.contains("brew upgrade colima"),
        "{err}"
    );
    assert_eq!(c.count("start"), 0, "{:?}", c.calls());
}

/// Lima 2.2's `limactl autostart enable --condition=boot` daemon in
/// /Library/LaunchDaemons, running as this user (`UserName`): reported by
/// `service install` (refused without --force) and by `status`, with its
/// own disable command; one running as another user is not. The system
/// directories are under DOCKHAND_TEST_SYSROOT.
#[test]
fn a_launch_daemon_running_as_this_user_is_reported_by_install_and_status() {
    let mut c = Colima::new();
    let sysroot = c.env.root.join("sysroot");
    let daemons = sysroot.join("Library/LaunchDaemons");
    std::fs::create_dir_all(&daemons).unwrap();
    let daemon = |label: &str, user: &str| {
        let p = daemons.join(format!("{label}.plist"));
        std::fs::write(&p, format!("<?xml version=\"1.0\"?>\n<plist version=\"1.0\"><dict><key>Label</key><string>{label}</string><key>UserName</key><string>{user}</string><key>ProgramArguments</key><array><string>/opt/homebrew/bin/limactl</string><string>start</string><string>colima</string><string>--foreground</string></array></dict></plist>\n")).unwrap();
        p
    };
    let lima = daemon("io.lima-vm.daemon.colima", "tester");
    let brew = daemon("homebrew.mxcl.colima", "someone-else");
    let bin = c.env.root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(harness::fixture("service/launchctl"), bin.join("launchctl")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        c.env.extra_env.iter().find(|(k, _)| k == "PATH").unwrap().1
    );
    c.set_env("PATH", &path);
    c.set_env("USER", "tester");
    c.set_env("DOCKHAND_TEST_SYSROOT", &sysroot.display().to_string());
    c.set_env("DOCKHAND_SERVICE_PLATFORM", "launchd");
    c.set_env(
        "DOCKHAND_TEST_LOG",
        &c.env.root.join("launchctl.log").display().to_string(),
    );
    c.set_env(
        "STANDIN_STATE",
        &c.env.root.join("launchd").display().to_string(),
    );

    let (code, _, err) = c.env.output(&["service", "install"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains(&lima.display().to_string()), "{err}");
    assert!(err.contains("limactl autostart disable colima"), "{err}");
    assert!(!err.contains(&brew.display().to_string()), "{err}");
    let ours = c.env.home.join("Library/LaunchAgents/local.docker.plist");
    assert!(!ours.exists(), "nothing installed");

    let (_, out, err) = c.env.output(&["status"]);
    assert!(out.contains(&lima.display().to_string()), "{out}{err}");
    assert!(
        out.contains("limactl autostart disable colima"),
        "{out}{err}"
    );
    assert!(!out.contains("someone-else") && !out.contains(&brew.display().to_string()));
}

/// The longest a VM nobody claims may run on: the watcher's bound (20 s),
/// then `colima stop` within the profile's stop_timeout (30 s here), with
/// slack for a loaded machine.
const UNCLAIMED: Duration = Duration::from_secs(20 + 30 + 10);

/// Issue 17: a VM handed over (`prepare-restart`, then a stop: a logout
/// within the request's window) to a successor that never comes is
/// stopped by the watcher dockhand left, with `colima stop` as the
/// supervisor would.
#[test]
fn a_handed_over_vm_nobody_claims_is_stopped_by_its_watcher() {
    require_engine!();
    let mut c = Colima::new();
    let first = c.env.run();
    c.wait_ready();
    let ha = c.read_pid("ha.pid");
    let (code, out, err) = c.env.output(&["service", "prepare-restart"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("hands its engine over"), "{out}");
    assert_eq!(c.env.stop(first, Duration::from_secs(40)).code(), Some(0));
    assert!(
        c.env
            .log()
            .contains("the engine keeps running for the next supervisor"),
        "{}",
        c.env.log()
    );
    assert!(alive(ha), "handed over: kept for a successor at first");
    assert_eq!(c.count("stop"), 0, "{:?}", c.calls());
    eventually("the unclaimed VM stopped", UNCLAIMED, || !alive(ha));
    assert_eq!(c.count("stop default"), 1, "{:?}", c.calls());
    assert!(
        c.env
            .log()
            .contains("no supervisor took over the Colima VM default"),
        "{}",
        c.env.log()
    );
    eventually("the watcher gone", Duration::from_secs(10), || {
        c.env.our_processes().is_empty()
    });
    assert!(!c.docker_works());
}

/// Issue 17: dockhand SIGKILLed and no supervisor after it (the service
/// manager stopped, not restarting it): the watcher stops the VM; a
/// successor within the bound adopts it instead (the per-release tests).
#[test]
fn a_vm_whose_supervisor_was_killed_is_stopped_when_none_comes() {
    require_engine!();
    let mut c = Colima::new();
    // The oldest release: its home is $XDG_CONFIG_HOME/colima (no
    // COLIMA_HOME before 0.6.10), which the watcher's `colima stop` must
    // reach as the supervisor's did.
    c.release("0.6.9");
    let first = c.env.run();
    c.wait_ready();
    let ha = c.read_pid("ha.pid");
    c.env.signal(first, Signal::KILL);
    c.env.wait_exit(first, Duration::from_secs(5));
    assert!(alive(ha));
    eventually("the orphaned VM stopped", UNCLAIMED, || !alive(ha));
    assert_eq!(c.count("stop default"), 1, "{:?}", c.calls());
    eventually("nothing of ours left", Duration::from_secs(10), || {
        c.env.our_processes().is_empty()
    });
}
