//! The command line: every command, option and example, as clap
//! definitions. The parser, the completions and the man pages are all made
//! from `command()`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "dockhand",
    version,
    about = "Keeps a Docker engine ready: Colima on macOS, dockerd on Linux, supervised.",
    after_help = "Example:\n  dockhand status\n\nExit codes: 0 ok, 1 not ready (doctor: a check failed; logs: no log yet), 2 bad config or usage, 3 already running, \
4 engine prerequisite missing, 5 service manager unavailable, 6 unsafe or conflicting path, \
7 external command failed, 8 supervisor not answering, 10 I/O error, \
130 up/restart interrupted (the supervisor goes on)."
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

/// An example for every command's `--help` (and its man page), by the
/// command's path. One table, so a new command without one fails a test.
const EXAMPLES: &[(&str, &str)] = &[
    ("run", "dockhand run --profile work"),
    ("status", "dockhand status --json | jq -r .phase"),
    ("config", "dockhand config check"),
    (
        "config check",
        "dockhand config check --config ./config.toml",
    ),
    ("config show", "dockhand config show --profile work"),
    ("service", "dockhand service install"),
    ("service print", "dockhand service print --platform systemd"),
    ("service install", "dockhand service install --profile work"),
    (
        "service uninstall",
        "dockhand service uninstall --profile work",
    ),
    ("service status", "dockhand service status"),
    (
        "service restart",
        "dockhand service restart\n  dockhand service restart --engine",
    ),
    (
        "service prepare-restart",
        "dockhand service prepare-restart --profile default && systemctl --user restart dockhand-default",
    ),
    ("logs", "dockhand logs -n 100\n  dockhand logs -f --engine"),
    (
        "up",
        "dockhand up\n  dockhand up --profile work --timeout 5m",
    ),
    ("down", "dockhand down\n  dockhand down --service"),
    ("restart", "dockhand restart --profile work"),
    (
        "context",
        "dockhand context --use\n  eval \"$(dockhand context --env)\"",
    ),
    (
        "doctor",
        "dockhand doctor\n  dockhand doctor --fix\n  \
         dockhand doctor --json | jq '.checks[] | select(.status == \"fail\")'",
    ),
    (
        "completions",
        "dockhand completions bash > ~/.local/share/bash-completion/completions/dockhand\n  \
         dockhand completions zsh > \"${fpath[1]}/_dockhand\"\n  \
         dockhand completions fish > ~/.config/fish/completions/dockhand.fish",
    ),
    (
        "man",
        "dockhand man | man -l -\n  dockhand man --dir ~/.local/share/man/man1",
    ),
];

/// The clap command with every subcommand's example attached: what the
/// parser, the completions and the man pages are made from.
pub fn command() -> clap::Command {
    fn attach(cmd: clap::Command, path: &str) -> clap::Command {
        let mut cmd = cmd;
        if let Some((_, ex)) = EXAMPLES.iter().find(|(p, _)| *p == path) {
            let word = if ex.contains('\n') {
                "Examples"
            } else {
                "Example"
            };
            cmd = cmd.after_help(format!("{word}:\n  {ex}"));
        }
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        for n in names {
            let sub = if path.is_empty() {
                n.clone()
            } else {
                format!("{path} {n}")
            };
            cmd = cmd.mut_subcommand(&n, |c| attach(c, &sub));
        }
        cmd
    }
    attach(<Cli as clap::CommandFactory>::command(), "")
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
    /// Show dockhand's log (across rotation), or the engine's own output.
    Logs {
        /// Keep printing new lines as they are written (also across rotation).
        #[arg(long, short)]
        follow: bool,
        /// How many of the last lines to print first.
        #[arg(long, short = 'n', value_name = "N", default_value_t = 50)]
        lines: usize,
        /// The engine's output (`engine.log`; for Colima also Lima's
        /// `ha.stdout.log` and `ha.stderr.log`) instead of dockhand's log.
        #[arg(long)]
        engine: bool,
    },
    /// Make sure the engine is up: use the running supervisor (or install
    /// and load the login service when none runs), start the engine if it
    /// is stopped, and wait until docker answers. Exit 0 when ready.
    Up {
        /// Give up waiting after this long (default: start_timeout + 30s);
        /// the supervisor keeps trying.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// Print one JSON document: {ok, error, elapsed_ms, state}.
        #[arg(long)]
        json: bool,
    },
    /// Stop the engine gracefully and keep it stopped (the supervisor stays)
    /// until `dockhand up`.
    Down {
        /// Also unload the login service: it stops now (launchd `bootout`,
        /// systemd `stop` of the unit and its socket) but stays installed
        /// and enabled, so it comes back at the next login; `dockhand up`
        /// loads it again now. `dockhand service uninstall` removes it.
        #[arg(long)]
        service: bool,
        /// Print one JSON document: {ok, error, elapsed_ms, state}.
        #[arg(long)]
        json: bool,
    },
    /// Restart the engine through the supervisor, with the same progress as `up`.
    Restart {
        /// Give up waiting after this long (default: stop_timeout + start_timeout + 30s).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// Print one JSON document: {ok, error, elapsed_ms, state}.
        #[arg(long)]
        json: bool,
    },
    /// Check what commonly breaks (config, binaries, service, socket,
    /// docker context, stale files, log, disk) and print a fix for each.
    /// Exit 0 when no check fails, 1 otherwise.
    Doctor {
        /// One JSON document: {profile, ok, checks: [{id, status, summary, fix, fixable, fixed}]}.
        #[arg(long)]
        json: bool,
        /// Apply the safe fixes (socket mode, stale files of a stopped engine, docker context).
        #[arg(long)]
        fix: bool,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff), or write one page per command to a directory.
    Man {
        /// Write dockhand.1, dockhand-status.1, ... into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
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

/// The shells `dockhand completions` writes a script for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command and subcommand has an example in its --help.
    #[test]
    fn every_command_has_an_example() {
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if c.get_name() != "help"
                && !path.is_empty()
                && !c
                    .get_after_help()
                    .is_some_and(|h| h.to_string().contains("dockhand "))
            {
                missing.push(path.to_string());
            }
            for s in c.get_subcommands() {
                let p = format!("{path} {}", s.get_name()).trim().to_string();
                walk(s, &p, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&command(), "", &mut missing);
        assert!(missing.is_empty(), "no example for: {missing:?}");
        command().debug_assert();
    }
}
