//! A small harness: each test gets a temp dir with its config, state and
//! HOME; runs the built `dockhand` in it; polls `status --json` with a
//! deadline instead of sleeping; and on drop kills whatever still mentions
//! the temp dir and unmounts dockerd's data-root bind mount.

#![allow(dead_code, unused_macros, unused_imports)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_dockhand");

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Real-engine tests need root and Debian's dockerd. Skipped with a note
/// when absent, except with CI=true, where absence is a failure.
pub fn engine_available() -> bool {
    if std::env::var("DOCKHAND_SKIP_ENGINE_TESTS").is_ok_and(|v| v == "1") {
        eprintln!("SKIP: DOCKHAND_SKIP_ENGINE_TESTS=1");
        return false;
    }
    let root = rustix::process::geteuid().is_root();
    let dockerd = which("dockerd").is_some();
    let python = which("python3").is_some();
    if root && dockerd && python {
        return true;
    }
    let why = format!(
        "real-engine tests need root ({root}), dockerd ({dockerd}) and python3 ({python}); run scripts/test, which installs them"
    );
    assert!(!ci(), "{why}");
    eprintln!("SKIP: {why}");
    false
}

macro_rules! require_engine {
    () => {
        if !$crate::harness::engine_available() {
            return;
        }
    };
}
pub(crate) use require_engine;

pub fn which(p: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(p))
        .find(|p| p.is_file())
}

pub const DOCKERD_ARGS: &str =
    r#"["--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs"]"#;

pub struct Env {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config: PathBuf,
    pub state: PathBuf,
    pub home: PathBuf,
    supervisors: Vec<Child>,
    runs: usize,
    pub extra_env: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Env {
        // Short paths: a unix socket path must fit in 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("dh")
            .tempdir_in("/tmp")
            .unwrap();
        let root = dir.path().canonicalize().unwrap();
        let home = root.join("home");
        std::fs::create_dir_all(&home).unwrap();
        Env {
            config: root.join("config.toml"),
            state: root.join("state"),
            home,
            root,
            _dir: dir,
            supervisors: Vec::new(),
            runs: 0,
            extra_env: Vec::new(),
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.state.join("docker.sock")
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config, text).unwrap();
    }

    /// The profile's top-level keys: test defaults, overridden by `extra`
    /// ("key = value" lines).
    fn keys(&self, engine: &str, stop: &str, start: &str, extra: &str) -> String {
        let defaults = [
            ("engine", format!("{engine:?}")),
            (
                "state_dir",
                format!("{:?}", self.state.display().to_string()),
            ),
            (
                "socket",
                format!("{:?}", self.socket().display().to_string()),
            ),
            ("probe_interval", "\"1s\"".into()),
            ("probe_timeout", "\"500ms\"".into()),
            ("stop_timeout", format!("{stop:?}")),
            ("start_timeout", format!("{start:?}")),
            ("restart_backoff_max", "\"4s\"".into()),
        ];
        let mut out = String::from("[profiles.default]\n");
        for (k, v) in defaults {
            if !extra
                .lines()
                .any(|l| l.split('=').next().map(str::trim) == Some(k))
            {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        out.push_str(extra);
        out.push('\n');
        out
    }

    /// A dockerd profile in this temp dir; `extra` adds or overrides keys.
    pub fn dockerd_config(&self, extra: &str) {
        self.write_config(&format!(
            "{}[profiles.default.dockerd]\nargs = {DOCKERD_ARGS}\n",
            self.keys("dockerd", "10s", "60s", extra)
        ));
    }

    /// A command-engine profile serving on `<state>/docker.sock`.
    pub fn command_config(&self, argv: &[&str], extra: &str) {
        let argv: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
        self.write_config(&format!(
            "{}[profiles.default.command]\nargv = [{}]\n",
            self.keys("command", "3s", "20s", extra),
            argv.join(", ")
        ));
    }

    /// A command engine that answers /_ping (tests/fixtures/engine/
    /// ping-server) and ignores SIGTERM, as a stuck engine would.
    pub fn stubborn_engine_config(&self, extra: &str) {
        let server = fixture("engine/ping-server");
        let sock = self.socket();
        self.command_config(
            &[
                server.to_str().unwrap(),
                sock.to_str().unwrap(),
                "--ignore-term",
            ],
            extra,
        );
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config").arg(&self.config).args(args);
        c.env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.root.join("xdg-config"))
            .env("XDG_STATE_HOME", self.root.join("xdg-state"))
            .env_remove("DOCKHAND_CONFIG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("DOCKHAND_LOG_STDERR")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null());
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    /// Run a short command to completion.
    pub fn output(&self, args: &[&str]) -> (i32, String, String) {
        let o = self.cmd(args).output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// Start `dockhand run` in the background.
    pub fn run(&mut self) -> usize {
        self.run_with(&[])
    }

    pub fn run_with(&mut self, extra: &[&str]) -> usize {
        self.runs += 1;
        let out = std::fs::File::create(self.root.join(format!("run-{}.out", self.runs))).unwrap();
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        let child = self
            .cmd(&args)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        self.supervisors.push(child);
        self.supervisors.len() - 1
    }

    /// Start a supervisor from `cmd` (built from `cmd(&["run"])`, or a
    /// wrapper around it) in the background.
    pub fn spawn_supervisor(&mut self, mut cmd: Command) -> usize {
        self.runs += 1;
        let out = std::fs::File::create(self.root.join(format!("run-{}.out", self.runs))).unwrap();
        let child = cmd
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        self.supervisors.push(child);
        self.supervisors.len() - 1
    }

    pub fn supervisor_pid(&self, i: usize) -> i32 {
        self.supervisors[i].id() as i32
    }

    pub fn signal(&self, i: usize, sig: rustix::process::Signal) {
        kill(self.supervisor_pid(i), sig);
    }

    /// Supervisor `i`'s exit status, if it has exited.
    pub fn supervisors_try_wait(&mut self, i: usize) -> Option<ExitStatus> {
        self.supervisors[i].try_wait().unwrap()
    }

    /// Wait for supervisor `i` to exit, at most `within`.
    pub fn wait_exit(&mut self, i: usize, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.supervisors[i].try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "supervisor did not exit within {within:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status (bounded).
    pub fn stop(&mut self, i: usize, within: Duration) -> ExitStatus {
        self.signal(i, rustix::process::Signal::TERM);
        self.wait_exit(i, within)
    }

    pub fn status(&self) -> (i32, Value) {
        let (code, out, err) = self.output(&["status", "--json"]);
        let v = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {out}{err}"));
        (code, v)
    }

    /// Poll `status --json` until `cond` holds; panic with the log after
    /// `within`.
    pub fn wait_until(
        &self,
        what: &str,
        within: Duration,
        mut cond: impl FnMut(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (_, v) = self.status();
            if cond(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last status {v:#}\n--- log ---\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ready, as reported by the newest supervisor (not a stale state
    /// file of an earlier one).
    pub fn wait_ready(&self) -> Value {
        let pid = self.supervisors.last().map(|c| c.id());
        self.wait_until("ready", Duration::from_secs(60), |v| {
            v["phase"] == "ready"
                && v["socket_answers"] == true
                && v["supervisor_pid"].as_u64() == pid.map(u64::from)
        })
    }

    pub fn log(&self) -> String {
        let mut s = std::fs::read_to_string(self.state.join("dockhand.log")).unwrap_or_default();
        for i in 1..=self.runs {
            if let Ok(o) = std::fs::read_to_string(self.root.join(format!("run-{i}.out")))
                && !o.is_empty()
            {
                s.push_str(&format!("--- run-{i}.out ---\n{o}"));
            }
        }
        s
    }

    /// The real docker CLI talks to the engine.
    pub fn docker_works(&self) -> bool {
        docker_answers(&self.socket())
    }

    /// Live processes whose command line mentions this test's directory.
    pub fn our_processes(&self) -> Vec<(i32, String)> {
        processes_mentioning(&self.root)
    }
}

/// A tar of an image made of busybox-static (no registry here), under
/// `dir`, for `docker import <tar> bb`: `/bin/busybox` and a few applets.
pub fn busybox_tar(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for l in ["sh", "cat", "sleep", "echo"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(l)).unwrap();
    }
    let tar = dir.join("bb.tar");
    let ok = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success());
    tar
}

/// `docker version` (the real CLI) gets the server's answer on `socket`.
pub fn docker_answers(socket: &Path) -> bool {
    Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn processes_mentioning(root: &Path) -> Vec<(i32, String)> {
    let needle = root.to_string_lossy().into_owned();
    let mut found = Vec::new();
    // No /proc (macOS, in the nix build): nothing to find.
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in procs.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let zombie = stat
            .rfind(')')
            .is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'));
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if !zombie && cmd.contains(&needle) {
            found.push((pid, cmd));
        }
    }
    found
}

pub fn kill(pid: i32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rfind(')')
            .is_some_and(|i| !s[i + 1..].trim_start().starts_with('Z'))
    })
}

/// Poll `cond` until it holds, at most `within`.
pub fn eventually(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A pid that no process has right now.
pub fn dead_pid() -> i32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id() as i32;
    c.wait().unwrap();
    pid
}

/// An unrelated long-lived process (the victim a stale pid file names).
pub fn bystander() -> Child {
    Command::new("sleep").arg("600").spawn().unwrap()
}

impl Drop for Env {
    fn drop(&mut self) {
        for c in &mut self.supervisors {
            let _ = c.kill();
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = self.our_processes();
            if left.is_empty() || Instant::now() > deadline {
                break;
            }
            for (pid, _) in left {
                kill(pid, rustix::process::Signal::KILL);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        unmount_under(&self.root);
    }
}

/// dockerd bind-mounts its data root onto itself: undo that, or the temp
/// dir can't be removed.
pub fn unmount_under(root: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let needle = root.to_string_lossy();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(needle.as_ref()))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").arg("-l").arg(p).status();
    }
}

/// Append a line to a file (for fixtures).
pub fn append(path: &Path, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

/// A running command whose stdout is collected as it comes, so a test
/// can wait for a line with a deadline.
pub struct Streaming {
    pub child: Child,
    out: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Streaming {
    pub fn spawn(mut cmd: Command) -> Streaming {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = out.clone();
            std::thread::spawn(move || {
                let mut pipe = pipe;
                let mut buf = [0u8; 4096];
                while let Ok(n) = std::io::Read::read(&mut pipe, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Streaming { child, out }
    }

    pub fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// Wait until the output contains `needle`; panic with it after `within`.
    pub fn wait_for(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let t = self.text();
            if t.contains(needle) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?} in:\n{t}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The exit status within `within`, then the whole output.
    pub fn finish(&mut self, within: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(50));
                return (s, self.text());
            }
            assert!(
                Instant::now() < deadline,
                "did not exit within {within:?}:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A colima profile over the stand-in colima/limactl
/// (tests/fixtures/colima/); `extra` adds lines to the profile. Returns
/// the env and COLIMA_HOME.
pub fn colima_env(extra: &str) -> (Env, PathBuf) {
    let mut env = Env::new();
    let home = env.root.join("colima");
    let path = format!(
        "{}:{}",
        fixture("colima").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    env.extra_env = vec![
        ("PATH".into(), path),
        ("COLIMA_HOME".into(), home.display().to_string()),
    ];
    env.write_config(&format!(
        "[profiles.default]\nengine = \"colima\"\nstate_dir = \"{}\"\nprobe_interval = \"1s\"\nprobe_timeout = \"1s\"\nstop_timeout = \"30s\"\nstart_timeout = \"90s\"\n{extra}",
        env.state.display()
    ));
    (env, home)
}

/// Copy an executable to `to` (mode 0755) so that it can be run at once:
/// by `cp`, not by this process, because a copy's write descriptor open
/// here leaks into whatever another test thread forks meanwhile and keeps
/// the new file "Text file busy" (ETXTBSY) until that child execs.
pub fn copy_executable(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("--")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(ok.success(), "cp {} {}", from.display(), to.display());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
}
