//! The definition files' state: what is at a definition's path compared
//! with what would be written, atomic 0644 writes, removal. Links and
//! special files are never written through or removed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// What is at a definition's path compared with what would be written.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FileState {
    Missing,
    Same,
    Different,
}

/// Compare the file at `path` with `content`. A symlink (for example one
/// that nix-darwin or home-manager manages) is refused: dockhand never
/// writes through or removes someone else's link.
/// A regular file nix installed (a read-only copy, a `--config` in the
/// store: `nix_owned`) is refused the same way.
pub(crate) fn file_state(path: &Path, content: &str) -> Result<FileState> {
    if let Some(n) = super::nix_owned::recognise(path).filter(|_| !is_symlink(path)) {
        return Err(n.refusal(path));
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileState::Missing),
        Err(e) => return Err(Error::io(format!("cannot inspect {}", path.display()), e)),
        Ok(m) if m.file_type().is_symlink() => {
            return Err(Error::UnsafePath(format!(
                "{} is a symlink (managed by nix-darwin or home-manager?): dockhand won't write through it or remove it; remove it yourself or keep managing the service there",
                path.display()
            )));
        }
        Ok(m) if !m.is_file() => {
            return Err(Error::UnsafePath(format!(
                "{} exists and is not a regular file: move it away first",
                path.display()
            )));
        }
        Ok(_) => {}
    }
    let old = std::fs::read(path).ctx(|| format!("cannot read {}", path.display()))?;
    Ok(if old == content.as_bytes() {
        FileState::Same
    } else {
        FileState::Different
    })
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Something (ours or nix's) is at `path`.
pub(crate) fn present(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Write `content` to `path` atomically: a temporary file in the same
/// directory, fsync, mode 0644, rename over the old file. Creates the
/// directory if needed.
pub(crate) fn write_atomic(path: &Path, content: &str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).ctx(|| format!("cannot create {}", dir.display()))?;
    crate::state::write_atomic(path, content.as_bytes(), 0o644)
}

/// Make sure an unchanged file has mode 0644 (launchd refuses plists that
/// others can write).
pub(crate) fn fix_mode(path: &Path) -> Result<()> {
    let m = std::fs::metadata(path).ctx(|| format!("cannot inspect {}", path.display()))?;
    if m.permissions().mode() & 0o7777 != 0o644 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            .ctx(|| format!("cannot chmod 0644 {}", path.display()))?;
    }
    Ok(())
}

pub(crate) fn remove_file(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(format!("cannot remove {}", path.display()), e)),
    }
}

pub(crate) fn not_installed(path: &Path, profile: &str) -> Error {
    Error::Config(format!(
        "the service of profile `{profile}` is not installed ({} does not exist): run `dockhand service install --profile {profile}` first",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_and_symlink_refusal() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("sub/x.plist");
        assert_eq!(file_state(&p, "a").unwrap(), FileState::Missing);
        write_atomic(&p, "a").unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(file_state(&p, "a").unwrap(), FileState::Same);
        assert_eq!(file_state(&p, "b").unwrap(), FileState::Different);
        assert_eq!(std::fs::read_dir(t.path().join("sub")).unwrap().count(), 1);
        let l = t.path().join("sub/l.plist");
        std::os::unix::fs::symlink(&p, &l).unwrap();
        assert!(matches!(file_state(&l, "a"), Err(Error::UnsafePath(_))));
    }
}
