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
    file: File,
    size: u64,
    max: u64,
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

impl Rotating {
    pub fn open(path: &Path, max: u64) -> Result<Rotating> {
        if let Some(dir) = path.parent() {
            crate::state::private_dir(dir, "log directory")?;
        }
        let file = open(path).ctx(|| format!("cannot open log {}", path.display()))?;
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
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Rotating {
            path: path.to_path_buf(),
            file,
            size,
            max,
        })
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        rotate_files(&self.path);
        self.file = open(&self.path)?;
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
    let file = Rotating::open(log_file, MAX_BYTES)?;
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
    Ok(())
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
}
