//! What an idle stop may stop and what clients see while dockhand holds
//! the engine stopped (real dockerd, real docker CLI): paused containers
//! keep it awake, `docker events` outlives an idle stop, passive requests
//! are answered from the record made on the way down.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{self, Env, Streaming, eventually, require_engine};

pub fn listen(env: &Env) -> PathBuf {
    env.state.join("dh.sock")
}

/// A dockerd profile served through `listen`.
pub fn proxy_env(extra: &str) -> Env {
    let mut env = Env::new();
    let dc = env.root.join("docker-config");
    env.extra_env
        .push(("DOCKER_CONFIG".into(), dc.display().to_string()));
    let l = listen(&env);
    env.dockerd_config(&format!("listen = {:?}\n{extra}", l.display().to_string()));
    env
}

/// The docker CLI on `sock`.
pub fn docker_on(env: &Env, sock: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new("docker");
    c.arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .args(args)
        .env("DOCKER_CONFIG", env.root.join("docker-config"))
        .stdin(Stdio::null());
    c
}

pub fn docker_ok_on(env: &Env, sock: &std::path::Path, args: &[&str]) -> String {
    let o = docker_on(env, sock, args).output().unwrap();
    assert!(
        o.status.success(),
        "docker {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        env.log()
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn dockerd_running(env: &Env) -> bool {
    env.our_processes()
        .iter()
        .any(|(_, cmd)| cmd.starts_with("dockerd") || cmd.contains("/dockerd "))
}

/// Image `bb` (busybox-static, imported: no registry here), on the engine.
pub fn import_busybox(env: &Env) {
    let tar = harness::busybox_tar(&env.root);
    docker_ok_on(env, &env.socket(), &["import", tar.to_str().unwrap(), "bb"]);
}

pub fn wait_idle_stop(env: &Env) {
    env.wait_until("an idle stop", Duration::from_secs(60), |v| {
        v["held"] == "idle" && v["phase"] == "stopped"
    });
    eventually("dockerd to be gone", Duration::from_secs(20), || {
        !dockerd_running(env)
    });
}

#[test]
fn a_paused_container_started_on_the_engine_socket_survives_idle_stop() {
    require_engine!();
    let mut env = proxy_env("idle_stop = \"1s\"");
    env.run();
    env.wait_ready();
    import_busybox(&env);
    // Started and paused directly on the engine's socket, not through dockhand.
    let engine = env.socket();
    let id = docker_ok_on(
        &env,
        &engine,
        &["run", "-d", "bb", "/bin/busybox", "sleep", "1000"],
    );
    let id = id.trim().to_string();
    docker_ok_on(&env, &engine, &["pause", &id]);
    env.wait_until(
        "the paused container counted",
        Duration::from_secs(20),
        |v| v["awake"]["running_containers"] == 1,
    );
    // Five idle_stops later the engine still runs, the container paused.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let (_, v) = env.status();
        assert_eq!(v["phase"], "ready", "stopped with a paused container: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let st = docker_ok_on(&env, &engine, &["inspect", "-f", "{{.State.Status}}", &id]);
    assert_eq!(st.trim(), "paused");
    docker_ok_on(&env, &engine, &["rm", "-f", &id]);
    wait_idle_stop(&env);
}

#[test]
fn docker_events_survives_an_idle_stop() {
    require_engine!();
    let mut env = proxy_env("idle_stop = \"2s\"");
    env.run();
    env.wait_ready();
    import_busybox(&env);
    let l = listen(&env);
    let mut cmd = docker_on(
        &env,
        &l,
        &[
            "events",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ],
    );
    cmd.stdin(Stdio::null());
    let mut events = Streaming::spawn(cmd);
    docker_ok_on(
        &env,
        &l,
        &[
            "create",
            "--name",
            "before-stop",
            "bb",
            "/bin/busybox",
            "true",
        ],
    );
    events.wait_for("create before-stop", Duration::from_secs(20));
    wait_idle_stop(&env);
    assert!(
        events.child.try_wait().unwrap().is_none(),
        "docker events ended at the idle stop: {}",
        events.text()
    );
    // The CLI wakes the engine; the events stream goes on.
    docker_ok_on(
        &env,
        &l,
        &["run", "--name", "after-stop", "bb", "/bin/busybox", "true"],
    );
    env.wait_ready();
    events.wait_for("start after-stop", Duration::from_secs(30));
    let t = events.text();
    assert_eq!(t.matches("create before-stop").count(), 1, "replayed: {t}");
    assert!(!t.contains("EOF"), "{t}");
}

/// One raw GET on a new connection with user agent `ua`: (status, body).
fn get(sock: &std::path::Path, target: &str, ua: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: docker\r\nUser-Agent: {ua}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

#[test]
fn polls_are_answered_from_the_record_and_unrecorded_ones_wake_the_engine() {
    require_engine!();
    let mut env = proxy_env("idle_stop = \"2s\"");
    env.run();
    env.wait_ready();
    let l = listen(&env);
    let ua = "ide-poller/1.0";
    let asked = "/v1.41/containers/json?all=1&filters=%7B%22label%22%3A%5B%22a%3Db%22%5D%7D";
    let (s, live) = get(&l, asked, ua);
    assert_eq!(s, 200);
    let (_, live_info) = get(&l, "/v1.41/volumes", ua);
    wait_idle_stop(&env);
    for _ in 0..5 {
        assert_eq!(
            get(&l, asked, ua),
            (200, live.clone()),
            "a target asked before"
        );
        assert_eq!(get(&l, "/v1.41/volumes", ua), (200, live_info.clone()));
        let (s, b) = get(&l, "/info", ua);
        assert!(
            s == 200 && b.contains("\"ID\""),
            "a default target: {s} {b}"
        );
    }
    assert!(!dockerd_running(&env), "polls started the engine");
    let (_, v) = env.status();
    assert_eq!(v["held"], "idle");
    // The same path with another query: no record, so the engine starts.
    let (s, b) = get(&l, "/v1.41/containers/json?all=1&limit=3", ua);
    assert_eq!(s, 200, "{b}");
    let v = env.wait_ready();
    assert!(v.get("held").is_none(), "{v}");
}
