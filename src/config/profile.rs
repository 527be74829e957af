//! The effective profile: every key resolved and defaulted, what the rest
//! of dockhand reads; and its TOML rendering for `dockhand config show`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::{Colima, Command, Dockerd, EngineKind, Ssh};

#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    #[serde(skip)]
    pub name: String,
    pub engine: EngineKind,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub log_file: PathBuf,
    pub label: String,
    #[serde(serialize_with = "ser_dur")]
    pub probe_interval: Duration,
    #[serde(serialize_with = "ser_dur")]
    pub probe_timeout: Duration,
    #[serde(serialize_with = "ser_dur")]
    pub start_timeout: Duration,
    #[serde(serialize_with = "ser_dur")]
    pub stop_timeout: Duration,
    #[serde(serialize_with = "ser_dur")]
    pub restart_backoff_max: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dockerd: Option<Dockerd>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Command>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colima: Option<Colima>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh: Option<Ssh>,
    /// The socket dockhand serves clients on (the on-demand proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<PathBuf>,
    /// Start with the engine stopped; start it at the first request.
    pub on_demand: bool,
    /// Stop the engine after it has been idle this long.
    #[serde(
        serialize_with = "ser_opt_dur",
        skip_serializing_if = "Option::is_none"
    )]
    pub idle_stop: Option<Duration>,
    /// Keep the docker context `dockhand[-<profile>]` pointing at `listen`.
    pub docker_context: bool,
    /// The profile's own list of passive requests (None: the default list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passive: Option<Vec<String>>,
}

impl Profile {
    pub fn lock_path(&self) -> PathBuf {
        self.state_dir.join("lock")
    }
    pub fn state_path(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }
}

pub(super) fn ser_opt_dur<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_dur(d, s),
        None => s.serialize_none(),
    }
}

pub(super) fn ser_dur<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// The effective profile as TOML, for `dockhand config show`.
pub fn show(profile: &Profile) -> String {
    let mut profiles = BTreeMap::new();
    profiles.insert(profile.name.clone(), profile);
    let mut root = BTreeMap::new();
    root.insert("profiles", profiles);
    toml::to_string_pretty(&root).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::parse;

    #[test]
    fn show_prints_a_config_that_reads_back_the_same() {
        let texts = [
            "[profiles.default]\nprobe_interval = \"2m 30s\"\n[profiles.default.dockerd]\nargs = [\"--debug\"]\n",
            "[profiles.w]\nengine = \"colima\"\n[profiles.w.colima]\ncpu = 4\nvm_type = \"vz\"\nmounts = [\"~/src:w\"]\n",
            "[profiles.p]\nengine = \"command\"\nsocket = \"/s\"\n[profiles.p.command]\nargv = [\"podman\", \"system\", \"service\"]\n",
        ];
        for text in texts {
            let c = parse(text).unwrap();
            let name = c.profile_names()[0].clone();
            let p = c.profile(&name).unwrap();
            let shown = show(&p);
            let again = parse(&shown).unwrap_or_else(|e| panic!("{e}\n{shown}"));
            assert_eq!(show(&again.profile(&name).unwrap()), shown);
        }
    }

    #[test]
    fn show_round_trips_durations() {
        let c = parse("[profiles.default]\nprobe_interval = \"2m\"\n").unwrap();
        let s = show(&c.profile("default").unwrap());
        assert!(s.contains("probe_interval = \"2m\""), "{s}");
        assert!(s.contains("[profiles.default.dockerd]"), "{s}");
    }
}
