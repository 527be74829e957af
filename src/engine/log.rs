//! `engine.log`: the engine's stdout and stderr, kept in the claimed
//! state dir, bounded while the supervisor runs, and its last words
//! quoted in errors.

use std::path::Path;
use std::time::Duration;

use super::claimed_dir;
use crate::error::Result;
use crate::sys;

/// `engine.log` is kept under this size (plus what an engine writes
/// between two looks: 50 ms while it floods, see `guard_engine_log`),
/// with `logging::KEEP` older files, like dockhand's own log.
pub const ENGINE_LOG_MAX: u64 = crate::logging::MAX_BYTES;
pub(super) const ENGINE_LOG: &str = "engine.log";

/// Send the engine's stdout and stderr to `<state_dir>/engine.log` (opened
/// through the claimed state dir, never through a link). A file, not a
/// pipe of ours: if dockhand dies, a broken pipe would take the engine
/// down (SIGPIPE). `guard_engine_log` keeps it bounded. Returns where this
/// engine's output starts in the file (for `last_words`).
pub fn log_output_to(cmd: &mut std::process::Command, state_dir: &Path) -> Result<u64> {
    let path = state_dir.join(ENGINE_LOG);
    let err = |e| crate::error::Error::io(format!("cannot open {}", path.display()), e);
    let dir = claimed_dir(state_dir)
        .ok_or_else(|| err(std::io::Error::other("the state directory is not held")))?;
    // A log an earlier engine left oversized (a flood, a power cut) is
    // cut to its last ENGINE_LOG_MAX bytes, never kept whole.
    bound_log(dir, ENGINE_LOG, ENGINE_LOG_MAX);
    // A link or FIFO in its place is replaced (ours: our 0700 dir); a
    // directory there ends `run` (exit 6).
    let (file, note) = crate::logging::open_in_state_dir(dir, ENGINE_LOG)?;
    if let Some(n) = note {
        tracing::warn!("{n}");
    }
    let from = file.metadata().map_or(0, |m| m.len());
    let errf = file.try_clone().map_err(err)?;
    cmd.stdout(file).stderr(errf);
    Ok(from)
}

/// Check `engine.log` for the supervisor's life and cut it when it
/// outgrows `ENGINE_LOG_MAX` (the engine keeps it open, so it is copied,
/// then truncated: the engine's appends continue at its start). Every
/// second while it grows, every 50 ms while it floods (it had to be cut),
/// so the file outgrows the bound by what the engine writes in 50 ms; a
/// quiet log is looked at less and less often (up to every 8 s), so an
/// idle supervisor stays idle.
pub fn guard_engine_log(dir: &'static crate::state::Dir) {
    tokio::spawn(async move {
        let mut last = None;
        let mut every = Duration::from_secs(1);
        loop {
            tokio::time::sleep(every).await;
            let cut = bound_log(dir, ENGINE_LOG, ENGINE_LOG_MAX);
            let size = dir
                .open_rw(ENGINE_LOG)
                .and_then(|f| f.metadata())
                .map(|m| m.len())
                .ok();
            every = next_look(cut, size != last, every);
            last = size;
        }
    });
}

/// When `guard_engine_log` looks next: soon after a cut (a flood), in a
/// second while the log grows, ever later while it is quiet.
fn next_look(cut: bool, grew: bool, every: Duration) -> Duration {
    match (cut, grew) {
        (true, _) => Duration::from_millis(50),
        (false, true) => Duration::from_secs(1),
        (false, false) => (every * 2).min(Duration::from_secs(8)),
    }
}

/// Cut `engine.log` to the bound now (an engine just stopped: what it
/// wrote last is not left oversized on disk).
pub fn bound_engine_log(state_dir: &Path) {
    if let Some(dir) = claimed_dir(state_dir) {
        bound_log(dir, ENGINE_LOG, ENGINE_LOG_MAX);
    }
}

/// If `name` is over `max`, keep its last `max` bytes as `name.1`
/// (older ones shifted) and truncate it. True when it was cut.
pub fn bound_log(dir: &crate::state::Dir, name: &str, max: u64) -> bool {
    use std::io::{Seek, SeekFrom};
    let Ok(mut f) = dir.open_rw(name) else {
        return false;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len <= max {
        return false;
    }
    for n in (1..crate::logging::KEEP).rev() {
        dir.rename(&format!("{name}.{n}"), &format!("{name}.{}", n + 1));
    }
    if let Ok(mut keep) = dir.create(&format!("{name}.1"))
        && f.seek(SeekFrom::Start(len - max)).is_ok()
    {
        let _ = std::io::copy(&mut std::io::Read::take(&mut f, max), &mut keep);
    }
    f.set_len(0).is_ok()
}

/// How much of `engine.log`'s end is read for an engine's last words.
const LAST_WORDS_BYTES: u64 = 16 * 1024;
const LAST_WORD_LINE_MAX: usize = 512;

/// The last lines the engine wrote since `from` (where this attempt's
/// output starts: never an earlier attempt's lines; the whole tail if the
/// log was cut meanwhile), for error messages: only the file's tail is
/// read, decoded lossily (a stray byte doesn't hide the rest), each line
/// cut to a bounded length.
pub fn last_words(state_dir: &Path, from: u64) -> String {
    let Some(dir) = claimed_dir(state_dir) else {
        return String::new();
    };
    let Ok(mut f) = dir.open_rw(ENGINE_LOG) else {
        return String::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let from = if from > len { 0 } else { from };
    let Ok(tail) = sys::file::read_tail(&mut f, LAST_WORDS_BYTES.min(len - from)) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&tail);
    let lines: Vec<String> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .rev()
        .take(3)
        .map(|l| {
            if l.len() <= LAST_WORD_LINE_MAX {
                return l.to_string();
            }
            let mut end = LAST_WORD_LINE_MAX;
            while !l.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}[... {} bytes cut]", &l[..end], l.len() - end)
        })
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail: Vec<String> = lines.into_iter().rev().collect();
    format!(
        "; its last words ({}): {}",
        state_dir.join(ENGINE_LOG).display(),
        tail.join(" | ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flooded_log_is_looked_at_soon_a_quiet_one_ever_later() {
        let s = Duration::from_secs;
        assert_eq!(next_look(true, true, s(1)), Duration::from_millis(50));
        assert_eq!(next_look(false, true, s(8)), s(1));
        assert_eq!(next_look(false, false, s(1)), s(2));
        assert_eq!(next_look(false, false, s(8)), s(8));
    }
}
