//! Command-line interface: argument parsing and dispatch to the parts.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, Env, Profile};
use crate::error::Result;

#[derive(Debug, Parser)]
#[command(
    name = "dockhand",
    version,
    about = "Keeps a Docker engine ready: Colima on macOS, dockerd on Linux, supervised.",
    after_help = "Exit codes: 0 ok, 1 not ready, 2 bad config or usage, 3 already running, \
4 engine prerequisite missing, 5 service manager unavailable, 6 unsafe or conflicting path, \
7 external command failed, 10 I/O error."
)]
pub struct Cli {
    /// Config file (default: $DOCKHAND_CONFIG, else $XDG_CONFIG_HOME/dockhand/config.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Profile to act on.
    #[arg(
        long,
        short,
        global = true,
        value_name = "NAME",
        default_value = "default"
    )]
    pub profile: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Supervise the profile's engine in the foreground: start it, keep it
    /// ready, restart it with backoff, stop it on SIGTERM/SIGINT.
    Run,
    /// Show whether the engine is ready (exit 0) or not (exit 1).
    Status {
        /// Print state.json's fields plus supervisor_running and socket_answers.
        #[arg(long)]
        json: bool,
    },
    /// Validate or show the configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Install, remove or inspect the login service (launchd / systemd).
    #[command(subcommand)]
    Service(crate::service::ServiceCmd),
    /// Show the docker context dockhand keeps for `listen` (creating or
    /// updating it), make it current, or print DOCKER_HOST for tools that
    /// ignore contexts.
    Context {
        /// Make it the docker CLI's current context.
        #[arg(long = "use")]
        use_it: bool,
        /// Print `export DOCKER_HOST=unix://...` (for `eval "$(...)"`).
        #[arg(long, conflicts_with = "use_it")]
        env: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Validate every profile of the config file.
    Check,
    /// Print the effective config of a profile, defaults filled in.
    Show,
}

/// What every command needs: the loaded config and the chosen profile name.
pub struct Context {
    pub config: Config,
    pub profile_name: String,
}

impl Context {
    pub fn profile(&self) -> Result<Profile> {
        self.config.profile(&self.profile_name)
    }
}

/// Parse arguments, run the command, return the process exit code.
pub fn main() -> u8 {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run) {
        // A short command piped into `head` or `grep -q` ends quietly, as
        // other CLI tools do. The supervisor keeps ignoring SIGPIPE: a
        // restarted log reader must not kill it.
        // SAFETY: setting a signal disposition before any threads start.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let run = matches!(cli.command, Command::Run);
    let status_args = match &cli.command {
        Command::Service(crate::service::ServiceCmd::Status) => {
            Some((cli.profile.clone(), cli.config.clone()))
        }
        _ => None,
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dockhand: {e}");
            if run {
                return crate::service::run_failed(&e);
            }
            if let (Some((profile, config)), crate::error::Error::Config(_)) = (status_args, &e) {
                // A bad config is when users ask: show the manager's view.
                crate::service::status_despite_config(&profile, config.as_deref());
            }
            e.exit_code()
        }
    }
}

fn dispatch(cli: Cli) -> Result<u8> {
    let config = Config::load(cli.config.as_deref(), Env::from_process()?)?;
    let ctx = Context {
        config,
        profile_name: cli.profile,
    };
    match cli.command {
        Command::Run => crate::supervisor::run(ctx.profile()?),
        Command::Status { json } => crate::status::run(&ctx.profile()?, json),
        Command::Config(ConfigCmd::Check) => {
            let names = ctx.config.profile_names();
            let path = ctx.config.source.path().display();
            match ctx.config.source {
                crate::config::Source::Defaults(_) => println!(
                    "no config file at {path}: built-in defaults (profile default) are in use"
                ),
                _ => println!(
                    "{path}: ok ({} profile{}: {})",
                    names.len(),
                    if names.len() == 1 { "" } else { "s" },
                    names.join(", ")
                ),
            }
            Ok(0)
        }
        Command::Config(ConfigCmd::Show) => {
            print!("{}", crate::config::show(&ctx.profile()?));
            Ok(0)
        }
        Command::Service(cmd) => crate::service::run(cmd, &ctx),
        Command::Context { use_it, env } => crate::context::run(&ctx.profile()?, use_it, env),
    }
}
