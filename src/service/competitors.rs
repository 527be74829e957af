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

/// The agents known to manage `instance`, with how to disable each.
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
    // home-manager modules/services/colima.nix: `launchd.agents.
    // "colima-${name}"` for each of `services.colima.profiles.<name>`; the
    // label is never a bare `org.nix-community.home.colima`.
    v.push((
        format!("org.nix-community.home.colima-{short}"),
        "home-manager",
        format!(
            "set `services.colima.profiles.{short}.isService = false` (or remove `services.colima`) in your home-manager configuration and run `home-manager switch`"
        ),
    ));
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

/// System daemons that run as a user (`UserName`) and manage `instance`
/// (in /Library/LaunchDaemons, `launchctl print system/<label>`).
pub fn known_daemons(instance: &str) -> Vec<(String, &'static str, String)> {
    let mut v = Vec::new();
    if config::short_profile(instance) == "default" {
        // `sudo brew services start --sudo-service-user <user> colima`.
        v.push((
            "homebrew.mxcl.colima".to_string(),
            "sudo brew services",
            "`sudo brew services stop colima`".to_string(),
        ));
    }
    // Lima 2.2 `limactl autostart enable --condition=boot` (pkg/autostart/
    // launchd/io.lima-vm.daemon.INSTANCE.plist: UserName, `limactl start
    // <inst> --foreground`).
    v.push((
        format!("io.lima-vm.daemon.{instance}"),
        "limactl autostart (at boot)",
        format!("`limactl autostart disable {instance}` (it asks for sudo)"),
    ));
    v
}

/// Where launchd finds definitions that can run for this user.
pub struct Roots {
    /// Per-user agents (`~/Library/LaunchAgents`, `/Library/LaunchAgents`).
    pub agents: Vec<PathBuf>,
    /// System daemons (`/Library/LaunchDaemons`): only those whose
    /// `UserName` is `user` count.
    pub daemons: Vec<PathBuf>,
    pub user: Option<String>,
}

impl Roots {
    /// The real ones; the system directories under `DOCKHAND_TEST_SYSROOT`
    /// in tests.
    pub fn for_home(home: &Path) -> Roots {
        use super::nix_owned::sysroot;
        Roots {
            agents: vec![
                home.join("Library/LaunchAgents"),
                sysroot("/Library/LaunchAgents"),
            ],
            daemons: vec![sysroot("/Library/LaunchDaemons")],
            user: login_name(),
        }
    }
}

/// This user's login name (`USER`, else the password database).
pub fn login_name() -> Option<String> {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            // SAFETY: getpwuid returns a pointer into static storage or null;
            // the name is copied out at once.
            unsafe {
                let pw = libc::getpwuid(libc::getuid());
                (!pw.is_null()).then(|| {
                    std::ffi::CStr::from_ptr((*pw).pw_name)
                        .to_string_lossy()
                        .into_owned()
                })
            }
        })
}

/// A plist's dictionary, read bounded.
fn read_plist(path: &Path) -> Option<plist::Dictionary> {
    if std::fs::metadata(path).ok()?.len() > MAX_PLIST {
        return None;
    }
    plist::Value::from_file(path).ok()?.into_dictionary()
}

const MAX_PLIST: u64 = 1 << 20;
const MAX_SCAN: usize = 500;

/// Competing agents and daemons for `instance` found in `roots`, or that
/// `loaded("gui"|"system", label)` reports loaded. Pure apart from
/// reading those directories.
pub fn find_in(
    roots: &Roots,
    instance: &str,
    loaded: impl Fn(&str, &str) -> bool,
) -> Vec<Competitor> {
    let mut v: Vec<Competitor> = known(instance)
        .into_iter()
        .filter_map(|(label, manager, disable)| {
            let plist = roots
                .agents
                .iter()
                .map(|d| d.join(format!("{label}.plist")))
                .find(|p| std::fs::symlink_metadata(p).is_ok());
            let loaded = loaded("gui", &label);
            (plist.is_some() || loaded).then_some(Competitor {
                label,
                plist,
                loaded,
                manager,
                disable,
            })
        })
        .collect();
    for (label, manager, disable) in known_daemons(instance) {
        let plist = roots
            .daemons
            .iter()
            .map(|d| d.join(format!("{label}.plist")))
            .find(|p| runs_as(p, roots.user.as_deref()));
        if let Some(p) = plist {
            v.push(Competitor {
                loaded: loaded("system", &label),
                label,
                plist: Some(p),
                manager,
                disable,
            });
        }
    }
    v.extend(nixos_agents(roots, instance, &v));
    v
}

/// A daemon plist whose `UserName` is `user`.
fn runs_as(plist: &Path, user: Option<&str>) -> bool {
    let Some(user) = user else { return false };
    read_plist(plist).is_some_and(|d| d.get("UserName").and_then(|u| u.as_string()) == Some(user))
}

/// nix-darwin's `launchd.agents.<name>` / `launchd.user.agents.<name>`:
/// `org.nixos.<name>`, any name: those whose program starts the instance.
fn nixos_agents(roots: &Roots, instance: &str, seen: &[Competitor]) -> Vec<Competitor> {
    let mut found = Vec::new();
    for dir in &roots.agents {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in rd.flatten().take(MAX_SCAN) {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(label) = name
                .strip_suffix(".plist")
                .filter(|l| l.starts_with("org.nixos."))
            else {
                continue;
            };
            if seen
                .iter()
                .chain(&found)
                .any(|c: &Competitor| c.label == label)
            {
                continue;
            }
            let Some(d) = read_plist(&e.path()) else {
                continue;
            };
            if starts_instance(&d, instance) {
                let name = &label["org.nixos.".len()..];
                found.push(Competitor {
                    label: label.to_string(),
                    plist: Some(e.path()),
                    loaded: false,
                    manager: "nix-darwin",
                    disable: format!(
                        "remove `launchd.agents.\"{name}\"` (or `launchd.user.agents.\"{name}\"`) from your nix-darwin configuration and run `darwin-rebuild switch`"
                    ),
                });
            }
        }
    }
    found
}

/// The words of a plist's program (`Program`, `ProgramArguments`, each
/// split on whitespace: nix-darwin wraps commands in `/bin/sh -c "..."`).
pub fn program_words(d: &plist::Dictionary) -> Vec<String> {
    let mut words: Vec<String> = d
        .get("ProgramArguments")
        .and_then(|a| a.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_string())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if let Some(p) = d.get("Program").and_then(|p| p.as_string()) {
        words.insert(0, p.to_string());
    }
    words
        .iter()
        .flat_map(|w| w.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

fn starts_instance(d: &plist::Dictionary, instance: &str) -> bool {
    let words = program_words(d);
    let env_profile = d
        .get("EnvironmentVariables")
        .and_then(|e| e.as_dictionary())
        .and_then(|e| e.get("COLIMA_PROFILE"))
        .and_then(|v| v.as_string())
        .map(str::to_owned);
    starts_colima(&words, env_profile, instance) || starts_lima(&words, instance)
}

fn base(w: &str) -> &str {
    w.rsplit('/').next().unwrap_or(w)
}

/// `colima start [profile | --profile P | -p P] ...` for our profile.
pub fn starts_colima(words: &[String], env_profile: Option<String>, ours: &str) -> bool {
    let Some(i) = words.iter().position(|w| base(w) == "colima") else {
        return false;
    };
    let rest = &words[i + 1..];
    if rest.first().map(String::as_str) != Some("start") {
        return false;
    }
    // `colima start <profile>`: the word right after `start` (values of
    // flags like `--cpu 4` can't be told from positionals without
    // Colima's flag table, so later words are not taken), else
    // `--profile`/`-p`, else $COLIMA_PROFILE (colima cmd/root.go).
    let mut profile = rest.get(1).filter(|w| !w.starts_with('-')).cloned();
    let mut it = rest[1..].iter();
    while let Some(w) = it.next() {
        match w.as_str() {
            "--profile" | "-p" => profile = profile.or_else(|| it.next().cloned()),
            s if s.starts_with("--profile=") => {
                profile = profile.or_else(|| Some(s["--profile=".len()..].into()))
            }
            _ => {}
        }
    }
    let profile = profile.or(env_profile);
    config::short_profile(profile.as_deref().unwrap_or("default")) == config::short_profile(ours)
}

/// `limactl start <instance>`.
pub fn starts_lima(words: &[String], instance: &str) -> bool {
    words
        .iter()
        .position(|w| base(w) == "limactl")
        .is_some_and(|i| {
            words[i + 1..].first().map(String::as_str) == Some("start")
                && words[i + 2..].iter().any(|w| w == instance)
        })
}

/// Competing agents of a Colima profile: plists in the [`Roots`] of
/// `home`, and with `ask_launchctl` the jobs `launchctl print
/// gui/<uid>/<label>` (agents) or `system/<label>` (daemons) finds loaded
/// (when launchctl exists). Empty for other engines.
pub fn find(p: &Profile, home: &Path, ask_launchctl: bool) -> Vec<Competitor> {
    let Some(c) = &p.colima else {
        return Vec::new();
    };
    let launchctl = ask_launchctl
        .then(|| crate::sys::which("launchctl"))
        .flatten();
    let uid = rustix::process::getuid().as_raw();
    find_in(&Roots::for_home(home), &c.instance(), |domain, label| {
        let target = match domain {
            "system" => format!("system/{label}"),
            _ => format!("gui/{uid}/{label}"),
        };
        launchctl.as_ref().is_some_and(|l| {
            std::process::Command::new(l)
                .arg("print")
                .arg(target)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    })
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

    fn roots(t: &Path) -> Roots {
        Roots {
            agents: vec![t.join("none"), t.to_path_buf()],
            daemons: vec![t.join("daemons")],
            user: Some("me".into()),
        }
    }

    #[test]
    fn finds_each_known_agent_by_plist_or_loaded_job() {
        let t = tempfile::tempdir().unwrap();
        let none = |_: &str, _: &str| false;
        let r = roots(t.path());
        assert_eq!(find_in(&r, "colima", none), vec![]);
        for l in [
            "homebrew.mxcl.colima",
            "org.nix-community.home.colima-default",
            "org.nix-community.home.colima",
            "com.colima.default",
            "io.lima-vm.autostart.colima",
            "io.lima-vm.autostart.colima-work",
        ] {
            std::fs::write(t.path().join(format!("{l}.plist")), "").unwrap();
        }
        let found = find_in(&r, "colima", none);
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
        let work = find_in(&r, "colima-work", |d, l| {
            d == "gui" && l == "org.nix-community.home.colima-work"
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

    fn daemon(dir: &Path, label: &str, user: &str, args: &[&str]) {
        let mut d = plist::Dictionary::new();
        d.insert("Label".into(), label.into());
        d.insert("UserName".into(), user.into());
        d.insert(
            "ProgramArguments".into(),
            plist::Value::Array(args.iter().map(|a| (*a).into()).collect()),
        );
        std::fs::create_dir_all(dir).unwrap();
        plist::Value::Dictionary(d)
            .to_file_xml(dir.join(format!("{label}.plist")))
            .unwrap();
    }

    #[test]
    fn daemons_running_as_this_user_and_nixos_agents() {
        let t = tempfile::tempdir().unwrap();
        let r = roots(t.path());
        let daemons = t.path().join("daemons");
        daemon(
            &daemons,
            "io.lima-vm.daemon.colima",
            "me",
            &["limactl", "start", "colima", "--foreground"],
        );
        daemon(
            &daemons,
            "homebrew.mxcl.colima",
            "someone-else",
            &["colima", "start", "-f"],
        );
        daemon(
            t.path(),
            "org.nixos.vm",
            "me",
            &[
                "/bin/sh",
                "-c",
                "/bin/wait4path /nix/store && exec /nix/store/x/bin/colima start --foreground",
            ],
        );
        daemon(t.path(), "org.nixos.other", "me", &["/usr/bin/true"]);
        let found = find_in(&r, "colima", |d, l| {
            d == "system" && l == "io.lima-vm.daemon.colima"
        });
        let labels: Vec<&str> = found.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels, ["io.lima-vm.daemon.colima", "org.nixos.vm"]);
        assert!(found[0].loaded);
        assert!(
            found[0]
                .disable
                .contains("limactl autostart disable colima")
        );
        assert!(found[1].disable.contains("launchd.agents.\"vm\""));
    }
}
