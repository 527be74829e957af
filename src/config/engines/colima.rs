//! `engine = "colima"`: the `[colima]` table checked against what Colima
//! and Lima accept, the names and files Colima and Lima keep for the
//! instance, and the socket Colima forwards.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::Input;
use crate::config::Config;
use crate::config::file::{Dur, Strings};
use crate::config::profile::ser_dur;
use crate::config::resolve::{MAX_DURATION, valid_name};
use crate::error::{Error, Result};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawColima {
    profile: Option<Spanned<String>>,
    cpu: Option<u32>,
    memory: Option<u32>,
    disk: Option<u32>,
    vm_type: Option<Spanned<String>>,
    arch: Option<String>,
    runtime: Option<Spanned<String>>,
    #[serde(default)]
    mounts: Strings,
    #[serde(default)]
    args: Strings,
    create_timeout: Option<Spanned<Dur>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Colima {
    /// Colima's profile name as given to `colima start <profile>`.
    pub profile: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vm_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    pub runtime: String,
    pub mounts: Vec<String>,
    pub args: Vec<String>,
    /// How long the first start, which creates the instance (an image
    /// download), may take; `start_timeout` applies to the others.
    #[serde(serialize_with = "ser_dur")]
    pub create_timeout: Duration,
    /// Colima's base directory (`$COLIMA_HOME` or `~/.colima`).
    #[serde(skip)]
    pub home: PathBuf,
    /// Lima's directory (`$LIMA_HOME` or `<colima home>/_lima`).
    #[serde(skip)]
    pub lima_home: PathBuf,
}

impl Colima {
    /// The Lima instance ID (also the docker context name): `colima` for the
    /// default profile, `colima-<name>` otherwise.
    pub fn instance(&self) -> String {
        match short_profile(&self.profile) {
            "default" => "colima".into(),
            other => format!("colima-{other}"),
        }
    }
    /// Lima's directory of this instance (`ha.pid`, `qemu.pid`/`vz.pid`, ...).
    pub fn instance_dir(&self) -> PathBuf {
        self.lima_home.join(self.instance())
    }
    /// Lima's usernet daemon's pid file, one per LIMA_HOME (lima
    /// pkg/networks/usernet/config.go, recoincile.go).
    pub fn usernet_pidfile(&self) -> PathBuf {
        self.lima_home.join("_networks/user-v2/usernet_user-v2.pid")
    }
    /// Colima's helper daemon's pid file (colima daemon/process/process.go
    /// Dir, cmd/daemon/daemon.go).
    pub fn daemon_pidfile(&self) -> PathBuf {
        self.home
            .join(short_profile(&self.profile))
            .join("daemon/daemon.pid")
    }
}

/// Lima's rule for instance names (lima pkg/identifiers/validate.go):
/// letters and digits, separated by single `.`, `_` or `-`; at most 76
/// characters (Colima's instance names include the `colima-` prefix).
pub fn lima_instance_name_ok(s: &str) -> bool {
    s.len() <= 76
        && s.split(['.', '_', '-'])
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Default `create_timeout`: a first start downloads a VM image.
pub const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Colima's short profile name: "", "colima" and "default" are `default`;
/// a leading `colima-` is stripped.
pub fn short_profile(p: &str) -> &str {
    match p {
        "" | "colima" | "default" => "default",
        other => other.strip_prefix("colima-").unwrap_or(other),
    }
}

impl Config {
    /// `vm_type` one Colima knows, `runtime` one with a Docker API.
    fn colima_choices(&self, c: Option<&RawColima>) -> Result<()> {
        if let Some(v) = c.and_then(|c| c.vm_type.as_ref())
            && !["qemu", "vz", "krunkit"].contains(&v.get_ref().as_str())
        {
            return Err(self.err_at(
                v.span(),
                format!(
                    "vm_type {:?} is not one of \"qemu\", \"vz\", \"krunkit\"",
                    v.get_ref()
                ),
            ));
        }
        if let Some(v) = c.and_then(|c| c.runtime.as_ref())
            && v.get_ref() != "docker"
        {
            return Err(self.err_at(
                v.span(),
                format!(
                    "runtime {:?} serves no Docker API: dockhand supervises runtime = \"docker\"",
                    v.get_ref()
                ),
            ));
        }
        Ok(())
    }

    /// `[colima]`, checked against what Colima and Lima accept, and the
    /// socket Colima forwards.
    pub(super) fn colima(&self, i: &Input) -> Result<(Colima, PathBuf)> {
        let (name, raw, env) = (i.name, i.raw, i.env);
        let c = raw.colima.as_ref().map(Spanned::get_ref);
        self.colima_choices(c)?;
        let col = Colima {
            profile: match c.and_then(|c| c.profile.as_ref()) {
                Some(p) if !valid_name(p.get_ref()) => {
                    return Err(self.err_at(
                        p.span(),
                        format!(
                            "colima profile {:?} may only contain letters, digits, '-', '_' and '.', and may not start with '.'",
                            p.get_ref()
                        ),
                    ));
                }
                Some(p) => p.get_ref().clone(),
                None => name.to_string(),
            },
            cpu: c.and_then(|c| c.cpu),
            memory: c.and_then(|c| c.memory),
            disk: c.and_then(|c| c.disk),
            vm_type: c.and_then(|c| c.vm_type.as_ref().map(|v| v.get_ref().clone())),
            arch: c.and_then(|c| c.arch.clone()),
            runtime: "docker".into(),
            mounts: c.map(|c| c.mounts.0.clone()).unwrap_or_default(),
            args: c.map(|c| c.args.0.clone()).unwrap_or_default(),
            create_timeout: match c.and_then(|c| c.create_timeout.as_ref()) {
                Some(d)
                    if d.get_ref().0 < Duration::from_secs(1) || d.get_ref().0 > MAX_DURATION =>
                {
                    return Err(self.err_at(
                        d.span(),
                        "create_timeout must be between 1s and 365 days, such as \"15m\"".into(),
                    ));
                }
                Some(d) => d.get_ref().0,
                None => DEFAULT_CREATE_TIMEOUT,
            },
            home: env.colima_home(),
            lima_home: env.lima_home(),
        };
        if !lima_instance_name_ok(&col.instance()) {
            let msg = format!(
                "Lima instance name {:?} (colima profile {:?}) is invalid: Lima allows letters and digits separated by single '.', '_' or '-', at most 76 characters with the \"colima-\" prefix; set [profiles.{name}.colima] profile to such a name",
                col.instance(),
                col.profile
            );
            return Err(match c.and_then(|c| c.profile.as_ref()) {
                Some(p) => self.err_at(p.span(), msg),
                None => Error::Config(format!("{}: {msg}", self.source.path().display())),
            });
        }
        let socket = self.path(&raw.socket, "socket", env)?.unwrap_or_else(|| {
            col.home
                .join(short_profile(&col.profile))
                .join("docker.sock")
        });
        Ok((col, socket))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::DEFAULT_CREATE_TIMEOUT;
    use crate::config::testing::{err, parse};

    #[test]
    fn colima_instance_names() {
        let c = parse("[profiles.work]\nengine = \"colima\"\n").unwrap();
        let p = c.profile("work").unwrap();
        let col = p.colima.unwrap();
        assert_eq!(col.instance(), "colima-work");
        // Off macOS, Colima defaults to ~/.config/colima.
        assert_eq!(
            p.socket,
            PathBuf::from("/home/u/.config/colima/work/docker.sock")
        );
        assert_eq!(p.label, "local.docker.work");
    }

    #[test]
    fn colima_profiles_follow_limas_instance_name_rule() {
        for bad in ["a..b", "a-", "a_.b", "x".repeat(70).as_str()] {
            let m = err(&format!("[profiles.default.colima]\nprofile = {bad:?}\n"));
            assert!(
                m.starts_with("/c.toml:2:11: Lima instance name"),
                "{bad}: {m}"
            );
        }
        // A dockhand profile name used as the colima profile is checked too.
        let m = err("[profiles.\"a--b\"]\nengine = \"colima\"\n");
        assert!(m.contains("\"colima-a--b\""), "{m}");
        let c = parse("[profiles.default.colima]\nprofile = \"w.1_b-2\"\n").unwrap();
        let col = c.profile("default").unwrap().colima.unwrap();
        assert_eq!(col.instance(), "colima-w.1_b-2");
        assert_eq!(col.create_timeout, DEFAULT_CREATE_TIMEOUT);
        let c = parse("[profiles.default.colima]\ncreate_timeout = \"30m\"\n").unwrap();
        let col = c.profile("default").unwrap().colima.unwrap();
        assert_eq!(col.create_timeout, Duration::from_secs(1800));
        assert!(
            err("[profiles.default.colima]\ncreate_timeout = \"1ms\"\n").contains("create_timeout")
        );
    }

    #[test]
    fn a_colima_profile_stays_inside_colima_dirs() {
        let m = err("[profiles.default.colima]\nprofile = \"../../etc\"\n");
        assert!(m.starts_with("/c.toml:2:11: colima profile"), "{m}");
    }
}
