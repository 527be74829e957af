//! `dockhand service`: install the supervisor as a launchd user agent
//! (macOS) or a systemd user unit (Linux).

use crate::cli::Context;
use crate::error::Result;

#[derive(Debug, clap::Subcommand)]
pub enum ServiceCmd {
    /// Render the service definition to stdout; touches nothing.
    Print,
}

pub fn run(_cmd: ServiceCmd, _ctx: &Context) -> Result<u8> {
    Ok(0)
}
