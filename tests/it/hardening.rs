//! Issue 9: the supervisor as a hostile or clumsy user meets it. Signals
//! at any moment, the engine's whole process tree, bounded everything, an
//! owned state directory, honest answers to bad input.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::harness::{self, Env, alive, eventually, fixture, require_engine};

fn odd() -> String {
    fixture("engine/odd-engine").display().to_string()
}

fn ping_server() -> String {
    fixture("engine/ping-server").display().to_string()
}

/// A small xorshift: random moments, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("DOCKHAND_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("random moments: DOCKHAND_TEST_SEED={seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn engine_pid(v: &serde_json::Value) -> i32 {
    v["engine_pid"].as_i64().expect("engine_pid is set") as i32
}

/// Processes of this test still alive, once the supervisor has exited
/// (given a moment for the kernel to reparent and reap).
fn leftovers(env: &Env) -> Vec<(i32, String)> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left = env.our_processes();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

// ------------------------------------------------------------ signals

/// SIGTERM (or SIGHUP, or SIGINT) at random moments from the first
/// microsecond of `run` to well after ready, many times: dockhand always
/// stops what it started, and it exits 0 (or, when the signal beat even
/// the blocking of signals, it had started nothing).
#[test]
fn a_stop_signal_at_any_moment_of_start_leaves_nothing() {
    require_engine!();
    let mut rng = Rng::new();
    let sigs = [Signal::TERM, Signal::HUP, Signal::INT];
    for round in 0..36 {
        let mut env = Env::new();
        env.command_config(&[&ping_server(), env.socket().to_str().unwrap()], "");
        let sup = env.run();
        let wait = Duration::from_micros(rng.below(400_000));
        std::thread::sleep(wait);
        let sig = sigs[round % 3];
        env.signal(sup, sig);
        let status = env.wait_exit(sup, Duration::from_secs(15));
        let log = env.log();
        let left = leftovers(&env);
        assert_eq!(
            left,
            vec![],
            "round {round}: {sig:?} after {wait:?} left processes\n{log}"
        );
        if status.code() != Some(0) {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(sig.as_raw()),
                "round {round}: {status:?}\n{log}"
            );
            assert!(
                !log.contains("started "),
                "round {round}: killed by {sig:?} after starting an engine\n{log}"
            );
        }
    }
}

/// Closing the terminal of a foreground `run` (SIGHUP) stops as SIGTERM
/// does: logged, state `stopped`, engine gone, exit 0.
#[test]
fn sighup_stops_like_sigterm() {
    require_engine!();
    let mut env = Env::new();
    env.dockerd_config("");
    let sup = env.run();
    let pid = engine_pid(&env.wait_ready());
    env.signal(sup, Signal::HUP);
    let status = env.wait_exit(sup, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", env.log());
    assert!(!alive(pid), "dockerd left behind");
    let (_, v) = env.status();
    assert_eq!(v["phase"], "stopped");
    assert!(env.log().contains("SIGHUP"), "{}", env.log());
    assert_eq!(leftovers(&env), vec![]);
}

/// A stop request during a probe that hangs ends the wait at once: it
/// does not wait out probe_timeout (which could outlast systemd's
/// TimeoutStopSec), and nothing is declared unhealthy.
#[test]
fn sigterm_during_a_hung_probe_stops_at_once() {
    require_engine!();
    let mut env = Env::new();
    let marker = env.root.join("hung");
    let flag = env.root.join("hang-now");
    env.command_config(
        &[
            &odd(),
            "hang-when",
            flag.to_str().unwrap(),
            env.socket().to_str().unwrap(),
            marker.to_str().unwrap(),
        ],
        "probe_interval = \"3s\"\nprobe_timeout = \"3s\"",
    );
    let sup = env.run();
    env.wait_until("ready", Duration::from_secs(20), |v| v["phase"] == "ready");
    // From now on only dockhand's own probe (every 3 s) comes.
    std::fs::write(&flag, "").unwrap();
    eventually("the first probe to hang", Duration::from_secs(10), || {
        marker.exists()
    });
    let t = Instant::now();
    env.signal(sup, Signal::TERM);
    let status = env.wait_exit(sup, Duration::from_secs(10));
    let took = t.elapsed();
    assert_eq!(status.code(), Some(0));
    let log = env.log();
    assert!(!log.contains("unhealthy"), "waited for the probe:\n{log}");
    assert!(took < Duration::from_millis(2500), "took {took:?}\n{log}");
    assert_eq!(leftovers(&env), vec![]);
}

/// A stop request while a hung earlier engine is being stopped starts no
/// new engine afterwards.
#[test]
fn sigterm_while_a_hung_engine_is_stopped_starts_nothing_new() {
    require_engine!();
    let mut env = Env::new();
    env.stubborn_engine_config("stop_timeout = \"3s\"");
    let first = env.run();
    let pid = engine_pid(&env.wait_ready());
    env.signal(first, Signal::KILL);
    env.wait_exit(first, Duration::from_secs(5));
    // Hung: it accepts connections but answers none.
    harness::kill(pid, Signal::STOP);
    let sup = env.run();
    eventually(
        "the earlier engine's stop to begin",
        Duration::from_secs(20),
        || env.log().contains("stopping our earlier engine"),
    );
    env.signal(sup, Signal::TERM);
    let status = env.wait_exit(sup, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
    let log = env.log();
    let starts = log.matches("INFO started ").count();
    assert_eq!(starts, 1, "a new engine was started:\n{log}");
    assert!(!alive(pid));
    assert_eq!(leftovers(&env), vec![]);
}

/// Signals in every later phase, repeated: in backoff after a crash, while
/// restarting, while stopping (a second one). Each run ends with exit 0
/// and nothing left.
#[test]
fn stop_signals_in_every_phase_leave_nothing() {
    require_engine!();
    let mut rng = Rng::new();
    for round in 0..6 {
        let mut env = Env::new();
        // Serves for a moment, then exits 1: ready, restarting, failed
        // (backoff), starting again, in a loop.
        let script = format!(
            "{} {} & p=$!; sleep 0.{}; kill $p; exit 1",
            ping_server(),
            env.socket().display(),
            3 + rng.below(5)
        );
        env.command_config(&["/bin/sh", "-c", &script], "restart_backoff_max = \"1s\"");
        let sup = env.run();
        std::thread::sleep(Duration::from_millis(rng.below(2500)));
        env.signal(sup, Signal::TERM);
        if round % 2 == 1 {
            std::thread::sleep(Duration::from_millis(rng.below(100)));
            env.signal(sup, Signal::INT);
        }
        let status = env.wait_exit(sup, Duration::from_secs(15));
        let log = env.log();
        assert_eq!(status.code(), Some(0), "round {round}\n{log}");
        assert_eq!(leftovers(&env), vec![], "round {round}\n{log}");
        let (_, v) = env.status();
        assert_eq!(v["phase"], "stopped", "round {round}\n{log}");
    }
}

// ---------------------------------------------- the engine's process tree

/// An adopted engine (dockhand restarted after a crash) that is a wrapper
/// with a child: the whole group stops, not only the leader.
#[test]
fn an_adopted_wrappers_whole_group_is_stopped() {
    require_engine!();
    let mut env = Env::new();
    let script = format!("{} {} & wait", ping_server(), env.socket().display());
    env.command_config(&["/bin/sh", "-c", &script], "");
    let first = env.run();
    env.wait_ready();
    env.signal(first, Signal::KILL);
    env.wait_exit(first, Duration::from_secs(5));
    let servers: Vec<i32> = env
        .our_processes()
        .into_iter()
        .filter(|(_, c)| c.contains("ping-server") && !c.starts_with("/bin/sh"))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(servers.len(), 1, "{:?}", env.our_processes());
    let sup = env.run();
    let v = env.wait_ready();
    assert_eq!(v["adopted"], true);
    env.stop(sup, Duration::from_secs(20));
    assert!(!alive(servers[0]), "the wrapper's child still serves");
    assert!(!env.docker_works());
    assert_eq!(leftovers(&env), vec![]);
}

/// A command that daemonizes (double fork + setsid; the parent exits 0,
/// before or after the socket answers) is refused with a clear error
/// (exit 4), and what it left in the background is stopped.
#[test]
fn a_daemonizing_command_is_refused_and_nothing_is_left() {
    require_engine!();
    for late in [false, true] {
        let mut env = Env::new();
        let mut argv = vec![
            odd(),
            "daemonize".into(),
            env.socket().display().to_string(),
        ];
        if late {
            argv.push("late".into());
        }
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        env.command_config(&argv, "");
        let sup = env.run();
        let status = env.wait_exit(sup, Duration::from_secs(30));
        let log = env.log();
        assert_eq!(status.code(), Some(4), "late={late}\n{log}");
        assert!(log.contains("went to the background"), "{log}");
        assert!(log.contains("--foreground"), "{log}");
        assert_eq!(leftovers(&env), vec![], "late={late}\n{log}");
        assert!(!env.docker_works());
    }
}

/// A wrapper whose background child outlives it (the leader exits 1):
/// restarts leave no copies behind, and the stop leaves nothing.
#[test]
fn an_engines_background_children_never_pile_up() {
    require_engine!();
    let mut env = Env::new();
    let script = format!(
        "setsid sleep 600 {} & {} {} & p=$!; sleep 0.5; kill $p; exit 1",
        env.root.display(),
        ping_server(),
        env.socket().display()
    );
    env.command_config(&["/bin/sh", "-c", &script], "restart_backoff_max = \"1s\"");
    let sup = env.run();
    env.wait_until("two restarts", Duration::from_secs(30), |v| {
        v["restarts"].as_u64() >= Some(2)
    });
    let sleepers = env
        .our_processes()
        .into_iter()
        .filter(|(_, c)| c.starts_with("sleep 600"))
        .count();
    assert!(sleepers <= 1, "{:?}", env.our_processes());
    env.stop(sup, Duration::from_secs(20));
    assert_eq!(leftovers(&env), vec![]);
}

// ---------------------------------------------------- bounded everything

/// Outputs of every size and encoding: last_error quotes the engine's
/// last words (lossily decoded), never more than a few KiB; state.json
/// and the log stay small; `status` prints little; reading a 1 GiB
/// engine.log doesn't read it all.
#[test]
fn last_words_of_every_size_and_encoding_are_bounded() {
    require_engine!();
    for kind in [
        "huge-line",
        "non-utf8",
        "sparse",
        "many-lines",
        "cr-only",
        "nul",
        "empty",
    ] {
        let mut env = Env::new();
        env.command_config(
            &[&odd(), "spew", kind],
            "start_timeout = \"20s\"\nrestart_backoff_max = \"10s\"",
        );
        let sup = env.run();
        let v = env.wait_until("failed", Duration::from_secs(30), |v| {
            v["phase"] == "failed"
        });
        let last = v["last_error"].as_str().unwrap_or("").to_string();
        assert!(
            last.len() <= 5000,
            "{kind}: last_error is {} bytes",
            last.len()
        );
        if kind != "empty" {
            assert!(last.contains("LAST WORDS"), "{kind}: {last}");
        }
        let state = std::fs::metadata(env.state.join("state.json"))
            .unwrap()
            .len();
        assert!(state < 16 * 1024, "{kind}: state.json is {state} bytes");
        let log = std::fs::metadata(env.state.join("dockhand.log"))
            .unwrap()
            .len();
        assert!(log < 1 << 20, "{kind}: dockhand.log is {log} bytes");
        assert!(
            !env.state.join("dockhand.log.1").exists(),
            "{kind}: rotated"
        );
        let (_, out, _) = env.output(&["status"]);
        assert!(
            out.len() < 16 * 1024,
            "{kind}: status printed {}",
            out.len()
        );
        let hwm = vm_kb(env.supervisor_pid(sup), "VmHWM:");
        assert!(hwm < 64 * 1024, "{kind}: peak RSS {hwm} kB");
        env.stop(sup, Duration::from_secs(20));
    }
}

fn vm_kb(pid: i32, key: &str) -> u64 {
    read(Path::new(&format!("/proc/{pid}/status")))
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// A profile whose engine writes `bytes` to its output once ready, then
/// makes the returned marker file.
fn chatty_env(bytes: u64) -> (Env, PathBuf) {
    let env = Env::new();
    let marker = env.root.join("written");
    env.command_config(
        &[
            &odd(),
            "chatty",
            env.socket().to_str().unwrap(),
            &bytes.to_string(),
            marker.to_str().unwrap(),
        ],
        "",
    );
    (env, marker)
}

/// A file's length; 0 when there is none.
fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// engine.log stays bounded while a ready engine writes 40 MiB (like
/// dockhand's own log: 10 MiB, 3 older files).
#[test]
fn engine_log_is_bounded_while_the_engine_runs() {
    require_engine!();
    let (mut env, marker) = chatty_env(40 << 20);
    let sup = env.run();
    env.wait_ready();
    eventually("40 MiB written", Duration::from_secs(60), || {
        marker.exists()
    });
    let max = 10u64 << 20;
    let state = env.state.clone();
    let size = |n: &str| file_len(&state.join(n));
    eventually("engine.log cut", Duration::from_secs(10), || {
        size("engine.log") <= max
    });
    for n in ["engine.log.1", "engine.log.2", "engine.log.3"] {
        assert!(size(n) <= max, "{n}: {}", size(n));
    }
    assert!(!env.state.join("engine.log.4").exists());
    let v = env.wait_ready();
    assert_eq!(v["restarts"], 0, "the engine was disturbed");
    env.stop(sup, Duration::from_secs(20));
}

/// An oversized engine.log left behind (a flood before a power cut) is cut
/// to its last 10 MiB at the next start, never kept whole as engine.log.1;
/// and what an engine wrote last is cut when it stops.
#[test]
fn an_oversized_engine_log_is_cut_not_kept_whole() {
    require_engine!();
    let (mut env, marker) = chatty_env(30 << 20);
    std::fs::create_dir_all(&env.state).unwrap();
    std::fs::set_permissions(&env.state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let left = std::fs::File::create(env.state.join("engine.log")).unwrap();
    left.set_len(300 << 20).unwrap();
    drop(left);
    let max = 10u64 << 20;
    let state = env.state.clone();
    let size = |n: &str| file_len(&state.join(n));
    let sup = env.run();
    env.wait_ready();
    assert_eq!(size("engine.log.1"), max, "the old log kept whole");
    eventually("30 MiB written", Duration::from_secs(60), || {
        marker.exists()
    });
    env.stop(sup, Duration::from_secs(20));
    for n in ["engine.log", "engine.log.1", "engine.log.2", "engine.log.3"] {
        assert!(size(n) <= max, "{n}: {} after the stop", size(n));
    }
}

/// A config that is not a regular file is refused at once (exit 2),
/// never read without end nor waited on: a device, a FIFO, a directory,
/// a link to a device, a file over 1 MiB, a file that isn't UTF-8.
#[test]
fn a_config_that_is_not_a_regular_file_is_refused_at_once() {
    let env = Env::new();
    let fifo = env.root.join("fifo.toml");
    mkfifo(&fifo);
    let dir = env.root.join("dir.toml");
    std::fs::create_dir(&dir).unwrap();
    let link = env.root.join("link.toml");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    let big = env.root.join("big.toml");
    std::fs::write(&big, format!("# {}\n", "x".repeat(2 << 20))).unwrap();
    let latin1 = env.root.join("latin1.toml");
    std::fs::write(&latin1, b"# caf\xe9\n").unwrap();
    let cases: [(&Path, &str); 6] = [
        (Path::new("/dev/zero"), "character device"),
        (&fifo, "a FIFO"),
        (&dir, "a directory"),
        (&link, "character device"),
        (&big, "larger than 1 MiB"),
        (&latin1, "not UTF-8"),
    ];
    for (path, why) in cases {
        for args in [&["config", "check"][..], &["status"][..]] {
            // Through DOCKHAND_CONFIG (the harness would pass --config).
            let mut c2 = std::process::Command::new(harness::BIN);
            c2.args(args)
                .env("HOME", &env.home)
                .env("DOCKHAND_CONFIG", path)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let (code, err) = run_bounded(c2, Duration::from_secs(10));
            assert_eq!(code, Some(2), "{} {args:?}: {err}", path.display());
            assert!(err.contains(why), "{} {args:?}: {err}", path.display());
            assert!(err.len() < 4096, "{} {args:?}: {err}", path.display());
        }
    }
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Run to completion within `within` (killed and failed otherwise).
fn run_bounded(mut c: std::process::Command, within: Duration) -> (Option<i32>, String) {
    let mut child = c.spawn().unwrap();
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (s.code(), err);
        }
        if Instant::now() > deadline {
            // SIGTERM first: a supervisor then stops what it started.
            harness::kill(child.id() as i32, Signal::TERM);
            let _ = child.wait();
            panic!("still running after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `status` with state.json replaced by a link to a device, a FIFO, a
/// directory, garbage, or a huge file: answers at once, phase `unknown`
/// with the reason, and the exit code the probe decides (0: a supervisor
/// runs and the socket answers).
#[test]
fn status_says_unknown_when_state_json_cant_be_read() {
    require_engine!();
    let mut env = Env::new();
    env.command_config(&[&ping_server(), env.socket().to_str().unwrap()], "");
    let sup = env.run();
    env.wait_ready();
    let state = env.state.join("state.json");
    let good = std::fs::read(&state).unwrap();
    // While the supervisor's control socket answers, status asks it and
    // state.json doesn't matter; without it, state.json is all there is.
    std::fs::write(&state, "{garbage").unwrap();
    let (code, v) = env.status();
    assert_eq!(
        (code, &v["phase"]),
        (0, &serde_json::json!("ready")),
        "{v:#}"
    );
    // Its socket moved away and a plain file in its place (a removed one
    // would be put back; something else is left alone).
    let control = env.state.join("control.sock");
    std::fs::rename(&control, env.state.join("control.away")).unwrap();
    std::fs::write(&control, "").unwrap();
    type Make = fn(&Path);
    let cases: [(&str, Make); 5] = [
        ("link to /dev/zero", |p| {
            std::os::unix::fs::symlink("/dev/zero", p).unwrap()
        }),
        ("FIFO", |p| mkfifo(p)),
        ("directory", |p| std::fs::create_dir(p).unwrap()),
        ("garbage", |p| std::fs::write(p, "{garbage").unwrap()),
        ("huge", |p| {
            let f = std::fs::File::create(p).unwrap();
            f.set_len(3 << 30).unwrap();
        }),
    ];
    for (what, make) in cases {
        remove_any(&state);
        make(&state);
        let mut c = std::process::Command::new(harness::BIN);
        c.args(["--config", env.config.to_str().unwrap(), "status", "--json"])
            .env("HOME", &env.home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let t = Instant::now();
        let out = c.output().unwrap();
        assert!(t.elapsed() < Duration::from_secs(5), "{what}: slow");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["phase"], "unknown", "{what}: {v:#}");
        assert!(v["state_error"].as_str().is_some(), "{what}: {v:#}");
        assert_eq!(v["supervisor_running"], true, "{what}");
        // Issue 17: its control socket is gone, so the supervisor is
        // named as not answering (exit 8), the probe still reported.
        assert!(v["not_answering"].as_str().is_some(), "{what}: {v:#}");
        assert_eq!(v["socket_answers"], true, "{what}: {v:#}");
        assert_eq!(out.status.code(), Some(8), "{what}: {v:#}");
    }
    remove_any(&state);
    std::fs::write(&state, good).unwrap();
    env.stop(sup, Duration::from_secs(20));
}

fn remove_any(p: &Path) {
    if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
        std::fs::remove_dir_all(p).unwrap();
    } else {
        let _ = std::fs::remove_file(p);
    }
}

// ------------------------------------------------- an owned state dir

/// Removing or replacing the lock (by nothing, a file, a link, a FIFO, a
/// directory) while `run` supervises: a second `run` is still refused
/// (exit 3) and `status` still sees the supervisor.
#[test]
fn the_lock_stays_authoritative_whatever_happens_to_the_file() {
    require_engine!();
    let mut env = Env::new();
    env.command_config(&[&ping_server(), env.socket().to_str().unwrap()], "");
    let sup = env.run();
    env.wait_ready();
    let lock = env.state.join("lock");
    type Make = fn(&Path);
    let cases: [(&str, Make); 5] = [
        ("removed", |_| {}),
        ("a new file", |p| std::fs::write(p, "1\n").unwrap()),
        ("a link", |p| {
            std::os::unix::fs::symlink("/etc/hostname", p).unwrap()
        }),
        ("a FIFO", |p| mkfifo(p)),
        ("a directory", |p| std::fs::create_dir(p).unwrap()),
    ];
    for (what, make) in cases {
        remove_any(&lock);
        make(&lock);
        let mut second = env.cmd(&["run"]);
        second.stdout(Stdio::null()).stderr(Stdio::piped());
        let (code, err) = run_bounded(second, Duration::from_secs(15));
        assert_eq!(code, Some(3), "lock {what}: a second run started: {err}");
        let (_, v) = env.status();
        assert_eq!(v["supervisor_running"], true, "lock {what}: {v:#}");
    }
    let pid = env.supervisor_pid(sup);
    eventually("the lock to be put back", Duration::from_secs(15), || {
        read(&lock).trim() == pid.to_string()
    });
    let (code, _) = env.status();
    assert_eq!(code, 0);
    env.stop(sup, Duration::from_secs(20));
    assert_eq!(leftovers(&env), vec![]);
}

/// The state dir removed or replaced while `run` supervises: the
/// supervisor stops its engine and exits with a clear error (6), so no
/// two supervisors fight over one engine.
#[test]
fn a_replaced_state_dir_stops_the_supervisor() {
    require_engine!();
    for how in ["renamed", "removed"] {
        let mut env = Env::new();
        let sock = env.root.join("d.sock");
        env.command_config(
            &[&ping_server(), sock.to_str().unwrap()],
            &format!("socket = {:?}", sock.display().to_string()),
        );
        let sup = env.run();
        eventually("ready", Duration::from_secs(20), || {
            read(&env.state.join("state.json")).contains("\"ready\"")
        });
        if how == "renamed" {
            std::fs::rename(&env.state, env.root.join("old-state")).unwrap();
        } else {
            std::fs::remove_dir_all(&env.state).unwrap();
        }
        std::fs::create_dir(&env.state).unwrap();
        std::fs::set_permissions(&env.state, std::fs::Permissions::from_mode(0o700)).unwrap();
        let status = env.wait_exit(sup, Duration::from_secs(20));
        let out = read(&env.root.join("run-1.out"));
        assert_eq!(status.code(), Some(6), "{how}: {out}");
        assert!(out.contains("was removed or replaced"), "{how}: {out}");
        assert_eq!(leftovers(&env), vec![], "{how}: engine left");
    }
}

/// Every directory above state_dir is checked as ssh and sudo do: one
/// writable by others without the sticky bit, or owned by another user,
/// is refused (exit 6) before anything is read or signalled; a sticky
/// one (like /tmp) is fine.
#[test]
fn every_ancestor_of_the_state_dir_is_checked() {
    require_engine!();
    let env = Env::new();
    let mut victim = harness::bystander();
    let vpid = victim.id() as i32;
    let start = proc_start(vpid);
    for (mode, owner, ok) in [
        (0o777, 0, false),
        (0o775, 0, false),
        (0o755, 65534, false),
        (0o1777, 0, true),
        (0o755, 0, true),
    ] {
        let parent = env.root.join(format!("p{mode:o}-{owner}"));
        std::fs::create_dir(&parent).unwrap();
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(&parent, Some(owner), Some(owner)).unwrap();
        // A state dir planted by "another user": its engine.json names
        // an unrelated root process, with its right start time.
        let state = parent.join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(
            state.join("engine.json"),
            format!("{{\"pid\":{vpid},\"start\":{start}}}"),
        )
        .unwrap();
        let sock = state.join("d.sock");
        let cfg = env.root.join(format!("c{mode:o}-{owner}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[profiles.default]\nengine = \"command\"\nstate_dir = {:?}\nsocket = {:?}\nstop_timeout = \"2s\"\n[profiles.default.command]\nargv = [{:?}, {:?}]\n",
                state.display().to_string(),
                sock.display().to_string(),
                ping_server(),
                sock.display().to_string()
            ),
        )
        .unwrap();
        let mut c = std::process::Command::new(harness::BIN);
        c.arg("--config")
            .arg(&cfg)
            .arg("run")
            .env("HOME", &env.home);
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        if ok {
            let child = c.spawn().unwrap();
            eventually("ready", Duration::from_secs(20), || {
                read(&state.join("state.json")).contains("\"ready\"")
            });
            harness::kill(child.id() as i32, Signal::TERM);
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(0), "{mode:o} {owner}: {err}");
        } else {
            let (code, err) = run_bounded(c, Duration::from_secs(15));
            assert_eq!(code, Some(6), "{mode:o} {owner}: {err}");
            assert!(err.contains("above it"), "{err}");
        }
        assert!(alive(vpid), "{mode:o} {owner}: the bystander was signalled");
    }
    // A link to a safe directory is as safe as the directory holding it.
    let safe = env.root.join("p755-0");
    let open = env.root.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::symlink(&safe, open.join("link")).unwrap();
    let cfg = env.root.join("link.toml");
    std::fs::write(
        &cfg,
        format!(
            "[profiles.default]\nengine = \"command\"\nstate_dir = {:?}\nsocket = \"/tmp/x.sock\"\n[profiles.default.command]\nargv = [\"true\"]\n",
            open.join("link/state").display().to_string()
        ),
    )
    .unwrap();
    let mut c = std::process::Command::new(harness::BIN);
    c.arg("--config")
        .arg(&cfg)
        .arg("run")
        .env("HOME", &env.home);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let (code, err) = run_bounded(c, Duration::from_secs(15));
    assert_eq!(code, Some(6), "a link in an open directory: {err}");
    assert!(err.contains(&open.display().to_string()), "{err}");
    assert!(alive(vpid), "the bystander was signalled");
    let _ = victim.kill();
    let _ = victim.wait();
}

fn proc_start(pid: i32) -> u64 {
    let stat = read(Path::new(&format!("/proc/{pid}/stat")));
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

/// engine.json that dockhand can't vouch for (another user's, a link, a
/// FIFO, a directory, writable by others) is never acted on: the process
/// it names is not signalled, and the engine starts as usual.
#[test]
fn an_engine_record_dockhand_cant_vouch_for_is_never_acted_on() {
    require_engine!();
    let mut victim = harness::bystander();
    let vpid = victim.id() as i32;
    let record = format!("{{\"pid\":{vpid},\"start\":{}}}", proc_start(vpid));
    type Make = fn(&Path, &str);
    let cases: [(&str, Make); 5] = [
        ("another user's", |p, r| {
            std::fs::write(p, r).unwrap();
            std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
        }),
        ("a link", |p, r| {
            let real = p.with_file_name("real.json");
            std::fs::write(&real, r).unwrap();
            std::os::unix::fs::symlink(real, p).unwrap();
        }),
        ("a FIFO", |p, _| mkfifo(p)),
        ("a directory", |p, _| std::fs::create_dir(p).unwrap()),
        ("writable by others", |p, r| {
            std::fs::write(p, r).unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666)).unwrap();
        }),
    ];
    for (what, make) in cases {
        let mut env = Env::new();
        env.command_config(&[&ping_server(), env.socket().to_str().unwrap()], "");
        std::fs::create_dir_all(&env.state).unwrap();
        make(&env.state.join("engine.json"), &record);
        let sup = env.run();
        env.wait_ready();
        assert!(alive(vpid), "record {what}: the bystander was signalled");
        env.stop(sup, Duration::from_secs(20));
        assert!(alive(vpid), "record {what}: the bystander was signalled");
    }
    let _ = victim.kill();
    let _ = victim.wait();
}

// ------------------------------------------- honest answers to bad input

/// A NUL character in any path, argument or name is refused by `config
/// check` (exit 2) with its line and column.
#[test]
fn a_nul_in_any_value_is_refused_with_line_and_column() {
    let env = Env::new();
    let cases = [
        ("socket = \"/tmp/a\\u0000b.sock\"\n", "socket", 3),
        ("state_dir = \"/tmp/s\\u0000\"\n", "state_dir", 3),
        ("log_file = \"/tmp/l\\u0000.log\"\n", "log_file", 3),
        (
            "[profiles.default.dockerd]\nargs = [\"--x\", \"a\\u0000\"]\n",
            "args[1]",
            4,
        ),
        (
            "[profiles.default.dockerd]\nbinary = \"/usr/bin/dock\\U00000000erd\"\n",
            "binary",
            4,
        ),
    ];
    for (text, key, line) in cases {
        env.write_config(&format!("[profiles.default]\nengine = \"dockerd\"\n{text}"));
        let (code, _, err) = env.output(&["config", "check"]);
        assert_eq!(code, 2, "{text}: {err}");
        assert!(err.contains("NUL"), "{err}");
        assert!(err.contains(key), "{key}: {err}");
        assert!(
            err.contains(&format!("config.toml:{line}:")),
            "{text}: {err}"
        );
    }
    // An escaped backslash followed by u0000 is just text.
    env.write_config(
        "[profiles.default]\nengine = \"dockerd\"\nsocket = \"/tmp/a\\\\u0000.sock\"\n",
    );
    let (code, _, err) = env.output(&["config", "check"]);
    assert_eq!(code, 0, "{err}");
}

/// A HOME that isn't UTF-8: `~` expands to that very directory (no
/// U+FFFD stand-in is created and used).
#[test]
fn a_non_utf8_home_is_used_as_is() {
    require_engine!();
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let mut raw = env.root.as_os_str().as_bytes().to_vec();
    raw.extend_from_slice(b"/h\xff");
    let home = PathBuf::from(std::ffi::OsStr::from_bytes(&raw));
    std::fs::create_dir(&home).unwrap();
    let sock = env.root.join("d.sock");
    env.command_config(
        &[&ping_server(), sock.to_str().unwrap()],
        &format!(
            "state_dir = \"~/st\"\nsocket = {:?}",
            sock.display().to_string()
        ),
    );
    let mut c = env.cmd(&["run"]);
    c.env("HOME", &home)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let state = home.join("st");
    eventually(
        "the state dir under HOME itself",
        Duration::from_secs(20),
        || read(&state.join("state.json")).contains("\"ready\""),
    );
    assert!(!env.root.join("h\u{fffd}").exists());
    harness::kill(child.id() as i32, Signal::TERM);
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// An absolute argv[0] or dockerd binary that exists but can't be run
/// says what is wrong with that path (exit 4), not "not found on PATH".
#[test]
fn an_unrunnable_engine_path_says_what_is_wrong() {
    let env = Env::new();
    let plain = env.root.join("plain");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let dir = env.root.join("adir");
    std::fs::create_dir(&dir).unwrap();
    for (path, why) in [
        (&plain, "is not executable (mode 644)"),
        (&dir, "is a directory"),
    ] {
        let p = path.to_str().unwrap();
        env.command_config(&[p, "x"], "");
        let (code, _, err) = env.output(&["run"]);
        assert_eq!(code, 4, "{err}");
        assert!(err.contains(why), "{err}");
        assert!(!err.contains("not found on PATH"), "{err}");
        env.write_config(&format!(
            "[profiles.default]\nengine = \"dockerd\"\nstate_dir = {:?}\n[profiles.default.dockerd]\nbinary = {p:?}\n",
            env.state.display().to_string()
        ));
        let (code, _, err) = env.output(&["run"]);
        assert_eq!(code, 4, "{err}");
        assert!(err.contains(why), "{err}");
    }
}

/// Issue 9: the logs in the state dir (ours, 0700) are opened through its
/// descriptor: a symbolic link or a FIFO at `engine.log` or `dockhand.log`
/// is replaced by a new file (the link's target untouched, nothing waits
/// on the FIFO) and the engine starts at the first try; a directory there
/// ends `run` with exit 6 and what to do.
#[test]
fn a_link_or_fifo_at_a_log_in_the_state_dir_is_replaced() {
    for (engine_log, dockhand_log) in [("link", "fifo"), ("fifo", "link")] {
        let mut env = Env::new();
        env.command_config(&[&ping_server(), env.socket().to_str().unwrap()], "");
        std::fs::create_dir_all(&env.state).unwrap();
        std::fs::set_permissions(&env.state, std::fs::Permissions::from_mode(0o700)).unwrap();
        let victim = env.root.join("victim");
        std::fs::write(&victim, "keep").unwrap();
        for (name, what) in [("engine.log", engine_log), ("dockhand.log", dockhand_log)] {
            let p = env.state.join(name);
            match what {
                "link" => std::os::unix::fs::symlink(&victim, &p).unwrap(),
                _ => mkfifo(&p),
            }
        }
        let sup = env.run();
        let v = env.wait_ready();
        assert_eq!(v["restarts"], 0, "{}", env.log());
        assert_eq!(v["last_error"], serde_json::Value::Null, "{}", env.log());
        for name in ["engine.log", "dockhand.log"] {
            let md = std::fs::symlink_metadata(env.state.join(name)).unwrap();
            assert!(md.is_file(), "{name} is still {:?}", md.file_type());
            assert_eq!(md.permissions().mode() & 0o777, 0o600, "{name}");
        }
        let log = env.log();
        let kind = |w: &str| {
            if w == "fifo" {
                "a FIFO"
            } else {
                "a symbolic link"
            }
        };
        for (name, w) in [("engine.log", engine_log), ("dockhand.log", dockhand_log)] {
            assert!(
                log.contains(&format!(
                    "{name} was {}, not a regular file: replaced",
                    kind(w)
                )),
                "{name}: {log}"
            );
        }
        assert_eq!(read(&victim), "keep");
        assert_eq!(env.stop(sup, Duration::from_secs(15)).code(), Some(0));
    }

    // A directory at engine.log: refused, exit 6, said what to do.
    let env = Env::new();
    env.command_config(&[&ping_server(), env.socket().to_str().unwrap()], "");
    std::fs::create_dir_all(env.state.join("engine.log/x")).unwrap();
    std::fs::set_permissions(&env.state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut c = env.cmd(&["run"]);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let (code, err) = run_bounded(c, Duration::from_secs(20));
    assert_eq!(code, Some(6), "{err}");
    assert!(
        err.contains("engine.log is a directory") && err.contains("remove it"),
        "{err}"
    );
}

/// A `log_file` outside the state dir that is a FIFO or a link: exit 6 at
/// once with what to do (never a wait on the FIFO, never a write through
/// the link).
#[test]
fn a_log_file_elsewhere_that_is_not_a_regular_file_is_refused() {
    for what in ["fifo", "link"] {
        let env = Env::new();
        let logs = env.root.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o700)).unwrap();
        let log = logs.join("d.log");
        let victim = env.root.join("victim");
        std::fs::write(&victim, "keep").unwrap();
        match what {
            "link" => std::os::unix::fs::symlink(&victim, &log).unwrap(),
            _ => mkfifo(&log),
        }
        env.command_config(
            &[&ping_server(), env.socket().to_str().unwrap()],
            &format!("log_file = {:?}", log.display().to_string()),
        );
        let mut c = env.cmd(&["run"]);
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        let (code, err) = run_bounded(c, Duration::from_secs(20));
        assert_eq!(code, Some(6), "{what}: {err}");
        let kind = if what == "fifo" {
            "a FIFO"
        } else {
            "a symbolic link"
        };
        assert!(
            err.contains(&format!("{} is {kind}, not a regular file", log.display()))
                && err.contains("choose another log_file"),
            "{err}"
        );
        assert_eq!(read(&victim), "keep");
    }
}
