//! `dockhand status`: the supervisor's state (asked over its control
//! socket when it runs, else read from `state.json`) plus a probe of our
//! own, so it tells the truth even when no supervisor runs.

use std::time::Duration;

use serde::Serialize;

use crate::config::Profile;
use crate::error::Result;
use crate::probe::{self, Ping};
use crate::state::{self, Phase, State};

#[derive(Serialize)]
struct Report {
    #[serde(flatten)]
    state: State,
    supervisor_running: bool,
    socket_answers: bool,
    /// Where the state came from: "control_socket" or "state.json".
    source: &'static str,
    /// A supervisor holds the profile but does not answer: why, and what
    /// to do (the state shown is then the last one it recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    not_answering: Option<String>,
    /// Why state.json could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    state_error: Option<String>,
    /// Other agents managing the same Colima instance, and how to disable them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    other_agents: Vec<String>,
    /// No supervisor runs and the launchd agent's log says why after
    /// state.json was last written (a fatal error it could not record):
    /// `{log, message}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    launchd_log: Option<LaunchdNote>,
    /// `engine = "ssh"`: host, connected since, last disconnect.
    #[serde(skip_serializing_if = "Option::is_none")]
    ssh: Option<crate::engine::ssh::Record>,
}

#[derive(Serialize)]
struct LaunchdNote {
    log: std::path::PathBuf,
    message: String,
}

/// Without a supervisor: the fatal error in the launchd agent's log, when
/// it is newer than state.json and not the error recorded there.
fn launchd_note(p: &Profile, state: &State) -> Option<LaunchdNote> {
    let mtime = std::fs::symlink_metadata(p.state_path())
        .and_then(|m| m.modified())
        .ok();
    let (log, message) = crate::service::launchd::fatal_note(&p.log_file, mtime)?;
    if state
        .last_error
        .as_deref()
        .is_some_and(|e| e.starts_with(&message))
    {
        return None;
    }
    Some(LaunchdNote { log, message })
}

pub fn run(p: &Profile, json: bool) -> Result<u8> {
    let (report, ping, holder) = gather(p, json);
    if report.not_answering.is_some() {
        if json {
            crate::ui::print_json(&report);
        } else {
            print_text(p, &report, &ping, holder.as_deref());
        }
        return Ok(crate::error::Error::NotAnswering(String::new()).exit_code());
    }
    // When the state can't be read, the probe decides.
    let ready = holder.is_some()
        && ping == Ping::Ok
        && matches!(report.state.phase, Phase::Ready | Phase::Unknown);
    if json {
        crate::ui::print_json(&report);
    } else {
        print_text(p, &report, &ping, holder.as_deref());
    }
    Ok(if ready { 0 } else { 1 })
}

/// What `status` reports, the probe's answer, and the supervisor's pid
/// ("unknown" when it holds the state dir but its pid isn't known).
fn gather(p: &Profile, json: bool) -> (Report, Ping, Option<String>) {
    // Who holds the state dir, asked of the kernel (the pid when known).
    let holder = state::supervisor(p);
    // The running supervisor's own answer; its state.json otherwise.
    let (live, silent) = match holder.map(|_| ask(p)) {
        Some(crate::reach::Reach::Answers(_, s)) => (Some(*s), None),
        Some(crate::reach::Reach::Silent(s)) => (None, Some(s.message(p))),
        _ => (None, None),
    };
    let source = if live.is_some() {
        "control_socket"
    } else {
        "state.json"
    };
    let (recorded, state_error) = match live {
        Some(s) => (Some(s), None),
        None => match state::read(p) {
            Ok(s) => (s, None),
            Err(e) => (None, Some(e)),
        },
    };
    // A running supervisor's socket is the one it serves (Colima's
    // directory follows the installed release: engine::colima_version).
    let socket = match (&holder, &recorded) {
        (Some(_), Some(s)) => s.socket.clone(),
        _ => p.socket.clone(),
    };
    let ping = probe::ping_blocking(&socket, p.probe_timeout.min(Duration::from_secs(5)));
    let mut state = shown_state(p, recorded, state_error.is_some());
    // The last supervisor ended without recording a stop (killed) and
    // nothing answers: its engine is gone too (or its watcher stopped
    // it). `ready` would be what was, not what is.
    let running = matches!(
        state.phase,
        Phase::Starting | Phase::Ready | Phase::Unhealthy | Phase::Restarting | Phase::Stopping
    );
    if holder.is_none() && running && ping != Ping::Ok {
        state.phase = Phase::Stopped;
        state.engine_pid = None;
    }
    let launchd_log = holder.is_none().then(|| launchd_note(p, &state)).flatten();
    let report = Report {
        state,
        supervisor_running: holder.is_some(),
        socket_answers: ping == Ping::Ok,
        source,
        not_answering: silent,
        state_error,
        other_agents: other_agents(p, json),
        launchd_log,
        ssh: crate::engine::ssh::Record::of(p),
    };
    let holder = holder.map(|pid| pid.map_or_else(|| "unknown".into(), |p| p.to_string()));
    (report, ping, holder)
}

/// The state to show: the recorded one, its last error bounded whatever
/// the file says. No state.json is `stopped`; one that can't be read
/// (`unreadable`, its reason in state_error) is `unknown`: never a phase
/// made up.
fn shown_state(p: &Profile, recorded: Option<State>, unreadable: bool) -> State {
    let mut state = recorded.unwrap_or_else(|| {
        let phase = match unreadable {
            true => Phase::Unknown,
            false => Phase::Stopped,
        };
        State {
            since: String::new(),
            supervisor_pid: 0,
            ..State::new(&p.name, &p.socket, phase)
        }
    });
    state.last_error = state.last_error.as_deref().map(state::bounded);
    state
}

/// Other agents managing the same Colima instance, each with how to
/// disable it (for the text output, launchctl is also asked which are
/// loaded; not for `json`).
fn other_agents(p: &Profile, json: bool) -> Vec<String> {
    crate::config::Env::from_process()
        .map(|e| crate::service::competitors::find(p, &e.home, !json))
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The supervisor, asked over its control socket.
fn ask(p: &Profile) -> crate::reach::Reach {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    match rt {
        Ok(rt) => rt.block_on(crate::reach::reach(p, crate::reach::PATIENCE)),
        Err(e) => crate::reach::Reach::Silent(crate::reach::Silent {
            pid: None,
            why: format!("cannot start the async runtime to ask it ({e})"),
        }),
    }
}

fn print_text(p: &Profile, r: &Report, ping: &Ping, holder: Option<&str>) {
    let state = &r.state;
    match holder {
        Some(_) if r.not_answering.is_some() => {
            println!(
                "profile {}: {}",
                p.name,
                r.not_answering.as_deref().unwrap_or_default()
            );
            println!("last recorded (state.json): {}", state.phase);
        }
        Some(pid) => {
            let since = if state.since.is_empty() {
                String::new()
            } else {
                format!(" since {}", state.since)
            };
            println!(
                "profile {}: {}{since} (supervisor pid {pid})",
                p.name, state.phase
            );
            if let Some(h) = state.held {
                println!("engine: {h}");
            }
            if state.adopted {
                println!("engine: adopted (it was running before this supervisor started)");
            }
            if let Some(e) = state.engine_pid {
                println!("engine pid: {e}");
            }
        }
        None => print_no_supervisor(p, r),
    }
    if let Some(e) = &r.state_error {
        println!("state: unreadable ({e})");
    }
    println!("socket {}: {ping}", state.socket.display());
    for line in crate::engine::ssh::status_lines(p) {
        println!("{line}");
    }
    for line in crate::proxy::status_lines(p, state, holder.is_some()) {
        println!("{line}");
    }
    println!("restarts: {}", state.restarts);
    if let Some(e) = &state.last_error
        && state.phase != Phase::Ready
    {
        println!("last error: {e}");
    }
    if let Some(t) = &state.dockhand_trouble {
        println!("warning: {t}");
    }
    for a in &r.other_agents {
        println!("warning: {a}");
    }
}

/// The first lines without a supervisor: `failed` when the last one ended
/// on a fatal error (recorded in state.json, or only in the launchd log).
fn print_no_supervisor(p: &Profile, r: &Report) {
    let state = &r.state;
    let name = &p.name;
    if state.phase == Phase::Failed {
        let since = if state.since.is_empty() {
            String::new()
        } else {
            format!(" since {}", state.since)
        };
        println!(
            "profile {name}: failed{since} (no supervisor running: fix the cause below, then `dockhand service restart --profile {name}` or `dockhand run --profile {name}`)"
        );
    } else {
        println!(
            "profile {name}: no supervisor running (start one with `dockhand run --profile {name}` or `dockhand service install`)"
        );
    }
    if let Some(n) = &r.launchd_log {
        println!(
            "service log {}: dockhand exited: {}",
            n.log.display(),
            n.message
        );
    }
}
