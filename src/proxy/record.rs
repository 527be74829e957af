//! Answers recorded on the way down: just before an idle stop (the gate
//! held, no container running, paused or restarting), the proxy asks the
//! engine the read-only questions pollers ask and keeps the answers. While
//! dockhand holds the engine stopped its state cannot change, so these
//! answers stay exact until it runs again; they are forgotten when it
//! becomes ready. Kept in memory only (a new dockhand has none).
//!
//! What is recorded (`GET`, the same target verbatim: path with its
//! `/vX.Y` prefix and query string), at most `MAX_TARGETS` targets, bodies
//! up to `MAX_BODY`, `MAX_TOTAL` in all, status 200 or 404 only:
//! - every target of [`RECORDABLE`] a client asked for while the engine
//!   ran (the last `MAX_TARGETS` distinct ones), and
//! - [`DEFAULTS`], without prefix and with the engine's `/v<ApiVersion>`.
//!
//! A `HEAD` request is answered from the `GET` record without its body.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use tracing::{debug, info};

/// Paths whose answers may be recorded (`*`: one path segment; in
/// `/images/*/json` any run of segments, as image names have slashes).
pub const RECORDABLE: &[&str] = &[
    "/_ping",
    "/version",
    "/info",
    "/system/df",
    "/containers/json",
    "/containers/*/json",
    "/images/json",
    "/images/*/json",
    "/volumes",
    "/volumes/*",
    "/networks",
    "/networks/*",
];

/// Targets always recorded: the plain paths (the docker CLI and Go SDK's
/// `docker ps`, `docker images`, `docker volume ls`, `docker network ls`,
/// `docker system df`, `docker info`) and docker-py's list calls
/// (`containers.list()`, `containers.list(all=True)`, `images.list()`).
pub const DEFAULTS: &[&str] = &[
    "/_ping",
    "/version",
    "/info",
    "/system/df",
    "/containers/json",
    "/containers/json?all=1",
    "/images/json",
    "/volumes",
    "/networks",
    "/containers/json?limit=-1&all=0&size=0&trunc_cmd=0",
    "/containers/json?limit=-1&all=1&size=0&trunc_cmd=0",
    "/images/json?only_ids=0&all=0",
];

pub const MAX_TARGETS: usize = 64;
pub const MAX_BODY: usize = 1 << 20;
pub const MAX_TOTAL: usize = 8 << 20;
/// The longest target remembered.
const MAX_TARGET_LEN: usize = 2048;
/// The whole recording's time budget (each question gets 5 s of it).
const BUDGET: Duration = Duration::from_secs(20);

/// One recorded answer.
struct Answer {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

#[derive(Default)]
pub struct Record {
    /// Recordable targets clients asked for, oldest first.
    seen: Mutex<VecDeque<String>>,
    answers: Mutex<HashMap<String, Answer>>,
}

/// Does `path` (without prefix and query) match a recordable pattern?
pub fn recordable(path: &str) -> bool {
    RECORDABLE.iter().any(|p| match p.split_once('*') {
        None => *p == path,
        Some((pre, post)) => {
            path.len() > pre.len() + post.len()
                && path.starts_with(pre)
                && path.ends_with(post)
                && (p.starts_with("/images/")
                    || !path[pre.len()..path.len() - post.len()].contains('/'))
        }
    })
}

impl Record {
    fn lock_seen(&self) -> std::sync::MutexGuard<'_, VecDeque<String>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_answers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Answer>> {
        self.answers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Note a request a client sent (`path`: its target without prefix and
    /// query): recordable `GET`/`HEAD` targets are asked again on the way down.
    pub fn seen(&self, method: &str, target: &str, path: &str) {
        if !matches!(method, "GET" | "HEAD")
            || target.len() > MAX_TARGET_LEN
            || target.contains('#')
            || !recordable(path)
        {
            return;
        }
        let mut s = self.lock_seen();
        if let Some(i) = s.iter().position(|t| t == target) {
            s.remove(i);
        }
        s.push_back(target.to_string());
        while s.len() > MAX_TARGETS {
            s.pop_front();
        }
    }

    /// The engine runs again: recorded answers may be stale.
    pub fn forget(&self) {
        self.lock_answers().clear();
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.lock_answers().is_empty()
    }

    /// The targets to ask on the way down: defaults first (with and
    /// without the `/v<api>` prefix), then what clients asked, newest
    /// first, at most `MAX_TARGETS`.
    fn targets(&self, api: Option<&str>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |t: String| {
            if out.len() < MAX_TARGETS && !out.contains(&t) {
                out.push(t);
            }
        };
        for d in DEFAULTS {
            add(d.to_string());
            if let Some(v) = api {
                add(format!("/v{v}{d}"));
            }
        }
        for t in self.lock_seen().iter().rev() {
            add(t.clone());
        }
        out
    }

    /// Ask the engine on `socket` every target and keep the answers (the
    /// engine's `api` version from its `/version`, for the prefix).
    pub async fn record_all(&self, socket: &Path, api: Option<&str>) {
        let deadline = tokio::time::Instant::now() + BUDGET;
        let mut answers = HashMap::new();
        let mut total = 0;
        for t in self.targets(api) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let got = super::http::get(socket, &t, left.min(Duration::from_secs(5))).await;
            let (head, body) = match got {
                Ok(x) => x,
                Err(e) => {
                    debug!("not recorded: {t}: {e}");
                    continue;
                }
            };
            if !matches!(head.status, 200 | 404)
                || body.len() > MAX_BODY
                || total + body.len() > MAX_TOTAL
            {
                continue;
            }
            total += body.len();
            let headers = head
                .headers
                .into_iter()
                .filter(|(n, _)| !super::cache::HOP.iter().any(|s| n.eq_ignore_ascii_case(s)))
                .collect();
            let status = head.status;
            answers.insert(
                t,
                Answer {
                    status,
                    headers,
                    body,
                },
            );
        }
        info!(
            "recorded {} answer(s) ({total} bytes) for pollers while the engine is stopped",
            answers.len()
        );
        *self.lock_answers() = answers;
    }

    /// The recorded answer to `method target`, as a full response.
    pub fn answer(&self, method: &str, target: &str) -> Option<Vec<u8>> {
        if !matches!(method, "GET" | "HEAD") {
            return None;
        }
        let a = self.lock_answers();
        let ans = a.get(target)?;
        let reason = if ans.status == 200 { "OK" } else { "Not Found" };
        let mut out = format!("HTTP/1.1 {} {reason}\r\n", ans.status).into_bytes();
        for (n, v) in &ans.headers {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", ans.body.len()).as_bytes());
        if method == "GET" {
            out.extend_from_slice(&ans.body);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_only_lists_and_inspects_are_recordable() {
        for p in [
            "/_ping",
            "/info",
            "/containers/json",
            "/containers/abc/json",
            "/images/library/busybox:latest/json",
            "/volumes/v1",
            "/networks/bridge",
            "/system/df",
        ] {
            assert!(recordable(p), "{p}");
        }
        for p in [
            "/events",
            "/containers/abc/logs",
            "/containers/a/b/json",
            "/volumes/a/b",
            "/images/get",
            "/containers//json",
            "/volumes/",
        ] {
            assert!(!recordable(p), "{p}");
        }
    }

    #[test]
    fn seen_targets_are_bounded_and_newest_first() {
        let r = Record::default();
        r.seen("POST", "/containers/json", "/containers/json");
        r.seen("GET", "/v1.41/events", "/events");
        for i in 0..100 {
            let t = format!("/v1.41/volumes/v{i}");
            r.seen("GET", &t, &t[6..]);
        }
        let t = r.targets(Some("1.41"));
        assert_eq!(t.len(), MAX_TARGETS);
        assert_eq!(t[0], "/_ping");
        assert_eq!(t[1], "/v1.41/_ping");
        assert_eq!(t[2 * DEFAULTS.len()], "/v1.41/volumes/v99");
        assert!(!t.iter().any(|t| t.contains("events")));
    }

    #[test]
    fn answers_are_served_for_the_same_target_only() {
        let r = Record::default();
        r.lock_answers().insert(
            "/v1.41/info".into(),
            Answer {
                status: 200,
                headers: vec![("Api-Version".into(), b"1.41".to_vec())],
                body: b"{}".to_vec(),
            },
        );
        let a = String::from_utf8(r.answer("GET", "/v1.41/info").unwrap()).unwrap();
        assert_eq!(
            a,
            "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n\r\n{}"
        );
        let h = r.answer("HEAD", "/v1.41/info").unwrap();
        assert!(h.ends_with(b"\r\n\r\n"));
        assert!(r.answer("GET", "/info").is_none());
        assert!(r.answer("POST", "/v1.41/info").is_none());
        r.forget();
        assert!(r.is_empty());
    }
}
