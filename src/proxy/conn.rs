//! One client connection, request by request: read the head, classify it,
//! make sure the engine runs (or answer for a stopped one), forward the
//! request and its response, and switch to a raw copy on an upgrade.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tracing::debug;

use super::Shared;
use super::http::{self, Framing, Head, HeadError, Reader};
use super::idle::{Active, Activity};
use super::limits;
use super::sock::{self, ReadHalf, WriteHalf};
use super::zerocopy;
use crate::control::Held;
use crate::state::Phase;

const NO_ENGINE: u64 = u64::MAX;

/// Serve one client until it closes, misbehaves, or its engine goes away.
pub async fn serve(shared: Arc<Shared>, client: UnixStream) {
    big_buffers(&client);
    let Ok((r, w)) = sock::from_tokio(client) else {
        return;
    };
    let mut c = Conn {
        shared: shared.clone(),
        cr: Reader::new(r),
        cw: w,
        engine: None,
    };
    // The epoch of the engine this connection talks to.
    let bound = AtomicU64::new(NO_ENGINE);
    let mut epoch = shared.epoch.subscribe();
    let gone = async {
        loop {
            if epoch.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            let e = bound.load(Ordering::SeqCst);
            if e != NO_ENGINE && e != *epoch.borrow() {
                return;
            }
        }
    };
    tokio::select! {
        _ = c.run(&bound) => {}
        _ = gone => debug!("the engine went away: closing a client connection"),
    }
}

struct Conn {
    shared: Arc<Shared>,
    cr: Reader<ReadHalf>,
    cw: WriteHalf,
    engine: Option<(Reader<ReadHalf>, WriteHalf)>,
}

/// After a request: go on with the next one, or end the connection.
enum Next {
    More,
    Close,
    /// The ssh forward closed before answering a GET/HEAD it was sent:
    /// send these bytes again through the next forward.
    Replay(Vec<u8>),
}

/// How a response ended.
enum Resp {
    Done {
        close: bool,
    },
    /// 101 or a body until the end of the stream: copy raw both ways.
    Raw,
}

impl Conn {
    async fn run(&mut self, bound: &AtomicU64) {
        loop {
            // Between requests the connection is not bound to the engine:
            // an engine stop (idle, restart) meanwhile doesn't close it;
            // its engine side is replaced at the next request.
            let held = bound.swap(NO_ENGINE, Ordering::SeqCst);
            let next = self.next_head().await;
            self.rebind(held, bound);
            let head = match next {
                Ok(h) => h,
                Err(HeadError::Closed | HeadError::Io(_)) => return,
                Err(HeadError::Bad(code, msg)) => {
                    if self
                        .reply(&http::json_error(code, &msg, true))
                        .await
                        .is_ok()
                    {
                        self.linger().await;
                    }
                    return;
                }
            };
            match self.request(head, bound).await {
                Next::More => {}
                Next::Close | Next::Replay(_) => return,
            }
        }
    }

    /// After the wait for a request: bound again to the engine it talks
    /// to, if that engine is still the current one; else its engine side
    /// is dropped (connected afresh by the request).
    fn rebind(&mut self, held: u64, bound: &AtomicU64) {
        if self.engine.is_none() {
            return;
        }
        bound.store(held, Ordering::SeqCst);
        // Checked after binding: a change from now on closes it as before.
        if held == NO_ENGINE || held != *self.shared.epoch.borrow() {
            bound.store(NO_ENGINE, Ordering::SeqCst);
            self.engine = None;
        }
    }

    /// The next request head: a connection idle longer than
    /// `IDLE_TIMEOUT` is closed, a head begun must be complete within
    /// `HEAD_DEADLINE` (else 408 and close).
    async fn next_head(&mut self) -> Result<Head, HeadError> {
        if self.cr.buffered().is_empty() {
            // Idle: closed after IDLE_TIMEOUT, or sooner to make room for
            // a new client when every slot is taken (`IdleConns`).
            let shared = self.shared.clone();
            let ticket = shared.idle_conns.enter();
            let read = tokio::time::timeout(limits::IDLE_TIMEOUT, self.cr.read_more());
            let got = tokio::select! {
                r = read => r,
                _ = ticket.close.notified() => return Err(HeadError::Closed),
            };
            drop(ticket);
            match got {
                Err(_) | Ok(Ok(0)) => return Err(HeadError::Closed),
                Ok(Err(e)) => return Err(HeadError::Io(e)),
                Ok(Ok(_)) => {}
            }
        }
        match tokio::time::timeout(limits::HEAD_DEADLINE, self.cr.head(true)).await {
            Ok(r) => r,
            Err(_) => Err(HeadError::Bad(
                408,
                format!(
                    "request head not complete within {}s",
                    limits::HEAD_DEADLINE.as_secs()
                ),
            )),
        }
    }

    async fn reply(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.cw.write_all(bytes).await
    }

    /// After an error answer with the client's request unread: our side
    /// shut, then what it still sends read and dropped (`LINGER_BYTES`
    /// within `LINGER` at most) before the close, so that the close does
    /// not reset the connection under the answer (as Go's server does:
    /// closeWriteAndWait).
    async fn linger(&mut self) {
        use tokio::io::AsyncWriteExt;
        const LINGER: std::time::Duration = std::time::Duration::from_millis(500);
        const LINGER_BYTES: usize = 4 << 20;
        if self.cw.shutdown().await.is_err() {
            return;
        }
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut left = LINGER_BYTES;
        while left > 0 {
            match tokio::time::timeout_at(deadline, self.cr.discard(left)).await {
                Ok(Ok(k)) if k > 0 => left = left.saturating_sub(k),
                _ => return,
            }
        }
    }

    /// One request; its head is in `cr`'s buffer.
    async fn request(&mut self, head: Head, bound: &AtomicU64) -> Next {
        let path = super::classify::api_path(&head.target).to_string();
        let passive = self.shared.classifier.passive(&head.method, &path);
        let framing = match head.request_framing() {
            Ok(f) => f,
            Err((code, m)) => {
                let _ = self.reply(&http::json_error(code, &m, true)).await;
                return Next::Close;
            }
        };
        self.shared.record.seen(&head.method, &head.target, &path);
        let mut active = match passive {
            true => None,
            false => Some(Activity::begin(&self.shared).await),
        };
        if let Some(answer) = self.engine_or_answer(&head, &path, passive).await {
            return self.answer_locally(&head, framing, answer).await;
        }
        if head.method == "GET"
            && path == "/events"
            && head.version == 1
            && framing == Framing::None
        {
            return self.events(&head, bound).await;
        }
        if self.engine.is_none()
            && let Err(next) = self.connect_engine(&head, bound).await
        {
            return next;
        }
        // A passive request in flight: an idle stop waits for it (briefly)
        // rather than cut it.
        let shared = self.shared.clone();
        let _in_flight = passive.then(|| shared.idle.passive_begin());
        match self.forward(&head, framing, &mut active).await {
            Next::Replay(bytes) => self.replay(bytes, &head, bound).await,
            next => next,
        }
    }

    /// A request dockhand answers itself (`answer`), its body unread.
    async fn answer_locally(&mut self, head: &Head, framing: Framing, answer: Local) -> Next {
        self.cr.consume(head.len);
        // A body we did not read leaves the stream unframed: close.
        let close = framing != Framing::None || head.closes();
        let answer = match (answer, close) {
            (Local::Bytes(b), _) => b,
            (Local::Error(m), c) => http::json_error(503, &m, c),
        };
        if self.reply(&answer).await.is_err() {
            return Next::Close;
        }
        if framing != Framing::None {
            self.linger().await;
        }
        match close {
            true => Next::Close,
            false => Next::More,
        }
    }

    /// `GET /events`: its own engine connection, kept across an idle stop.
    async fn events(&mut self, head: &Head, bound: &AtomicU64) -> Next {
        self.engine = None;
        bound.store(NO_ENGINE, Ordering::SeqCst);
        let req = self.cr.buffered()[..head.len].to_vec();
        self.cr.consume(head.len);
        let more =
            super::events::stream(&self.shared, &req, &head.target, &mut self.cr, &mut self.cw);
        match more.await && !head.closes() {
            true => Next::More,
            false => Next::Close,
        }
    }

    /// A connection to the engine for this client connection, bound to
    /// the engine's epoch; or what to do when there is none (a 503 sent).
    async fn connect_engine(&mut self, head: &Head, bound: &AtomicU64) -> Result<(), Next> {
        let mut epoch = *self.shared.epoch.borrow();
        let connected = match UnixStream::connect(&self.shared.socket).await {
            Err(_) if self.shared.remote => self.await_forward(&mut epoch).await,
            c => c.map_err(|e| e.to_string()),
        };
        match connected {
            Ok(s) => {
                big_buffers(&s);
                let (r, w) = sock::from_tokio(s).map_err(|_| Next::Close)?;
                self.engine = Some((Reader::new(r), w));
                bound.store(epoch, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => {
                let m = format!(
                    "dockhand cannot reach the Docker engine on {}: {e}; see `dockhand status --profile {}`",
                    self.shared.socket.display(),
                    self.shared.profile
                );
                self.cr.consume(head.len);
                let _ = self.reply(&http::json_error(503, &m, true)).await;
                Err(Next::Close)
            }
        }
    }

    /// A GET or HEAD the dying ssh forward took and closed unanswered
    /// (the request never reached the engine, or reading it changes
    /// nothing): sent once more through the new forward.
    async fn replay(&mut self, bytes: Vec<u8>, head: &Head, bound: &AtomicU64) -> Next {
        self.engine = None;
        // Not bound to the dead forward's epoch while waiting for the next.
        bound.store(NO_ENGINE, Ordering::SeqCst);
        let mut epoch = NO_ENGINE;
        let s = match self.await_forward(&mut epoch).await {
            Ok(s) => s,
            Err(why) => {
                let m = format!("dockhand cannot reach the Docker engine: {why}");
                let _ = self.reply(&http::json_error(503, &m, true)).await;
                return Next::Close;
            }
        };
        big_buffers(&s);
        let Ok((r, w)) = sock::from_tokio(s) else {
            return Next::Close;
        };
        bound.store(epoch, Ordering::SeqCst);
        let (er, ew) = self.engine.insert((Reader::new(r), w));
        if ew.write_all(&bytes).await.is_err() {
            return Next::Close;
        }
        match response(er, &mut self.cw, head).await {
            Ok(Resp::Done { close }) if !close && !head.closes() => {
                ew.quiet();
                self.cw.quiet();
                Next::More
            }
            Ok(Resp::Raw) => {
                let _ = tokio::join!(raw(&mut self.cr, ew), raw(er, &mut self.cw));
                Next::Close
            }
            _ => Next::Close,
        }
    }

    /// Forward the request to the engine and its response back. While
    /// the engine works, the client is watched: one that hangs up ends the
    /// engine connection at once (the engine cancels the request, as when
    /// the client talks to it directly); a half-close is passed on.
    async fn forward(
        &mut self,
        head: &Head,
        framing: Framing,
        active: &mut Option<Active>,
    ) -> Next {
        let idempotent = matches!(head.method.as_str(), "GET" | "HEAD");
        let replayable = self.shared.remote && idempotent && framing == Framing::None;
        let Conn { cr, cw, engine, .. } = self;
        let (er, ew) = engine.as_mut().expect("connected");
        // A small body already read goes out with the head, in one write.
        let (send, framing) = match framing {
            Framing::Length(n) if (cr.buffered().len() - head.len) as u64 >= n => {
                (head.len + n as usize, Framing::None)
            }
            f => (head.len, f),
        };
        let replay = replayable.then(|| cr.buffered()[..send].to_vec());
        if ew.write_all(&cr.buffered()[..send]).await.is_err() {
            return replay.map_or(Next::Close, Next::Replay);
        }
        cr.consume(send);
        let (done, whole) = {
            let client = client_side(cr, ew, framing);
            let resp = response(er, cw, head);
            tokio::pin!(client, resp);
            let mut whole = None;
            loop {
                tokio::select! {
                    c = &mut client, if whole.is_none() => match c {
                        Client::Gone => return Next::Close,
                        Client::Stopped(w) => whole = Some(w),
                    },
                    r = &mut resp => match r {
                        Ok(x) => break (x, whole.unwrap_or(true)),
                        Err(e) if e.kind() == std::io::ErrorKind::NotConnected => {
                            return replay.map_or(Next::Close, Next::Replay);
                        }
                        Err(_) => return Next::Close,
                    },
                }
            }
        };
        // Between requests the sockets wake dockhand only to read.
        ew.quiet();
        cw.quiet();
        match done {
            Resp::Done { close } if !close && !head.closes() && whole => Next::More,
            Resp::Done { .. } => Next::Close,
            Resp::Raw => {
                raw_both(cr, ew, er, cw, active).await;
                Next::Close
            }
        }
    }

    /// The ssh forward went away under a request (ssh killed, the
    /// supervisor not yet told): wait for the supervisor to notice and
    /// reconnect (within `start_timeout`), then connect again.
    /// `epoch`: the engine's epoch before the connect that succeeded.
    async fn await_forward(&self, epoch: &mut u64) -> Result<UnixStream, String> {
        let deadline = tokio::time::Instant::now() + self.shared.start_timeout;
        let mut rx = self.shared.control.subscribe();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.shared.control.start()).await {
                Ok(Ok(())) => {}
                Ok(Err(why)) => return Err(why),
                Err(_) => return Err("the forward did not come back within start_timeout".into()),
            }
            *epoch = *self.shared.epoch.borrow();
            match UnixStream::connect(&self.shared.socket).await {
                Ok(s) => return Ok(s),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e.to_string()),
                // Still "ready" with the dead forward: wait for the news.
                Err(_) => {
                    let _ =
                        tokio::time::timeout(std::time::Duration::from_millis(200), rx.changed())
                            .await;
                }
            }
        }
    }

    /// When the engine isn't running: start it and wait (None: forward),
    /// or answer for it (Some): a held engine's recorded answers for
    /// passive requests (not the docker CLI's), `down`'s and a failed
    /// profile's refusal.
    async fn engine_or_answer(&mut self, head: &Head, path: &str, passive: bool) -> Option<Local> {
        let st = self.shared.control.state();
        let remote = self.shared.remote;
        if self.shared.control.engine_up() && (!remote || st.phase == Phase::Ready) {
            return None;
        }
        // A remote engine's forward reconnecting: the CLI's first
        // questions get the remote engine's last answers (so it negotiates
        // that engine's API version), the rest wait for the forward. Not
        // while the forward is up and the remote engine down: nothing is
        // reconnecting, and `/_ping` must say so.
        if remote && st.held.is_none() && !st.serving_down {
            let key = super::cache::key(path);
            if let Some(b) = key.and_then(|k| self.shared.cache.answer(k, head.method == "HEAD")) {
                return Some(Local::Bytes(b));
            }
        }
        if let Some(b) = self.held_answer(head, path, passive, st.held) {
            return Some(Local::Bytes(b));
        }
        match st.held {
            Some(Held::Failed) => {
                return Some(Local::Error(format!(
                    "dockhand profile `{}` failed: {}",
                    self.shared.profile,
                    st.last_error.as_deref().unwrap_or("see `dockhand status`")
                )));
            }
            Some(Held::Down) => {
                return Some(Local::Error(format!(
                    "the Docker engine of dockhand profile `{}` is {}: run `dockhand up` to start it",
                    self.shared.profile,
                    Held::Down
                )));
            }
            _ => {}
        }
        self.start_and_wait().await
    }

    /// While the engine is held: a passive request's (not the docker
    /// CLI's) recorded or cached answer; any for one stopped by `down`.
    fn held_answer(
        &self,
        head: &Head,
        path: &str,
        passive: bool,
        held: Option<Held>,
    ) -> Option<Vec<u8>> {
        let cli = head
            .header("user-agent")
            .is_some_and(|v| v.starts_with(b"Docker-Client/"));
        // A failed profile answers nothing for the engine: `/_ping` too
        // says it failed (tools use it as "is docker up").
        let answer_here = match held {
            Some(Held::Down) => true,
            Some(Held::Failed) => false,
            Some(Held::Idle | Held::OnDemand) => passive && !cli,
            None => false,
        };
        if !answer_here {
            return None;
        }
        let head_only = head.method == "HEAD";
        let recorded = passive
            .then(|| self.shared.record.answer(&head.method, &head.target))
            .flatten();
        let cached =
            || super::cache::key(path).and_then(|k| self.shared.cache.answer(k, head_only));
        recorded.or_else(cached)
    }

    /// Start the engine (on demand) and wait for it, within start_timeout:
    /// None when it is up, else the error to answer.
    async fn start_and_wait(&self) -> Option<Local> {
        let remote = self.shared.remote;
        let limit = self.shared.start_timeout;
        match tokio::time::timeout(limit, self.shared.control.start()).await {
            Ok(Ok(())) => None,
            Ok(Err(why)) if remote => Some(Local::Error(format!(
                "dockhand cannot reach the Docker engine: {why}; see `dockhand status --profile {}`",
                self.shared.profile
            ))),
            Ok(Err(why)) => Some(Local::Error(format!(
                "dockhand could not start the Docker engine: {why}; see `dockhand status --profile {}`",
                self.shared.profile
            ))),
            Err(_) => Some(Local::Error(format!(
                "the Docker engine did not become ready within start_timeout ({}); see `dockhand status --profile {}`",
                humantime::format_duration(limit),
                self.shared.profile
            ))),
        }
    }
}

/// A body from `r` to `w`: a large one of known length spliced where the
/// platform can, the rest copied through the buffer.
async fn body(
    r: &mut Reader<ReadHalf>,
    w: &mut WriteHalf,
    framing: Framing,
) -> std::io::Result<()> {
    if let Framing::Length(n) = framing
        && zerocopy::AVAILABLE
        && n >= zerocopy::MIN
    {
        let before = r.write_buffered(n, w).await?;
        zerocopy::splice(r.get_ref(), w, Some(n - before)).await?;
        return Ok(());
    }
    r.copy_body(framing, w, None).await
}

/// How the client's side of a request ended before the answer did.
enum Client {
    /// It hung up, or its socket failed: end the connection.
    Gone,
    /// Nothing more to watch: the request was sent whole (true; further
    /// bytes, a pipelined request, stay buffered) or not (false: a body
    /// cut short or malformed, passed on for the engine to answer; the
    /// connection ends after that answer).
    Stopped(bool),
}

/// The client's side of a request: its body to the engine, then a watch
/// for the client going away while the engine answers. Never ends while
/// the client stays and keeps quiet.
async fn client_side(cr: &mut Reader<ReadHalf>, ew: &mut WriteHalf, framing: Framing) -> Client {
    match body(cr, ew, framing).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            // Framing the engine may judge otherwise: bytes as they come,
            // so it sees what the client sent and gives its own answer.
            return match raw(cr, ew).await {
                Ok(()) if !sock::hung_up(cr.get_ref().as_fd()) => Client::Stopped(false),
                _ => Client::Gone,
            };
        }
        Err(_) => return end_of_client(cr, ew, false).await,
    }
    loop {
        match cr.read_more().await {
            Ok(0) => return end_of_client(cr, ew, true).await,
            Ok(_) => {} // the next request, pipelined: kept
            Err(_) => return Client::Gone,
        }
    }
}

/// The client stopped sending (the request `whole` or not): gone when it
/// hung up; otherwise its half-close goes on to the engine, which may
/// still answer (an early error answer reaches the client).
async fn end_of_client(cr: &Reader<ReadHalf>, ew: &mut WriteHalf, whole: bool) -> Client {
    if sock::hung_up(cr.get_ref().as_fd()) {
        return Client::Gone;
    }
    let _ = ew.shutdown().await;
    Client::Stopped(whole)
}

/// Both directions of an upgraded or hijacked stream (or an answer that
/// runs until the engine closes) until both have ended, or one side hangs
/// up or fails: then both are closed.
async fn raw_both(
    cr: &mut Reader<ReadHalf>,
    ew: &mut WriteHalf,
    er: &mut Reader<ReadHalf>,
    cw: &mut WriteHalf,
    active: &mut Option<Active>,
) {
    let up = raw_until(cr, ew);
    // The engine's direction: when the engine has closed its socket
    // altogether (not only its writing side), the stream is over.
    let down = raw_until(er, cw);
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        tokio::select! {
            over = &mut up, if !up_done => if over { return } else { up_done = true },
            // Once the engine has ended its side (the exec or attach is
            // over) it is no longer work, even while the client keeps its
            // socket open (docker-py does).
            over = &mut down, if !down_done => {
                *active = None;
                if over { return } else { down_done = true }
            }
        }
    }
}

/// One raw direction to its end; true when that end is the whole
/// connection's (the sender hung up, or a socket failed).
async fn raw_until(r: &mut Reader<ReadHalf>, w: &mut WriteHalf) -> bool {
    match raw(r, w).await {
        Ok(()) => sock::hung_up(r.get_ref().as_fd()),
        Err(_) => true,
    }
}

/// An upgraded or hijacked direction: bytes until the end of the stream,
/// then a half-close, so the other side sees it (stdin closed).
async fn raw(r: &mut Reader<ReadHalf>, w: &mut WriteHalf) -> std::io::Result<()> {
    if zerocopy::AVAILABLE {
        r.write_buffered(u64::MAX, w).await?;
        zerocopy::splice(r.get_ref(), w, None).await?;
        return w.shutdown().await;
    }
    http::pipe(r, w).await
}

/// Socket buffers that hold a whole copy chunk or more: fewer partial
/// writes and wake-ups per byte (the kernel caps them at its maximum).
fn big_buffers(s: &UnixStream) {
    use rustix::net::sockopt;
    let _ = sockopt::set_socket_send_buffer_size(s, 4 * http::BUF);
    let _ = sockopt::set_socket_recv_buffer_size(s, 4 * http::BUF);
}

/// An answer dockhand gives itself.
enum Local {
    Bytes(Vec<u8>),
    Error(String),
}

/// Read the engine's response head(s) and body, and send them on.
async fn response(
    er: &mut Reader<ReadHalf>,
    cw: &mut WriteHalf,
    req: &Head,
) -> std::io::Result<Resp> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    // Nothing sent to the client yet: the engine closing now is told
    // apart (NotConnected), so an ssh forward's request can be replayed.
    let mut first = true;
    loop {
        let head = er.head(false).await.map_err(|e| match e {
            HeadError::Io(_) | HeadError::Closed if first => {
                std::io::Error::new(std::io::ErrorKind::NotConnected, "closed before answering")
            }
            HeadError::Io(e) => e,
            HeadError::Closed => std::io::ErrorKind::UnexpectedEof.into(),
            HeadError::Bad(_, m) => bad(m),
        })?;
        first = false;
        if head.status == 101 || head.status < 200 {
            cw.write_all(&er.buffered()[..head.len]).await?;
            er.consume(head.len);
            if head.status == 101 {
                return Ok(Resp::Raw);
            }
            continue; // 100 Continue and friends: the real answer follows
        }
        let framing = head.response_framing(&req.method).map_err(bad)?;
        // A small answer already read in full goes out in one write.
        let whole = match framing {
            Framing::None => Some(0),
            Framing::Length(n) if (er.buffered().len() - head.len) as u64 >= n => Some(n as usize),
            _ => None,
        };
        if let Some(n) = whole {
            cw.write_all(&er.buffered()[..head.len + n]).await?;
            er.consume(head.len + n);
        } else {
            cw.write_all(&er.buffered()[..head.len]).await?;
            er.consume(head.len);
            if framing == Framing::Eof {
                return Ok(Resp::Raw);
            }
            body(er, cw, framing).await?;
        }
        return Ok(Resp::Done {
            close: head.closes(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use tokio::io::AsyncReadExt;

    /// A proxy in front of `engine` (a socket path), the engine up.
    fn shared(engine: &std::path::Path, dir: &std::path::Path) -> Arc<Shared> {
        let st = crate::state::State::new("t", engine, Phase::Ready);
        let (control, cmds) = crate::control::channel(st);
        std::mem::forget(cmds);
        Arc::new(Shared {
            control,
            socket: engine.into(),
            start_timeout: std::time::Duration::from_secs(5),
            profile: "t".into(),
            classifier: super::super::classify::Classifier::new(None),
            cache: super::super::cache::Cache::load(dir),
            record: super::super::record::Record::default(),
            idle: Activity::new(),
            epoch: tokio::sync::watch::channel(0).0,
            remote: false,
            idle_conns: Default::default(),
        })
    }

    /// An engine that answers 413 as soon as it has the head, then closes
    /// without reading the body (unread data: the proxy's next write to it
    /// fails at once). Through the proxy, the client gets the 413 every
    /// time, however the failing write and the answer race.
    #[tokio::test]
    async fn an_early_answer_reaches_the_client_although_the_body_cannot_be_sent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.sock");
        let engine = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = engine.accept().await.unwrap();
                read_head(&mut s).await;
                // Let the proxy fill the socket with body and block on it:
                // the answer and the failing write then come together.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                s.write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await
                    .unwrap();
                drop(s);
            }
        });
        let shared = shared(&path, dir.path());
        for i in 0..20 {
            let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
            ours.set_nonblocking(true).unwrap();
            let ours = UnixStream::from_std(ours).unwrap();
            tokio::spawn(serve(shared.clone(), ours));
            let answer = tokio::task::spawn_blocking(move || {
                let mut c = theirs;
                c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                    .unwrap();
                c.write_all(
                    b"POST /v1.41/build HTTP/1.1\r\nHost: d\r\nContent-Length: 8388608\r\n\r\n",
                )
                .unwrap();
                let mut w = c.try_clone().unwrap();
                let writer = std::thread::spawn(move || {
                    let _ = w.write_all(&vec![0u8; 8 << 20]);
                });
                let mut out = Vec::new();
                let _ = c.read_to_end(&mut out);
                let _ = c.shutdown(std::net::Shutdown::Both);
                let _ = writer.join();
                out
            })
            .await
            .unwrap();
            assert!(
                answer.starts_with(b"HTTP/1.1 413"),
                "try {i}: {:?}",
                String::from_utf8_lossy(&answer)
            );
        }
    }

    /// An engine for one connection at `path`: reads a head, then `then`.
    fn one_shot_engine<F, Fut>(path: &std::path::Path, then: F)
    where
        F: FnOnce(tokio::net::UnixStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let engine = tokio::net::UnixListener::bind(path).unwrap();
        tokio::spawn(async move {
            let (mut s, _) = engine.accept().await.unwrap();
            read_head(&mut s).await;
            then(s).await;
        });
    }

    /// Read from `s` to the end of a request head.
    async fn read_head(s: &mut tokio::net::UnixStream) {
        let mut head = Vec::new();
        let mut b = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut b).await.unwrap();
            assert!(n > 0, "closed before the end of a head");
            head.extend_from_slice(&b[..n]);
        }
    }

    fn client(shared: &Arc<Shared>) -> (tokio::task::JoinHandle<()>, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        (tokio::spawn(serve(shared.clone(), ours)), theirs)
    }

    /// An upgraded stream whose engine closes its socket: the client's
    /// side is closed too, although the client keeps quiet and holds its
    /// socket (the connection ends; it used to wait for the client).
    #[cfg(target_os = "linux")] // sock::hung_up
    #[tokio::test]
    async fn an_engine_that_closes_an_upgraded_stream_closes_the_clients_side() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.sock");
        one_shot_engine(&path, |mut s| async move {
            s.write_all(b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nbye")
                .await
                .unwrap();
        });
        let shared = shared(&path, dir.path());
        let (task, mut c) = client(&shared);
        c.write_all(b"POST /v1.41/exec/x/start HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).await.unwrap();
        assert!(got.ends_with(b"bye"), "{:?}", String::from_utf8_lossy(&got));
        tokio::time::timeout(std::time::Duration::from_secs(10), task)
            .await
            .expect("the connection ends while the client holds its socket")
            .unwrap();
    }

    /// Each chunk of a chunked answer reaches the client as it arrives,
    /// with its size line: the engine sends the next one only after the
    /// client has read the last.
    #[tokio::test]
    async fn chunks_are_forwarded_as_they_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.sock");
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        one_shot_engine(&path, move |mut s| async move {
            s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await
                .unwrap();
            for i in 0..3 {
                s.write_all(format!("5\r\nstep{i}\r\n").as_bytes())
                    .await
                    .unwrap();
                rx.recv().await.unwrap();
            }
            s.write_all(b"0\r\n\r\n").await.unwrap();
        });
        let shared = shared(&path, dir.path());
        let (_task, mut c) = client(&shared);
        c.write_all(b"POST /v1.41/build HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut b = [0u8; 4096];
        for i in 0..3 {
            let chunk = format!("5\r\nstep{i}\r\n");
            while !String::from_utf8_lossy(&seen).ends_with(&chunk) {
                let n = tokio::time::timeout(std::time::Duration::from_secs(10), c.read(&mut b))
                    .await
                    .expect("chunk forwarded at once")
                    .unwrap();
                assert!(n > 0);
                seen.extend_from_slice(&b[..n]);
            }
            tx.send(()).await.unwrap();
        }
    }

    /// A keep-alive connection is closed after `IDLE_TIMEOUT` without a
    /// byte of a next request, and not before: one quiet for just under
    /// it is still served, and its idle time starts again after the
    /// answer (time paused: the runtime skips ahead to each deadline).
    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.sock");
        one_shot_engine(&path, |mut s| async move {
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]")
                .await
                .unwrap();
            std::future::pending::<()>().await;
        });
        let shared = shared(&path, dir.path());
        let (task, mut c) = client(&shared);
        let almost = limits::IDLE_TIMEOUT - std::time::Duration::from_secs(1);
        tokio::time::sleep(almost).await;
        c.write_all(b"GET /v1.41/containers/json HTTP/1.1\r\nHost: d\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut b = [0u8; 4096];
        while !got.ends_with(b"[]") {
            let n = c.read(&mut b).await.unwrap();
            assert!(n > 0, "closed before the idle timeout");
            got.extend_from_slice(&b[..n]);
        }
        let answered = tokio::time::Instant::now();
        let end = tokio::time::timeout(limits::IDLE_TIMEOUT * 2, c.read(&mut b))
            .await
            .expect("an idle connection is closed");
        assert_eq!(end.unwrap(), 0, "closed without a byte more");
        assert!(
            answered.elapsed() >= limits::IDLE_TIMEOUT,
            "{:?}",
            answered.elapsed()
        );
        task.await.unwrap();
    }
}
