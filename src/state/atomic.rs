//! Atomic writes: a temporary file beside the target, renamed over it.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use super::dir::claimed_parent;
use crate::error::{IoContext, Result};

/// Write `bytes` to `path` atomically: a new temporary file beside it
/// (never opened through a link), `mode` set regardless of the umask,
/// synced, renamed over `path`, and the directory synced. In the claimed
/// state directory, through its descriptor.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_replacing(path, bytes, mode, true)
}

/// [`write_atomic`] without syncing to disk, for files that describe
/// running processes (`state.json`, `engine.json`): readers still see
/// the old or the new content, never a mix, and after a power loss
/// those processes are gone anyway. Two fsyncs less on each transition
/// (several ms each on a busy disk, in the restart path).
pub fn write_runtime(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_replacing(path, bytes, mode, false)
}

fn write_replacing(path: &Path, bytes: &[u8], mode: u32, sync: bool) -> Result<()> {
    let (dir, name) = split(path);
    let res = match claimed_parent(dir) {
        Some(d) => d.write_atomic_fd(name, bytes, mode, sync),
        None => File::open(dir).and_then(|f| write_atomic_at(f.as_fd(), name, bytes, mode, sync)),
    };
    res.ctx(|| format!("cannot write {}", path.display()))
}

fn split(path: &Path) -> (&Path, &OsStr) {
    (
        path.parent().unwrap_or(Path::new(".")),
        path.file_name().unwrap_or_default(),
    )
}

pub(super) fn write_atomic_at(
    dir: BorrowedFd,
    name: &OsStr,
    bytes: &[u8],
    mode: u32,
    sync: bool,
) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".{}.tmp", std::process::id()));
    let _ = rustix::fs::unlinkat(dir, tmp.as_os_str(), AtFlags::empty());
    let res = (|| {
        let fd = rustix::fs::openat(
            dir,
            tmp.as_os_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode as _),
        )?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode as _))?;
        let mut f = File::from(fd);
        f.write_all(bytes)?;
        if sync {
            f.sync_data()?;
        }
        rustix::fs::renameat(dir, tmp.as_os_str(), dir, name)?;
        Ok::<_, std::io::Error>(())
    })();
    if res.is_err() {
        let _ = rustix::fs::unlinkat(dir, tmp.as_os_str(), AtFlags::empty());
    } else if sync {
        let _ = rustix::fs::fsync(dir);
    }
    res
}
