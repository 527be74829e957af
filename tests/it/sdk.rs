//! A real SDK as a client: docker-py (the `docker` package from PyPI,
//! pinned in scripts/test, installed into target/pydeps) driving the
//! proxy through tests/sdk/docker_py.py.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{Env, Streaming, require_engine};
use crate::held::{dockerd_running, import_busybox, listen, proxy_env, wait_idle_stop};

/// docker-py's pinned version (scripts/test installs it).
const DOCKER_PY: &str = "7.1.0";

fn pydeps() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pydeps")
}

/// docker-py is there (else skipped with a note; a failure with CI=true).
fn docker_py_available() -> bool {
    let ok = Command::new("python3")
        .env("PYTHONPATH", pydeps())
        .args([
            "-c",
            "import docker, sys; sys.exit(docker.__version__ != sys.argv[1])",
            DOCKER_PY,
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let why = format!(
            "docker-py {DOCKER_PY} is not in {}: scripts/test installs it (python3 -m pip install --target target/pydeps docker=={DOCKER_PY})",
            pydeps().display()
        );
        assert!(
            std::env::var("CI").is_ok_and(|v| v != "true") || std::env::var("CI").is_err(),
            "{why}"
        );
        eprintln!("SKIP: {why}");
    }
    ok
}

/// The driver script, taking commands on stdin.
struct Py {
    out: Streaming,
    stdin: Option<std::process::ChildStdin>,
    n: usize,
}

impl Py {
    fn spawn(env: &Env) -> Py {
        let mut cmd = Command::new("python3");
        cmd.arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/sdk/docker_py.py"
        ))
        .arg(listen(env))
        .arg(env.socket())
        .env("PYTHONPATH", pydeps())
        .stdin(Stdio::piped());
        let mut out = Streaming::spawn(cmd);
        let stdin = out.child.stdin.take();
        Py { out, stdin, n: 0 }
    }

    /// Run `cmd`; its JSON answer (a failure panics with the message).
    fn ask(&mut self, cmd: &str, within: Duration) -> String {
        self.n += 1;
        writeln!(self.stdin.as_mut().unwrap(), "{cmd}").unwrap();
        let tag = format!("#{} ", self.n);
        let text = self.out.wait_for(&tag, within);
        let line = text[text.find(&tag).unwrap()..]
            .lines()
            .next()
            .unwrap_or("");
        let rest = &line[tag.len()..];
        assert!(rest.starts_with("ok "), "docker-py {cmd}: {rest}\n{text}");
        rest[3..].to_string()
    }
}

macro_rules! require_docker_py {
    () => {
        require_engine!();
        if !docker_py_available() {
            return;
        }
    };
}

#[test]
fn sdk_lists_are_answered_while_held_stopped_and_unrecorded_ones_wake_it() {
    require_docker_py!();
    let mut env = proxy_env("idle_stop = \"2s\"");
    env.run();
    env.wait_ready();
    import_busybox(&env);
    crate::held::docker_ok_on(&env, &env.socket(), &["volume", "create", "dhvol"]);
    let mut py = Py::spawn(&env);
    let live = py.ask("lists", Duration::from_secs(60));
    assert!(live.contains("\"NotFound\""), "{live}");
    wait_idle_stop(&env);
    for _ in 0..3 {
        let held = py.ask("lists", Duration::from_secs(60));
        assert_eq!(
            held, live,
            "answers differ while the engine is held stopped"
        );
    }
    assert!(
        !dockerd_running(&env),
        "docker-py's lists woke the engine\n{}",
        env.log()
    );
    let (_, v) = env.status();
    assert_eq!(v["held"], "idle");
    // A list never asked before has no record: it starts the engine.
    assert_eq!(py.ask("wake", Duration::from_secs(60)), "0");
    let v = env.wait_ready();
    assert!(v.get("held").is_none(), "{v}");
}

#[test]
fn sdk_lists_without_a_record_start_a_held_engine() {
    require_docker_py!();
    let mut env = proxy_env("on_demand = true");
    env.run();
    env.wait_until("held on demand", Duration::from_secs(20), |v| {
        v["held"] == "on_demand" && v["supervisor_running"] == true
    });
    assert!(!dockerd_running(&env));
    let mut py = Py::spawn(&env);
    let got = py.ask("lists_unrecorded", Duration::from_secs(120));
    assert_eq!(got, "[0, 0, 0, \"NotFound\"]");
    let v = env.wait_ready();
    assert!(v.get("held").is_none(), "{v}");
}

#[test]
fn sdk_exec_and_attach_sockets_kept_open_dont_keep_the_engine_awake() {
    require_docker_py!();
    let mut env = proxy_env("idle_stop = \"2s\"");
    env.run();
    env.wait_ready();
    import_busybox(&env);
    let mut py = Py::spawn(&env);
    py.ask("exec_hold", Duration::from_secs(120));
    // The exec and the container are over; docker-py holds both sockets.
    wait_idle_stop(&env);
    py.ask("release", Duration::from_secs(20));
}

#[test]
fn sdk_build_streams_yield_the_same_chunks_as_direct() {
    require_docker_py!();
    let mut env = proxy_env("");
    env.run();
    env.wait_ready();
    import_busybox(&env);
    let mut py = Py::spawn(&env);
    py.ask("build_same", Duration::from_secs(180));
}

/// The proxy notices a client that hung up while the engine is quiet (a
/// silent build step) and closes the engine connection: dockerd cancels
/// the build as it does for a direct client.
#[test]
fn sdk_a_discarded_build_stream_cancels_the_build() {
    require_docker_py!();
    let mut env = proxy_env("");
    env.run();
    env.wait_ready();
    import_busybox(&env);
    let mut py = Py::spawn(&env);
    // Direct first (the engine cancels it: the check works), then through dockhand.
    py.ask("build_discard", Duration::from_secs(180));
}
