//! Terminal output shared by the commands: colour only on a terminal and
//! never with `NO_COLOR` (https://no-color.org: set and not empty), and
//! JSON printed one way.

use std::io::IsTerminal;

/// Colour and live progress are for a person at a terminal.
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Colour on stdout: a terminal, `NO_COLOR` unset or empty, TERM not dumb.
pub fn color() -> bool {
    stdout_is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// `text` in an ANSI colour (32 green, 31 red, 33 yellow, 2 dim) when
/// colour is on.
pub fn paint(text: &str, code: u8, on: bool) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// `s` as one word for a POSIX shell: as is when it is plain, else in
/// single quotes. For commands shown to a person, never run.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:+@%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A stable JSON document on stdout (pretty, one trailing newline).
pub fn print_json<T: serde::Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("report serializes")
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn paint_only_when_on() {
        assert_eq!(super::paint("ok", 32, false), "ok");
        assert_eq!(super::paint("ok", 32, true), "\x1b[32mok\x1b[0m");
    }

    #[test]
    fn quoting_for_the_shell() {
        use super::shell_quote;
        assert_eq!(shell_quote("unix:///a/b.sock"), "unix:///a/b.sock");
        assert_eq!(shell_quote("unix:///a b/it's"), "'unix:///a b/it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
