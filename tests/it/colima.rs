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
}

#[test]
fn starts_adopts_and_stops_colima() {
    require_engine!();
    let mut c = Colima::new();
    let first = c.env.run();
    let v = c.wait_ready();
    let ha = c.read_pid("ha.pid");
    assert_eq!(v["engine_pid"], ha, "the host agent is the watched process");
    assert!(c.docker_works());
    assert!(
        c.calls()
            .iter()
            .any(|l| l.starts_with("start default --cpu 2 --memory 4 --runtime docker")),
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
        log.contains("was not stopped cleanly: colima stop --force"),
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
