//! Reaching a profile's supervisor, for `up`, `down`, `restart` and
//! `status`: whether one holds the profile's lock (asked of the kernel)
//! and whether it answers on `control.sock`. The commands then say
//! exactly that: a supervisor that holds the lock but does not answer
//! (stopped by SIGSTOP or a debugger, hung, its socket replaced by a FIFO
//! or a regular file) is named, with its pid, and never taken for "no
//! supervisor".

use std::os::unix::fs::FileTypeExt;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Profile;
use crate::control::State;
use crate::control_socket::{Client, Req};
use crate::error::Error;

/// How long a supervisor has to answer a `state` request: it answers at
/// once whatever it is doing, so this only waits out a busy machine.
pub const PATIENCE: Duration = Duration::from_secs(2);

pub enum Reach {
    /// It answered: the connection, ready for the real request, and its state.
    Answers(Client, Box<State>),
    /// No supervisor holds the profile.
    Nobody,
    /// A supervisor holds the profile but does not answer.
    Silent(Silent),
}

/// A supervisor that holds the profile's lock and does not answer.
#[derive(Debug, Clone)]
pub struct Silent {
    pub pid: Option<i32>,
    pub why: String,
}

impl Silent {
    pub fn message(&self, p: &Profile) -> String {
        format!("{}; {}", self.summary(p), self.fix())
    }

    /// Who holds the profile, and why it counts as not answering.
    pub fn summary(&self, p: &Profile) -> String {
        let who = match self.pid {
            Some(pid) => format!("the supervisor of profile `{}` (pid {pid})", p.name),
            None => format!("the supervisor of profile `{}` (pid unknown)", p.name),
        };
        format!("{who} holds the profile but is not answering: {}", self.why)
    }

    pub fn fix(&self) -> String {
        match self.pid {
            Some(pid) => format!(
                "if it was stopped (SIGSTOP, a debugger), `kill -CONT {pid}`; if it hangs, `kill {pid}` (its engine is stopped with it) and `dockhand up`"
            ),
            None => "see `dockhand service status` and `dockhand logs`".into(),
        }
    }

    pub fn error(&self, p: &Profile) -> Error {
        Error::NotAnswering(self.message(p))
    }
}

/// Find out, within about `patience`, who runs the profile and whether
/// it answers.
pub async fn reach(p: &Profile, patience: Duration) -> Reach {
    let holder = crate::state::supervisor(p);
    let path = crate::control_socket::path(p);
    let silent = |why: String| match holder {
        Some(pid) => Reach::Silent(Silent { pid, why }),
        None => Reach::Nobody,
    };
    if let Ok(md) = std::fs::symlink_metadata(&path)
        && !md.file_type().is_socket()
    {
        return silent(format!(
            "{} is {}, not its socket",
            path.display(),
            crate::sys::file::kind(md.file_type())
        ));
    }
    let deadline = Instant::now() + patience;
    let mut c = loop {
        match Client::try_connect(&path).await {
            Ok(c) => break c,
            // Not yet serving: a supervisor that has just started.
            Err(e) if holder.is_some() && Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return silent(format!("nothing accepts on {} ({e})", path.display())),
        }
    };
    let asked = tokio::time::timeout_at(deadline, c.call(&Req::State)).await;
    match asked {
        Ok(Ok(l)) => match l.state {
            Some(s) => Reach::Answers(c, Box::new(s)),
            None => silent(format!("{} answered without a state", path.display())),
        },
        Ok(Err(e)) => silent(format!("{}: {e}", path.display())),
        Err(_) => Reach::Silent(Silent {
            pid: holder.flatten(),
            why: format!(
                "no answer on {} within {}",
                path.display(),
                humantime::format_duration(patience)
            ),
        }),
    }
}
