//! `engine = "ssh"` against a private sshd on 127.0.0.1 (its own config,
//! host key and AuthorizedKeysFile in the test's temp dir) and a private
//! dockerd as the remote engine. The client gets its own config with `-F`
//! (OpenSSH reads `~/.ssh` from the passwd entry, not `$HOME`).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{self, Env, require_engine};
use crate::ssh_rig::{self, Rig, docker};

macro_rules! require_sshd {
    () => {
        require_engine!();
        if !ssh_rig::available() {
            let why = "the ssh engine's tests need sshd (apt openssh-server); run scripts/test, which installs it";
            assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{why}");
            eprintln!("SKIP: {why}");
            return;
        }
    };
}

/// A profile forwarding the rig's remote dockerd; `extra` adds or
/// overrides top-level keys ("key = value" lines).
fn config(env: &Env, rig: &Rig, extra: &str) {
    let defaults = [
        ("probe_interval", "\"1s\""),
        ("probe_timeout", "\"500ms\""),
        ("start_timeout", "\"20s\""),
        ("stop_timeout", "\"3s\""),
        ("docker_context", "false"),
    ];
    let mut keys = String::new();
    for (k, v) in defaults {
        if !extra
            .lines()
            .any(|l| l.split('=').next().map(str::trim) == Some(k))
        {
            keys.push_str(&format!("{k} = {v}\n"));
        }
    }
    env.write_config(&format!(
        "[profiles.default]\nengine = \"ssh\"\nstate_dir = {:?}\n{keys}{extra}\n[profiles.default.ssh]\nhost = \"devbox\"\nremote_socket = {:?}\nkeepalive = \"2s\"\nconfig_file = {:?}\n",
        env.state.display().to_string(),
        rig.remote_sock.display().to_string(),
        rig.client_config.display().to_string(),
    ));
}

/// An env with sshd and the remote engine up, the profile written.
fn rig(extra: &str) -> (Env, Rig) {
    let env = Env::new();
    let mut rig = Rig::new(&env.root);
    rig.start_sshd("");
    rig.start_remote();
    config(&env, &rig, extra);
    (env, rig)
}

/// The docker CLI through dockhand's `listen` socket.
fn through(env: &Env, args: &[&str]) -> (bool, String) {
    docker(&env.socket(), args)
}

/// A raw `GET` over a unix socket: the whole answer.
fn get(sock: &Path, target: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn forward(env: &Env) -> std::path::PathBuf {
    env.state.join("forward.sock")
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

fn cmdline(pid: i64) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

fn engine_pid(v: &Value) -> i64 {
    v["engine_pid"].as_i64().expect("an engine pid")
}

/// Ready; the argv and the sockets; `docker ps` and `run --rm` through
/// `listen`; 30 parallel `docker ps`; `kill -9` of ssh: the next request
/// succeeds; status names the host and the disconnect.
#[test]
fn forward_serves_heals_and_is_locked_down() {
    require_sshd!();
    let (mut env, rig) = rig("");
    let tar = harness::busybox_tar(&rig.dir);
    assert!(docker(&rig.remote_sock, &["import", tar.to_str().unwrap(), "bb"]).0);
    env.run();
    let v = env.wait_ready();
    let argv = cmdline(engine_pid(&v));
    assert_eq!(argv[0], "ssh", "{argv:?}");
    for must in [
        "-N",
        "BatchMode=yes",
        "ExitOnForwardFailure=yes",
        "StreamLocalBindMask=0177",
        "ControlPath=none",
        "ServerAliveCountMax=3",
    ] {
        assert!(
            argv.iter().any(|a| a == must),
            "{must} missing from {argv:?}"
        );
    }
    assert!(
        !argv
            .iter()
            .any(|a| a == "-A" || a == "StrictHostKeyChecking=no" || a == "ForwardAgent=yes"),
        "{argv:?}"
    );
    assert_eq!(mode(&forward(&env)), 0o600, "the forward's socket");
    assert_eq!(mode(&env.socket()), 0o600, "the listen socket");
    assert_eq!(mode(&env.state) & 0o077, 0, "the state dir");

    let (ok, out) = through(&env, &["ps"]);
    assert!(ok, "{out}");
    let (ok, out) = through(
        &env,
        &["run", "--rm", "bb", "/bin/busybox", "echo", "hi-remote"],
    );
    assert!(ok && out.contains("hi-remote"), "{out}");

    let handles: Vec<_> = (0..30)
        .map(|_| {
            let sock = env.socket();
            std::thread::spawn(move || docker(&sock, &["ps"]))
        })
        .collect();
    let failed: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|(ok, _)| !ok)
        .map(|(_, out)| out)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 30 failed: {failed:?}",
        failed.len()
    );

    let (code, out, _) = env.output(&["status"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ssh: devbox:") && out.contains("connected since"),
        "{out}"
    );

    let pid = engine_pid(&v);
    ssh_rig::signal(pid as i32, rustix::process::Signal::KILL);
    // At once, before the supervisor may have noticed: it waits for the
    // new forward.
    let answer = get(&env.socket(), "/containers/json");
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "{answer}\n{}",
        env.log()
    );
    let (ok, out) = through(&env, &["ps"]);
    assert!(ok, "the request after kill -9 of ssh: {out}\n{}", env.log());
    let v = env.wait_ready();
    assert_ne!(engine_pid(&v), pid);
    assert_eq!(v["ssh"]["host"], "devbox", "{v:#}");
    assert!(v["ssh"]["connected_since"].is_string(), "{v:#}");
    assert!(
        v["ssh"]["last_disconnect"]
            .as_str()
            .is_some_and(|s| s.contains("ssh to devbox: killed by signal 9")),
        "{v:#}"
    );
}

/// The server's side of the connection frozen (SIGSTOP): probes fail, ssh
/// is replaced, requests are served again within the probe's bounds.
#[test]
fn a_frozen_session_is_healed() {
    require_sshd!();
    let (mut env, rig) = rig("");
    env.run();
    let v = env.wait_ready();
    let pid = engine_pid(&v);
    let frozen = rig.sessions();
    assert!(!frozen.is_empty());
    for p in &frozen {
        ssh_rig::signal(*p, rustix::process::Signal::STOP);
    }
    let t = Instant::now();
    // probe_interval 1s + two probe timeouts + a reconnect.
    env.wait_until("a new ssh", Duration::from_secs(15), |v| {
        v["phase"] == "ready" && v["engine_pid"].as_i64().is_some_and(|p| p != pid)
    });
    let healed = t.elapsed();
    let (ok, out) = through(&env, &["ps"]);
    assert!(ok, "{out}");
    eprintln!("frozen session healed in {healed:?}");
    for p in &frozen {
        ssh_rig::signal(*p, rustix::process::Signal::KILL);
        ssh_rig::signal(*p, rustix::process::Signal::CONT);
    }
}

/// The remote engine stopped: clients are told "remote engine down", ssh
/// is kept (no new logins), and it serves again once the engine is back.
#[test]
fn remote_engine_down_is_named_without_a_reconnect_storm() {
    require_sshd!();
    let (mut env, mut rig) = rig("");
    env.run();
    let v = env.wait_ready();
    let pid = engine_pid(&v);
    let logins = rig.logins();
    rig.stop_remote();
    let v = env.wait_until("remote engine down", Duration::from_secs(15), |v| {
        v["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("remote engine down at devbox:"))
    });
    assert_eq!(v["phase"], "unhealthy", "{v:#}");
    for _ in 0..5 {
        let (ok, out) = through(&env, &["ps"]);
        assert!(
            !ok && out.contains("remote engine down at devbox:"),
            "{out}"
        );
    }
    assert_eq!(
        rig.logins(),
        logins,
        "ssh reconnected while the remote engine was down"
    );
    assert_eq!(
        env.status().1["engine_pid"].as_i64(),
        Some(pid),
        "ssh was restarted"
    );
    rig.start_remote();
    let (ok, out) = through(&env, &["ps"]);
    assert!(ok, "{out}\n{}", env.log());
    let v = env.wait_ready();
    assert_eq!(engine_pid(&v), pid);
    assert_eq!(rig.logins(), logins);
}

/// A client asking in a loop (`up` re-asks after each failure, scripts
/// poll) makes at most one attempt a second: with the remote engine down,
/// one channel open a second on the kept ssh; with sshd down, one connect
/// a second. While the remote engine is down nothing answers for it
/// (`/_ping` says it is down), and `status` says ssh is connected.
#[test]
fn clients_in_a_loop_make_no_storm_and_nothing_is_answered_for_a_down_engine() {
    require_sshd!();
    let (mut env, mut rig) = rig("restart_backoff_max = \"30s\"");
    env.run();
    env.wait_ready();
    rig.stop_remote();
    let v = env.wait_until("remote engine down", Duration::from_secs(15), |v| {
        v["serving_down"] == true
    });
    assert_eq!(v["phase"], "unhealthy", "{v:#}");
    let ping = get(&env.socket(), "/_ping");
    assert!(ping.starts_with("HTTP/1.1 503"), "{ping}");
    assert!(ping.contains("remote engine down at devbox:"), "{ping}");
    let (_, v) = env.status();
    assert!(v["ssh"]["connected_since"].is_string(), "{v:#}");
    let refusals = |rig: &Rig| {
        rig.log().matches("refused streamlocal").count() + rig.log().matches("connect to ").count()
    };
    let before = refusals(&rig);
    let t = Instant::now();
    let (code, out, err) = env.output(&["up", "--timeout", "4s"]);
    let took = t.elapsed().as_secs() + 1;
    assert_ne!(code, 0, "{out}{err}");
    let opened = refusals(&rig) - before;
    assert!(
        opened as u64 <= took + 1,
        "{opened} channels refused in {took} s of `up`:\n{}",
        rig.log()
    );
    rig.start_remote();
    let (ok, out) = through(&env, &["ps"]);
    assert!(ok, "{out}\n{}", env.log());
    let (_, v) = env.status();
    assert!(v["ssh"]["connected_since"].is_string(), "{v:#}");
    assert!(v.get("serving_down").is_none(), "{v:#}");

    rig.stop_sshd();
    env.wait_until("sshd refused", Duration::from_secs(30), |v| {
        v["phase"] == "failed"
            && v["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("Connection refused"))
    });
    let attempts = || {
        std::fs::read_to_string(env.state.join("engine.log"))
            .unwrap_or_default()
            .matches("Connection refused")
            .count()
    };
    let before = attempts();
    let t = Instant::now();
    let (code, out, err) = env.output(&["up", "--timeout", "4s"]);
    let took = t.elapsed().as_secs() + 1;
    assert_ne!(code, 0, "{out}{err}");
    let made = attempts() - before;
    assert!(
        made as u64 <= took + 1,
        "{made} connects in {took} s of `up`:\n{}",
        env.log()
    );
}

/// The forward's local socket where the user puts it: its directory is
/// created 0700 when missing; one others can write is refused (exit 6),
/// as for `listen`: anyone there could swap the remote engine's door.
#[test]
fn the_forward_socket_lives_in_a_private_directory() {
    require_sshd!();
    let env = Env::new();
    let mut rig = Rig::new(&env.root);
    let open = env.root.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let sock = format!("socket = {:?}", open.join("f.sock").display().to_string());
    config(&env, &rig, &sock);
    // Refused before any attempt (a `run` that retried would not end).
    let mut run = env
        .cmd(&["run"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut code = None;
    harness::eventually("run to refuse", Duration::from_secs(10), || {
        code = run.try_wait().unwrap().and_then(|s| s.code());
        code.is_some()
    });
    let mut err = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("writable by others"), "{err}");
    assert!(!open.join("f.sock").exists());

    let mut env = env;
    rig.start_sshd("");
    rig.start_remote();
    let fresh = env.root.join("new/sub");
    let sock = format!("socket = {:?}", fresh.join("f.sock").display().to_string());
    config(&env, &rig, &sock);
    env.run();
    env.wait_ready();
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&fresh.join("f.sock")), 0o600);
    assert!(through(&env, &["ps"]).0);
}

/// sshd down: retried with backoff; when it is back, a client request
/// makes the next attempt at once and succeeds within 3 s.
#[test]
fn server_down_and_back_serves_the_next_request_at_once() {
    require_sshd!();
    let (mut env, mut rig) = rig("restart_backoff_max = \"30s\"");
    env.run();
    env.wait_ready();
    // The remote's answers recorded once it was ready.
    let cache = env.state.join("api-cache.json");
    harness::eventually("the recorded answers", Duration::from_secs(10), || {
        std::fs::read_to_string(&cache)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|v| v["ping"].is_object() && v["version"].is_object())
    });
    rig.stop_sshd();
    // Failed attempts until the backoff waits several seconds.
    let v = env.wait_until("a long backoff", Duration::from_secs(30), |v| {
        v["phase"] == "failed"
            && v["restarts"].as_u64().is_some_and(|r| r >= 3)
            && v["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("Connection refused") && e.contains("next attempt in"))
    });
    assert!(v["held"].is_null(), "a network failure is retried: {v:#}");
    // Meanwhile the CLI's first questions get the remote's last answers.
    for target in ["/_ping", "/version"] {
        let answer = get(&env.socket(), target);
        assert!(answer.starts_with("HTTP/1.1 200"), "{target}: {answer}");
        assert!(
            answer.to_ascii_lowercase().contains("api-version: 1."),
            "{target}: {answer}"
        );
    }
    rig.start_sshd("");
    let t = Instant::now();
    let (ok, out) = through(&env, &["ps"]);
    let took = t.elapsed();
    assert!(ok, "{out}\n{}", env.log());
    assert!(took < Duration::from_secs(3), "served after {took:?}");
}

/// An unknown host key, then a key the server refuses: each holds the
/// profile `failed` with its fix, without retries; `up` after the fix.
#[test]
fn host_key_and_login_failures_are_fatal_with_the_fix() {
    require_sshd!();
    let (mut env, rig) = rig("");
    rig.trust_host_key(false);
    rig.authorize("other_key");
    // The rig's own check that sshd listens was one.
    let before = rig.connections();
    env.run();
    let v = env.wait_until("failed (host key)", Duration::from_secs(20), |v| {
        v["phase"] == "failed" && v["held"] == "failed"
    });
    // The command shown logs in as dockhand does: with the config file.
    let login = format!("run `ssh -F {} devbox` once", rig.client_config.display());
    let e = v["last_error"].as_str().unwrap();
    assert!(e.contains(&login), "{e}");
    assert!(e.contains("check and accept the host key"), "{e}");
    let (ok, out) = through(&env, &["ps"]);
    assert!(!ok && out.contains(&login), "{out}");
    // Nothing answers for the engine of a failed profile, /_ping neither.
    let ping = get(&env.socket(), "/_ping");
    assert!(ping.starts_with("HTTP/1.1 503"), "{ping}");
    assert!(ping.contains("host key"), "{ping}");
    assert_eq!(rig.connections(), before + 1, "{}", rig.log());

    // A changed key is not "accepted": checked, then replaced.
    rig.trust_wrong_host_key();
    let (code, out, err) = env.output(&["up"]);
    assert_ne!(code, 0, "{out}{err}");
    let v = env.wait_until("failed (changed key)", Duration::from_secs(20), |v| {
        v["held"] == "failed"
            && v["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("CHANGED"))
    });
    let e = v["last_error"].as_str().unwrap();
    let keygen = format!(
        "`ssh-keygen -f \"{}\" -R \"[127.0.0.1]:{}\"`",
        rig.dir.join("known_hosts").display(),
        rig.port
    );
    assert!(
        e.contains(&keygen) && e.contains("verify the new key (SHA256:"),
        "{e}"
    );
    assert!(!e.contains("accept the host key"), "{e}");
    let connections = rig.connections();
    assert_eq!(connections, before + 2, "{}", rig.log());

    rig.trust_host_key(true);
    let (code, out, err) = env.output(&["up"]);
    assert_ne!(code, 0, "{out}{err}");
    let v = env.wait_until("failed (login)", Duration::from_secs(20), |v| {
        v["held"] == "failed"
            && v["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("ssh-add"))
    });
    assert!(
        v["last_error"]
            .as_str()
            .unwrap()
            .contains("Permission denied"),
        "{v:#}"
    );
    for _ in 0..3 {
        let (ok, out) = through(&env, &["ps"]);
        assert!(!ok && out.contains("ssh-add"), "{out}");
    }
    let attempts = rig.log().matches("Failed publickey").count();
    assert!(attempts <= 2, "{attempts} login attempts:\n{}", rig.log());
    assert_eq!(rig.connections(), connections + 1, "{}", rig.log());

    rig.authorize("user_key");
    let (code, out, err) = env.output(&["up"]);
    assert_eq!(code, 0, "{out}{err}\n{}", env.log());
    assert!(through(&env, &["ps"]).0);
}

/// A server that forbids socket forwarding: the message names it, ssh is
/// kept (one login).
#[test]
fn forwarding_disabled_is_named() {
    require_sshd!();
    let env = Env::new();
    let mut rig = Rig::new(&env.root);
    rig.start_sshd("AllowStreamLocalForwarding no");
    rig.start_remote();
    config(&env, &rig, "");
    let mut env = env;
    env.run();
    let v = env.wait_until("unhealthy", Duration::from_secs(20), |v| {
        v["phase"] == "unhealthy"
    });
    let e = v["last_error"].as_str().unwrap();
    assert!(
        e.contains("AllowStreamLocalForwarding no") && e.contains("remote engine down at devbox:"),
        "{e}"
    );
    let (ok, out) = through(&env, &["ps"]);
    assert!(!ok && out.contains("AllowStreamLocalForwarding"), "{out}");
    assert_eq!(rig.logins(), 1, "{}", rig.log());
}

/// on_demand + idle_stop: no connection until a request, served, closed
/// when idle (a container running on the remote doesn't keep it open),
/// served again.
#[test]
fn on_demand_connects_at_the_first_request_and_idle_closes_it() {
    require_sshd!();
    let (mut env, rig) = rig("on_demand = true\nidle_stop = \"2s\"");
    let tar = harness::busybox_tar(&rig.dir);
    assert!(docker(&rig.remote_sock, &["import", tar.to_str().unwrap(), "bb"]).0);
    let (ok, out) = docker(
        &rig.remote_sock,
        &["run", "-d", "bb", "/bin/busybox", "sleep", "600"],
    );
    assert!(ok, "{out}");
    let before = rig.connections();
    env.run();
    env.wait_until("held on_demand", Duration::from_secs(20), |v| {
        v["held"] == "on_demand"
    });
    assert_eq!(rig.connections(), before);
    assert_eq!(rig.established(), 0);
    let (ok, out) = through(&env, &["ps"]);
    assert!(ok && out.contains("sleep"), "{out}");
    assert_eq!(rig.logins(), 1);
    env.wait_until("idle stop", Duration::from_secs(30), |v| {
        v["held"] == "idle"
    });
    harness::eventually("the connection closed", Duration::from_secs(10), || {
        rig.established() == 0
    });
    let (ok, out) = through(&env, &["ps"]);
    assert!(ok && out.contains("sleep"), "{out}");
    assert_eq!(rig.logins(), 2);
}

/// `doctor`: the host resolves, a BatchMode login forwards, the remote
/// socket answers (and is named when it doesn't), API versions compared.
#[test]
fn doctor_checks_the_ssh_path() {
    require_sshd!();
    let (env, mut rig) = rig("");
    let check = |v: &Value, id: &str| -> Value {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {v:#}"))
            .clone()
    };
    let doctor = || {
        let (_, out, err) = env.output(&["doctor", "--json"]);
        serde_json::from_str::<Value>(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"))
    };
    let v = doctor();
    let host = check(&v, "ssh.host");
    assert_eq!(host["status"], "pass", "{host}");
    assert!(
        host["summary"].as_str().unwrap().contains("root@127.0.0.1"),
        "{host}"
    );
    assert_eq!(check(&v, "ssh.login")["status"], "pass", "{v:#}");
    assert_eq!(check(&v, "ssh.remote_socket")["status"], "pass", "{v:#}");
    assert_ne!(check(&v, "ssh.api_version")["status"], "fail", "{v:#}");
    // The rig's client config: IdentityAgent none and a key file.
    let agent = check(&v, "ssh.agent");
    assert_eq!(agent["status"], "pass", "{agent}");
    let summary = agent["summary"].as_str().unwrap();
    assert!(
        summary.contains("without an agent") && summary.contains("user_key"),
        "{agent}"
    );
    let text = |c: &Value| format!("{} {}", c["summary"], c["fix"]);

    // The remote engine up, socket forwarding forbidden.
    rig.stop_sshd();
    rig.start_sshd("AllowStreamLocalForwarding no");
    let r = check(&doctor(), "ssh.remote_socket");
    assert_eq!(r["status"], "fail", "{r}");
    let t = text(&r);
    assert!(
        t.contains("forbids forwarding unix sockets")
            && t.contains("AllowStreamLocalForwarding yes"),
        "{r}"
    );
    assert!(!t.contains("start the engine"), "{r}");

    // Forwarding allowed, the remote engine down.
    rig.stop_sshd();
    rig.start_sshd("");
    rig.stop_remote();
    let r = check(&doctor(), "ssh.remote_socket");
    assert_eq!(r["status"], "fail", "{r}");
    let t = text(&r);
    assert!(
        t.contains("does not answer") && t.contains("start the engine on devbox"),
        "{r}"
    );
    assert!(!t.contains("AllowStreamLocalForwarding"), "{r}");

    // A changed host key: checked, then replaced, with the config file.
    rig.trust_wrong_host_key();
    let l = check(&doctor(), "ssh.login");
    assert_eq!(l["status"], "fail", "{l}");
    let t = text(&l);
    let login = format!("`ssh -F {} devbox`", rig.client_config.display());
    assert!(
        t.contains("CHANGED") && t.contains("ssh-keygen -f") && t.contains(&login),
        "{l}"
    );
    assert!(!t.contains("accept the host key"), "{l}");
    rig.trust_host_key(true);

    rig.authorize("other_key");
    let l = check(&doctor(), "ssh.login");
    assert_eq!(l["status"], "fail", "{l}");
    assert!(
        l["summary"].as_str().unwrap().contains("Permission denied"),
        "{l}"
    );

    // Nothing listens: a network fix, not the host key's or the agent's.
    rig.stop_sshd();
    let l = check(&doctor(), "ssh.login");
    assert_eq!(l["status"], "fail", "{l}");
    let t = text(&l);
    assert!(
        t.contains("Connection refused")
            && t.contains(&format!("listens on port {}", rig.port))
            && t.contains(&format!(
                "`ssh -G -F {} devbox`",
                rig.client_config.display()
            )),
        "{l}"
    );
    assert!(!t.contains("host key") && !t.contains("ssh-add"), "{l}");
}

/// `kill -TERM` of doctor while its ssh waits for a server: the ssh dies
/// with it (Linux), and the next doctor removes the private directory the
/// killed one left.
#[test]
fn a_doctor_killed_during_its_login_leaves_nothing_behind() {
    if harness::which("ssh").is_none() {
        eprintln!("SKIP: no ssh client");
        return;
    }
    let mut env = Env::new();
    let tmp = env.root.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    env.extra_env = vec![("TMPDIR".into(), tmp.display().to_string())];
    // A server that never says a word: ssh waits for its banner for ever.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = env.root.join("ssh_config");
    let write_client = |port: u16| {
        std::fs::write(
            &client,
            format!("Host hang\n  HostName 127.0.0.1\n  Port {port}\n  User nobody\n  IdentityAgent none\n  UserKnownHostsFile /dev/null\n  GlobalKnownHostsFile /dev/null\n"),
        )
        .unwrap();
    };
    write_client(silent.local_addr().unwrap().port());
    env.write_config(&format!(
        "[profiles.default]\nengine = \"ssh\"\nstate_dir = {:?}\n[profiles.default.ssh]\nhost = \"hang\"\nconfig_file = {:?}\n",
        env.state.display().to_string(),
        client.display().to_string()
    ));
    let mut doctor = env
        .cmd(&["doctor", "--json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let scratch = tmp.join(format!("dockhand-doctor-{}", doctor.id()));
    let mut forward = Vec::new();
    harness::eventually("doctor's ssh -N", Duration::from_secs(20), || {
        forward = harness::processes_mentioning(&scratch)
            .into_iter()
            .filter(|(_, cmd)| cmd.contains(" -N "))
            .map(|(pid, _)| pid)
            .collect();
        !forward.is_empty()
    });
    harness::kill(doctor.id() as i32, rustix::process::Signal::TERM);
    let _ = doctor.wait();
    // SIGKILL from the kernel as doctor exits: looked for at once, and a
    // while (it outlives doctor for ever without it).
    let gone = || forward.iter().all(|p| !ssh_rig::alive(*p));
    let deadline = Instant::now() + Duration::from_secs(3);
    while !gone() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let left = !gone();
    for p in &forward {
        ssh_rig::signal(*p, rustix::process::Signal::KILL);
    }
    assert!(!left, "doctor's ssh {forward:?} outlived it");
    assert!(scratch.exists(), "a signal skips the cleanup");

    // The next doctor (a port nothing listens on: it fails at once).
    drop(silent);
    write_client(ssh_rig::free_port());
    let (_, out, err) = env.output(&["doctor", "--json"]);
    assert!(out.contains("ssh.login"), "{out}{err}");
    assert!(!scratch.exists(), "{} left behind", scratch.display());
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}

/// After a wake from sleep there is no grace period for an ssh forward:
/// the frozen connection is probed at once and replaced, without the
/// retries other engines get (supervisor.rs
/// `a_resume_from_sleep_probes_at_once`).
#[test]
fn a_resume_from_sleep_replaces_a_dead_forward_at_once() {
    require_sshd!();
    let Some(lib) = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists())
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "libfaketime is missing: apt-get install faketime"
        );
        eprintln!("SKIP: libfaketime not installed (apt-get install faketime)");
        return;
    };
    // Neither the probe's interval nor ssh's keepalive would notice soon.
    let (mut env, rig) = rig("probe_interval = \"1h\"\nprobe_timeout = \"1s\"");
    let text = std::fs::read_to_string(&env.config).unwrap();
    env.write_config(&text.replace("keepalive = \"2s\"", "keepalive = \"1h\""));
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
    env.run();
    let pid = engine_pid(&env.wait_ready());
    let frozen = rig.sessions();
    for p in &frozen {
        ssh_rig::signal(*p, rustix::process::Signal::STOP);
    }
    std::fs::write(&offset, "+2h\n").unwrap();
    // The clock check (every 5 s), two probe timeouts, a reconnect: well
    // inside the 60 s grace other engines get.
    env.wait_until("a new ssh", Duration::from_secs(30), |v| {
        v["phase"] == "ready" && v["engine_pid"].as_i64().is_some_and(|p| p != pid)
    });
    let log = env.log();
    assert!(log.contains("resumed from sleep"), "{log}");
    assert!(!log.contains("shortly after a resume"), "{log}");
    for p in &frozen {
        ssh_rig::signal(*p, rustix::process::Signal::KILL);
        ssh_rig::signal(*p, rustix::process::Signal::CONT);
    }
}
