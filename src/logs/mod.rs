//! `dockhand logs`: the last lines of dockhand's log (or the engine's),
//! across rotation (`log.3` … `log.1`, `log`), and with `-f` the lines that
//! follow, also when the file is rotated or truncated while we read.
//!
//! Every read is bounded: the tail reads backwards in chunks up to a byte
//! budget and then copies from where its lines start; following reads
//! each file to its end in bounded pieces (`follow`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use crate::config::Profile;
use crate::error::{IoContext, Result};

mod follow;
pub use follow::Follower;

/// How much of the history `-n` may read at most (all rotated files).
const TAIL_BUDGET: u64 = 32 * 1024 * 1024;
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
    // Followers first: the tail ends where they start, so no line is
    // shown twice or lost in between.
    let mut followers: Vec<Follower> = logs.iter().map(|l| Follower::at_end(&l.path)).collect();
    for (log, f) in logs.iter().zip(&followers) {
        any |= log.generations().iter().any(|g| g.exists());
        if headers {
            writeln!(out, "==> {} <==", log.path.display()).ok();
        }
        let end = if follow { f.position() } else { None };
        tail_to(log, lines, end, &mut out)?;
    }
    out.flush().ok();
    if !any && !follow {
        eprintln!(
            "dockhand: no log yet at {} (it appears once `dockhand run` or the service has started; \
             a run that stopped before it could log, such as for a missing engine, is shown by `dockhand status`)",
            logs.iter()
                .map(|l| l.path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(1);
    }
    if follow {
        let mut last = usize::MAX;
        loop {
            for (i, f) in followers.iter_mut().enumerate() {
                let path = f.path.clone();
                let written = f.poll(&mut |bytes: &[u8]| {
                    if headers && last != i {
                        writeln!(out, "\n==> {} <==", path.display())?;
                        last = i;
                    }
                    out.write_all(bytes)
                });
                if written.and_then(|_| out.flush()).is_err() {
                    return Ok(0); // the reader went away
                }
            }
            std::thread::sleep(POLL);
        }
    }
    Ok(0)
}

/// The last `n` lines of the log across its generations, bounded by
/// `TAIL_BUDGET` bytes read (for short tails in messages).
pub fn tail(log: &Log, n: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    tail_to(log, n, None, &mut out)?;
    Ok(out)
}

/// Writes the last `n` lines of the log across its generations to `out`,
/// oldest first; the current file is read up to `end` if given. Time is
/// proportional to the bytes read (at most `TAIL_BUDGET`), memory to one
/// step: the start of the tail is found reading backwards, then the bytes
/// from there are copied through.
pub fn tail_to(log: &Log, n: usize, end: Option<u64>, out: &mut impl Write) -> Result<()> {
    let mut parts = Vec::new();
    let mut need = n;
    let mut budget = TAIL_BUDGET;
    let generations = log.generations();
    for (i, path) in generations.iter().rev().enumerate() {
        if need == 0 || budget == 0 {
            break;
        }
        let cannot = |e| crate::error::Error::io(format!("cannot read {}", path.display()), e);
        let mut f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(cannot(e)),
        };
        let len = f.metadata().map_err(cannot)?.len();
        let len = match (i, end) {
            (0, Some(e)) => e.min(len),
            _ => len,
        };
        let t = tail_start(&mut f, len, need, &mut budget).map_err(cannot)?;
        need -= t.lines;
        parts.push((path, f, t));
    }
    for (path, mut f, t) in parts.into_iter().rev() {
        copy_tail(&mut f, &t, out).ctx(|| format!("cannot read {}", path.display()))?;
    }
    Ok(())
}

/// Where a file's last lines start.
#[derive(Debug, PartialEq)]
struct Tail {
    start: u64,
    end: u64,
    lines: usize,
    /// The last line has no newline (one is added).
    open_end: bool,
    /// The first line was cut by the budget (shown after a marker).
    cut: bool,
}

/// The start of the last `n` lines of `f`'s first `len` bytes, reading
/// backwards in 64 KiB steps within `budget`. Where the budget ends
/// before `n` lines, a line it cuts is shown from there, marked as cut
/// (only its end, when it is the last one).
fn tail_start(f: &mut File, len: u64, n: usize, budget: &mut u64) -> std::io::Result<Tail> {
    use std::os::unix::fs::FileExt;
    let mut t = Tail {
        start: len,
        end: len,
        lines: 0,
        open_end: false,
        cut: false,
    };
    if n == 0 || len == 0 {
        return Ok(t);
    }
    let mut last = [0u8; 1];
    f.read_exact_at(&mut last, len - 1)?;
    t.open_end = last[0] != b'\n';
    // Look for the newlines that end the lines before the last one.
    let mut pos = if t.open_end { len } else { len - 1 };
    let mut chunk = vec![0u8; 64 * 1024];
    while pos > 0 {
        if *budget == 0 {
            if t.lines == 0 {
                (t.start, t.lines, t.cut) = (pos, 1, true);
            }
            return Ok(t);
        }
        let step = (chunk.len() as u64).min(pos).min(*budget);
        pos -= step;
        *budget -= step;
        let buf = &mut chunk[..step as usize];
        f.read_exact_at(buf, pos)?;
        for i in (0..buf.len()).rev().filter(|i| buf[*i] == b'\n') {
            t.start = pos + i as u64 + 1;
            t.lines += 1;
            if t.lines == n {
                return Ok(t);
            }
        }
    }
    // The whole file was read: its first line counts too.
    t.start = 0;
    t.lines += 1;
    Ok(t)
}

fn copy_tail(f: &mut File, t: &Tail, out: &mut impl Write) -> std::io::Result<()> {
    if t.lines == 0 {
        return Ok(());
    }
    if t.cut {
        write!(
            out,
            "[… cut: the line is longer than the {TAIL_BUDGET} bytes read] "
        )?;
    }
    f.seek(SeekFrom::Start(t.start))?;
    std::io::copy(&mut Read::take(&mut *f, t.end - t.start), out)?;
    if t.open_end {
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut f = File::open(&log.path).unwrap();
        let len = f.metadata().unwrap().len();
        let t = tail_start(&mut f, len, 1_000_000, &mut budget).unwrap();
        assert!(t.lines <= 12, "read beyond the budget: {} lines", t.lines);
        assert!(len - t.start <= 100);
    }

    #[test]
    fn tail_stops_at_the_given_end() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("e.log");
        std::fs::write(&p, lines(0..5)).unwrap();
        let log = Log {
            path: p,
            rotated: 0,
        };
        let mut out = Vec::new();
        tail_to(&log, 2, Some(14), &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), lines(0..2));
    }
}
