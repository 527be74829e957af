//! The profile's state directory: its lock, `state.json`, and the rules
//! that keep it safe (0700, ours, written atomically).

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::config::Profile;
use crate::error::{Error, IoContext, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Starting,
    Ready,
    Unhealthy,
    Restarting,
    Stopping,
    Stopped,
    Failed,
    /// Only in `status`: state.json could not be read.
    Unknown,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        f.write_str(&s)
    }
}

/// The contents of `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub profile: String,
    pub phase: Phase,
    pub engine_pid: Option<i32>,
    pub socket: PathBuf,
    pub restarts: u32,
    pub last_error: Option<String>,
    /// When `phase` was entered, RFC 3339.
    pub since: String,
    pub supervisor_pid: u32,
    /// The engine was running before this supervisor started (adopted).
    #[serde(default)]
    pub adopted: bool,
    /// Why the engine is held stopped while the supervisor runs (on-demand
    /// profiles); absent when it is not held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Held>,
    /// What keeps a running engine awake (profiles with `idle_stop`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awake: Option<Awake>,
    /// dockhand's own trouble (its probe out of file descriptors): never
    /// counted against the engine, shown by `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockhand_trouble: Option<String>,
}

/// Why a supervised engine is stopped and stays stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Held {
    /// Stopped by the user (`dockhand down`); the next request or `up` starts it.
    Down,
    /// Stopped by `idle_stop`; an active request or the docker CLI starts it.
    Idle,
    /// `on_demand`: not started yet; the first request that needs it starts it.
    OnDemand,
}

impl Held {
    /// `text` is the `STATUS=` of a supervisor holding its engine stopped
    /// (what `supervisor::set` sends: "stopped: engine <held>"): it is up
    /// and serving `listen`, as good as ready for a service manager.
    pub fn in_status(text: &str) -> bool {
        [Held::Down, Held::Idle, Held::OnDemand]
            .iter()
            .any(|h| text == format!("stopped: engine {h}"))
    }
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Held::Down => "stopped by `dockhand down`",
            Held::Idle => "stopped by dockhand's idle policy (idle_stop)",
            Held::OnDemand => "not started yet (on_demand)",
        })
    }
}

/// What keeps a running engine from being stopped as idle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Awake {
    /// Containers running, as the engine last said (None: not asked yet).
    pub running_containers: Option<u32>,
    /// Active requests in flight (responses not finished, upgraded
    /// connections open).
    pub active_requests: u32,
    /// When the engine stops as idle if nothing changes, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_stop_at: Option<String>,
    /// Why this engine is never stopped as idle (an adopted engine
    /// dockhand can't stop), when it isn't.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub never_idle_stopped: Option<String>,
}

/// The most of a message (an engine's last words) that is quoted in
/// `last_error`, the log and `status`.
pub const QUOTE_MAX_BYTES: usize = 4096;
pub const QUOTE_MAX_LINES: usize = 8;

/// `s` cut to a few lines and a few KiB: its start and its end (where an
/// engine's last words are), with what was cut said in between.
pub fn bounded(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let mut out = if lines.len() > QUOTE_MAX_LINES {
        let (head, tail) = (2, QUOTE_MAX_LINES - 3);
        format!(
            "{}\n[... {} lines cut ...]\n{}",
            lines[..head].join("\n"),
            lines.len() - head - tail,
            lines[lines.len() - tail..].join("\n")
        )
    } else {
        s.to_string()
    };
    if out.len() > QUOTE_MAX_BYTES {
        let head = floor_char(&out, QUOTE_MAX_BYTES / 4);
        let tail = ceil_char(&out, out.len() - QUOTE_MAX_BYTES / 2);
        out = format!(
            "{}[... {} bytes cut ...]{}",
            &out[..head],
            tail - head,
            &out[tail..]
        );
    }
    out
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

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
    use rustix::fs::{Mode, OFlags};
    let unsafe_path = |m: String| Error::UnsafePath(m);
    if !dir.is_absolute() {
        return Err(unsafe_path(format!(
            "{what} {} is not an absolute path",
            dir.display()
        )));
    }
    // Symbolic links in the existing part (/var -> /private/var on macOS)
    // are resolved once; the real path is then walked and checked. A link
    // is only as safe as the directory holding it: that one is checked too.
    links_in_safe_dirs(dir, what)?;
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
    let names: Vec<std::ffi::OsString> = real
        .components()
        .skip(1)
        .map(|c| c.as_os_str().to_os_string())
        .chain(missing.into_iter().rev())
        .collect();
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let open =
        |at: &OwnedFd, name: &std::ffi::OsStr| rustix::fs::openat(at, name, flags, Mode::empty());
    let mut fd = rustix::fs::open("/", flags, Mode::empty())
        .map_err(|e| Error::io("cannot open /", e.into()))?;
    let mut here = PathBuf::from("/");
    for (i, name) in names.iter().enumerate() {
        check_ancestor(&fd, &here, dir, what)?;
        here.push(name);
        let next = match open(&fd, name) {
            Err(rustix::io::Errno::NOENT) => {
                match rustix::fs::mkdirat(&fd, name.as_os_str(), Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => {
                        return Err(Error::io(
                            format!("cannot create {what} {}", here.display()),
                            e.into(),
                        ));
                    }
                }
                open(&fd, name)
            }
            other => other,
        };
        fd = next.map_err(|e| match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => unsafe_path(format!(
                "{what} {}: {} is not a directory (a link or a file was put there): remove it or choose another directory",
                dir.display(),
                here.display()
            )),
            e => Error::io(format!("cannot open {}", here.display()), e.into()),
        })?;
        let _ = i;
    }
    check_leaf(&fd, dir, what)?;
    Ok(fd)
}

/// Device and inode (their types differ by platform).
#[allow(clippy::unnecessary_cast)]
fn stat_id(st: &rustix::fs::Stat) -> (u64, u64) {
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

/// Write `bytes` to `path` atomically: a new temporary file beside it
/// (never opened through a link), `mode` set regardless of the umask,
/// synced, renamed over `path`, and the directory synced. In the claimed
/// state directory, through its descriptor.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let (dir, name) = split(path);
    let res = match claimed_parent(dir) {
        Some(d) => d.write_atomic_fd(name, bytes, mode),
        None => File::open(dir).and_then(|f| write_atomic_at(f.as_fd(), name, bytes, mode)),
    };
    res.ctx(|| format!("cannot write {}", path.display()))
}

fn split(path: &Path) -> (&Path, &OsStr) {
    (
        path.parent().unwrap_or(Path::new(".")),
        path.file_name().unwrap_or_default(),
    )
}

fn write_atomic_at(dir: BorrowedFd, name: &OsStr, bytes: &[u8], mode: u32) -> std::io::Result<()> {
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
        f.sync_data()?;
        rustix::fs::renameat(dir, tmp.as_os_str(), dir, name)?;
        Ok::<_, std::io::Error>(())
    })();
    if res.is_err() {
        let _ = rustix::fs::unlinkat(dir, tmp.as_os_str(), AtFlags::empty());
    } else {
        let _ = rustix::fs::fsync(dir);
    }
    res
}

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
fn claimed_parent(path: &Path) -> Option<&'static Dir> {
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

    fn write_atomic_fd(&self, name: &OsStr, bytes: &[u8], mode: u32) -> std::io::Result<()> {
        write_atomic_at(self.fd.as_fd(), name, bytes, mode)
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

/// The largest `state.json` read (it holds a few KiB at most).
pub const STATE_MAX: u64 = 1 << 20;

/// `state.json`: None when there is none, Err when it can't be read.
pub fn read(profile: &Profile) -> Result<Option<State>, String> {
    let path = profile.state_path();
    let what = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let bytes = match crate::sys::file::read_regular(&path, STATE_MAX, false) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(what(&e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| what(&e))
}

pub fn write(profile: &Profile, state: &State) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(state).expect("state serializes");
    json.push(b'\n');
    write_atomic(&profile.state_path(), &json, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_bounded_for_every_size_and_shape() {
        for len in [0usize, 1, 100, 4095, 4096, 4097, 10_000, 1 << 20, 20 << 20] {
            for unit in ["x", "é", "🦀", "line\n", "\u{fffd}", "ab\ncd\r\n"] {
                let s = unit.repeat(len / unit.len() + 1);
                let b = bounded(&s);
                assert!(
                    b.len() <= QUOTE_MAX_BYTES + 64,
                    "{len} {unit:?}: {}",
                    b.len()
                );
                assert!(b.lines().count() <= QUOTE_MAX_LINES + 1, "{len} {unit:?}");
                if s.len() <= QUOTE_MAX_BYTES && s.lines().count() <= QUOTE_MAX_LINES {
                    assert_eq!(b, s);
                } else {
                    assert!(b.contains("cut"), "{b}");
                }
            }
        }
        let last = format!("{}THE END", "y".repeat(20 << 20));
        assert!(bounded(&last).ends_with("THE END"));
    }
}
