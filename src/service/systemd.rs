//! The systemd user unit (Linux):
//! `$XDG_CONFIG_HOME/systemd/user/dockhand-<profile>.service`, managed with
//! `systemctl --user`.
//!
//! Key choices of the unit (see `render`):
//! - `Type=notify`, `NotifyAccess=main`: dockhand sends `STATUS=<phase>:
//!   <reason>` on every transition and `READY=1` once the first start has
//!   an outcome: the engine answers, or the start failed and dockhand goes
//!   on retrying with its own backoff (`STATUS=failed: ...`). systemd thus
//!   never times the start out and never restarts dockhand over its
//!   backoff; `service install` waits for that outcome itself (bounded by
//!   start_timeout + 15 s) and reports a failed start with its reason. A
//!   unit that needs a *working* docker orders itself after this one and
//!   waits on the socket (`docker info`, or a dockhand status poll).
//!   `TimeoutStartSec` = start_timeout + 30 s is only a safety net.
//! - `Restart=on-failure`, `RestartSec=5s`: restart dockhand when it fails
//!   or crashes; it restarts the engine itself, with backoff.
//!   `RestartPreventExitStatus=2 3 4 6`: not what a retry can't fix; the
//!   reason is in `StatusText` (`STATUS=failed: ...` sent before exiting).
//! - `TimeoutStopSec` = stop_timeout + 15 s: dockhand stops the engine
//!   within stop_timeout after SIGTERM; the margin lets it finish.
//! - `KillMode=process`: systemd signals only dockhand, which decides:
//!   on a stop (`systemctl stop`, logout) it stops the engine within
//!   stop_timeout, leaving nothing in the cgroup; on a restart
//!   (`dockhand service restart`, `systemctl --user restart`, home-manager's
//!   sd-switch) it leaves a healthy engine to the new dockhand, which
//!   adopts it (`service::handoff`). Kept because every other path also
//!   ends with the engine stopped or adopted: a restart into a config the
//!   successor can't load stops the engine at once (checked before the
//!   handoff); and whenever dockhand ends without stopping its engine (a
//!   handoff nobody takes, `prepare-restart` then a real stop, SIGKILL and
//!   then `systemctl --user stop` during `RestartSec`, which with this
//!   mode signals nothing), the engine's watcher (`crate::engine::watcher`, left in
//!   the cgroup) stops it once no supervisor has claimed it for 20 s.
//!   `mixed` or `control-group` would kill the engine on every restart.
//! - `Environment=PATH=...`: the directories where colima, limactl, docker
//!   and qemu were found at install time, then nix's and Homebrew's profile
//!   directories and the system's.
//! - `WantedBy=default.target`: start with the user's session manager.

use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use super::files::{self, FileState};
use super::report;
use super::tool::Tool;
use super::{Inputs, ceil_secs};
use crate::config::Profile;
use crate::error::{Error, Result};

/// Seconds added to stop_timeout for `TimeoutStopSec`.
pub const STOP_TIMEOUT_MARGIN: u64 = 15;
/// Seconds added to start_timeout for `TimeoutStartSec`.
pub const START_TIMEOUT_MARGIN: u64 = 30;

pub fn unit_name(profile: &str) -> String {
    format!("dockhand-{profile}.service")
}

pub fn unit_path(config_home: &Path, profile: &str) -> PathBuf {
    config_home.join("systemd/user").join(unit_name(profile))
}

/// Quote one word for a unit file setting that is split into words
/// (`ExecStart=`): `%` becomes `%%` (specifiers) and, when `dollar`, `$`
/// becomes `$$` (variable expansion); words with whitespace, quotes,
/// backslashes or `;`, and empty words, are double-quoted with C escapes.
pub fn quote(word: &str, dollar: bool) -> String {
    let mut w = word.replace('%', "%%");
    if dollar {
        w = w.replace('$', "$$");
    }
    let plain = !w.is_empty()
        && !w
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\' | ';'));
    if plain {
        return w;
    }
    let mut q = String::with_capacity(w.len() + 2);
    q.push('"');
    for c in w.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            '\r' => q.push_str("\\r"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// The unit file.
pub fn render(i: &Inputs) -> String {
    let mut exec = vec![quote(&i.binary.to_string_lossy(), true)];
    exec.extend(i.run_args().iter().map(|a| quote(a, true)));
    let start = ceil_secs(i.start_timeout) + START_TIMEOUT_MARGIN;
    let stop = ceil_secs(i.stop_timeout) + STOP_TIMEOUT_MARGIN;
    let mut env = vec![quote(&format!("PATH={}", i.path_var()), false)];
    for (k, v) in [
        ("XDG_CONFIG_HOME", &i.xdg_config_home),
        ("XDG_STATE_HOME", &i.xdg_state_home),
    ] {
        if let Some(v) = v {
            env.push(quote(&format!("{k}={}", v.display()), false));
        }
    }
    format!(
        "\
# Written by `dockhand service install`; see `dockhand service print --platform systemd`.
[Unit]
Description=dockhand: Docker engine supervisor (profile {profile})

[Service]
# dockhand sends STATUS=<phase>: <reason>, READY=1 once the first start has an
# outcome (ready, or failed and retrying with backoff), STOPPING=1 on stop.
Type=notify
NotifyAccess=main
ExecStart={exec}
Restart=on-failure
RestartSec=5s
# Don't retry what a retry can't fix: bad config (2), another supervisor (3),
# engine missing (4), unsafe or conflicting path (6). `systemctl --user status`
# shows dockhand's one-line reason.
RestartPreventExitStatus=2 3 4 6
TimeoutStartSec={start}s
TimeoutStopSec={stop}s
# Signal only dockhand: on a stop it stops the engine within stop_timeout; on a
# restart it leaves a healthy engine to the new dockhand, which adopts it. An
# engine no dockhand claims within 20 s (a successor that fails, a stop after
# prepare-restart, a stop while systemd waits RestartSec after a crash) is
# stopped by the watcher dockhand leaves next to it.
KillMode=process
Environment={env}

[Install]
WantedBy=default.target
",
        profile = i.profile,
        exec = exec.join(" "),
        env = env.join(" "),
    )
}

/// Parse `Key=Value` lines of `systemctl show`.
pub fn parse_show(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn prop<'a>(props: &'a [(String, String)], key: &str) -> Option<&'a str> {
    props
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Seconds `install` and `restart` wait beyond start_timeout (and
/// stop_timeout) for the supervisor's first outcome.
pub const WAIT_MARGIN: u64 = 15;

/// `systemctl --user` reaches a user manager. Without one (a container, a
/// root shell without a login session) every verb would fail with a bus
/// error: say so, with what to do, as exit 5.
pub(crate) fn user_manager(tool: &Tool) -> Result<()> {
    let out = tool.output(&["is-system-running"])?;
    // A state word (running, degraded, starting, ...) means it answered;
    // "offline" is what systemctl prints when no manager listens (tried:
    // systemd 252 without XDG_RUNTIME_DIR), "unknown" when it can't tell.
    let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !state.is_empty() && state != "offline" && state != "unknown" {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr)
        .trim()
        .replace('\n', "; ");
    let why = match (state.as_str(), stderr.is_empty()) {
        ("", _) => stderr,
        (s, true) => format!("is-system-running: {s}"),
        (s, false) => format!("is-system-running: {s}; {stderr}"),
    };
    Err(Error::ServiceManager(format!(
        "no systemd user manager answers `systemctl --user` ({why}): log in through a session that starts one (systemd-logind), or run `loginctl enable-linger $USER` as root; in a container without systemd, run `dockhand run` from your own init instead"
    )))
}

/// `daemon-reload`, `enable`, then start without waiting for systemd's
/// job: [`wait_outcome`] bounds the wait itself.
fn enable_now(tool: &Tool, unit: &str, i: &Inputs) -> Result<()> {
    tool.run(&["daemon-reload"])?;
    tool.run(&["enable", unit])?;
    tool.run(&["start", "--no-block", unit])?;
    println!("enabled {unit}; starting it");
    wait_outcome(tool, unit, None, ceil_secs(i.start_timeout) + WAIT_MARGIN)
}

/// Wait for the supervisor's first outcome, as its `STATUS=` says
/// (`StatusText`): `ready: ...` is success; `failed: ...` is reported,
/// with the engine's reason, whether dockhand retries (it then goes on
/// with its own backoff) or has exited (a fatal error). `old_pid`: a
/// restart waits for a new main process.
fn wait_outcome(tool: &Tool, unit: &str, old_pid: Option<&str>, secs: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = String::new();
    loop {
        let props = show(
            tool,
            unit,
            "ActiveState,SubState,MainPID,StatusText,ExecMainStatus,Result",
        )?;
        let get = |k: &str| prop(&props, k).unwrap_or("").to_string();
        let (active, text, pid) = (get("ActiveState"), get("StatusText"), get("MainPID"));
        let new_process = old_pid.is_none_or(|old| pid != old && pid != "0");
        if !text.is_empty() {
            last = text.clone();
        }
        if active == "failed" || (active == "inactive" && new_process && !last.is_empty()) {
            return Err(Error::Command {
                command: format!("systemctl --user start {unit}"),
                detail: format!(
                    "dockhand exited with status {} ({}): {}; see `dockhand service status` and `journalctl --user -u {unit}`",
                    get("ExecMainStatus"),
                    get("Result"),
                    if last.is_empty() {
                        "no status sent"
                    } else {
                        &last
                    }
                ),
            });
        }
        if new_process && active == "active" {
            if text.starts_with("ready:") || crate::state::Held::in_status(&text) {
                println!("{unit} is {text}");
                return Ok(());
            }
            if text.starts_with("failed:") {
                return Err(Error::NotReady(format!(
                    "{unit} runs but its engine did not start: {text}; dockhand keeps retrying with backoff (`dockhand service status` shows where it is)"
                )));
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::NotReady(format!(
                "{unit} reported no outcome within {secs} s (last status: {}); see `dockhand service status`",
                if last.is_empty() { "none" } else { &last }
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What systemd says of the unit: loaded and enabled, and running.
pub(crate) fn job(profile: &str) -> Result<super::Job> {
    let out = Tool::systemctl()?.output(&[
        "show",
        &unit_name(profile),
        "-p",
        "LoadState,UnitFileState,ActiveState",
    ])?;
    let props = parse_show(&String::from_utf8_lossy(&out.stdout));
    Ok(super::Job {
        known: prop(&props, "LoadState") == Some("loaded")
            && prop(&props, "UnitFileState") == Some("enabled"),
        running: matches!(
            prop(&props, "ActiveState"),
            Some("active" | "activating" | "reloading")
        ),
    })
}

fn show(tool: &Tool, unit: &str, props: &str) -> Result<Vec<(String, String)>> {
    let out = tool.run(&["show", unit, "-p", props])?;
    Ok(parse_show(&String::from_utf8_lossy(&out.stdout)))
}

pub fn install(i: &Inputs, path: &Path, profile: &Profile) -> Result<()> {
    let tool = Tool::systemctl()?;
    let unit = unit_name(&i.profile);
    let content = render(i);
    let state = files::file_state(path, &content)?;
    user_manager(&tool)?;
    match state {
        FileState::Same => {
            files::fix_mode(path)?;
            // Nothing to change: start and enable it only if it isn't
            // (a failed earlier install), never restart a running unit.
            let props = show(&tool, &unit, "UnitFileState,ActiveState")?;
            let enabled = prop(&props, "UnitFileState") == Some("enabled");
            let up = matches!(
                prop(&props, "ActiveState"),
                Some("active" | "activating" | "reloading")
            );
            if enabled && up {
                println!("unchanged: {} ({unit} enabled and active)", path.display());
            } else {
                println!("unchanged: {} (was not enabled and active)", path.display());
                enable_now(&tool, &unit, i)?;
            }
        }
        FileState::Missing => {
            files::write_atomic(path, &content)?;
            println!("installed {}", path.display());
            enable_now(&tool, &unit, i)?;
        }
        FileState::Different => {
            files::write_atomic(path, &content)?;
            println!("updated {}", path.display());
            tool.run(&["daemon-reload"])?;
            tool.run(&["enable", &unit])?;
            // A new dockhand runs the new definition and adopts a healthy
            // engine (restarting it only if its settings changed).
            restart_unit(&tool, i, profile, true)?;
        }
    }
    Ok(())
}

pub fn uninstall(i: &Inputs, path: &Path) -> Result<()> {
    let tool = Tool::systemctl()?;
    let unit = unit_name(&i.profile);
    let state = files::file_state(path, "")?;
    if let Err(e) = user_manager(&tool) {
        // Nothing can be stopped, but the file we installed still goes.
        if state != FileState::Missing && files::remove_file(path)? {
            println!("removed {}", path.display());
        }
        return Err(e);
    }
    match state {
        FileState::Missing => {
            // A unit removed by hand may still be loaded and running.
            let args = ["stop", unit.as_str()];
            let out = tool.output(&args)?;
            // 5: "Unit ... not loaded".
            if !out.status.success() && out.status.code() != Some(5) {
                return Err(tool.failure(&args, &out, ""));
            }
            println!("not installed: {} does not exist", path.display());
        }
        _ => {
            // Stops it: SIGTERM to dockhand (a `stop` job, not a restart),
            // which stops the engine within stop_timeout.
            tool.run(&["disable", "--now", &unit])?;
            println!("stopped and disabled {unit}");
            files::remove_file(path)?;
            println!("removed {}", path.display());
            tool.run(&["daemon-reload"])?;
        }
    }
    Ok(())
}

/// `systemctl --user restart`, the engine kept (handed over, see
/// `service::handoff`) or not; waits for the new supervisor's outcome.
fn restart_unit(tool: &Tool, i: &Inputs, profile: &Profile, keep_engine: bool) -> Result<()> {
    let unit = unit_name(&i.profile);
    let old = show(tool, &unit, "MainPID")?;
    let old_pid = prop(&old, "MainPID").unwrap_or("0").to_string();
    crate::supervisor::handoff::request(profile, keep_engine)?;
    tool.run(&["restart", "--no-block", &unit])?;
    println!(
        "restarting {unit} ({})",
        if keep_engine {
            "a healthy engine keeps running and is adopted"
        } else {
            "the engine too"
        }
    );
    let secs = ceil_secs(i.stop_timeout) + ceil_secs(i.start_timeout) + WAIT_MARGIN;
    wait_outcome(tool, &unit, Some(&old_pid), secs)
}

pub fn restart(i: &Inputs, path: &Path, profile: &Profile, engine: bool) -> Result<()> {
    let tool = Tool::systemctl()?;
    if !path.exists() {
        return Err(files::not_installed(path, &i.profile));
    }
    user_manager(&tool)?;
    restart_unit(&tool, i, profile, !engine)
}

pub fn status(i: &Inputs, path: &Path, profile: &Profile) -> Result<u8> {
    let tool = Tool::systemctl()?;
    let unit = unit_name(&i.profile);
    let mut lines = vec![("service".to_string(), format!("systemd user unit {unit}"))];
    let installed = report::describe_file(path, &render(i), &mut lines)?;
    user_manager(&tool)?;
    let props = show(
        &tool,
        &unit,
        "ActiveState,SubState,MainPID,ExecMainStatus,LoadState,StatusText",
    )?;
    let get = |k: &str| prop(&props, k).unwrap_or("unknown").to_string();
    let active = prop(&props, "ActiveState") == Some("active");
    lines.push(("loaded".into(), get("LoadState")));
    lines.push((
        "state".into(),
        format!("{} ({})", get("ActiveState"), get("SubState")),
    ));
    let pid = get("MainPID");
    lines.push(("pid".into(), if pid == "0" { "none".into() } else { pid }));
    lines.push(("last exit status".into(), get("ExecMainStatus")));
    if let Some(t) = prop(&props, "StatusText").filter(|t| !t.is_empty()) {
        lines.push(("status text".into(), t.to_string()));
    }
    lines.extend(report::supervisor_lines(profile));
    report::print_lines(&lines);
    Ok(if installed && active { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::inputs::tests::inputs;
    use std::time::Duration;

    #[test]
    fn quoting() {
        assert_eq!(quote("/usr/bin/dockhand", true), "/usr/bin/dockhand");
        assert_eq!(quote("/a b/c", true), "\"/a b/c\"");
        assert_eq!(quote("50%$x", true), "50%%$$x");
        assert_eq!(quote("a\"b\\c", true), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("", true), "\"\"");
        assert_eq!(quote("PATH=/a$b", false), "PATH=/a$b");
        assert_eq!(quote(";", true), "\";\"");
    }

    #[test]
    fn renders_contract_keys() {
        let mut i = inputs();
        i.profile = "work".into();
        i.config = Some("/my configs/d.toml".into());
        i.stop_timeout = Duration::from_secs(5);
        i.start_timeout = Duration::from_secs(60);
        let u = render(&i);
        for line in [
            "Description=dockhand: Docker engine supervisor (profile work)\n",
            "Type=notify\n",
            "NotifyAccess=main\n",
            "ExecStart=/opt/dockhand/bin/dockhand run --profile work --config \"/my configs/d.toml\"\n",
            "Restart=on-failure\n",
            "RestartSec=5s\n",
            "TimeoutStartSec=90s\n",
            "TimeoutStopSec=20s\n",
            "KillMode=process\n",
            "Environment=PATH=/opt/homebrew/bin:/nix/var/tools/bin:/run/current-system/sw/bin:",
            "WantedBy=default.target\n",
        ] {
            assert!(u.contains(line), "missing {line:?} in\n{u}");
        }
    }

    #[test]
    fn parses_show() {
        let p = parse_show("ActiveState=active\nSubState=running\nMainPID=7\n");
        assert_eq!(prop(&p, "MainPID"), Some("7"));
        assert_eq!(prop(&p, "LoadState"), None);
    }
}
