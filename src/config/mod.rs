//! Configuration: where the file is, what it may say, and the effective
//! profile with every default filled in.
//!
//! The file is TOML with profiles under `[profiles.<name>]`. Unknown keys,
//! wrong types, bad durations and engine tables that don't match `engine`
//! are refused with the file, line and column (exit code 2).
//!
//! Here: `Config` (finding and loading the file, looking up a profile) and
//! `Source`. The rooms: `file` (the raw TOML types, reading, line:col
//! errors), `env` (the environment and its paths), `profile` (the effective
//! `Profile`, `show`), `resolve` (raw profile to `Profile`), `engines` (one
//! file per engine kind's table), `proxy` (the on-demand proxy's keys),
//! `context` (the invocation: a config and the chosen profile).

mod context;
mod engines;
mod env;
mod file;
mod pattern;
mod profile;
mod proxy;
mod resolve;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub use context::Context;
pub use engines::EngineKind;
pub use engines::colima::{Colima, DEFAULT_CREATE_TIMEOUT, lima_instance_name_ok, short_profile};
pub use engines::colima_release;
pub use engines::command::Command;
pub use engines::dockerd::Dockerd;
pub use engines::ssh::{SSH_BACKOFF_MAX, Ssh};
pub use env::Env;
pub use file::CONFIG_MAX;
pub use pattern::Pattern;
pub use profile::{Profile, show};

pub const DEFAULT_PROFILE: &str = "default";

/// Where the config came from, for messages and for `--config` in services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// No file: built-in defaults (the path that was looked for).
    Defaults(PathBuf),
    /// The default location (`$XDG_CONFIG_HOME/dockhand/config.toml`).
    DefaultFile(PathBuf),
    /// `--config` or `$DOCKHAND_CONFIG`.
    Explicit(PathBuf),
}

impl Source {
    pub fn path(&self) -> &Path {
        match self {
            Source::Defaults(p) | Source::DefaultFile(p) | Source::Explicit(p) => p,
        }
    }
    /// The config path a service definition must pass with `--config`.
    pub fn explicit_path(&self) -> Option<&Path> {
        match self {
            Source::Explicit(p) => Some(p),
            _ => None,
        }
    }
}

/// A loaded config: the source and the raw profiles.
pub struct Config {
    pub source: Source,
    pub env: Env,
    text: String,
    file: file::RawFile,
}

impl Config {
    /// `--config PATH`, else `$DOCKHAND_CONFIG`, else the default location;
    /// a missing default file means built-in defaults, a missing explicit
    /// file is an error.
    pub fn load(explicit: Option<&Path>, env: Env) -> Result<Config> {
        let source = match explicit
            .map(Path::to_path_buf)
            .or(env.dockhand_config.clone())
        {
            Some(p) => Source::Explicit(absolute(&p)),
            None => {
                let p = env.config_home().join("dockhand/config.toml");
                if p.exists() {
                    Source::DefaultFile(p)
                } else {
                    Source::Defaults(p)
                }
            }
        };
        let text = match &source {
            Source::Defaults(_) => String::new(),
            Source::DefaultFile(p) | Source::Explicit(p) => file::read_config(p)?,
        };
        Config::parse(source, env, text)
    }

    pub fn parse(source: Source, env: Env, text: String) -> Result<Config> {
        let file = file::parse_raw(&source, &text)?;
        let cfg = Config {
            source,
            env,
            text,
            file,
        };
        // Refuse any bad profile up front, not only the one asked for.
        for name in cfg.file.profiles.keys() {
            cfg.profile(name)?;
        }
        Ok(cfg)
    }

    pub fn profile_names(&self) -> Vec<String> {
        if self.file.profiles.is_empty() {
            vec![DEFAULT_PROFILE.to_string()]
        } else {
            self.file.profiles.keys().cloned().collect()
        }
    }

    /// The effective profile `name`, defaults filled in.
    pub fn profile(&self, name: &str) -> Result<Profile> {
        self.profile_on(name, self.env.macos)
    }

    /// The profile as it resolves on macOS (`macos`) or Linux, whatever
    /// the host: a launchd agent rendered anywhere gets macOS's defaults.
    pub fn profile_on(&self, name: &str, macos: bool) -> Result<Profile> {
        let empty = file::RawProfile::default();
        let raw = match self.file.profiles.get(name) {
            Some(p) => p.get_ref(),
            None if name == DEFAULT_PROFILE && self.file.profiles.is_empty() => &empty,
            None => {
                let known = self.profile_names().join(", ");
                return Err(Error::Config(format!(
                    "unknown profile `{name}` in {}: known profiles are {known}; pass --profile with one of those or add a [profiles.{name}] table",
                    self.source.path().display()
                )));
            }
        };
        let env = Env {
            macos,
            ..self.env.clone()
        };
        self.resolve(name, raw, &env)
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The unit tests' config: HOME=/home/u on Linux, the file `/c.toml`.
#[cfg(test)]
mod testing {
    use super::{Config, Env, Source};
    use crate::error::{Error, Result};

    pub(super) fn env() -> Env {
        Env::bare("/home/u".into())
    }

    pub(super) fn parse(text: &str) -> Result<Config> {
        Config::parse(Source::Explicit("/c.toml".into()), env(), text.to_string())
    }

    pub(super) fn err(text: &str) -> String {
        match parse(text) {
            Err(Error::Config(m)) => m,
            Err(e) => panic!("wrong error kind: {e}"),
            Ok(_) => panic!("accepted: {text}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::show;
    use super::testing::parse;
    use crate::error::Error;

    #[test]
    fn the_builtin_default_only_without_profiles() {
        let c = parse("[profiles.work]\n").unwrap();
        match c.profile("default") {
            Err(Error::Config(m)) => assert!(m.contains("known profiles are work"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_profile() {
        let c = parse("[profiles.a]\n").unwrap();
        match c.profile("b") {
            Err(Error::Config(m)) => assert!(m.contains("unknown profile `b`"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    /// No input makes config loading panic: thousands of mangled
    /// variants of a full config are parsed and every profile resolved.
    #[test]
    fn mangled_configs_never_panic() {
        let base = "[profiles.default]\nengine = \"dockerd\"\nsocket = \"~/d.sock\"\nprobe_interval = \"30s\"\nprobe_timeout = \"5s\"\nlabel = \"local.docker\"\n[profiles.default.dockerd]\nbinary = \"/usr/bin/dockerd\"\nargs = [\"--debug\"]\n[profiles.w]\nengine = \"colima\"\n[profiles.w.colima]\ncpu = 4\nvm_type = \"vz\"\nprofile = \"work\"\n[profiles.c]\nengine = \"command\"\nsocket = \"/s\"\n[profiles.c.command]\nargv = [\"podman\"]\n";
        let alphabet: Vec<char> = "[]=\"'.,~$/\\\n 0123456789abcdefghsmx-_{}#é\u{0}"
            .chars()
            .collect();
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as usize) % n.max(1)
        };
        for _ in 0..3000 {
            let mut text: Vec<char> = base.chars().collect();
            for _ in 0..1 + next(4) {
                let at = next(text.len() + 1);
                match next(3) {
                    0 if at < text.len() => {
                        text.remove(at);
                    }
                    1 if at < text.len() => text[at] = alphabet[next(alphabet.len())],
                    _ => text.insert(at, alphabet[next(alphabet.len())]),
                }
            }
            let text: String = text.into_iter().collect();
            if let Ok(c) = parse(&text) {
                for name in c.profile_names() {
                    let _ = c.profile_on(&name, true);
                    let _ = c.profile_on(&name, false).map(|p| show(&p));
                }
            }
        }
    }
}
