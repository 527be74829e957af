//! `dockhand logs`: the last lines of dockhand's log (or the engine's),
//! across rotation (`log.3` … `log.1`, `log`), and with `-f` the lines that
//! follow, also when the file is rotated or truncated while we read.
//!
//! Every read is bounded: the tail reads backwards in chunks up to a byte
//! budget; following reads at most `CHUNK` per file per poll.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Profile;
use crate::error::{IoContext, Result};

/// How much of the history `-n` may read at most (all rotated files).
const TAIL_BUDGET: u64 = 32 * 1024 * 1024;
/// The most read from one file per poll while following.
const CHUNK: usize = 256 * 1024;
/// How often a followed file is checked for new lines and rotation.
const POLL: Duration = Duration::from_millis(100);

/// One log: a file and its rotated predecessors (`<path>.1` is newest).
#[derive(Debug, Clone)]
pub struct Log {
    pub path: PathBuf,
    pub rotated: u32,
}

impl Log {
    /// Oldest first: `path.N` … `path.1`, `path`.
    fn generations(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = (1..=self.rotated)
            .rev()
            .map(|n| PathBuf::from(format!("{}.{n}", self.path.display())))
            .collect();
        v.push(self.path.clone());
        v
    }
}

/// The logs `dockhand logs` shows for a profile.
pub fn sources(p: &Profile, engine: bool) -> Vec<Log> {
    let keep = crate::logging::KEEP;
    if !engine {
        return vec![Log {
            path: p.log_file.clone(),
            rotated: keep,
        }];
    }
    let mut v = vec![Log {
        path: p.state_dir.join("engine.log"),
        rotated: keep,
    }];
    // What the engine writes elsewhere (Colima: Lima's host agent logs).
    v.extend(
        crate::engine::other_logs(p)
            .into_iter()
            .map(|path| Log { path, rotated: 0 }),
    );
    v
}

pub fn run(p: &Profile, follow: bool, lines: usize, engine: bool) -> Result<u8> {
    let logs = sources(p, engine);
    let headers = logs.len() > 1;
    let mut out = std::io::stdout().lock();
    let mut any = false;
    for log in &logs {
        let tail = tail(log, lines)?;
        any |= log.generations().iter().any(|g| g.exists());
        if headers {
            writeln!(out, "==> {} <==", log.path.display()).ok();
        }
        out.write_all(&tail).ok();
    }
    out.flush().ok();
    if !any && !follow {
        eprintln!(
            "dockhand: no log yet at {} (it appears once `dockhand run` or the service has started)",
            logs.iter()
                .map(|l| l.path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(1);
    }
    if follow {
        let mut followers: Vec<Follower> = logs.iter().map(|l| Follower::at_end(&l.path)).collect();
        let mut last = usize::MAX;
        loop {
            for (i, f) in followers.iter_mut().enumerate() {
                let new = f.poll();
                if new.is_empty() {
                    continue;
                }
                if headers && last != i {
                    writeln!(out, "\n==> {} <==", f.path.display()).ok();
                }
                last = i;
                if out.write_all(&new).and_then(|_| out.flush()).is_err() {
                    return Ok(0); // the reader went away
                }
            }
            std::thread::sleep(POLL);
        }
    }
    Ok(0)
}

/// The last `n` lines of the log across its generations, bounded by
/// `TAIL_BUDGET` bytes read.
pub fn tail(log: &Log, n: usize) -> Result<Vec<u8>> {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut need = n;
    let mut budget = TAIL_BUDGET;
    for path in log.generations().iter().rev() {
        if need == 0 || budget == 0 {
            break;
        }
        let (bytes, got) = match File::open(path) {
            Ok(f) => {
                tail_file(f, need, &mut budget).ctx(|| format!("cannot read {}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(crate::error::Error::io(
                    format!("cannot read {}", path.display()),
                    e,
                ));
            }
        };
        need -= got;
        chunks.push(bytes);
    }
    chunks.reverse();
    Ok(chunks.concat())
}

/// The last `n` lines of one file (a missing final newline is added),
/// reading backwards in 64 KiB steps within `budget`; returns them and
/// how many.
fn tail_file(mut f: File, n: usize, budget: &mut u64) -> std::io::Result<(Vec<u8>, usize)> {
    let mut pos = f.metadata()?.len();
    let mut buf: Vec<u8> = Vec::new();
    let mut newlines = 0;
    // More newlines than n: n complete lines even if the first is partial.
    while newlines <= n && pos > 0 && *budget > 0 {
        let step = (64 * 1024).min(pos).min(*budget);
        pos -= step;
        *budget -= step;
        let mut chunk = vec![0u8; step as usize];
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut chunk)?;
        newlines += chunk.iter().filter(|&&b| b == b'\n').count();
        chunk.extend_from_slice(&buf);
        buf = chunk;
    }
    let mut lines: Vec<&[u8]> = buf.split(|&b| b == b'\n').collect();
    if buf.last() == Some(&b'\n') || buf.is_empty() {
        lines.pop();
    }
    if pos > 0 && !lines.is_empty() {
        lines.remove(0); // cut by the chunk boundary (or the budget)
    }
    let keep = &lines[lines.len().saturating_sub(n)..];
    let mut out = Vec::new();
    for l in keep {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    Ok((out, keep.len()))
}

/// Follows one path: reads what is appended, and when the path names a
/// new file (rotation) finishes the old one and continues in the new one
/// from its start; a truncated file is read again from its start.
pub struct Follower {
    pub path: PathBuf,
    file: Option<File>,
    id: Option<(u64, u64)>,
    pos: u64,
}

fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

impl Follower {
    /// Start at the current end of `path` (or at the start of a file that
    /// appears later).
    pub fn at_end(path: &Path) -> Follower {
        let mut f = Follower {
            path: path.to_path_buf(),
            file: None,
            id: None,
            pos: 0,
        };
        if let Ok(file) = File::open(path)
            && let Ok(m) = file.metadata()
        {
            f.pos = m.len();
            f.id = Some(file_id(&m));
            f.file = Some(file);
        }
        f
    }

    /// New bytes since the last poll (bounded per file by `CHUNK`).
    pub fn poll(&mut self) -> Vec<u8> {
        let mut out = self.read_more();
        let now = std::fs::metadata(&self.path).ok();
        match (&now, self.id) {
            // Rotated: the path names another file now. Finish the old
            // one (a last write may have landed), then switch.
            (Some(m), Some(id)) if file_id(m) != id => {
                out.extend(self.read_more());
                self.open_new();
                out.extend(self.read_more());
            }
            (Some(_), None) => {
                self.open_new();
                out.extend(self.read_more());
            }
            // Truncated in place (copytruncate): start over.
            (Some(m), Some(_)) if m.len() < self.pos => {
                self.pos = 0;
                out.extend(self.read_more());
            }
            _ => {}
        }
        out
    }

    fn open_new(&mut self) {
        self.file = File::open(&self.path).ok();
        self.id = self
            .file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| file_id(&m));
        self.pos = 0;
    }

    fn read_more(&mut self) -> Vec<u8> {
        let Some(f) = self.file.as_mut() else {
            return Vec::new();
        };
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(self.pos)).is_err() {
            return buf;
        }
        let n = f
            .take(CHUNK as u64)
            .read_to_end(&mut buf)
            .unwrap_or_default();
        self.pos += n as u64;
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(p: &Path, s: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(p)
            .unwrap();
        f.write_all(s.as_bytes()).unwrap();
    }

    fn lines(n: std::ops::Range<u32>) -> String {
        n.map(|i| format!("line {i}\n")).collect()
    }

    #[test]
    fn tail_spans_rotated_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("d.log");
        std::fs::write(d.path().join("d.log.2"), lines(0..10)).unwrap();
        std::fs::write(d.path().join("d.log.1"), lines(10..12)).unwrap();
        std::fs::write(&p, lines(12..15)).unwrap();
        let log = Log {
            path: p,
            rotated: 3,
        };
        let t = String::from_utf8(tail(&log, 7).unwrap()).unwrap();
        assert_eq!(t, lines(8..15));
        let all = String::from_utf8(tail(&log, 100).unwrap()).unwrap();
        assert_eq!(all, lines(0..15));
        assert_eq!(tail(&log, 0).unwrap(), b"");
    }

    #[test]
    fn tail_of_a_long_file_reads_backwards() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.log");
        std::fs::write(&p, format!("{}partial", lines(0..20_000))).unwrap();
        let log = Log {
            path: p,
            rotated: 0,
        };
        let t = String::from_utf8(tail(&log, 3).unwrap()).unwrap();
        assert_eq!(t, "line 19998\nline 19999\npartial\n");
        let mut budget = 100;
        let f = File::open(&log.path).unwrap();
        let (_, got) = tail_file(f, 1_000_000, &mut budget).unwrap();
        assert!(got <= 12, "read beyond the budget: {got} lines");
    }

    #[test]
    fn follower_crosses_rotation_and_truncation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.log");
        std::fs::write(&p, "old\n").unwrap();
        let mut f = Follower::at_end(&p);
        assert_eq!(f.poll(), b"");
        append(&p, "a\n");
        assert_eq!(f.poll(), b"a\n");
        append(&p, "b\n");
        crate::logging::rotate_files(&p);
        append(&p, "c\n");
        assert_eq!(f.poll(), b"b\nc\n");
        std::fs::write(&p, "").unwrap();
        assert_eq!(f.poll(), b"");
        append(&p, "d\n");
        assert_eq!(f.poll(), b"d\n");
    }
}
