//! All integration tests, one binary (as in cargo-nextest's layout).

mod harness;

mod colima;
mod config_errors;
mod service;
mod supervisor;
mod systemd_user;
