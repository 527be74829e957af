//! Just enough HTTP/1.1 to forward the Docker API request by request:
//! heads are parsed (httparse) and forwarded byte for byte; bodies are
//! copied in large chunks by their framing (Content-Length, chunked, or
//! until the end of the stream); only chunk-size lines are looked at.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Copy buffer size: large chunks, few system calls.
pub const BUF: usize = 256 * 1024;
/// A connection starts with this much (heads, small answers) and grows
/// to `BUF` when it copies a body: idle keep-alive connections stay cheap.
const SMALL: usize = 16 * 1024;
/// The longest request or response head accepted: Go's net/http (the
/// engine's server) reads up to `DefaultMaxHeaderBytes` (1 MiB) plus
/// 4096 bytes of slack, with any number of headers within it.
pub const MAX_HEAD: usize = (1 << 20) + 4096;
/// Headers parsed without allocating; more are parsed in a second pass.
const FEW_HEADERS: usize = 64;
/// The longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

/// A read half with a large buffer of its own.
pub struct Reader<R> {
    r: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// Bytes of the heads budget (`limits`) this reader's buffer holds.
    charged: usize,
}

impl<R> Drop for Reader<R> {
    fn drop(&mut self) {
        super::limits::release_head(self.charged);
    }
}

/// How a body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the sender closes (a response without length).
    Eof,
}

/// A parsed head: what forwarding and classification need.
#[derive(Debug, Clone)]
pub struct Head {
    /// The method (requests) or "" (responses).
    pub method: String,
    /// The request target (requests) or "" (responses).
    pub target: String,
    /// The status code (responses) or 0 (requests).
    pub status: u16,
    /// HTTP/1.0 (0) or HTTP/1.1 (1).
    pub version: u8,
    pub headers: Vec<(String, Vec<u8>)>,
    /// The head's length in the reader's buffer.
    pub len: usize,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    }

    /// The connection ends after this message.
    pub fn closes(&self) -> bool {
        self.has_token("connection", "close")
            || (self.version == 0 && !self.has_token("connection", "keep-alive"))
            || self.ambiguous()
    }

    /// The request asks to switch protocols (`Upgrade: tcp`, `h2c`).
    pub fn upgrade(&self) -> bool {
        self.header("upgrade").is_some()
    }

    /// The body's framing as Go's net/http (the engine's server) reads
    /// it: `Transfer-Encoding` ignored on HTTP/1.0, else one field that is
    /// exactly `chunked` (anything else: 501); Content-Length all digits,
    /// repeated only with the same value (else 400). Both together: the
    /// body is chunked (Go drops the length) and the connection closes
    /// after the answer (`closes`), as RFC 9112 6.3 asks.
    fn body_framing(&self) -> Result<Framing, (u16, String)> {
        let te: Vec<&[u8]> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
            .map(|(_, v)| v.as_slice())
            .collect();
        if !te.is_empty() && self.version >= 1 {
            if te.len() > 1 || !te[0].trim_ascii().eq_ignore_ascii_case(b"chunked") {
                let what = String::from_utf8_lossy(&te.join(&b", "[..])).into_owned();
                return Err((501, format!("unsupported Transfer-Encoding: {what:?}")));
            }
            return Ok(Framing::Chunked);
        }
        let mut len = None;
        for (n, v) in &self.headers {
            if !n.eq_ignore_ascii_case("content-length") {
                continue;
            }
            let v = v.trim_ascii();
            if v.is_empty() {
                continue;
            }
            let n: u64 = std::str::from_utf8(v)
                .ok()
                .filter(|s| s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse().ok())
                .ok_or((400, "bad Content-Length".to_string()))?;
            if len.is_some_and(|l| l != n) {
                return Err((400, "conflicting Content-Length headers".into()));
            }
            len = Some(n);
        }
        Ok(len.map(Framing::Length).unwrap_or(Framing::None))
    }

    /// Both Content-Length and Transfer-Encoding: chunked wins, but such
    /// a message may be a smuggling attempt; the connection ends after it.
    fn ambiguous(&self) -> bool {
        self.version >= 1
            && self.header("transfer-encoding").is_some()
            && self.header("content-length").is_some()
    }

    /// A request body's framing, or the status and message to refuse it.
    pub fn request_framing(&self) -> Result<Framing, (u16, String)> {
        self.body_framing()
    }

    /// A response body's framing, given the request's method.
    pub fn response_framing(&self, method: &str) -> Result<Framing, String> {
        if method == "HEAD" || self.status < 200 || self.status == 204 || self.status == 304 {
            return Ok(Framing::None);
        }
        match self.body_framing().map_err(|(_, m)| m)? {
            Framing::None => Ok(Framing::Eof),
            f => Ok(f),
        }
    }
}

/// Why reading a head stopped.
#[derive(Debug)]
pub enum HeadError {
    /// The stream ended before any byte of a new message.
    Closed,
    Io(io::Error),
    /// Not HTTP, or over our limits: the message for a 400/431.
    Bad(u16, String),
}

impl From<io::Error> for HeadError {
    fn from(e: io::Error) -> Self {
        HeadError::Io(e)
    }
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(r: R) -> Reader<R> {
        Reader {
            r,
            buf: vec![0u8; SMALL],
            pos: 0,
            end: 0,
            charged: 0,
        }
    }

    /// Room for a longer head: the buffer doubles (up to `MAX_HEAD`),
    /// paid from the heads budget.
    fn grow_for_head(&mut self) -> Result<(), HeadError> {
        let new = (self.buf.len() * 2).min(MAX_HEAD);
        let extra = new.saturating_sub(self.buf.len());
        if !super::limits::charge_head(extra) {
            return Err(HeadError::Bad(
                503,
                "too many large request heads in progress: try again".into(),
            ));
        }
        self.charged += extra;
        self.buf.resize(new, 0);
        Ok(())
    }

    /// A head is complete: its memory no longer counts as a head in
    /// progress (the buffer shrinks once it is empty, see `consume`).
    fn head_done(&mut self) {
        super::limits::release_head(std::mem::take(&mut self.charged));
    }

    /// Use the full-size buffer (before copying a body).
    fn grow(&mut self) {
        if self.buf.len() < BUF {
            self.buf.resize(BUF, 0);
        }
    }

    /// The stream under the buffer.
    pub fn get_ref(&self) -> &R {
        &self.r
    }

    /// Write up to `max` of the buffered bytes to `w`; returns how many.
    pub async fn write_buffered<W: AsyncWrite + Unpin>(
        &mut self,
        max: u64,
        w: &mut W,
    ) -> io::Result<u64> {
        let k = self
            .buffered()
            .len()
            .min(max.try_into().unwrap_or(usize::MAX));
        if k > 0 {
            w.write_all(&self.buf[self.pos..self.pos + k]).await?;
            self.consume(k);
        }
        Ok(k as u64)
    }

    /// Bytes read but not consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
            if self.buf.len() > BUF {
                // A large head's buffer: back to the usual size.
                self.buf.truncate(SMALL);
                self.buf.shrink_to_fit();
            }
        }
    }

    /// For a connection about to close: its buffer (and what it holds of
    /// the heads budget) given back, then up to `max` bytes read and
    /// dropped through a small scratch buffer; 0 at the end of the stream.
    pub async fn discard(&mut self, max: usize) -> io::Result<usize> {
        if !self.buf.is_empty() {
            self.buf = Vec::new();
            (self.pos, self.end) = (0, 0);
            super::limits::release_head(std::mem::take(&mut self.charged));
        }
        let mut scratch = [0u8; 1024];
        let n = max.min(scratch.len());
        self.r.read(&mut scratch[..n]).await
    }

    /// Wait for more bytes (keeping those buffered); 0 at the end of the
    /// stream. Never returns with a full buffer unread: when it is full,
    /// waits forever (the caller races it against something else).
    pub async fn read_more(&mut self) -> io::Result<usize> {
        if self.pos > 0 && self.end == self.buf.len() {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            return std::future::pending().await;
        }
        self.fill().await
    }

    /// Read more into the buffer (moving what is left to its start when
    /// needed); 0 at the end of the stream.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.end == self.buf.len() {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        let n = self.r.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// Read a request (`request`) or response head; it stays in the
    /// buffer (`Head::len` bytes) until consumed.
    pub async fn head(&mut self, request: bool) -> Result<Head, HeadError> {
        loop {
            if let Some(h) = parse(self.buffered(), request)? {
                self.head_done();
                return Ok(h);
            }
            if self.buffered().len() >= MAX_HEAD {
                return Err(HeadError::Bad(431, "request head too large".into()));
            }
            if self.pos > 0 && self.end == self.buf.len() {
                self.buf.copy_within(self.pos..self.end, 0);
                self.end -= self.pos;
                self.pos = 0;
            }
            if self.end == self.buf.len() {
                self.grow_for_head()?;
            }
            if self.fill().await? == 0 {
                return Err(if self.buffered().is_empty() {
                    HeadError::Closed
                } else {
                    HeadError::Io(io::ErrorKind::UnexpectedEof.into())
                });
            }
        }
    }

    /// Copy exactly `n` bytes to `w` (`tee` gets a copy, up to its capacity).
    pub async fn copy_exact<W: AsyncWrite + Unpin>(
        &mut self,
        mut n: u64,
        w: &mut W,
        mut tee: Option<&mut Vec<u8>>,
    ) -> io::Result<()> {
        if n > self.buffered().len() as u64 && n > SMALL as u64 {
            self.grow();
        }
        while n > 0 {
            if self.buffered().is_empty() && self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let take = self
                .buffered()
                .len()
                .min(n.try_into().unwrap_or(usize::MAX));
            let chunk = &self.buf[self.pos..self.pos + take];
            w.write_all(chunk).await?;
            if let Some(t) = tee.as_deref_mut()
                && t.len() + take <= t.capacity()
            {
                t.extend_from_slice(chunk);
            }
            self.consume(take);
            n -= take as u64;
        }
        Ok(())
    }

    /// Copy everything up to the end of the stream to `w`.
    pub async fn copy_to_eof<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> io::Result<()> {
        self.grow();
        loop {
            if !self.buffered().is_empty() {
                w.write_all(self.buffered()).await?;
                self.pos = 0;
                self.end = 0;
            }
            if self.fill().await? == 0 {
                return Ok(());
            }
        }
    }

    /// Copy a chunked body, framing included, to `w`: what arrives goes
    /// out at once, so chunks keep their boundaries and timing; only
    /// chunk-size and trailer lines are looked at, chunk data is skipped by
    /// its size. A body that breaks the framing (RFC 9112 7.1: CRLF after
    /// every line and chunk) is still passed on, all that was read of it,
    /// so the receiver gives its own answer; then `InvalidData`.
    pub async fn copy_chunked<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> io::Result<()> {
        self.grow();
        let mut st = Chunked::Size(Vec::new());
        loop {
            if self.buffered().is_empty() && self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let buf = &self.buf[self.pos..self.end];
            let (used, done) = match st.advance(buf) {
                Ok(x) => x,
                Err(e) => {
                    w.write_all(buf).await?;
                    self.consume(buf.len());
                    return Err(e);
                }
            };
            w.write_all(&buf[..used]).await?;
            self.consume(used);
            if done {
                return Ok(());
            }
        }
    }

    /// Copy a body of `framing` to `w`.
    pub async fn copy_body<W: AsyncWrite + Unpin>(
        &mut self,
        framing: Framing,
        w: &mut W,
        tee: Option<&mut Vec<u8>>,
    ) -> io::Result<()> {
        match framing {
            Framing::None => Ok(()),
            Framing::Length(n) => self.copy_exact(n, w, tee).await,
            Framing::Chunked => self.copy_chunked(w).await,
            Framing::Eof => self.copy_to_eof(w).await,
        }
    }
}

/// Where a chunked body's parser is.
enum Chunked {
    /// In a chunk-size line (what we have of it).
    Size(Vec<u8>),
    /// In chunk data: bytes left.
    Data(u64),
    /// In the CRLF after chunk data: what of it is still due.
    DataEnd(&'static [u8]),
    /// In a trailer line (the body ends at an empty one).
    Trailer(Vec<u8>),
}

fn malformed(m: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed chunked body: {m}"),
    )
}

/// A chunk-size line without its CRLF: 1 to 16 hex digits, then
/// optionally whitespace and `;` extensions (Go: `parseHexUint`).
fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let hex = line[..end].trim_ascii_end();
    if hex.is_empty() || hex.len() > 16 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err(malformed("bad chunk size"));
    }
    let hex = std::str::from_utf8(hex).expect("hex digits");
    u64::from_str_radix(hex, 16).map_err(|_| malformed("bad chunk size"))
}

impl Chunked {
    /// Consume from `buf` what belongs to the body; returns how much, and
    /// whether the body ended there.
    fn advance(&mut self, buf: &[u8]) -> io::Result<(usize, bool)> {
        let mut i = 0;
        while i < buf.len() {
            match self {
                Chunked::Data(left) => {
                    let k = (*left).min((buf.len() - i) as u64);
                    i += k as usize;
                    *left -= k;
                    if *left == 0 {
                        *self = Chunked::DataEnd(b"\r\n");
                    }
                }
                Chunked::DataEnd(due) => {
                    if buf[i] != due[0] {
                        return Err(malformed("chunk data not followed by CRLF"));
                    }
                    i += 1;
                    *due = &due[1..];
                    if due.is_empty() {
                        *self = Chunked::Size(Vec::new());
                    }
                }
                Chunked::Size(line) | Chunked::Trailer(line) => {
                    let Some(j) = buf[i..].iter().position(|&b| b == b'\n') else {
                        line.extend_from_slice(&buf[i..]);
                        if line.len() > MAX_LINE {
                            return Err(malformed("chunk line too long"));
                        }
                        return Ok((buf.len(), false));
                    };
                    line.extend_from_slice(&buf[i..i + j]);
                    i += j + 1;
                    let line = std::mem::take(line);
                    let Some(text) = line.strip_suffix(b"\r") else {
                        return Err(malformed("line ended by a bare LF"));
                    };
                    if let Chunked::Trailer(_) = self {
                        if text.is_empty() {
                            return Ok((i, true));
                        }
                        continue;
                    }
                    *self = match chunk_size(text)? {
                        0 => Chunked::Trailer(Vec::new()),
                        n => Chunked::Data(n),
                    };
                }
            }
        }
        Ok((i, false))
    }
}

/// Copy `r` (its buffered bytes first) to `w` until the end of the
/// stream, then half-close `w`: the raw copy of an upgraded connection.
pub async fn pipe<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    r: &mut Reader<R>,
    w: &mut W,
) -> io::Result<()> {
    r.copy_to_eof(w).await?;
    w.shutdown().await
}

/// `GET target` on the engine's socket with a bounded answer (up to
/// 4 MiB, within `timeout`): the proxy's own questions to the engine.
pub async fn get(
    socket: &std::path::Path,
    target: &str,
    timeout: std::time::Duration,
) -> io::Result<(Head, Vec<u8>)> {
    let ask = async {
        let s = tokio::net::UnixStream::connect(socket).await?;
        let (r, mut w) = s.into_split();
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: docker\r\nUser-Agent: dockhand\r\nConnection: close\r\n\r\n"
        );
        w.write_all(req.as_bytes()).await?;
        let mut r = Reader::new(r);
        let head = r.head(false).await.map_err(|e| match e {
            HeadError::Io(e) => e,
            HeadError::Closed => io::ErrorKind::UnexpectedEof.into(),
            HeadError::Bad(_, m) => io::Error::new(io::ErrorKind::InvalidData, m),
        })?;
        r.consume(head.len);
        let framing = head
            .response_framing("GET")
            .map_err(|m| io::Error::new(io::ErrorKind::InvalidData, m))?;
        let mut body = Capped(Vec::new());
        r.copy_body(framing, &mut body, None).await?;
        let mut body = body.0;
        if framing == Framing::Chunked {
            body = dechunk(&body)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad chunked body"))?;
        }
        Ok((head, body))
    };
    tokio::time::timeout(timeout, ask)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// A writer into memory that refuses more than 4 MiB.
struct Capped(Vec<u8>);

impl AsyncWrite for Capped {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        if self.0.len() + buf.len() > 4 << 20 {
            return std::task::Poll::Ready(Err(io::Error::other("answer too large")));
        }
        self.0.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The data of a chunked body (a small one, already in memory).
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let i = b.iter().position(|&c| c == b'\n')?;
        let line = std::str::from_utf8(&b[..i]).ok()?.trim_end();
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        b = &b[i + 1..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

fn parse(buf: &[u8], request: bool) -> Result<Option<Head>, HeadError> {
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    match parse_with(buf, request, &mut few) {
        Err(HeadError::Bad(431, _)) => {
            // Any number of headers within `MAX_HEAD`: no more than lines.
            let lines = buf.iter().filter(|&&b| b == b'\n').count();
            let mut many = vec![httparse::EMPTY_HEADER; lines + 1];
            parse_with(buf, request, &mut many)
        }
        Err(HeadError::Bad(400, m)) if request && m.contains("invalid HTTP version") => {
            other_version(buf).unwrap_or(Err(HeadError::Bad(400, m)))
        }
        r => r,
    }
}

/// A request line's version httparse does not take, judged as Go's
/// net/http (dockerd) judges it: any `HTTP/1.x` is HTTP/1.1 (parsed as
/// such; the bytes forwarded as sent), another major version is 505.
/// None: not a version Go reads either (a 400 as httparse said).
fn other_version(buf: &[u8]) -> Option<Result<Option<Head>, HeadError>> {
    let line_end = buf.iter().position(|&b| b == b'\n')?;
    let at = buf[..line_end].windows(6).rposition(|w| w == b" HTTP/")? + 6;
    let v = buf.get(at..at + 3)?;
    if !(v[0].is_ascii_digit() && v[1] == b'.' && v[2].is_ascii_digit()) {
        return None;
    }
    if v[0] != b'1' {
        return Some(Err(HeadError::Bad(
            505,
            "HTTP version not supported".into(),
        )));
    }
    let mut copy = buf.to_vec();
    copy[at + 2] = b'1';
    let mut headers =
        vec![httparse::EMPTY_HEADER; copy.iter().filter(|&&b| b == b'\n').count() + 1];
    Some(parse_with(&copy, true, &mut headers))
}

fn parse_with<'b>(
    buf: &'b [u8],
    request: bool,
    headers: &mut [httparse::Header<'b>],
) -> Result<Option<Head>, HeadError> {
    let bad = |e: httparse::Error| match e {
        httparse::Error::TooManyHeaders => HeadError::Bad(431, "too many headers".into()),
        e => HeadError::Bad(400, format!("malformed HTTP: {e}")),
    };
    let own = |hs: &[httparse::Header]| {
        hs.iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect()
    };
    if request {
        let mut req = httparse::Request::new(headers);
        match req.parse(buf).map_err(bad)? {
            httparse::Status::Partial => Ok(None),
            httparse::Status::Complete(len) => Ok(Some(Head {
                method: req.method.unwrap_or("").to_string(),
                target: req.path.unwrap_or("").to_string(),
                status: 0,
                version: req.version.unwrap_or(1),
                headers: own(req.headers),
                len,
            })),
        }
    } else {
        let mut res = httparse::Response::new(headers);
        match res.parse(buf).map_err(bad)? {
            httparse::Status::Partial => Ok(None),
            httparse::Status::Complete(len) => Ok(Some(Head {
                method: String::new(),
                target: String::new(),
                status: res.code.unwrap_or(0),
                version: res.version.unwrap_or(1),
                headers: own(res.headers),
                len,
            })),
        }
    }
}

/// A complete response with a JSON `{"message": ...}` body, as dockerd's
/// own errors look.
pub fn json_error(status: u16, message: &str, close: bool) -> Vec<u8> {
    let body = serde_json::json!({ "message": message }).to_string();
    let reason = match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        505 => "HTTP Version Not Supported",
        _ => "Service Unavailable",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n{body}",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As Go's net/http: any HTTP/1.x is read as HTTP/1.1; another major
    /// version is 505; what is no version at all, 400.
    #[test]
    fn versions_are_judged_as_go_judges_them() {
        let h = parse(b"GET /_ping HTTP/1.2\r\nHost: d\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!((h.target.as_str(), h.version), ("/_ping", 1));
        assert_eq!(h.header("host"), Some(&b"d"[..]));
        for v in ["HTTP/2.0", "HTTP/9.9"] {
            let r = parse(format!("GET / {v}\r\nHost: d\r\n\r\n").as_bytes(), true);
            assert!(matches!(r, Err(HeadError::Bad(505, _))), "{v}");
        }
        let r = parse(b"GET / HTTP/x\r\nHost: d\r\n\r\n", true);
        assert!(matches!(r, Err(HeadError::Bad(400, _))));
    }

    async fn body_of(input: &[u8], framing: Framing) -> (Vec<u8>, Vec<u8>) {
        let mut r = Reader::new(input);
        let mut out = Vec::new();
        r.copy_body(framing, &mut out, None).await.unwrap();
        (out, r.buffered().to_vec())
    }

    #[tokio::test]
    async fn chunked_bodies_are_copied_with_their_framing_and_no_more() {
        let wire = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\nGET /next";
        let (out, rest) = body_of(wire, Framing::Chunked).await;
        assert_eq!(out, &wire[..wire.len() - 9]);
        assert_eq!(rest, b"GET /next");
    }

    #[tokio::test]
    async fn chunked_bodies_split_anywhere_across_reads() {
        // Every split point of a body with extensions and trailers, read
        // one byte at a time after it: the same bytes out, and no more.
        let wire: &[u8] = b"a\r\n0123456789\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\nNEXT";
        let body = &wire[..wire.len() - 4];
        for split in 0..body.len() {
            let (a, mut b) = tokio::io::duplex(1);
            let first = wire[..split].to_vec();
            let rest = wire[split..].to_vec();
            let t = tokio::spawn(async move {
                b.write_all(&first).await.unwrap();
                for c in rest.chunks(1) {
                    b.write_all(c).await.unwrap();
                }
            });
            let mut r = Reader::new(a);
            let mut out = Vec::new();
            r.copy_chunked(&mut out).await.unwrap();
            assert_eq!(out, body, "split at {split}");
            drop(r);
            let _ = t.await;
        }
    }

    #[tokio::test]
    async fn bad_and_truncated_chunked_bodies_fail() {
        for wire in [&b"zz\r\nab\r\n0\r\n\r\n"[..], b"5\r\nab"] {
            let mut r = Reader::new(wire);
            let mut out = Vec::new();
            assert!(r.copy_chunked(&mut out).await.is_err());
        }
    }

    /// CRLF everywhere (RFC 9112 7.1): a bare LF is malformed, and what
    /// was read of the body is still passed on (the receiver judges).
    #[tokio::test]
    async fn bare_lf_in_chunked_bodies_is_malformed_but_passed_on() {
        for wire in [
            &b"2\nab\r\n0\r\n\r\n"[..],
            b"2\r\nab\n0\r\n\r\n",
            b"2\r\nab\r\n0\n\r\n",
            b"2\r\nab\r\n0\r\n\n",
            b" 2\r\nab\r\n0\r\n\r\n",
            b"+2\r\nab\r\n0\r\n\r\n",
        ] {
            let mut r = Reader::new(wire);
            let mut out = Vec::new();
            let e = r.copy_chunked(&mut out).await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{wire:?}");
            assert_eq!(out, wire, "all of it passed on");
        }
    }

    async fn request(wire: &[u8]) -> Head {
        Reader::new(wire).head(true).await.unwrap()
    }

    /// As Go's net/http: Transfer-Encoding ignored on HTTP/1.0, else only
    /// one `chunked` (else 501); Content-Length digits only; with both,
    /// chunked, and the connection closes after the answer.
    #[tokio::test]
    async fn request_framing_follows_go() {
        let h =
            request(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n")
                .await;
        assert_eq!(h.request_framing().unwrap(), Framing::Length(3));
        for te in [
            "gzip, chunked",
            "identity",
            "chunked\r\nTransfer-Encoding: chunked",
        ] {
            let h =
                request(format!("POST / HTTP/1.1\r\nTransfer-Encoding: {te}\r\n\r\n").as_bytes())
                    .await;
            assert_eq!(h.request_framing().unwrap_err().0, 501, "{te}");
        }
        for cl in ["+3", "3 3", "-1", "0x3"] {
            let h = request(format!("POST / HTTP/1.1\r\nContent-Length: {cl}\r\n\r\n").as_bytes())
                .await;
            assert_eq!(h.request_framing().unwrap_err().0, 400, "{cl}");
        }
        let h =
            request(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await;
        assert_eq!(h.request_framing().unwrap(), Framing::Chunked);
        assert!(h.closes());
    }

    /// Any number of headers, and heads up to 1 MiB, however they arrive.
    #[tokio::test]
    async fn big_heads_parse_across_reads() {
        let many: String = (0..300).map(|i| format!("X-{i}: {i}\r\n")).collect();
        let big = format!("X-Big: {}\r\n", "v".repeat(500_000));
        for extra in [many, big] {
            let wire = format!("GET /_ping HTTP/1.1\r\nHost: d\r\n{extra}\r\n").into_bytes();
            let (a, mut b) = tokio::io::duplex(4096);
            let n = wire.len();
            let t = tokio::spawn(async move {
                for c in wire.chunks(1000) {
                    b.write_all(c).await.unwrap();
                }
                b
            });
            let mut r = Reader::new(a);
            let h = r.head(true).await.unwrap();
            assert_eq!(h.len, n);
            drop(t.await.unwrap());
        }
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "v".repeat(MAX_HEAD));
        let mut r = Reader::new(huge.as_bytes());
        assert!(matches!(r.head(true).await, Err(HeadError::Bad(431, _))));
    }

    #[tokio::test]
    async fn length_bodies_stop_at_their_length() {
        let (out, rest) = body_of(b"helloHEAD /_ping", Framing::Length(5)).await;
        assert_eq!(out, b"hello");
        assert_eq!(rest, b"HEAD /_ping");
        let mut r = Reader::new(&b"abc"[..]);
        let mut out = Vec::new();
        assert!(r.copy_exact(5, &mut out, None).await.is_err(), "short body");
    }

    #[tokio::test]
    async fn heads_parse_across_reads_and_keep_the_rest() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut r = Reader::new(a);
        let t = tokio::spawn(async move {
            b.write_all(b"POST /v1.41/build HTTP/1.1\r\nContent-")
                .await
                .unwrap();
            b.write_all(b"Length: 3\r\nConnection: close\r\n\r\nabc")
                .await
                .unwrap();
        });
        let h = r.head(true).await.unwrap();
        t.await.unwrap();
        assert_eq!(h.method, "POST");
        assert_eq!(h.target, "/v1.41/build");
        assert_eq!(h.request_framing().unwrap(), Framing::Length(3));
        assert!(h.closes());
        r.consume(h.len);
        let mut out = Vec::new();
        r.copy_body(Framing::Length(3), &mut out, None)
            .await
            .unwrap();
        assert_eq!(out, b"abc");
    }

    #[tokio::test]
    async fn response_framing_follows_the_rules() {
        let mut r = Reader::new(&b"HTTP/1.1 200 OK\r\nContent-Type: x\r\n\r\n"[..]);
        let h = r.head(false).await.unwrap();
        assert_eq!(h.response_framing("GET").unwrap(), Framing::Eof);
        assert_eq!(h.response_framing("HEAD").unwrap(), Framing::None);
        let mut r = Reader::new(&b"HTTP/1.1 101 UPGRADED\r\nUpgrade: tcp\r\n\r\n"[..]);
        let h = r.head(false).await.unwrap();
        assert_eq!(h.status, 101);
        let mut r =
            Reader::new(&b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..]);
        assert!(r.head(true).await.unwrap().request_framing().is_err());
        let mut r = Reader::new(&b"\x16\x03\x01garbage\r\n\r\n"[..]);
        assert!(matches!(r.head(true).await, Err(HeadError::Bad(400, _))));
        let mut r = Reader::new(&b""[..]);
        assert!(matches!(r.head(true).await, Err(HeadError::Closed)));
    }
}
