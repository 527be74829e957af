//! Other launchd agents that manage the same Colima instance. Two owners
//! of one VM fight: one stops what the other restarts (one of the
//! restart-storm reports, colima #1490, was exactly that). Known ones:
//!
//! - `homebrew.mxcl.colima`: `brew services start colima` runs
//!   `colima start -f` for the default profile (Homebrew's colima formula);
//! - `org.nix-community.home.colima-<profile>`: home-manager's
//!   `services.colima` (modules/services/colima.nix: `launchd.agents.
//!   "colima-${name}"`, `colima start <name> -f`, KeepAlive);
//! - `com.colima.<profile>`: the nix-darwin recipe from nix-darwin#1182
//!   (`launchd.agents."colima.default"`), often in /Library/LaunchAgents;
//! - `io.lima-vm.autostart.<instance>`: `limactl autostart enable` /
//!   `limactl start-at-login` (lima pkg/autostart/launchd/
//!   io.lima-vm.autostart.INSTANCE.plist).
//!
//! [`find`] looks for their plists in `~/Library/LaunchAgents` and
//! `/Library/LaunchAgents` and, optionally, asks `launchctl print` whether
//! the job is loaded.

use std::path::{Path, PathBuf};

use crate::config::{self, Profile};

/// Another agent that starts or stops this profile's Colima instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Competitor {
    /// The launchd label.
    pub label: String,
    /// Its plist, when there is one in `~/Library/LaunchAgents`.
    pub plist: Option<PathBuf>,
    /// `launchctl print` found the job loaded.
    pub loaded: bool,
    /// Who installs it ("brew services", "home-manager", "limactl autostart").
    pub manager: &'static str,
    /// How to turn it off, as commands or a change to make.
    pub disable: String,
}

impl std::fmt::Display for Competitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = match (&self.plist, self.loaded) {
            (Some(p), true) => format!("{} (loaded)", p.display()),
            (Some(p), false) => p.display().to_string(),
            (None, _) => "loaded, no plist".into(),
        };
        write!(
            f,
            "{} agent `{}` also manages this Colima instance ({at}); disable it: {}",
            self.manager, self.label, self.disable
        )
    }
}

/// The agents known to manage `instance` (Colima's instance name,
/// `colima` or `colima-<short>`), with how to disable each.
pub fn known(instance: &str) -> Vec<(String, &'static str, String)> {
    let short = config::short_profile(instance);
    let mut v = Vec::new();
    if short == "default" {
        v.push((
            "homebrew.mxcl.colima".to_string(),
            "brew services",
            "`brew services stop colima`".to_string(),
        ));
    }
    let hm = format!(
        "set `services.colima.profiles.{short}.isService = false` (or remove `services.colima`) in your home-manager configuration and run `home-manager switch`"
    );
    v.push((
        format!("org.nix-community.home.colima-{short}"),
        "home-manager",
        hm.clone(),
    ));
    if short == "default" {
        v.push(("org.nix-community.home.colima".into(), "home-manager", hm));
    }
    v.push((
        format!("com.colima.{short}"),
        "nix-darwin",
        "remove the `launchd.agents` entry that runs `colima start` from your nix-darwin configuration and run `darwin-rebuild switch`".into(),
    ));
    v.push((
        format!("io.lima-vm.autostart.{instance}"),
        "limactl autostart",
        format!(
            "`limactl autostart disable {instance}` (Lima 2.2 and later; before: `limactl start-at-login --enabled=false {instance}`)"
        ),
    ));
    v
}

/// Competing agents for `instance` whose plist is in one of `agent_dirs`,
/// or that `loaded(label)` reports loaded. Pure apart from reading those
/// directories.
pub fn find_in(
    agent_dirs: &[PathBuf],
    instance: &str,
    loaded: impl Fn(&str) -> bool,
) -> Vec<Competitor> {
    known(instance)
        .into_iter()
        .filter_map(|(label, manager, disable)| {
            let plist = agent_dirs
                .iter()
                .map(|d| d.join(format!("{label}.plist")))
                .find(|p| std::fs::symlink_metadata(p).is_ok());
            let loaded = loaded(&label);
            (plist.is_some() || loaded).then_some(Competitor {
                label,
                plist,
                loaded,
                manager,
                disable,
            })
        })
        .collect()
}

/// Competing agents of a Colima profile: plists in
/// `<home>/Library/LaunchAgents`, and with `ask_launchctl` the jobs
/// `launchctl print gui/<uid>/<label>` finds loaded (when launchctl
/// exists). Empty for other engines.
pub fn find(p: &Profile, home: &Path, ask_launchctl: bool) -> Vec<Competitor> {
    let Some(c) = &p.colima else {
        return Vec::new();
    };
    let launchctl = ask_launchctl
        .then(|| crate::sys::which("launchctl"))
        .flatten();
    let uid = rustix::process::getuid().as_raw();
    find_in(
        &[
            home.join("Library/LaunchAgents"),
            PathBuf::from("/Library/LaunchAgents"),
        ],
        &c.instance(),
        |label| {
            launchctl.as_ref().is_some_and(|l| {
                std::process::Command::new(l)
                    .arg("print")
                    .arg(format!("gui/{uid}/{label}"))
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
        },
    )
}

/// `service install`: refuse (exit 6) while another agent manages the
/// same instance, unless `force`; then only warn.
pub fn refuse_unless(p: &Profile, home: &Path, force: bool) -> crate::error::Result<()> {
    let found = find(p, home, false);
    if found.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = found.iter().map(ToString::to_string).collect();
    if force {
        for c in &list {
            eprintln!("dockhand: warning (--force): {c}");
        }
        return Ok(());
    }
    Err(crate::error::Error::UnsafePath(format!(
        "{}; two agents managing one VM fight over it. Disable the other agent, or install anyway with `dockhand service install --force`",
        list.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_known_agent_by_plist_or_loaded_job() {
        let t = tempfile::tempdir().unwrap();
        let none = |_: &str| false;
        let dirs = [t.path().join("none"), t.path().to_path_buf()];
        assert_eq!(find_in(&dirs, "colima", none), vec![]);
        for l in [
            "homebrew.mxcl.colima",
            "org.nix-community.home.colima-default",
            "com.colima.default",
            "io.lima-vm.autostart.colima",
            "io.lima-vm.autostart.colima-work",
        ] {
            std::fs::write(t.path().join(format!("{l}.plist")), "").unwrap();
        }
        let found = find_in(&dirs, "colima", none);
        let labels: Vec<&str> = found.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "homebrew.mxcl.colima",
                "org.nix-community.home.colima-default",
                "com.colima.default",
                "io.lima-vm.autostart.colima"
            ]
        );
        assert!(found[0].to_string().contains("brew services stop colima"));
        assert!(
            found[1]
                .disable
                .contains("profiles.default.isService = false")
        );
        assert!(
            found[3]
                .disable
                .contains("limactl autostart disable colima")
        );
        // Brew's service is the default profile's only.
        let work = find_in(&dirs, "colima-work", |l| {
            l == "org.nix-community.home.colima-work"
        });
        let labels: Vec<&str> = work.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "org.nix-community.home.colima-work",
                "io.lima-vm.autostart.colima-work"
            ]
        );
        assert!(work[0].loaded && work[0].plist.is_none());
    }
}
