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
//! - `AbandonProcessGroup` true: launchd kills the job's whole process group
//!   when the main process exits; the VM that colima spawns is in it, so a
//!   dockhand crash would take the engine down. With it, the VM survives and
//!   the restarted dockhand adopts the running engine.
//! - `ExitTimeOut` = stop_timeout + 15 s: dockhand stops the engine within
//!   stop_timeout after SIGTERM; the margin lets it finish before SIGKILL.
//!   Never 0, which launchd reads as "wait forever" and stalls logout.
//! - `ProcessType` Standard: `Background` would throttle the CPU and I/O of
//!   everything the job spawns, including the VM colima starts, and docker
//!   builds would crawl; `Interactive` is for GUI apps.
//! - `EnvironmentVariables`: launchd gives jobs a bare PATH, so PATH is the
//!   directories where colima, limactl, docker and qemu were found at
//!   install time, then nix's and Homebrew's profile directories and the
//!   system's; `HOME`; `COLIMA_HOME`, `LIMA_HOME`, `DOCKER_CONFIG` when set
//!   at install time.
//! - `StandardOutPath` / `StandardErrorPath`: `<log>.launchd.log` next to
//!   the profile's log; dockhand writes its own rotated log, this file only
//!   catches what happens before it opens it (and panics).

use std::path::{Path, PathBuf};

use plist::{Dictionary, Value};

use super::{FileState, Inputs, Tool, ceil_secs};
use crate::config::Profile;
use crate::error::Result;

/// Seconds added to stop_timeout for `ExitTimeOut`.
pub const EXIT_TIMEOUT_MARGIN: u64 = 15;
/// launchd's minimum seconds between two spawns of the job.
pub const THROTTLE_INTERVAL: u64 = 30;

pub fn plist_path(home: &Path, label: &str) -> PathBuf {
    home.join("Library/LaunchAgents")
        .join(format!("{label}.plist"))
}

/// `<log>.launchd.log`: a `.log` suffix is replaced, otherwise appended.
pub fn launchd_log(log_file: &Path) -> PathBuf {
    let s = log_file.to_string_lossy();
    let base = s.strip_suffix(".log").unwrap_or(&s);
    PathBuf::from(format!("{base}.launchd.log"))
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

fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

fn launchctl() -> Result<Tool> {
    Tool::locate(
        "launchctl",
        &[],
        "dockhand service needs launchd's launchctl (macOS) to manage the agent",
    )
}

/// `launchctl bootout gui/$UID/<label>`, where "not loaded" is fine.
/// Returns whether something was booted out.
fn bootout(tool: &Tool, target: &str) -> Result<bool> {
    let args = ["bootout", target];
    let out = tool.output(&args)?;
    if out.status.success() {
        return Ok(true);
    }
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
        Ok(false)
    } else {
        Err(tool.failure(&args, &out, ""))
    }
}

fn bootstrap(tool: &Tool, domain: &str, plist: &Path) -> Result<()> {
    let path = plist.to_string_lossy();
    let args = ["bootstrap", domain, path.as_ref()];
    let out = tool.output(&args)?;
    if out.status.success() {
        return Ok(());
    }
    Err(tool.failure(
        &args,
        &out,
        &format!(
            "; is a job with this label still loaded from another plist (`launchctl print {domain}/<label>`), or is nobody logged in at the console (gui/<uid> exists only then)?"
        ),
    ))
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
    println!("loaded {target}");
    Ok(())
}

pub fn install(i: &Inputs, path: &Path) -> Result<()> {
    let tool = launchctl()?;
    let content = render(i);
    let target = format!("gui/{}/{}", uid(), i.label);
    match super::file_state(path, &content)? {
        FileState::Same => {
            super::fix_mode(path)?;
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
            super::write_atomic(path, &content)?;
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
            // same label, such as the recipe dockhand replaces).
            if bootout(&tool, &target)? {
                println!("unloaded the previous {target}");
            }
            load(&tool, i, path)?;
        }
    }
    Ok(())
}

pub fn uninstall(i: &Inputs, path: &Path) -> Result<()> {
    let tool = launchctl()?;
    // Refuse a symlink before anything is stopped.
    let state = super::file_state(path, "")?;
    let target = format!("gui/{}/{}", uid(), i.label);
    // bootout sends SIGTERM and waits up to ExitTimeOut: dockhand stops the
    // engine gracefully.
    if bootout(&tool, &target)? {
        println!("unloaded {target}");
    }
    if state != FileState::Missing && super::remove_file(path)? {
        println!("removed {}", path.display());
    } else {
        println!("not installed: {} does not exist", path.display());
    }
    Ok(())
}

pub fn restart(i: &Inputs, path: &Path) -> Result<()> {
    let tool = launchctl()?;
    if !path.exists() {
        return Err(super::not_installed(path, &i.profile));
    }
    let target = format!("gui/{}/{}", uid(), i.label);
    tool.run(&["kickstart", "-k", &target])?;
    println!("restarted {target}");
    Ok(())
}

/// The interesting fields of `launchctl print gui/$UID/<label>`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PrintInfo {
    pub state: Option<String>,
    pub pid: Option<String>,
    pub last_exit_code: Option<String>,
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
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(v.trim().to_string());
        }
    }
    info
}

pub fn status(i: &Inputs, path: &Path, profile: &Profile) -> Result<u8> {
    let tool = launchctl()?;
    let target = format!("gui/{}/{}", uid(), i.label);
    let mut lines = vec![("service".to_string(), format!("launchd agent {target}"))];
    let installed = super::describe_file(path, &render(i), &mut lines)?;
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
        lines.push((
            "last exit code".into(),
            info.last_exit_code.unwrap_or_else(|| "none".into()),
        ));
    } else {
        lines.push(("loaded".into(), "no".into()));
    }
    lines.extend(super::supervisor_lines(profile));
    super::print_lines(&lines);
    Ok(if installed && running { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::tests::inputs;
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
    fn launchd_log_names() {
        assert_eq!(
            launchd_log(Path::new("/a/b.log")),
            Path::new("/a/b.launchd.log")
        );
        assert_eq!(
            launchd_log(Path::new("/a/b")),
            Path::new("/a/b.launchd.log")
        );
        assert_eq!(
            launchd_log(Path::new("/a/b.txt")),
            Path::new("/a/b.txt.launchd.log")
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
            }
        );
    }
}
