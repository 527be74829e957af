//! `dockhand service`: install the supervisor as a launchd user agent
//! (macOS) or a systemd user unit (Linux).
//!
//! The definitions are rendered by pure functions ([`launchd::render`],
//! [`systemd::render`]) from an [`Inputs`] value, so that they can be tested
//! and reviewed on any host. Everything that touches the machine (finding
//! the binary and the tools, writing files, running `launchctl` /
//! `systemctl`) lives in this module's helpers and in the two platform
//! modules' `install` / `uninstall` / `status` / `restart`.
//!
//! The platform is the host's (macOS: launchd, otherwise systemd) unless
//! the environment variable `DOCKHAND_SERVICE_PLATFORM=launchd|systemd`
//! overrides it: a testing and override knob, used by the tests to drive
//! the launchd path on Linux with a stand-in `launchctl`.

pub mod activation;
pub mod competitors;
pub mod handoff;
pub mod launchd;
pub mod nix_owned;
pub mod systemd;
pub mod unload;

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use crate::cli::Context;
use crate::config::Profile;
use crate::error::{Error, IoContext, Result};

/// Environment variable that overrides the host's service platform.
pub const PLATFORM_ENV: &str = "DOCKHAND_SERVICE_PLATFORM";

#[derive(Debug, clap::Subcommand)]
pub enum ServiceCmd {
    /// Render the service definition to stdout; touches nothing.
    Print {
        /// Which service manager to render for (default: the host's).
        #[arg(long, value_enum)]
        platform: Option<Platform>,
    },
    /// Write the service definition (atomically, mode 0644) and load it.
    /// Re-running with nothing changed changes nothing.
    Install {
        /// Install even though another agent (brew services, home-manager,
        /// limactl autostart) manages the same Colima instance.
        #[arg(long)]
        force: bool,
    },
    /// Stop and unload the service and remove its definition.
    Uninstall,
    /// Show whether the service is installed and running, the service
    /// manager's view and the supervisor's own state. Exit 0 when installed
    /// and running, 1 otherwise.
    Status,
    /// Restart the supervisor; it hands a healthy engine over to the new
    /// one, which adopts it (restarted only if its settings changed).
    Restart {
        /// Restart the engine too.
        #[arg(long)]
        engine: bool,
    },
    /// For activation scripts (home-manager, nix-darwin) that are about to
    /// restart or reload the service themselves: the running supervisor
    /// hands its engine over if it is stopped within the next 2 minutes.
    PrepareRestart {
        /// Let the engine be stopped with the supervisor instead.
        #[arg(long)]
        engine: bool,
    },
}

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
    fn for_actions() -> Result<Platform> {
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

// ------------------------------------------------------ external commands

/// What the service manager says of the job (for `doctor` and `up`): it
/// knows it (launchd: `print` finds it; systemd: the unit is loaded and
/// enabled), and it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub known: bool,
    pub running: bool,
}

/// A service manager's command-line tool (`launchctl`, `systemctl`),
/// located on PATH once and run without a shell.
pub(crate) struct Tool {
    name: &'static str,
    path: PathBuf,
    /// Leading arguments of every call (`--user` for systemctl).
    prefix: &'static [&'static str],
}

impl Tool {
    pub(crate) fn locate(
        name: &'static str,
        prefix: &'static [&'static str],
        needed_for: &str,
    ) -> Result<Tool> {
        match crate::sys::which(name) {
            Some(path) => Ok(Tool { name, path, prefix }),
            None => Err(Error::ServiceManager(format!(
                "`{name}` not found on PATH: {needed_for}"
            ))),
        }
    }

    fn display(&self, args: &[&str]) -> String {
        let mut s = self.name.to_string();
        for a in self.prefix.iter().chain(args) {
            s.push(' ');
            s.push_str(a);
        }
        s
    }

    /// Run and capture; any exit status is returned to the caller.
    pub(crate) fn output(&self, args: &[&str]) -> Result<Output> {
        std::process::Command::new(&self.path)
            .args(self.prefix)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .ctx(|| format!("cannot run `{}`", self.display(args)))
    }

    /// Run; a non-zero exit is [`Error::Command`] with its stderr.
    pub(crate) fn run(&self, args: &[&str]) -> Result<Output> {
        let out = self.output(args)?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(self.failure(args, &out, ""))
        }
    }

    pub(crate) fn failure(&self, args: &[&str], out: &Output, hint: &str) -> Error {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let text = if stderr.trim().is_empty() {
            stdout.trim()
        } else {
            stderr.trim()
        };
        let status = match out.status.code() {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".into(),
        };
        let mut detail = if text.is_empty() {
            status
        } else {
            format!("{} ({status})", text.replace('\n', "; "))
        };
        detail.push_str(hint);
        Error::Command {
            command: self.display(args),
            detail,
        }
    }
}

// ----------------------------------------------------------------- files

/// What is at a definition's path compared with what would be written.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FileState {
    Missing,
    Same,
    Different,
}

/// Compare the file at `path` with `content`. A symlink (for example one
/// that nix-darwin or home-manager manages) is refused: dockhand never
/// writes through or removes someone else's link.
pub(crate) fn file_state(path: &Path, content: &str) -> Result<FileState> {
    if let Some(n) = nix_owned::recognise(path).filter(|_| !is_symlink(path)) {
        return Err(n.refusal(path));
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileState::Missing),
        Err(e) => return Err(Error::io(format!("cannot inspect {}", path.display()), e)),
        Ok(m) if m.file_type().is_symlink() => {
            return Err(Error::UnsafePath(format!(
                "{} is a symlink (managed by nix-darwin or home-manager?): dockhand won't write through it or remove it; remove it yourself or keep managing the service there",
                path.display()
            )));
        }
        Ok(m) if !m.is_file() => {
            return Err(Error::UnsafePath(format!(
                "{} exists and is not a regular file: move it away first",
                path.display()
            )));
        }
        Ok(_) => {}
    }
    let old = std::fs::read(path).ctx(|| format!("cannot read {}", path.display()))?;
    Ok(if old == content.as_bytes() {
        FileState::Same
    } else {
        FileState::Different
    })
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Something (ours or nix's) is at `path`.
pub(crate) fn present(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Write `content` to `path` atomically: a temporary file in the same
/// directory, fsync, mode 0644, rename over the old file. Creates the
/// directory if needed.
pub(crate) fn write_atomic(path: &Path, content: &str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).ctx(|| format!("cannot create {}", dir.display()))?;
    crate::state::write_atomic(path, content.as_bytes(), 0o644)
}

/// Make sure an unchanged file has mode 0644 (launchd refuses plists that
/// others can write).
pub(crate) fn fix_mode(path: &Path) -> Result<()> {
    let m = std::fs::metadata(path).ctx(|| format!("cannot inspect {}", path.display()))?;
    if m.permissions().mode() & 0o7777 != 0o644 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            .ctx(|| format!("cannot chmod 0644 {}", path.display()))?;
    }
    Ok(())
}

pub(crate) fn remove_file(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(format!("cannot remove {}", path.display()), e)),
    }
}

// ---------------------------------------------------------------- status

pub(crate) fn not_installed(path: &Path, profile: &str) -> Error {
    Error::Config(format!(
        "the service of profile `{profile}` is not installed ({} does not exist): run `dockhand service install --profile {profile}` first",
        path.display()
    ))
}

/// Add the `file:` line of `status`; returns whether the definition is
/// installed.
pub(crate) fn describe_file(
    path: &Path,
    content: &str,
    lines: &mut Vec<(String, String)>,
) -> Result<bool> {
    let (installed, how) = match file_state(path, content) {
        Ok(FileState::Missing) => (false, "not installed"),
        Ok(FileState::Same) => (true, "installed, up to date"),
        Ok(FileState::Different) => (
            true,
            "installed, differs from what `dockhand service install` would write now",
        ),
        Err(Error::UnsafePath(_)) => match nix_owned::recognise(path) {
            Some(n) => {
                let line = format!("{} ({})", path.display(), n.describe());
                lines.push(("file".into(), line));
                return Ok(true);
            }
            None => (true, "a symlink or special file, not managed by dockhand"),
        },
        Err(e) => return Err(e),
    };
    lines.push(("file".into(), format!("{} ({how})", path.display())));
    Ok(installed)
}

/// Lines about the supervisor's own state (`<state_dir>/state.json`).
pub(crate) fn supervisor_lines(profile: &Profile) -> Vec<(String, String)> {
    match crate::state::read(profile) {
        Ok(None) => vec![(
            "phase".into(),
            format!("unknown (no {})", profile.state_path().display()),
        )],
        Err(e) => vec![("phase".into(), format!("unknown ({e})"))],
        Ok(Some(st)) => {
            let mut lines = vec![("phase".to_string(), st.phase.to_string())];
            if let Some(e) = st.last_error.filter(|e| !e.is_empty()) {
                lines.push(("last error".into(), e));
            }
            lines
        }
    }
}

pub(crate) fn print_lines(lines: &[(String, String)]) {
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (k, v) in lines {
        println!("{:width$} {v}", format!("{k}:"));
    }
}

// ------------------------------------------------- failures of `run`

/// Set in the launchd agent's environment: the supervisor runs as a job
/// whose `KeepAlive` can't exclude exit codes.
pub const SUPERVISED_BY_ENV: &str = "DOCKHAND_SUPERVISED_BY";

/// `dockhand run` ended with `e`: tell the service manager, and choose the
/// exit code. Under systemd the reason goes into `STATUS=` and the code
/// stays (RestartPreventExitStatus=2 3 4 6 keeps it stopped). Under launchd
/// (`KeepAlive = { SuccessfulExit = false; }`, which would respawn a
/// non-zero exit every ThrottleInterval forever, launchd.plist(5)) an
/// error a retry can't fix exits 0 after saying so: the job stays stopped
/// until `dockhand service restart` (or a login) starts it again.
pub fn run_failed(e: &Error) -> u8 {
    crate::supervisor::notify_fatal(&e.to_string());
    let code = e.exit_code();
    let launchd = std::env::var(SUPERVISED_BY_ENV).is_ok_and(|v| v == "launchd");
    if launchd && matches!(code, 2 | 3 | 4 | 6) {
        eprintln!(
            "dockhand (launchd): exiting 0, not {code}, so that launchd doesn't respawn dockhand every {}s; fix the cause, then run `dockhand service restart`",
            launchd::THROTTLE_INTERVAL
        );
        return 0;
    }
    code
}

/// `service status` when the config doesn't load: the manager's view of
/// the profile's service (with default label and paths), after the error.
pub fn status_despite_config(profile: &str, config: Option<&Path>) {
    let Ok(env) = crate::config::Env::from_process() else {
        return;
    };
    let source = crate::config::Source::Defaults(
        config
            .map(Path::to_path_buf)
            .unwrap_or_else(|| env.config_home().join("dockhand/config.toml")),
    );
    let text = format!("[profiles.{}]\n", toml::Value::String(profile.into()));
    let Ok(cfg) = crate::config::Config::parse(source, env, text) else {
        return;
    };
    let ctx = Context {
        config: cfg,
        profile_name: profile.to_string(),
    };
    println!("the service manager's view (default label and paths: the config has an error):");
    let _ = run(ServiceCmd::Status, &ctx);
}

fn prepare_restart(profile: &Profile, engine: bool) -> Result<u8> {
    match handoff::request(profile, !engine)? {
        Some(pid) if !engine => println!(
            "the supervisor of profile `{}` (pid {pid}) hands its engine over if it is stopped within {} s",
            profile.name,
            handoff::VALID_FOR.as_secs()
        ),
        Some(pid) => println!(
            "the supervisor of profile `{}` (pid {pid}) stops its engine when it is stopped",
            profile.name
        ),
        None => println!(
            "no supervisor runs profile `{}`: nothing to prepare",
            profile.name
        ),
    }
    Ok(0)
}

// ------------------------------------------------------------- dispatch

pub fn run(cmd: ServiceCmd, ctx: &Context) -> Result<u8> {
    let platform = match &cmd {
        ServiceCmd::Print { platform: Some(p) } => *p,
        ServiceCmd::Print { platform: None } => Platform::from_env()?,
        _ => Platform::for_actions()?,
    };
    // Defaults (engine, log path) as on the platform the service is for.
    let profile = ctx
        .config
        .profile_on(&ctx.profile_name, platform == Platform::Launchd)?;
    let i = &Inputs::gather(ctx, &profile)?;
    let env = &ctx.config.env;
    let plist = || launchd::plist_path(&env.home, &i.label);
    let unit = || systemd::unit_path(&env.config_home(), &i.profile);
    // Nothing nix installed is rewritten or removed (exit 6), and nothing
    // else is touched before saying so.
    if matches!(cmd, ServiceCmd::Install { .. } | ServiceCmd::Uninstall) {
        let def = match platform {
            Platform::Launchd => plist(),
            Platform::Systemd => unit(),
        };
        if let Some(n) = nix_owned::recognise(&def) {
            return Err(n.refusal(&def));
        }
    }
    match (platform, cmd) {
        (_, ServiceCmd::Print { .. }) => {
            print_definitions(platform, i);
            return Ok(0);
        }
        (_, ServiceCmd::PrepareRestart { engine }) => return prepare_restart(&profile, engine),
        (Platform::Launchd, ServiceCmd::Install { force }) => {
            check_install(&profile, ctx, force)?;
            activation::prepare_launchd(i)?;
            launchd::install(i, &plist(), &profile)?
        }
        (Platform::Systemd, ServiceCmd::Install { force }) => {
            check_install(&profile, ctx, force)?;
            activation::install_systemd(i, &env.config_home())?;
            systemd::install(i, &unit(), &profile)?
        }
        (Platform::Launchd, ServiceCmd::Uninstall) => launchd::uninstall(i, &plist())?,
        (Platform::Systemd, ServiceCmd::Uninstall) => {
            // The socket first: no client can start the service again
            // while it is being removed.
            activation::uninstall_systemd(i, &env.config_home())?;
            systemd::uninstall(i, &unit())?
        }
        (Platform::Launchd, ServiceCmd::Status) => return launchd::status(i, &plist(), &profile),
        (Platform::Systemd, ServiceCmd::Status) => return systemd::status(i, &unit(), &profile),
        (Platform::Launchd, ServiceCmd::Restart { engine }) => {
            launchd::restart(i, &plist(), &profile, engine)?
        }
        (Platform::Systemd, ServiceCmd::Restart { engine }) => {
            systemd::restart(i, &unit(), &profile, engine)?
        }
    }
    Ok(0)
}

/// Before `install`: no other agent manages the same Colima instance
/// (unless `--force`); and a warning now for what `dockhand run` would
/// refuse at login (installing still helps: fix the cause, and the
/// service then works).
fn check_install(profile: &Profile, ctx: &Context, force: bool) -> Result<()> {
    competitors::refuse_unless(profile, &ctx.config.env.home, force)?;
    if let Err(e) = crate::engine::Engine::new(profile).check() {
        eprintln!("dockhand: warning: the service will not start until this is fixed: {e}");
    }
    Ok(())
}

/// `service print`: the definitions `install` writes.
fn print_definitions(platform: Platform, i: &Inputs) {
    match platform {
        Platform::Launchd => print!("{}", launchd::render(i)),
        Platform::Systemd => {
            print!("{}", systemd::render(i));
            if let Some(socket) = activation::systemd_socket_unit(i) {
                let name = activation::socket_unit_name(&i.profile);
                print!("\n# ---- {name} ----\n{socket}");
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
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

    #[test]
    fn atomic_write_and_symlink_refusal() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("sub/x.plist");
        assert_eq!(file_state(&p, "a").unwrap(), FileState::Missing);
        write_atomic(&p, "a").unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(file_state(&p, "a").unwrap(), FileState::Same);
        assert_eq!(file_state(&p, "b").unwrap(), FileState::Different);
        assert_eq!(std::fs::read_dir(t.path().join("sub")).unwrap().count(), 1);
        let l = t.path().join("sub/l.plist");
        std::os::unix::fs::symlink(&p, &l).unwrap();
        assert!(matches!(file_state(&l, "a"), Err(Error::UnsafePath(_))));
    }
}
