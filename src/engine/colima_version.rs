//! Which Colima is installed, and what that release does differently.
//!
//! Supported: Colima 0.6.0 and later. `colima version` is asked once per
//! start (a deadline and a read cap), and every difference inside that
//! range follows the installed release (checked against the tags of
//! abiosoft/colima):
//!
//! | behaviour | since | upstream |
//! |---|---|---|
//! | `colima status <p> --json` (else plain `status`, exit 0 = running) | 0.8.1 | ad5102e (#1196) `cmd/status.go` |
//! | `$COLIMA_HOME` read | 0.6.10 | fd80766 (#1062) `config/dirs.go` |
//! | `$XDG_CONFIG_HOME/colima` on macOS | 0.7.0 | 05fd577 `config/files.go` |
//! | `~/.config/colima` when it exists | after 0.10.3 (main) | `config/files.go` |
//! | `--cpus` (`--cpu` before; `-c` in all, which dockhand uses) | 0.8.2 | `cmd/start.go` |
//! | fractional `--memory` (dockhand passes whole GiB) | 0.8.1 | `cmd/start.go` |
//! | `vm_type = "krunkit"`, macOS 13+ on Apple Silicon only | 0.10.0 | 5e32efa, v0.10.3 `config/configmanager/configmanager.go` |

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::config::{self, Env, Profile};
use crate::error::{Error, Result};

/// A Colima release, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

/// The oldest release dockhand supports.
pub const MINIMUM: Version = Version(0, 6, 0);
/// The newest release checked; unknown builds ("development") behave so.
pub const NEWEST_CHECKED: Version = Version(0, 10, 3);

/// How long `colima version` may take, and how much of it is read.
const ASK_TIMEOUT: Duration = Duration::from_secs(15);
const READ_CAP: u64 = 4096;

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Version {
    /// From `colima version`'s first line: "colima version v0.8.0"
    /// (Makefile: `git describe`) or "colima version 0.8.0" (nixpkgs).
    pub fn parse(text: &str) -> Option<Version> {
        let line = text.lines().find(|l| l.contains("version"))?;
        let word = line.split_whitespace().last()?;
        let word = word.strip_prefix('v').unwrap_or(word);
        let core = word.split(['-', '+']).next()?;
        let mut n = core.split('.').map(|p| p.parse::<u32>().ok());
        let (a, b) = (n.next()??, n.next()??);
        let c = n.next().flatten().unwrap_or(0);
        Some(Version(a, b, c))
    }

    /// `colima status <p> --json` exists (else: unknown flag, exit 1).
    pub fn status_json(self) -> bool {
        self >= Version(0, 8, 1)
    }

    /// `$COLIMA_HOME` is read (before: always the default directory).
    pub fn reads_colima_home(self) -> bool {
        self >= Version(0, 6, 10)
    }

    pub fn krunkit(self) -> bool {
        self >= Version(0, 10, 0)
    }
}

static INSTALLED: OnceLock<Version> = OnceLock::new();

/// The release asked at this start, else the newest checked one.
pub fn installed() -> Version {
    INSTALLED.get().copied().unwrap_or(NEWEST_CHECKED)
}

/// Colima's base directory as `v` finds it (colima `config/dirs.go` before
/// 0.7.0, `config/files.go` since), for the process environment `env`.
/// dockhand passes `COLIMA_HOME` to every colima it runs (creating it
/// first), so a release that reads it uses the same directory.
pub fn colima_home(env: &Env, v: Version) -> PathBuf {
    if let Some(d) = env.colima_home.as_ref().filter(|_| v.reads_colima_home()) {
        return d.clone();
    }
    let dot = env.home.join(".colima");
    let xdg_on_macos = v >= Version(0, 7, 0);
    if dot.is_dir() || (env.macos && !xdg_on_macos) {
        return dot;
    }
    if let Some(x) = &env.xdg_config_home {
        return x.join("colima");
    }
    let config = env.home.join(".config/colima");
    if !env.macos || (v > NEWEST_CHECKED && config.is_dir()) {
        return config;
    }
    dot
}

/// Ask `colima version`: the first line that names a version, within
/// ASK_TIMEOUT and READ_CAP bytes. (Later lines may ask the running VM
/// over ssh: colima `cmd/version.go`; they are not waited for.)
pub fn ask(colima: &Path) -> std::result::Result<String, String> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(colima)
        .arg("version")
        .env_remove("COLIMA_PROFILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", colima.display()))?;
    let out = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        for line in std::io::BufReader::new(out.take(READ_CAP)).lines() {
            let Ok(line) = line else { break };
            if line.contains("version") {
                first = line;
                break;
            }
        }
        let _ = tx.send(first);
    });
    let line = rx.recv_timeout(ASK_TIMEOUT);
    // Our own child and its group, not yet waited for: done with them.
    if !matches!(child.try_wait(), Ok(Some(_))) {
        let _ = rustix::process::kill_process_group(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::KILL,
        );
    }
    let _ = child.wait();
    match line {
        Ok(l) if !l.is_empty() => Ok(l),
        Ok(_) => Err("`colima version` printed no version".into()),
        Err(_) => Err(format!(
            "`colima version` did not answer within {}s",
            ASK_TIMEOUT.as_secs()
        )),
    }
}

/// Below MINIMUM: exit 4 with both versions and how to upgrade.
pub fn supported(v: Version) -> Result<()> {
    if v >= MINIMUM {
        return Ok(());
    }
    Err(Error::EngineUnusable(format!(
        "Colima {v} is installed; dockhand needs Colima {MINIMUM} or later: upgrade it (`brew upgrade colima`, or a newer nixpkgs#colima) and run dockhand again"
    )))
}

/// `vm_type = "krunkit"` needs Colima 0.10.0 and macOS on Apple Silicon
/// (v0.10.3 configmanager.go: "only available on macOS with Apple Silicon").
pub fn vm_type_usable(vm_type: Option<&str>, v: Version, apple_silicon: bool) -> Result<()> {
    if vm_type != Some("krunkit") {
        return Ok(());
    }
    if !v.krunkit() {
        return Err(Error::EngineUnusable(format!(
            "vm_type = \"krunkit\" needs Colima 0.10.0 or later (installed: {v}): upgrade Colima (`brew upgrade colima`) or set vm_type = \"vz\" in the profile's [colima] table"
        )));
    }
    if !apple_silicon {
        return Err(Error::EngineUnusable(
            "vm_type = \"krunkit\" is only available on macOS with Apple Silicon: set vm_type = \"vz\" or \"qemu\" in the profile's [colima] table".into(),
        ));
    }
    Ok(())
}

fn apple_silicon() -> bool {
    cfg!(all(target_os = "macos", target_arch = "aarch64"))
}

/// Once per start, for a Colima profile: ask the installed release,
/// refuse what it can't do (exit 4), and move Colima's directory (and the
/// default socket under it) to where that release keeps it. Returns notes
/// for the log. Without a usable answer the newest behaviour is assumed.
pub fn adapt(p: &mut Profile) -> Result<Vec<String>> {
    let (Some(c), Some(bin)) = (p.colima.as_mut(), crate::sys::which("colima")) else {
        return Ok(Vec::new());
    };
    let mut notes = Vec::new();
    let v = match ask(&bin).map(|l| (Version::parse(&l), l)) {
        Ok((Some(v), _)) => v,
        Ok((None, line)) => {
            notes.push(format!(
                "{line:?}: not a release number; assuming Colima {NEWEST_CHECKED}'s behaviour"
            ));
            NEWEST_CHECKED
        }
        Err(e) => {
            notes.push(format!("{e}; assuming Colima {NEWEST_CHECKED}'s behaviour"));
            NEWEST_CHECKED
        }
    };
    supported(v)?;
    vm_type_usable(c.vm_type.as_deref(), v, apple_silicon())?;
    let _ = INSTALLED.set(v);
    notes.push(format!("Colima {v}"));
    let env = Env::from_process()?;
    if env.colima_home.is_some() && !v.reads_colima_home() {
        notes.push(format!(
            "Colima {v} ignores COLIMA_HOME (read since 0.6.10): using its default directory"
        ));
    }
    let home = colima_home(&env, v);
    if home != c.home {
        let short = config::short_profile(&c.profile).to_string();
        if p.socket == c.home.join(&short).join("docker.sock") {
            p.socket = home.join(&short).join("docker.sock");
        }
        if env.lima_home.is_none() {
            c.lima_home = home.join("_lima");
        }
        notes.push(format!(
            "Colima {v} keeps its files in {} (not {})",
            home.display(),
            c.home.display()
        ));
        c.home = home;
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_as_colima_prints_them() {
        assert_eq!(
            Version::parse("colima version v0.8.0\ngit commit: abc"),
            Some(Version(0, 8, 0))
        );
        assert_eq!(
            Version::parse("colima version 0.10.3"),
            Some(Version(0, 10, 3))
        );
        assert_eq!(
            Version::parse("colima version v0.6.9-3-gabcdef"),
            Some(Version(0, 6, 9))
        );
        assert_eq!(Version::parse("colima version development"), None);
        assert!(Version(0, 6, 10) > Version(0, 6, 9));
        assert!(Version(0, 10, 0) > Version(0, 9, 1));
    }

    #[test]
    fn behaviours_follow_the_tags() {
        assert!(!Version(0, 8, 0).status_json());
        assert!(Version(0, 8, 1).status_json());
        assert!(!Version(0, 6, 9).reads_colima_home());
        assert!(Version(0, 6, 10).reads_colima_home());
        assert!(!Version(0, 9, 1).krunkit());
        assert!(Version(0, 10, 0).krunkit());
    }

    #[test]
    fn below_the_minimum_is_refused_with_both_versions() {
        let e = supported(Version(0, 5, 6)).unwrap_err();
        assert_eq!(e.exit_code(), 4);
        let m = e.to_string();
        assert!(m.contains("0.5.6") && m.contains("0.6.0") && m.contains("brew upgrade"));
        assert!(supported(MINIMUM).is_ok());
    }

    #[test]
    fn krunkit_needs_0_10_and_apple_silicon() {
        let old = vm_type_usable(Some("krunkit"), Version(0, 9, 1), true).unwrap_err();
        assert_eq!(old.exit_code(), 4);
        assert!(old.to_string().contains("0.9.1"));
        let intel = vm_type_usable(Some("krunkit"), Version(0, 10, 3), false).unwrap_err();
        assert!(intel.to_string().contains("Apple Silicon"));
        assert!(vm_type_usable(Some("krunkit"), Version(0, 10, 0), true).is_ok());
        assert!(vm_type_usable(Some("vz"), Version(0, 6, 0), false).is_ok());
    }

    fn env(t: &Path, macos: bool) -> Env {
        let mut e = Env::bare(t.join("home"));
        e.macos = macos;
        e.xdg_config_home = Some(t.join("xdg"));
        e.colima_home = Some(t.join("ch"));
        e
    }

    #[test]
    fn the_directory_follows_the_release() {
        let t = tempfile::tempdir().unwrap();
        let (home, xdg) = (t.path().join("home"), t.path().join("xdg"));
        let mac = env(t.path(), true);
        // 0.6.9 on macOS: ~/.colima whatever COLIMA_HOME and XDG say.
        assert_eq!(colima_home(&mac, Version(0, 6, 9)), home.join(".colima"));
        assert_eq!(colima_home(&mac, Version(0, 6, 10)), t.path().join("ch"));
        let mut mac = mac;
        mac.colima_home = None;
        assert_eq!(colima_home(&mac, Version(0, 6, 10)), home.join(".colima"));
        assert_eq!(colima_home(&mac, Version(0, 7, 0)), xdg.join("colima"));
        // Linux: XDG in every release.
        let mut linux = env(t.path(), false);
        assert_eq!(colima_home(&linux, Version(0, 6, 9)), xdg.join("colima"));
        linux.xdg_config_home = None;
        assert_eq!(
            colima_home(&linux, Version(0, 6, 9)),
            home.join(".config/colima")
        );
        // An existing ~/.colima wins in every release.
        std::fs::create_dir_all(home.join(".colima")).unwrap();
        mac.xdg_config_home = Some(xdg);
        assert_eq!(colima_home(&mac, Version(0, 10, 3)), home.join(".colima"));
        // ~/.config/colima is not looked at by 0.10.3 on macOS.
        std::fs::remove_dir(home.join(".colima")).unwrap();
        mac.xdg_config_home = None;
        std::fs::create_dir_all(home.join(".config/colima")).unwrap();
        assert_eq!(colima_home(&mac, Version(0, 10, 3)), home.join(".colima"));
        assert_eq!(
            colima_home(&mac, Version(0, 11, 0)),
            home.join(".config/colima")
        );
    }
}
