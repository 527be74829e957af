//! The on-demand proxy's keys (`listen`, `on_demand`, `idle_stop`,
//! `docker_context`, `passive`), resolved against the engine's socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::file::RawProfile;
use super::resolve::MAX_DURATION;
use super::{Config, Env};
use crate::error::Result;

/// The on-demand proxy's keys, resolved.
pub(super) struct ProxyKeys {
    pub(super) listen: Option<PathBuf>,
    pub(super) on_demand: bool,
    pub(super) idle_stop: Option<Duration>,
    pub(super) docker_context: bool,
    pub(super) passive: Option<Vec<String>>,
}

impl Config {
    /// `listen`, `on_demand`, `idle_stop`, `docker_context`, `passive`:
    /// all but `listen` need `listen`; `listen` is not the engine's socket.
    pub(super) fn proxy_keys(
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
                if let Err(why) = crate::config::Pattern::parse(entry.get_ref()) {
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use crate::config::show;
    use crate::config::testing::{err, parse};

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
}
