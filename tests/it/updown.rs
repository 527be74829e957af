//! `up`, `down`, `restart` and the control socket, against a real
//! supervisor over a real dockerd (and the Colima stand-in for Lima's log
//! in the progress).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{self, Env, Streaming, require_engine};

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// The supervisor serves its control socket (it binds it before starting
/// the engine).
fn control_socket_up(env: &Env) {
    let sock = env.state.join("control.sock");
    harness::eventually("the control socket", Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(&sock).is_ok()
    });
}

#[test]
fn down_keeps_it_stopped_then_up_and_restart_bring_it_back() {
    require_engine!();
    let mut env = Env::new();
    env.dockerd_config("");
    env.run();
    let v = env.wait_ready();
    let first = v["engine_pid"].as_i64().unwrap() as i32;
    let (code, v) = env.status();
    assert_eq!(code, 0);
    assert_eq!(v["source"], "control_socket", "{v:#}");

    // up on a ready engine: at once, exit 0.
    let (code, out, err) = env.output(&["up"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("✓ ready in"), "{out}");
    // Even with no time to wait, a ready engine is reported ready, never
    // with the supervisor's state missing (the deadline used to race the
    // supervisor's first answer: 1 run in 40 said `"state": null`).
    for _ in 0..40 {
        let (code, out, err) = env.output(&["up", "--timeout", "0s", "--json"]);
        let v = json(&out);
        assert_eq!((code, &v["ok"]), (0, &Value::Bool(true)), "{out}{err}");
        assert_eq!(v["state"]["phase"], "ready", "{out}");
    }

    // down: stopped gracefully, and held stopped across probe intervals.
    let (code, out, err) = env.output(&["down"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("held stopped until `dockhand up"), "{out}");
    assert!(!harness::alive(first), "dockerd still runs after down");
    assert!(!env.docker_works());
    // probe_interval is 1 s: three intervals pass, nothing restarts it.
    std::thread::sleep(Duration::from_secs(3));
    let (code, v) = env.status();
    assert_eq!(code, 1);
    assert_eq!(v["phase"], "stopped", "{v:#}");
    assert_eq!(v["held"], "down");
    assert_eq!(v["supervisor_running"], true);
    let (_, text, _) = env.output(&["status"]);
    assert!(text.contains("stopped by `dockhand down`"), "{text}");
    assert!(!env.log().contains("restarting"), "{}", env.log());
    // doctor: a stopped-on-purpose engine is a warning, not a failure.
    let (_, out, _) = env.output(&["doctor", "--json"]);
    let d = json(&out);
    let sock = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "socket")
        .unwrap();
    assert_eq!(sock["status"], "warn", "{sock}");
    assert!(
        sock["summary"]
            .as_str()
            .unwrap()
            .contains("stopped by `dockhand down`"),
        "{sock}"
    );

    // up: started again, plain lines in a pipe, JSON with --json.
    let (code, out, err) = env.output(&["up"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("waiting for /_ping\n"), "{out}");
    assert!(
        !out.contains('\r') && !out.contains('\x1b'),
        "terminal codes in a pipe: {out:?}"
    );
    assert!(env.docker_works());
    let second = env.status().1["engine_pid"].as_i64().unwrap();

    // restart: a new engine, same supervisor.
    let (code, out, err) = env.output(&["restart", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let v = json(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["state"]["phase"], "ready");
    assert_ne!(v["state"]["engine_pid"].as_i64().unwrap(), second);
    assert!(env.docker_works());

    let (code, out, _) = env.output(&["down", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(json(&out)["state"]["held"], "down");
}

#[test]
fn up_times_out_with_the_last_error() {
    require_engine!();
    let mut env = Env::new();
    // An engine that never serves the socket: start_timeout ends each
    // try; the supervisor retries with backoff and `up` keeps waiting
    // until its own timeout, then reports the last error.
    env.command_config(&["/bin/sleep", "600"], "start_timeout = \"1s\"");
    env.run();
    control_socket_up(&env);
    let t = std::time::Instant::now();
    let (code, out, err) = env.output(&["up", "--timeout", "4s"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        t.elapsed() >= Duration::from_secs(4),
        "gave up before its timeout"
    );
    assert!(err.contains("not ready within the timeout"), "{err}");
    assert!(
        err.contains("(last error: /bin/sleep did not answer on"),
        "{err}"
    );
    assert!(err.contains("hint: `dockhand logs"), "{err}");
    // The attempts were shown as they failed.
    assert!(out.contains("failed: /bin/sleep did not answer"), "{out}");

    // --json: the same, as a document.
    let (code, out, err) = env.output(&["up", "--timeout", "1s", "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("not ready within the timeout"),
        "{v:#}"
    );
    assert_eq!(err, "", "--json keeps stderr quiet");

    // Ctrl-C stops waiting; the supervisor goes on.
    let mut up = Streaming::spawn(env.cmd(&["up", "--timeout", "60s"]));
    up.wait_for("failed: ", Duration::from_secs(20));
    harness::kill(up.child.id() as i32, rustix::process::Signal::INT);
    let (status, text) = up.finish(Duration::from_secs(10));
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(
        text.contains("interrupted; the supervisor goes on"),
        "{text}"
    );
    assert_eq!(env.status().1["supervisor_running"], true);
}

#[test]
fn restart_without_a_supervisor_says_to_use_up() {
    let env = Env::new();
    env.command_config(&["/bin/true"], "");
    let (code, _, err) = env.output(&["restart"]);
    assert_eq!(code, 1);
    assert!(err.contains("dockhand up"), "{err}");
    let (code, out, _) = env.output(&["down"]);
    assert_eq!(code, 0);
    assert!(out.contains("nothing to stop"), "{out}");
}

/// `up` with no supervisor installs and loads the service (against the
/// stand-in systemctl), then follows the supervisor the service starts.
#[test]
fn up_without_a_supervisor_installs_the_service() {
    require_engine!();
    let mut env = Env::new();
    env.dockerd_config("");
    let bin = env.root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let systemctl = bin.join("systemctl");
    std::fs::copy(harness::fixture("service/systemctl"), &systemctl).unwrap();
    let calls = env.root.join("calls.log");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    env.extra_env = vec![
        ("PATH".into(), path),
        ("DOCKHAND_SERVICE_PLATFORM".into(), "systemd".into()),
        ("DOCKHAND_TEST_LOG".into(), calls.display().to_string()),
        (
            "STANDIN_STATE".into(),
            env.root.join("standin").display().to_string(),
        ),
    ];
    let up = Streaming::spawn(env.cmd(&["up", "--timeout", "60s"]));
    let text = up.wait_for("installing the login service", Duration::from_secs(20));
    let unit = env
        .root
        .join("xdg-config/systemd/user/dockhand-default.service");
    assert!(text.contains(&unit.display().to_string()), "{text}");
    // Enabled and started, as `service install` does it.
    harness::eventually("systemctl enable + start", Duration::from_secs(20), || {
        std::fs::read_to_string(&calls).is_ok_and(|c| {
            c.contains("systemctl --user enable dockhand-default.service")
                && c.contains("systemctl --user start --no-block dockhand-default.service")
        })
    });
    assert!(unit.is_file());
    // The stand-in manager starts nothing: start the unit's command as
    // systemd would.
    let first = env.run();
    let mut up = up;
    let (status, text) = up.finish(Duration::from_secs(60));
    assert!(status.success(), "{text}");
    assert!(text.contains("✓ ready in"), "{text}");
    assert!(env.docker_works());
    // A second `up` finds the supervisor: no install.
    let before = std::fs::read_to_string(&calls).unwrap();
    let (code, out, err) = env.output(&["up"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("installing"), "{err}");
    assert_eq!(std::fs::read_to_string(&calls).unwrap(), before);

    // The service is installed and enabled but its supervisor is gone
    // (stopped cleanly, not restarted): `up` starts the service.
    assert_eq!(env.stop(first, Duration::from_secs(20)).code(), Some(0));
    let active = env.root.join("standin/dockhand-default.service.active");
    let _ = std::fs::remove_file(&active);
    let up = Streaming::spawn(env.cmd(&["up", "--timeout", "60s"]));
    up.wait_for("starting the login service", Duration::from_secs(20));
    harness::eventually("systemctl restart", Duration::from_secs(20), || {
        std::fs::read_to_string(&calls).is_ok_and(|c| {
            c.contains("systemctl --user restart --no-block dockhand-default.service")
        })
    });
    env.run();
    let mut up = up;
    let (status, text) = up.finish(Duration::from_secs(60));
    assert!(status.success(), "{text}");
    assert!(env.docker_works());

    // down --service: the engine stopped, the unit stopped but kept (and
    // enabled: it comes back at the next login).
    let (code, out, err) = env.output(&["down", "--service"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!env.docker_works());
    assert!(unit.exists(), "down --service removed the unit");
    let calls = std::fs::read_to_string(&calls).unwrap();
    assert!(
        calls.contains("systemctl --user stop dockhand-default.service")
            && !calls.contains("disable"),
        "{calls}"
    );
}

/// `script` runs the command in a pseudo-terminal and copies its output.
fn in_pty(env: &Env, args: &[&str], extra: &[(&str, &str)]) -> (bool, String) {
    let mut line = format!("{} --config {}", harness::BIN, env.config.display());
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    // The environment the harness gives dockhand, around `script`.
    let c = env.cmd(&[]);
    let mut s = Command::new("script");
    s.args(["-qec", &line, "/dev/null"]);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => s.env(k, v),
            None => s.env_remove(k),
        };
    }
    s.env("TERM", "xterm-256color").env_remove("NO_COLOR");
    for (k, v) in extra {
        s.env(k, v);
    }
    let o = s.output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn progress_on_a_terminal_is_live_and_respects_no_color() {
    require_engine!();
    if harness::which("script").is_none() {
        eprintln!("SKIP: `script` (util-linux) is needed for a pseudo-terminal");
        return;
    }
    let mut env = Env::new();
    env.dockerd_config("");
    env.run();
    env.wait_ready();
    assert_eq!(env.output(&["down"]).0, 0);
    let (ok, out) = in_pty(&env, &["up"], &[]);
    assert!(ok, "{out:?}");
    // A spinner line redrawn in place, the finished step kept, colour on.
    assert!(out.contains("\r\x1b[2K"), "{out:?}");
    assert!(out.contains("waiting for /_ping…"), "{out:?}");
    assert!(out.contains("\x1b[32m✓\x1b[0m ready in"), "{out:?}");

    assert_eq!(env.output(&["down"]).0, 0);
    let (ok, out) = in_pty(&env, &["up"], &[("NO_COLOR", "1")]);
    assert!(ok, "{out:?}");
    assert!(out.contains("✓ ready in"), "{out:?}");
    assert!(!out.contains("\x1b[3"), "colour despite NO_COLOR: {out:?}");

    // doctor: coloured marks on a terminal, none with NO_COLOR.
    let (_, out) = in_pty(&env, &["doctor"], &[]);
    assert!(out.contains("\x1b[32m✓\x1b[0m socket.ping"), "{out:?}");
    let (_, out) = in_pty(&env, &["doctor"], &[("NO_COLOR", "1")]);
    assert!(out.contains("✓ socket.ping"), "{out:?}");
    assert!(!out.contains('\x1b'), "colour despite NO_COLOR: {out:?}");
}

#[test]
fn a_slow_colima_start_shows_limas_last_line() {
    require_engine!();
    // The "VM" takes 7 s to boot; meanwhile the host agent's log (Lima's
    // ha.stderr.log) says what it waits for, as Lima's does while it
    // waits for ssh (lima pkg/hostagent: "Waiting for the essential
    // requirement ...").
    let (mut env, _home) = harness::colima_env("[profiles.default.colima]\ncpu = 2\nmemory = 4\n");
    let slow = env.root.join("slow-dockerd");
    std::fs::write(
        &slow,
        r#"#!/bin/sh
inst=""; prev=""
for a in "$@"; do [ "$prev" = "--pidfile" ] && inst=$(dirname "$a"); prev=$a; done
sleep 1
echo '{"level":"info","msg":"Waiting for the essential requirement 1 of 4: \"ssh\"","time":"2026-01-01T00:00:00Z"}' >>"$inst/ha.stderr.log"
sleep 6
exec dockerd "$@"
"#,
    )
    .unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    env.extra_env
        .push(("STANDIN_DOCKERD".into(), slow.display().to_string()));
    env.run();
    control_socket_up(&env);
    let (code, out, err) = env.output(&["up", "--timeout", "90s"]);
    assert_eq!(code, 0, "{out}{err}\n{}", env.log());
    // `colima start` boots the VM (and returns once docker answers, so
    // "waiting for /_ping" may pass between two polls).
    assert!(
        out.contains("starting colima (2 CPU, 4 GiB)\n  lima: Waiting for the essential requirement 1 of 4: \"ssh\"\n"),
        "{out}"
    );
}

#[test]
fn the_control_socket_refuses_other_users() {
    require_engine!();
    if harness::which("socat").is_none() || harness::which("setpriv").is_none() {
        eprintln!("SKIP: socat and setpriv are needed");
        return;
    }
    let mut env = Env::new();
    env.dockerd_config("");
    env.run();
    env.wait_ready();
    let sock = env.state.join("control.sock");
    let md = std::fs::metadata(&sock).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o777,
        0o600
    );
    let as_nobody = |req: &str| {
        let o = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "socat",
                "-t",
                "5",
                "-",
            ])
            .arg(format!("UNIX-CONNECT:{}", sock.display()))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(req.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // As things are: the 0700 dir and the 0600 socket keep others out.
    let (out, err) = as_nobody("{\"cmd\":\"stop\"}\n");
    assert_eq!(out, "");
    assert!(err.contains("Permission denied"), "{err}");
    // Opened up by mistake: the peer uid check still refuses.
    let perm = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap()
    };
    perm(&env.root, 0o711);
    perm(&env.state, 0o711);
    perm(&sock, 0o666);
    let (out, _) = as_nobody("{\"cmd\":\"stop\"}\n");
    perm(&sock, 0o600);
    perm(&env.state, 0o700);
    perm(&env.root, 0o700);
    let v = json(out.trim());
    assert_eq!(v["ok"], false);
    assert!(
        v["error"].as_str().unwrap().contains("permission denied"),
        "{v}"
    );
    // ... and nothing was stopped.
    let (code, v) = env.status();
    assert_eq!(code, 0, "{v:#}");
    assert!(env.docker_works());
    assert!(
        env.log().contains("control socket: refused uid 65534"),
        "{}",
        env.log()
    );
}

#[test]
fn the_control_socket_speaks_json_lines() {
    require_engine!();
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    let mut env = Env::new();
    env.dockerd_config("");
    env.run();
    env.wait_ready();
    let path = env.state.join("control.sock");
    let connect = || {
        let s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        (BufReader::new(s.try_clone().unwrap()), s)
    };
    let next = |r: &mut BufReader<UnixStream>| {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        json(l.trim())
    };

    // A bad request is answered, and the connection stays usable.
    let (mut r, mut w) = connect();
    w.write_all(b"{\"cmd\":\"reboot\"}\n").unwrap();
    let v = next(&mut r);
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("bad request"), "{v}");
    w.write_all(b"{\"cmd\":\"state\"}\n").unwrap();
    let v = next(&mut r);
    assert_eq!(v["ok"], true);
    assert_eq!(v["state"]["phase"], "ready");
    // So is a line that is not UTF-8 (issue 15).
    w.write_all(b"{\"cmd\":\"st\xffate\"}\n").unwrap();
    let v = next(&mut r);
    assert_eq!(v["ok"], false, "{v}");
    assert!(v["error"].as_str().unwrap().contains("UTF-8"), "{v}");
    w.write_all(b"{\"cmd\":\"state\"}\n").unwrap();
    assert_eq!(next(&mut r)["ok"], true);

    // subscribe: the state now, then every change a `down` makes.
    let (mut r, mut w) = connect();
    w.write_all(b"{\"cmd\":\"subscribe\"}\n").unwrap();
    let v = next(&mut r);
    assert_eq!(v["event"], "state");
    assert_eq!(v["state"]["phase"], "ready");
    assert_eq!(env.output(&["down"]).0, 0);
    let mut phases = Vec::new();
    loop {
        let v = next(&mut r);
        assert_eq!(v["event"], "state", "{v}");
        phases.push(v["state"]["phase"].as_str().unwrap().to_string());
        if v["state"]["phase"] == "stopped" {
            assert_eq!(v["state"]["held"], "down");
            break;
        }
    }
    assert!(phases.contains(&"stopping".to_string()), "{phases:?}");
}

/// With `listen` and `on_demand` (the proxy holds the engine until a
/// request needs it), `up` starts it at once and names the listen socket.
#[test]
fn up_starts_an_on_demand_engine_and_down_holds_it() {
    require_engine!();
    let mut env = Env::new();
    let listen = env.root.join("l.sock");
    env.dockerd_config(&format!(
        "listen = {:?}\non_demand = true\ndocker_context = false",
        listen.display().to_string()
    ));
    env.run();
    env.wait_until("held on demand", Duration::from_secs(20), |v| {
        v["phase"] == "stopped" && v["held"] == "on_demand" && v["supervisor_running"] == true
    });
    let (code, out, err) = env.output(&["up"]);
    assert_eq!(code, 0, "{out}{err}\n{}", env.log());
    assert!(
        out.contains(&format!("docker answers at unix://{}", listen.display())),
        "{out}"
    );
    assert!(harness::docker_answers(&listen), "no answer through listen");
    let (code, out, err) = env.output(&["down", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(json(&out)["state"]["held"], "down");
    assert!(!env.docker_works());
}
