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
    /// Why state.json could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    state_error: Option<String>,
    /// Other agents managing the same Colima instance, and how to disable them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    other_agents: Vec<String>,
}

pub fn run(p: &Profile, json: bool) -> Result<u8> {
    let holder = state::holder_pid(&p.lock_path());
    // The running supervisor's own answer; its state.json otherwise.
    let live = holder.and_then(|_| crate::control_socket::query_state(p, Duration::from_secs(2)));
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
    let ping = probe::ping_blocking(&p.socket, p.probe_timeout.min(Duration::from_secs(5)));
    let state = recorded.unwrap_or(State {
        adopted: false,
        profile: p.name.clone(),
        phase: Phase::Stopped,
        engine_pid: None,
        socket: p.socket.clone(),
        restarts: 0,
        last_error: None,
        since: String::new(),
        supervisor_pid: 0,
        held: None,
        awake: None,
    });
    let ready = holder.is_some() && state.phase == Phase::Ready && ping == Ping::Ok;
    let other_agents: Vec<String> = crate::config::Env::from_process()
        .map(|e| crate::service::competitors::find(p, &e.home, !json))
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect();
    if json {
        let report = Report {
            state,
            supervisor_running: holder.is_some(),
            socket_answers: ping == Ping::Ok,
            source,
            state_error: state_error.clone(),
            other_agents,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
        return Ok(if ready { 0 } else { 1 });
    }
    let socket = p.socket.display();
    match holder {
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
        None => println!(
            "profile {}: no supervisor running (start one with `dockhand run --profile {}` or `dockhand service install`)",
            p.name, p.name
        ),
    }
    if let Some(e) = &state_error {
        println!("state: unreadable ({e})");
    }
    println!("socket {socket}: {ping}");
    for line in crate::proxy::status_lines(p, &state, holder.is_some()) {
        println!("{line}");
    }
    println!("restarts: {}", state.restarts);
    if let Some(e) = &state.last_error
        && state.phase != Phase::Ready
    {
        println!("last error: {e}");
    }
    for a in &other_agents {
        println!("warning: {a}");
    }
    Ok(if ready { 0 } else { 1 })
}
