//! The launchd user agent (macOS): `~/Library/LaunchAgents/<label>.plist`,
//! loaded with the modern `launchctl bootstrap` / `bootout` verbs in the
//! `gui/$UID` domain (never the deprecated `load` / `unload`, which fail
//! with "Input/output error" on current macOS).
//!
//! Key choices of the plist (see `render`):
//! - `ProgramArguments`: the absolute dockhand binary, `run --profile P`,
//!   and `--config C` when a non-default config is used, so the agent reads
//!   the same config as the shell that installed it.
//! - `RunAtLoad` true: start at login.
//! - `KeepAlive = { SuccessfulExit = false; Crashed = true; }`: dockhand is
//!   the job's process and supervises the engine itself (backoff, give-up),
//!   so launchd only restarts dockhand when dockhand itself fails or
//!   crashes; a clean exit (a deliberate stop) stays stopped.
//! - `ThrottleInterval` 30: at most one respawn every 30 s, so a dockhand
//!   that keeps failing can never cause a restart storm (colima #1490).
//! - `AbandonProcessGroup` true: when the job's main process exits,
//!   launchd kills what is left in its process group (launchd.plist(5)).
//!   Nothing dockhand starts stays there: engines and helper commands get
//!   a group of their own (`process_group(0)`), and Lima's host agent calls
//!   Setpgid. So what the key guards is the rule itself: launchd never
//!   kills anything when dockhand exits, dockhand alone decides what to
//!   stop (a handed-over engine on restart; everything on a stop).
//! - `ExitTimeOut` = stop_timeout + 15 s: dockhand stops the engine within
//!   stop_timeout after SIGTERM; the margin lets it finish before SIGKILL.
//!   Never 0, which launchd reads as "wait forever" and stalls logout.
//! - `ProcessType` Standard: the default class (unset means Standard,
//!   lightly resource-limited; launchd.plist(5)), written out so the choice
//!   is visible. `Background` would throttle the CPU and I/O of the job
//!   and what it spawns, the VM colima starts included, and docker builds
//!   would crawl; `Interactive` is for GUI apps and would put the VM ahead
//!   of the user's foreground work.
//! - `EnvironmentVariables`: launchd gives jobs a bare PATH, so PATH is the
//!   directories where colima, limactl, docker and qemu were found at
//!   install time, then nix's and Homebrew's profile directories and the
//!   system's; `HOME`; `COLIMA_HOME`, `LIMA_HOME`, `DOCKER_CONFIG` when set
//!   at install time; `DOCKHAND_SUPERVISED_BY=launchd`, so that an error a
//!   retry can't fix exits 0 instead of being respawned forever
//!   (`service::run_failed`).
//! - `StandardOutPath` / `StandardErrorPath`: `<log>.launchd.log` next to
//!   the profile's log; dockhand writes its own rotated log, this file only
//!   catches what happens before it opens it (and panics). launchd only
//!   appends to it, so dockhand bounds it at each start ([`crate::logging::bound_launchd_log`]).

use std::path::{Path, PathBuf};

use plist::{Dictionary, Value};

use std::time::{Duration, Instant};

use super::files::{self, FileState};
use super::report;
use super::tool::Tool;
use super::{Inputs, ceil_secs};
use crate::config::Profile;
use crate::error::{Error, Result};
pub use crate::logging::{LOG_KEEP, LOG_LIMIT, launchd_log};

/// Seconds added to stop_timeout for `ExitTimeOut`.
pub const EXIT_TIMEOUT_MARGIN: u64 = 15;
/// launchd's minimum seconds between two spawns of the job.
pub const THROTTLE_INTERVAL: u64 = 30;

pub fn plist_path(home: &Path, label: &str) -> PathBuf {
    home.join("Library/LaunchAgents")
        .join(format!("{label}.plist"))
}

/// The agent's plist (XML), ending with a newline.
pub fn render(i: &Inputs) -> String {
    let s = |v: &str| Value::String(v.to_string());
    let p = |v: &Path| Value::String(v.to_string_lossy().into_owned());
    let mut d = Dictionary::new();
    d.insert("Label".into(), s(&i.label));
    let mut args = vec![p(&i.binary)];
    args.extend(i.run_args().into_iter().map(Value::String));
    d.insert("ProgramArguments".into(), Value::Array(args));
    d.insert("RunAtLoad".into(), Value::Boolean(true));
    // Restart dockhand only when it fails or crashes, never after a clean
    // exit: dockhand does its own engine restarts with backoff.
    let mut keep_alive = Dictionary::new();
    keep_alive.insert("SuccessfulExit".into(), Value::Boolean(false));
    keep_alive.insert("Crashed".into(), Value::Boolean(true));
    d.insert("KeepAlive".into(), Value::Dictionary(keep_alive));
    d.insert(
        "ThrottleInterval".into(),
        Value::Integer(THROTTLE_INTERVAL.into()),
    );
    // Keep the VM (in dockhand's process group) alive if dockhand dies; the
    // restarted dockhand adopts it.
    d.insert("AbandonProcessGroup".into(), Value::Boolean(true));
    // Finite and never 0 (0 = wait forever, stalls logout and shutdown).
    let exit_timeout = ceil_secs(i.stop_timeout) + EXIT_TIMEOUT_MARGIN;
    d.insert("ExitTimeOut".into(), Value::Integer(exit_timeout.into()));
    // Standard, not Background: Background throttles the CPU and I/O of the
    // VM that colima spawns, and docker builds would crawl.
    d.insert("ProcessType".into(), s("Standard"));
    let mut env = Dictionary::new();
    env.insert("PATH".into(), s(&i.path_var()));
    env.insert(crate::logging::SUPERVISED_BY_ENV.into(), s("launchd"));
    env.insert("HOME".into(), p(&i.home));
    for (k, v) in [
        ("COLIMA_HOME", &i.colima_home),
        ("LIMA_HOME", &i.lima_home),
        ("DOCKER_CONFIG", &i.docker_config),
        ("XDG_CONFIG_HOME", &i.xdg_config_home),
        ("XDG_STATE_HOME", &i.xdg_state_home),
    ] {
        if let Some(v) = v {
            env.insert(k.into(), p(v));
        }
    }
    d.insert("EnvironmentVariables".into(), Value::Dictionary(env));
    let log = launchd_log(&i.log_file);
    d.insert("StandardOutPath".into(), p(&log));
    d.insert("StandardErrorPath".into(), p(&log));
    super::activation::launchd_sockets(i, &mut d);

    let mut buf = Vec::new();
    Value::Dictionary(d)
        .to_writer_xml(&mut buf)
        .expect("writing a plist to memory cannot fail");
    let mut out = String::from_utf8(buf).expect("the plist writer emits UTF-8");
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// A fatal error of a launchd-run supervisor that exited before it could
/// record it in state.json (bad config, unsafe state dir), for `status`:
/// the launchd log and its last message, when the log was written after
/// `state.json` (`state_mtime`, None when there is none).
pub fn fatal_note(
    log_file: &Path,
    state_mtime: Option<std::time::SystemTime>,
) -> Option<(PathBuf, String)> {
    let log = launchd_log(log_file);
    let written = std::fs::symlink_metadata(&log).ok()?.modified().ok()?;
    if state_mtime.is_some_and(|t| t >= written) {
        return None;
    }
    last_message(&log).map(|m| (log, m))
}

/// The last `dockhand: ...` line of `<log>.launchd.log` (its last 64 KiB).
fn last_message(log: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(log)
        .ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(LOG_KEEP))).ok()?;
    let mut buf = Vec::new();
    f.take(LOG_KEEP).read_to_end(&mut buf).ok()?;
    String::from_utf8_lossy(&buf)
        .lines()
        .rev()
        .find(|l| l.starts_with("dockhand: "))
        .map(|l| l.trim_start_matches("dockhand: ").to_string())
}

fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// How long `bootstrap` is retried while launchd still drains the job
/// that `bootout` unloaded.
pub const BOOTSTRAP_RETRY: Duration = Duration::from_secs(30);
/// Seconds added to ExitTimeOut when waiting for a job to be gone.
pub const GONE_MARGIN: u64 = 5;

/// `launchctl bootout gui/$UID/<label>`, where "not loaded" is fine, then
/// wait until the job is gone. Returns whether something was booted out.
///
/// `bootout` is asynchronous: it may return 0, or 36 (EINPROGRESS,
/// "Operation now in progress"), while launchd still stops the job, and a
/// `bootstrap` of the label then fails with 5 for seconds (launchctl(1);
/// the platform notes' user reports). `print` exits 113 once it is gone.
fn bootout(tool: &Tool, target: &str, i: &Inputs) -> Result<bool> {
    let args = ["bootout", target];
    let out = tool.output(&args)?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    // 3 = ESRCH "No such process", 113 = "Could not find specified service".
    let not_loaded = matches!(out.status.code(), Some(3) | Some(113))
        || text.contains("No such process")
        || text.contains("Could not find");
    if not_loaded {
        return Ok(false);
    }
    if !out.status.success() && out.status.code() != Some(36) {
        return Err(tool.failure(&args, &out, ""));
    }
    wait_gone(tool, target, i)?;
    Ok(true)
}

/// Poll `launchctl print` until it exits 113, bounded by ExitTimeOut (the
/// longest launchd waits before SIGKILL) plus a margin.
fn wait_gone(tool: &Tool, target: &str, i: &Inputs) -> Result<()> {
    let secs = ceil_secs(i.stop_timeout) + EXIT_TIMEOUT_MARGIN + GONE_MARGIN;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut said = false;
    loop {
        let out = tool.output(&["print", target])?;
        if out.status.code() == Some(113) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::ServiceManager(format!(
                "launchd still lists {target} {secs} s after `launchctl bootout`: check `launchctl print {target}`, then run the command again"
            )));
        }
        if !said {
            println!("waiting for launchd to finish stopping {target}");
            said = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `bootstrap`, retried on 5 (EIO) and 37 (EALREADY) for
/// [`BOOTSTRAP_RETRY`]: what launchd answers while a booted-out job with
/// the same label still drains.
fn bootstrap(tool: &Tool, domain: &str, plist: &Path) -> Result<()> {
    let path = plist.to_string_lossy();
    let args = ["bootstrap", domain, path.as_ref()];
    let deadline = Instant::now() + BOOTSTRAP_RETRY;
    let mut said = false;
    loop {
        let out = tool.output(&args)?;
        if out.status.success() {
            return Ok(());
        }
        let retryable = matches!(out.status.code(), Some(5 | 37));
        if !retryable || Instant::now() >= deadline {
            return Err(tool.failure(
                &args,
                &out,
                &format!(
                    "; is a job with this label still loaded from another plist (`launchctl print {domain}/<label>`), or is nobody logged in at the console (gui/<uid> exists only then)?"
                ),
            ));
        }
        if !said {
            println!(
                "bootstrap: launchd answers {} (a job with this label is still draining): retrying for up to {} s",
                out.status.code().unwrap_or(0),
                BOOTSTRAP_RETRY.as_secs()
            );
            said = true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn load(tool: &Tool, i: &Inputs, path: &Path) -> Result<()> {
    let domain = format!("gui/{}", uid());
    let target = format!("{domain}/{}", i.label);
    // launchd doesn't create the directory of StandardOutPath.
    let log = launchd_log(&i.log_file);
    if let Some(dir) = log.parent() {
        crate::state::private_dir(dir, "log directory")?;
    }
    tool.run(&["enable", &target])?;
    bootstrap(tool, &domain, path)?;
    println!("loaded {target}; `dockhand service status` shows its progress");
    Ok(())
}

/// Load the plist at `path` as it is (one nix manages).
pub fn load_existing(i: &Inputs, path: &Path) -> Result<()> {
    load(&Tool::launchctl()?, i, path)
}

pub fn install(i: &Inputs, path: &Path, profile: &Profile) -> Result<()> {
    let tool = Tool::launchctl()?;
    let content = render(i);
    let target = format!("gui/{}/{}", uid(), i.label);
    match files::file_state(path, &content)? {
        FileState::Same => {
            files::fix_mode(path)?;
            // Nothing to change; load it only if it isn't (for example
            // after a failed bootstrap), without restarting a running job.
            if tool.output(&["print", &target])?.status.success() {
                println!("unchanged: {} (loaded as {target})", path.display());
            } else {
                println!("unchanged: {} (was not loaded)", path.display());
                load(&tool, i, path)?;
            }
        }
        state => {
            files::write_atomic(path, &content)?;
            println!(
                "{} {}",
                if state == FileState::Missing {
                    "installed"
                } else {
                    "updated"
                },
                path.display()
            );
            // Replace an older copy (or a job of another plist with the
            // same label, such as the recipe dockhand replaces); our own
            // supervisor hands a healthy engine over to the new one.
            if state == FileState::Different {
                crate::supervisor::handoff::request(profile, true)?;
            }
            if bootout(&tool, &target, i)? {
                println!("unloaded the previous {target}");
            }
            load(&tool, i, path)?;
        }
    }
    Ok(())
}

pub fn uninstall(i: &Inputs, path: &Path) -> Result<()> {
    let tool = Tool::launchctl()?;
    // Refuse a symlink before anything is stopped.
    let state = files::file_state(path, "")?;
    let target = format!("gui/{}/{}", uid(), i.label);
    // bootout sends SIGTERM and waits up to ExitTimeOut: dockhand stops the
    // engine gracefully; we wait until launchd has let go of the label.
    if bootout(&tool, &target, i)? {
        println!("unloaded {target}");
    }
    if state != FileState::Missing && files::remove_file(path)? {
        println!("removed {}", path.display());
    } else {
        println!("not installed: {} does not exist", path.display());
    }
    Ok(())
}

/// `dockhand down --service`: `bootout` (SIGTERM: the supervisor stops the
/// engine), the plist kept: launchd loads it again at the next login, and
/// `dockhand up` (`bootstrap`) now.
pub fn unload(i: &Inputs, path: &Path) -> Result<()> {
    let tool = Tool::launchctl()?;
    let target = format!("gui/{}/{}", uid(), i.label);
    if bootout(&tool, &target, i)? {
        println!("unloaded {target}");
    } else {
        println!("{target} was not loaded");
    }
    if path.exists() {
        println!(
            "{} kept: launchd loads it again at the next login; `dockhand up` loads it now",
            path.display()
        );
    } else {
        println!("not installed: {} does not exist", path.display());
    }
    Ok(())
}

/// Stop the running supervisor with SIGTERM (`launchctl kill`, not
/// `kickstart -k`, which is reported to SIGKILL the job: it could die in
/// the middle of `colima start`), wait until it has exited (it exits 0, so
/// `KeepAlive = { SuccessfulExit = false; }` doesn't respawn it), then
/// `kickstart`. The engine is handed over unless `engine`.
pub fn restart(i: &Inputs, path: &Path, profile: &Profile, engine: bool) -> Result<()> {
    let tool = Tool::launchctl()?;
    if !path.exists() {
        return Err(files::not_installed(path, &i.profile));
    }
    let target = format!("gui/{}/{}", uid(), i.label);
    let out = tool.output(&["print", &target])?;
    if out.status.code() == Some(113) {
        return Err(Error::ServiceManager(format!(
            "{target} is not loaded: run `dockhand service install --profile {}`",
            i.profile
        )));
    }
    let info = parse_print(&String::from_utf8_lossy(&out.stdout));
    if info.state.as_deref() == Some("running") {
        crate::supervisor::handoff::request(profile, !engine)?;
        tool.run(&["kill", "SIGTERM", &target])?;
        println!("sent SIGTERM to {target}; waiting for it to exit");
        wait_stopped(&tool, &target, info.pid.as_deref(), i)?;
    }
    tool.run(&["kickstart", &target])?;
    println!(
        "restarted {target} ({}); `dockhand service status` shows its progress",
        if engine {
            "the engine too"
        } else {
            "a healthy engine is adopted"
        }
    );
    Ok(())
}

/// Until `print` no longer shows `old_pid` running, bounded by ExitTimeOut
/// plus a margin.
fn wait_stopped(tool: &Tool, target: &str, old_pid: Option<&str>, i: &Inputs) -> Result<()> {
    let secs = ceil_secs(i.stop_timeout) + EXIT_TIMEOUT_MARGIN + GONE_MARGIN;
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let out = tool.output(&["print", target])?;
        let info = parse_print(&String::from_utf8_lossy(&out.stdout));
        let running = info.state.as_deref() == Some("running") && info.pid.as_deref() == old_pid;
        if !out.status.success() || !running {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::ServiceManager(format!(
                "{target} still runs {secs} s after SIGTERM: see its log and `launchctl print {target}`"
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The interesting fields of `launchctl print gui/$UID/<label>`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PrintInfo {
    pub state: Option<String>,
    pub pid: Option<String>,
    pub last_exit_code: Option<String>,
    /// Replaces `last exit code` after a death by signal
    /// (`last terminating signal = Killed: 9`; `print`'s output "is NOT
    /// API" per launchctl(1); the wording is from the platform notes).
    pub last_signal: Option<String>,
}

/// Parse `state = running`, `pid = 123`, `last exit code = 0` (the first of
/// each: nested blocks come later in the output).
pub fn parse_print(text: &str) -> PrintInfo {
    let mut info = PrintInfo::default();
    for line in text.lines() {
        let Some((k, v)) = line.trim().split_once(" = ") else {
            continue;
        };
        let slot = match k {
            "state" => &mut info.state,
            "pid" => &mut info.pid,
            "last exit code" => &mut info.last_exit_code,
            "last terminating signal" => &mut info.last_signal,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(v.trim().to_string());
        }
    }
    info
}

/// What launchd says of the agent: `print` finds it, and it runs.
pub(crate) fn job(label: &str) -> Result<super::Job> {
    let out = Tool::launchctl()?.output(&["print", &format!("gui/{}/{label}", uid())])?;
    let info = parse_print(&String::from_utf8_lossy(&out.stdout));
    Ok(super::Job {
        known: out.status.success(),
        running: out.status.success() && info.state.as_deref() == Some("running"),
    })
}

pub fn status(i: &Inputs, path: &Path, profile: &Profile) -> Result<u8> {
    let tool = Tool::launchctl()?;
    let target = format!("gui/{}/{}", uid(), i.label);
    let mut lines = vec![("service".to_string(), format!("launchd agent {target}"))];
    let installed = report::describe_file(path, &render(i), &mut lines)?;
    let out = tool.output(&["print", &target])?;
    let mut running = false;
    if out.status.success() {
        let info = parse_print(&String::from_utf8_lossy(&out.stdout));
        running = info.state.as_deref() == Some("running");
        lines.push(("loaded".into(), "yes".into()));
        lines.push((
            "state".into(),
            info.state.unwrap_or_else(|| "unknown".into()),
        ));
        lines.push(("pid".into(), info.pid.unwrap_or_else(|| "none".into())));
        let last = match (info.last_signal, info.last_exit_code) {
            (Some(sig), _) => format!("killed by a signal ({sig})"),
            (None, Some(code)) => format!("exit code {code}"),
            (None, None) => "none".into(),
        };
        lines.push(("last exit".into(), last));
    } else {
        lines.push(("loaded".into(), "no".into()));
    }
    if !running && let Some(m) = last_message(&launchd_log(&i.log_file)) {
        // An error a retry can't fix exits 0 under launchd (no respawn
        // loop): its reason is only here.
        lines.push(("last message".into(), m));
    }
    lines.extend(report::supervisor_lines(profile));
    report::print_lines(&lines);
    Ok(if installed && running { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::inputs::tests::inputs;
    use std::time::Duration;

    fn get<'a>(d: &'a Dictionary, k: &str) -> &'a Value {
        d.get(k).unwrap_or_else(|| panic!("no {k}"))
    }

    #[test]
    fn renders_contract_keys() {
        let mut i = inputs();
        i.stop_timeout = Duration::from_millis(2500);
        i.config = Some("/etc/d.toml".into());
        i.colima_home = Some("/c".into());
        let text = render(&i);
        let v = Value::from_reader_xml(text.as_bytes()).unwrap();
        let d = v.as_dictionary().unwrap();
        assert_eq!(get(d, "Label").as_string(), Some("local.docker"));
        let args: Vec<_> = get(d, "ProgramArguments")
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_string().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "/opt/dockhand/bin/dockhand",
                "run",
                "--profile",
                "default",
                "--config",
                "/etc/d.toml"
            ]
        );
        assert_eq!(get(d, "ExitTimeOut").as_unsigned_integer(), Some(18));
        assert_eq!(get(d, "ThrottleInterval").as_unsigned_integer(), Some(30));
        assert_eq!(get(d, "ProcessType").as_string(), Some("Standard"));
        let env = get(d, "EnvironmentVariables").as_dictionary().unwrap();
        assert_eq!(get(env, "COLIMA_HOME").as_string(), Some("/c"));
        assert!(env.get("LIMA_HOME").is_none());
        assert_eq!(
            get(d, "StandardOutPath").as_string(),
            Some("/Users/u/Library/Logs/dockhand/default.launchd.log")
        );
    }

    #[test]
    fn parses_launchctl_print() {
        let text = "gui/501/local.docker = {\n\tactive count = 1\n\tpath = /x.plist\n\tstate = running\n\n\tprogram = /bin/dockhand\n\tpid = 4242\n\tlast exit code = (never exited)\n\tendpoints = {\n\t\tstate = waiting\n\t}\n}\n";
        assert_eq!(
            parse_print(text),
            PrintInfo {
                state: Some("running".into()),
                pid: Some("4242".into()),
                last_exit_code: Some("(never exited)".into()),
                last_signal: None,
            }
        );
    }
}
