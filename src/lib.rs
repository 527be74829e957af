//! dockhand keeps a Docker engine ready on a developer's machine.
//! See ARCHITECTURE.md for the map of these modules.

pub mod cli;
pub mod config;
pub mod error;
pub mod service;
pub mod status;
pub mod supervisor;
