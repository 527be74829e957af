//! `engine = "ssh"`: the `[profiles.<name>.ssh]` table (a remote engine's
//! socket forwarded over one supervised OpenSSH connection).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::Input;
use crate::config::file::Dur;
use crate::config::profile::ser_dur;
use crate::config::resolve::key_or_state_dir;
use crate::config::{Config, Env};
use crate::error::Result;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawSsh {
    host: Option<Spanned<String>>,
    remote_socket: Option<Spanned<String>>,
    keepalive: Option<Spanned<Dur>>,
    config_file: Option<Spanned<String>>,
}

/// The resolved `[ssh]` table.
#[derive(Debug, Clone, Serialize)]
pub struct Ssh {
    /// An ssh config alias or `user@host` (ssh's destination argument).
    pub host: String,
    /// The engine's socket on the remote host.
    pub remote_socket: String,
    /// `ServerAliveInterval`; three missed answers end the connection.
    #[serde(serialize_with = "ser_dur")]
    pub keepalive: Duration,
    /// `-F <file>`: an ssh client config of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_file: Option<PathBuf>,
}

/// Failures of the connection are retried at most this far apart.
pub const SSH_BACKOFF_MAX: Duration = Duration::from_secs(30);
pub const DEFAULT_REMOTE_SOCKET: &str = "/var/run/docker.sock";
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(10);

/// A destination ssh takes as a host, never as an option (`-oProxyCommand=`
/// would run a command): no leading `-`, no whitespace or control
/// characters, and not empty.
fn host_ok(h: &str) -> bool {
    !h.is_empty()
        && !h.starts_with('-')
        && !h
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\'' || c == '"')
}

impl Config {
    /// `[ssh]` (host required) and the local end of the forward: `socket`,
    /// by default `<state_dir>/forward.sock` (a path without `:`, which
    /// ssh's `-L local:remote` would split).
    pub(super) fn ssh(&self, i: &Input) -> Result<(Ssh, PathBuf)> {
        let t = i.raw.ssh.as_ref().map(Spanned::get_ref);
        let ssh = Ssh {
            host: self.ssh_host(i.name, t)?,
            remote_socket: self.ssh_remote_socket(t)?,
            keepalive: self.ssh_keepalive(t)?,
            config_file: self.ssh_config_file(t, i.env)?,
        };
        Ok((ssh, self.ssh_forward_socket(i)?))
    }

    /// `host`: required, and a destination ssh can't take for an option.
    fn ssh_host(&self, name: &str, t: Option<&RawSsh>) -> Result<String> {
        let Some(host) = t.and_then(|t| t.host.as_ref()) else {
            return Err(self.err_profile(
                name,
                format!(
                    "profile `{name}` has engine = \"ssh\" but no host: add [profiles.{name}.ssh] with host = \"<ssh config alias or user@host>\""
                ),
            ));
        };
        if !host_ok(host.get_ref()) {
            return Err(self.err_at(
                host.span(),
                format!(
                    "host {:?} is not an ssh destination: write an ssh config alias or user@host (no leading '-', no spaces or quotes)",
                    host.get_ref()
                ),
            ));
        }
        Ok(host.get_ref().clone())
    }

    /// `remote_socket`: an absolute path on the remote host, without the
    /// `:` that `-L local:remote` would split on.
    fn ssh_remote_socket(&self, t: Option<&RawSsh>) -> Result<String> {
        match t.and_then(|t| t.remote_socket.as_ref()) {
            Some(r) if !r.get_ref().starts_with('/') || r.get_ref().contains([':', '\n']) => {
                Err(self.err_at(
                    r.span(),
                    format!(
                        "remote_socket {:?} must be an absolute path on the remote host without ':' (such as \"/var/run/docker.sock\" or \"/run/user/1000/docker.sock\")",
                        r.get_ref()
                    ),
                ))
            }
            Some(r) => Ok(r.get_ref().clone()),
            None => Ok(DEFAULT_REMOTE_SOCKET.into()),
        }
    }

    /// `keepalive`: between 1 s and 1 h, in whole seconds (ssh's
    /// `ServerAliveInterval`).
    fn ssh_keepalive(&self, t: Option<&RawSsh>) -> Result<Duration> {
        let Some(k) = t.and_then(|t| t.keepalive.as_ref()) else {
            return Ok(DEFAULT_KEEPALIVE);
        };
        let d = k.get_ref().0;
        if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
            return Err(self.err_at(
                k.span(),
                "keepalive must be between 1s and 1h, such as \"10s\" (ssh's ServerAliveInterval counts whole seconds)".into(),
            ));
        }
        if d.subsec_nanos() != 0 {
            return Err(self.err_at(
                k.span(),
                format!(
                    "keepalive {} is not a whole number of seconds, which ssh's ServerAliveInterval counts: write \"{}s\"",
                    humantime::format_duration(d),
                    d.as_secs() + 1
                ),
            ));
        }
        Ok(d)
    }

    /// `config_file`: an absolute path to a regular file (or a link to
    /// one), checked here: ssh would otherwise fail at every connect, its
    /// message naming no line of this config. One that exists but can't
    /// be read is left to ssh, whose words the held `failed` state shows.
    fn ssh_config_file(&self, t: Option<&RawSsh>, env: &Env) -> Result<Option<PathBuf>> {
        let Some(raw) = t.and_then(|t| t.config_file.as_ref()) else {
            return Ok(None);
        };
        let path = self
            .path(&Some(raw.clone()), "config_file", env)?
            .expect("given");
        let why = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => return Ok(Some(path)),
            Ok(m) if m.is_dir() => "is a directory",
            Ok(_) => "is not a regular file",
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist",
            Err(_) => return Ok(Some(path)),
        };
        Err(self.err_at(
            raw.span(),
            format!(
                "config_file {} {why}: point it at an ssh client config file (ssh_config(5), passed to ssh as -F) or remove the key",
                path.display()
            ),
        ))
    }

    /// The forward's local end: `socket`, by default
    /// `<state_dir>/forward.sock`, without `:`.
    fn ssh_forward_socket(&self, i: &Input) -> Result<PathBuf> {
        let socket = self
            .path(&i.raw.socket, "socket", i.env)?
            .unwrap_or_else(|| i.state_dir.join("forward.sock"));
        if !socket.to_string_lossy().contains(':') {
            return Ok(socket);
        }
        let msg = format!(
            "socket {} contains ':', which ssh's -L local:remote cannot take: choose another {}",
            socket.display(),
            match &i.raw.socket {
                Some(_) => "path",
                None =>
                    "state_dir (the socket's default is <state_dir>/forward.sock) or set socket",
            }
        );
        let span = i.raw.socket.as_ref().map(Spanned::span);
        Err(match key_or_state_dir(span, i.raw, &socket, i.state_dir) {
            Some(span) => self.err_at(span, msg),
            None => self.err_profile(i.name, msg),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineKind;

    fn parse(text: &str) -> Result<crate::config::Profile> {
        crate::config::testing::parse(text)?.profile("devbox")
    }

    #[test]
    fn defaults_put_both_sockets_in_the_state_dir() {
        let p = parse(
            "[profiles.devbox]\nengine = \"ssh\"\n[profiles.devbox.ssh]\nhost = \"devbox\"\n",
        )
        .unwrap();
        assert_eq!(p.engine, EngineKind::Ssh);
        let sd = PathBuf::from("/home/u/.local/state/dockhand/devbox");
        assert_eq!(p.socket, sd.join("forward.sock"));
        assert_eq!(p.listen, Some(sd.join("docker.sock")));
        assert!(p.docker_context);
        assert_eq!(p.restart_backoff_max, SSH_BACKOFF_MAX);
        let s = p.ssh.unwrap();
        assert_eq!(s.remote_socket, DEFAULT_REMOTE_SOCKET);
        assert_eq!(s.keepalive, DEFAULT_KEEPALIVE);
        assert_eq!(s.config_file, None);
    }

    #[test]
    fn the_table_implies_the_engine_and_keys_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("ssh.conf");
        std::fs::write(&conf, "").unwrap();
        let p = parse(&format!("[profiles.devbox.ssh]\nhost = \"me@box\"\nremote_socket = \"/run/user/1000/docker.sock\"\nkeepalive = \"5s\"\nconfig_file = {:?}\n", conf.display().to_string())).unwrap();
        assert_eq!(p.engine, EngineKind::Ssh);
        let s = p.ssh.unwrap();
        assert_eq!(s.host, "me@box");
        assert_eq!(s.keepalive, Duration::from_secs(5));
        assert_eq!(s.config_file, Some(conf));
        let err = |t: &str| parse(t).unwrap_err().to_string();
        let m = err("[profiles.devbox]\nengine = \"ssh\"\n");
        assert!(m.contains("no host"), "{m}");
        let m = err("[profiles.devbox.ssh]\nhost = \"-oProxyCommand=x\"\n");
        assert!(
            m.contains("/c.toml:2:8") && m.contains("not an ssh destination"),
            "{m}"
        );
        let m = err("[profiles.devbox.ssh]\nhost = \"h\"\nremote_socket = \"run/d.sock\"\n");
        assert!(m.contains("absolute path on the remote"), "{m}");
        let m = err("[profiles.devbox.ssh]\nhost = \"h\"\nkeepalive = \"100ms\"\n");
        assert!(m.contains("keepalive must be between"), "{m}");
        let m = err("[profiles.devbox.ssh]\nhost = \"h\"\nport = 22\n");
        assert!(m.contains("unknown field `port`"), "{m}");
        let m =
            err("[profiles.devbox]\nengine = \"dockerd\"\n[profiles.devbox.ssh]\nhost = \"h\"\n");
        assert!(m.contains("[ssh] table but engine = \"dockerd\""), "{m}");
        let m = err(
            "[profiles.devbox]\nsocket = \"/tmp/a:b.sock\"\n[profiles.devbox.ssh]\nhost = \"h\"\n",
        );
        assert!(m.contains("contains ':'"), "{m}");
    }

    #[test]
    fn config_file_must_be_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let at = |p: &std::path::Path| {
            format!(
                "[profiles.devbox.ssh]\nhost = \"h\"\nconfig_file = {:?}\n",
                p.display().to_string()
            )
        };
        let missing = dir.path().join("missing.conf");
        let m = parse(&at(&missing)).unwrap_err().to_string();
        assert!(
            m.starts_with("/c.toml:3:15: config_file ")
                && m.contains("missing.conf does not exist"),
            "{m}"
        );
        let m = parse(&at(dir.path())).unwrap_err().to_string();
        assert!(
            m.starts_with("/c.toml:3:15: ") && m.contains("is a directory"),
            "{m}"
        );
        // A link to a regular file is fine.
        let file = dir.path().join("real.conf");
        std::fs::write(&file, "Host x\n").unwrap();
        let link = dir.path().join("link.conf");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let s = parse(&at(&link)).unwrap().ssh.unwrap();
        assert_eq!(s.config_file, Some(link));
    }

    #[test]
    fn keepalive_is_whole_seconds() {
        let m = parse("[profiles.devbox.ssh]\nhost = \"h\"\nkeepalive = \"1500ms\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            m.starts_with("/c.toml:3:13: keepalive ") && m.contains("write \"2s\""),
            "{m}"
        );
        let p = parse("[profiles.devbox.ssh]\nhost = \"h\"\nkeepalive = \"2s\"\n").unwrap();
        assert_eq!(p.ssh.unwrap().keepalive, Duration::from_secs(2));
    }

    #[test]
    fn a_default_socket_error_names_the_state_dir_line() {
        let m = parse(
            "[profiles.devbox]\nstate_dir = \"/tmp/a:b\"\n[profiles.devbox.ssh]\nhost = \"h\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            m.starts_with("/c.toml:2:13: socket /tmp/a:b/forward.sock contains ':'"),
            "{m}"
        );
        assert!(m.contains("choose another state_dir"), "{m}");
    }
}
