//! The on-demand proxy (`listen`) against a real dockerd and the real
//! docker CLI: forwarding, upgrades, large bodies, starting a stopped
//! engine, idle stops that polling can't prevent, and socket safety.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::harness::{self, Env, eventually, require_engine};

fn listen(env: &Env) -> PathBuf {
    env.state.join("dh.sock")
}

/// A dockerd profile served through `listen`.
fn proxy_env(extra: &str) -> Env {
    let mut env = Env::new();
    // The docker CLI's contexts (dockhand's included) stay in the test dir.
    let dc = env.root.join("docker-config");
    env.extra_env
        .push(("DOCKER_CONFIG".into(), dc.display().to_string()));
    let l = listen(&env);
    env.dockerd_config(&format!("listen = {:?}\n{extra}", l.display().to_string()));
    env
}

fn docker(env: &Env, args: &[&str]) -> Command {
    let mut c = Command::new("docker");
    c.arg("-H")
        .arg(format!("unix://{}", listen(env).display()))
        .args(args)
        .env("DOCKER_CONFIG", env.root.join("docker-config"));
    c
}

fn docker_ok(env: &Env, args: &[&str]) -> String {
    let o = docker(env, args).stdin(Stdio::null()).output().unwrap();
    assert!(
        o.status.success(),
        "docker {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        env.log()
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// One raw request on a new connection: (status, head, body).
fn raw(sock: &Path, method: &str, target: &str, ua: &str) -> (u16, String, String) {
    try_raw(sock, method, target, ua).unwrap()
}

fn try_raw(
    sock: &Path,
    method: &str,
    target: &str,
    ua: &str,
) -> std::io::Result<(u16, String, String)> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: docker\r\nUser-Agent: {ua}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, head.to_string(), body.to_string()))
}

fn dockerd_running(env: &Env) -> bool {
    env.our_processes()
        .iter()
        .any(|(_, cmd)| cmd.starts_with("dockerd") || cmd.contains("/dockerd "))
}

/// A busybox image `bb` (no network here: imported from a local tar).
fn import_busybox(env: &Env) {
    let tar = harness::busybox_tar(&env.root);
    docker_ok(env, &["import", tar.to_str().unwrap(), "bb"]);
}

fn sha256(path: &Path) -> String {
    let o = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn docker_cli_works_through_listen() {
    require_engine!();
    let mut env = proxy_env("");
    env.run();
    env.wait_ready();
    let v = docker_ok(&env, &["version", "--format", "{{.Server.Version}}"]);
    assert!(!v.trim().is_empty());
    import_busybox(&env);
    assert_eq!(
        docker_ok(&env, &["run", "--rm", "bb", "/bin/busybox", "echo", "hi"]),
        "hi\n"
    );
    // run -i: an upgraded connection, stdin up, stdout down, and the
    // half-close of stdin ending the container.
    let big = env.root.join("big.bin");
    let ok = Command::new("head")
        .args(["-c", "67108864", "/dev/urandom"])
        .stdout(std::fs::File::create(&big).unwrap())
        .status()
        .unwrap();
    assert!(ok.success());
    let echoed = env.root.join("echoed.bin");
    let st = docker(&env, &["run", "-i", "--rm", "bb", "/bin/busybox", "cat"])
        .stdin(std::fs::File::open(&big).unwrap())
        .stdout(std::fs::File::create(&echoed).unwrap())
        .status()
        .unwrap();
    assert!(st.success(), "{}", env.log());
    assert_eq!(sha256(&echoed), sha256(&big), "run -i echoed other bytes");

    // import (a large request body) and save (a large response body):
    // what comes through dockhand is byte for byte what dockerd sends.
    let tree = env.root.join("bigtree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::copy(&big, tree.join("big.bin")).unwrap();
    let tarball = env.root.join("big.tar");
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(&tree)
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    docker_ok(&env, &["import", tarball.to_str().unwrap(), "big"]);
    let via = env.root.join("via.tar");
    let direct = env.root.join("direct.tar");
    docker_ok(&env, &["save", "-o", via.to_str().unwrap(), "big"]);
    let o = Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", env.socket().display()))
        .args(["save", "-o", direct.to_str().unwrap(), "big"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(std::fs::metadata(&via).unwrap().len() > 64 << 20);
    assert_eq!(
        sha256(&via),
        sha256(&direct),
        "save differs through dockhand"
    );
}

#[test]
fn on_demand_starts_the_engine_at_the_first_request() {
    require_engine!();
    let mut env = proxy_env("on_demand = true");
    env.run();
    let v = env.wait_until("held on demand", Duration::from_secs(20), |v| {
        v["held"] == "on_demand" && v["supervisor_running"] == true
    });
    assert_eq!(v["phase"], "stopped");
    assert!(!dockerd_running(&env), "an engine runs before any request");
    let (_, text, _) = env.output(&["status"]);
    assert!(text.contains("not started yet (on_demand)"), "{text}");
    let v = docker_ok(&env, &["version", "--format", "{{.Server.Version}}"]);
    assert!(!v.trim().is_empty());
    let v = env.wait_ready();
    assert!(v.get("held").is_none(), "{v}");
}

#[test]
fn fifty_clients_at_once_wake_a_stopped_engine() {
    require_engine!();
    let mut env = proxy_env("on_demand = true");
    env.run();
    env.wait_until("held", Duration::from_secs(20), |v| {
        v["held"] == "on_demand"
    });
    let sock = listen(&env);
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || raw(&sock, "GET", "/v1.41/version", "test"))
        })
        .collect();
    for c in clients {
        let (status, _, body) = c.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("ApiVersion"), "{body}");
    }
    assert!(dockerd_running(&env));
}

/// One poll round: /_ping status, /containers/json status, ping head, list body.
type Round = (u16, u16, String, String);

/// Poll like an IDE does: `/_ping` and `/containers/json` every 100 ms.
struct Poller {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Poll rounds answered so far.
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<Vec<Round>>>,
}

impl Poller {
    fn start(sock: PathBuf) -> Poller {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let n = count.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                // A poll in flight when the engine stops may be cut off.
                let ping = try_raw(&sock, "GET", "/v1.41/_ping", "ide-poller/1.0");
                let list = try_raw(&sock, "GET", "/v1.41/containers/json", "ide-poller/1.0");
                if let (Ok((p, ph, _)), Ok((c, _, cb))) = (ping, list) {
                    seen.push((p, c, ph, cb));
                    n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            seen
        });
        Poller {
            stop,
            count,
            thread: Some(thread),
        }
    }
    fn count(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn finish(mut self) -> Vec<Round> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

#[test]
fn polling_neither_keeps_the_engine_awake_nor_wakes_it() {
    require_engine!();
    let mut env = proxy_env("idle_stop = \"2s\"");
    env.run();
    env.wait_ready();
    docker_ok(&env, &["version"]);
    let poller = Poller::start(listen(&env));
    // Polling goes on, yet the engine stops once idle.
    env.wait_until("an idle stop", Duration::from_secs(30), |v| {
        v["held"] == "idle" && v["phase"] == "stopped"
    });
    eventually("dockerd to be gone", Duration::from_secs(15), || {
        !dockerd_running(&env)
    });
    // A stopped engine: 15 more rounds of polls are answered without
    // starting it.
    let before = poller.count();
    eventually(
        "15 polls on the stopped engine",
        Duration::from_secs(30),
        || poller.count() >= before + 15,
    );
    let seen = poller.finish();
    assert!(
        !dockerd_running(&env),
        "polling started the engine: {:?}\n{}",
        env.our_processes(),
        env.log()
    );
    let (p, c, ph, cb) = seen.last().unwrap().clone();
    assert_eq!(p, 200, "cached /_ping");
    assert!(
        ph.to_ascii_lowercase().contains("api-version: 1.41"),
        "{ph}"
    );
    // Its list was recorded on the way down: answered, not refused.
    assert_eq!((c, cb.trim()), (200, "[]"), "recorded /containers/json");
    let (_, v) = env.status();
    assert_eq!(v["held"], "idle");

    // A person at a terminal: the docker CLI starts it again.
    let out = docker_ok(&env, &["ps", "--format", "{{.ID}}"]);
    assert_eq!(out, "");
    env.wait_ready();
    assert!(env.log().contains("starting the engine on request"));
}

#[test]
fn running_containers_and_active_requests_keep_it_awake() {
    require_engine!();
    let mut env = proxy_env("idle_stop = \"2s\"");
    env.run();
    env.wait_ready();
    import_busybox(&env);
    let id = docker_ok(&env, &["run", "-d", "bb", "/bin/busybox", "sleep", "1000"]);
    let id = id.trim().to_string();
    env.wait_until(
        "a running container reported",
        Duration::from_secs(20),
        |v| v["awake"]["running_containers"] == 1,
    );
    let (_, text, _) = env.output(&["status"]);
    assert!(text.contains("1 running container(s)"), "{text}");
    // Three idle_stops later it still runs.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        let (_, v) = env.status();
        assert_eq!(v["phase"], "ready", "stopped with a container running");
        std::thread::sleep(Duration::from_millis(200));
    }
    // An open `docker logs -f` is an active request in flight.
    let mut logs = docker(&env, &["logs", "-f", &id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    env.wait_until("an active request reported", Duration::from_secs(20), |v| {
        v["awake"]["active_requests"] == 1
    });
    let _ = logs.kill();
    let _ = logs.wait();
    docker_ok(&env, &["rm", "-f", &id]);
    env.wait_until("an idle stop", Duration::from_secs(30), |v| {
        v["held"] == "idle"
    });
}

#[test]
fn connections_close_when_the_engine_dies_and_new_ones_wait() {
    require_engine!();
    let mut env = proxy_env("");
    env.run();
    let v = env.wait_ready();
    let pid = v["engine_pid"].as_i64().unwrap() as i32;
    // An open event stream through dockhand.
    let mut s = UnixStream::connect(listen(&env)).unwrap();
    s.write_all(b"GET /v1.41/events HTTP/1.1\r\nHost: d\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    harness::kill(pid, Signal::KILL);
    // The connection ends (EOF or reset), it does not hang.
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    // A new client waits for the restarted engine and is answered.
    let v = docker_ok(&env, &["version", "--format", "{{.Server.Version}}"]);
    assert!(!v.trim().is_empty());
    env.wait_until("a new engine", Duration::from_secs(60), |v| {
        v["phase"] == "ready" && v["engine_pid"] != pid
    });
}

#[test]
fn listen_is_never_taken_from_a_live_server_and_stale_sockets_are_replaced() {
    require_engine!();
    let mut env = proxy_env("");
    std::fs::create_dir_all(&env.state).unwrap();
    std::fs::set_permissions(
        &env.state,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let l = listen(&env);
    // A live server of someone else's.
    let live = std::os::unix::net::UnixListener::bind(&l).unwrap();
    let (code, _, err) = env.output(&["run"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains(&l.display().to_string()), "{err}");
    assert!(
        err.contains("served by another running program (pid "),
        "{err}"
    );
    assert!(l.exists(), "the live socket was removed");
    drop(live);
    // Stale now (nobody accepts): replaced.
    env.run();
    env.wait_ready();
    let v = docker_ok(&env, &["version", "--format", "{{.Server.Version}}"]);
    assert!(!v.trim().is_empty());
    let md = std::fs::metadata(&l).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o777,
        0o600
    );
    env.stop(0, Duration::from_secs(20));
    assert!(!l.exists(), "listen socket left behind");
    // Not a socket: refused, left alone.
    std::fs::write(&l, "mine").unwrap();
    let (code, _, err) = env.output(&["run"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&l).unwrap(), "mine");
}

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn open_fds_return_to_baseline_after_1000_connections() {
    require_engine!();
    let mut env = proxy_env("");
    let sup = env.run();
    env.wait_ready();
    let pid = env.supervisor_pid(sup);
    // One request first: the proxy's engine-side state is warm.
    raw(&listen(&env), "GET", "/_ping", "t");
    let base = open_fds(pid);
    let sock = listen(&env);
    let threads: Vec<_> = (0..10)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    let target = if i % 2 == 0 {
                        "/_ping"
                    } else {
                        "/v1.41/containers/json"
                    };
                    let (status, _, _) = raw(&sock, "GET", target, "t");
                    assert_eq!(status, 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    eventually("fds back to baseline", Duration::from_secs(10), || {
        open_fds(pid) <= base
    });
}

#[test]
fn bad_combinations_are_config_errors() {
    let env = Env::new();
    env.write_config("[profiles.default]\non_demand = true\n");
    let (code, _, err) = env.output(&["config", "check"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("config.toml:2:13: on_demand needs listen"),
        "{err}"
    );
}

fn docker_plain(env: &Env, args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_CONFIG", env.root.join("docker-config"))
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_docker_context_points_at_listen_and_can_be_made_current() {
    require_engine!();
    let mut env = proxy_env("on_demand = true");
    // A context dockhand made (its mark: the description) pointing
    // elsewhere is brought up to date. (A user's own is left alone:
    // tests/it/doctor.rs.)
    let o = docker_plain(
        &env,
        &[
            "context",
            "create",
            "dockhand",
            "--description",
            "dockhand profile default (engine started on demand)",
            "--docker",
            "host=unix:///nowhere.sock",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    env.run();
    let want = format!("unix://{}", listen(&env).display());
    eventually(
        "the context to point at listen",
        Duration::from_secs(20),
        || {
            let o = docker_plain(
                &env,
                &[
                    "context",
                    "inspect",
                    "dockhand",
                    "--format",
                    "{{.Endpoints.docker.Host}}",
                ],
            );
            String::from_utf8_lossy(&o.stdout).trim() == want
        },
    );
    let (code, out, err) = env.output(&["context", "--env"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("export DOCKER_HOST={want}\n"));
    let (code, out, err) = env.output(&["context", "--use"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("now current"), "{out}");
    let o = docker_plain(&env, &["context", "show"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "dockhand");
    // Plain `docker version`, no -H: through dockhand, starting the engine.
    let o = docker_plain(&env, &["version", "--format", "{{.Server.Version}}"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    env.wait_ready();
}

#[test]
fn colima_is_started_without_activating_its_own_context() {
    require_engine!();
    let mut env = proxy_env("");
    let home = env.root.join("colima");
    let calls = env.root.join("colima-calls.log");
    let path = format!(
        "{}:{}",
        harness::fixture("colima").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    env.extra_env.push(("PATH".into(), path));
    env.extra_env
        .push(("COLIMA_HOME".into(), home.display().to_string()));
    env.extra_env
        .push(("STANDIN_LOG".into(), calls.display().to_string()));
    env.write_config(&format!(
        "[profiles.default]\nengine = \"colima\"\nstate_dir = {:?}\nlisten = {:?}\non_demand = true\nstop_timeout = \"30s\"\nstart_timeout = \"90s\"\n",
        env.state.display().to_string(),
        listen(&env).display().to_string()
    ));
    env.run();
    env.wait_until("held", Duration::from_secs(20), |v| {
        v["held"] == "on_demand"
    });
    docker_ok(&env, &["version"]);
    let log = std::fs::read_to_string(&calls).unwrap_or_default();
    let start = log
        .lines()
        .find(|l| l.contains(" start "))
        .unwrap_or_else(|| panic!("no colima start in {log}"));
    assert!(start.ends_with("--activate=false"), "{start}");
}

/// BuildKit's session: `POST /session` upgraded to h2c, then HTTP/2 both
/// ways through dockhand; an open upgraded connection is an active request.
#[test]
fn an_h2c_session_is_copied_raw_and_counts_as_active() {
    require_engine!();
    let mut env = proxy_env("idle_stop = \"1h\"");
    env.run();
    env.wait_ready();
    let mut s = UnixStream::connect(listen(&env)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(
        b"POST /session HTTP/1.1\r\nHost: d\r\nUser-Agent: Docker-Client/20.10\r\n\
Upgrade: h2c\r\nConnection: Upgrade\r\nX-Docker-Expose-Session-Uuid: dockhand-test\r\n\
X-Docker-Expose-Session-Name: t\r\nX-Docker-Expose-Session-Sharedkey: k\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "closed during the head");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // dockerd is the HTTP/2 client of a session (the CLI serves it): its
    // preface and SETTINGS come through; our SETTINGS go back and are
    // acknowledged (a SETTINGS frame with the ACK flag).
    let mut preface = [0u8; 24];
    s.read_exact(&mut preface).unwrap();
    assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    s.write_all(b"\0\0\0\x04\0\0\0\0\0").unwrap();
    let mut acked = false;
    for _ in 0..16 {
        let mut h = [0u8; 9];
        s.read_exact(&mut h).unwrap();
        let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).unwrap();
        if h[3] == 4 && h[4] & 1 == 1 {
            acked = true;
            break;
        }
    }
    assert!(acked, "no SETTINGS ACK: our bytes did not reach dockerd");
    env.wait_until(
        "the session counted as active",
        Duration::from_secs(20),
        |v| v["awake"]["active_requests"] == 1,
    );
    drop(s);
    env.wait_until("no active request", Duration::from_secs(20), |v| {
        v["awake"]["active_requests"] == 0
    });
}

/// Type=notify: a held engine is dockhand up and serving (READY=1), and an
/// idle stop is not dockhand stopping (no STOPPING=1).
#[test]
fn systemd_sees_a_held_engine_as_ready_and_an_idle_stop_as_no_stop() {
    require_engine!();
    let mut env = proxy_env("on_demand = true\nidle_stop = \"1s\"");
    let path = env.root.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    env.extra_env
        .push(("NOTIFY_SOCKET".into(), path.display().to_string()));
    env.run();
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).expect("no READY=1 while held");
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg.lines().any(|l| l == "READY=1") {
            assert!(msg.contains("not started yet (on_demand)"), "{msg}");
            break;
        }
    }
    docker_ok(&env, &["version"]);
    env.wait_until("an idle stop", Duration::from_secs(30), |v| {
        v["held"] == "idle"
    });
    // Messages until the held state is announced (READY=1 again).
    let mut seen = Vec::new();
    loop {
        let n = sock.recv(&mut buf).expect("no READY=1 after the idle stop");
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        seen.push(msg.clone());
        if msg.contains("READY=1") && msg.contains("idle policy") {
            break;
        }
    }
    assert!(
        seen.iter().all(|m| !m.lines().any(|l| l == "STOPPING=1")),
        "{seen:?}"
    );
}

/// Issue 10: an engine found running that dockhand can't stop (started by
/// hand: no process dockhand can verify) is never stopped as idle, and
/// `status` says why.
#[test]
fn an_adopted_engine_dockhand_cant_stop_is_never_idle_stopped() {
    require_engine!();
    let mut env = proxy_env("idle_stop = \"1s\"");
    std::fs::create_dir_all(&env.state).unwrap();
    std::fs::set_permissions(
        &env.state,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let sock = env.socket();
    // It answers that no container runs: only its being adopted keeps it.
    let mut server = Command::new(harness::fixture("engine/ping-server"))
        .arg(&sock)
        .arg("--no-containers")
        .spawn()
        .unwrap();
    eventually("the hand-started engine", Duration::from_secs(10), || {
        sock.exists()
    });
    env.run();
    let v = env.wait_ready();
    assert_eq!(v["adopted"], true);
    assert_eq!(v["engine_pid"], serde_json::Value::Null);
    env.wait_until("the reason reported", Duration::from_secs(20), |v| {
        v["awake"]["never_idle_stopped"]
            .as_str()
            .is_some_and(|s| s.contains("isn't dockhand's to stop"))
    });
    let (_, text, _) = env.output(&["status"]);
    assert!(text.contains("awake: never stopped as idle"), "{text}");
    // Four idle_stops later (the idle check runs every 250 ms) it is still
    // ready, not held, and the server was never signalled.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let (_, v) = env.status();
        assert_eq!(v["phase"], "ready", "idle-stopped: {}", env.log());
        assert_eq!(v["held"], serde_json::Value::Null);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!env.log().contains("stopping the engine"), "{}", env.log());
    assert!(
        server.try_wait().unwrap().is_none(),
        "the engine was stopped"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}
