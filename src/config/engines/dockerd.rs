//! `engine = "dockerd"`: the `[dockerd]` table (binary, data and exec
//! roots under the state dir, extra args) and the socket it serves.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::Input;
use crate::config::Config;
use crate::config::file::Strings;
use crate::config::resolve::key_or_state_dir;
use crate::error::Result;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawDockerd {
    binary: Option<Spanned<String>>,
    data_root: Option<Spanned<String>>,
    exec_root: Option<Spanned<String>>,
    #[serde(default)]
    args: Strings,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dockerd {
    pub binary: String,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub args: Vec<String>,
}

impl Config {
    /// `[dockerd]` with defaults under `state_dir`, and the socket.
    pub(super) fn dockerd(&self, i: &Input) -> Result<(Dockerd, PathBuf)> {
        let (raw, env, state_dir) = (i.raw, i.env, i.state_dir);
        let d = raw.dockerd.as_ref().map(Spanned::get_ref);
        let dockerd = Dockerd {
            binary: match d.and_then(|d| d.binary.as_ref()) {
                // A name is looked up on PATH; a path must be absolute.
                Some(b) if b.get_ref().contains('/') => self
                    .path(&Some(b.clone()), "binary", env)?
                    .expect("given")
                    .to_string_lossy()
                    .into_owned(),
                Some(b) => b.get_ref().clone(),
                None => "dockerd".into(),
            },
            data_root: self
                .path(d.map_or(&None, |d| &d.data_root), "data_root", env)?
                .unwrap_or_else(|| state_dir.join("data")),
            exec_root: self
                .path(d.map_or(&None, |d| &d.exec_root), "exec_root", env)?
                .unwrap_or_else(|| state_dir.join("exec")),
            args: d.map(|d| d.args.0.clone()).unwrap_or_default(),
        };
        // dockerd's containerd listens under the exec root.
        let exec_root = &dockerd.exec_root;
        let span = d.and_then(|d| d.exec_root.as_ref()).map(Spanned::span);
        self.socket_fits(
            &exec_root.join("containerd/containerd-debug.sock"),
            "containerd's socket (under exec_root)",
            key_or_state_dir(span, raw, exec_root, state_dir),
        )?;
        let socket = self
            .path(&raw.socket, "socket", env)?
            .unwrap_or_else(|| state_dir.join("docker.sock"));
        Ok((dockerd, socket))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::config::testing::{err, parse};

    #[test]
    fn defaults_sit_under_the_state_dir() {
        let c = parse("[profiles.default]\nstate_dir = \"/s\"\n").unwrap();
        let p = c.profile("default").unwrap();
        let d = p.dockerd.unwrap();
        assert_eq!(d.binary, "dockerd");
        assert_eq!(d.data_root, PathBuf::from("/s/data"));
        assert_eq!(d.exec_root, PathBuf::from("/s/exec"));
        assert_eq!(p.socket, PathBuf::from("/s/docker.sock"));
    }

    #[test]
    fn relative_paths_are_refused() {
        let m = err("[profiles.default.dockerd]\ndata_root = \"data\"\n");
        assert!(m.contains("data_root = \"data\" is relative"), "{m}");
        let m = err("[profiles.default.dockerd]\nbinary = \"./bin/dockerd\"\n");
        assert!(m.contains("binary = \"./bin/dockerd\" is relative"), "{m}");
        // A bare name is looked up on PATH.
        parse("[profiles.default.dockerd]\nbinary = \"dockerd-ce\"\n").unwrap();
    }
}
