//! Socket activation for `listen`: the systemd socket unit and the
//! launchd `Sockets` entry as rendered, checked by the real tools
//! (`systemd-analyze --user verify`, `xmllint` against Apple's DTD), their
//! install and removal (stand-in systemctl), and dockhand taking over a
//! socket passed with `LISTEN_FDS` (systemd's own `systemd-socket-activate`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{self, BIN, Env, require_engine};

fn have(p: &str) -> bool {
    harness::which(p).is_some()
}

fn listen(env: &Env) -> PathBuf {
    env.state.join("dh.sock")
}

fn listen_config(env: &Env) {
    env.dockerd_config(&format!(
        "listen = {:?}\non_demand = true",
        listen(env).display().to_string()
    ));
}

fn print(env: &Env, platform: &str) -> String {
    let (code, out, err) = env.output(&["service", "print", "--platform", platform]);
    assert_eq!(code, 0, "{err}");
    out
}

#[test]
fn systemd_socket_unit_is_rendered_and_verified() {
    let env = Env::new();
    listen_config(&env);
    let text = print(&env, "systemd");
    let (service, socket) = text
        .split_once("\n# ---- dockhand-default.socket ----\n")
        .expect("a socket unit after the service unit");
    let l = listen(&env).display().to_string();
    for line in [
        format!("ListenStream={l}\n"),
        "SocketMode=0600\n".into(),
        "DirectoryMode=0700\n".into(),
        "Service=dockhand-default.service\n".into(),
        "WantedBy=sockets.target\n".into(),
    ] {
        assert!(socket.contains(&line), "missing {line:?} in\n{socket}");
    }
    if !have("systemd-analyze") {
        eprintln!("SKIP: systemd-analyze not installed");
        return;
    }
    let dir = env.root.join("units");
    let runtime = env.root.join("runtime");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(dir.join("dockhand-default.service"), service).unwrap();
    let unit = dir.join("dockhand-default.socket");
    std::fs::write(&unit, socket).unwrap();
    let o = Command::new("systemd-analyze")
        .args(["--user", "verify"])
        .arg(&unit)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("HOME", &env.home)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "verify rejects it:\n{stderr}\n{socket}");
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("dockhand-default."))
        .collect();
    assert!(
        ours.is_empty(),
        "systemd-analyze warns:\n{}",
        ours.join("\n")
    );
}

#[test]
fn launchd_plist_carries_the_socket() {
    let env = Env::new();
    listen_config(&env);
    let text = print(&env, "launchd");
    let v = plist::Value::from_reader_xml(text.as_bytes()).unwrap();
    let sock = v
        .as_dictionary()
        .and_then(|d| d.get("Sockets"))
        .and_then(|s| s.as_dictionary())
        .and_then(|s| s.get("Listeners"))
        .and_then(|s| s.as_dictionary())
        .expect("Sockets.Listeners");
    assert_eq!(
        sock.get("SockPathName").and_then(|v| v.as_string()),
        Some(listen(&env).to_str().unwrap())
    );
    assert_eq!(
        sock.get("SockPathMode").and_then(|v| v.as_signed_integer()),
        Some(384)
    );
    assert_eq!(
        sock.get("SockType").and_then(|v| v.as_string()),
        Some("stream")
    );
    if !have("xmllint") {
        eprintln!("SKIP: xmllint not installed");
        return;
    }
    let f = env.root.join("agent.plist");
    std::fs::write(&f, &text).unwrap();
    let dtd = harness::fixture("service/PropertyList-1.0.dtd");
    let o = Command::new("xmllint")
        .arg("--noout")
        .arg("--dtdvalid")
        .arg(&dtd)
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "xmllint rejects the plist:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn calls(log: &Path) -> Vec<String> {
    let s = std::fs::read_to_string(log).unwrap_or_default();
    let _ = std::fs::remove_file(log);
    s.lines().map(str::to_string).collect()
}

#[test]
fn systemd_install_starts_the_socket_first_and_uninstall_removes_it() {
    let mut env = Env::new();
    listen_config(&env);
    let bin = env.root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(harness::fixture("service/systemctl"), bin.join("systemctl")).unwrap();
    std::fs::set_permissions(
        bin.join("systemctl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let log = env.root.join("calls.log");
    env.extra_env = vec![
        ("PATH".into(), format!("{}:/usr/bin:/bin", bin.display())),
        ("DOCKHAND_SERVICE_PLATFORM".into(), "systemd".into()),
        ("DOCKHAND_TEST_LOG".into(), log.display().to_string()),
        (
            "STANDIN_STATE".into(),
            env.root.join("standin").display().to_string(),
        ),
    ];
    let (code, out, err) = env.output(&["service", "install"]);
    assert_eq!(code, 0, "{out}{err}");
    let units = env.root.join("xdg-config/systemd/user");
    let socket = units.join("dockhand-default.socket");
    assert!(socket.exists() && units.join("dockhand-default.service").exists());
    let c = calls(&log);
    let sock_at = c
        .iter()
        .position(|l| l == "systemctl --user enable --now dockhand-default.socket")
        .unwrap_or_else(|| panic!("{c:?}"));
    let svc_at = c
        .iter()
        .position(|l| {
            l.starts_with("systemctl --user start") && l.ends_with(" dockhand-default.service")
        })
        .unwrap_or_else(|| panic!("{c:?}"));
    assert!(
        sock_at < svc_at,
        "the socket must listen before the service starts: {c:?}"
    );
    let (code, out, err) = env.output(&["service", "uninstall"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!socket.exists(), "socket unit left behind");
    assert!(calls(&log).contains(&"systemctl --user disable --now dockhand-default.socket".into()));
}

/// systemd's `systemd-socket-activate` binds `listen` and passes it with
/// `LISTEN_FDS`/`LISTEN_PID`, exactly as a socket unit does.
#[test]
fn dockhand_serves_a_socket_passed_by_systemd() {
    require_engine!();
    if !have("systemd-socket-activate") {
        eprintln!("SKIP: systemd-socket-activate not installed");
        return;
    }
    let env = Env::new();
    listen_config(&env);
    std::fs::create_dir_all(&env.state).unwrap();
    std::fs::set_permissions(&env.state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let l = listen(&env);
    let out = std::fs::File::create(env.root.join("activate.out")).unwrap();
    let mut act = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&l)
        .arg(BIN)
        .arg("--config")
        .arg(&env.config)
        .arg("run")
        .env("HOME", &env.home)
        .env("DOCKER_CONFIG", env.root.join("docker-config"))
        .env("XDG_CONFIG_HOME", env.root.join("xdg-config"))
        .env("XDG_STATE_HOME", env.root.join("xdg-state"))
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    harness::eventually("the socket", Duration::from_secs(10), || l.exists());
    // The first client starts dockhand (systemd-socket-activate execs it
    // on the first connection), which takes the socket and the engine up.
    let o = Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", l.display()))
        .args(["version", "--format", "{{.Server.Version}}"])
        .env("DOCKER_CONFIG", env.root.join("docker-config"))
        .output()
        .unwrap();
    let log = std::fs::read_to_string(env.state.join("dockhand.log")).unwrap_or_default();
    assert!(
        o.status.success(),
        "{}\n{log}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(log.contains("(socket activation)"), "{log}");
    harness::kill(act.id() as i32, rustix::process::Signal::TERM);
    let _ = act.wait();
}

/// `LISTEN_PID` naming dockhand itself and `LISTEN_FDS` naming
/// descriptors that were not passed (3 is a plain file, 4 and 5 are not
/// open at start, so later they are dockhand's own): dockhand takes
/// nothing, warns, binds `listen` itself and serves it (issue 15: it used
/// to close its own descriptors and fail with EBADF).
#[test]
fn activation_variables_without_sockets_take_nothing() {
    require_engine!();
    let mut env = Env::new();
    listen_config(&env);
    let run = env.cmd(&["run"]);
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(r#"exec 3</dev/null 4>&- 5>&-; LISTEN_PID=$$ LISTEN_FDS=3 exec "$0" "$@""#)
        .arg(run.get_program())
        .args(run.get_args())
        .stdin(Stdio::null());
    for (k, v) in run.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    let i = env.spawn_supervisor(sh);
    let l = listen(&env);
    harness::eventually("dockhand holds the engine", Duration::from_secs(30), || {
        env.status().1["held"] == "on_demand"
    });
    let answer = ask(&l).unwrap_or_else(|e| panic!("{e}\n{}", env.log()));
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "{answer}\n{}",
        env.log()
    );
    let log = env.log();
    assert!(!log.contains("(socket activation)"), "{log}");
    assert!(
        log.contains("ignoring descriptor 3: it is not a socket"),
        "{log}"
    );
    assert!(
        log.contains("ignoring descriptor 4: it is not open"),
        "{log}"
    );
    assert_eq!(
        env.stop(i, Duration::from_secs(60)).code(),
        Some(0),
        "{log}"
    );
}

/// One request on a new connection to `sock`, answered in full (bounded).
fn ask(sock: &Path) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.write_all(
        b"GET /_ping HTTP/1.1\r\nHost: d\r\nUser-Agent: Docker-Client/20.10\r\nConnection: close\r\n\r\n",
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Under a real `systemd --user`: `service install` of an on-demand
/// profile sets up the socket unit, returns once dockhand holds the
/// engine stopped, and with the service stopped, the first client starts
/// dockhand through the socket and then the engine.
#[test]
fn systemd_user_socket_activation_starts_dockhand_at_the_first_client() {
    use crate::systemd_user::{Rig, Round, UNIT, available, ok};
    if !available(false) {
        return;
    }
    let rig = Rig::up(Round::Command);
    rig.write_config(
        "listen = \"~/state/dh.sock\"\non_demand = true\ndocker_context = false\nstart_timeout = \"30s\"",
        &[],
    );
    let text = ok(&rig.dockhand(&["service", "install"]), "install");
    assert!(text.contains("not started yet (on_demand)"), "{text}");
    let socket_unit = "dockhand-default.socket";
    assert_eq!(rig.systemctl(&["is-active", socket_unit]).trim(), "active");
    let st = rig.state();
    assert_eq!(st["held"], "on_demand", "{st}");
    let state_dir = PathBuf::from(st["socket"].as_str().unwrap())
        .parent()
        .unwrap()
        .to_path_buf();
    let listen = state_dir.join("dh.sock");
    let log = || std::fs::read_to_string(state_dir.join("dockhand.log")).unwrap_or_default();
    assert!(log().contains("(socket activation)"), "{}", log());

    // dockhand stopped: the socket stays, and the first client starts it.
    rig.systemctl(&["stop", UNIT]);
    assert_eq!(rig.systemctl(&["is-active", UNIT]).trim(), "inactive");
    assert_eq!(rig.systemctl(&["is-active", socket_unit]).trim(), "active");
    let answer = ask(&listen).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}\n{}", log());
    assert_eq!(rig.systemctl(&["is-active", UNIT]).trim(), "active");
    assert_eq!(rig.state()["phase"], "ready", "{}", log());

    let text = ok(&rig.dockhand(&["service", "uninstall"]), "uninstall");
    assert!(text.contains(socket_unit), "{text}");
    assert_ne!(rig.systemctl(&["is-active", socket_unit]).trim(), "active");
}
