//! `GET /events` across an idle stop: the client's chunked answer stays
//! open while dockhand holds the engine stopped (no event can happen
//! then), and when the engine runs again the stream goes on from a new
//! `GET /events` whose `since` is just after the last event forwarded.
//! The stream never wakes the engine; a stop for any other reason (a
//! crash, `down`, dockhand stopping) ends it as the engine ended it.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedReadHalf;

use super::Shared;
use super::http::{HeadError, Reader};
use super::sock::{ReadHalf, WriteHalf};
use crate::control::Held;
use crate::state::Phase;

/// The longest head or chunk-size line, and the longest event line looked at.
const MAX_LINE: u64 = 64 * 1024;

/// How one engine stream ended.
enum Ended {
    /// The answer is complete (forwarded as is): the connection may go on.
    Done,
    /// The engine went away mid-stream.
    Gone,
    /// The client or the framing failed: close.
    Failed,
}

/// What has been forwarded so far.
struct Seen {
    /// `timeNano` of the last event forwarded.
    last: Option<u128>,
    /// The event line being read (events may span chunks).
    line: Vec<u8>,
}

/// Serve `GET /events` (`head`: the request head as the client sent it,
/// `target` its target); true when the connection can take another request.
pub async fn stream(
    shared: &Arc<Shared>,
    head: &[u8],
    target: &str,
    cr: &mut Reader<ReadHalf>,
    cw: &mut WriteHalf,
) -> bool {
    let started = SystemTime::now();
    let mut seen = Seen {
        last: None,
        line: Vec::new(),
    };
    let mut req = head.to_vec();
    let mut first = true;
    let (half_close, half_closed) = tokio::sync::watch::channel(false);
    let mut client = Client {
        cr,
        watching: true,
        half_close,
    };
    loop {
        let relay = one(shared, &req, first, cw, &mut seen, half_closed.clone());
        let Some(ended) = client.until(relay).await else {
            return false;
        };
        match ended {
            Ended::Done => return true,
            Ended::Failed => return false,
            Ended::Gone => {}
        }
        // Only an idle stop is waited out; the engine comes back when
        // some other client needs it.
        if shared.control.state().held != Some(Held::Idle) {
            return false;
        }
        let mut st = shared.control.subscribe();
        let ready = async {
            st.wait_for(|s| s.phase == Phase::Ready && s.held.is_none())
                .await
                .is_ok()
        };
        if client.until(ready).await != Some(true) {
            return false;
        }
        let since = match seen.last {
            Some(n) => n + 1,
            None => started
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        };
        req = with_since(head, target, since, seen.last.is_some());
        first = false;
    }
}

/// The client of a stream, watched until it hangs up (the stream ends),
/// sends its next request (it waits its turn: the stream goes on) or
/// half-closes: that is passed on to the engine (`half_close`), which
/// ends the stream on it as it would for the client directly.
struct Client<'a> {
    cr: &'a mut Reader<ReadHalf>,
    watching: bool,
    half_close: tokio::sync::watch::Sender<bool>,
}

impl Client<'_> {
    /// `fut`'s output; None when the client hung up first.
    async fn until<T>(&mut self, fut: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                v = &mut fut => return Some(v),
                r = self.cr.head(true), if self.watching => {
                    if hung_up(self.cr, r.is_ok()) {
                        return None;
                    }
                    self.watching = false;
                    let _ = self.half_close.send(matches!(r, Err(HeadError::Closed)));
                }
            }
        }
    }
}

/// The client hung up (true), as opposed to half-closing its side or
/// sending its next request (`head_ok`: a complete head is buffered).
fn hung_up(cr: &Reader<ReadHalf>, head_ok: bool) -> bool {
    use std::os::fd::AsFd;
    !head_ok && super::sock::hung_up(cr.get_ref().as_fd())
}

/// `head` with its target replaced by `target` with `since` (nanoseconds
/// since the epoch) as its `since` (kept as the client gave it when
/// `replace` is false and it gave one).
fn with_since(head: &[u8], target: &str, since: u128, replace: bool) -> Vec<u8> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let had = query.split('&').any(|p| p.starts_with("since="));
    let mut params: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && (!replace || !p.starts_with("since=")))
        .map(String::from)
        .collect();
    if replace || !had {
        params.push(format!(
            "since={}.{:09}",
            since / 1_000_000_000,
            since % 1_000_000_000
        ));
    }
    let rest = head
        .iter()
        .position(|&b| b == b'\n')
        .map_or(&b""[..], |i| &head[i + 1..]);
    let mut out = format!("GET {path}?{} HTTP/1.1\r\n", params.join("&")).into_bytes();
    out.extend_from_slice(rest);
    out
}

/// One engine connection's stream: its head forwarded (`first`) or
/// checked, then each chunk as it arrives.
async fn one(
    shared: &Shared,
    req: &[u8],
    first: bool,
    cw: &mut WriteHalf,
    seen: &mut Seen,
    mut half_closed: tokio::sync::watch::Receiver<bool>,
) -> Ended {
    let s = match UnixStream::connect(&shared.socket).await {
        Ok(s) => s,
        Err(e) if first => {
            let m = format!(
                "dockhand cannot reach the Docker engine on {}: {e}; see `dockhand status --profile {}`",
                shared.socket.display(),
                shared.profile
            );
            let _ = cw.write_all(&super::http::json_error(503, &m, true)).await;
            return Ended::Failed;
        }
        Err(_) => return Ended::Gone,
    };
    let (r, mut w) = s.into_split();
    if w.write_all(req).await.is_err() {
        return Ended::Gone;
    }
    let mut er = BufReader::new(r);
    let Some((head, status, length)) = read_head(&mut er).await else {
        return Ended::Gone;
    };
    if !(status == 200 && length.is_none()) {
        if !first {
            // Not a stream to go on with: end the client's as the engine would.
            let _ = cw.write_all(b"0\r\n\r\n").await;
            return Ended::Done;
        }
        // An error answer: forward it, then close.
        let _ = cw.write_all(&head).await;
        let n = length.unwrap_or(0).min(4 << 20);
        let _ = tokio::io::copy(&mut (&mut er).take(n), cw).await;
        return Ended::Failed;
    }
    if first && cw.write_all(&head).await.is_err() {
        return Ended::Failed;
    }
    let relay = chunks(shared, &mut er, cw, seen);
    tokio::pin!(relay);
    let mut w = Some(w);
    loop {
        tokio::select! {
            e = &mut relay => return e,
            // The client's half-close, passed on: our writing side shut.
            _ = half_closed.wait_for(|h| *h), if w.is_some() => drop(w.take()),
        }
    }
}

/// Read a response head: (its bytes, status, its body's length: None
/// for a chunked one).
async fn read_head(er: &mut BufReader<OwnedReadHalf>) -> Option<(Vec<u8>, u16, Option<u64>)> {
    let mut head = Vec::new();
    let mut chunked = false;
    let mut length = Some(0);
    loop {
        let mut line = Vec::new();
        let n = (&mut *er)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await
            .ok()?;
        if n == 0 || !line.ends_with(b"\n") || head.len() > MAX_LINE as usize {
            return None;
        }
        head.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line).to_ascii_lowercase();
        if let Some(v) = text.strip_prefix("transfer-encoding:") {
            chunked = v.trim() == "chunked";
        }
        if let Some(v) = text.strip_prefix("content-length:") {
            length = v.trim().parse().ok();
        }
        if line == b"\r\n" {
            break;
        }
    }
    let status = std::str::from_utf8(&head)
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((head, status, (!chunked).then_some(length).flatten()))
}

/// Forward chunks until the body ends (`Done`, or `Gone` when it ended
/// because of an idle stop) or the engine goes (`Gone`).
async fn chunks(
    shared: &Shared,
    er: &mut BufReader<OwnedReadHalf>,
    cw: &mut WriteHalf,
    seen: &mut Seen,
) -> Ended {
    loop {
        let mut line = Vec::new();
        match (&mut *er).take(MAX_LINE).read_until(b'\n', &mut line).await {
            Ok(_) if line.ends_with(b"\r\n") => {}
            _ => return Ended::Gone,
        }
        let text = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
        let hex = text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(hex, 16) else {
            return Ended::Failed;
        };
        if size == 0 {
            // dockerd ends its streams this way when it shuts down, too.
            if shared.control.state().held == Some(Held::Idle) {
                return Ended::Gone;
            }
            let _ = cw.write_all(b"0\r\n\r\n").await;
            return Ended::Done;
        }
        let mut data = vec![0u8; size.min(1 << 20)];
        let mut left = size;
        if cw.write_all(&line).await.is_err() {
            return Ended::Failed;
        }
        while left > 0 {
            let k = left.min(data.len());
            if er.read_exact(&mut data[..k]).await.is_err() {
                return Ended::Gone;
            }
            if cw.write_all(&data[..k]).await.is_err() {
                return Ended::Failed;
            }
            note(seen, &data[..k]);
            left -= k;
        }
        let mut crlf = [0u8; 2];
        if er.read_exact(&mut crlf).await.is_err() || &crlf != b"\r\n" {
            return Ended::Gone;
        }
        if cw.write_all(b"\r\n").await.is_err() {
            return Ended::Failed;
        }
    }
}

/// Note the `timeNano` of each whole event line in `data`.
fn note(seen: &mut Seen, data: &[u8]) {
    for part in data.split_inclusive(|&b| b == b'\n') {
        if seen.line.len() + part.len() <= MAX_LINE as usize {
            seen.line.extend_from_slice(part);
        }
        if !part.ends_with(b"\n") {
            continue;
        }
        let line = std::mem::take(&mut seen.line);
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line)
            && let Some(n) = v.get("timeNano").and_then(|n| n.as_u64())
        {
            seen.last = Some(n as u128);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_follows_the_last_event() {
        let head = b"GET /v1.41/events?filters=x&since=5 HTTP/1.1\r\nHost: d\r\n\r\n";
        let out = with_since(
            head,
            "/v1.41/events?filters=x&since=5",
            1_700_000_000_000_000_001,
            true,
        );
        assert_eq!(
            out,
            b"GET /v1.41/events?filters=x&since=1700000000.000000001 HTTP/1.1\r\nHost: d\r\n\r\n"
        );
        // No event seen: the client's own `since` stands.
        let out = with_since(head, "/v1.41/events?filters=x&since=5", 7, false);
        assert!(out.starts_with(b"GET /v1.41/events?filters=x&since=5 HTTP"));
        let out = with_since(
            b"GET /events HTTP/1.1\r\n\r\n",
            "/events",
            2_000_000_000,
            false,
        );
        assert_eq!(out, b"GET /events?since=2.000000000 HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn event_times_are_read_across_chunks() {
        let mut s = Seen {
            last: None,
            line: Vec::new(),
        };
        note(&mut s, b"{\"status\":\"start\",\"timeNano\":12");
        assert_eq!(s.last, None);
        note(&mut s, b"3}\n{\"timeNano\":456}\n");
        assert_eq!(s.last, Some(456));
    }
}
