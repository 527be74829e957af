//! `dockhand service`: install the supervisor as a launchd user agent
//! (macOS) or a systemd user unit (Linux).
//!
//! The definitions are rendered by pure functions ([`launchd::render`],
//! [`systemd::render`]) from an [`Inputs`] value, so that they can be tested
//! and reviewed on any host. Everything that touches the machine lives in
//! its own file: finding and running `launchctl` / `systemctl` (`tool.rs`),
//! the definition files (`files.rs`), and the two managers' `install` /
//! `uninstall` / `status` / `restart`; `dispatch.rs` maps the `service`
//! subcommands onto them. Commands ask what a manager has through
//! [`view()`].
//!
//! The platform is the host's (macOS: launchd, otherwise systemd) unless
//! the environment variable `DOCKHAND_SERVICE_PLATFORM=launchd|systemd`
//! overrides it: a testing and override knob, used by the tests to drive
//! the launchd path on Linux with a stand-in `launchctl`.

pub mod activation;
pub mod competitors;
mod dispatch;
mod exit;
mod files;
mod inputs;
pub mod launchd;
pub mod nix_owned;
mod report;
pub mod systemd;
mod tool;
pub mod unload;
mod view;

pub use dispatch::{ServiceCmd, run, status_despite_config};
pub use exit::{SUPERVISED_BY_ENV, run_failed};
pub(crate) use inputs::ceil_secs;
pub use inputs::{Inputs, PLATFORM_ENV, Platform, TOOLS, find_tool_dirs};
pub use view::{Definition, Job, View, view};
