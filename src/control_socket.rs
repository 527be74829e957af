//! The supervisor's control socket, `<state_dir>/control.sock`: JSON lines
//! over a unix socket, served by `dockhand run` through the
//! [`crate::control::Control`] handle, used by `status`, `up`, `down`
//! and `restart`.
//!
//! The socket is 0600 in the 0700 state dir, and every connection's peer
//! uid (SO_PEERCRED / getpeereid) must be the state dir's owner: anyone
//! else gets one error line and is disconnected.
//!
//! Protocol (one JSON object per line each way):
//!
//! | request | replies |
//! | --- | --- |
//! | `{"cmd":"state"}` | `{"ok":true,"state":S}` |
//! | `{"cmd":"start","follow":B}` | with `follow`, `{"event":"state","state":S}` on every change; then `{"ok":true,"state":S}` once ready, or `{"ok":false,"error":E,"state":S}` |
//! | `{"cmd":"stop"}` | `{"ok":true,"state":S}` once stopped; held stopped (`S.held = "down"`) until `start`/`restart` |
//! | `{"cmd":"restart","follow":B}` | as `start`, after stopping the engine |
//! | `{"cmd":"subscribe"}` | `{"event":"state","state":S}` now and on every change, until the client closes |
//!
//! `S` is the document `state.json` holds. A bad request (also a line
//! that is not UTF-8) gets `{"ok":false,"error":E}`; the connection stays
//! usable. At most `proxy::limits::CONTROL_CONNECTIONS` connections are
//! served at once (more wait to be accepted); one that sends no request
//! line for `proxy::limits::IDLE_TIMEOUT` is closed.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{info, warn};

use crate::config::Profile;
use crate::control::{Control, Held, State};
use crate::error::{Error, IoContext, Result};

/// The longest request line accepted.
const MAX_LINE: u64 = 4096;
/// Connections served at once (see `proxy::limits`).
const CONNECTIONS: usize = crate::proxy::limits::CONTROL_CONNECTIONS;

pub fn path(p: &Profile) -> PathBuf {
    p.state_dir.join("control.sock")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Req {
    State,
    Start {
        #[serde(default)]
        follow: bool,
    },
    Stop,
    Restart {
        #[serde(default)]
        follow: bool,
    },
    Subscribe,
}

/// One line from the server: an event (`event` set) or a reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Line {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
}

impl Line {
    fn event(s: State) -> Line {
        Line {
            event: Some("state".into()),
            ok: None,
            error: None,
            state: Some(s),
        }
    }
    fn reply(res: std::result::Result<(), String>, s: Option<State>) -> Line {
        Line {
            event: None,
            ok: Some(res.is_ok()),
            error: res.err(),
            state: s,
        }
    }
}

// ------------------------------------------------------------- server

/// Bind the socket (we hold the profile's lock, so one left behind is a
/// dead supervisor's) and serve it in the background.
pub async fn serve(p: &Profile, control: Control) -> Result<()> {
    let path = path(p);
    if let Ok(md) = std::fs::symlink_metadata(&path) {
        if !md.file_type().is_socket() {
            return Err(Error::UnsafePath(format!(
                "{} exists and is not a socket: move it away",
                path.display()
            )));
        }
        let _ = std::fs::remove_file(&path);
    }
    let listener =
        UnixListener::bind(&path).ctx(|| format!("cannot listen on {}", path.display()))?;
    // The directory is 0700: nobody else can reach the socket in between.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .ctx(|| format!("cannot chmod 0600 {}", path.display()))?;
    let owner = std::fs::metadata(&p.state_dir)
        .ctx(|| format!("cannot inspect {}", p.state_dir.display()))?
        .uid();
    info!("control socket {}", path.display());
    // At most this many connections at once; more wait to be accepted,
    // and the supervisor keeps descriptors for its own work.
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(CONNECTIONS));
    tokio::spawn(async move {
        let mut listener = listener;
        let mut look = tokio::time::interval(PUT_BACK_EVERY);
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let accepted = loop {
                tokio::select! {
                    r = listener.accept() => break r,
                    _ = look.tick() => {
                        if let Some(l) = put_back(&path) {
                            listener = l;
                        }
                    }
                }
            };
            match accepted {
                Ok((s, _)) => {
                    let control = control.clone();
                    tokio::spawn(async move {
                        connection(s, control, owner).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    warn!("control socket: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

/// How often the socket's path is looked at (as the lock file's).
const PUT_BACK_EVERY: Duration = Duration::from_secs(5);

/// A new listener when someone removed the socket (every command would
/// find no supervisor to ask); anything else now at the path is left
/// alone (someone else's: commands then say the supervisor does not
/// answer).
fn put_back(path: &std::path::Path) -> Option<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        _ => return None,
    }
    let l = UnixListener::bind(path)
        .map_err(|e| warn!("cannot put back {}: {e}", path.display()))
        .ok()?;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        warn!("cannot chmod 0600 {}: {e}", path.display());
        let _ = std::fs::remove_file(path);
        return None;
    }
    warn!("{} was removed: put back", path.display());
    Some(l)
}

/// Remove the socket when the supervisor ends.
pub fn remove(p: &Profile) {
    let path = path(p);
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

async fn send(w: &mut (impl AsyncWriteExt + Unpin), line: &Line) -> bool {
    let mut b = serde_json::to_vec(line).expect("line serializes");
    b.push(b'\n');
    w.write_all(&b).await.is_ok()
}

async fn connection(s: UnixStream, control: Control, owner: u32) {
    use std::os::fd::AsRawFd;
    let fd = s.as_raw_fd();
    let peer = s.peer_cred().map(|c| c.uid());
    let (r, mut w) = s.into_split();
    if peer.as_ref().ok() != Some(&owner) {
        let who = peer.map_or_else(|e| format!("unknown ({e})"), |u| format!("uid {u}"));
        warn!("control socket: refused {who}: only uid {owner} may connect");
        let msg = format!(
            "permission denied: only uid {owner} (the state dir's owner) may use this socket"
        );
        send(&mut w, &Line::reply(Err(msg), None)).await;
        // Take what the client already sent (bounded, briefly) so that it
        // reads the refusal rather than a broken pipe.
        let mut sink = [0u8; 4096];
        let mut r = r;
        let _ = tokio::time::timeout(Duration::from_secs(1), r.read(&mut sink)).await;
        return;
    }
    let mut r = BufReader::new(r);
    loop {
        let mut line = Vec::new();
        // A connection that says nothing for long gives its slot back.
        let mut limited = (&mut r).take(MAX_LINE);
        let read = limited.read_until(b'\n', &mut line);
        match tokio::time::timeout(crate::proxy::limits::IDLE_TIMEOUT, read)
            .await
            .unwrap_or(Ok(0))
        {
            Ok(0) | Err(_) => return,
            Ok(_) if !line.ends_with(b"\n") => {
                let e = format!("request longer than {MAX_LINE} bytes");
                send(&mut w, &Line::reply(Err(e), None)).await;
                return;
            }
            Ok(_) => {}
        }
        let req = match parse_request(&line) {
            Ok(r) => r,
            Err(e) => {
                if !send(&mut w, &Line::reply(Err(e), None)).await {
                    return;
                }
                continue;
            }
        };
        // A command read late (this supervisor was stopped, or busy) whose
        // client gave up and went away is not carried out: nobody waits
        // for it, and its user was told it did not happen.
        if !matches!(req, Req::State | Req::Subscribe) && client_gone(fd) {
            warn!(
                "control socket: dropped a {req:?} request whose client went away before it was read"
            );
            return;
        }
        if !handle(req, &control, &mut w, &mut r).await {
            return;
        }
    }
}

/// The client closed its end of the connection (POLLHUP: both
/// directions shut, not a half-close after its request). `fd` is the
/// connection's socket, open while its halves are.
fn client_gone(fd: std::os::fd::RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1 && p.revents & libc::POLLHUP != 0
}

/// One request line (bytes: a line that is not UTF-8 is a bad request
/// like any other, answered on a connection that stays usable).
fn parse_request(line: &[u8]) -> std::result::Result<Req, String> {
    let expected = "expected {\"cmd\": \"state\"|\"start\"|\"stop\"|\"restart\"|\"subscribe\"}";
    let text = std::str::from_utf8(line)
        .map_err(|e| format!("bad request (not UTF-8: {e}); {expected}"))?;
    serde_json::from_str::<Req>(text.trim()).map_err(|e| format!("bad request ({e}); {expected}"))
}

/// Serve one request; false when the connection is done.
async fn handle(
    req: Req,
    control: &Control,
    w: &mut (impl AsyncWriteExt + Unpin),
    r: &mut (impl AsyncReadExt + Unpin),
) -> bool {
    let mut rx = control.subscribe();
    let res = match req {
        Req::State => Ok(()),
        Req::Stop => {
            control.stop(Held::Down).await;
            Ok(())
        }
        Req::Start { follow } => forward(control.start(), &mut rx, w, follow).await,
        Req::Restart { follow } => {
            control.restart().await;
            forward(control.start(), &mut rx, w, follow).await
        }
        Req::Subscribe => {
            let first = rx.borrow_and_update().clone();
            if !send(w, &Line::event(first)).await {
                return false;
            }
            let mut buf = [0u8; 64];
            loop {
                tokio::select! {
                    c = rx.changed() => {
                        let s = rx.borrow_and_update().clone();
                        if c.is_err() || !send(w, &Line::event(s)).await {
                            return false;
                        }
                    }
                    // The client hung up (or spoke: subscribe is the last request).
                    _ = r.read(&mut buf) => return false,
                }
            }
        }
    };
    send(w, &Line::reply(res, Some(control.state()))).await
}

/// Await `fut`, sending each state change as an event when `follow`.
async fn forward(
    fut: impl std::future::Future<Output = std::result::Result<(), String>>,
    rx: &mut tokio::sync::watch::Receiver<State>,
    w: &mut (impl AsyncWriteExt + Unpin),
    follow: bool,
) -> std::result::Result<(), String> {
    tokio::pin!(fut);
    if follow {
        let first = rx.borrow_and_update().clone();
        send(w, &Line::event(first)).await;
    }
    loop {
        tokio::select! {
            res = &mut fut => return res,
            c = rx.changed(), if follow => {
                if c.is_err() {
                    return fut.await;
                }
                let s = rx.borrow_and_update().clone();
                send(w, &Line::event(s)).await;
            }
        }
    }
}

// ------------------------------------------------------------- client

/// A connection to a running supervisor's control socket.
pub struct Client {
    r: BufReader<tokio::net::unix::OwnedReadHalf>,
    w: tokio::net::unix::OwnedWriteHalf,
}

impl Client {
    /// Connect, if a supervisor serves the profile's socket.
    pub async fn connect(p: &Profile) -> Option<Client> {
        Self::connect_path(&path(p)).await
    }

    pub async fn connect_path(path: &Path) -> Option<Client> {
        Self::try_connect(path).await.ok()
    }

    pub async fn try_connect(path: &Path) -> std::io::Result<Client> {
        let s = UnixStream::connect(path).await?;
        let (r, w) = s.into_split();
        Ok(Client {
            r: BufReader::new(r),
            w,
        })
    }

    pub async fn send(&mut self, req: &Req) -> Result<()> {
        let mut b = serde_json::to_vec(req).expect("request serializes");
        b.push(b'\n');
        self.w
            .write_all(&b)
            .await
            .ctx(|| "cannot write to the control socket".into())
    }

    /// The next line; None at the end of the stream. Bounded: a line
    /// beyond 1 MiB is an error.
    pub async fn next(&mut self) -> Result<Option<Line>> {
        let mut line = String::new();
        let n = (&mut self.r)
            .take(1 << 20)
            .read_line(&mut line)
            .await
            .ctx(|| "cannot read the control socket".into())?;
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_str(line.trim()).map(Some).map_err(|e| {
            Error::io(
                "the control socket answered something unexpected",
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })
    }

    /// Send `req` and return its reply (skipping events).
    pub async fn call(&mut self, req: &Req) -> Result<Line> {
        self.send(req).await?;
        loop {
            match self.next().await? {
                Some(l) if l.event.is_none() => return Ok(l),
                Some(_) => {}
                None => {
                    return Err(Error::io(
                        "the supervisor closed the control socket",
                        std::io::ErrorKind::UnexpectedEof.into(),
                    ));
                }
            }
        }
    }
}

/// The supervisor's state over its socket, within `timeout`; None when no
/// supervisor answers (for `status`, which then reads state.json).
pub fn query_state(p: &Profile, timeout: Duration) -> Option<State> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        tokio::time::timeout(timeout, async {
            let mut c = Client::connect(p).await?;
            c.call(&Req::State).await.ok()?.state
        })
        .await
        .ok()
        .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_lines_have_the_documented_shape() {
        let r: Req = serde_json::from_str(r#"{"cmd":"start","follow":true}"#).unwrap();
        assert!(matches!(r, Req::Start { follow: true }));
        let r: Req = serde_json::from_str(r#"{"cmd":"restart"}"#).unwrap();
        assert!(matches!(r, Req::Restart { follow: false }));
        assert!(serde_json::from_str::<Req>(r#"{"cmd":"kill"}"#).is_err());
        assert_eq!(
            serde_json::to_string(&Req::Stop).unwrap(),
            r#"{"cmd":"stop"}"#
        );
        let e = parse_request(b"{\"cmd\":\"st\xffate\"}\n").unwrap_err();
        assert!(e.starts_with("bad request (not UTF-8"), "{e}");
        assert!(matches!(
            parse_request(b" {\"cmd\":\"state\"}\n"),
            Ok(Req::State)
        ));
        let l = Line::reply(Err("no".into()), None);
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"{"ok":false,"error":"no"}"#
        );
    }
}
