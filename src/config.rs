//! Configuration: where the file is, what it may say, and the effective
//! profile with every default filled in.
//!
//! The file is TOML with profiles under `[profiles.<name>]`. Unknown keys,
//! wrong types, bad durations and engine tables that don't match `engine`
//! are refused with the file, line and column (exit code 2).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{Error, Result};

#[path = "config_ssh.rs"]
mod ssh;
pub use ssh::{SSH_BACKOFF_MAX, Ssh};

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

    /// Colima's base directory, found as Colima finds it (config/files.go):
    /// `$COLIMA_HOME`; else `~/.colima` if it exists; else
    /// `$XDG_CONFIG_HOME/colima` if that variable is set; else
    /// `~/.config/colima` if it exists; else `~/.colima` on macOS and
    /// `~/.config/colima` elsewhere. (Colima ignores a `$COLIMA_HOME` that
    /// doesn't exist yet; dockhand creates it before running colima.)
    pub fn colima_home(&self) -> PathBuf {
        if let Some(d) = &self.colima_home {
            return d.clone();
        }
        let dot = self.home.join(".colima");
        if dot.is_dir() {
            return dot;
        }
        if let Some(x) = &self.xdg_config_home {
            return x.join("colima");
        }
        let xdg = self.home.join(".config/colima");
        if xdg.is_dir() || !self.macos {
            return xdg;
        }
        dot
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

// ---------------------------------------------------------------- the file

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    profiles: BTreeMap<String, Spanned<RawProfile>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Colima,
    Dockerd,
    Command,
    Ssh,
}

impl EngineKind {
    fn as_str(self) -> &'static str {
        match self {
            EngineKind::Colima => "colima",
            EngineKind::Dockerd => "dockerd",
            EngineKind::Command => "command",
            EngineKind::Ssh => "ssh",
        }
    }
}

/// A duration written as "30s", "2m", "1h 30m".
#[derive(Debug, Clone, Copy)]
struct Dur(Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?} ({e}): expected a duration such as \"30s\", \"2m\" or \"1h\""
            ))
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    engine: Option<EngineKind>,
    socket: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
    log_file: Option<Spanned<String>>,
    label: Option<Spanned<String>>,
    probe_interval: Option<Spanned<Dur>>,
    probe_timeout: Option<Spanned<Dur>>,
    start_timeout: Option<Spanned<Dur>>,
    stop_timeout: Option<Spanned<Dur>>,
    restart_backoff_max: Option<Spanned<Dur>>,
    dockerd: Option<Spanned<RawDockerd>>,
    command: Option<Spanned<RawCommand>>,
    colima: Option<Spanned<RawColima>>,
    ssh: Option<Spanned<ssh::RawSsh>>,
    // On-demand proxy keys (issue 10): resolved by `Config::proxy_keys`.
    listen: Option<Spanned<String>>,
    on_demand: Option<Spanned<bool>>,
    idle_stop: Option<Spanned<Dur>>,
    docker_context: Option<Spanned<bool>>,
    passive: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDockerd {
    binary: Option<Spanned<String>>,
    data_root: Option<Spanned<String>>,
    exec_root: Option<Spanned<String>>,
    #[serde(default)]
    args: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    argv: Spanned<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColima {
    profile: Option<Spanned<String>>,
    cpu: Option<u32>,
    memory: Option<u32>,
    disk: Option<u32>,
    vm_type: Option<Spanned<String>>,
    arch: Option<String>,
    runtime: Option<Spanned<String>>,
    #[serde(default)]
    mounts: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
    create_timeout: Option<Spanned<Dur>>,
}

// ------------------------------------------------------- effective profile

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

fn ser_opt_dur<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_dur(d, s),
        None => s.serialize_none(),
    }
}

fn ser_dur<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

#[derive(Debug, Clone, Serialize)]
pub struct Dockerd {
    pub binary: String,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Command {
    pub argv: Vec<String>,
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

impl Profile {
    pub fn lock_path(&self) -> PathBuf {
        self.state_dir.join("lock")
    }
    pub fn state_path(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }
}

/// A loaded config: the source and the raw profiles.
pub struct Config {
    pub source: Source,
    pub env: Env,
    text: String,
    file: RawFile,
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
            Source::DefaultFile(p) | Source::Explicit(p) => read_config(p)?,
        };
        Config::parse(source, env, text)
    }

    pub fn parse(source: Source, env: Env, text: String) -> Result<Config> {
        refuse_nul(&source, &text)?;
        let file: RawFile = toml::from_str(&text).map_err(|e| {
            let at = e
                .span()
                .map(|s| line_col(&text, s.start))
                .map(|(l, c)| format!(":{l}:{c}"))
                .unwrap_or_default();
            Error::Config(format!(
                "{}{at}: {}",
                source.path().display(),
                e.message().trim_end()
            ))
        })?;
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
        let empty = RawProfile::default();
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

    fn err_at(&self, span: std::ops::Range<usize>, msg: String) -> Error {
        let (l, c) = line_col(&self.text, span.start);
        Error::Config(format!("{}:{l}:{c}: {msg}", self.source.path().display()))
    }

    /// A path key: `~`/`$HOME` expanded, and absolute (a service's working
    /// directory is `/`, so a relative path would mean something else there).
    fn path(&self, v: &Option<Spanned<String>>, key: &str, env: &Env) -> Result<Option<PathBuf>> {
        let Some(v) = v else { return Ok(None) };
        let p = env.expand(v.get_ref());
        if !p.is_absolute() {
            return Err(self.err_at(
                v.span(),
                format!(
                    "{key} = {:?} is relative: write an absolute path (`~/` and `$HOME/` may start it)",
                    v.get_ref()
                ),
            ));
        }
        Ok(Some(p))
    }

    /// A unix socket path must fit in sockaddr_un (107 bytes on Linux, 103
    /// on macOS); longer ones fail only when the engine binds them.
    fn socket_fits(
        &self,
        path: &Path,
        key: &str,
        span: Option<std::ops::Range<usize>>,
    ) -> Result<()> {
        // SAFETY: sockaddr_un is a plain C struct; only its size is used.
        let max =
            std::mem::size_of_val(&unsafe { std::mem::zeroed::<libc::sockaddr_un>() }.sun_path) - 1;
        let len = path.as_os_str().len();
        if len <= max {
            return Ok(());
        }
        let msg = format!(
            "{key} {} is {len} bytes, longer than a unix socket path may be ({max}): choose a shorter state_dir or socket",
            path.display()
        );
        Err(match span {
            Some(span) => self.err_at(span, msg),
            None => Error::Config(format!("{}: {msg}", self.source.path().display())),
        })
    }

    fn resolve(&self, name: &str, raw: &RawProfile, env: &Env) -> Result<Profile> {
        if !valid_name(name) {
            return Err(Error::Config(format!(
                "{}: profile name {name:?} may only contain letters, digits, '-', '_' and '.', and may not start with '.'",
                self.source.path().display()
            )));
        }
        let engine = self.engine_kind(name, raw, env)?;

        let (state_dir, log_file) = self.dirs(name, raw, env)?;
        let mut t = self.timings(raw)?;
        let label = self.label(name, raw)?;

        let (mut dockerd, mut command, mut colima, mut ssh) = (None, None, None, None);
        let socket = match engine {
            EngineKind::Dockerd => {
                let (d, socket) = self.dockerd(raw, env, &state_dir)?;
                dockerd = Some(d);
                socket
            }
            EngineKind::Command => {
                let (c, socket) = self.command(name, raw, env)?;
                command = Some(c);
                socket
            }
            EngineKind::Colima => {
                let (c, socket) = self.colima(name, raw, env)?;
                colima = Some(c);
                socket
            }
            EngineKind::Ssh => {
                let (s, socket) = self.ssh(name, raw, env, &state_dir)?;
                ssh = Some(s);
                // A lost connection is retried at least every 30 s.
                if raw.restart_backoff_max.is_none() {
                    t.restart_backoff_max = SSH_BACKOFF_MAX;
                }
                socket
            }
        };

        self.socket_fits(&socket, "socket", raw.socket.as_ref().map(Spanned::span))?;
        // The ssh engine is served through `listen` (its /_ping and
        // /version answers, its reconnects): on by default.
        let default_listen = ssh.as_ref().map(|_| state_dir.join("docker.sock"));
        let proxy = self.proxy_keys(name, raw, env, &socket, default_listen)?;

        Ok(Profile {
            name: name.to_string(),
            engine,
            socket,
            state_dir,
            log_file,
            label,
            probe_interval: t.probe_interval,
            probe_timeout: t.probe_timeout,
            start_timeout: t.start_timeout,
            stop_timeout: t.stop_timeout,
            restart_backoff_max: t.restart_backoff_max,
            dockerd,
            command,
            colima,
            ssh,
            listen: proxy.listen,
            on_demand: proxy.on_demand,
            idle_stop: proxy.idle_stop,
            docker_context: proxy.docker_context,
            passive: proxy.passive,
        })
    }

    /// `state_dir` (its control socket must fit a socket address) and
    /// `log_file`, defaults filled in.
    fn dirs(&self, name: &str, raw: &RawProfile, env: &Env) -> Result<(PathBuf, PathBuf)> {
        let state_dir = self
            .path(&raw.state_dir, "state_dir", env)?
            .unwrap_or_else(|| env.state_home().join("dockhand").join(name));
        // The supervisor's control socket lives there.
        self.socket_fits(
            &state_dir.join("control.sock"),
            "the control socket",
            raw.state_dir.as_ref().map(Spanned::span),
        )?;
        let log_file = self
            .path(&raw.log_file, "log_file", env)?
            .unwrap_or_else(|| {
                if env.macos {
                    env.home
                        .join("Library/Logs/dockhand")
                        .join(format!("{name}.log"))
                } else {
                    state_dir.join("dockhand.log")
                }
            });
        Ok((state_dir, log_file))
    }

    /// `engine`, else the kind of the one engine table given, else the
    /// host's default; an engine table must match it.
    fn engine_kind(&self, name: &str, raw: &RawProfile, env: &Env) -> Result<EngineKind> {
        let implied = match (&raw.dockerd, &raw.command, &raw.colima, &raw.ssh) {
            (Some(_), None, None, None) => EngineKind::Dockerd,
            (None, Some(_), None, None) => EngineKind::Command,
            (None, None, Some(_), None) => EngineKind::Colima,
            (None, None, None, Some(_)) => EngineKind::Ssh,
            _ if env.macos => EngineKind::Colima,
            _ => EngineKind::Dockerd,
        };
        let engine = raw.engine.unwrap_or(implied);
        // An engine table must match `engine`.
        let tables = [
            (EngineKind::Dockerd, raw.dockerd.as_ref().map(Spanned::span)),
            (EngineKind::Command, raw.command.as_ref().map(Spanned::span)),
            (EngineKind::Colima, raw.colima.as_ref().map(Spanned::span)),
            (EngineKind::Ssh, raw.ssh.as_ref().map(Spanned::span)),
        ];
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

    /// The timing keys, defaults filled in, each within bounds.
    fn timings(&self, raw: &RawProfile) -> Result<Timings> {
        let dur = |v: &Option<Spanned<Dur>>, default: u64| {
            v.as_ref()
                .map(|d| d.get_ref().0)
                .unwrap_or(Duration::from_secs(default))
        };
        let probe_interval = dur(&raw.probe_interval, 30);
        let probe_timeout = dur(&raw.probe_timeout, 5);
        let start_timeout = dur(&raw.start_timeout, 180);
        let stop_timeout = dur(&raw.stop_timeout, 60);
        let restart_backoff_max = dur(&raw.restart_backoff_max, 300);
        for (key, v, value) in [
            ("probe_interval", &raw.probe_interval, probe_interval),
            ("probe_timeout", &raw.probe_timeout, probe_timeout),
            ("start_timeout", &raw.start_timeout, start_timeout),
            ("stop_timeout", &raw.stop_timeout, stop_timeout),
            (
                "restart_backoff_max",
                &raw.restart_backoff_max,
                restart_backoff_max,
            ),
        ] {
            if let Some(s) = v {
                if value < Duration::from_millis(10) {
                    return Err(self.err_at(
                        s.span(),
                        format!("{key} must be at least 10ms, such as \"1s\""),
                    ));
                }
                if value > MAX_DURATION {
                    return Err(self.err_at(s.span(), format!("{key} must be at most 365 days")));
                }
            }
        }
        if probe_timeout > probe_interval
            && let Some(s) = raw.probe_timeout.as_ref().or(raw.probe_interval.as_ref())
        {
            return Err(self.err_at(
                s.span(),
                format!(
                    "probe_timeout ({}) must not exceed probe_interval ({})",
                    humantime::format_duration(probe_timeout),
                    humantime::format_duration(probe_interval)
                ),
            ));
        }
        Ok(Timings {
            probe_interval,
            probe_timeout,
            start_timeout,
            stop_timeout,
            restart_backoff_max,
        })
    }

    /// The launchd label: checked, or derived from the profile's name.
    fn label(&self, name: &str, raw: &RawProfile) -> Result<String> {
        Ok(match &raw.label {
            Some(l) if !valid_name(l.get_ref()) => {
                return Err(self.err_at(
                    l.span(),
                    format!(
                        "label {:?} may only contain letters, digits, '-', '_' and '.', and may not start with '.' (it names the launchd job and its plist file)",
                        l.get_ref()
                    ),
                ));
            }
            Some(l) => l.get_ref().clone(),
            None if name == DEFAULT_PROFILE => "local.docker".into(),
            None => format!("local.docker.{name}"),
        })
    }

    /// `[dockerd]` with defaults under `state_dir`, and the socket.
    fn dockerd(&self, raw: &RawProfile, env: &Env, state_dir: &Path) -> Result<(Dockerd, PathBuf)> {
        let d = raw.dockerd.as_ref().map(Spanned::get_ref);
        let dockerd = Dockerd {
            binary: match d.and_then(|d| d.binary.as_ref()) {
                // A name is looked up on PATH; a path must be absolute.
                Some(b) if b.get_ref().contains('/') => self
                    .path(&Some(b.clone()), "binary", env)?
                    .expect("given")
                    .to_string_lossy()
                    .into_owned(),
                Some(b) => b.get_ref().clone(),
                None => "dockerd".into(),
            },
            data_root: self
                .path(d.map_or(&None, |d| &d.data_root), "data_root", env)?
                .unwrap_or_else(|| state_dir.join("data")),
            exec_root: self
                .path(d.map_or(&None, |d| &d.exec_root), "exec_root", env)?
                .unwrap_or_else(|| state_dir.join("exec")),
            args: d.map(|d| d.args.clone()).unwrap_or_default(),
        };
        // dockerd's containerd listens under the exec root.
        let exec_root = &dockerd.exec_root;
        self.socket_fits(
            &exec_root.join("containerd/containerd-debug.sock"),
            "containerd's socket (under exec_root)",
            d.and_then(|d| d.exec_root.as_ref()).map(Spanned::span),
        )?;
        let socket = self
            .path(&raw.socket, "socket", env)?
            .unwrap_or_else(|| state_dir.join("docker.sock"));
        Ok((dockerd, socket))
    }

    /// `[command]` (argv required) and the socket it serves (required).
    fn command(&self, name: &str, raw: &RawProfile, env: &Env) -> Result<(Command, PathBuf)> {
        let Some(c) = raw.command.as_ref() else {
            return Err(Error::Config(format!(
                "{}: profile `{name}` has engine = \"command\" but no [profiles.{name}.command] table with argv = [\"program\", \"arg\", ...]",
                self.source.path().display()
            )));
        };
        let argv = c.get_ref().argv.get_ref();
        if argv.is_empty() || argv[0].is_empty() {
            return Err(self.err_at(
                c.get_ref().argv.span(),
                "argv must name a program: argv = [\"program\", \"arg\", ...]".into(),
            ));
        }
        if argv[0].contains('/') && !Path::new(&argv[0]).is_absolute() {
            return Err(self.err_at(
                c.get_ref().argv.span(),
                format!(
                    "argv[0] = {:?} is relative: name a program on PATH or give its absolute path",
                    argv[0]
                ),
            ));
        }
        let command = Command { argv: argv.clone() };
        let socket = match self.path(&raw.socket, "socket", env)? {
            Some(s) => s,
            None => {
                return Err(Error::Config(format!(
                    "{}: profile `{name}` has engine = \"command\" but no socket: set socket to the unix socket the command serves the Docker API on",
                    self.source.path().display()
                )));
            }
        };
        Ok((command, socket))
    }

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
    fn colima(&self, name: &str, raw: &RawProfile, env: &Env) -> Result<(Colima, PathBuf)> {
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
            mounts: c.map(|c| c.mounts.clone()).unwrap_or_default(),
            args: c.map(|c| c.args.clone()).unwrap_or_default(),
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

/// The timing keys, resolved.
struct Timings {
    probe_interval: Duration,
    probe_timeout: Duration,
    start_timeout: Duration,
    stop_timeout: Duration,
    restart_backoff_max: Duration,
}

/// The on-demand proxy's keys, resolved.
struct ProxyKeys {
    listen: Option<PathBuf>,
    on_demand: bool,
    idle_stop: Option<Duration>,
    docker_context: bool,
    passive: Option<Vec<String>>,
}

impl Config {
    /// `listen`, `on_demand`, `idle_stop`, `docker_context`, `passive`:
    /// all but `listen` need `listen`; `listen` is not the engine's socket.
    fn proxy_keys(
        &self,
        name: &str,
        raw: &RawProfile,
        env: &Env,
        socket: &Path,
        default_listen: Option<PathBuf>,
    ) -> Result<ProxyKeys> {
        let listen = self.listen_key(name, raw, env, socket)?.or(default_listen);
        if listen.is_none() {
            self.needs_listen(name, raw)?;
        }
        let idle_stop = raw.idle_stop.as_ref().map(|d| (d.get_ref().0, d.span()));
        if let Some((d, span)) = &idle_stop {
            if *d < Duration::from_secs(1) {
                return Err(self.err_at(
                    span.clone(),
                    "idle_stop must be at least 1s, such as \"15m\" (leave it out to never stop an idle engine)".into(),
                ));
            }
            if *d > MAX_DURATION {
                return Err(self.err_at(span.clone(), "idle_stop must be at most 365 days".into()));
            }
        }
        let passive = self.passive_key(raw)?;
        Ok(ProxyKeys {
            docker_context: raw
                .docker_context
                .as_ref()
                .map(|v| *v.get_ref())
                .unwrap_or(listen.is_some()),
            listen,
            on_demand: raw.on_demand.as_ref().is_some_and(|v| *v.get_ref()),
            idle_stop: idle_stop.map(|(d, _)| d),
            passive,
        })
    }

    /// `listen`: a socket path that fits, is not the engine's socket, and
    /// can be a docker context's endpoint while `docker_context` is on.
    fn listen_key(
        &self,
        name: &str,
        raw: &RawProfile,
        env: &Env,
        socket: &Path,
    ) -> Result<Option<PathBuf>> {
        let listen = self.path(&raw.listen, "listen", env)?;
        if let (Some(l), Some(span)) = (&listen, raw.listen.as_ref().map(Spanned::span)) {
            self.socket_fits(l, "listen", Some(span.clone()))?;
            if l == socket {
                return Err(self.err_at(
                    span,
                    format!(
                        "listen {} is the engine's socket: dockhand serves clients on listen and talks to the engine on socket, so they must differ (for example listen = \"~/.local/state/dockhand/{name}/dockhand.sock\")",
                        l.display()
                    ),
                ));
            }
        }
        if let (Some(l), Some(span)) = (&listen, raw.listen.as_ref().map(Spanned::span))
            && l.to_string_lossy().contains([',', '"'])
            && raw.docker_context.as_ref().is_none_or(|v| *v.get_ref())
        {
            return Err(self.err_at(
                span,
                "listen may not contain ',' or '\"' while docker_context is on (the docker CLI reads its endpoint as comma-separated fields): choose another path or set docker_context = false".into(),
            ));
        }
        Ok(listen)
    }

    /// Without `listen`, the keys that need it are errors.
    fn needs_listen(&self, name: &str, raw: &RawProfile) -> Result<()> {
        let spans = [
            (
                "on_demand",
                raw.on_demand
                    .as_ref()
                    .filter(|v| *v.get_ref())
                    .map(Spanned::span),
            ),
            ("idle_stop", raw.idle_stop.as_ref().map(Spanned::span)),
            (
                "docker_context",
                raw.docker_context
                    .as_ref()
                    .filter(|v| *v.get_ref())
                    .map(Spanned::span),
            ),
            ("passive", raw.passive.as_ref().map(Spanned::span)),
        ];
        match spans.into_iter().find_map(|(key, s)| Some((key, s?))) {
            Some((key, span)) => Err(self.err_at(
                span,
                format!(
                    "{key} needs listen: dockhand can only see requests on a socket it serves; set listen = \"<path>.sock\" in [profiles.{name}] and point clients at it"
                ),
            )),
            None => Ok(()),
        }
    }

    /// `passive`: every entry a valid pattern.
    fn passive_key(&self, raw: &RawProfile) -> Result<Option<Vec<String>>> {
        let mut passive = None;
        if let Some(list) = &raw.passive {
            let mut out = Vec::new();
            for entry in list.get_ref() {
                if let Err(why) = crate::proxy::classify::Pattern::parse(entry.get_ref()) {
                    return Err(self.err_at(
                        entry.span(),
                        format!("passive entry {:?}: {why}", entry.get_ref()),
                    ));
                }
                out.push(entry.get_ref().clone());
            }
            passive = Some(out);
        }
        Ok(passive)
    }
}

/// The longest duration a key may hold: longer ones overflow timers.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Profile names and labels become file names: a safe alphabet, no
/// leading dot (`.` and `..` would name other directories).
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// The effective profile as TOML, for `dockhand config show`.
pub fn show(profile: &Profile) -> String {
    let mut profiles = BTreeMap::new();
    profiles.insert(profile.name.clone(), profile);
    let mut root = BTreeMap::new();
    root.insert("profiles", profiles);
    toml::to_string_pretty(&root).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
}

/// The largest config file read: a config is a few KiB.
pub const CONFIG_MAX: u64 = 1 << 20;

/// The config file's text: a regular file (a link to one is fine; a
/// device, FIFO or directory is refused without being read or waited on),
/// at most `CONFIG_MAX` bytes, UTF-8.
fn read_config(p: &Path) -> Result<String> {
    let bytes = crate::sys::file::read_regular(p, CONFIG_MAX, true).map_err(|e| {
        Error::Config(format!(
            "cannot read config {}: {e}{}",
            p.display(),
            match e.kind() {
                std::io::ErrorKind::NotFound =>
                    " (create it, or drop --config / DOCKHAND_CONFIG to use built-in defaults)",
                std::io::ErrorKind::InvalidInput =>
                    " (point --config or DOCKHAND_CONFIG at a TOML file of at most 1 MiB)",
                _ => "",
            }
        ))
    })?;
    String::from_utf8(bytes).map_err(|e| {
        Error::Config(format!(
            "cannot read config {}: not UTF-8 text (invalid byte at offset {}): save it as UTF-8",
            p.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

/// No value may hold a NUL character (`"\u0000"`): no path, argument or
/// name can carry one to the OS (a socket path with one would fail
/// forever at run time). Refused with its line and column.
fn refuse_nul(source: &Source, text: &str) -> Result<()> {
    use toml::de::{DeTable, DeValue};
    fn walk(v: &Spanned<DeValue>, key: &str) -> Option<(String, usize)> {
        match v.get_ref() {
            DeValue::String(s) if s.contains('\0') => Some((key.to_string(), v.span().start)),
            DeValue::Array(a) => a
                .iter()
                .enumerate()
                .find_map(|(i, v)| walk(v, &format!("{key}[{i}]"))),
            DeValue::Table(t) => t.iter().find_map(|(k, v)| {
                if k.get_ref().contains('\0') {
                    return Some((format!("a key in {key}"), k.span().start));
                }
                walk(v, &format!("{key}.{}", k.get_ref()))
            }),
            _ => None,
        }
    }
    let Ok(table) = DeTable::parse(text) else {
        return Ok(());
    };
    let root = Spanned::new(table.span(), DeValue::Table(table.into_inner()));
    if let Some((key, at)) = walk(&root, "") {
        let (l, c) = line_col(text, at);
        return Err(Error::Config(format!(
            "{}:{l}:{c}: {} contains a NUL character (\\u0000), which no path, argument or name can hold: remove it",
            source.path().display(),
            key.trim_start_matches('.')
        )));
    }
    Ok(())
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::bare("/home/u".into())
    }

    fn parse(text: &str) -> Result<Config> {
        Config::parse(Source::Explicit("/c.toml".into()), env(), text.to_string())
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Err(Error::Config(m)) => m,
            Err(e) => panic!("wrong error kind: {e}"),
            Ok(_) => panic!("accepted: {text}"),
        }
    }

    #[test]
    fn proxy_keys_need_listen_and_a_socket_of_their_own() {
        let m = err("[profiles.default]\non_demand = true\n");
        assert!(m.starts_with("/c.toml:2:13: on_demand needs listen"), "{m}");
        let m = err("[profiles.default]\nidle_stop = \"10m\"\n");
        assert!(m.starts_with("/c.toml:2:13: idle_stop needs listen"), "{m}");
        let m = err("[profiles.default]\npassive = [\"/_ping\"]\n");
        assert!(m.starts_with("/c.toml:2:11: passive needs listen"), "{m}");
        let m = err("[profiles.default]\nsocket = \"/s/d.sock\"\nlisten = \"/s/d.sock\"\n");
        assert!(
            m.starts_with("/c.toml:3:10: listen /s/d.sock is the engine's socket"),
            "{m}"
        );
        let m = err("[profiles.default]\nlisten = \"/s/l.sock\"\nidle_stop = \"10ms\"\n");
        assert!(
            m.starts_with("/c.toml:3:13: idle_stop must be at least 1s"),
            "{m}"
        );
        let m =
            err("[profiles.default]\nlisten = \"/s/l.sock\"\npassive = [\"/_ping\", \"get /x\"]\n");
        assert!(
            m.starts_with("/c.toml:3:22: passive entry \"get /x\""),
            "{m}"
        );
        let m = err("[profiles.default]\nlisten = \"rel.sock\"\n");
        assert!(
            m.starts_with("/c.toml:2:10: listen = \"rel.sock\" is relative"),
            "{m}"
        );
        // Off by default; on with listen; docker_context follows listen.
        let p = parse("").unwrap().profile("default").unwrap();
        assert!(p.listen.is_none() && !p.on_demand && !p.docker_context);
        let c = parse(
            "[profiles.default]\nlisten = \"~/l.sock\"\non_demand = true\nidle_stop = \"15m\"\n",
        )
        .unwrap();
        let p = c.profile("default").unwrap();
        assert_eq!(p.listen, Some(PathBuf::from("/home/u/l.sock")));
        assert!(p.on_demand && p.docker_context);
        assert_eq!(p.idle_stop, Some(Duration::from_secs(900)));
        let shown = show(&p);
        assert!(shown.contains("idle_stop = \"15m\""), "{shown}");
        let p = parse("[profiles.default]\nlisten = \"/l.sock\"\ndocker_context = false\n")
            .unwrap()
            .profile("default")
            .unwrap();
        assert!(!p.docker_context);
    }

    #[test]
    fn defaults_without_file() {
        let c = parse("").unwrap();
        let p = c.profile("default").unwrap();
        assert_eq!(p.engine, EngineKind::Dockerd);
        assert_eq!(
            p.state_dir,
            PathBuf::from("/home/u/.local/state/dockhand/default")
        );
        assert_eq!(p.socket, p.state_dir.join("docker.sock"));
        assert_eq!(p.log_file, p.state_dir.join("dockhand.log"));
        assert_eq!(p.probe_interval, Duration::from_secs(30));
        assert_eq!(p.label, "local.docker");
    }

    #[test]
    fn macos_defaults_to_colima() {
        let mut e = env();
        e.macos = true;
        let c = Config::parse(Source::Defaults("/x".into()), e, String::new()).unwrap();
        let p = c.profile("default").unwrap();
        assert_eq!(p.engine, EngineKind::Colima);
        assert_eq!(
            p.socket,
            PathBuf::from("/home/u/.colima/default/docker.sock")
        );
        assert_eq!(
            p.log_file,
            PathBuf::from("/home/u/Library/Logs/dockhand/default.log")
        );
        assert_eq!(
            p.colima.unwrap().instance_dir(),
            PathBuf::from("/home/u/.colima/_lima/colima")
        );
    }

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
            home.join(".config/colima"),
            "an existing ~/.config/colima"
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

    #[test]
    fn nul_is_refused_anywhere_with_line_and_column() {
        for (text, at) in [
            ("[profiles.default]\nsocket = \"/a\\u0000\"\n", ":2:10:"),
            (
                "[profiles.default]\nengine = \"command\"\nsocket = \"/s\"\n[profiles.default.command]\nargv = [\"x\", \"\\U00000000\"]\n",
                ":5:14:",
            ),
            ("[profiles.\"a\\u0000\"]\n", ":1:11:"),
        ] {
            let e = err(text);
            assert!(e.contains("NUL") && e.contains(at), "{text}: {e}");
        }
        // Literal strings have no escapes: `'\u0000'` is six characters.
        assert!(parse("[profiles.default]\nsocket = '/a\\u0000'\n").is_ok());
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let m = err("[profiles.default]\nengine = \"dockerd\"\n  sockett = \"/x\"\n");
        assert!(m.starts_with("/c.toml:3:3: "), "{m}");
        assert!(m.contains("sockett"), "{m}");
    }

    #[test]
    fn wrong_type() {
        let m = err("[profiles.default]\nprobe_interval = 30\n");
        assert!(m.starts_with("/c.toml:2:18: "), "{m}");
    }

    #[test]
    fn bad_duration() {
        let m = err("[profiles.default]\nstop_timeout = \"soon\"\n");
        assert!(m.starts_with("/c.toml:2:16: "), "{m}");
        assert!(m.contains("expected a duration"), "{m}");
    }

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

    #[test]
    fn relative_paths_are_refused() {
        let m = err("[profiles.default]\nstate_dir = \"relative/dir\"\n");
        assert!(
            m.starts_with("/c.toml:2:13: state_dir = \"relative/dir\" is relative"),
            "{m}"
        );
        let m = err("[profiles.default.dockerd]\ndata_root = \"data\"\n");
        assert!(m.contains("data_root = \"data\" is relative"), "{m}");
        let m = err("[profiles.default.dockerd]\nbinary = \"./bin/dockerd\"\n");
        assert!(m.contains("binary = \"./bin/dockerd\" is relative"), "{m}");
        let m =
            err("[profiles.p]\nsocket = \"/s\"\n[profiles.p.command]\nargv = [\"bin/podman\"]\n");
        assert!(m.contains("argv[0] = \"bin/podman\" is relative"), "{m}");
        // A bare name is looked up on PATH.
        parse("[profiles.default.dockerd]\nbinary = \"dockerd-ce\"\n").unwrap();
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

    #[test]
    fn socket_paths_must_fit_a_sockaddr() {
        let long = format!("/{}", "x".repeat(120));
        let m = err(&format!("[profiles.default]\nsocket = \"{long}/d.sock\"\n"));
        assert!(m.starts_with("/c.toml:2:10: socket "), "{m}");
        assert!(m.contains("longer than a unix socket path may be"), "{m}");
        // The default socket under a long state_dir, and containerd's.
        let m = err(&format!("[profiles.default]\nstate_dir = \"{long}\"\n"));
        assert!(m.contains("longer than a unix socket path"), "{m}");
    }

    #[test]
    fn the_control_socket_must_fit_too() {
        // 95 + "/control.sock" = 108 bytes: one too many on Linux and macOS.
        let dir = format!("/{}", "s".repeat(94));
        let m = err(&format!(
            "[profiles.default]\nstate_dir = \"{dir}\"\nsocket = \"/tmp/d.sock\"\nengine = \"command\"\n[profiles.default.command]\nargv = [\"x\"]\n"
        ));
        assert!(m.starts_with("/c.toml:2:13: the control socket "), "{m}");
    }

    #[test]
    fn names_that_would_escape_their_directory() {
        for name in ["..", ".", ".hidden"] {
            let m = err(&format!("[profiles.\"{name}\"]\n"));
            assert!(m.contains("may not start with '.'"), "{name}: {m}");
        }
        let m = err("[profiles.default]\nlabel = \"../../escaped/evil\"\n");
        assert!(m.starts_with("/c.toml:2:9: label"), "{m}");
    }

    #[test]
    fn durations_have_a_ceiling() {
        let m = err("[profiles.default]\nprobe_interval = \"18446744073709551615s\"\n");
        assert!(m.contains("at most 365 days"), "{m}");
    }

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

    #[test]
    fn command_needs_argv_and_socket() {
        let m = err("[profiles.p]\nengine = \"command\"\nsocket = \"/s\"\n");
        assert!(m.contains("argv"), "{m}");
        let m = err("[profiles.p]\nengine = \"command\"\n[profiles.p.command]\nargv = [\"x\"]\n");
        assert!(m.contains("no socket"), "{m}");
        let m = err(
            "[profiles.p]\nengine = \"command\"\nsocket = \"/s\"\n[profiles.p.command]\nargv = []\n",
        );
        assert!(m.starts_with("/c.toml:5:8"), "{m}");
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
