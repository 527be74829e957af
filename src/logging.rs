//! The supervisor's log: tracing to a size-rotated file (10 MiB, 3 kept),
//! and to stderr when that is a terminal. Rotation is a few lines here
//! rather than a crate that would bring chrono and flate2 along.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{IoContext, Result};

pub const MAX_BYTES: u64 = 10 * 1024 * 1024;
pub const KEEP: u32 = 3;

pub struct Rotating {
    path: PathBuf,
    /// The claimed state dir and the log's name in it, when the log is
    /// there (the default): opened and rotated through its descriptor.
    dir: Option<(&'static crate::state::Dir, String)>,
    file: File,
    size: u64,
    max: u64,
}

/// Open `path` to append by path (a log outside the state dir): created
/// 0600, never through a link, never waiting on a FIFO, only a regular
/// file (exit 6 otherwise, with what to do).
fn open(path: &Path) -> Result<File> {
    let unsafe_log = |what: &str| {
        crate::error::Error::UnsafePath(format!(
            "log {} is {what}, not a regular file: remove it, or choose another log_file",
            path.display()
        ))
    };
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => unsafe_log("a symbolic link"),
            // O_NONBLOCK|O_WRONLY on a FIFO without a reader.
            Some(libc::ENXIO) => unsafe_log("a FIFO"),
            _ => crate::error::Error::io(format!("cannot open log {}", path.display()), e),
        })?;
    let md = file
        .metadata()
        .ctx(|| format!("cannot inspect log {}", path.display()))?;
    if !md.is_file() {
        return Err(unsafe_log(crate::sys::file::kind(md.file_type())));
    }
    Ok(file)
}

/// Open `name` in `dir` (the claimed state dir: ours, 0700) to append,
/// created 0600, never through a link, never waiting on a FIFO. Something
/// other than a regular file in its place (a link, a FIFO, a socket, a
/// device: only the user can put one in that directory) is removed (the
/// entry only, nothing it points to) and replaced by a new file, said in
/// the returned note; a directory is refused (exit 6).
pub fn open_in_state_dir(dir: &crate::state::Dir, name: &str) -> Result<(File, Option<String>)> {
    use rustix::fs::{AtFlags, FileType};
    let path = dir.path().join(name);
    let mut note = None;
    if let Ok(st) = rustix::fs::statat(dir.fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::Directory {
            return Err(crate::error::Error::UnsafePath(format!(
                "{} is a directory, where dockhand keeps a log: remove it",
                path.display()
            )));
        }
        if ft != FileType::RegularFile {
            let _ = rustix::fs::unlinkat(dir.fd(), name, AtFlags::empty());
            note = Some(format!(
                "{} was {}, not a regular file: replaced by a new log",
                path.display(),
                describe(ft)
            ));
        }
    }
    let file = dir
        .open_append(name)
        .ctx(|| format!("cannot open {}", path.display()))?;
    Ok((file, note))
}

fn describe(ft: rustix::fs::FileType) -> &'static str {
    use rustix::fs::FileType;
    match ft {
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        _ => "not a regular file",
    }
}

impl Rotating {
    pub fn open(path: &Path, max: u64) -> Result<Rotating> {
        Ok(Self::open_noting(path, max)?.0)
    }

    /// Open the log; in the claimed state dir through its descriptor (the
    /// note says what was replaced), elsewhere by path.
    fn open_noting(path: &Path, max: u64) -> Result<(Rotating, Option<String>)> {
        let in_dir = crate::state::claimed()
            .filter(|d| path.parent() == Some(d.path()))
            .zip(path.file_name().and_then(|n| n.to_str()));
        let (file, note, dir) = match in_dir {
            Some((d, name)) => {
                let (f, note) = open_in_state_dir(d, name)?;
                (f, note, Some((d, name.to_string())))
            }
            None => {
                if let Some(dir) = path.parent() {
                    crate::state::private_dir(dir, "log directory")?;
                }
                (open(path)?, None, None)
            }
        };
        // Never append to a file someone else made for us to fill.
        let md = file
            .metadata()
            .ctx(|| format!("cannot inspect log {}", path.display()))?;
        let uid = rustix::process::geteuid().as_raw();
        if std::os::unix::fs::MetadataExt::uid(&md) != uid {
            return Err(crate::error::Error::UnsafePath(format!(
                "log {} belongs to uid {}, not to you: remove it or choose another log_file",
                path.display(),
                std::os::unix::fs::MetadataExt::uid(&md)
            )));
        }
        let size = md.len();
        let r = Rotating {
            path: path.to_path_buf(),
            dir,
            file,
            size,
            max,
        };
        Ok((r, note))
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let err = |e: crate::error::Error| std::io::Error::other(e.to_string());
        self.file = match &self.dir {
            Some((d, name)) => {
                for n in (1..KEEP).rev() {
                    d.rename(&format!("{name}.{n}"), &format!("{name}.{}", n + 1));
                }
                d.rename(name, &format!("{name}.1"));
                open_in_state_dir(d, name).map_err(err)?.0
            }
            None => {
                rotate_files(&self.path);
                open(&self.path).map_err(err)?
            }
        };
        self.size = 0;
        Ok(())
    }
}

/// `log` → `log.1` → ... → `log.KEEP`; the oldest is dropped.
pub fn rotate_files(path: &Path) {
    let numbered = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
    for n in (1..KEEP).rev() {
        let _ = std::fs::rename(numbered(n), numbered(n + 1));
    }
    let _ = std::fs::rename(path, numbered(1));
}

impl Write for Rotating {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.size + buf.len() as u64 > self.max && self.size > 0 {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

struct Tee {
    file: Mutex<Rotating>,
    stderr: bool,
}

impl Write for &Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.stderr {
            let _ = std::io::stderr().write_all(buf);
        }
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Install the global subscriber. `DOCKHAND_LOG` sets the level (default
/// info); stderr gets a copy when it is a terminal, systemd's journal
/// (`JOURNAL_STREAM`), or DOCKHAND_LOG_STDERR=1. Under launchd it is
/// neither: stderr is the `.launchd.log` file, which keeps only what comes
/// before the log opens.
pub fn init(log_file: &Path) -> Result<()> {
    let (file, note) = Rotating::open_noting(log_file, MAX_BYTES)?;
    let stderr = std::io::stderr().is_terminal()
        || std::env::var_os("JOURNAL_STREAM").is_some()
        || std::env::var_os("DOCKHAND_LOG_STDERR").is_some_and(|v| v == "1");
    let tee: &'static Tee = Box::leak(Box::new(Tee {
        file: Mutex::new(file),
        stderr,
    }));
    let level = std::env::var("DOCKHAND_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_target(false)
        .with_writer(move || tee)
        .try_init();
    if let Some(n) = note {
        tracing::warn!("{n}");
    }
    Ok(())
}

// ---- launchd's log of dockhand's own stderr ----

/// Set in the service definition: which manager runs `dockhand run`.
pub const SUPERVISED_BY_ENV: &str = "DOCKHAND_SUPERVISED_BY";

/// `<log>.launchd.log`: a `.log` suffix is replaced, otherwise appended.
pub fn launchd_log(log_file: &Path) -> PathBuf {
    let s = log_file.to_string_lossy();
    let base = s.strip_suffix(".log").unwrap_or(&s);
    PathBuf::from(format!("{base}.launchd.log"))
}

/// Largest size of `<log>.launchd.log` before [`bound_launchd_log`] cuts it.
pub const LOG_LIMIT: u64 = 1 << 20;
/// What [`bound_launchd_log`] keeps of it: the end.
pub const LOG_KEEP: u64 = 64 << 10;

/// Under launchd, dockhand's stderr is `<log>.launchd.log`, which launchd
/// opens for appending at every spawn and never rotates. At start, when
/// it has grown beyond [`LOG_LIMIT`], keep only its last [`LOG_KEEP`]
/// bytes (in place: launchd holds the descriptor).
pub fn bound_launchd_log(log_file: &Path) {
    if std::env::var(SUPERVISED_BY_ENV).is_ok_and(|v| v == "launchd") {
        let _ = cut_to_tail(&launchd_log(log_file), LOG_LIMIT, LOG_KEEP);
    }
}

fn cut_to_tail(path: &Path, limit: u64, keep: u64) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let len = f.metadata()?.len();
    if len <= limit {
        return Ok(false);
    }
    f.seek(SeekFrom::Start(len - keep))?;
    let mut tail = Vec::with_capacity(keep as usize);
    (&mut f).take(keep).read_to_end(&mut tail)?;
    f.set_len(0)?;
    f.seek(SeekFrom::Start(0))?;
    writeln!(f, "[dockhand: cut {} bytes; the log goes on]", len - keep)?;
    f.write_all(&tail)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_three() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("logs/x.log");
        let mut r = Rotating::open(&p, 100).unwrap();
        for i in 0..50 {
            writeln!(r, "line {i:03} of the log....").unwrap();
        }
        assert!(std::fs::metadata(&p).unwrap().len() <= 100);
        for n in 1..=3 {
            assert!(dir.path().join(format!("logs/x.log.{n}")).exists());
        }
        assert!(!dir.path().join("logs/x.log.4").exists());
        let last = std::fs::read_to_string(&p).unwrap();
        assert!(last.ends_with("line 049 of the log....\n"), "{last}");
    }

    #[test]
    fn refuses_a_log_in_a_world_writable_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("tmp");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        match Rotating::open(&shared.join("d.log"), 100) {
            Err(crate::error::Error::UnsafePath(m)) => {
                assert!(m.contains("writable by others"), "{m}")
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted a log in a world-writable directory"),
        }
        // ... and leaves that directory as it was.
        let mode = std::fs::metadata(&shared).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o1777);
        assert!(!shared.join("d.log").exists());
    }

    #[test]
    fn refuses_a_symlinked_log() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("x.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(Rotating::open(&link, 100).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
    #[test]
    fn the_launchd_log_is_cut_to_its_tail() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("x.launchd.log");
        std::fs::write(&p, "a".repeat(100) + &"b".repeat(10)).unwrap();
        assert!(!cut_to_tail(&p, 200, 10).unwrap());
        assert!(cut_to_tail(&p, 50, 10).unwrap());
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("[dockhand: cut 100 bytes"), "{text}");
        assert!(
            text.ends_with(&"b".repeat(10)) && !text.contains("aa"),
            "{text}"
        );
    }

    #[test]
    fn launchd_log_names() {
        assert_eq!(
            launchd_log(Path::new("/a/b.log")),
            Path::new("/a/b.launchd.log")
        );
        assert_eq!(
            launchd_log(Path::new("/a/b")),
            Path::new("/a/b.launchd.log")
        );
        assert_eq!(
            launchd_log(Path::new("/a/b.txt")),
            Path::new("/a/b.txt.launchd.log")
        );
    }
}
