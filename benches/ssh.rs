//! The ssh engine's figures, side by side (run: `cargo bench --bench ssh`,
//! as root, with Debian's docker.io and openssh-server installed): a
//! private sshd on 127.0.0.1 and a private dockerd behind it (the rig of
//! tests/it/ssh_rig.rs), and for each of `docker ps`, `docker version`
//! and `docker run --rm`, the time through dockhand's `listen` (one
//! supervised ssh forward), against the remote socket directly, and with
//! `DOCKER_HOST=ssh://` (a new ssh connection and a remote `docker system
//! dial-stdio` per API connection); 30 parallel `docker ps` through each;
//! and the time from `kill -9` of the forward to the next answer, next to
//! one fresh ssh connect + request.
//!
//! Targets: dockhand ≤ direct × 1.2 + 3 ms; ≥ 5× faster than ssh:// for
//! `docker ps`; kill -9 → answer ≤ one connect + request (plus the
//! supervisor's noticing). Printed, not asserted. `DOCKHAND_BENCH_RUNS`
//! sets the runs per figure (default 15).

mod common;
#[path = "../tests/it/harness.rs"]
mod harness;
#[path = "../tests/it/ssh_rig.rs"]
mod ssh_rig;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::pct;
use harness::Env;
use ssh_rig::Rig;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("ssh bench: run with `cargo bench --bench ssh`");
        return;
    }
    if !harness::engine_available() || !ssh_rig::available() {
        println!("ssh bench: needs root, dockerd and sshd (apt docker.io openssh-server)");
        return;
    }
    let runs: usize = std::env::var("DOCKHAND_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let mut env = Env::new();
    let mut rig = Rig::new(&env.root);
    // `docker system dial-stdio` on the "remote" must find its engine.
    rig.start_sshd(&format!(
        "SetEnv DOCKER_HOST=unix://{}",
        rig.remote_sock.display()
    ));
    rig.start_remote();
    let tar = harness::busybox_tar(&rig.dir);
    assert!(ssh_rig::docker(&rig.remote_sock, &["import", tar.to_str().unwrap(), "bb"]).0);
    env.write_config(&format!(
        "[profiles.default]\nengine = \"ssh\"\nstate_dir = {:?}\ndocker_context = false\n[profiles.default.ssh]\nhost = \"devbox\"\nremote_socket = {:?}\nconfig_file = {:?}\n",
        env.state.display().to_string(),
        rig.remote_sock.display().to_string(),
        rig.client_config.display().to_string(),
    ));
    let sup = env.run();
    env.wait_ready();
    // The docker CLI's ssh:// runs `ssh` from PATH: a wrapper with -F.
    let bin = env.root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let wrapper = bin.join("ssh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec /usr/bin/ssh -F {} \"$@\"\n",
            rig.client_config.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let hosts = [
        ("dockhand", format!("unix://{}", env.socket().display())),
        ("direct", format!("unix://{}", rig.remote_sock.display())),
        ("ssh://", "ssh://devbox".to_string()),
    ];
    println!("ssh engine bench ({runs} runs each; ms: p50 / p90)");
    println!(
        "{:<22} {:>16} {:>16} {:>16}",
        "", hosts[0].0, hosts[1].0, hosts[2].0
    );
    let commands: [(&str, &[&str]); 3] = [
        ("docker ps", &["ps"]),
        ("docker version", &["version"]),
        (
            "docker run --rm",
            &["run", "--rm", "bb", "/bin/busybox", "true"],
        ),
    ];
    for (name, args) in commands {
        let cells: Vec<String> = hosts
            .iter()
            .map(|(_, h)| {
                let t = times(runs, || docker(h, &path, args));
                format!("{:.1} / {:.1}", pct(&t, 0.5), pct(&t, 0.9))
            })
            .collect();
        println!(
            "{name:<22} {:>16} {:>16} {:>16}",
            cells[0], cells[1], cells[2]
        );
    }
    let failures: Vec<String> = hosts
        .iter()
        .map(|(_, h)| format!("{} of 30 failed", parallel(h, &path)))
        .collect();
    println!(
        "{:<22} {:>16} {:>16} {:>16}",
        "30 parallel docker ps", failures[0], failures[1], failures[2]
    );
    recovery(&env, &rig, runs.min(10));
    if std::env::var("DOCKHAND_BENCH_LOG").is_ok() {
        let log = env.log();
        let tail: Vec<&str> = log.lines().rev().take(16).collect();
        println!("--- dockhand.log (end) ---");
        tail.iter().rev().for_each(|l| println!("{l}"));
    }
    env.stop(sup, Duration::from_secs(30));
}

/// `docker -H host args`, timed in ms; panics when it fails.
fn docker(host: &str, path: &str, args: &[&str]) -> f64 {
    let t = Instant::now();
    let out = Command::new("docker")
        .env("PATH", path)
        .args(["-H", host])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker -H {host} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed().as_secs_f64() * 1000.0
}

fn times(runs: usize, mut f: impl FnMut() -> f64) -> Vec<f64> {
    f(); // warm-up
    let mut t: Vec<f64> = (0..runs).map(|_| f()).collect();
    t.sort_by(f64::total_cmp);
    t
}

/// 30 `docker ps` at once: how many failed.
fn parallel(host: &str, path: &str) -> usize {
    let handles: Vec<_> = (0..30)
        .map(|_| {
            let (host, path) = (host.to_string(), path.to_string());
            std::thread::spawn(move || {
                Command::new("docker")
                    .env("PATH", path)
                    .args(["-H", &host, "ps"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|ok| !ok)
        .count()
}

/// `GET target` over a unix socket: the status line's code (0: none).
fn get(sock: &Path, target: &str) -> u16 {
    let Ok(mut s) = UnixStream::connect(sock) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"
    );
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// kill -9 of the forward → the next answer to a request that needs the
/// engine (not /_ping, which dockhand answers while reconnecting); next
/// to one fresh `ssh -N -L` connect + the same request. The two are taken
/// in turn (a heal, a fresh connect, ...), so that the machine's load
/// (other builds on a shared box slow ssh's key exchange by tens of ms)
/// weighs on both alike.
fn recovery(env: &Env, rig: &Rig, runs: usize) {
    let (mut heal, mut fresh) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let (ms, argv) = heal_once(env);
        heal.push(ms);
        fresh.push(fresh_once(rig, i, &argv));
    }
    heal.sort_by(f64::total_cmp);
    fresh.sort_by(f64::total_cmp);
    println!(
        "kill -9 of the forward → next answer: p50 {:.0} ms, p90 {:.0} ms; one ssh connect + request: p50 {:.0} ms, p90 {:.0} ms",
        pct(&heal, 0.5),
        pct(&heal, 0.9),
        pct(&fresh, 0.5),
        pct(&fresh, 0.9)
    );
}

/// One kill -9 of dockhand's forward → the next answer, in ms; and the
/// argv of the ssh it killed.
fn heal_once(env: &Env) -> (f64, Vec<String>) {
    let (_, v) = env.status();
    let pid = v["engine_pid"].as_i64().unwrap() as i32;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let t = Instant::now();
    ssh_rig::signal(pid, rustix::process::Signal::KILL);
    let code = get(&env.socket(), "/containers/json");
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(code, 200, "{}", env.log());
    env.wait_ready();
    (ms, argv)
}

/// The same ssh command as dockhand's (its options cost time too: host
/// key checks, ...), started by hand with its own local socket, until the
/// same request answers through it (looked at every 2 ms), in ms.
fn fresh_once(rig: &Rig, i: usize, argv: &[String]) -> f64 {
    let sock: PathBuf = rig.dir.join(format!("b{i}.sock"));
    let forward = format!("{}:{}", sock.display(), rig.remote_sock.display());
    let args = argv[1..]
        .iter()
        .enumerate()
        .map(|(n, a)| match argv[n] == "-L" {
            true => forward.clone(),
            false => a.clone(),
        });
    let t = Instant::now();
    let mut child = Command::new(&argv[0])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while get(&sock, "/containers/json") != 200 {
        std::thread::sleep(Duration::from_millis(2));
    }
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let _ = child.kill();
    let _ = child.wait();
    ms
}
