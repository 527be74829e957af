//! The claimed state directory: an exclusive `flock` on the directory
//! for the supervisor's life, the `lock` file naming the holder (a POSIX
//! lock `status` asks the kernel about), the check that the path still
//! names the directory held, and files used only through its descriptor.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use super::atomic::write_atomic_at;
use super::private_dir::{open_private_dir, stat_id};
use super::records::read;
use crate::config::Profile;
use crate::error::{Error, IoContext, Result};

/// The state directory of the running supervisor, claimed for its whole
/// life: an exclusive `flock` held on a descriptor of the directory
/// itself (deleting files inside can't release it), every file in it
/// used through that descriptor, and a POSIX lock on `lock` that says who
/// holds it (`status` asks the kernel; repaired if someone removes it).
pub struct Dir {
    path: PathBuf,
    fd: OwnedFd,
    id: (u64, u64),
    lock: Mutex<File>,
}

static CLAIMED: OnceLock<Dir> = OnceLock::new();

/// The claimed state directory, if `path` is it.
pub(super) fn claimed_parent(path: &Path) -> Option<&'static Dir> {
    CLAIMED.get().filter(|d| d.path == path)
}

/// The claimed state dir (after `claim`).
pub fn claimed() -> Option<&'static Dir> {
    CLAIMED.get()
}

/// A write lock on the whole file (F_WRLCK's type differs by platform).
fn lock_struct() -> libc::flock {
    // SAFETY: flock is a plain C struct; zero is a valid start.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl
}

/// Claim the profile's state directory for this process's life (the
/// exclusive per-profile lock). Exit code 3 when another supervisor holds
/// it, 6 when the directory or one above it is unsafe.
pub fn claim(profile: &Profile) -> Result<&'static Dir> {
    let fd = open_private_dir(&profile.state_dir, "state_dir")?;
    let st = rustix::fs::fstat(&fd).map_err(|e| Error::io("cannot inspect state_dir", e.into()))?;
    // `status` may hold a shared lock for an instant: retry briefly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
    loop {
        match rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(rustix::io::Errno::WOULDBLOCK) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(already_running(profile));
            }
            Err(e) => return Err(Error::io("cannot lock state_dir", e.into())),
        }
    }
    let lock = lock_file(fd.as_fd(), &profile.lock_path())?;
    let dir = Dir {
        path: profile.state_dir.clone(),
        fd,
        id: stat_id(&st),
        lock: Mutex::new(lock),
    };
    if CLAIMED.set(dir).is_err() {
        return Err(Error::EngineUnusable(
            "the state directory was claimed twice".into(),
        ));
    }
    Ok(CLAIMED.get().expect("just set"))
}

fn already_running(profile: &Profile) -> Error {
    let pid = holder_pid(&profile.lock_path())
        .or_else(|| recorded_supervisor(profile))
        .map(|p| p.to_string())
        .unwrap_or_else(|| "unknown".into());
    Error::AlreadyRunning {
        profile: profile.name.clone(),
        lock: profile.lock_path(),
        pid,
    }
}

/// `lock` in the directory `dir`, POSIX-locked, holding our pid.
fn lock_file(dir: BorrowedFd, path: &Path) -> Result<File> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::openat(
        dir,
        "lock",
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| Error::io(format!("cannot open lock {}", path.display()), e.into()))?;
    let mut file = File::from(fd);
    crate::sys::file::check_regular(&file, None)
        .ctx(|| format!("cannot use lock {}", path.display()))?;
    let fl = lock_struct();
    // SAFETY: fcntl(F_SETLK) with a valid flock struct on our fd.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) } != 0 {
        return Err(Error::io(
            format!("cannot lock {}", path.display()),
            std::io::Error::last_os_error(),
        ));
    }
    file.set_len(0)
        .ctx(|| format!("cannot write {}", path.display()))?;
    let _ = writeln!(file, "{}", std::process::id());
    Ok(file)
}

impl Dir {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path still names the directory we hold; the lock file is put
    /// back if someone removed or replaced it. Err (with what happened)
    /// when the directory itself was removed or replaced: from then on
    /// nothing in it may be trusted, nor the path used.
    pub fn still_ours(&self) -> Result<()> {
        let same =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if !same {
            return Err(Error::UnsafePath(format!(
                "state_dir {} was removed or replaced while dockhand ran: its lock and records can no longer be trusted; stopping (start `dockhand run` again)",
                self.path.display()
            )));
        }
        let mut lock = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let held = lock.metadata().map(|m| (m.dev(), m.ino())).ok();
        let now = rustix::fs::statat(&self.fd, "lock", rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|s| stat_id(&s));
        if held != now || now.is_none() {
            self.remove("lock");
            match lock_file(self.fd.as_fd(), &self.path.join("lock")) {
                Ok(f) => {
                    tracing::warn!(
                        "{} was removed or replaced: put back",
                        self.path.join("lock").display()
                    );
                    *lock = f;
                }
                Err(e) => tracing::warn!("{e}"),
            }
        }
        Ok(())
    }

    pub(super) fn write_atomic_fd(
        &self,
        name: &OsStr,
        bytes: &[u8],
        mode: u32,
        sync: bool,
    ) -> std::io::Result<()> {
        write_atomic_at(self.fd.as_fd(), name, bytes, mode, sync)
    }

    /// A regular file of ours in the directory (no link followed), at most
    /// `cap` bytes; None when there is none.
    pub fn read(&self, name: &str, cap: u64) -> std::io::Result<Option<Vec<u8>>> {
        read_owned_at(self.fd.as_fd(), name, cap)
    }

    /// Open `name` to append (created 0600), never through a link, only
    /// a regular file.
    pub fn open_append(&self, name: &str) -> std::io::Result<File> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY
                | OFlags::APPEND
                | OFlags::CREATE
                | OFlags::NOFOLLOW
                | OFlags::NONBLOCK
                | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let f = File::from(fd);
        crate::sys::file::check_regular(&f, None)?;
        Ok(f)
    }

    /// Open `name` to read and truncate (no link, regular), if it exists.
    pub fn open_rw(&self, name: &str) -> std::io::Result<File> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let f = File::from(fd);
        crate::sys::file::check_regular(&f, None)?;
        Ok(f)
    }

    /// Create `name` anew (0600, never through a link), replacing a file.
    pub fn create(&self, name: &str) -> std::io::Result<File> {
        use rustix::fs::{Mode, OFlags};
        self.remove(name);
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        Ok(File::from(fd))
    }

    pub fn rename(&self, from: &str, to: &str) {
        let _ = rustix::fs::renameat(&self.fd, from, &self.fd, to);
    }

    /// Remove `name`, whatever it is (an empty directory too).
    pub fn remove(&self, name: &str) {
        use rustix::fs::AtFlags;
        if let Err(rustix::io::Errno::ISDIR | rustix::io::Errno::PERM) =
            rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())
        {
            let _ = rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR);
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `name` in `dir`: a regular file (no link followed, no FIFO waited on),
/// owned by us and writable by nobody else, at most `cap` bytes.
fn read_owned_at(dir: BorrowedFd, name: &str, cap: u64) -> std::io::Result<Option<Vec<u8>>> {
    use rustix::fs::{Mode, OFlags};
    let fd = match rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(rustix::io::Errno::LOOP) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "is a symbolic link, not a regular file",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let mut f = File::from(fd);
    crate::sys::file::check_regular(&f, None)?;
    let md = f.metadata()?;
    let uid = rustix::process::geteuid().as_raw();
    if md.uid() != uid || md.mode() & 0o022 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "belongs to uid {} or is writable by others: not trusted",
                md.uid()
            ),
        ));
    }
    crate::sys::file::read_capped(&mut f, cap).map(Some)
}

/// The pid of the process holding the profile's lock, if any. Never call
/// this in the process that holds the lock: closing any descriptor of the
/// file drops a POSIX lock.
pub fn holder_pid(lock: &Path) -> Option<i32> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(lock)
        .ok()?;
    crate::sys::file::check_regular(&f, None).ok()?;
    let mut fl = lock_struct();
    // SAFETY: F_GETLK fills `fl` with a conflicting lock, if any.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut fl) } != 0 {
        return None;
    }
    if i64::from(fl.l_type) == i64::from(libc::F_UNLCK) {
        return None;
    }
    Some(fl.l_pid)
}

/// Whether a supervisor holds the state directory, and its pid when the
/// lock file names it: asks the kernel (POSIX lock on `lock`, else the
/// directory's `flock`, tested with a shared lock released at once).
pub fn supervisor(profile: &Profile) -> Option<Option<i32>> {
    if let Some(pid) = holder_pid(&profile.lock_path()) {
        return Some(Some(pid));
    }
    let fd = rustix::fs::open(
        &profile.state_dir,
        rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()?;
    match rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockShared) {
        Ok(()) => None,
        Err(_) => Some(recorded_supervisor(profile)),
    }
}

fn recorded_supervisor(profile: &Profile) -> Option<i32> {
    read(profile)
        .ok()
        .flatten()
        .map(|s| s.supervisor_pid as i32)
        .filter(|p| *p > 0)
}
