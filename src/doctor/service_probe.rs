//! Is the login service installed as this binary and config would install
//! it, and is it loaded? Built on `service`'s own rendering and tools, so
//! "current" means exactly "what `dockhand service install` writes now".

use std::path::PathBuf;

use crate::cli::Context;
use crate::config::Profile;
use crate::error::Result;
use crate::service::{self, Inputs, Platform, launchd, systemd};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Definition {
    Missing,
    /// What `service install` would write now: this binary, this config.
    Current,
    /// Another binary path or config.
    Stale,
    /// A symlink (nix-darwin, home-manager): not ours to judge.
    Foreign,
}

pub fn platform() -> Result<Platform> {
    Platform::from_env()
}

/// The definition's path and how it compares.
pub fn definition(ctx: &Context, p: &Profile) -> Result<(PathBuf, Definition)> {
    let platform = platform()?;
    let p = ctx
        .config
        .profile_on(&p.name, platform == Platform::Launchd)?;
    let i = Inputs::gather(ctx, &p)?;
    let (path, text) = match platform {
        Platform::Launchd => (
            launchd::plist_path(&ctx.config.env.home, &i.label),
            launchd::render(&i),
        ),
        Platform::Systemd => (
            systemd::unit_path(&ctx.config.env.config_home(), &i.profile),
            systemd::render(&i),
        ),
    };
    let d = match service::file_state(&path, &text) {
        Ok(service::FileState::Missing) => Definition::Missing,
        Ok(service::FileState::Same) => Definition::Current,
        Ok(service::FileState::Different) => Definition::Stale,
        Err(crate::error::Error::UnsafePath(_)) => Definition::Foreign,
        Err(e) => return Err(e),
    };
    Ok((path, d))
}

/// What the service manager says: it knows the job (launchd: `print`
/// finds it; systemd: the unit is loaded and enabled), and the job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub known: bool,
    pub running: bool,
}

pub fn view(p: &Profile) -> Result<View> {
    match platform()? {
        Platform::Launchd => {
            let uid = rustix::process::getuid().as_raw();
            let t = service::Tool::locate("launchctl", &[], "needed to ask launchd")?;
            let out = t.output(&["print", &format!("gui/{uid}/{}", p.label)])?;
            let info = launchd::parse_print(&String::from_utf8_lossy(&out.stdout));
            Ok(View {
                known: out.status.success(),
                running: out.status.success() && info.state.as_deref() == Some("running"),
            })
        }
        Platform::Systemd => {
            let t = service::Tool::locate("systemctl", &["--user"], "needed to ask systemd")?;
            let unit = systemd::unit_name(&p.name);
            let out = t.output(&["show", &unit, "-p", "LoadState,UnitFileState,ActiveState"])?;
            let text = String::from_utf8_lossy(&out.stdout);
            let kv = systemd::parse_show(&text);
            let get = |k: &str| kv.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
            Ok(View {
                known: get("LoadState") == Some("loaded")
                    && get("UnitFileState") == Some("enabled"),
                running: matches!(
                    get("ActiveState"),
                    Some("active" | "activating" | "reloading")
                ),
            })
        }
    }
}
