//! `dockhand doctor`: each ✗ provoked for real, and `--fix` repairing the
//! safe ones.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::Value;

use crate::harness::{self, Env, alive, require_engine};

/// `doctor --json [extra]`: exit code and the document.
fn doctor(env: &Env, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["doctor", "--json"];
    args.extend_from_slice(extra);
    let o = env.cmd(&args).env_remove("DOCKER_HOST").output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {out}{}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code().unwrap(), v)
}

/// The check with `id` (the first, for ids that repeat).
fn check<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {v:#}"))
}

fn docker_config(env: &mut Env) -> std::path::PathBuf {
    let dc = env.root.join("docker-config");
    std::fs::create_dir_all(&dc).unwrap();
    env.extra_env
        .push(("DOCKER_CONFIG".into(), dc.display().to_string()));
    dc
}

/// The real docker CLI with the test's DOCKER_CONFIG.
fn docker(env: &Env, args: &[&str]) -> (bool, String) {
    let mut c = Command::new("docker");
    c.args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT");
    for (k, v) in &env.extra_env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).trim().to_string(),
    )
}

#[test]
fn a_healthy_engine_passes_after_fixing_mode_and_context() {
    require_engine!();
    let mut env = Env::new();
    let dc = docker_config(&mut env);
    // The socket outside the private state dir, in a 0755 directory:
    // dockerd makes it 0660 for the `docker` group, which can then reach it.
    let public = env.root.join("pub");
    std::fs::create_dir(&public).unwrap();
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = public.join("d.sock");
    env.dockerd_config(&format!("socket = {:?}", sock.display().to_string()));
    // A docker context pointing elsewhere, made current by the real CLI.
    assert!(
        docker(
            &env,
            &[
                "context",
                "create",
                "elsewhere",
                "--docker",
                "host=unix:///tmp/nowhere.sock"
            ]
        )
        .0
    );
    assert!(docker(&env, &["context", "use", "elsewhere"]).0);
    // A stale context dockhand made (its description, as an older
    // release wrote it): updated, not duplicated.
    assert!(
        docker(
            &env,
            &[
                "context",
                "create",
                "dockhand",
                "--description",
                "dockhand profile default (engine started on demand)",
                "--docker",
                "host=unix:///tmp/old.sock"
            ]
        )
        .0
    );
    env.run();
    env.wait_until("ready", std::time::Duration::from_secs(60), |v| {
        v["phase"] == "ready"
    });

    let (code, v) = doctor(&env, &[]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["ok"], false);
    let mode = check(&v, "socket.mode");
    assert_eq!(mode["status"], "fail", "{mode}");
    assert!(mode["summary"].as_str().unwrap().contains("0660"), "{mode}");
    assert_eq!(mode["fixable"], true);
    let ctx = check(&v, "context");
    assert_eq!(ctx["status"], "fail", "{ctx}");
    assert!(
        ctx["summary"].as_str().unwrap().contains("`elsewhere`"),
        "{ctx}"
    );
    for id in [
        "config",
        "binary.dockerd",
        "binary.docker",
        "supervisor",
        "socket",
        "socket.ping",
        "stale",
        "log",
        "disk",
        "docker.df",
    ] {
        assert_eq!(check(&v, id)["status"], "pass", "{id}: {v:#}");
    }

    let (code, v) = doctor(&env, &["--fix"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(check(&v, "socket.mode")["fixed"], true);
    assert_eq!(check(&v, "context")["fixed"], true);
    let m = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(m & 0o777, 0o600);
    // The CLI now reaches this engine through its current context.
    assert_eq!(docker(&env, &["context", "show"]).1, "dockhand");
    let (ok, version) = docker(&env, &["version", "--format", "{{.Server.Version}}"]);
    assert!(
        ok && !version.is_empty(),
        "docker can't reach the engine via the context"
    );
    assert!(dc.join("config.json").exists());
    let (code, v) = doctor(&env, &[]);
    assert_eq!(code, 0, "{v:#}");

    // Plain output: ✓ lines, no colour in a pipe.
    let o = env
        .cmd(&["doctor"])
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("✓ socket.mode: mode 0600"), "{text}");
    assert!(!text.contains('\x1b'), "colour in a pipe: {text}");
}

#[test]
fn docker_host_elsewhere_is_reported_not_fixed() {
    let env = Env::new();
    env.command_config(&["/bin/true"], "");
    let o = env
        .cmd(&["doctor", "--json", "--fix"])
        .env("DOCKER_HOST", "unix:///var/run/docker.sock")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let c = check(&v, "context");
    assert_eq!(c["status"], "fail");
    assert_eq!(c["fixable"], false);
    assert!(
        c["fix"].as_str().unwrap().contains(&format!(
            "export DOCKER_HOST=unix://{}",
            env.socket().display()
        )),
        "{c}"
    );
}

/// Issue 17: a user's own context named `dockhand` (say, a remote
/// engine) is not dockhand's: `--fix` leaves it and the current context
/// as they were, and says what to run by hand.
#[test]
fn a_users_own_dockhand_context_is_left_alone() {
    let mut env = Env::new();
    docker_config(&mut env);
    env.command_config(&["/bin/true"], "");
    for args in [
        &[
            "context",
            "create",
            "elsewhere",
            "--docker",
            "host=unix:///tmp/nowhere.sock",
        ][..],
        &["context", "use", "elsewhere"],
        &[
            "context",
            "create",
            "dockhand",
            "--description",
            "my remote engine",
            "--docker",
            "host=tcp://10.0.0.5:2375",
        ],
    ] {
        assert!(docker(&env, args).0, "docker {args:?}");
    }
    let before = docker(&env, &["context", "inspect", "dockhand"]).1;
    let (code, v) = doctor(&env, &["--fix"]);
    assert_eq!(code, 1, "{v:#}");
    let c = check(&v, "context");
    assert_eq!(c["status"], "fail", "{c}");
    assert_eq!(c["fixable"], false, "{c}");
    assert_ne!(c["fixed"], true, "{c}");
    let summary = c["summary"].as_str().unwrap();
    assert!(summary.contains("dockhand did not make it"), "{c}");
    assert!(summary.contains("docker context update dockhand"), "{c}");
    assert!(
        c["fix"].as_str().unwrap().contains("docker context create"),
        "{c}"
    );
    assert_eq!(docker(&env, &["context", "inspect", "dockhand"]).1, before);
    assert_eq!(docker(&env, &["context", "show"]).1, "elsewhere");
}

/// Issue 17: a docker CLI that hangs is reported as timed out (and not
/// asked again by the later checks).
#[test]
fn a_hung_docker_cli_is_reported_as_timed_out() {
    let mut env = Env::new();
    env.command_config(&["/bin/true"], "");
    let bin = env.root.join("hung-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let p = bin.join("docker");
    std::fs::write(&p, "#!/bin/sh\nexec sleep 1000\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.extra_env.retain(|(k, _)| k != "PATH");
    env.extra_env
        .push(("PATH".into(), format!("{}:/usr/bin:/bin", bin.display())));
    let started = std::time::Instant::now();
    let (_, v) = doctor(&env, &[]);
    let c = check(&v, "binary.docker");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .contains("timed out after 10 s"),
        "{c}"
    );
    let ctx = check(&v, "context");
    assert!(
        ctx["summary"].as_str().unwrap().contains("timed out"),
        "{ctx}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "docker was waited for more than once"
    );
}

#[test]
fn missing_binaries_fail_with_how_to_install() {
    let env = Env::new();
    env.command_config(&["/nonexistent/engine-server"], "");
    let (code, v) = doctor(&env, &[]);
    assert_eq!(code, 1);
    let c = check(&v, "binary.command");
    assert_eq!(c["status"], "fail");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/engine-server"),
        "{c}"
    );

    env.dockerd_config("");
    let text =
        std::fs::read_to_string(&env.config).unwrap() + "binary = \"dockerd-not-installed\"\n";
    env.write_config(&text);
    let (code, v) = doctor(&env, &[]);
    assert_eq!(code, 1);
    let c = check(&v, "binary.dockerd");
    assert_eq!(c["status"], "fail", "{c}");
    assert!(
        c["fix"].as_str().unwrap().contains("apt install docker.io"),
        "{c}"
    );
}

#[test]
fn a_broken_config_is_a_failed_check() {
    let env = Env::new();
    env.write_config("[profiles.default]\nprobe_intervall = \"1s\"\n");
    let (code, v) = doctor(&env, &[]);
    assert_eq!(code, 1);
    let c = check(&v, "config");
    assert_eq!(c["status"], "fail");
    assert!(
        c["summary"].as_str().unwrap().contains("config.toml:2:1"),
        "{c}"
    );
}

#[test]
fn stale_pid_files_are_found_and_removed_without_signalling() {
    let env = Env::new();
    env.dockerd_config("");
    std::fs::create_dir_all(&env.state).unwrap();
    std::fs::set_permissions(&env.state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let dead = env.state.join("dockerd.pid");
    std::fs::write(&dead, format!("{}\n", harness::dead_pid())).unwrap();
    // A recycled pid: the file names an unrelated live process.
    let mut victim = harness::bystander();
    let exec = env.state.join("exec/containerd");
    std::fs::create_dir_all(&exec).unwrap();
    let reused = exec.join("containerd.pid");
    std::fs::write(&reused, victim.id().to_string()).unwrap();
    // Sockets nobody serves: the engine's, and a killed supervisor's
    // control socket.
    drop(std::os::unix::net::UnixListener::bind(env.socket()).unwrap());
    drop(std::os::unix::net::UnixListener::bind(env.state.join("control.sock")).unwrap());

    let (code, v) = doctor(&env, &[]);
    assert_eq!(code, 1);
    let c = check(&v, "stale");
    assert_eq!(c["status"], "fail");
    let s = c["summary"].as_str().unwrap();
    assert!(
        s.contains("dockerd.pid") && s.contains("is not running"),
        "{s}"
    );
    assert!(
        s.contains("containerd.pid") && s.contains("another program (sleep)"),
        "{s}"
    );
    assert!(s.contains("docker.sock (nobody serves it)"), "{s}");
    assert!(s.contains("control.sock (nobody serves it)"), "{s}");

    let (_, v) = doctor(&env, &["--fix"]);
    assert_eq!(check(&v, "stale")["status"], "pass", "{v:#}");
    assert_eq!(check(&v, "stale")["fixed"], true);
    assert!(!dead.exists() && !reused.exists() && !env.socket().exists());
    assert!(alive(victim.id() as i32), "the bystander was signalled");
    let _ = victim.kill();
    let _ = victim.wait();
}

/// A colima profile over the stand-in (no VM needed for these checks).
fn colima_env() -> (Env, std::path::PathBuf) {
    harness::colima_env("")
}

fn agent(env: &Env, label: &str, args: &[&str]) {
    let dir = env.home.join("Library/LaunchAgents");
    std::fs::create_dir_all(&dir).unwrap();
    let mut d = plist::Dictionary::new();
    d.insert("Label".into(), label.into());
    d.insert(
        "ProgramArguments".into(),
        plist::Value::Array(args.iter().map(|a| (*a).into()).collect()),
    );
    d.insert("KeepAlive".into(), true.into());
    plist::Value::Dictionary(d)
        .to_file_xml(dir.join(format!("{label}.plist")))
        .unwrap();
}

#[test]
fn a_competing_colima_agent_is_named_with_its_fix() {
    let (env, _) = colima_env();
    // Not a competitor: another Colima profile, and dockhand's own agent.
    agent(
        &env,
        "com.example.colima-work",
        &["/opt/homebrew/bin/colima", "start", "work", "-f"],
    );
    agent(
        &env,
        "local.docker",
        &["/opt/homebrew/bin/dockhand", "run", "--profile", "default"],
    );
    let (_, v) = doctor(&env, &[]);
    assert_eq!(check(&v, "service.competitors")["status"], "pass", "{v:#}");
    // brew services' agent for the default instance.
    agent(
        &env,
        "homebrew.mxcl.colima",
        &["/opt/homebrew/opt/colima/bin/colima", "start", "-f"],
    );
    agent(
        &env,
        "io.lima-vm.autostart.colima",
        &[
            "/opt/homebrew/bin/limactl",
            "start",
            "colima",
            "--foreground",
        ],
    );
    // A hand-written agent, nix-darwin style: another label, same instance.
    agent(
        &env,
        "local.colima",
        &[
            "/bin/sh",
            "-c",
            "/bin/wait4path /nix/store && exec /nix/store/x-colima/bin/colima start --foreground",
        ],
    );
    let (code, v) = doctor(&env, &["--fix"]);
    assert_eq!(code, 1);
    let found: Vec<&Value> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"] == "service.competitors")
        .collect();
    assert_eq!(found.len(), 3, "{found:#?}");
    assert_eq!(found[0]["status"], "fail");
    assert!(
        found[0]["fix"]
            .as_str()
            .unwrap()
            .contains("brew services stop colima"),
        "{found:#?}"
    );
    assert_eq!(
        found[0]["fixed"], false,
        "someone else's agent is never touched"
    );
    assert!(
        found[1]["fix"]
            .as_str()
            .unwrap()
            .contains("limactl autostart disable colima"),
        "{found:#?}"
    );
    assert!(
        env.home
            .join("Library/LaunchAgents/homebrew.mxcl.colima.plist")
            .exists()
    );
}

#[test]
fn a_stale_lima_pid_file_is_found_and_removed() {
    let (env, home) = colima_env();
    let inst = home.join("_lima/colima");
    std::fs::create_dir_all(&inst).unwrap();
    std::fs::write(inst.join("ha.pid"), format!("{}\n", harness::dead_pid())).unwrap();
    drop(std::os::unix::net::UnixListener::bind(inst.join("ha.sock")).unwrap());
    let (code, v) = doctor(&env, &[]);
    assert_eq!(code, 1);
    let s = check(&v, "stale")["summary"].as_str().unwrap().to_string();
    assert!(
        s.contains("ha.pid (pid") && s.contains("ha.sock (nobody serves it)"),
        "{s}"
    );
    let (_, v) = doctor(&env, &["--fix"]);
    assert_eq!(check(&v, "stale")["fixed"], true, "{v:#}");
    assert!(!inst.join("ha.pid").exists() && !inst.join("ha.sock").exists());
}

#[test]
fn tool_versions_are_checked_against_the_oldest_supported() {
    let (mut env, _) = colima_env();
    let bin = env.root.join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, out) in [
        ("colima", "colima version 0.5.6\ngit commit: 1234"),
        ("limactl", "limactl version 1.0.4"),
    ] {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\nprintf '%s\\n' '{out}'\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    env.extra_env.retain(|(k, _)| k != "PATH");
    env.extra_env
        .push(("PATH".into(), format!("{}:/usr/bin:/bin", bin.display())));
    let (code, v) = doctor(&env, &[]);
    assert_eq!(code, 1);
    let c = check(&v, "binary.colima");
    assert_eq!(c["status"], "fail", "{c}");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .contains("is 0.5.6, older than 0.6.0"),
        "{c}"
    );
    assert_eq!(c["fix"], "upgrade colima to 0.6.0 or later");
    let l = check(&v, "binary.limactl");
    assert_eq!(l["status"], "pass", "{l}");
    assert!(
        l["summary"]
            .as_str()
            .unwrap()
            .contains("1.0.4 (oldest supported 0.18.0)"),
        "{l}"
    );
}
