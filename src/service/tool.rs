//! Tool discovery: a service manager's command-line tool (`launchctl`,
//! `systemctl --user`), located on PATH once and run without a shell, its
//! failures turned into [`Error::Command`].

use std::path::PathBuf;
use std::process::Output;

use crate::error::{Error, IoContext, Result};

/// A service manager's command-line tool (`launchctl`, `systemctl`),
/// located on PATH once and run without a shell.
pub(crate) struct Tool {
    name: &'static str,
    path: PathBuf,
    /// Leading arguments of every call (`--user` for systemctl).
    prefix: &'static [&'static str],
}

impl Tool {
    fn locate(
        name: &'static str,
        prefix: &'static [&'static str],
        needed_for: &str,
    ) -> Result<Tool> {
        match crate::sys::which(name) {
            Some(path) => Ok(Tool { name, path, prefix }),
            None => Err(Error::ServiceManager(format!(
                "`{name}` not found on PATH: {needed_for}"
            ))),
        }
    }

    /// launchd's `launchctl`.
    pub(crate) fn launchctl() -> Result<Tool> {
        Tool::locate(
            "launchctl",
            &[],
            "dockhand service needs launchd's launchctl (macOS) to manage the agent",
        )
    }

    /// systemd's `systemctl`, talking to the user manager (`--user`).
    pub(crate) fn systemctl() -> Result<Tool> {
        Tool::locate(
            "systemctl",
            &["--user"],
            "dockhand service needs systemd's systemctl to manage the user unit",
        )
    }

    fn display(&self, args: &[&str]) -> String {
        let mut s = self.name.to_string();
        for a in self.prefix.iter().chain(args) {
            s.push(' ');
            s.push_str(a);
        }
        s
    }

    /// Run and capture; any exit status is returned to the caller.
    pub(crate) fn output(&self, args: &[&str]) -> Result<Output> {
        std::process::Command::new(&self.path)
            .args(self.prefix)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .ctx(|| format!("cannot run `{}`", self.display(args)))
    }

    /// Run; a non-zero exit is [`Error::Command`] with its stderr.
    pub(crate) fn run(&self, args: &[&str]) -> Result<Output> {
        let out = self.output(args)?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(self.failure(args, &out, ""))
        }
    }

    pub(crate) fn failure(&self, args: &[&str], out: &Output, hint: &str) -> Error {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let text = if stderr.trim().is_empty() {
            stdout.trim()
        } else {
            stderr.trim()
        };
        let status = match out.status.code() {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".into(),
        };
        let mut detail = if text.is_empty() {
            status
        } else {
            format!("{} ({status})", text.replace('\n', "; "))
        };
        detail.push_str(hint);
        Error::Command {
            command: self.display(args),
            detail,
        }
    }
}
