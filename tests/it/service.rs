//! `dockhand service`: renderings (snapshots, plist DTD validation with
//! xmllint, `systemd-analyze --user verify`) and install / uninstall /
//! status / restart against stand-in `launchctl` and `systemctl` scripts
//! (tests/fixtures/service/) that record their arguments.
//!
//! Every run of the binary gets a cleared environment: a temp HOME, temp XDG
//! directories and a PATH of temp directories only.
//! `UPDATE_SNAPSHOTS=1 cargo test --test it service` rewrites the snapshots.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_dockhand");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/service")
}

fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

fn make_executable(p: &Path) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

struct Sandbox {
    _tmp: tempfile::TempDir,
    /// Canonical path of the temp dir (all the files of a test are in it).
    root: PathBuf,
    home: PathBuf,
    /// Stand-ins and fake tools; the only PATH entry besides /usr/bin:/bin.
    bin: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
    /// PATH of the dockhand runs (default: bin, then /usr/bin:/bin so that
    /// the stand-in scripts find cat/rm/...).
    path: String,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let home = root.join("home");
        let bin = root.join("bin");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let path = format!("{}:/usr/bin:/bin", bin.display());
        Sandbox {
            log: root.join("calls.log"),
            root,
            home,
            bin,
            env: Vec::new(),
            path,
            _tmp: tmp,
        }
    }

    /// Put the stand-in `launchctl` / `systemctl` into bin.
    fn stand_in(&self, name: &str) {
        let to = self.bin.join(name);
        std::fs::copy(fixtures().join(name), &to).unwrap();
        make_executable(&to);
    }

    /// An empty executable in `dir` (a fake colima, docker, ...).
    fn fake_tool(&self, dir: &str, name: &str) -> PathBuf {
        let d = self.root.join(dir);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(name);
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
        make_executable(&p);
        d
    }

    fn set(&mut self, k: &str, v: impl AsRef<str>) {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.to_string(), v.as_ref().to_string()));
    }

    fn config(&self, name: &str, text: &str) -> PathBuf {
        let p = self.root.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("USER", "tester")
            .env("PATH", &self.path)
            .env("XDG_CONFIG_HOME", self.root.join("xdg-config"))
            .env("XDG_STATE_HOME", self.root.join("xdg-state"))
            .env("DOCKHAND_TEST_LOG", &self.log)
            .env("STANDIN_STATE", self.root.join("standin-state"))
            .current_dir(&self.root);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Run, expect exit `code`, return stdout.
    fn expect(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "dockhand {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        stdout
    }

    fn ok(&self, args: &[&str]) -> String {
        self.expect(args, 0)
    }

    /// The stand-ins' calls since the last `take_calls`.
    fn take_calls(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let _ = std::fs::remove_file(&self.log);
        text.lines().map(str::to_string).collect()
    }

    /// Every file under root, relative, sorted, without the ones the test
    /// harness itself owns (bin, tools, stand-in state, the call log, configs).
    fn files(&self) -> Vec<String> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                let m = std::fs::symlink_metadata(&p).unwrap();
                if m.is_dir() {
                    walk(&p, root, out);
                } else {
                    out.push(p.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out);
        out.retain(|f| {
            !f.starts_with("bin/")
                && !f.starts_with("tools/")
                && !f.starts_with("standin-state/")
                && f != "calls.log"
                && !f.ends_with(".toml")
        });
        out.sort();
        out
    }

    /// Replace the binary's and the sandbox's paths by placeholders.
    fn normalize(&self, text: &str) -> String {
        let bin = Path::new(BIN).canonicalize().unwrap();
        text.replace(&bin.display().to_string(), "@DOCKHAND@")
            .replace(&self.root.display().to_string(), "@ROOT@")
    }
}

// ------------------------------------------------------------- snapshots

fn snapshot(name: &str, actual: &str) {
    let path = fixtures().join("snapshots").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read snapshot {}: {e}; create it with UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "snapshot {} differs (UPDATE_SNAPSHOTS=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// A real program the checks need: present, or skip (fail under CI=true).
fn have(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{program} is required under CI=true (apt-get install libxml2-utils systemd)");
        }
        eprintln!("SKIPPED: {program} not found; install it to run this check");
    }
    found
}

/// Parse the plist back, check the contract's keys, validate it against
/// the local copy of Apple's DTD.
fn check_plist(sb: &Sandbox, text: &str, label: &str, args_tail: &[&str], exit_timeout: u64) {
    let v = plist::Value::from_reader_xml(text.as_bytes()).expect("plist parses");
    let d = v.as_dictionary().expect("top level is a dict");
    let s = |k: &str| {
        d.get(k)
            .and_then(plist::Value::as_string)
            .map(str::to_string)
    };
    let b = |k: &str| d.get(k).and_then(plist::Value::as_boolean);
    let n = |k: &str| d.get(k).and_then(plist::Value::as_unsigned_integer);
    assert_eq!(s("Label").as_deref(), Some(label));
    let args: Vec<String> = d["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_string().unwrap().to_string())
        .collect();
    let bin = Path::new(BIN).canonicalize().unwrap();
    assert_eq!(args[0], bin.display().to_string());
    assert_eq!(&args[1..], args_tail);
    assert_eq!(b("RunAtLoad"), Some(true));
    let ka = d["KeepAlive"].as_dictionary().unwrap();
    assert_eq!(ka["SuccessfulExit"].as_boolean(), Some(false));
    assert_eq!(ka["Crashed"].as_boolean(), Some(true));
    assert_eq!(n("ThrottleInterval"), Some(30));
    assert_eq!(b("AbandonProcessGroup"), Some(true));
    assert_eq!(n("ExitTimeOut"), Some(exit_timeout));
    assert_eq!(s("ProcessType").as_deref(), Some("Standard"));
    let env = d["EnvironmentVariables"].as_dictionary().unwrap();
    assert_eq!(env["HOME"].as_string(), Some(sb.home.to_str().unwrap()));
    let out = s("StandardOutPath").unwrap();
    assert!(out.ends_with(".launchd.log"), "{out}");
    assert_eq!(s("StandardErrorPath"), Some(out));

    if have("xmllint") {
        let f = sb.root.join("check.plist");
        std::fs::write(&f, text).unwrap();
        let o = Command::new("xmllint")
            .args(["--noout", "--nonet", "--dtdvalid"])
            .arg(fixtures().join("PropertyList-1.0.dtd"))
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "xmllint rejects the plist:\n{}\n{text}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::fs::remove_file(&f).unwrap();
    }
}

/// `systemd-analyze --user verify` on the unit, under its real file name.
fn check_unit(sb: &Sandbox, text: &str, profile: &str) {
    if !have("systemd-analyze") {
        return;
    }
    let dir = sb.root.join("verify");
    let runtime = sb.root.join("runtime");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let f = dir.join(format!("dockhand-{profile}.service"));
    std::fs::write(&f, text).unwrap();
    let o = Command::new("systemd-analyze")
        .args(["--user", "verify"])
        .arg(&f)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("HOME", &sb.home)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "systemd-analyze verify rejects the unit:\n{stderr}\n{text}"
    );
    // Warnings about our own unit (unknown keys exit 0 but are printed).
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(&format!("dockhand-{profile}.service")))
        .collect();
    assert!(
        ours.is_empty(),
        "systemd-analyze warns:\n{}",
        ours.join("\n")
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&runtime).unwrap();
}

/// A sandbox whose PATH holds only temp dirs with fake colima and docker,
/// so the rendering doesn't depend on the host.
fn render_sandbox() -> Sandbox {
    let mut sb = Sandbox::new();
    let a = sb.fake_tool("tools/a", "colima");
    sb.fake_tool("tools/a", "limactl");
    let b = sb.fake_tool("tools/b", "docker");
    sb.fake_tool("tools/b", "qemu-img");
    sb.fake_tool("tools/c", "docker"); // shadowed by tools/b
    sb.path = format!(
        "{}:{}:{}:{}",
        a.display(),
        b.display(),
        sb.root.join("tools/c").display(),
        sb.bin.display()
    );
    sb
}

fn print(sb: &Sandbox, platform: &str, extra: &[&str]) -> String {
    let mut args = vec!["service", "print", "--platform", platform];
    args.extend(extra);
    sb.ok(&args)
}

/// The default profile without a config file: the defaults differ on macOS
/// (log in ~/Library/Logs), so this snapshot is Linux's.
#[cfg(target_os = "linux")]
#[test]
fn snapshot_default_profile() {
    let sb = render_sandbox();
    let plist = print(&sb, "launchd", &[]);
    check_plist(
        &sb,
        &plist,
        "local.docker",
        &["run", "--profile", "default"],
        75,
    );
    snapshot("default.plist", &sb.normalize(&plist));
    let unit = print(&sb, "systemd", &[]);
    check_unit(&sb, &unit, "default");
    snapshot("dockhand-default.service", &sb.normalize(&unit));
    // Nothing written anywhere in the sandbox.
    assert_eq!(sb.files(), Vec::<String>::new());
    // --profile default is the same as no --profile.
    assert_eq!(print(&sb, "launchd", &["--profile", "default"]), plist);
}

#[test]
fn snapshot_named_profile_with_explicit_config() {
    let sb = render_sandbox();
    let cfg = sb.config(
        "work.toml",
        "[profiles.work]\nengine = \"dockerd\"\nstop_timeout = \"2m\"\nstart_timeout = \"45s\"\n\
         log_file = \"~/logs/work.log\"\nstate_dir = \"~/state/work\"\n",
    );
    let c = cfg.to_str().unwrap();
    let tail = ["run", "--profile", "work", "--config", c];
    let plist = print(&sb, "launchd", &["--profile", "work", "--config", c]);
    check_plist(&sb, &plist, "local.docker.work", &tail, 135);
    snapshot("work.plist", &sb.normalize(&plist));
    let unit = print(&sb, "systemd", &["--profile", "work", "--config", c]);
    check_unit(&sb, &unit, "work");
    assert!(unit.contains("TimeoutStopSec=135s\n"), "{unit}");
    assert!(unit.contains("TimeoutStartSec=75s\n"), "{unit}");
    snapshot("dockhand-work.service", &sb.normalize(&unit));

    // DOCKHAND_CONFIG counts as an explicit config too; a relative --config
    // is made absolute.
    let mut sb2 = render_sandbox();
    std::fs::copy(&cfg, sb2.root.join("work.toml")).unwrap();
    sb2.set("DOCKHAND_CONFIG", "work.toml");
    let p2 = print(&sb2, "launchd", &["--profile", "work"]);
    assert_eq!(sb2.normalize(&p2), sb.normalize(&plist));
}

#[test]
fn snapshot_colima_home_and_custom_label() {
    let mut sb = render_sandbox();
    let cfg = sb.config(
        "c.toml",
        "[profiles.vm]\nengine = \"colima\"\nlabel = \"com.example.colima\"\nstop_timeout = \"1500ms\"\n\
         log_file = \"$HOME/Library/Logs/dockhand/vm\"\n",
    );
    sb.set(
        "COLIMA_HOME",
        sb.root.join("colima-home").display().to_string(),
    );
    sb.set(
        "DOCKER_CONFIG",
        sb.root.join("docker-config").display().to_string(),
    );
    let c = cfg.to_str().unwrap();
    let plist = print(&sb, "launchd", &["--profile", "vm", "--config", c]);
    check_plist(
        &sb,
        &plist,
        "com.example.colima",
        &["run", "--profile", "vm", "--config", c],
        17,
    );
    let v = plist::Value::from_reader_xml(plist.as_bytes()).unwrap();
    let env = v.as_dictionary().unwrap()["EnvironmentVariables"]
        .as_dictionary()
        .unwrap()
        .clone();
    assert!(env.contains_key("COLIMA_HOME") && env.contains_key("DOCKER_CONFIG"));
    assert!(!env.contains_key("LIMA_HOME"));
    snapshot("colima-home.plist", &sb.normalize(&plist));
    let unit = print(&sb, "systemd", &["--profile", "vm", "--config", c]);
    check_unit(&sb, &unit, "vm");
    snapshot("dockhand-vm.service", &sb.normalize(&unit));
}

/// A binary path with a space and a `%` is quoted and escaped per systemd's
/// rules; systemd-analyze finds the binary (it checks ExecStart exists).
#[test]
fn unit_quotes_odd_binary_path() {
    let sb = render_sandbox();
    let dir = sb.root.join("odd dir");
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("dock%hand");
    crate::harness::copy_executable(Path::new(BIN), &bin);
    let cfg = sb.config("a $b.toml", "");
    let out = Command::new(&bin)
        .args(["service", "print", "--platform", "systemd", "--config"])
        .arg(&cfg)
        .env_clear()
        .env("HOME", &sb.home)
        .env("PATH", &sb.path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unit = String::from_utf8(out.stdout).unwrap();
    let exec = format!(
        "ExecStart=\"{}/odd dir/dock%%hand\" run --profile default --config \"{}/a $$b.toml\"\n",
        sb.root.display(),
        sb.root.display()
    );
    assert!(unit.contains(&exec), "want {exec}in\n{unit}");
    check_unit(&sb, &unit, "default");
}

#[test]
fn print_default_platform_and_override() {
    let mut sb = render_sandbox();
    let host = if cfg!(target_os = "macos") {
        "launchd"
    } else {
        "systemd"
    };
    assert_eq!(sb.ok(&["service", "print"]), print(&sb, host, &[]));
    sb.set("DOCKHAND_SERVICE_PLATFORM", "launchd");
    assert!(sb.ok(&["service", "print"]).starts_with("<?xml"));
    sb.set("DOCKHAND_SERVICE_PLATFORM", "upstart");
    let out = sb.run(&["service", "print"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DOCKHAND_SERVICE_PLATFORM"));
    let out = sb.run(&["service", "print", "--platform", "upstart"]);
    assert_eq!(out.status.code(), Some(2));
}

// ------------------------------------------------------------- launchd

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn write_state(sb: &Sandbox, state_dir: &Path, json: &str) {
    std::fs::create_dir_all(state_dir).unwrap();
    std::fs::write(state_dir.join("state.json"), json).unwrap();
    let _ = sb;
}

#[test]
fn launchd_install_reinstall_update_restart_status_uninstall() {
    let mut sb = Sandbox::new();
    sb.stand_in("launchctl");
    sb.set("DOCKHAND_SERVICE_PLATFORM", "launchd");
    // A bootout is gone at the next look (draining: launchd_bootout_drains).
    sb.set("STANDIN_DRAIN", "0");
    let cfg = sb.config(
        "d.toml",
        "[profiles.default]\nstop_timeout = \"30s\"\nlog_file = \"~/Library/Logs/dockhand/default.log\"\n",
    );
    let c = cfg.to_str().unwrap();
    let u = uid();
    let target = format!("gui/{u}/local.docker");
    let plist = sb.home.join("Library/LaunchAgents/local.docker.plist");

    // Fresh install: written, then bootout (not loaded: ignored), enable,
    // bootstrap.
    let out = sb.ok(&["service", "install", "--config", c]);
    assert!(
        out.contains(&format!("installed {}", plist.display())),
        "{out}"
    );
    assert_eq!(
        sb.take_calls(),
        [
            format!("launchctl bootout {target}"),
            format!("launchctl enable {target}"),
            format!("launchctl bootstrap gui/{u} {}", plist.display()),
        ]
    );
    assert_eq!(mode(&plist), 0o644);
    let written = std::fs::read_to_string(&plist).unwrap();
    assert_eq!(
        written,
        sb.ok(&["service", "print", "--config", c, "--platform", "launchd"])
    );
    assert!(written.contains("<integer>45</integer>"), "{written}");
    // Only the plist and the launchd log's directory, all inside HOME.
    assert_eq!(sb.files(), ["home/Library/LaunchAgents/local.docker.plist"]);
    assert!(sb.home.join("Library/Logs/dockhand").is_dir());

    // Same content: nothing changes, only a look whether it's loaded.
    let before = std::fs::metadata(&plist).unwrap();
    let out = sb.ok(&["service", "install", "--config", c]);
    assert!(out.contains("unchanged"), "{out}");
    assert_eq!(sb.take_calls(), [format!("launchctl print {target}")]);
    let after = std::fs::metadata(&plist).unwrap();
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec())
    );

    // Unchanged but not loaded (e.g. a failed bootstrap): load it.
    sb.run(&["service", "uninstall"]); // unloads and removes
    sb.ok(&["service", "install", "--config", c]);
    std::fs::remove_file(sb.root.join("standin-state/local.docker")).unwrap();
    sb.take_calls();
    let out = sb.ok(&["service", "install", "--config", c]);
    assert!(
        out.contains("unchanged") && out.contains("was not loaded"),
        "{out}"
    );
    assert_eq!(
        sb.take_calls(),
        [
            format!("launchctl print {target}"),
            format!("launchctl enable {target}"),
            format!("launchctl bootstrap gui/{u} {}", plist.display()),
        ]
    );

    // Changed config: replaced, booted out (waiting until it is gone),
    // loaded again.
    std::fs::write(&cfg, "[profiles.default]\nstop_timeout = \"90s\"\nlog_file = \"~/Library/Logs/dockhand/default.log\"\n").unwrap();
    let out = sb.ok(&["service", "install", "--config", c]);
    assert!(out.contains("updated"), "{out}");
    assert_eq!(
        sb.take_calls(),
        [
            format!("launchctl bootout {target}"),
            format!("launchctl print {target}"),
            format!("launchctl enable {target}"),
            format!("launchctl bootstrap gui/{u} {}", plist.display()),
        ]
    );
    assert!(
        std::fs::read_to_string(&plist)
            .unwrap()
            .contains("<integer>105</integer>")
    );
    assert_eq!(mode(&plist), 0o644);
    assert_eq!(sb.files(), ["home/Library/LaunchAgents/local.docker.plist"]);

    // Restart: SIGTERM (never `kickstart -k`, which SIGKILLs), wait for
    // the exit, kickstart.
    let out = sb.ok(&["service", "restart", "--config", c]);
    assert!(out.contains("restarted"), "{out}");
    assert_eq!(
        sb.take_calls(),
        [
            format!("launchctl print {target}"),
            format!("launchctl kill SIGTERM {target}"),
            format!("launchctl print {target}"),
            format!("launchctl kickstart {target}"),
        ]
    );

    // Status: file, launchd's view, the supervisor's state.
    write_state(
        &sb,
        &sb.root.join("xdg-state/dockhand/default"),
        r#"{"profile":"default","phase":"ready","engine_pid":77,"socket":"/s","restarts":2,"last_error":"probe timed out","since":"2025-01-01T00:00:00Z","supervisor_pid":4242}"#,
    );
    let out = sb.ok(&["service", "status", "--config", c]);
    assert_eq!(sb.take_calls(), [format!("launchctl print {target}")]);
    for want in [
        format!("launchd agent {target}"),
        format!("{} (installed, up to date)", plist.display()),
        "loaded:".into(),
        "state:".into(),
        "running".into(),
        "pid:".into(),
        "last exit:".into(),
        "exit code 0".into(),
        "phase:".into(),
        "ready".into(),
        "probe timed out".into(),
    ] {
        assert!(out.contains(&want), "no {want:?} in\n{out}");
    }
    // The config changed since install: status says the file differs.
    std::fs::write(&cfg, "[profiles.default]\nstop_timeout = \"5s\"\n").unwrap();
    let out = sb.ok(&["service", "status", "--config", c]);
    assert!(out.contains("differs"), "{out}");
    sb.take_calls();

    // Uninstall: bootout, file removed; nothing left in the sandbox.
    let out = sb.ok(&["service", "uninstall", "--config", c]);
    assert!(out.contains("removed"), "{out}");
    assert_eq!(
        sb.take_calls(),
        [
            format!("launchctl bootout {target}"),
            format!("launchctl print {target}"),
        ]
    );
    assert!(!plist.exists());
    assert_eq!(sb.files(), ["xdg-state/dockhand/default/state.json"]);
    // Again: nothing to do, still fine.
    let out = sb.ok(&["service", "uninstall", "--config", c]);
    assert!(out.contains("not installed"), "{out}");
    assert_eq!(sb.take_calls(), [format!("launchctl bootout {target}")]);

    // Status when not installed: exit 1.
    let out = sb.expect(&["service", "status", "--config", c], 1);
    assert!(
        out.contains("not installed") && out.contains("loaded:"),
        "{out}"
    );
    // Restart when not installed: a usage error, nothing run.
    sb.take_calls();
    let out = sb.run(&["service", "restart", "--config", c]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dockhand service install"));
    assert!(sb.take_calls().is_empty());
}

/// launchd's `bootout` returns while the job still drains, and a
/// `bootstrap` of the label fails with 5 meanwhile: `uninstall` waits until
/// `print` says it is gone (113), and `install` retries `bootstrap`, so the
/// agent is loaded again at the end (it used to be left unloaded).
#[test]
fn launchd_bootout_drains_and_bootstrap_retries() {
    let mut sb = Sandbox::new();
    sb.stand_in("launchctl");
    sb.set("DOCKHAND_SERVICE_PLATFORM", "launchd");
    sb.set("STANDIN_DRAIN", "2");
    let target = format!("gui/{}/local.docker", uid());
    let loaded = sb.root.join("standin-state/local.docker");
    sb.ok(&["service", "install"]);
    // Uninstall then install: the second finds the label gone.
    let out = sb.ok(&["service", "uninstall"]);
    assert!(
        out.contains("waiting for launchd to finish stopping"),
        "{out}"
    );
    let calls = sb.take_calls();
    assert!(
        calls.iter().filter(|c| c.contains("print")).count() >= 2,
        "{calls:?}"
    );
    sb.ok(&["service", "install"]);
    assert!(loaded.exists());

    // Changed plist, bootout answering 36 (EINPROGRESS): still waits and
    // loads the new one.
    sb.set("STANDIN_BOOTOUT_EXIT", "36");
    let cfg = sb.config("d.toml", "[profiles.default]\nstop_timeout = \"7s\"\n");
    let out = sb.ok(&["service", "install", "--config", cfg.to_str().unwrap()]);
    assert!(out.contains("updated") && out.contains("loaded"), "{out}");
    assert!(loaded.exists());
    sb.take_calls();

    // Booted out behind dockhand's back and the plist removed: install
    // finds nothing loaded, and bootstrap meets the draining job (5).
    sb.set("STANDIN_BOOTOUT_EXIT", "0");
    std::process::Command::new(sb.bin.join("launchctl"))
        .args(["bootout", &target])
        .env("DOCKHAND_TEST_LOG", &sb.log)
        .env("STANDIN_STATE", sb.root.join("standin-state"))
        .env("STANDIN_DRAIN", "2")
        .status()
        .unwrap();
    std::fs::remove_file(sb.home.join("Library/LaunchAgents/local.docker.plist")).unwrap();
    sb.take_calls();
    let out = sb.ok(&["service", "install"]);
    assert!(out.contains("retrying"), "{out}");
    let bootstraps = sb
        .take_calls()
        .iter()
        .filter(|c| c.contains("bootstrap"))
        .count();
    assert!(bootstraps >= 2, "bootstrap was not retried");
    assert!(loaded.exists());
}

/// `kickstart` of a label that isn't loaded exits 113: `restart` says to
/// install instead; `print` after a death by signal shows `last
/// terminating signal`, and status reports it.
#[test]
fn launchd_restart_unloaded_and_signal_death() {
    let mut sb = Sandbox::new();
    sb.stand_in("launchctl");
    sb.set("DOCKHAND_SERVICE_PLATFORM", "launchd");
    sb.set("STANDIN_DRAIN", "0");
    let target = format!("gui/{}/local.docker", uid());
    sb.ok(&["service", "install"]);
    let launchctl = |args: &[&str]| {
        std::process::Command::new(sb.bin.join("launchctl"))
            .args(args)
            .env("DOCKHAND_TEST_LOG", &sb.log)
            .env("STANDIN_STATE", sb.root.join("standin-state"))
            .env("STANDIN_DRAIN", "0")
            .output()
            .unwrap()
    };
    launchctl(&["kill", "SIGKILL", &target]);
    let out = sb.expect(&["service", "status"], 1);
    assert!(out.contains("killed by a signal (Killed: 9)"), "{out}");
    // The stand-in itself: kickstart of an unknown label is 113.
    let k = launchctl(&["kickstart", "gui/1/nope"]);
    assert_eq!(k.status.code(), Some(113));
    launchctl(&["bootout", &target]);
    sb.take_calls();
    let out = sb.run(&["service", "restart"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not loaded"));
    assert!(!sb.take_calls().iter().any(|c| c.contains("kickstart")));
}

/// Under launchd (`DOCKHAND_SUPERVISED_BY=launchd`, set in the plist) an
/// error a retry can't fix exits 0, so `KeepAlive {SuccessfulExit=false}`
/// doesn't respawn it every ThrottleInterval; elsewhere its code stays.
#[test]
fn launchd_fatal_errors_are_not_respawned() {
    let mut sb = Sandbox::new();
    let cfg = sb.config("bad.toml", "[profiles.default]\nengine = \"warp\"\n");
    let c = cfg.to_str().unwrap();
    let out = sb.run(&["run", "--config", c]);
    assert_eq!(out.status.code(), Some(2));
    sb.set("DOCKHAND_SUPERVISED_BY", "launchd");
    let out = sb.run(&["run", "--config", c]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml")
            && err.contains("exiting 0, not 2")
            && err.contains("dockhand service restart"),
        "{err}"
    );
    // `service status` shows the reason from the launchd log, where
    // launchd writes dockhand's stderr.
    sb.set("DOCKHAND_SERVICE_PLATFORM", "launchd");
    sb.stand_in("launchctl");
    sb.set("STANDIN_DRAIN", "0");
    let good = sb.config("good.toml", "[profiles.default]\n");
    sb.ok(&["service", "install", "--config", good.to_str().unwrap()]);
    let target = format!("gui/{}/local.docker", uid());
    std::process::Command::new(sb.bin.join("launchctl"))
        .args(["kill", "SIGTERM", &target])
        .env("DOCKHAND_TEST_LOG", &sb.log)
        .env("STANDIN_STATE", sb.root.join("standin-state"))
        .status()
        .unwrap();
    // Where the plist's StandardErrorPath points.
    let plist = sb.ok(&["service", "print", "--config", good.to_str().unwrap()]);
    let log = sb.home.join("Library/Logs/dockhand/default.launchd.log");
    assert!(
        plist.contains(&format!("<string>{}</string>", log.display())),
        "{plist}"
    );
    std::fs::write(&log, format!("{err}")).unwrap();
    let out = sb.expect(
        &["service", "status", "--config", good.to_str().unwrap()],
        1,
    );
    assert!(
        out.contains("last message:") && out.contains("bad.toml"),
        "{out}"
    );
    // The plist sets it.
    let plist = sb.ok(&["service", "print"]);
    assert!(
        plist.contains("<key>DOCKHAND_SUPERVISED_BY</key>\n\t\t<string>launchd</string>"),
        "{plist}"
    );
}

#[test]
fn launchd_named_profile_label_and_config() {
    let mut sb = Sandbox::new();
    sb.stand_in("launchctl");
    sb.set("DOCKHAND_SERVICE_PLATFORM", "launchd");
    let cfg = sb.config("w.toml", "[profiles.work]\n");
    let c = cfg.to_str().unwrap();
    let u = uid();
    sb.ok(&["service", "install", "--profile", "work", "--config", c]);
    let plist = sb.home.join("Library/LaunchAgents/local.docker.work.plist");
    assert_eq!(
        sb.take_calls(),
        [
            format!("launchctl bootout gui/{u}/local.docker.work"),
            format!("launchctl enable gui/{u}/local.docker.work"),
            format!("launchctl bootstrap gui/{u} {}", plist.display()),
        ]
    );
    let text = std::fs::read_to_string(&plist).unwrap();
    assert!(text.contains(&format!("<string>{c}</string>")), "{text}");
}

#[test]
fn launchd_errors() {
    let mut sb = Sandbox::new();
    sb.set("DOCKHAND_SERVICE_PLATFORM", "launchd");
    let plist = sb.home.join("Library/LaunchAgents/local.docker.plist");

    // No launchctl on PATH: exit 5, nothing written.
    sb.path = sb.bin.display().to_string();
    for verb in ["install", "uninstall", "status", "restart"] {
        let out = sb.run(&["service", verb]);
        assert_eq!(out.status.code(), Some(5), "{verb}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("`launchctl` not found on PATH"), "{err}");
    }
    assert_eq!(sb.files(), Vec::<String>::new());

    // A failing bootstrap: exit 7 with launchctl's stderr.
    sb.path = format!("{}:/usr/bin:/bin", sb.bin.display());
    sb.stand_in("launchctl");
    sb.set("STANDIN_FAIL", "bootstrap");
    let out = sb.run(&["service", "install"]);
    assert_eq!(out.status.code(), Some(7));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`launchctl bootstrap gui/") && err.contains("failed on purpose"),
        "{err}"
    );

    // A symlink at the plist's path (nix-managed) is neither written
    // through nor removed: exit 6, no launchctl call.
    sb.set("STANDIN_FAIL", "");
    std::fs::remove_file(&plist).unwrap();
    let elsewhere = sb.root.join("nix-store-agent.plist");
    std::fs::write(&elsewhere, "theirs").unwrap();
    std::os::unix::fs::symlink(&elsewhere, &plist).unwrap();
    sb.take_calls();
    for verb in ["install", "uninstall"] {
        let out = sb.run(&["service", verb]);
        assert_eq!(out.status.code(), Some(6), "{verb}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("symlink"));
    }
    assert!(sb.take_calls().is_empty());
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "theirs");
    assert!(
        std::fs::symlink_metadata(&plist)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

// ------------------------------------------------------------- systemd

#[test]
fn systemd_install_reinstall_update_restart_status_uninstall() {
    let mut sb = Sandbox::new();
    sb.stand_in("systemctl");
    sb.set("DOCKHAND_SERVICE_PLATFORM", "systemd");
    let unit_path = sb
        .root
        .join("xdg-config/systemd/user/dockhand-default.service");
    let unit = "dockhand-default.service";

    let out = sb.ok(&["service", "install"]);
    assert!(
        out.contains(&format!("installed {}", unit_path.display())),
        "{out}"
    );
    assert_eq!(
        sb.take_calls(),
        [
            "systemctl --user is-system-running".to_string(),
            "systemctl --user daemon-reload".to_string(),
            format!("systemctl --user enable {unit}"),
            format!("systemctl --user start --no-block {unit}"),
            format!(
                "systemctl --user show {unit} -p ActiveState,SubState,MainPID,StatusText,ExecMainStatus,Result"
            ),
        ]
    );
    assert!(out.contains("is ready: engine answers"), "{out}");
    assert_eq!(mode(&unit_path), 0o644);
    assert_eq!(
        std::fs::read_to_string(&unit_path).unwrap(),
        sb.ok(&["service", "print", "--platform", "systemd"])
    );
    assert_eq!(
        sb.files(),
        ["xdg-config/systemd/user/dockhand-default.service"]
    );

    // Same content, enabled and active: nothing but a look.
    let before = std::fs::metadata(&unit_path).unwrap();
    let out = sb.ok(&["service", "install"]);
    assert!(out.contains("unchanged"), "{out}");
    assert_eq!(
        sb.take_calls(),
        [
            "systemctl --user is-system-running".to_string(),
            format!("systemctl --user show {unit} -p UnitFileState,ActiveState")
        ]
    );
    let after = std::fs::metadata(&unit_path).unwrap();
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec())
    );

    // Same content but stopped: started again, not restarted.
    std::fs::remove_file(sb.root.join(format!("standin-state/{unit}.active"))).unwrap();
    let out = sb.ok(&["service", "install"]);
    assert!(out.contains("unchanged"), "{out}");
    assert_eq!(
        sb.take_calls(),
        [
            "systemctl --user is-system-running".to_string(),
            format!("systemctl --user show {unit} -p UnitFileState,ActiveState"),
            "systemctl --user daemon-reload".to_string(),
            format!("systemctl --user enable {unit}"),
            format!("systemctl --user start --no-block {unit}"),
            format!(
                "systemctl --user show {unit} -p ActiveState,SubState,MainPID,StatusText,ExecMainStatus,Result"
            ),
        ]
    );

    // Changed content (a stop_timeout in a new config): replaced, reloaded,
    // restarted (the supervisor hands its engine over), waited for.
    let cfg = sb.config("d.toml", "[profiles.default]\nstop_timeout = \"10s\"\n");
    let c = cfg.to_str().unwrap();
    let out = sb.ok(&["service", "install", "--config", c]);
    assert!(out.contains("updated"), "{out}");
    assert_eq!(
        sb.take_calls(),
        [
            "systemctl --user is-system-running".to_string(),
            "systemctl --user daemon-reload".to_string(),
            format!("systemctl --user enable {unit}"),
            format!("systemctl --user show {unit} -p MainPID"),
            format!("systemctl --user restart --no-block {unit}"),
            format!(
                "systemctl --user show {unit} -p ActiveState,SubState,MainPID,StatusText,ExecMainStatus,Result"
            ),
        ]
    );
    let text = std::fs::read_to_string(&unit_path).unwrap();
    assert!(text.contains("TimeoutStopSec=25s\n"), "{text}");
    assert!(text.contains(&format!("--config {c}\n")), "{text}");
    assert_eq!(mode(&unit_path), 0o644);

    // Restart.
    let out = sb.ok(&["service", "restart", "--config", c]);
    assert!(out.contains("healthy engine keeps running"), "{out}");
    assert_eq!(
        sb.take_calls(),
        [
            "systemctl --user is-system-running".to_string(),
            format!("systemctl --user show {unit} -p MainPID"),
            format!("systemctl --user restart --no-block {unit}"),
            format!(
                "systemctl --user show {unit} -p ActiveState,SubState,MainPID,StatusText,ExecMainStatus,Result"
            ),
        ]
    );

    // Status, with and without the supervisor's state file.
    let out = sb.ok(&["service", "status", "--config", c]);
    assert_eq!(
        sb.take_calls(),
        [
            "systemctl --user is-system-running".to_string(),
            format!(
                "systemctl --user show {unit} -p ActiveState,SubState,MainPID,ExecMainStatus,LoadState,StatusText"
            )
        ]
    );
    for want in [
        "systemd user unit",
        "up to date",
        "active (running)",
        "4245",
        "status text:",
        "phase:",
        "no ",
    ] {
        assert!(out.contains(want), "no {want:?} in\n{out}");
    }
    write_state(
        &sb,
        &sb.root.join("xdg-state/dockhand/default"),
        r#"{"profile":"default","phase":"restarting","engine_pid":null,"socket":"/s","restarts":0,"last_error":null,"since":"2025-01-01T00:00:00Z","supervisor_pid":4242}"#,
    );
    let out = sb.ok(&["service", "status", "--config", c]);
    assert!(
        out.contains("restarting") && !out.contains("last error"),
        "{out}"
    );
    sb.take_calls();

    // Uninstall: disable --now, remove, daemon-reload.
    let out = sb.ok(&["service", "uninstall", "--config", c]);
    assert!(out.contains("removed"), "{out}");
    assert_eq!(
        sb.take_calls(),
        [
            "systemctl --user is-system-running".to_string(),
            format!("systemctl --user disable --now {unit}"),
            "systemctl --user daemon-reload".to_string(),
        ]
    );
    assert!(!unit_path.exists());
    assert_eq!(sb.files(), ["xdg-state/dockhand/default/state.json"]);
    // Again: only a stop (not loaded: fine).
    let out = sb.ok(&["service", "uninstall", "--config", c]);
    assert!(out.contains("not installed"), "{out}");
    assert_eq!(
        sb.take_calls(),
        [
            "systemctl --user is-system-running".to_string(),
            format!("systemctl --user stop {unit}")
        ]
    );
    let out = sb.expect(&["service", "status", "--config", c], 1);
    assert!(
        out.contains("not installed") && out.contains("inactive (dead)"),
        "{out}"
    );
}

/// Without XDG_CONFIG_HOME the unit goes to ~/.config/systemd/user.
#[test]
fn systemd_unit_dir_defaults_to_home_config() {
    let mut sb = Sandbox::new();
    sb.stand_in("systemctl");
    sb.set("DOCKHAND_SERVICE_PLATFORM", "systemd");
    let mut cmd = sb.cmd(&["service", "install", "--profile", "default"]);
    cmd.env_remove("XDG_CONFIG_HOME");
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sb.files(),
        ["home/.config/systemd/user/dockhand-default.service"]
    );
}

#[test]
fn systemd_errors() {
    let mut sb = Sandbox::new();
    sb.set("DOCKHAND_SERVICE_PLATFORM", "systemd");
    // No systemctl on PATH: exit 5.
    sb.path = sb.bin.display().to_string();
    for verb in ["install", "uninstall", "status", "restart"] {
        let out = sb.run(&["service", verb]);
        assert_eq!(out.status.code(), Some(5), "{verb}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("`systemctl` not found on PATH"), "{err}");
    }
    assert_eq!(sb.files(), Vec::<String>::new());

    // A failing enable: exit 7 naming the command and its stderr.
    sb.path = format!("{}:/usr/bin:/bin", sb.bin.display());
    sb.stand_in("systemctl");
    sb.set("STANDIN_FAIL", "enable");
    let out = sb.run(&["service", "install"]);
    assert_eq!(out.status.code(), Some(7));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`systemctl --user enable dockhand-default.service` failed")
            && err.contains("failed on purpose"),
        "{err}"
    );
    // An unknown profile is a config error before anything runs.
    sb.take_calls();
    let out = sb.run(&["service", "install", "--profile", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(sb.take_calls().is_empty());
}

/// `systemctl` without a user manager (a container, a root shell without a
/// session): install and uninstall say so with exit 5 and a hint, and
/// uninstall still removes the unit file it installed.
#[test]
fn systemd_without_a_user_manager() {
    let mut sb = Sandbox::new();
    sb.stand_in("systemctl");
    sb.set("DOCKHAND_SERVICE_PLATFORM", "systemd");
    sb.ok(&["service", "install"]);
    let unit_path = sb
        .root
        .join("xdg-config/systemd/user/dockhand-default.service");
    sb.set("STANDIN_NO_MANAGER", "1");
    for verb in ["install", "status", "restart", "uninstall"] {
        let out = sb.run(&["service", verb]);
        assert_eq!(out.status.code(), Some(5), "{verb}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no systemd user manager") && err.contains("enable-linger"),
            "{err}"
        );
    }
    assert!(
        !unit_path.exists(),
        "uninstall removes the file it installed"
    );
}

/// A start that fails is reported by `install` with dockhand's reason
/// (its STATUS=), not by a systemd timeout.
#[test]
fn systemd_failed_start_is_reported() {
    let mut sb = Sandbox::new();
    sb.stand_in("systemctl");
    sb.set("DOCKHAND_SERVICE_PLATFORM", "systemd");
    sb.set(
        "STANDIN_STATUS_TEXT",
        "failed: engine did not answer within 3m (next attempt in 1s)",
    );
    let out = sb.run(&["service", "install"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("engine did not start: failed: engine did not answer")
            && err.contains("keeps retrying"),
        "{err}"
    );
}

/// `service status` with a config that doesn't load: the error, then the
/// manager's view (that is when users ask), exit 2.
#[test]
fn status_with_a_bad_config_shows_the_managers_view() {
    for platform in ["launchd", "systemd"] {
        let mut sb = Sandbox::new();
        sb.stand_in("launchctl");
        sb.stand_in("systemctl");
        sb.set("DOCKHAND_SERVICE_PLATFORM", platform);
        sb.set("STANDIN_DRAIN", "0");
        sb.ok(&["service", "install"]);
        let bad = sb.config("bad.toml", "[profiles.default]\nprobe_intervall = \"1s\"\n");
        let out = sb.run(&["service", "status", "--config", bad.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{platform}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("bad.toml:2:1"), "{stderr}");
        let view = if platform == "launchd" {
            "launchd agent"
        } else {
            "systemd user unit"
        };
        assert!(
            stdout.contains(view) && stdout.contains("running"),
            "{platform}: {stdout}"
        );
    }
}

/// The same with the real `systemctl` of this machine, which has no user
/// manager for the test's environment (no XDG_RUNTIME_DIR): exit 5, and
/// uninstall removes the unit file.
#[test]
fn systemd_real_systemctl_without_a_user_manager() {
    let Some(systemctl) = ["/usr/bin/systemctl", "/bin/systemctl"]
        .iter()
        .find(|p| Path::new(p).exists())
    else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "no systemctl: run scripts/test, which installs systemd"
        );
        eprintln!("SKIP: no systemctl");
        return;
    };
    let mut sb = Sandbox::new();
    std::os::unix::fs::symlink(systemctl, sb.bin.join("systemctl")).unwrap();
    sb.set("DOCKHAND_SERVICE_PLATFORM", "systemd");
    let out = sb.run(&["service", "install"]);
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no systemd user manager") && err.contains("offline"),
        "{err}"
    );
    assert_eq!(sb.files(), Vec::<String>::new(), "nothing written");
    // A unit file installed earlier (by hand here) is still removed.
    let unit = sb
        .root
        .join("xdg-config/systemd/user/dockhand-default.service");
    std::fs::create_dir_all(unit.parent().unwrap()).unwrap();
    std::fs::write(&unit, sb.ok(&["service", "print", "--platform", "systemd"])).unwrap();
    let out = sb.run(&["service", "uninstall"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(!unit.exists());
}

/// `down --service` under launchd: `bootout` only, the plist kept (it
/// comes back at the next login); `up` bootstraps it again.
#[test]
fn launchd_down_service_unloads_and_keeps_the_plist() {
    let mut sb = Sandbox::new();
    sb.stand_in("launchctl");
    sb.set("DOCKHAND_SERVICE_PLATFORM", "launchd");
    sb.set("STANDIN_DRAIN", "0");
    let cfg = sb.config("c.toml", "[profiles.default]\nstart_timeout = \"1s\"\n");
    let c = cfg.to_str().unwrap();
    sb.ok(&["service", "install", "--config", c]);
    let plist = sb.home.join("Library/LaunchAgents/local.docker.plist");
    let before = std::fs::read(&plist).unwrap();
    sb.take_calls();
    let target = format!("gui/{}/local.docker", uid());
    let out = sb.ok(&["down", "--service", "--config", c]);
    assert!(out.contains("kept") && out.contains("next login"), "{out}");
    assert_eq!(
        sb.take_calls(),
        [
            format!("launchctl bootout {target}"),
            format!("launchctl print {target}"),
        ]
    );
    assert_eq!(std::fs::read(&plist).unwrap(), before, "the plist changed");
    // `up` loads it again (the stand-in starts no supervisor: up times out).
    let out = sb.run(&["up", "--timeout", "1s", "--config", c]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loading the login service"), "{err}");
    let calls = sb.take_calls();
    assert!(
        calls.contains(&format!(
            "launchctl bootstrap gui/{} {}",
            uid(),
            plist.display()
        )),
        "{calls:?}"
    );
    assert!(!calls.iter().any(|c| c.contains("bootout")), "{calls:?}");
    assert_eq!(std::fs::read(&plist).unwrap(), before);
}

/// `down --service` under systemd: `stop` of the socket unit, then of the
/// service; both files kept and enabled; `up` starts them again.
#[test]
fn systemd_down_service_stops_and_keeps_the_units() {
    let mut sb = Sandbox::new();
    sb.stand_in("systemctl");
    sb.set("DOCKHAND_SERVICE_PLATFORM", "systemd");
    let listen = sb.root.join("l/docker.sock");
    let cfg = sb.config(
        "c.toml",
        &format!(
            "[profiles.default]\nstart_timeout = \"1s\"\nlisten = \"{}\"\n",
            listen.display()
        ),
    );
    let c = cfg.to_str().unwrap();
    sb.set("STANDIN_STATUS_TEXT", "ready: test");
    sb.ok(&["service", "install", "--config", c]);
    let units = sb.root.join("xdg-config/systemd/user");
    let service = units.join("dockhand-default.service");
    let socket = units.join("dockhand-default.socket");
    let (s0, k0) = (
        std::fs::read(&service).unwrap(),
        std::fs::read(&socket).unwrap(),
    );
    sb.take_calls();
    let out = sb.ok(&["down", "--service", "--config", c]);
    assert!(out.contains("next login"), "{out}");
    assert_eq!(
        sb.take_calls(),
        [
            "systemctl --user is-system-running",
            "systemctl --user stop dockhand-default.socket",
            "systemctl --user stop dockhand-default.service",
        ]
    );
    assert_eq!(std::fs::read(&service).unwrap(), s0);
    assert_eq!(std::fs::read(&socket).unwrap(), k0);
    let state = sb.root.join("standin-state");
    assert!(state.join("dockhand-default.service.enabled").exists());
    assert!(!state.join("dockhand-default.service.active").exists());
    // `up` starts the socket, then the service.
    let out = sb.run(&["up", "--timeout", "1s", "--config", c]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("starting the login service"), "{err}");
    let calls = sb.take_calls();
    let at = |needle: &str| {
        calls
            .iter()
            .position(|c| c == needle)
            .unwrap_or_else(|| panic!("{needle} not in {calls:?}"))
    };
    assert!(
        at("systemctl --user start dockhand-default.socket")
            < at("systemctl --user restart --no-block dockhand-default.service")
    );
}

/// Under launchd every non-retryable exit (here 4 from the engine check,
/// after the state dir is claimed; then 6 from an unsafe state dir, before
/// it) exits 0 and `status` / `service status` still show why: from
/// state.json when it could be written, else from the launchd log.
#[test]
fn launchd_fatal_errors_show_in_status() {
    let mut sb = Sandbox::new();
    sb.set("DOCKHAND_SUPERVISED_BY", "launchd");
    let state_dir = sb.root.join("state");
    let log = sb.home.join("Library/Logs/dockhand/default.log");
    let cfg = sb.config(
        "c.toml",
        &format!(
            "[profiles.default]\nengine = \"command\"\nstate_dir = {:?}\nsocket = {:?}\nlog_file = {:?}\n[profiles.default.command]\nargv = [\"/nonexistent/engined\"]\n",
            state_dir.display().to_string(),
            sb.root.join("s.sock").display().to_string(),
            log.display().to_string(),
        ),
    );
    let c = cfg.to_str().unwrap();
    let out = sb.run(&["run", "--config", c]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("exiting 0, not 4"), "{err}");
    // As launchd would, dockhand's stderr goes to the launchd log.
    let launchd_log = sb.home.join("Library/Logs/dockhand/default.launchd.log");
    std::fs::create_dir_all(launchd_log.parent().unwrap()).unwrap();
    std::fs::write(&launchd_log, &err).unwrap();
    let text = sb.expect(&["status", "--config", c], 1);
    assert!(
        text.contains("profile default: failed since")
            && text.contains("last error: ")
            && text.contains("/nonexistent/engined")
            && text.contains("exit 4"),
        "{text}"
    );
    assert!(!text.contains("service log"), "said twice:\n{text}");
    let json: serde_json::Value =
        serde_json::from_str(&sb.expect(&["status", "--json", "--config", c], 1)).unwrap();
    assert_eq!(json["phase"], "failed");
    assert!(
        json["last_error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/engined"),
        "{json}"
    );
    // `service status` (stand-in launchctl) shows it too.
    sb.stand_in("launchctl");
    sb.set("DOCKHAND_SERVICE_PLATFORM", "launchd");
    let text = sb.expect(&["service", "status", "--config", c], 1);
    assert!(
        text.contains("phase:") && text.contains("failed") && text.contains("/nonexistent/engined"),
        "{text}"
    );

    // Exit 6 before the state dir is claimed (it is group-writable):
    // nothing may be written there; status points at the launchd log.
    std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o770)).unwrap();
    let out = sb.run(&["run", "--config", c]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("exiting 0, not 6"), "{err}");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&launchd_log)
        .unwrap();
    std::io::Write::write_all(&mut f, err.as_bytes()).unwrap();
    drop(f);
    let text = sb.expect(&["status", "--config", c], 1);
    assert!(
        text.contains(&format!(
            "service log {}: dockhand exited:",
            launchd_log.display()
        )) && text.contains("state_dir"),
        "{text}"
    );
}

/// A plist as nix-darwin installs it (`cp -f`, mode 0444, its `--config`
/// in the store) and the same bytes in the current system generation:
/// `install`/`uninstall` refuse (exit 6, change the nix configuration),
/// touching nothing; `service status` and `doctor` call it healthy;
/// `down --service` / `up` unload and load it, byte for byte as it was.
#[test]
fn launchd_nix_owned_plist_is_never_rewritten() {
    let mut sb = Sandbox::new();
    sb.stand_in("launchctl");
    sb.set("DOCKHAND_SERVICE_PLATFORM", "launchd");
    sb.set("STANDIN_DRAIN", "0");
    let sysroot = sb.root.join("sysroot");
    sb.set("DOCKHAND_TEST_SYSROOT", sysroot.display().to_string());
    let cfg = sb.config("c.toml", "[profiles.default]\nstart_timeout = \"1s\"\n");
    let c = cfg.to_str().unwrap();
    let ours = sb.ok(&["service", "print", "--platform", "launchd", "--config", c]);
    let theirs = ours.replace(c, "/nix/store/0abc-dockhand-default.toml");
    assert_ne!(ours, theirs);
    let plist = sb.home.join("Library/LaunchAgents/local.docker.plist");
    let generation = sysroot.join("run/current-system/user/Library/LaunchAgents");
    for dir in [plist.parent().unwrap(), &generation] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(generation.join("local.docker.plist"), &theirs).unwrap();
    std::fs::write(&plist, &theirs).unwrap();
    std::fs::set_permissions(&plist, std::fs::Permissions::from_mode(0o444)).unwrap();
    let kept = || {
        assert_eq!(std::fs::read_to_string(&plist).unwrap(), theirs);
        let mode = std::fs::metadata(&plist).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o444);
    };
    sb.take_calls();
    for verb in ["install", "uninstall"] {
        let out = sb.run(&["service", verb, "--config", c]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{verb}: {err}");
        assert!(
            err.contains("managed by nix-darwin") && err.contains("nix configuration"),
            "{err}"
        );
        kept();
    }
    assert_eq!(sb.take_calls(), Vec::<String>::new(), "nothing touched");

    let out = sb.run(&["service", "status", "--config", c]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("managed by nix-darwin, matches its generation"),
        "{text}"
    );
    let doctor = sb.run(&["doctor", "--json", "--config", c]);
    let v: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let check = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "service")
        .unwrap()
        .clone();
    assert_eq!(check["status"], "pass", "{check}");
    assert!(
        check["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("managed by nix-darwin"),
        "{check}"
    );

    sb.take_calls();
    sb.ok(&["down", "--service", "--config", c]);
    kept();
    let out = sb.run(&["up", "--timeout", "1s", "--config", c]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loading the login service"), "{err}");
    let calls = sb.take_calls();
    assert!(
        calls.contains(&format!(
            "launchctl bootstrap gui/{} {}",
            uid(),
            plist.display()
        )),
        "{calls:?}"
    );
    kept();

    // A newer generation (a switch not yet activated): doctor says so.
    std::fs::write(generation.join("local.docker.plist"), "newer").unwrap();
    let doctor = sb.run(&["doctor", "--json", "--config", c]);
    let v: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let check = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "service")
        .unwrap()
        .clone();
    assert_eq!(check["status"], "fail", "{check}");
    kept();
}

/// The same for a systemd unit home-manager installed (read-only here,
/// its generation's copy beside it): refused by install/uninstall with
/// nothing run, reported as managed by `service status`.
#[test]
fn systemd_nix_owned_unit_is_never_rewritten() {
    let mut sb = Sandbox::new();
    sb.stand_in("systemctl");
    sb.set("DOCKHAND_SERVICE_PLATFORM", "systemd");
    let cfg = sb.config("c.toml", "[profiles.default]\nstart_timeout = \"1s\"\n");
    let c = cfg.to_str().unwrap();
    let ours = sb.ok(&["service", "print", "--platform", "systemd", "--config", c]);
    let theirs = ours.replace(c, "/nix/store/0abc-dockhand-default.toml");
    let unit = sb
        .root
        .join("xdg-config/systemd/user/dockhand-default.service");
    let generation = sb
        .home
        .join(".local/state/home-manager/gcroots/current-home/home-files/.config/systemd/user");
    std::fs::create_dir_all(unit.parent().unwrap()).unwrap();
    std::fs::create_dir_all(&generation).unwrap();
    std::fs::write(generation.join("dockhand-default.service"), &theirs).unwrap();
    std::fs::write(&unit, &theirs).unwrap();
    std::fs::set_permissions(&unit, std::fs::Permissions::from_mode(0o444)).unwrap();
    sb.take_calls();
    for verb in ["install", "uninstall"] {
        let out = sb.run(&["service", verb, "--config", c]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{verb}: {err}");
        assert!(err.contains("managed by home-manager"), "{err}");
        assert_eq!(std::fs::read_to_string(&unit).unwrap(), theirs);
    }
    assert_eq!(sb.take_calls(), Vec::<String>::new(), "nothing touched");
    let out = sb.run(&["service", "status", "--config", c]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("managed by home-manager, matches its generation"),
        "{text}"
    );
}
