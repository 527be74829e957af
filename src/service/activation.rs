//! Socket activation for profiles with `listen`: the service manager owns
//! the socket from login, so clients can connect before dockhand runs
//! (and while it restarts); dockhand takes it over when it starts
//! (`proxy::activation`).
//!
//! - launchd: a `Sockets` entry in the agent's plist (`SockPathName`,
//!   `SockPathMode` 384 = 0600, `SockType` stream), named
//!   [`LAUNCHD_SOCKET_NAME`] for `launch_activate_socket` (launchd.plist(5)).
//! - systemd: `dockhand-<profile>.socket` beside the service unit
//!   (`ListenStream=`, `SocketMode=0600`, `DirectoryMode=0700`,
//!   `Accept=no`): systemd passes it with `LISTEN_FDS` to the service of
//!   the same name, whether the socket or the login started it
//!   (systemd.socket(5)).

use std::path::{Path, PathBuf};

use plist::{Dictionary, Value};

use super::Inputs;
use super::files::{self, FileState};
use super::tool::Tool;
use crate::error::Result;
pub use crate::proxy::activation::LAUNCHD_SOCKET_NAME;

/// Add the `Sockets` entry to a launchd plist, when `listen` is set.
pub fn launchd_sockets(i: &Inputs, d: &mut Dictionary) {
    let Some(listen) = &i.listen else { return };
    let mut sock = Dictionary::new();
    sock.insert(
        "SockPathName".into(),
        Value::String(listen.to_string_lossy().into_owned()),
    );
    sock.insert("SockPathMode".into(), Value::Integer(0o600.into()));
    sock.insert("SockType".into(), Value::String("stream".into()));
    let mut sockets = Dictionary::new();
    sockets.insert(LAUNCHD_SOCKET_NAME.into(), Value::Dictionary(sock));
    d.insert("Sockets".into(), Value::Dictionary(sockets));
}

pub fn socket_unit_name(profile: &str) -> String {
    format!("dockhand-{profile}.socket")
}

pub fn socket_unit_path(config_home: &Path, profile: &str) -> PathBuf {
    config_home
        .join("systemd/user")
        .join(socket_unit_name(profile))
}

/// The systemd socket unit, when `listen` is set.
pub fn systemd_socket_unit(i: &Inputs) -> Option<String> {
    let listen = i.listen.as_ref()?;
    let path = super::systemd::quote(&listen.to_string_lossy(), false);
    Some(format!(
        "\
# Written by `dockhand service install`; see `dockhand service print --platform systemd`.
[Unit]
Description=dockhand: Docker API socket (profile {profile})

[Socket]
# systemd holds the socket from login; dockhand takes it over when it starts.
ListenStream={path}
SocketMode=0600
DirectoryMode=0700
Accept=no
Service={service}

[Install]
WantedBy=sockets.target
",
        profile = i.profile,
        service = super::systemd::unit_name(&i.profile),
    ))
}

/// Write and start the socket unit before the service is (re)started, so
/// the service finds the socket to take over. No-op without `listen`.
pub fn install_systemd(i: &Inputs, config_home: &Path) -> Result<()> {
    let Some(content) = systemd_socket_unit(i) else {
        return Ok(());
    };
    let path = socket_unit_path(config_home, &i.profile);
    let unit = socket_unit_name(&i.profile);
    let tool = Tool::systemctl()?;
    let state = files::file_state(&path, &content)?;
    super::systemd::user_manager(&tool)?;
    // systemd refuses to start a socket whose service unit doesn't exist
    // ("Job failed", tried with systemd 252): a first install writes the
    // service's file now; `systemd::install` then enables and starts it.
    let service = super::systemd::unit_path(config_home, &i.profile);
    let service_was_missing = files::file_state(&service, "")? == FileState::Missing;
    if service_was_missing {
        files::write_atomic(&service, &super::systemd::render(i))?;
        println!("installed {}", service.display());
    }
    match &state {
        FileState::Same => {
            files::fix_mode(&path)?;
            println!("unchanged: {}", path.display());
        }
        state => {
            files::write_atomic(&path, &content)?;
            println!(
                "{} {}",
                if *state == FileState::Missing {
                    "installed"
                } else {
                    "updated"
                },
                path.display()
            );
            tool.run(&["daemon-reload"])?;
            if *state == FileState::Different {
                // A changed address: listen again there. The service is
                // restarted after this and takes the new socket over.
                tool.run(&["stop", &unit])?;
            }
        }
    }
    if service_was_missing && state == FileState::Same {
        tool.run(&["daemon-reload"])?;
    }
    tool.run(&["enable", "--now", &unit])?;
    println!("enabled and started {unit}");
    if state == FileState::Different
        && tool
            .output(&["is-active", &super::systemd::unit_name(&i.profile)])
            .is_ok_and(|o| o.status.success())
    {
        println!(
            "the running supervisor still serves the old listen address: `dockhand service restart --profile {}` makes it take the new socket",
            i.profile
        );
    }
    Ok(())
}

/// Stop, disable and remove the socket unit (also when `listen` has been
/// removed from the config since it was installed).
pub fn uninstall_systemd(i: &Inputs, config_home: &Path) -> Result<()> {
    let path = socket_unit_path(config_home, &i.profile);
    if files::file_state(&path, "")? == FileState::Missing {
        return Ok(());
    }
    let tool = Tool::systemctl()?;
    let unit = socket_unit_name(&i.profile);
    tool.run(&["disable", "--now", &unit])?;
    println!("stopped and disabled {unit}");
    files::remove_file(&path)?;
    println!("removed {}", path.display());
    tool.run(&["daemon-reload"])?;
    Ok(())
}

/// launchd binds `SockPathName` itself, in a directory that must exist:
/// create it (0700, ours) at install.
pub fn prepare_launchd(i: &Inputs) -> Result<()> {
    match i.listen.as_ref().and_then(|l| l.parent()) {
        Some(dir) => crate::state::private_dir(dir, "the directory of listen"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::inputs::tests::inputs;

    #[test]
    fn nothing_without_listen() {
        let i = inputs();
        assert!(systemd_socket_unit(&i).is_none());
        let mut d = Dictionary::new();
        launchd_sockets(&i, &mut d);
        assert!(d.is_empty());
    }

    #[test]
    fn renders_both_sockets() {
        let mut i = inputs();
        i.listen = Some("/Users/u/.local/state/dockhand/default/dh 50%.sock".into());
        let u = systemd_socket_unit(&i).unwrap();
        assert!(
            u.contains("ListenStream=\"/Users/u/.local/state/dockhand/default/dh 50%%.sock\"\n"),
            "{u}"
        );
        assert!(
            u.contains("SocketMode=0600\n") && u.contains("Service=dockhand-default.service\n")
        );
        let mut d = Dictionary::new();
        launchd_sockets(&i, &mut d);
        let s = d
            .get("Sockets")
            .and_then(Value::as_dictionary)
            .and_then(|s| s.get(LAUNCHD_SOCKET_NAME))
            .and_then(Value::as_dictionary)
            .unwrap();
        assert_eq!(
            s.get("SockPathMode").and_then(Value::as_signed_integer),
            Some(384)
        );
    }
}
