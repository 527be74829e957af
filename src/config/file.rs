//! The config file's format: reading it (bounded, UTF-8), the raw TOML
//! types every key deserializes into (unknown keys refused), and errors
//! that name the file, line and column.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::engines::colima::RawColima;
use super::engines::command::RawCommand;
use super::engines::dockerd::RawDockerd;
use super::engines::ssh::RawSsh;
use super::{Config, EngineKind, Source};
use crate::error::{Error, Result};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    #[serde(default)]
    pub(super) profiles: BTreeMap<String, Spanned<RawProfile>>,
}

/// A duration written as "30s", "2m", "1h 30m".
#[derive(Debug, Clone, Copy)]
pub(super) struct Dur(pub(super) Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurVisitor)
    }
}

struct DurVisitor;

impl serde::de::Visitor<'_> for DurVisitor {
    type Value = Dur;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a duration in quotes, such as \"30s\", \"2m\" or \"1h\"")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Dur, E> {
        humantime::parse_duration(s).map(Dur).map_err(|e| {
            E::custom(format!(
                "invalid duration {s:?} ({e}): expected a duration such as \"30s\", \"2m\" or \"1h\""
            ))
        })
    }

    /// A bare number has no unit: say which to write.
    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Dur, E> {
        Err(E::custom(format!(
            "a duration needs a unit and quotes: write \"{n}s\" (or \"{n}m\", \"{n}ms\")"
        )))
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Dur, E> {
        Err(E::custom(format!(
            "a duration needs a unit and quotes, in whole numbers: write \"{}ms\"",
            (n * 1000.0).round()
        )))
    }
}

/// A list of strings (`argv`, `args`, `mounts`). A lone string is refused
/// with the brackets to write, split at spaces as a shell would not.
#[derive(Debug, Default, Clone)]
pub(in crate::config) struct Strings(pub(in crate::config) Vec<String>);

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StringsVisitor)
    }
}

struct StringsVisitor;

impl<'de> serde::de::Visitor<'de> for StringsVisitor {
    type Value = Strings;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of strings in brackets, such as [\"--debug\"]")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Strings, A::Error> {
        let mut v = Vec::new();
        while let Some(s) = seq.next_element::<String>()? {
            v.push(s);
        }
        Ok(Strings(v))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Strings, E> {
        let words: Vec<String> = s.split_whitespace().map(|w| format!("{w:?}")).collect();
        Err(E::custom(format!(
            "a list is written in brackets, one string per argument (no shell splits it): write [{}]",
            words.join(", ")
        )))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfile {
    pub(super) engine: Option<EngineKind>,
    pub(super) socket: Option<Spanned<String>>,
    pub(super) state_dir: Option<Spanned<String>>,
    pub(super) log_file: Option<Spanned<String>>,
    pub(super) label: Option<Spanned<String>>,
    pub(super) probe_interval: Option<Spanned<Dur>>,
    pub(super) probe_timeout: Option<Spanned<Dur>>,
    pub(super) start_timeout: Option<Spanned<Dur>>,
    pub(super) stop_timeout: Option<Spanned<Dur>>,
    pub(super) restart_backoff_max: Option<Spanned<Dur>>,
    pub(super) dockerd: Option<Spanned<RawDockerd>>,
    pub(super) command: Option<Spanned<RawCommand>>,
    pub(super) colima: Option<Spanned<RawColima>>,
    pub(super) ssh: Option<Spanned<RawSsh>>,
    // On-demand proxy keys (issue 10): resolved by `Config::proxy_keys`.
    pub(super) listen: Option<Spanned<String>>,
    pub(super) on_demand: Option<Spanned<bool>>,
    pub(super) idle_stop: Option<Spanned<Dur>>,
    pub(super) docker_context: Option<Spanned<bool>>,
    pub(super) passive: Option<Spanned<Vec<Spanned<String>>>>,
}

/// The raw profiles of `text`: no NUL anywhere, then TOML into the raw
/// types, an error naming `source`'s path, line and column.
pub(super) fn parse_raw(source: &Source, text: &str) -> Result<RawFile> {
    refuse_nul(source, text)?;
    toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| line_col(text, s.start))
            .map(|(l, c)| format!(":{l}:{c}"))
            .unwrap_or_default();
        Error::Config(format!(
            "{}{at}: {}",
            source.path().display(),
            e.message().trim_end()
        ))
    })
}

impl Config {
    pub(super) fn err_at(&self, span: std::ops::Range<usize>, msg: String) -> Error {
        let (l, c) = line_col(&self.text, span.start);
        Error::Config(format!("{}:{l}:{c}: {msg}", self.source.path().display()))
    }

    /// An error about profile `name` as a whole: at its table in the file
    /// (the file alone for a profile the file doesn't have).
    pub(super) fn err_profile(&self, name: &str, msg: String) -> Error {
        match self.file.profiles.get(name) {
            Some(p) => self.err_at(p.span(), msg),
            None => Error::Config(format!("{}: {msg}", self.source.path().display())),
        }
    }
}

/// The largest config file read: a config is a few KiB.
pub const CONFIG_MAX: u64 = 1 << 20;

/// The config file's text: a regular file (a link to one is fine; a
/// device, FIFO or directory is refused without being read or waited on),
/// at most `CONFIG_MAX` bytes, UTF-8.
pub(super) fn read_config(p: &Path) -> Result<String> {
    let bytes = crate::sys::file::read_regular(p, CONFIG_MAX, true).map_err(|e| {
        Error::Config(format!(
            "cannot read config {}: {e}{}",
            p.display(),
            match e.kind() {
                std::io::ErrorKind::NotFound =>
                    " (create it, or drop --config / DOCKHAND_CONFIG to use built-in defaults)",
                std::io::ErrorKind::InvalidInput =>
                    " (point --config or DOCKHAND_CONFIG at a TOML file of at most 1 MiB)",
                _ => "",
            }
        ))
    })?;
    String::from_utf8(bytes).map_err(|e| {
        Error::Config(format!(
            "cannot read config {}: not UTF-8 text (invalid byte at offset {}): save it as UTF-8",
            p.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

/// No value may hold a NUL character (`"\u0000"`): no path, argument or
/// name can carry one to the OS (a socket path with one would fail
/// forever at run time). Refused with its line and column.
fn refuse_nul(source: &Source, text: &str) -> Result<()> {
    use toml::de::{DeTable, DeValue};
    fn walk(v: &Spanned<DeValue>, key: &str) -> Option<(String, usize)> {
        match v.get_ref() {
            DeValue::String(s) if s.contains('\0') => Some((key.to_string(), v.span().start)),
            DeValue::Array(a) => a
                .iter()
                .enumerate()
                .find_map(|(i, v)| walk(v, &format!("{key}[{i}]"))),
            DeValue::Table(t) => t.iter().find_map(|(k, v)| {
                if k.get_ref().contains('\0') {
                    return Some((format!("a key in {key}"), k.span().start));
                }
                walk(v, &format!("{key}.{}", k.get_ref()))
            }),
            _ => None,
        }
    }
    let Ok(table) = DeTable::parse(text) else {
        return Ok(());
    };
    let root = Spanned::new(table.span(), DeValue::Table(table.into_inner()));
    if let Some((key, at)) = walk(&root, "") {
        let (l, c) = line_col(text, at);
        return Err(Error::Config(format!(
            "{}:{l}:{c}: {} contains a NUL character (\\u0000), which no path, argument or name can hold: remove it",
            source.path().display(),
            key.trim_start_matches('.')
        )));
    }
    Ok(())
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{err, parse};

    #[test]
    fn nul_is_refused_anywhere_with_line_and_column() {
        for (text, at) in [
            ("[profiles.default]\nsocket = \"/a\\u0000\"\n", ":2:10:"),
            (
                "[profiles.default]\nengine = \"command\"\nsocket = \"/s\"\n[profiles.default.command]\nargv = [\"x\", \"\\U00000000\"]\n",
                ":5:14:",
            ),
            ("[profiles.\"a\\u0000\"]\n", ":1:11:"),
        ] {
            let e = err(text);
            assert!(e.contains("NUL") && e.contains(at), "{text}: {e}");
        }
        // Literal strings have no escapes: `'\u0000'` is six characters.
        assert!(parse("[profiles.default]\nsocket = '/a\\u0000'\n").is_ok());
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let m = err("[profiles.default]\nengine = \"dockerd\"\n  sockett = \"/x\"\n");
        assert!(m.starts_with("/c.toml:3:3: "), "{m}");
        assert!(m.contains("sockett"), "{m}");
    }

    #[test]
    fn wrong_type() {
        let m = err("[profiles.default]\nprobe_interval = 30\n");
        assert!(m.starts_with("/c.toml:2:18: "), "{m}");
        assert!(m.contains("write \"30s\""), "{m}");
        let m = err("[profiles.default]\nprobe_interval = 0.25\n");
        assert!(m.contains("write \"250ms\""), "{m}");
        let m = err("[profiles.default]\nprobe_interval = true\n");
        assert!(m.contains("a duration in quotes"), "{m}");
    }

    #[test]
    fn a_lone_string_for_a_list_says_how_to_write_it() {
        let m = err("[profiles.default.dockerd]\nargs = \"--debug  --tls\"\n");
        assert!(m.starts_with("/c.toml:2:8: "), "{m}");
        assert!(m.contains(r#"write ["--debug", "--tls"]"#), "{m}");
        let m =
            err("[profiles.default]\nsocket = \"/s\"\n[profiles.default.command]\nargv = [1]\n");
        assert!(
            m.contains("invalid type: integer `1`, expected a string"),
            "{m}"
        );
    }

    #[test]
    fn profile_wide_errors_name_the_profile_table_line() {
        let m = err("# c\n[profiles.\"bad name\"]\n");
        assert!(m.starts_with("/c.toml:2:1: "), "{m}");
        let m = err("[profiles.a]\n\n[profiles.x]\nengine = \"command\"\n");
        assert!(
            m.starts_with("/c.toml:3:1: ") && m.contains("no [profiles.x.command]"),
            "{m}"
        );
        let m = err("[profiles.x]\nengine = \"ssh\"\n");
        assert!(
            m.starts_with("/c.toml:1:1: ") && m.contains("no host"),
            "{m}"
        );
    }

    #[test]
    fn bad_duration() {
        let m = err("[profiles.default]\nstop_timeout = \"soon\"\n");
        assert!(m.starts_with("/c.toml:2:16: "), "{m}");
        assert!(m.contains("expected a duration"), "{m}");
    }
}
