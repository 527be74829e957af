//! `dockhand down --service`: unload the login service — not running now —
//! keeping its definition and its enablement, so that it comes back at the
//! next login (launchd loads every plist in ~/Library/LaunchAgents at login;
//! systemd starts a `WantedBy=default.target` unit when the user manager
//! starts). `dockhand up` loads it again now.

use std::path::Path;

use super::files;
use super::tool::Tool;
use super::{Inputs, Platform, activation, launchd, systemd};
use crate::config::Context;
use crate::error::Result;

/// Unload the profile's service (launchd: `bootout`; systemd: `stop` of
/// its socket unit, if any, then of the service), its files kept.
pub fn unload(ctx: &Context) -> Result<()> {
    let (platform, i) = target(ctx)?;
    let env = &ctx.config.env;
    match platform {
        Platform::Launchd => launchd::unload(&i, &launchd::plist_path(&env.home, &i.label)),
        Platform::Systemd => stop_units(&i, &env.config_home()),
    }
}

/// The platform acted on and the profile's service inputs.
fn target(ctx: &Context) -> Result<(Platform, Inputs)> {
    let platform = Platform::for_actions()?;
    let profile = ctx
        .config
        .profile_on(&ctx.profile_name, platform == Platform::Launchd)?;
    Ok((platform, Inputs::gather(ctx, &profile)?))
}

fn stop_units(i: &Inputs, config_home: &Path) -> Result<()> {
    let tool = Tool::systemctl()?;
    systemd::user_manager(&tool)?;
    // The socket first: no client starts the service again meanwhile.
    let socket = activation::socket_unit_path(config_home, &i.profile);
    let service = systemd::unit_path(config_home, &i.profile);
    let mut units = Vec::new();
    if files::present(&socket) {
        units.push(activation::socket_unit_name(&i.profile));
    }
    units.push(systemd::unit_name(&i.profile));
    for unit in &units {
        let args = ["stop", unit.as_str()];
        let out = tool.output(&args)?;
        // 5: "Unit ... not loaded" (not installed): nothing to stop.
        if !out.status.success() && out.status.code() != Some(5) {
            return Err(tool.failure(&args, &out, ""));
        }
    }
    if !files::present(&service) {
        println!("not installed: {} does not exist", service.display());
    } else {
        println!(
            "stopped {} ({} kept and enabled: it starts again with your user manager, at the next login; `dockhand up` starts it now)",
            units.join(" and "),
            service.display()
        );
    }
    Ok(())
}

/// Before `up` starts a stopped systemd service: its socket unit, if it
/// has one, listens again (`down --service` stopped it; starting an
/// active socket changes nothing). launchd: nothing (`bootstrap` loads
/// the sockets with the job).
pub fn start_socket(ctx: &Context) -> Result<()> {
    if Platform::for_actions()? != Platform::Systemd {
        return Ok(());
    }
    let socket = activation::socket_unit_path(&ctx.config.env.config_home(), &ctx.profile_name);
    if !files::present(&socket) {
        return Ok(());
    }
    let tool = Tool::systemctl()?;
    tool.run(&["start", &activation::socket_unit_name(&ctx.profile_name)])?;
    Ok(())
}

/// `dockhand up` with a definition nix manages that isn't loaded (after
/// `down --service`): load it as it is, never rewritten. launchd:
/// `enable` + `bootstrap` of that plist; systemd: `start` the unit.
pub fn load_as_is(ctx: &Context) -> Result<()> {
    let (platform, i) = target(ctx)?;
    let env = &ctx.config.env;
    match platform {
        Platform::Launchd => launchd::load_existing(&i, &launchd::plist_path(&env.home, &i.label)),
        Platform::Systemd => {
            start_socket(ctx)?;
            let tool = Tool::systemctl()?;
            tool.run(&["start", &systemd::unit_name(&i.profile)])?;
            Ok(())
        }
    }
}
