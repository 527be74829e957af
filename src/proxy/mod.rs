//! The on-demand proxy: dockhand serves the Docker API on `listen` and
//! forwards to the engine's `socket`, starting the engine when a request
//! needs it and stopping it when idle.

pub mod classify;
