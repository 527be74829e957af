//! The `dockhand service` subcommands: the platform and profile they act
//! on, then one match to the manager's module.

use std::path::{Path, PathBuf};

use super::inputs::definition_path;
use super::{Inputs, Platform, activation, competitors, launchd, systemd};
use crate::config::Context;
use crate::config::Profile;
use crate::error::Result;
use crate::supervisor::handoff;

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
    let to = Target {
        platform,
        path: definition_path(platform, ctx, i),
        config_home: ctx.config.env.config_home(),
    };
    // Nothing nix installed is rewritten or removed (exit 6), and nothing
    // else is touched before saying so.
    if matches!(cmd, ServiceCmd::Install { .. } | ServiceCmd::Uninstall)
        && let Some(n) = super::nix_owned::recognise(&to.path)
    {
        return Err(n.refusal(&to.path));
    }
    match cmd {
        ServiceCmd::Print { .. } => print_definitions(platform, i),
        ServiceCmd::PrepareRestart { engine } => prepare_restart(&profile, engine),
        ServiceCmd::Install { force } => install(&to, i, &profile, ctx, force),
        ServiceCmd::Uninstall => uninstall(&to, i),
        ServiceCmd::Status => status(&to, i, &profile),
        ServiceCmd::Restart { engine } => restart(&to, i, &profile, engine),
    }
}

/// The service manager a subcommand acts on, and where its files are.
struct Target {
    platform: Platform,
    /// The definition: the launchd plist or the systemd unit file.
    path: PathBuf,
    /// Where systemd user units live (the socket unit's directory).
    config_home: PathBuf,
}

fn install(to: &Target, i: &Inputs, profile: &Profile, ctx: &Context, force: bool) -> Result<u8> {
    check_install(profile, ctx, force)?;
    match to.platform {
        Platform::Launchd => {
            activation::prepare_launchd(i)?;
            launchd::install(i, &to.path, profile)?
        }
        Platform::Systemd => {
            activation::install_systemd(i, &to.config_home)?;
            systemd::install(i, &to.path, profile)?
        }
    }
    Ok(0)
}

fn uninstall(to: &Target, i: &Inputs) -> Result<u8> {
    match to.platform {
        Platform::Launchd => launchd::uninstall(i, &to.path)?,
        Platform::Systemd => {
            // The socket first: no client can start the service again
            // while it is being removed.
            activation::uninstall_systemd(i, &to.config_home)?;
            systemd::uninstall(i, &to.path)?
        }
    }
    Ok(0)
}

fn status(to: &Target, i: &Inputs, profile: &Profile) -> Result<u8> {
    match to.platform {
        Platform::Launchd => launchd::status(i, &to.path, profile),
        Platform::Systemd => systemd::status(i, &to.path, profile),
    }
}

fn restart(to: &Target, i: &Inputs, profile: &Profile, engine: bool) -> Result<u8> {
    match to.platform {
        Platform::Launchd => launchd::restart(i, &to.path, profile, engine)?,
        Platform::Systemd => systemd::restart(i, &to.path, profile, engine)?,
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
fn print_definitions(platform: Platform, i: &Inputs) -> Result<u8> {
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
    Ok(0)
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
