//! Colima releases and what each does differently, from config's side:
//! the release type, the directory rule per release, and the release
//! asked at this start (`engine::colima_version` asks and applies it).
//!
//! Supported: Colima 0.6.0 and later. The differences inside that range
//! (checked against the tags of abiosoft/colima):
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

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::config::Env;

/// A Colima release, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

/// The oldest release dockhand supports.
pub const MINIMUM: Version = Version(0, 6, 0);
/// The newest release checked; unknown builds ("development") behave so.
pub const NEWEST_CHECKED: Version = Version(0, 10, 3);

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

/// Record the release asked at this start (once; later calls are no-ops).
pub fn set_installed(v: Version) {
    let _ = INSTALLED.set(v);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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
