//! Reading files that someone else may have replaced: never following a
//! path into a device or a FIFO, never reading more than asked for.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// What a non-regular file is, for messages.
pub fn kind(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "a regular file"
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Open `path` for reading only if it is a regular file. With `follow`,
/// a symbolic link to a regular file is fine (checked before opening, so
/// a device is never opened; the descriptor is checked to be that same
/// file); without it, a link is refused. Never blocks on a FIFO.
pub fn open_regular(path: &Path, follow: bool) -> io::Result<File> {
    let before = if follow {
        let md = std::fs::metadata(path)?;
        if !md.is_file() {
            return Err(invalid(format!(
                "is {}, not a regular file",
                kind(md.file_type())
            )));
        }
        Some(md)
    } else {
        None
    };
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                invalid("is a symbolic link, not a regular file".into())
            } else {
                e
            }
        })?;
    check_regular(&f, before.as_ref())?;
    Ok(f)
}

/// `f` is a regular file (the same one as `before`, when given).
pub fn check_regular(f: &File, before: Option<&std::fs::Metadata>) -> io::Result<()> {
    let md = f.metadata()?;
    if !md.is_file() {
        return Err(invalid(format!(
            "is {}, not a regular file",
            kind(md.file_type())
        )));
    }
    if let Some(b) = before
        && (b.dev() != md.dev() || b.ino() != md.ino())
    {
        return Err(invalid("was replaced while being opened".into()));
    }
    Ok(())
}

/// All of `f`, at most `cap` bytes (more is an error saying so).
pub fn read_capped(f: &mut File, cap: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    f.take(cap + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(invalid(format!("is larger than {}", human_bytes(cap))));
    }
    Ok(buf)
}

/// A regular file's contents, at most `cap` bytes (see `open_regular`).
pub fn read_regular(path: &Path, cap: u64, follow: bool) -> io::Result<Vec<u8>> {
    read_capped(&mut open_regular(path, follow)?, cap)
}

/// The pid in a pid file (a regular file of at most 64 bytes, links
/// followed): `Err` when it can't be read, `Ok(None)` when it holds no pid.
pub fn read_pid(path: &Path) -> io::Result<Option<i32>> {
    let text = read_regular(path, 64, true)?;
    Ok(String::from_utf8_lossy(&text).trim().parse().ok())
}

/// Why a pid file is stale: it names no live process of its own. The one
/// wording for `doctor` and the engines' clean-ups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StalePid {
    /// The file holds no pid.
    NoPid,
    /// No process has the pid.
    NotRunning(i32),
    /// The process has exited (a zombie not reaped yet).
    Exited(i32),
    /// The pid is someone else's process now (a recycled pid), with its
    /// program: never signalled.
    Foreign(i32, String),
}

impl std::fmt::Display for StalePid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StalePid::NoPid => f.write_str("no pid in it"),
            StalePid::NotRunning(pid) => write!(f, "pid {pid} is not running"),
            StalePid::Exited(pid) => write!(f, "pid {pid} has exited"),
            StalePid::Foreign(pid, prog) => {
                write!(f, "pid {pid} is another program ({prog}), left alone")
            }
        }
    }
}

impl StalePid {
    /// The note for a stale pid file that was removed.
    pub fn removed(&self, path: &Path) -> String {
        format!("removed stale pid file {}: {self}", path.display())
    }
}

/// Whether the pid file at `path` is stale: None when it names a live
/// process that `ours` recognises. Never signals anything.
pub fn stale_pid(
    path: &Path,
    ours: impl Fn(&super::ProcInfo) -> bool,
) -> io::Result<Option<StalePid>> {
    let Some(pid) = read_pid(path)? else {
        return Ok(Some(StalePid::NoPid));
    };
    Ok(match super::proc_info(pid) {
        None => Some(StalePid::NotRunning(pid)),
        Some(i) if i.zombie => Some(StalePid::Exited(pid)),
        Some(i) if ours(&i) => None,
        Some(i) => Some(StalePid::Foreign(pid, i.program().to_string())),
    })
}

/// The last `max` bytes of `f` (all of it when shorter).
pub fn read_tail(f: &mut File, max: u64) -> io::Result<Vec<u8>> {
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf)?;
    Ok(buf)
}

pub fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one wording of a stale pid file, for each way it can be stale.
    #[test]
    fn a_stale_pid_file_says_why() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x.pid");
        let why = |text: &str, ours: bool| {
            std::fs::write(&f, text).unwrap();
            stale_pid(&f, |_| ours).unwrap().map(|s| s.to_string())
        };
        assert_eq!(why("garbage\n", true).as_deref(), Some("no pid in it"));
        let me = std::process::id() as i32;
        assert_eq!(
            why(&format!("{me}\n"), true),
            None,
            "a live process of ours"
        );
        let foreign = why(&me.to_string(), false).unwrap();
        assert!(
            foreign.starts_with(&format!("pid {me} is another program (")),
            "{foreign}"
        );
        assert!(foreign.ends_with("), left alone"), "{foreign}");
        // The largest pid is above every kernel's pid_max.
        assert_eq!(
            why(&i32::MAX.to_string(), true),
            Some(format!("pid {} is not running", i32::MAX))
        );
        let note = StalePid::NoPid.removed(&f);
        assert_eq!(
            note,
            format!("removed stale pid file {}: no pid in it", f.display())
        );
    }

    #[test]
    fn only_regular_files_are_read_and_only_so_much() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "hello").unwrap();
        assert_eq!(read_regular(&f, 5, true).unwrap(), b"hello");
        let e = read_regular(&f, 4, true).unwrap_err().to_string();
        assert!(e.contains("larger than 4 bytes"), "{e}");
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for follow in [true, false] {
            let e = read_regular(&fifo, 10, follow).unwrap_err().to_string();
            assert!(e.contains("a FIFO"), "{e}");
            let e = read_regular(Path::new("/dev/zero"), 10, follow)
                .unwrap_err()
                .to_string();
            assert!(e.contains("character device"), "{e}");
            let e = read_regular(d.path(), 10, follow).unwrap_err().to_string();
            assert!(e.contains("a directory"), "{e}");
        }
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert_eq!(read_regular(&link, 10, true).unwrap(), b"hello");
        let e = read_regular(&link, 10, false).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        let zlink = d.path().join("zlink");
        std::os::unix::fs::symlink("/dev/zero", &zlink).unwrap();
        let e = read_regular(&zlink, 10, true).unwrap_err().to_string();
        assert!(e.contains("character device"), "{e}");
    }

    #[test]
    fn tail_reads_only_the_end() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, "0123456789").unwrap();
        let mut f = File::open(&p).unwrap();
        assert_eq!(read_tail(&mut f, 3).unwrap(), b"789");
        assert_eq!(read_tail(&mut f, 100).unwrap(), b"0123456789");
    }
}
