//! Command-line interface: parse the arguments (`args`), dispatch to the
//! parts, map the one `error::Error` to its exit code. `manual` writes the
//! completions and man pages from the same definitions.

mod args;
mod manual;

use clap::FromArgMatches;

pub use args::{Cli, Command, ConfigCmd, Shell, command};

use crate::config::{Config, Context, Env, Source};
use crate::error::Result;

/// Commands that need no config: they work even when it is broken.
fn needs_no_config(c: &Command) -> bool {
    matches!(c, Command::Completions { .. } | Command::Man { .. })
}

/// Parse arguments, run the command, return the process exit code.
pub fn main() -> u8 {
    // Before any descriptor of our own is opened (sd_listen_fds(3)).
    crate::proxy::activation::take_at_start();
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
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
    if let Command::Doctor { json, fix } = cli.command {
        // Doctor reports a broken config as a failed check.
        return crate::doctor::run(cli.config.as_deref(), &cli.profile, json, fix);
    }
    if needs_no_config(&cli.command) {
        return match cli.command {
            Command::Completions { shell } => manual::completions(shell),
            Command::Man { dir } => manual::man(dir.as_deref()),
            _ => unreachable!("needs_no_config"),
        };
    }
    let config = Config::load(cli.config.as_deref(), Env::from_process()?)?;
    let ctx = Context {
        config,
        profile_name: cli.profile,
    };
    match cli.command {
        Command::Run => {
            crate::supervisor::handoff::remember_source(&ctx.config.source, &ctx.profile_name);
            crate::supervisor::run(ctx.profile()?)
        }
        Command::Status { json } => crate::status::run(&ctx.profile()?, json),
        Command::Config(ConfigCmd::Check) => Ok(config_check(&ctx.config)),
        Command::Config(ConfigCmd::Show) => {
            print!("{}", crate::config::show(&ctx.profile()?));
            Ok(0)
        }
        Command::Service(cmd) => crate::service::run(cmd, &ctx),
        Command::Logs {
            follow,
            lines,
            engine,
        } => crate::logs::run(&ctx.profile()?, follow, lines, engine),
        Command::Up { timeout, json } => crate::updown::json_errors(json, || {
            crate::updown::up(&ctx, &ctx.profile()?, timeout, json)
        }),
        Command::Down { service, json } => crate::updown::json_errors(json, || {
            crate::updown::down(&ctx, &ctx.profile()?, service, json)
        }),
        Command::Restart { timeout, json } => crate::updown::json_errors(json, || {
            crate::updown::restart(&ctx.profile()?, timeout, json)
        }),
        Command::Context { use_it, env } => crate::context::run(&ctx.profile()?, use_it, env),
        Command::Completions { .. } | Command::Man { .. } | Command::Doctor { .. } => {
            unreachable!("handled above")
        }
    }
}

/// `dockhand config check`: every profile resolved already (at load);
/// name the file and its profiles.
fn config_check(config: &Config) -> u8 {
    let names = config.profile_names();
    let path = config.source.path().display();
    match config.source {
        Source::Defaults(_) => {
            println!("no config file at {path}: built-in defaults (profile default) are in use")
        }
        _ => println!(
            "{path}: ok ({} profile{}: {})",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        ),
    }
    0
}
