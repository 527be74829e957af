//! `dockhand run` against a real dockerd (Debian's docker.io) on a private
//! socket, data root and exec root, and against command engines.

use std::time::Duration;

use rustix::process::Signal;

use crate::harness::{self, Env, alive, eventually, require_engine};

fn engine_pid(v: &serde_json::Value) -> i32 {
    v["engine_pid"].as_i64().expect("engine_pid is set") as i32
}

#[test]
fn cold_start_to_ready_then_sigterm_leaves_nothing() {
    require_engine!();
    let mut env = Env::new();
    env.dockerd_config("");
    let sup = env.run();
    let v = env.wait_ready();
    assert_eq!(v["supervisor_running"], true);
    assert_eq!(v["profile"], "default");
    assert_eq!(v["restarts"], 0);
    let pid = engine_pid(&v);
    assert!(alive(pid));
    assert!(env.docker_works(), "the docker CLI can't reach the engine");
    let (code, _, _) = env.output(&["status"]);
    assert_eq!(code, 0, "status exits 0 when ready");

    // SIGTERM: the engine stops within stop_timeout (10 s), dockhand
    // exits 0, and nothing of ours is left.
    let status = env.stop(sup, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{}", env.log());
    assert!(!alive(pid), "dockerd survived the stop");
    assert_eq!(env.our_processes(), vec![], "processes left behind");
    assert!(!env.socket().exists(), "socket left behind");
    assert!(
        !env.state.join("dockerd.pid").exists(),
        "pid file left behind"
    );
    assert!(!env.state.join("engine.json").exists());
    let (code, v) = env.status();
    assert_eq!(code, 1);
    assert_eq!(v["phase"], "stopped");
    assert_eq!(v["supervisor_running"], false);
    assert_eq!(v["socket_answers"], false);
    let log = env.log();
    for line in [
        "starting: supervisor started",
        "ready: engine answers /_ping",
        "stopping:",
        "stopped:",
    ] {
        assert!(log.contains(line), "log lacks {line:?}:\n{log}");
    }
}

#[test]
fn sigkill_of_dockerd_is_noticed_and_replaced() {
    require_engine!();
    let mut env = Env::new();
    // A long probe interval: the crash must be noticed by the exit watch,
    // not by a probe.
    env.dockerd_config("probe_interval = \"1h\"\nprobe_timeout = \"2s\"");
    env.run();
    let first = engine_pid(&env.wait_ready());
    harness::kill(first, Signal::KILL);
    let v = env.wait_until("a new engine", Duration::from_secs(60), |v| {
        v["phase"] == "ready" && v["socket_answers"] == true && v["engine_pid"] != first
    });
    assert_eq!(v["restarts"], 1);
    assert!(env.docker_works());
    assert!(
        env.log().contains("restarting: engine killed by signal 9"),
        "{}",
        env.log()
    );
}

#[test]
fn sigstop_is_detected_as_hung_and_replaced() {
    require_engine!();
    let mut env = Env::new();
    env.dockerd_config("");
    env.run();
    let first = engine_pid(&env.wait_ready());
    harness::kill(first, Signal::STOP);
    let v = env.wait_until("a new engine", Duration::from_secs(60), |v| {
        v["phase"] == "ready" && v["socket_answers"] == true && v["engine_pid"] != first
    });
    assert!(v["restarts"].as_u64() >= Some(1));
    eventually(
        "the hung dockerd to be gone",
        Duration::from_secs(15),
        || !alive(first),
    );
    let log = env.log();
    assert!(
        log.contains("unhealthy: probe failed: no answer to /_ping in time"),
        "{log}"
    );
    assert!(env.docker_works());
}

#[test]
fn unclean_stop_leaves_stale_files_that_are_cleaned() {
    require_engine!();
    let mut env = Env::new();
    env.dockerd_config("");
    let sup = env.run();
    let pid = engine_pid(&env.wait_ready());
    // A power cut, as far as files go: both die without cleaning up.
    env.signal(sup, Signal::KILL);
    env.wait_exit(sup, Duration::from_secs(5));
    harness::kill(pid, Signal::KILL);
    eventually("dockerd to die", Duration::from_secs(5), || !alive(pid));
    assert!(
        env.state.join("dockerd.pid").exists(),
        "dockerd left no pid file"
    );
    assert!(env.socket().exists(), "dockerd left no socket");
    harness::unmount_under(&env.state);

    env.run();
    let v = env.wait_ready();
    assert_ne!(engine_pid(&v), pid);
    let log = env.log();
    assert!(log.contains("removed stale pid file"), "{log}");
    assert!(log.contains("removed dead socket"), "{log}");
}

#[test]
fn pid_file_naming_an_unrelated_live_process_spares_it() {
    require_engine!();
    let mut env = Env::new();
    env.dockerd_config("");
    let mut victim = harness::bystander();
    let vpid = victim.id() as i32;
    std::fs::create_dir_all(&env.state).unwrap();
    std::fs::write(env.state.join("dockerd.pid"), format!("{vpid}\n")).unwrap();
    std::fs::write(
        env.state.join("engine.json"),
        format!("{{\"pid\":{vpid},\"start\":1}}"),
    )
    .unwrap();
    let sup = env.run();
    let v = env.wait_ready();
    assert_ne!(engine_pid(&v), vpid);
    assert!(
        env.log().contains(&format!(
            "pid {vpid} is another program (sleep), left alone"
        )),
        "{}",
        env.log()
    );
    assert_eq!(env.stop(sup, Duration::from_secs(15)).code(), Some(0));
    assert!(alive(vpid), "dockhand killed an unrelated process");
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[test]
fn adopts_a_healthy_engine_after_its_supervisor_died() {
    require_engine!();
    let mut env = Env::new();
    env.dockerd_config("");
    let first = env.run();
    let pid = engine_pid(&env.wait_ready());
    // dockhand dies; the engine, in its own process group, lives on (as
    // with launchd's AbandonProcessGroup or systemd's KillMode=process).
    env.signal(first, Signal::KILL);
    env.wait_exit(first, Duration::from_secs(5));
    assert!(alive(pid));
    let second = env.run();
    let v = env.wait_ready();
    assert_eq!(
        engine_pid(&v),
        pid,
        "a second engine was started instead of adopting"
    );
    assert!(
        env.log().contains("ready: adopted the running engine"),
        "{}",
        env.log()
    );
    // The adopted engine is watched: its crash is noticed.
    harness::kill(pid, Signal::KILL);
    env.wait_until("a replacement", Duration::from_secs(60), |v| {
        v["phase"] == "ready" && v["engine_pid"] != pid && v["socket_answers"] == true
    });
    assert_eq!(env.stop(second, Duration::from_secs(15)).code(), Some(0));
    assert_eq!(env.our_processes(), vec![]);
}

#[test]
fn adopts_an_engine_started_by_hand() {
    require_engine!();
    let mut env = Env::new();
    env.dockerd_config("");
    std::fs::create_dir_all(&env.state).unwrap();
    let sock = env.root.join("hand.sock");
    env.write_config(&format!(
        "[profiles.default]\nstate_dir = \"{}\"\nsocket = \"{}\"\n",
        env.state.display(),
        sock.display()
    ));
    let mut server = std::process::Command::new(harness::fixture("engine/ping-server"))
        .arg(&sock)
        .spawn()
        .unwrap();
    harness::eventually("the hand-started engine", Duration::from_secs(10), || {
        sock.exists()
    });
    let sup = env.run();
    let v = env.wait_ready();
    assert_eq!(v["engine_pid"], serde_json::Value::Null);
    assert!(env.log().contains("adopted"), "{}", env.log());
    let (_, human, _) = env.output(&["status"]);
    assert!(human.contains("engine: adopted"), "{human}");
    // Not ours to stop: it has no pid dockhand can verify.
    assert_eq!(env.stop(sup, Duration::from_secs(15)).code(), Some(0));
    assert!(
        env.log().contains("the engine was left running"),
        "{}",
        env.log()
    );
    assert!(
        alive(server.id() as i32),
        "dockhand stopped an engine it can't vouch for"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn a_second_run_is_refused_and_touches_nothing() {
    require_engine!();
    let mut env = Env::new();
    env.dockerd_config("");
    env.run();
    let before = env.wait_ready();
    let state_before = std::fs::read(env.state.join("state.json")).unwrap();
    let (code, _, err) = env.output(&["run"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("already runs profile `default`"), "{err}");
    assert!(err.contains(&before["supervisor_pid"].to_string()), "{err}");
    assert_eq!(
        std::fs::read(env.state.join("state.json")).unwrap(),
        state_before
    );
    let (code, after) = env.status();
    assert_eq!(code, 0);
    assert_eq!(after["engine_pid"], before["engine_pid"]);
}

#[test]
fn a_crashing_command_backs_off_with_one_child_at_a_time() {
    require_engine!();
    let mut env = Env::new();
    // Each attempt leaves a grandchild in its process group and exits 3.
    let fake = env.root.join("crasher.sh");
    std::fs::write(&fake, "#!/bin/sh\necho dying\nsleep 300 &\nexit 3\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    env.command_config(&[fake.to_str().unwrap()], "");
    let sup = env.run();
    let mut max_alive = 0;
    let v = env.wait_until("five failed starts", Duration::from_secs(60), |v| {
        // `sleep 300` children of the crasher: at most one attempt's worth.
        let n = sleeping_children(&env);
        max_alive = max_alive.max(n);
        v["restarts"].as_u64() >= Some(4) && v["phase"] == "failed"
    });
    assert!(max_alive <= 1, "{max_alive} attempts alive at once");
    assert_eq!(v["phase"], "failed", "{v:#}");
    let err = v["last_error"].as_str().unwrap();
    assert!(err.contains("exit code 3"), "{err}");
    assert!(err.contains("next attempt in"), "{err}");
    // The last words are this attempt's, not a line from each earlier one.
    assert_eq!(err.matches("dying").count(), 1, "{err}");
    // Backoff: the gaps between attempts grow (1 s, 2 s, 4 s, capped).
    let starts = start_times(&env.log());
    assert!(starts.len() >= 4, "{}", env.log());
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // Attempts 1→2 and 2→3 wait 1 s, then 2 s, then 4 s (the cap here).
    assert!(gaps.len() >= 4, "gaps {gaps:?}");
    assert!(
        gaps[0] >= 0.9 && gaps[1] >= 0.9 && gaps[2] >= 1.9 && gaps[3] >= 3.9,
        "gaps {gaps:?}"
    );
    assert!(
        gaps.iter().all(|g| *g < 4.0 + 3.0),
        "cap exceeded: {gaps:?}"
    );
    assert_eq!(env.stop(sup, Duration::from_secs(10)).code(), Some(0));
    assert_eq!(sleeping_children(&env), 0, "a grandchild outlived dockhand");
}

/// Seconds since midnight of each "started" log line.
fn start_times(log: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.contains(" started "))
        .filter_map(|l| {
            let t = l.split('T').nth(1)?.split('Z').next()?;
            let mut p = t.split(':');
            let h: f64 = p.next()?.parse().ok()?;
            let m: f64 = p.next()?.parse().ok()?;
            let s: f64 = p.next()?.parse().ok()?;
            Some(h * 3600.0 + m * 60.0 + s)
        })
        .collect()
}

/// Live `sleep` processes in the process groups of the attempts that
/// dockhand's log names (each attempt leads its own group).
fn sleeping_children(env: &Env) -> usize {
    let log = env.log();
    let pgids: Vec<i32> = log
        .lines()
        .filter_map(|l| l.split("(pid ").nth(1)?.split(')').next()?.parse().ok())
        .collect();
    let mut n = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(i) = stat.rfind(')') else { continue };
        let f: Vec<&str> = stat[i + 1..].split_whitespace().collect();
        if f[0] == "Z" {
            continue;
        }
        let pgrp: i32 = f[2].parse().unwrap_or(0);
        if pgids.contains(&pgrp) && stat.contains("(sleep)") {
            n += 1;
        }
    }
    n
}

#[test]
fn sigterm_kills_an_engine_that_ignores_it_after_stop_timeout() {
    require_engine!();
    let mut env = Env::new();
    env.stubborn_engine_config("stop_timeout = \"2s\"");
    let sup = env.run();
    let v = env.wait_ready();
    let pid = engine_pid(&v);
    env.signal(sup, Signal::TERM);
    // During the grace period the phase is `stopping`.
    env.wait_until("stopping", Duration::from_secs(5), |v| {
        v["phase"] == "stopping"
    });
    let status = env.wait_exit(sup, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert!(!alive(pid));
    assert!(
        env.log().contains("did not stop within 2s"),
        "{}",
        env.log()
    );
    assert_eq!(env.our_processes(), vec![]);
}

#[test]
fn status_json_in_each_phase() {
    require_engine!();
    let mut env = Env::new();
    // No supervisor yet.
    env.dockerd_config("");
    let (code, v) = env.status();
    assert_eq!(code, 1);
    assert_eq!(v["phase"], "stopped");
    assert_eq!(v["supervisor_running"], false);
    assert_eq!(v["socket_answers"], false);
    for key in [
        "profile",
        "phase",
        "engine_pid",
        "socket",
        "restarts",
        "last_error",
        "since",
    ] {
        assert!(v.get(key).is_some(), "status --json lacks {key}: {v:#}");
    }

    // starting: an engine that never answers.
    let sock = env.socket();
    env.command_config(&["sleep", "600"], "start_timeout = \"2s\"");
    let sup = env.run();
    env.wait_until("starting", Duration::from_secs(10), |v| {
        v["phase"] == "starting" && v["supervisor_running"] == true && v["engine_pid"].is_i64()
    });
    // failed: start_timeout passes; last_error says why.
    let v = env.wait_until("failed", Duration::from_secs(15), |v| {
        v["phase"] == "failed"
    });
    let err = v["last_error"].as_str().unwrap();
    assert!(err.contains("did not answer on"), "{err}");
    assert!(err.contains(sock.to_str().unwrap()), "{err}");
    assert_eq!(env.status().0, 1);
    assert_eq!(env.stop(sup, Duration::from_secs(10)).code(), Some(0));

    // ready, unhealthy, restarting: an engine that hangs and ignores TERM.
    env.stubborn_engine_config("probe_timeout = \"1s\"\nstop_timeout = \"2s\"");
    let sup = env.run();
    let pid = engine_pid(&env.wait_ready());
    assert_eq!(env.status().0, 0);
    harness::kill(pid, Signal::STOP);
    let v = env.wait_until("unhealthy", Duration::from_secs(10), |v| {
        v["phase"] == "unhealthy"
    });
    assert!(v["last_error"].as_str().unwrap().contains("probe failed"));
    assert_eq!(env.status().0, 1);
    let v = env.wait_until("restarting", Duration::from_secs(10), |v| {
        v["phase"] == "restarting"
    });
    assert!(
        v["last_error"]
            .as_str()
            .unwrap()
            .contains("does not answer")
    );
    env.wait_until("ready again", Duration::from_secs(20), |v| {
        v["phase"] == "ready" && v["engine_pid"] != pid
    });
    // stopping, then stopped.
    env.signal(sup, Signal::TERM);
    env.wait_until("stopping", Duration::from_secs(5), |v| {
        v["phase"] == "stopping"
    });
    env.wait_exit(sup, Duration::from_secs(10));
    let (code, v) = env.status();
    assert_eq!((code, v["phase"].as_str()), (1, Some("stopped")));
}

#[test]
fn a_missing_engine_binary_says_which_and_how_to_get_it() {
    let env = Env::new();
    env.write_config(&format!(
        "[profiles.default]\nengine = \"dockerd\"\nstate_dir = \"{}\"\n[profiles.default.dockerd]\nbinary = \"/nonexistent/dockerd\"\n",
        env.state.display()
    ));
    let (code, _, err) = env.output(&["run"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("`/nonexistent/dockerd` does not exist"),
        "{err}"
    );
    assert!(err.contains("apt install docker.io"), "{err}");
}

#[test]
fn a_socket_path_someone_else_uses_is_left_alone() {
    require_engine!();
    let mut env = Env::new();
    // Another program answers there, but not as a Docker engine.
    let server = harness::fixture("engine/ping-server");
    std::fs::create_dir_all(&env.state).unwrap();
    let mut other = std::process::Command::new(&server)
        .arg(env.socket())
        .args(["--status", "500"])
        .spawn()
        .unwrap();
    eventually(
        "the other program's socket",
        Duration::from_secs(10),
        || env.socket().exists(),
    );
    env.dockerd_config("");
    let i = env.run();
    let status = env.wait_exit(i, Duration::from_secs(30));
    assert_eq!(status.code(), Some(6), "{}", env.log());
    assert!(
        env.log().contains("is in use by another program"),
        "{}",
        env.log()
    );
    assert!(env.socket().exists());
    assert!(alive(other.id() as i32));
    other.kill().unwrap();
    other.wait().unwrap();
}

#[test]
fn docker_run_works_through_the_supervised_engine() {
    require_engine!();
    let mut env = Env::new();
    env.dockerd_config("");
    let sup = env.run();
    env.wait_ready();
    let tar = harness::busybox_tar(&env.root);
    let host = format!("unix://{}", env.socket().display());
    let docker = |args: &[&str]| {
        std::process::Command::new("docker")
            .arg("-H")
            .arg(&host)
            .args(args)
            .output()
            .unwrap()
    };
    let o = docker(&["import", tar.to_str().unwrap(), "bb"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "bb",
        "/bin/busybox",
        "echo",
        "hi from dockhand",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "hi from dockhand"
    );
    assert_eq!(env.stop(sup, Duration::from_secs(20)).code(), Some(0));
}

#[test]
fn systemd_hears_ready_when_docker_answers_and_stopping_on_stop() {
    require_engine!();
    let mut env = Env::new();
    env.dockerd_config("");
    // Type=notify: systemd's notification socket, played by the test.
    let path = env.root.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    env.extra_env
        .push(("NOTIFY_SOCKET".into(), path.display().to_string()));
    let sup = env.run();
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    // Messages until READY=1; by then docker must answer.
    loop {
        let n = sock.recv(&mut buf).expect("no READY=1 from dockhand");
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        seen.push(msg.clone());
        if msg.lines().any(|l| l == "READY=1") {
            assert!(msg.contains("STATUS=ready"), "{msg:?} {seen:?}");
            break;
        }
    }
    assert!(env.docker_works(), "READY=1 before docker answered");
    assert!(seen[0].contains("STATUS=starting"), "{seen:?}");
    env.signal(sup, Signal::TERM);
    loop {
        let n = sock.recv(&mut buf).expect("no STOPPING=1 from dockhand");
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "STOPPING=1")
        {
            break;
        }
    }
    assert_eq!(env.wait_exit(sup, Duration::from_secs(15)).code(), Some(0));
}

#[test]
fn state_and_log_in_a_world_writable_directory_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let shared = env.root.join("shared-tmp");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    for (key, value) in [
        ("state_dir", shared.display().to_string()),
        ("log_file", shared.join("docker.log").display().to_string()),
    ] {
        let state = if key == "state_dir" {
            value.clone()
        } else {
            env.state.display().to_string()
        };
        env.write_config(&format!(
            "[profiles.default]\nengine = \"command\"\nsocket = \"{}/s.sock\"\nstate_dir = \"{state}\"\n{}[profiles.default.command]\nargv = [\"sleep\", \"1\"]\n",
            env.root.display(),
            if key == "log_file" { format!("log_file = \"{value}\"\n") } else { String::new() },
        ));
        let (code, _, err) = env.output(&["run"]);
        assert_eq!(code, 6, "{key}: {err}");
        assert!(err.contains("is writable by others"), "{key}: {err}");
        let mode = std::fs::metadata(&shared).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o7777,
            0o1777,
            "dockhand changed the shared directory"
        );
        assert_eq!(
            std::fs::read_dir(&shared).unwrap().count(),
            0,
            "{key}: wrote into it"
        );
    }
}

#[test]
fn ctrl_c_during_a_slow_start_stops_the_engine_and_exits_0() {
    require_engine!();
    let mut env = Env::new();
    env.command_config(&["sleep", "600"], "start_timeout = \"10m\"");
    let sup = env.run();
    let v = env.wait_until(
        "starting with an engine pid",
        Duration::from_secs(10),
        |v| v["phase"] == "starting" && v["engine_pid"].is_i64(),
    );
    let pid = engine_pid(&v);
    env.signal(sup, Signal::INT);
    assert_eq!(env.wait_exit(sup, Duration::from_secs(10)).code(), Some(0));
    assert!(!alive(pid), "the starting engine outlived dockhand");
    let (_, v) = env.status();
    assert_eq!(v["phase"], "stopped");
    assert!(
        env.log().contains("SIGINT received: stopping"),
        "{}",
        env.log()
    );
}

#[test]
fn an_unreadable_state_file_is_reported_not_hidden() {
    let env = Env::new();
    env.dockerd_config("");
    std::fs::create_dir_all(&env.state).unwrap();
    std::fs::write(env.state.join("state.json"), "{garbage").unwrap();
    let (code, v) = env.status();
    assert_eq!(code, 1);
    assert!(
        v["state_error"].as_str().unwrap().contains("state.json"),
        "{v:#}"
    );
    let (_, out, _) = env.output(&["status"]);
    assert!(out.contains("state: unreadable"), "{out}");
}

#[test]
fn a_second_ctrl_c_kills_at_once() {
    require_engine!();
    let mut env = Env::new();
    env.stubborn_engine_config("stop_timeout = \"10m\"");
    let sup = env.run();
    let pid = engine_pid(&env.wait_ready());
    env.signal(sup, Signal::INT);
    env.wait_until("stopping", Duration::from_secs(5), |v| {
        v["phase"] == "stopping"
    });
    env.signal(sup, Signal::INT);
    // Far sooner than the 10 minute stop_timeout.
    assert_eq!(env.wait_exit(sup, Duration::from_secs(20)).code(), Some(0));
    assert!(!alive(pid));
    assert!(
        env.log().contains("second SIGINT: stopping now"),
        "{}",
        env.log()
    );
}

/// A resume from sleep, as dockhand sees one: the wall clock jumps ahead
/// while the monotonic clock doesn't. libfaketime (Debian's faketime)
/// moves the supervisor's wall clock; the probe interval is an hour, so
/// only the resume check can notice that the engine hung meanwhile.
#[test]
fn a_resume_from_sleep_probes_at_once() {
    require_engine!();
    let lib = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists())
        .unwrap_or_default();
    if !lib.exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "libfaketime is missing: apt-get install faketime"
        );
        eprintln!("SKIP: libfaketime not installed (apt-get install faketime)");
        return;
    }
    let mut env = Env::new();
    let offset = env.root.join("faketime");
    std::fs::write(&offset, "+0\n").unwrap();
    env.extra_env = vec![
        ("LD_PRELOAD".into(), lib.display().to_string()),
        (
            "FAKETIME_TIMESTAMP_FILE".into(),
            offset.display().to_string(),
        ),
        ("FAKETIME_NO_CACHE".into(), "1".into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ];
    env.stubborn_engine_config(
        "probe_interval = \"1h\"\nprobe_timeout = \"1s\"\nstop_timeout = \"1s\"",
    );
    env.run();
    let pid = engine_pid(&env.wait_ready());
    // The machine "sleeps": the engine hangs, and two hours pass on the
    // wall clock only.
    harness::kill(pid, Signal::STOP);
    std::fs::write(&offset, "+2h\n").unwrap();
    // Restarted only after the resume grace period (60 s).
    env.wait_until("a new engine", Duration::from_secs(120), |v| {
        v["phase"] == "ready" && v["engine_pid"] != pid
    });
    let log = env.log();
    assert!(log.contains("resumed from sleep"), "{log}");
    assert!(log.contains("unhealthy: probe failed"), "{log}");
}

#[test]
fn a_second_ctrl_c_also_kills_an_adopted_engine() {
    require_engine!();
    let mut env = Env::new();
    env.stubborn_engine_config("stop_timeout = \"10m\"");
    let first = env.run();
    let pid = engine_pid(&env.wait_ready());
    env.signal(first, Signal::KILL);
    env.wait_exit(first, Duration::from_secs(5));
    let second = env.run();
    assert_eq!(engine_pid(&env.wait_ready()), pid, "not adopted");
    env.signal(second, Signal::INT);
    env.wait_until("stopping", Duration::from_secs(5), |v| {
        v["phase"] == "stopping"
    });
    env.signal(second, Signal::INT);
    assert_eq!(
        env.wait_exit(second, Duration::from_secs(20)).code(),
        Some(0)
    );
    assert!(!alive(pid), "the adopted engine survived a forced stop");
}
