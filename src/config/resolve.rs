//! Resolution: a raw profile becomes the effective `Profile`. The keys
//! every profile has (paths, timings, label) are resolved here, in this
//! order; the engine's table by its kind (`engines`), then the proxy keys.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::engines;
use super::file::{Dur, RawProfile};
use super::{Config, DEFAULT_PROFILE, Env, Profile};
use crate::error::{Error, Result};

impl Config {
    /// The effective profile `name` from its raw keys, every default
    /// filled in; the first key found wrong is the error.
    pub(super) fn resolve(&self, name: &str, raw: &RawProfile, env: &Env) -> Result<Profile> {
        if !valid_name(name) {
            return Err(self.err_profile(
                name,
                format!(
                    "profile name {name:?} may only contain letters, digits, '-', '_' and '.', and may not start with '.'"
                ),
            ));
        }
        let engine = self.engine_kind(name, raw, env)?;

        let (state_dir, log_file) = self.dirs(name, raw, env)?;
        let mut t = self.timings(raw)?;
        let label = self.label(name, raw)?;

        let input = engines::Input {
            name,
            raw,
            env,
            state_dir: &state_dir,
        };
        let (spec, socket) = self.engine_spec(engine, &input)?;
        let span = raw.socket.as_ref().map(Spanned::span);
        let span = key_or_state_dir(span, raw, &socket, &state_dir);
        self.socket_fits(&socket, "socket", span)?;
        let kind = spec.defaults(&state_dir);
        if let (Some(d), None) = (kind.restart_backoff_max, &raw.restart_backoff_max) {
            t.restart_backoff_max = d;
        }
        let proxy = self.proxy_keys(name, raw, env, &socket, kind.listen)?;

        let mut profile = Profile {
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
            dockerd: None,
            command: None,
            colima: None,
            ssh: None,
            listen: proxy.listen,
            on_demand: proxy.on_demand,
            idle_stop: proxy.idle_stop,
            docker_context: proxy.docker_context,
            passive: proxy.passive,
        };
        spec.store(&mut profile);
        Ok(profile)
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

    /// A path key: `~`/`$HOME` expanded, and absolute (a service's working
    /// directory is `/`, so a relative path would mean something else there).
    pub(super) fn path(
        &self,
        v: &Option<Spanned<String>>,
        key: &str,
        env: &Env,
    ) -> Result<Option<PathBuf>> {
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
    pub(super) fn socket_fits(
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
}

/// The span of a path key; when it was left out and its default lies
/// under `state_dir`, `state_dir`'s (the default comes from there): an
/// error about the path then names the line the user wrote.
pub(super) fn key_or_state_dir(
    key: Option<std::ops::Range<usize>>,
    raw: &RawProfile,
    path: &Path,
    state_dir: &Path,
) -> Option<std::ops::Range<usize>> {
    key.or_else(|| {
        raw.state_dir
            .as_ref()
            .filter(|_| path.starts_with(state_dir))
            .map(Spanned::span)
    })
}

/// The timing keys, resolved.
struct Timings {
    probe_interval: Duration,
    probe_timeout: Duration,
    start_timeout: Duration,
    stop_timeout: Duration,
    restart_backoff_max: Duration,
}

/// The longest duration a key may hold: longer ones overflow timers.
pub(super) const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Profile names and labels become file names: a safe alphabet, no
/// leading dot (`.` and `..` would name other directories).
pub(super) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use crate::config::testing::{env, err, parse};
    use crate::config::{Config, EngineKind, Source};

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
    fn relative_paths_are_refused() {
        let m = err("[profiles.default]\nstate_dir = \"relative/dir\"\n");
        assert!(
            m.starts_with("/c.toml:2:13: state_dir = \"relative/dir\" is relative"),
            "{m}"
        );
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
        // containerd's socket under the default exec_root, under state_dir:
        // the error names the state_dir line.
        let dir = format!("/{}", "x".repeat(69));
        let m = err(&format!("[profiles.default]\nstate_dir = \"{dir}\"\n"));
        assert!(m.starts_with("/c.toml:2:13: containerd's socket"), "{m}");
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
}
