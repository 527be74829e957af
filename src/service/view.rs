//! What a service manager has for a profile, as the commands ask it
//! (`doctor`, `up`): the definition file compared with what `dockhand
//! service install` would write now (this binary, this config), and what
//! the manager says of the job. Built on the managers' own rendering, so
//! "current" means exactly "what `install` writes now".

use std::path::PathBuf;

use super::files::{FileState, file_state};
use super::inputs::definition_path;
use super::{Inputs, Platform, launchd, systemd};
use crate::config::Context;
use crate::config::Profile;
use crate::error::{Error, Result};

/// The definition file compared with what `install` would write now.
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

/// What the service manager says of the job: it knows it (launchd:
/// `print` finds it; systemd: the unit is loaded and enabled), and it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    pub known: bool,
    pub running: bool,
}

/// A profile's service as the service manager has it.
#[derive(Debug)]
pub struct View {
    /// The definition's path (plist or unit file).
    pub path: PathBuf,
    pub definition: Definition,
    /// The manager's answer; an error when it can't be asked.
    pub job: Result<Job>,
}

/// The profile's service, for the manager of `$DOCKHAND_SERVICE_PLATFORM`
/// or the host's. An error when the definition can't be judged (the
/// manager isn't asked then).
pub fn view(ctx: &Context, p: &Profile) -> Result<View> {
    let (path, definition) = definition(ctx, p)?;
    let job = job(p);
    Ok(View {
        path,
        definition,
        job,
    })
}

/// The definition's path and how it compares.
fn definition(ctx: &Context, p: &Profile) -> Result<(PathBuf, Definition)> {
    let platform = Platform::from_env()?;
    let p = ctx
        .config
        .profile_on(&p.name, platform == Platform::Launchd)?;
    let i = Inputs::gather(ctx, &p)?;
    let path = definition_path(platform, ctx, &i);
    let text = match platform {
        Platform::Launchd => launchd::render(&i),
        Platform::Systemd => systemd::render(&i),
    };
    let d = match file_state(&path, &text) {
        Ok(FileState::Missing) => Definition::Missing,
        Ok(FileState::Same) => Definition::Current,
        Ok(FileState::Different) => Definition::Stale,
        Err(Error::UnsafePath(_)) => Definition::Foreign,
        Err(e) => return Err(e),
    };
    Ok((path, d))
}

/// What the manager says of the profile's job.
fn job(p: &Profile) -> Result<Job> {
    match Platform::from_env()? {
        Platform::Launchd => launchd::job(&p.label),
        Platform::Systemd => systemd::job(&p.name),
    }
}
