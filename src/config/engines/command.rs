//! `engine = "command"`: any program serving the Docker API, `[command]`
//! argv (required) and the socket it serves (required).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::Input;
use crate::config::Config;
use crate::config::file::Strings;
use crate::error::Result;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawCommand {
    argv: Spanned<Strings>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Command {
    pub argv: Vec<String>,
}

impl Config {
    /// `[command]` (argv required) and the socket it serves (required).
    pub(super) fn command(&self, i: &Input) -> Result<(Command, PathBuf)> {
        let (name, raw, env) = (i.name, i.raw, i.env);
        let Some(c) = raw.command.as_ref() else {
            return Err(self.err_profile(
                name,
                format!(
                    "profile `{name}` has engine = \"command\" but no [profiles.{name}.command] table with argv = [\"program\", \"arg\", ...]"
                ),
            ));
        };
        let argv = &c.get_ref().argv.get_ref().0;
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
                return Err(self.err_profile(
                    name,
                    format!(
                        "profile `{name}` has engine = \"command\" but no socket: set socket to the unix socket the command serves the Docker API on"
                    ),
                ));
            }
        };
        Ok((command, socket))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{err, parse};

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

    #[test]
    fn a_relative_program_is_refused() {
        let m =
            err("[profiles.p]\nsocket = \"/s\"\n[profiles.p.command]\nargv = [\"bin/podman\"]\n");
        assert!(m.contains("argv[0] = \"bin/podman\" is relative"), "{m}");
        // A bare name is looked up on PATH.
        parse("[profiles.p]\nsocket = \"/s\"\n[profiles.p.command]\nargv = [\"podman\"]\n")
            .unwrap();
    }
}
