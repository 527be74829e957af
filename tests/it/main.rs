//! All integration tests, one binary (as in cargo-nextest's layout).

mod harness;

mod colima;
mod commands;
mod config_errors;
mod doctor;
mod hardening;
mod held;
mod proxy;
mod proxy_sturdy;
mod sdk;
mod service;
mod socket_activation;
mod ssh;
mod ssh_rig;
mod supervisor;
mod systemd_user;
mod truthful;
mod updown;
