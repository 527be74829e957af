//! Live progress for `up` and `restart`, fed by the supervisor's phase
//! changes: on a terminal a spinner with the current step and its elapsed
//! time (and, for Colima, the last line of Lima's `ha.stderr.log` once a
//! step is slow: Colima start hangs are its most reported complaint);
//! plain lines when stdout is not a terminal; nothing with `--json`.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::Profile;
use crate::state::{Phase, State};

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
/// A step taking longer than this shows what Lima is doing.
const SLOW: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A terminal: one live line, redrawn.
    Live { color: bool },
    /// A pipe or file: a line per step.
    Plain,
    /// `--json`: nothing until the result.
    Quiet,
}

impl Mode {
    pub fn detect(json: bool) -> Mode {
        if json {
            Mode::Quiet
        } else if crate::ui::stdout_is_terminal() {
            Mode::Live {
                color: crate::ui::color(),
            }
        } else {
            Mode::Plain
        }
    }
}

pub struct Progress {
    mode: Mode,
    engine: String,
    step: Option<String>,
    step_since: Instant,
    started: Instant,
    frame: usize,
    lima_log: Option<PathBuf>,
    lima_line: Option<String>,
    lima_read: Option<Instant>,
    /// The supervisor's last state.
    last: Option<State>,
}

/// What the supervisor is doing, in a few words. `booting`: the engine's
/// starter still runs (Colima: `colima start` boots the VM and returns
/// once the host agent runs; then dockhand waits for /_ping).
pub fn step(s: &State, engine: &str, booting: bool) -> String {
    let err = s.last_error.as_deref().unwrap_or("");
    match s.phase {
        Phase::Ready => "ready".into(),
        Phase::Starting if s.engine_pid.is_some() && !booting => "waiting for /_ping".into(),
        Phase::Starting => format!("starting {engine}"),
        Phase::Stopping => format!("stopping {engine}"),
        Phase::Restarting => format!("restarting: {err}"),
        Phase::Unhealthy => format!("unhealthy: {err}"),
        Phase::Failed => format!("failed: {err}"),
        Phase::Stopped => match s.held {
            Some(h) => format!("stopped ({h})"),
            None => "stopped".into(),
        },
        Phase::Unknown => "unknown".into(),
    }
}

impl Progress {
    pub fn new(p: &Profile, mode: Mode) -> Progress {
        let lima_log = p
            .colima
            .as_ref()
            .map(|c| c.instance_dir().join("ha.stderr.log"));
        Progress {
            mode,
            engine: crate::engine::summary(p),
            step: None,
            step_since: Instant::now(),
            started: Instant::now(),
            frame: 0,
            lima_log,
            lima_line: None,
            lima_read: None,
            last: None,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// A new state from the supervisor.
    pub fn update(&mut self, s: &State) {
        self.last = Some(s.clone());
        self.refresh();
    }

    /// `colima start` (the state's engine pid while starting, until the
    /// supervisor records the host agent at ready) still runs. Any wrapper
    /// (nix's `.colima-wrapped`, a script) counts: its argv has `start`.
    fn booting(&self, s: &State) -> bool {
        self.lima_log.is_some()
            && s.engine_pid
                .and_then(crate::sys::proc_info)
                .is_some_and(|i| !i.zombie && i.argv.iter().any(|a| a == "start"))
    }

    /// Show the step the last state means now.
    fn refresh(&mut self) {
        let Some(s) = &self.last else { return };
        let step = step(s, &self.engine, self.booting(s));
        if self.step.as_deref() == Some(&step) {
            return;
        }
        let mut out = std::io::stdout().lock();
        match self.mode {
            Mode::Quiet => {}
            // The command's own result line says "ready".
            Mode::Plain if step == "ready" => {}
            Mode::Plain => {
                let _ = writeln!(out, "{step}");
            }
            Mode::Live { color } => {
                if let Some(prev) = &self.step {
                    let mark = crate::ui::paint("✓", 32, color);
                    let _ = writeln!(
                        out,
                        "\r\x1b[2K{mark} {prev} ({})",
                        secs(self.step_since.elapsed())
                    );
                }
            }
        }
        let _ = out.flush();
        self.step = Some(step);
        self.step_since = Instant::now();
        self.lima_line = None;
        self.draw();
    }

    /// Every ~100 ms: follow the starter, redraw.
    pub fn tick(&mut self) {
        self.refresh();
        self.draw();
    }

    /// Redraw (terminal) or report Lima's news (plain).
    fn draw(&mut self) {
        let slow = self.step_since.elapsed() >= SLOW && self.step.as_deref() != Some("ready");
        let lima = if slow { self.lima_news() } else { None };
        let mut out = std::io::stdout().lock();
        match self.mode {
            Mode::Quiet => {}
            Mode::Plain => {
                if let Some(l) = lima {
                    let _ = writeln!(out, "  lima: {l}");
                }
            }
            Mode::Live { color } => {
                self.frame = (self.frame + 1) % SPINNER.len();
                let spin = crate::ui::paint(SPINNER[self.frame], 36, color);
                let mut line = format!(
                    "{spin} {}… {}",
                    self.step
                        .as_deref()
                        .unwrap_or("connecting to the supervisor"),
                    secs(self.step_since.elapsed())
                );
                if slow && let Some(l) = &self.lima_line {
                    line.push_str(&crate::ui::paint(&format!("  lima: {l}"), 2, color));
                }
                let _ = write!(out, "\r\x1b[2K{}", truncate(&line, width()));
            }
        }
        let _ = out.flush();
    }

    /// End the live line.
    pub fn clear(&mut self) {
        if let Mode::Live { .. } = self.mode {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[2K");
            let _ = out.flush();
        }
    }

    /// The last line of Lima's ha.stderr.log when it changed (read at most
    /// once a second, bounded).
    fn lima_news(&mut self) -> Option<String> {
        let path = self.lima_log.as_ref()?;
        if self
            .lima_read
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return None;
        }
        self.lima_read = Some(Instant::now());
        let log = crate::logs::Log {
            path: path.clone(),
            rotated: 0,
        };
        let tail = crate::logs::tail(&log, 1).ok()?;
        let line = lima_message(String::from_utf8_lossy(&tail).trim());
        if line.is_empty() || self.lima_line.as_deref() == Some(&line) {
            return None;
        }
        self.lima_line = Some(line.clone());
        Some(line)
    }
}

/// Lima's host agent logs with logrus to ha.stderr.log, as JSON lines
/// (`{"level":..,"msg":..,"time":..}`) or logfmt (`level=info msg="..."`):
/// show the `msg`.
pub fn lima_message(line: &str) -> String {
    if let Some(m) = serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v["msg"].as_str().map(str::to_owned))
    {
        return m;
    }
    if let Some(i) = line.find("msg=\"") {
        let rest = &line[i + 5..];
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                '"' => return out,
                c => out.push(c),
            }
        }
    }
    line.to_string()
}

pub fn secs(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}s", d.as_secs())
    }
}

/// The terminal's width (80 when unknown).
fn width() -> usize {
    // SAFETY: TIOCGWINSZ fills a winsize struct on a terminal fd.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0 {
            return ws.ws_col as usize;
        }
    }
    80
}

/// At most `w - 1` visible characters (escape sequences don't count).
fn truncate(s: &str, w: usize) -> String {
    let mut out = String::new();
    let mut visible = 0;
    let mut in_esc = false;
    for c in s.chars() {
        if c == '\x1b' {
            in_esc = true;
        }
        if !in_esc {
            if visible + 1 >= w {
                break;
            }
            visible += 1;
        }
        out.push(c);
        if in_esc && c == 'm' {
            in_esc = false;
        }
    }
    if in_esc || s.contains('\x1b') {
        out.push_str("\x1b[0m");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lima_json_lines_show_their_message() {
        assert_eq!(
            lima_message(
                r#"{"level":"info","msg":"Waiting for the essential requirement 1 of 4: \"ssh\"","time":"2024-01-01T00:00:00Z"}"#
            ),
            "Waiting for the essential requirement 1 of 4: \"ssh\""
        );
        assert_eq!(lima_message("plain text"), "plain text");
        assert_eq!(
            lima_message(r#"time="2024" level=info msg="Waiting for \"ssh\"" x=1"#),
            "Waiting for \"ssh\""
        );
    }

    #[test]
    fn truncation_keeps_escapes_and_width() {
        assert_eq!(truncate("abcdef", 4), "abc");
        let t = truncate("\x1b[36m⠋\x1b[0m hello", 5);
        assert_eq!(t, "\x1b[36m⠋\x1b[0m he\x1b[0m");
    }
}
