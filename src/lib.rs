//! dockhand keeps a Docker engine ready on a developer's machine.
//! See ARCHITECTURE.md for the map of these modules.

pub mod cli;
pub mod config;
pub mod context;
pub mod control;
pub mod engine;
pub mod error;
pub mod logging;
pub mod probe;
pub mod proxy;
pub mod service;
pub mod state;
pub mod status;
pub mod supervisor;
pub mod sys;
