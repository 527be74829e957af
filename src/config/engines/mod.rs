//! The engine kinds, from config's side: which kind a profile runs, and
//! the one place each kind's table is resolved (`engine_spec`).
//!
//! Each kind has a file here with its raw table, its resolved table and its
//! resolution (`fn <kind>(&self, &Input) -> Result<(<Kind>, socket)>`).
//! A new kind adds such a file, a variant to `EngineKind` and `EngineSpec`
//! and their arms below, its table's key in `file::RawProfile` and its
//! field in `Profile`.

pub mod colima;
pub mod colima_release;
pub mod command;
pub mod dockerd;
pub mod ssh;

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::file::RawProfile;
use super::{Config, Env, Profile};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Colima,
    Dockerd,
    Command,
    Ssh,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Colima => "colima",
            EngineKind::Dockerd => "dockerd",
            EngineKind::Command => "command",
            EngineKind::Ssh => "ssh",
        }
    }
}

/// A profile's engine table, resolved: one variant per kind.
pub(super) enum EngineSpec {
    Dockerd(dockerd::Dockerd),
    Command(command::Command),
    Colima(colima::Colima),
    Ssh(ssh::Ssh),
}

impl EngineSpec {
    /// Into the profile's field of its kind.
    pub(super) fn store(self, p: &mut Profile) {
        match self {
            EngineSpec::Dockerd(d) => p.dockerd = Some(d),
            EngineSpec::Command(c) => p.command = Some(c),
            EngineSpec::Colima(c) => p.colima = Some(c),
            EngineSpec::Ssh(s) => p.ssh = Some(s),
        }
    }

    /// The kind's own defaults of keys every profile has: the ssh engine
    /// is served through `listen` (its /_ping and /version answers while
    /// it reconnects) and retries a lost connection at least every 30 s.
    pub(super) fn defaults(&self, state_dir: &Path) -> KindDefaults {
        match self {
            EngineSpec::Ssh(_) => KindDefaults {
                listen: Some(state_dir.join("docker.sock")),
                restart_backoff_max: Some(ssh::SSH_BACKOFF_MAX),
            },
            _ => KindDefaults::default(),
        }
    }
}

/// Defaults an engine kind sets for profile-wide keys (None: the usual).
#[derive(Default)]
pub(super) struct KindDefaults {
    pub listen: Option<PathBuf>,
    pub restart_backoff_max: Option<std::time::Duration>,
}

/// What a kind's resolution works from.
pub(super) struct Input<'a> {
    /// The dockhand profile's name.
    pub name: &'a str,
    pub raw: &'a RawProfile,
    pub env: &'a Env,
    /// The profile's resolved `state_dir`.
    pub state_dir: &'a Path,
}

/// Each kind's table in the raw profile, where it was given.
fn tables(raw: &RawProfile) -> [(EngineKind, Option<Range<usize>>); 4] {
    [
        (EngineKind::Dockerd, raw.dockerd.as_ref().map(Spanned::span)),
        (EngineKind::Command, raw.command.as_ref().map(Spanned::span)),
        (EngineKind::Colima, raw.colima.as_ref().map(Spanned::span)),
        (EngineKind::Ssh, raw.ssh.as_ref().map(Spanned::span)),
    ]
}

impl Config {
    /// `engine`, else the kind of the one engine table given, else the
    /// host's default; an engine table must match it.
    pub(super) fn engine_kind(
        &self,
        name: &str,
        raw: &RawProfile,
        env: &Env,
    ) -> Result<EngineKind> {
        let tables = tables(raw);
        let mut given = tables.iter().filter(|(_, span)| span.is_some());
        let implied = match (given.next(), given.next()) {
            (Some((kind, _)), None) => *kind,
            _ if env.macos => EngineKind::Colima,
            _ => EngineKind::Dockerd,
        };
        let engine = raw.engine.unwrap_or(implied);
        // An engine table must match `engine`.
        for (kind, span) in tables {
            if let Some(span) = span
                && kind != engine
            {
                return Err(self.err_at(
                    span,
                    format!(
                        "profile `{name}` has a [{kind}] table but engine = \"{}\": remove the table or set engine = \"{kind}\"",
                        engine.as_str(),
                        kind = kind.as_str()
                    ),
                ));
            }
        }
        Ok(engine)
    }

    /// The engine table of `kind`, resolved by its kind's file, and the
    /// socket the engine serves the Docker API on.
    pub(super) fn engine_spec(
        &self,
        kind: EngineKind,
        input: &Input,
    ) -> Result<(EngineSpec, PathBuf)> {
        Ok(match kind {
            EngineKind::Dockerd => {
                let (d, socket) = self.dockerd(input)?;
                (EngineSpec::Dockerd(d), socket)
            }
            EngineKind::Command => {
                let (c, socket) = self.command(input)?;
                (EngineSpec::Command(c), socket)
            }
            EngineKind::Colima => {
                let (c, socket) = self.colima(input)?;
                (EngineSpec::Colima(c), socket)
            }
            EngineKind::Ssh => {
                let (s, socket) = self.ssh(input)?;
                (EngineSpec::Ssh(s), socket)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::EngineKind;
    use crate::config::testing::{err, parse};

    #[test]
    fn engine_table_mismatch() {
        let m =
            err("[profiles.default]\nengine = \"dockerd\"\n[profiles.default.colima]\ncpu = 2\n");
        assert!(m.starts_with("/c.toml:3:"), "{m}");
        assert!(m.contains("[colima] table but engine = \"dockerd\""), "{m}");
    }

    #[test]
    fn engine_follows_the_one_engine_table() {
        let c = parse("[profiles.default.colima]\ncpu = 4\n").unwrap();
        assert_eq!(c.profile("default").unwrap().engine, EngineKind::Colima);
        let m = err("[profiles.default.colima]\ncpu = 4\n[profiles.default.dockerd]\nargs = []\n");
        assert!(m.contains("table but engine ="), "{m}");
    }
}
