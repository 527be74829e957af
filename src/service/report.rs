//! The lines of `dockhand service status` shared by both managers: the
//! definition file's state, the supervisor's own state, and their printing.

use std::path::Path;

use super::files::{FileState, file_state};
use crate::config::Profile;
use crate::error::{Error, Result};

/// Add the `file:` line of `status`; returns whether the definition is
/// installed.
pub(crate) fn describe_file(
    path: &Path,
    content: &str,
    lines: &mut Vec<(String, String)>,
) -> Result<bool> {
    let (installed, how) = match file_state(path, content) {
        Ok(FileState::Missing) => (false, "not installed"),
        Ok(FileState::Same) => (true, "installed, up to date"),
        Ok(FileState::Different) => (
            true,
            "installed, differs from what `dockhand service install` would write now",
        ),
        Err(Error::UnsafePath(_)) => match super::nix_owned::recognise(path) {
            Some(n) => {
                let line = format!("{} ({})", path.display(), n.describe());
                lines.push(("file".into(), line));
                return Ok(true);
            }
            None => (true, "a symlink or special file, not managed by dockhand"),
        },
        Err(e) => return Err(e),
    };
    lines.push(("file".into(), format!("{} ({how})", path.display())));
    Ok(installed)
}

/// Lines about the supervisor's own state (`<state_dir>/state.json`).
pub(crate) fn supervisor_lines(profile: &Profile) -> Vec<(String, String)> {
    match crate::state::read(profile) {
        Ok(None) => vec![(
            "phase".into(),
            format!("unknown (no {})", profile.state_path().display()),
        )],
        Err(e) => vec![("phase".into(), format!("unknown ({e})"))],
        Ok(Some(st)) => {
            let mut lines = vec![("phase".to_string(), st.phase.to_string())];
            if let Some(e) = st.last_error.filter(|e| !e.is_empty()) {
                lines.push(("last error".into(), e));
            }
            lines
        }
    }
}

pub(crate) fn print_lines(lines: &[(String, String)]) {
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (k, v) in lines {
        println!("{:width$} {v}", format!("{k}:"));
    }
}
