//! The process environment config resolution depends on: HOME, the XDG
//! base directories, Colima's and Lima's homes, and `~`/`$HOME` expansion.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The process environment that config resolution depends on, captured once
/// so that tests and service rendering can supply their own.
#[derive(Debug, Clone)]
pub struct Env {
    pub home: PathBuf,
    pub xdg_config_home: Option<PathBuf>,
    pub xdg_state_home: Option<PathBuf>,
    pub colima_home: Option<PathBuf>,
    pub lima_home: Option<PathBuf>,
    pub dockhand_config: Option<PathBuf>,
    pub macos: bool,
}

impl Env {
    pub fn from_process() -> Result<Env> {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        // The XDG spec: a relative value is invalid and ignored. So are
        // relative homes of Colima and Lima (a service runs in `/`).
        let abs = |k: &str| var(k).filter(|p| p.is_absolute());
        let home = abs("HOME").ok_or_else(|| {
            Error::Config(
                "HOME is not set to an absolute path: dockhand needs it to find its config and state"
                    .into(),
            )
        })?;
        Ok(Env {
            home,
            xdg_config_home: abs("XDG_CONFIG_HOME"),
            xdg_state_home: abs("XDG_STATE_HOME"),
            colima_home: abs("COLIMA_HOME"),
            lima_home: abs("LIMA_HOME"),
            dockhand_config: var("DOCKHAND_CONFIG"),
            macos: cfg!(target_os = "macos"),
        })
    }

    /// Only HOME set, on Linux: for unit tests.
    #[cfg(test)]
    pub fn bare(home: PathBuf) -> Env {
        Env {
            home,
            xdg_config_home: None,
            xdg_state_home: None,
            colima_home: None,
            lima_home: None,
            dockhand_config: None,
            macos: false,
        }
    }

    pub fn config_home(&self) -> PathBuf {
        self.xdg_config_home
            .clone()
            .unwrap_or_else(|| self.home.join(".config"))
    }

    pub fn state_home(&self) -> PathBuf {
        self.xdg_state_home
            .clone()
            .unwrap_or_else(|| self.home.join(".local/state"))
    }

    /// Colima's base directory, found as the installed Colima finds it
    /// (the newest checked release's rule until `colima version` was asked:
    /// `engine::colima_version`). Colima ignores a `$COLIMA_HOME` that
    /// doesn't exist yet; dockhand creates it before running colima.
    pub fn colima_home(&self) -> PathBuf {
        use super::colima_release::{colima_home, installed};
        colima_home(self, installed())
    }

    pub fn lima_home(&self) -> PathBuf {
        self.lima_home
            .clone()
            .unwrap_or_else(|| self.colima_home().join("_lima"))
    }

    /// `~`, `~/x`, `$HOME` and `${HOME}` at the start of a path.
    pub fn expand(&self, raw: &str) -> PathBuf {
        for prefix in ["${HOME}", "$HOME", "~"] {
            if let Some(rest) = raw.strip_prefix(prefix)
                && (rest.is_empty() || rest.starts_with('/'))
            {
                // On bytes: a HOME that isn't UTF-8 stays the same directory.
                let mut p = self.home.clone().into_os_string();
                p.push(rest);
                return PathBuf::from(p);
            }
        }
        PathBuf::from(raw)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::config::testing::{env, parse};

    #[test]
    fn colima_home_is_found_as_colima_finds_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = env();
        e.home = dir.path().to_path_buf();
        e.macos = true;
        let home = dir.path();
        assert_eq!(e.colima_home(), home.join(".colima"), "macOS default");
        std::fs::create_dir_all(home.join(".config/colima")).unwrap();
        assert_eq!(
            e.colima_home(),
            home.join(".colima"),
            "an existing ~/.config/colima is main-branch only, not 0.10.3"
        );
        std::fs::create_dir_all(home.join(".colima")).unwrap();
        assert_eq!(
            e.colima_home(),
            home.join(".colima"),
            "~/.colima wins when it exists"
        );
        e.colima_home = Some("/elsewhere".into());
        assert_eq!(e.colima_home(), PathBuf::from("/elsewhere"));
        assert_eq!(e.lima_home(), PathBuf::from("/elsewhere/_lima"));
    }

    #[test]
    fn tilde_and_home_expand() {
        let c = parse("[profiles.default]\nstate_dir = \"~/s\"\nlog_file = \"$HOME/l.log\"\nsocket = \"${HOME}/d.sock\"\n").unwrap();
        let p = c.profile("default").unwrap();
        assert_eq!(p.state_dir, PathBuf::from("/home/u/s"));
        assert_eq!(p.log_file, PathBuf::from("/home/u/l.log"));
        assert_eq!(p.socket, PathBuf::from("/home/u/d.sock"));
    }

    #[test]
    fn a_non_utf8_home_expands_on_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let mut e = env();
        e.home = PathBuf::from(std::ffi::OsStr::from_bytes(b"/home/\xffu"));
        for raw in ["~/s", "$HOME/s", "${HOME}/s"] {
            assert_eq!(e.expand(raw).as_os_str().as_bytes(), b"/home/\xffu/s");
        }
        assert_eq!(e.expand("~").as_os_str().as_bytes(), b"/home/\xffu");
    }
}
