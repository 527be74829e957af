//! Other launchd agents that start the same Colima instance as dockhand.
//! The known ones (`brew services`, home-manager's `services.colima`,
//! nix-darwin recipes, `limactl autostart`), by label and by what
//! launchd has loaded, come from [`crate::service::competitors::find`];
//! this adds agents under any other label whose program runs `colima
//! start` / `limactl start` for the instance (hand-written plists;
//! nix-darwin wraps its `command` in `/bin/sh -c "... exec ..."`).

use std::path::Path;

use super::checks::Agent;
use crate::config::{Colima, Profile};
use crate::service::competitors::{starts_colima, starts_lima};

/// At most this many plists, each at most MAX_PLIST bytes, are read.
const MAX_AGENTS: usize = 500;
const MAX_PLIST: u64 = 1 << 20;

pub fn competing_agents(p: &Profile, home: &Path) -> Vec<Agent> {
    let Some(c) = &p.colima else {
        return vec![];
    };
    let mut v: Vec<Agent> = crate::service::competitors::find(p, home, true)
        .into_iter()
        .map(|k| Agent {
            label: k.label,
            path: k.plist,
            fix: k.disable,
        })
        .collect();
    for a in by_program(home, c) {
        if !v.iter().any(|k| k.label == a.label) {
            v.push(a);
        }
    }
    v
}

/// Agents (`~/Library/LaunchAgents`, `/Library/LaunchAgents`) and daemons
/// running as this user (`/Library/LaunchDaemons` with `UserName`) whose
/// program starts the instance.
fn by_program(home: &Path, c: &Colima) -> Vec<Agent> {
    let roots = crate::service::competitors::Roots::for_home(home);
    let dirs = roots.agents.iter().map(|d| (d, false));
    let mut found = Vec::new();
    for (dir, daemon) in dirs.chain(roots.daemons.iter().map(|d| (d, true))) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten().take(MAX_AGENTS) {
            if let Some(a) = agent_of(&e.path(), c, daemon.then_some(roots.user.as_deref())) {
                found.push(a);
            }
        }
    }
    found.sort_by(|a, b| a.label.cmp(&b.label));
    found
}

/// The agent at `path` if it starts the instance; `daemon`: Some(user)
/// for a system daemon, which counts only when it runs as that user.
fn agent_of(path: &Path, c: &Colima, daemon: Option<Option<&str>>) -> Option<Agent> {
    if path.extension().is_none_or(|x| x != "plist")
        || std::fs::metadata(path).is_ok_and(|m| m.len() > MAX_PLIST)
    {
        return None;
    }
    let v = plist::Value::from_file(path).ok()?;
    let d = v.as_dictionary()?;
    if let Some(user) = daemon {
        let runs_as = d.get("UserName").and_then(|u| u.as_string());
        if user.is_none() || runs_as != user {
            return None;
        }
    }
    let label = d
        .get("Label")
        .and_then(|l| l.as_string())
        .unwrap_or_default()
        .to_string();
    let words = crate::service::competitors::program_words(d);
    let env = |k: &str| {
        d.get("EnvironmentVariables")
            .and_then(|e| e.as_dictionary())
            .and_then(|e| e.get(k))
            .and_then(|v| v.as_string())
            .map(str::to_owned)
    };
    // Another COLIMA_HOME is another instance.
    if env("COLIMA_HOME").is_some_and(|h| Path::new(&h) != c.home) {
        return None;
    }
    let autostart = label == format!("io.lima-vm.autostart.{}", c.instance());
    let ours = autostart
        || starts_colima(&words, env("COLIMA_PROFILE"), &c.profile)
        || starts_lima(&words, &c.instance());
    let domain = if daemon.is_some() {
        "sudo launchctl bootout system"
    } else {
        "launchctl bootout gui/$UID"
    };
    ours.then(|| Agent {
        fix: format!(
            "`{domain}/{label}` and remove {} (or its nix definition)",
            path.display()
        ),
        label,
        path: Some(path.to_path_buf()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn colima_start_lines_name_their_profile() {
        assert!(starts_colima(
            &w("/opt/homebrew/opt/colima/bin/colima start -f"),
            None,
            "default"
        ));
        assert!(starts_colima(
            &w(
                "/bin/sh -c wait4path /nix/store && exec /nix/store/x-colima/bin/colima start --foreground --cpu 4"
            ),
            None,
            "colima"
        ));
        assert!(starts_colima(&w("colima start work -f"), None, "work"));
        assert!(starts_colima(
            &w("colima start --profile colima-work"),
            None,
            "work"
        ));
        assert!(starts_colima(
            &w("colima start -f"),
            Some("work".into()),
            "work"
        ));
        assert!(!starts_colima(&w("colima start work -f"), None, "default"));
        assert!(!starts_colima(&w("colima stop"), None, "default"));
        assert!(!starts_colima(&w("/usr/bin/dockhand run"), None, "default"));
        assert!(starts_lima(
            &w("limactl start colima --foreground"),
            "colima"
        ));
        assert!(!starts_lima(
            &w("limactl start other --foreground"),
            "colima"
        ));
    }
}
