//! The walk to a private directory: from `/`, one component at a time
//! (`openat`, no link followed), each directory checked as it is opened:
//! owned by root or you, writable by nobody else unless sticky; the last
//! one ours and 0700 when created.

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Create `dir` (and missing parents) 0700, or check an existing one: it
/// must be ours and writable by nobody else (a world-writable directory
/// such as /tmp lets anyone plant files and links there), and so must
/// every directory above it, as ssh and sudo require: owned by root or
/// you, and not writable by others unless sticky (else another user could
/// swap `dir` for one of theirs). An existing directory's mode is never
/// changed: it may be one the user shares.
pub fn private_dir(dir: &Path, what: &str) -> Result<()> {
    open_private_dir(dir, what).map(drop)
}

/// `private_dir`, returning a descriptor of the directory: walked from `/`
/// one component at a time (`openat`, no symbolic link followed after the
/// existing prefix is resolved), each checked as it is opened, so nothing
/// swapped in meanwhile is trusted.
pub fn open_private_dir(dir: &Path, what: &str) -> Result<OwnedFd> {
    if !dir.is_absolute() {
        return Err(Error::UnsafePath(format!(
            "{what} {} is not an absolute path",
            dir.display()
        )));
    }
    // Symbolic links in the existing part (/var -> /private/var on macOS)
    // are resolved once; the real path is then walked and checked. A link
    // is only as safe as the directory holding it: that one is checked too.
    links_in_safe_dirs(dir, what)?;
    let names = names_to_walk(dir)?;
    let mut fd = rustix::fs::open("/", DIR_FLAGS, rustix::fs::Mode::empty())
        .map_err(|e| Error::io("cannot open /", e.into()))?;
    let mut here = PathBuf::from("/");
    for name in &names {
        check_ancestor(&fd, &here, dir, what)?;
        here.push(name);
        fd = open_or_create(&fd, name, &here, dir, what)?;
    }
    check_leaf(&fd, dir, what)?;
    Ok(fd)
}

/// A directory opened on the walk: never through a link.
const DIR_FLAGS: rustix::fs::OFlags = rustix::fs::OFlags::DIRECTORY
    .union(rustix::fs::OFlags::RDONLY)
    .union(rustix::fs::OFlags::CLOEXEC)
    .union(rustix::fs::OFlags::NOFOLLOW);

/// The names to walk from `/` to `dir`: the real path of its existing
/// part (links resolved once), then the missing names, outermost first.
fn names_to_walk(dir: &Path) -> Result<Vec<OsString>> {
    let mut existing = dir.to_path_buf();
    let mut missing = Vec::new();
    let real = loop {
        match existing.canonicalize() {
            Ok(r) => break r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let Some(name) = existing.file_name() else {
                    return Err(Error::io(format!("cannot resolve {}", dir.display()), e));
                };
                missing.push(name.to_os_string());
                existing.pop();
            }
            Err(e) => return Err(Error::io(format!("cannot resolve {}", dir.display()), e)),
        }
    };
    Ok(real
        .components()
        .skip(1)
        .map(|c| c.as_os_str().to_os_string())
        .chain(missing.into_iter().rev())
        .collect())
}

/// The directory `name` in `at` (`here` on the way to `dir`), created
/// 0700 when missing; a link or a file in its place is refused.
fn open_or_create(
    at: &OwnedFd,
    name: &OsStr,
    here: &Path,
    dir: &Path,
    what: &str,
) -> Result<OwnedFd> {
    use rustix::fs::Mode;
    let open = || rustix::fs::openat(at, name, DIR_FLAGS, Mode::empty());
    let next = match open() {
        Err(rustix::io::Errno::NOENT) => {
            match rustix::fs::mkdirat(at, name, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => {
                    return Err(Error::io(
                        format!("cannot create {what} {}", here.display()),
                        e.into(),
                    ));
                }
            }
            open()
        }
        other => other,
    };
    next.map_err(|e| match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => Error::UnsafePath(format!(
            "{what} {}: {} is not a directory (a link or a file was put there): remove it or choose another directory",
            dir.display(),
            here.display()
        )),
        e => Error::io(format!("cannot open {}", here.display()), e.into()),
    })
}

/// Device and inode (their types differ by platform).
#[allow(clippy::unnecessary_cast)]
pub(super) fn stat_id(st: &rustix::fs::Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

#[allow(clippy::unnecessary_cast)]
fn stat_mode(st: &rustix::fs::Stat) -> u32 {
    st.st_mode as u32
}

/// Every symbolic link on the way to `dir` sits in a directory that
/// passes `check_ancestor` (else whoever can write there could point it
/// elsewhere).
fn links_in_safe_dirs(dir: &Path, what: &str) -> Result<()> {
    use rustix::fs::{Mode, OFlags};
    let mut here = PathBuf::new();
    for c in dir.components() {
        here.push(c);
        let is_link = std::fs::symlink_metadata(&here).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            continue;
        }
        let parent = here.parent().unwrap_or(Path::new("/"));
        let fd = rustix::fs::open(
            parent,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(format!("cannot open {}", parent.display()), e.into()))?;
        check_ancestor(&fd, parent, dir, what)?;
    }
    Ok(())
}

/// A directory above the state dir: owned by root or us, and writable by
/// nobody else unless sticky (like /tmp).
fn check_ancestor(fd: &OwnedFd, here: &Path, dir: &Path, what: &str) -> Result<()> {
    let st = rustix::fs::fstat(fd)
        .map_err(|e| Error::io(format!("cannot inspect {}", here.display()), e.into()))?;
    let uid = rustix::process::geteuid().as_raw();
    let mode = stat_mode(&st);
    if st.st_uid != 0 && st.st_uid != uid {
        return Err(Error::UnsafePath(format!(
            "{what} {}: the directory {} above it belongs to uid {}, neither root nor you (uid {uid}): its owner could replace {what}; choose a directory under your own home",
            dir.display(),
            here.display(),
            st.st_uid
        )));
    }
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(Error::UnsafePath(format!(
            "{what} {}: the directory {} above it is writable by others without the sticky bit (mode {:o}): another user could replace {what}; `chmod go-w {}` or choose another directory",
            dir.display(),
            here.display(),
            mode & 0o7777,
            here.display()
        )));
    }
    Ok(())
}

/// The directory itself: ours, and writable by nobody else.
fn check_leaf(fd: &OwnedFd, dir: &Path, what: &str) -> Result<()> {
    let st = rustix::fs::fstat(fd)
        .map_err(|e| Error::io(format!("cannot inspect {}", dir.display()), e.into()))?;
    let uid = rustix::process::geteuid().as_raw();
    if st.st_uid != uid {
        return Err(Error::UnsafePath(format!(
            "{what} {} belongs to uid {}, not to you (uid {uid}): choose a directory of your own (or remove it so dockhand creates it)",
            dir.display(),
            st.st_uid
        )));
    }
    let mode = stat_mode(&st);
    if mode & 0o022 != 0 {
        return Err(Error::UnsafePath(format!(
            "{what} {} is writable by others (mode {:o}): others could plant files or links there; choose a private directory or `chmod go-w` it",
            dir.display(),
            mode & 0o7777
        )));
    }
    Ok(())
}
