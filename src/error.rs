//! The one error type of dockhand. Every failure that reaches the command
//! line is one of these kinds, each with its documented exit code, and is
//! printed as one line saying what happened and what to do.

use std::path::PathBuf;

/// Exit codes (also in the README):
/// 0 ok · 1 not ready / generic failure · 2 bad config or usage ·
/// 3 already running · 4 engine prerequisite missing · 5 service manager
/// unavailable · 6 path conflict or unsafe path · 7 external command failed ·
/// 8 a supervisor holds the profile but does not answer · 10 I/O error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),

    #[error(
        "another dockhand supervisor already runs profile `{profile}` (lock {}, pid {pid}); stop it with `kill {pid}` (SIGTERM) or use that one",
        lock.display()
    )]
    AlreadyRunning {
        profile: String,
        lock: PathBuf,
        pid: String,
    },

    /// `what` says how it is missing ("`x` not found on PATH", "`/a/x` does not exist").
    #[error("{what}: {hint}")]
    EngineMissing { what: String, hint: String },

    #[error("{0}")]
    EngineUnusable(String),

    #[error("{0}")]
    ServiceManager(String),

    #[error("{0}")]
    UnsafePath(String),

    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A supervisor holds the profile's lock but does not answer on its
    /// control socket (stopped, hung, or the socket replaced).
    #[error("{0}")]
    NotAnswering(String),

    /// Not an error as such: the engine is not ready (`status`).
    #[error("{0}")]
    NotReady(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::NotReady(_) => 1,
            Error::Config(_) => 2,
            Error::AlreadyRunning { .. } => 3,
            Error::EngineMissing { .. } | Error::EngineUnusable(_) => 4,
            Error::ServiceManager(_) => 5,
            Error::UnsafePath(_) => 6,
            Error::Command { .. } => 7,
            Error::NotAnswering(_) => 8,
            Error::Io { .. } => 10,
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach a context sentence to I/O results.
pub trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}
