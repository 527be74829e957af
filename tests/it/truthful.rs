//! Issue 17: `down`, `up`, `restart` and `status` say exactly what they
//! know. A supervisor that holds the profile but does not answer (its
//! control socket replaced by a FIFO or a regular file, or the process
//! stopped by SIGSTOP) is named with its pid, exit 8; never "nothing to
//! stop" while an engine runs; a command it only reads after its client
//! gave up is not carried out.

use std::io::Write;
use std::time::Duration;

use rustix::process::Signal;

use crate::harness::{self, Env};

/// The engine at `sock` answers `GET /_ping` with 200.
fn pings(sock: &std::path::Path) -> bool {
    use std::io::Read;
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(sock) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n";
    let mut out = String::new();
    s.write_all(req).is_ok()
        && s.read_to_string(&mut out).is_ok()
        && out.starts_with("HTTP/1.1 200")
}

/// A supervisor over the ping-server engine, ready.
fn ready_env() -> (Env, usize) {
    let mut env = Env::new();
    let server = harness::fixture("engine/ping-server");
    let sock = env.socket();
    env.command_config(&[server.to_str().unwrap(), sock.to_str().unwrap()], "");
    let i = env.run();
    env.wait_ready();
    (env, i)
}

/// A profile whose engine nobody supervises: the ping-server started by
/// hand on its socket, answering.
fn engine_started_by_hand(env: &Env) -> std::process::Child {
    env.command_config(&["/bin/true"], "");
    std::fs::create_dir_all(env.socket().parent().unwrap()).unwrap();
    let server = std::process::Command::new(harness::fixture("engine/ping-server"))
        .arg(env.socket())
        .spawn()
        .unwrap();
    harness::eventually("the engine", Duration::from_secs(10), || {
        pings(&env.socket())
    });
    server
}

/// Every command that drives the supervisor says it does not answer,
/// with its pid, and exits 8; the engine still runs.
fn all_say_not_answering(env: &Env, pid: i32) {
    for args in [&["down"][..], &["up"], &["restart"], &["status"]] {
        let (code, out, err) = env.output(args);
        let text = format!("{out}{err}");
        assert_eq!(code, 8, "{args:?}: {text}");
        assert!(
            text.contains(&format!("pid {pid}")) && text.contains("not answering"),
            "{args:?}: {text}"
        );
        assert!(!text.contains("nothing to stop"), "{args:?}: {text}");
    }
    let (code, out, _) = env.output(&["status", "--json"]);
    assert_eq!(code, 8);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["not_answering"].as_str().is_some(), "{v:#}");
    // With --json, the failure is a document too, with the same exit code.
    for args in [
        &["down", "--json"][..],
        &["up", "--json"],
        &["restart", "--json"],
    ] {
        let (code, out, err) = env.output(args);
        assert_eq!(code, 8, "{args:?}: {out}{err}");
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out:?}"));
        assert_eq!(v["ok"], false, "{v:#}");
        assert!(
            v["error"].as_str().unwrap().contains("not answering"),
            "{v:#}"
        );
    }
    assert!(pings(&env.socket()), "the engine was stopped");
}

#[test]
fn down_with_control_sock_replaced_by_a_fifo_names_the_supervisor() {
    let (env, i) = ready_env();
    let sock = env.state.join("control.sock");
    std::fs::remove_file(&sock).unwrap();
    let c = std::ffi::CString::new(sock.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    all_say_not_answering(&env, env.supervisor_pid(i));
}

#[test]
fn down_with_control_sock_replaced_by_a_file_names_the_supervisor() {
    let (env, i) = ready_env();
    let sock = env.state.join("control.sock");
    std::fs::remove_file(&sock).unwrap();
    std::fs::write(&sock, "not a socket\n").unwrap();
    all_say_not_answering(&env, env.supervisor_pid(i));
}

#[test]
fn down_against_a_stopped_supervisor_says_so_and_is_not_carried_out_later() {
    let (env, i) = ready_env();
    let pid = env.supervisor_pid(i);
    env.signal(i, Signal::STOP);
    all_say_not_answering(&env, pid);
    // doctor too: a frozen supervisor leaves its engine unsupervised.
    let (code, out, _) = env.output(&["doctor", "--json"]);
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let sup = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "supervisor")
        .unwrap();
    assert_eq!(sup["status"], "fail", "{sup}");
    assert!(
        sup["summary"].as_str().unwrap().contains("not answering"),
        "{sup}"
    );
    assert!(
        sup["fix"]
            .as_str()
            .unwrap()
            .contains(&format!("kill -CONT {pid}")),
        "{sup}"
    );
    // A stop request that reaches it while it is stopped, whose client
    // then gives up and goes away: dropped when it is read.
    let mut c = std::os::unix::net::UnixStream::connect(env.state.join("control.sock")).unwrap();
    c.write_all(b"{\"cmd\":\"stop\"}\n").unwrap();
    drop(c);
    env.signal(i, Signal::CONT);
    harness::eventually(
        "the dropped request in the log",
        Duration::from_secs(20),
        || {
            env.log()
                .contains("dropped a Stop request whose client went away")
        },
    );
    let (code, v) = env.status();
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["phase"], "ready", "{v:#}");
    assert!(
        v["held"].is_null(),
        "the timed-out down was carried out: {v:#}"
    );
    assert!(pings(&env.socket()));
}

#[test]
fn down_without_a_supervisor_but_a_running_engine_does_not_say_nothing_to_stop() {
    let env = Env::new();
    let mut server = engine_started_by_hand(&env);
    let (code, out, err) = env.output(&["down"]);
    let _ = server.kill();
    let _ = server.wait();
    assert_ne!(code, 0, "{out}{err}");
    assert!(!out.contains("nothing to stop"), "{out}");
    assert!(err.contains("an engine answers on"), "{err}");
}

/// An engine dockhand adopted without a process it can verify (started by
/// hand on the socket) is never stopped by dockhand: `down` and `restart`
/// say so (exit 1) instead of reporting a stop or restart that did not
/// happen, and it keeps running.
#[test]
fn down_and_restart_of_an_engine_dockhand_did_not_start_say_so() {
    let mut env = Env::new();
    let mut server = engine_started_by_hand(&env);
    env.run();
    let v = env.wait_ready();
    assert_eq!(v["adopted"], true, "{v:#}");
    for args in [&["down"][..], &["restart"]] {
        let (code, out, err) = env.output(args);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(
            err.contains("was not started by dockhand"),
            "{args:?}: {err}"
        );
        assert!(
            !out.contains("stopped;") && !out.contains("ready in"),
            "{out}"
        );
    }
    let (code, out, _) = env.output(&["down", "--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false, "{v:#}");
    assert!(pings(&env.socket()), "the hand-started engine was stopped");
    assert_eq!(env.status().1["phase"], "ready");
    server.kill().unwrap();
    server.wait().unwrap();
}

/// `down` outlasts a restart of dockhand (here: SIGKILL, then a new `run`,
/// as systemd's `Restart=` or an activation would): the engine stays
/// stopped until `up`. A hold from another boot is not in force.
#[test]
fn down_outlasts_a_restart_of_dockhand_until_up() {
    let (mut env, i) = ready_env();
    let (code, out, err) = env.output(&["down"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!pings(&env.socket()));
    env.signal(i, Signal::KILL);
    env.wait_exit(i, Duration::from_secs(10));
    let second = env.run();
    let v = env.wait_until("held down again", Duration::from_secs(20), |v| {
        v["supervisor_running"] == true && v["held"] == "down"
    });
    assert_eq!(v["phase"], "stopped", "{v:#}");
    assert!(!pings(&env.socket()), "a restart of dockhand undid `down`");
    let (code, out, err) = env.output(&["up"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(pings(&env.socket()));
    assert!(!env.state.join("held-down").exists());

    // A `down` of an earlier boot: docker works again after a reboot.
    let (code, _, _) = env.output(&["down"]);
    assert_eq!(code, 0);
    env.signal(second, Signal::KILL);
    env.wait_exit(second, Duration::from_secs(10));
    std::fs::write(
        env.state.join("held-down"),
        "00000000-0000-0000-0000-000000000000",
    )
    .unwrap();
    env.run();
    env.wait_ready();
    assert!(pings(&env.socket()));
}

/// A removed `control.sock` is put back (as the lock file is): commands
/// reach the supervisor again within seconds, not "not answering" forever.
#[test]
fn a_removed_control_socket_is_put_back() {
    let (env, _) = ready_env();
    std::fs::remove_file(env.state.join("control.sock")).unwrap();
    harness::eventually("control.sock put back", Duration::from_secs(15), || {
        let (code, v) = env.status();
        code == 0 && v["source"] == "control_socket"
    });
    let (code, out, err) = env.output(&["down"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!pings(&env.socket()));
}

/// A supervisor killed, then its engine gone: `status` says stopped, not
/// the `ready` the dead supervisor last recorded.
#[test]
fn status_after_the_supervisor_and_its_engine_died_says_stopped() {
    let (mut env, i) = ready_env();
    let engine = env.status().1["engine_pid"].as_i64().unwrap() as i32;
    env.signal(i, Signal::KILL);
    env.wait_exit(i, Duration::from_secs(10));
    harness::kill(engine, Signal::KILL);
    harness::eventually("the engine gone", Duration::from_secs(10), || {
        !pings(&env.socket())
    });
    let (code, v) = env.status();
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["phase"], "stopped", "{v:#}");
    assert_eq!(v["supervisor_running"], false, "{v:#}");
    assert!(v["engine_pid"].is_null(), "{v:#}");
}

/// The supervisor stopped (SIGTERM, its service stopped) while a `down`
/// waits for the engine to stop: `down` reports what is true (no engine
/// answers: exit 0), not an I/O error.
#[test]
fn down_whose_supervisor_ends_meanwhile_says_what_is_true() {
    let mut env = Env::new();
    let server = harness::fixture("engine/ping-server");
    let sock = env.socket();
    env.command_config(
        &[
            server.to_str().unwrap(),
            sock.to_str().unwrap(),
            "--ignore-term",
        ],
        "stop_timeout = \"3s\"",
    );
    let i = env.run();
    env.wait_ready();
    let down = env
        .cmd(&["down"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    env.wait_until("stopping", Duration::from_secs(10), |v| {
        v["phase"] == "stopping"
    });
    env.signal(i, Signal::TERM);
    let out = down.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("end of file"), "{text}");
    assert!(!pings(&sock));
}
