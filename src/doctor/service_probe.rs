//! Is the login service installed as this binary and config would install
//! it, and is it loaded? Built on `service`'s own rendering and tools, so
//! "current" means exactly "what `dockhand service install` writes now".

use std::path::PathBuf;

use crate::config::Context;
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

pub use crate::service::View;

pub fn view(p: &Profile) -> Result<View> {
    match platform()? {
        Platform::Launchd => launchd::view(&p.label),
        Platform::Systemd => systemd::view(&p.name),
    }
}
