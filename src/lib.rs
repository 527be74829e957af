//! dockhand keeps a Docker engine ready on a developer's machine.
//! See ARCHITECTURE.md for the map of these modules.

pub mod cli;
pub mod config;
pub mod context;
pub mod control;
pub mod control_socket;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod logging;
pub mod logs;
pub mod probe;
pub mod progress;
pub mod proxy;
pub mod reach;
pub mod service;
pub mod state;
pub mod status;
pub mod supervisor;
pub mod sys;
pub mod ui;
pub mod updown;
