//! What a service definition is rendered from: the service manager it is
//! for ([`Platform`]: the host's, or `$DOCKHAND_SERVICE_PLATFORM`) and
//! [`Inputs`], gathered from the running process (binary, profile, tools
//! on PATH, environment).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{launchd, systemd};
use crate::config::Context;
use crate::config::Profile;
use crate::error::{Error, IoContext, Result};

/// Environment variable that overrides the host's service platform.
pub const PLATFORM_ENV: &str = "DOCKHAND_SERVICE_PLATFORM";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Platform {
    /// A launchd user agent (macOS).
    Launchd,
    /// A systemd user unit (Linux).
    Systemd,
}

impl Platform {
    /// The host's platform: launchd on macOS, systemd elsewhere.
    pub fn host() -> Platform {
        if cfg!(target_os = "macos") {
            Platform::Launchd
        } else {
            Platform::Systemd
        }
    }

    /// `$DOCKHAND_SERVICE_PLATFORM` if set, else the host's.
    pub(crate) fn from_env() -> Result<Platform> {
        match std::env::var(PLATFORM_ENV).ok().filter(|v| !v.is_empty()) {
            None => Ok(Platform::host()),
            Some(v) if v == "launchd" => Ok(Platform::Launchd),
            Some(v) if v == "systemd" => Ok(Platform::Systemd),
            Some(v) => Err(Error::Config(format!(
                "{PLATFORM_ENV}={v:?} is not one of \"launchd\", \"systemd\": unset it to use the host's service manager"
            ))),
        }
    }

    /// The platform that install/uninstall/status/restart act on; refuses
    /// hosts that have neither launchd nor systemd (unless overridden).
    pub(crate) fn for_actions() -> Result<Platform> {
        let overridden = std::env::var_os(PLATFORM_ENV).is_some_and(|v| !v.is_empty());
        if !overridden && !cfg!(any(target_os = "macos", target_os = "linux")) {
            return Err(Error::ServiceManager(format!(
                "unsupported platform `{}`: dockhand service supports launchd (macOS) and systemd (Linux); run `dockhand run` from your own service manager instead",
                std::env::consts::OS
            )));
        }
        Platform::from_env()
    }
}

/// Everything a service definition is rendered from. Built from the running
/// process by [`Inputs::gather`]; tests build their own.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Absolute path of the dockhand binary.
    pub binary: PathBuf,
    /// Profile name, passed as `--profile`.
    pub profile: String,
    /// launchd label.
    pub label: String,
    /// Absolute config path, passed as `--config` when a non-default config
    /// is used.
    pub config: Option<PathBuf>,
    /// The profile's own log file (dockhand's rotated log).
    pub log_file: PathBuf,
    pub start_timeout: Duration,
    pub stop_timeout: Duration,
    pub home: PathBuf,
    /// Login name, for nix's `/etc/profiles/per-user/$USER/bin`.
    pub user: Option<String>,
    /// Directories where colima, limactl, docker and qemu were found on the
    /// installing PATH, in PATH order, without duplicates.
    pub tool_dirs: Vec<PathBuf>,
    pub colima_home: Option<PathBuf>,
    pub lima_home: Option<PathBuf>,
    pub docker_config: Option<PathBuf>,
    /// Where dockhand looks for its config and keeps its state, when set
    /// at install time: the service must resolve the same paths as the
    /// shell that `dockhand status` runs in.
    pub xdg_config_home: Option<PathBuf>,
    pub xdg_state_home: Option<PathBuf>,
    /// The profile's `listen` socket: rendered for socket activation.
    pub listen: Option<PathBuf>,
}

/// The programs whose directories go first on the service's PATH.
/// `qemu-img` stands in for the `qemu-system-*` binaries beside it;
/// `krunkit` is Colima's `vm_type = "krunkit"` hypervisor.
pub const TOOLS: [&str; 6] = [
    "colima", "limactl", "docker", "qemu-img", "krunkit", "dockerd",
];

impl Inputs {
    /// Inputs from this process: the absolute path of the running binary,
    /// the tools found on `$PATH`, and the environment.
    pub fn gather(ctx: &Context, profile: &Profile) -> Result<Inputs> {
        // Not canonicalized: Homebrew's /opt/homebrew/bin/dockhand is a
        // link into a versioned Cellar path that an upgrade removes.
        let binary = std::env::current_exe()
            .and_then(std::path::absolute)
            .ctx(|| "cannot find the path of the running dockhand binary".into())?;
        let env = &ctx.config.env;
        let path_var = std::env::var_os("PATH").unwrap_or_default();
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(|v| absolute(Path::new(&v)))
        };
        Ok(Inputs {
            binary,
            profile: profile.name.clone(),
            label: profile.label.clone(),
            config: ctx.config.source.explicit_path().map(absolute),
            log_file: profile.log_file.clone(),
            start_timeout: profile.start_timeout,
            stop_timeout: profile.stop_timeout,
            home: env.home.clone(),
            user: ["USER", "LOGNAME"]
                .iter()
                .filter_map(|k| std::env::var(k).ok())
                .find(|v| !v.is_empty()),
            tool_dirs: find_tool_dirs(&path_var, &TOOLS),
            colima_home: env.colima_home.as_deref().map(absolute),
            lima_home: env.lima_home.as_deref().map(absolute),
            docker_config: var("DOCKER_CONFIG"),
            xdg_config_home: env.xdg_config_home.as_deref().map(absolute),
            xdg_state_home: env.xdg_state_home.as_deref().map(absolute),
            listen: profile.listen.clone(),
        })
    }

    /// `run --profile P [--config C]`, after the binary.
    pub fn run_args(&self) -> Vec<String> {
        let mut v = vec!["run".to_string(), "--profile".into(), self.profile.clone()];
        if let Some(c) = &self.config {
            v.push("--config".into());
            v.push(c.to_string_lossy().into_owned());
        }
        v
    }

    /// The service's PATH: the tools' directories, then nix's and
    /// Homebrew's usual profile directories, then the system's; no
    /// duplicates, order kept.
    pub fn path_var(&self) -> String {
        let mut dirs: Vec<String> = self
            .tool_dirs
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        dirs.push("/run/current-system/sw/bin".into());
        if let Some(u) = &self.user {
            dirs.push(format!("/etc/profiles/per-user/{u}/bin"));
        }
        dirs.push(
            self.home
                .join(".nix-profile/bin")
                .to_string_lossy()
                .into_owned(),
        );
        for d in [
            "/opt/homebrew/bin",
            "/usr/local/bin",
            "/usr/bin",
            "/bin",
            "/usr/sbin",
            "/sbin",
        ] {
            dirs.push(d.into());
        }
        let mut seen = std::collections::HashSet::new();
        dirs.retain(|d| seen.insert(d.clone()));
        dirs.join(":")
    }
}

/// The plist's or the unit file's path.
pub(crate) fn definition_path(platform: Platform, ctx: &Context, i: &Inputs) -> PathBuf {
    let env = &ctx.config.env;
    match platform {
        Platform::Launchd => launchd::plist_path(&env.home, &i.label),
        Platform::Systemd => systemd::unit_path(&env.config_home(), &i.profile),
    }
}

/// Whole seconds, rounded up.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The directory of the first executable named `tool` on `path_var`, for
/// each tool, in PATH order and without duplicates. Relative PATH entries
/// are ignored (they mean nothing to a service).
pub fn find_tool_dirs(path_var: &OsStr, tools: &[&str]) -> Vec<PathBuf> {
    let entries: Vec<PathBuf> = std::env::split_paths(path_var)
        .filter(|d| d.is_absolute())
        .collect();
    let mut found: Vec<usize> = tools
        .iter()
        .filter_map(|t| {
            entries
                .iter()
                .position(|d| crate::sys::is_executable(&d.join(t)))
        })
        .collect();
    found.sort_unstable();
    found.dedup();
    let mut out: Vec<PathBuf> = Vec::new();
    for i in found {
        if !out.contains(&entries[i]) {
            out.push(entries[i].clone());
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    pub(crate) fn inputs() -> Inputs {
        Inputs {
            binary: "/opt/dockhand/bin/dockhand".into(),
            profile: "default".into(),
            label: "local.docker".into(),
            config: None,
            log_file: "/Users/u/Library/Logs/dockhand/default.log".into(),
            start_timeout: Duration::from_secs(180),
            stop_timeout: Duration::from_secs(60),
            home: "/Users/u".into(),
            user: Some("u".into()),
            tool_dirs: vec!["/opt/homebrew/bin".into(), "/nix/var/tools/bin".into()],
            colima_home: None,
            lima_home: None,
            docker_config: None,
            xdg_config_home: None,
            xdg_state_home: None,
            listen: None,
        }
    }

    #[test]
    fn path_dedups_and_keeps_order() {
        assert_eq!(
            inputs().path_var(),
            "/opt/homebrew/bin:/nix/var/tools/bin:/run/current-system/sw/bin:/etc/profiles/per-user/u/bin:/Users/u/.nix-profile/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
        );
        let mut i = inputs();
        i.user = None;
        i.tool_dirs.clear();
        assert!(!i.path_var().contains("per-user"));
    }

    #[test]
    fn run_args_with_and_without_config() {
        let mut i = inputs();
        assert_eq!(i.run_args(), ["run", "--profile", "default"]);
        i.config = Some("/c/d.toml".into());
        assert_eq!(
            i.run_args(),
            ["run", "--profile", "default", "--config", "/c/d.toml"]
        );
    }

    #[test]
    fn ceil_secs_rounds_up() {
        assert_eq!(ceil_secs(Duration::from_secs(60)), 60);
        assert_eq!(ceil_secs(Duration::from_millis(1500)), 2);
        assert_eq!(ceil_secs(Duration::from_millis(10)), 1);
    }

    #[test]
    fn tool_dirs_in_path_order() {
        let t = tempfile::tempdir().unwrap();
        let (a, b, c) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
        for d in [&a, &b, &c] {
            std::fs::create_dir(d).unwrap();
        }
        let exe = |p: PathBuf| {
            std::fs::write(&p, "").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        exe(b.join("docker"));
        exe(a.join("colima"));
        exe(a.join("limactl"));
        exe(c.join("docker")); // shadowed by b
        std::fs::write(c.join("qemu-img"), "").unwrap(); // not executable
        let path = std::env::join_paths([Path::new("rel"), &a, &b, &c]).unwrap();
        assert_eq!(find_tool_dirs(&path, &TOOLS), vec![a, b]);
    }
}
