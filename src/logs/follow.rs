//! Following one log path (`logs -f`): every byte that reaches the file
//! is read once, in order, also across a rotation (the path names a new
//! file), a copy-truncate (the file is copied to `<path>.1`, then cut to
//! zero) and a deletion. Each file is read to its end before moving on;
//! what is read goes straight to the sink in `CHUNK` pieces (bounded
//! memory, whatever the burst).

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The most read at once (then handed to the sink).
const CHUNK: usize = 256 * 1024;
/// How many of the last bytes read are kept to recognise the file (and
/// its copy) later.
const MARK: usize = 64;

/// Where new bytes go; an error (the reader went away) stops the poll.
pub type Sink<'a> = dyn FnMut(&[u8]) -> std::io::Result<()> + 'a;

/// Follows one path.
pub struct Follower {
    pub path: PathBuf,
    file: Option<File>,
    id: Option<(u64, u64)>,
    pos: u64,
    /// The last bytes read from `file`, ending at `pos`.
    mark: Vec<u8>,
    /// When the file was last read to its end.
    read_at: std::time::SystemTime,
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
            mark: Vec::new(),
            read_at: std::time::SystemTime::now(),
        };
        if let Ok(file) = File::open(path)
            && let Ok(m) = file.metadata()
        {
            f.pos = m.len();
            f.id = Some(file_id(&m));
            let from = f.pos.saturating_sub(MARK as u64);
            f.mark = vec![0; (f.pos - from) as usize];
            if file.read_exact_at(&mut f.mark, from).is_err() {
                f.mark.clear();
            }
            f.file = Some(file);
        }
        f
    }

    /// Where following starts in the current file (for the tail before).
    pub fn position(&self) -> Option<u64> {
        self.file.as_ref().map(|_| self.pos)
    }

    /// Hand every byte that arrived since the last poll to `sink`.
    pub fn poll(&mut self, sink: &mut Sink<'_>) -> std::io::Result<()> {
        if self.truncated() {
            self.read_copy(sink)?;
            self.pos = 0;
            self.mark.clear();
        }
        self.drain(sink)?;
        let now = std::fs::metadata(&self.path).ok();
        match (&now, self.id) {
            // Rotated or replaced: the path names another file. Finish
            // the old one (its writer's last lines may have landed since
            // the drain above), then read the new one from its start.
            (Some(m), Some(id)) if file_id(m) != id => {
                self.drain(sink)?;
                self.open_new();
                self.drain(sink)
            }
            (Some(_), None) => {
                self.open_new();
                self.drain(sink)
            }
            // Deleted: the old file is read on while its writer writes.
            _ => Ok(()),
        }
    }

    /// The file was cut since the last poll: it is shorter than where we
    /// are, or the bytes before that point are no longer what we read
    /// (cut, then written past our position again).
    fn truncated(&self) -> bool {
        let Some(f) = &self.file else { return false };
        let Ok(m) = f.metadata() else { return false };
        if m.len() < self.pos {
            return true;
        }
        !self.mark.is_empty() && !self.mark_at(f, self.pos)
    }

    fn mark_at(&self, f: &File, end: u64) -> bool {
        let Some(from) = end.checked_sub(self.mark.len() as u64) else {
            return false;
        };
        let mut buf = vec![0; self.mark.len()];
        f.read_exact_at(&mut buf, from).is_ok() && buf == self.mark
    }

    /// After a copy-truncate, the lines written after our last read are
    /// in the copy, `<path>.1`: read them from there. The copy holds the
    /// whole file (logrotate's copytruncate: same offsets) or its last
    /// part (dockhand's engine-log guard): we continue after the last
    /// place our mark is found. A `.1` without the mark, or not written
    /// since our last read, is no copy of this cut (an older rotation, a
    /// hand-made `: > log`): only what is new in the file itself is shown.
    fn read_copy(&mut self, sink: &mut Sink<'_>) -> std::io::Result<()> {
        let copy = PathBuf::from(format!("{}.1", self.path.display()));
        let Ok(f) = File::open(&copy) else {
            return Ok(());
        };
        // Coarse file times: a second of slack.
        let since = self.read_at - std::time::Duration::from_secs(1);
        if f.metadata()?.modified()? < since {
            return Ok(());
        }
        let from = if self.mark_at(&f, self.pos) {
            Some(self.pos)
        } else {
            find_last(&f, &self.mark)?
        };
        let Some(mut pos) = from else { return Ok(()) };
        let mut buf = vec![0; CHUNK];
        loop {
            let n = f.read_at(&mut buf, pos)?;
            if n == 0 {
                return Ok(());
            }
            sink(&buf[..n])?;
            pos += n as u64;
        }
    }

    fn open_new(&mut self) {
        self.file = File::open(&self.path).ok();
        self.id = self
            .file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| file_id(&m));
        self.pos = 0;
        self.mark.clear();
    }

    /// Read the file to its end, `CHUNK` at a time.
    fn drain(&mut self, sink: &mut Sink<'_>) -> std::io::Result<()> {
        let Some(f) = self.file.as_ref() else {
            return Ok(());
        };
        let mut buf = vec![0; CHUNK];
        loop {
            let n = match f.read_at(&mut buf, self.pos) {
                Ok(0) => {
                    self.read_at = std::time::SystemTime::now();
                    return Ok(());
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return Ok(()), // unreadable now: tried again next poll
            };
            let got = &buf[..n];
            self.pos += n as u64;
            remember(&mut self.mark, got);
            sink(got)?;
        }
    }
}

/// Keep the last `MARK` bytes of everything read.
fn remember(mark: &mut Vec<u8>, got: &[u8]) {
    if got.len() >= MARK {
        mark.clear();
        mark.extend_from_slice(&got[got.len() - MARK..]);
    } else {
        mark.extend_from_slice(got);
        let extra = mark.len().saturating_sub(MARK);
        mark.drain(..extra);
    }
}

/// The offset just after the last occurrence of `mark` in `f` (read
/// forwards in `CHUNK` steps; the file is a bounded log copy).
fn find_last(f: &File, mark: &[u8]) -> std::io::Result<Option<u64>> {
    if mark.is_empty() {
        return Ok(None);
    }
    let mut found = None;
    let mut buf = vec![0; CHUNK + mark.len()];
    let mut pos = 0u64;
    let mut carry = 0;
    loop {
        let got = f.read_at(&mut buf[carry..], pos)?;
        if got == 0 {
            return Ok(found);
        }
        let window = &buf[..carry + got];
        let base = pos - carry as u64;
        if let Some(i) = window.windows(mark.len()).rposition(|w| w == mark) {
            found = Some(base + (i + mark.len()) as u64);
        }
        pos += got as u64;
        carry = (mark.len() - 1).min(window.len());
        let keep = window.len() - carry;
        buf.copy_within(keep..keep + carry, 0);
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

    fn poll(f: &mut Follower) -> Vec<u8> {
        let mut out = Vec::new();
        f.poll(&mut |b: &[u8]| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn follower_crosses_rotation_and_truncation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.log");
        std::fs::write(&p, "old\n").unwrap();
        let mut f = Follower::at_end(&p);
        assert_eq!(poll(&mut f), b"");
        append(&p, "a\n");
        assert_eq!(poll(&mut f), b"a\n");
        append(&p, "b\n");
        crate::logging::rotate_files(&p);
        append(&p, "c\n");
        assert_eq!(poll(&mut f), b"b\nc\n");
        std::fs::write(&p, "").unwrap();
        assert_eq!(poll(&mut f), b"");
        append(&p, "d\n");
        assert_eq!(poll(&mut f), b"d\n");
    }

    #[test]
    fn copy_truncate_regrown_past_our_position_is_noticed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("g.log");
        let before: String = (0..100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, &before).unwrap();
        let mut f = Follower::at_end(&p);
        append(&p, "second\n");
        // The guard's way: the last 100 bytes copied to .1, then cut; then
        // the writer goes on past where we were.
        let all = std::fs::read(&p).unwrap();
        std::fs::write(d.path().join("g.log.1"), &all[all.len() - 100..]).unwrap();
        std::fs::write(&p, "").unwrap();
        append(&p, &"third line, longer than before\n".repeat(40));
        assert_eq!(
            String::from_utf8(poll(&mut f)).unwrap(),
            format!("second\n{}", "third line, longer than before\n".repeat(40))
        );
    }

    #[test]
    fn mark_is_the_last_bytes_read() {
        let mut m = Vec::new();
        remember(&mut m, b"abc");
        remember(&mut m, &[b'x'; MARK]);
        assert_eq!(m, vec![b'x'; MARK]);
        remember(&mut m, b"yz");
        assert_eq!(&m[MARK - 2..], b"yz");
        assert_eq!(m.len(), MARK);
    }
}
