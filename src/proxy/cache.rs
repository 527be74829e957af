//! The engine's last answers to `/_ping` and `/version`, kept so that
//! pollers get them while the engine is stopped by the idle policy (same
//! status, body and headers such as `API-Version`, `OSType`,
//! `Docker-Experimental`, `Builder-Version`). Kept in
//! `<state_dir>/api-cache.json` so a socket-activated dockhand has them
//! too.

use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One recorded answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub status: u16,
    /// Headers as the engine sent them, minus the connection-level ones.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Answers {
    ping: Option<Answer>,
    version: Option<Answer>,
}

pub struct Cache {
    path: PathBuf,
    answers: Mutex<Answers>,
}

/// The largest body recorded.
pub const MAX_BODY: usize = 64 * 1024;

/// Headers not kept with a recorded answer (connection-level, or made
/// again when it is served).
pub const HOP: &[&str] = &[
    "date",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
];

/// Which recorded answer a request path names.
pub fn key(path: &str) -> Option<&'static str> {
    match path {
        "/_ping" => Some("ping"),
        "/version" => Some("version"),
        _ => None,
    }
}

impl Cache {
    pub fn load(state_dir: &std::path::Path) -> Cache {
        let path = state_dir.join("api-cache.json");
        let answers = std::fs::File::open(&path)
            .ok()
            .and_then(|f| {
                use std::io::Read;
                let mut s = String::new();
                f.take(4 * MAX_BODY as u64).read_to_string(&mut s).ok()?;
                serde_json::from_str(&s).ok()
            })
            .unwrap_or_default();
        Cache {
            path,
            answers: Mutex::new(answers),
        }
    }

    /// The engine's API version (`ApiVersion` of its `/version` answer).
    pub fn api_version(&self) -> Option<String> {
        let a = self.lock();
        let v: serde_json::Value = serde_json::from_str(&a.version.as_ref()?.body).ok()?;
        Some(v.get("ApiVersion")?.as_str()?.to_string())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Answers> {
        self.answers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record a 200 answer to `key`'s request (written to disk when new).
    /// A `HEAD /_ping` answer has no body: keep the one we know, else "OK"
    /// (what dockerd and podman answer to `GET /_ping`).
    pub fn record(&self, key: &str, head: &super::http::Head, body: Option<&[u8]>) {
        if head.status != 200 {
            return;
        }
        let headers = head
            .headers
            .iter()
            .filter(|(n, _)| !HOP.iter().any(|s| n.eq_ignore_ascii_case(s)))
            .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        let mut a = self.lock();
        let slot = if key == "ping" {
            &mut a.ping
        } else {
            &mut a.version
        };
        let body = match body {
            Some(b) => String::from_utf8_lossy(b).into_owned(),
            None => slot
                .as_ref()
                .map(|s| s.body.clone())
                .unwrap_or_else(|| "OK".into()),
        };
        let new = Answer {
            status: 200,
            headers,
            body,
        };
        if slot.as_ref() == Some(&new) {
            return;
        }
        *slot = Some(new);
        let json = serde_json::to_vec(&*a).expect("answers serialize");
        drop(a);
        if let Err(e) = crate::state::write_atomic(&self.path, &json, 0o600) {
            tracing::warn!("{e}");
        }
    }

    /// The recorded answer to `key` as a full response (`head_only`: for
    /// a HEAD request, no body).
    pub fn answer(&self, key: &str, head_only: bool) -> Option<Vec<u8>> {
        let a = self.lock();
        let ans = if key == "ping" { &a.ping } else { &a.version }.as_ref()?;
        let mut out = format!("HTTP/1.1 {} OK\r\n", ans.status);
        for (n, v) in &ans.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", ans.body.len()));
        if !head_only {
            out.push_str(&ans.body);
        }
        Some(out.into_bytes())
    }
}
