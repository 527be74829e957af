//! A proxied unix socket registered for reading only, so that a peer
//! reading what we wrote does not wake dockhand.
//!
//! tokio's `UnixStream` registers for both readiness kinds (edge-triggered
//! `EPOLLIN | EPOLLOUT`). On a unix socket every read by the peer frees
//! send-buffer space and raises `EPOLLOUT` (the kernel's
//! `unix_write_space`), so a proxy with tokio sockets is woken twice per
//! request for nothing: once when the engine reads the request, once when
//! the client reads the answer, each a trip through the scheduler on the
//! latency path. Here the socket's own registration is read-only; a write
//! goes straight to `send(2)`, and only one that finds the buffer full
//! registers a duplicate descriptor for writability (bodies larger than
//! the socket buffer), dropped again by `quiet` at the end of the request.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustix::net::SendFlags;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// The read side; shares the socket with its `WriteHalf`.
pub struct ReadHalf(Arc<AsyncFd<OwnedFd>>);

/// The write side: `send(2)` first, a writable registration only when the
/// socket buffer is full.
pub struct WriteHalf {
    fd: Arc<AsyncFd<OwnedFd>>,
    writable: Option<AsyncFd<OwnedFd>>,
}

/// Take over a connected non-blocking socket with a read-only
/// registration; split it into its two directions.
fn split(fd: OwnedFd) -> io::Result<(ReadHalf, WriteHalf)> {
    let fd = Arc::new(register(fd, Interest::READABLE)?);
    Ok((ReadHalf(fd.clone()), WriteHalf { fd, writable: None }))
}

fn register(fd: OwnedFd, interest: Interest) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` stays open and names the same descriptor until
    // the `AsyncFd` that owns it is dropped.
    unsafe { AsyncFd::register_with_interest(fd, interest) }.map_err(io::Error::from)
}

/// From a tokio stream: its own registration goes first (`into_std`
/// leaves the socket non-blocking).
pub fn from_tokio(s: tokio::net::UnixStream) -> io::Result<(ReadHalf, WriteHalf)> {
    split(s.into_std()?.into())
}

impl ReadHalf {
    /// Run a non-blocking read-like `f` when the socket is readable.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // splice only
    pub async fn read_io<R>(&self, mut f: impl FnMut() -> io::Result<R>) -> io::Result<R> {
        self.0.async_io(Interest::READABLE, |_| f()).await
    }
}

impl AsFd for ReadHalf {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.get_ref().as_fd()
    }
}

impl AsFd for WriteHalf {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.get_ref().as_fd()
    }
}

impl WriteHalf {
    /// The writable registration, made on first need.
    fn writable(&mut self) -> io::Result<&AsyncFd<OwnedFd>> {
        if self.writable.is_none() {
            let dup = self.fd.get_ref().try_clone()?;
            self.writable = Some(register(dup, Interest::WRITABLE)?);
        }
        Ok(self.writable.as_ref().expect("just made"))
    }

    /// Run a non-blocking write-like `f` on the socket, waiting for room
    /// when it would block.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // splice only
    pub async fn write_io<R>(
        &mut self,
        mut f: impl FnMut(BorrowedFd<'_>) -> io::Result<R>,
    ) -> io::Result<R> {
        let fd = self.fd.clone();
        if self.writable.is_none() {
            match f(fd.get_ref().as_fd()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return r,
            }
        }
        self.writable()?
            .async_io(Interest::WRITABLE, |_| f(fd.get_ref().as_fd()))
            .await
    }

    /// Back to a read-only registration (between requests).
    pub fn quiet(&mut self) {
        self.writable = None;
    }
}

/// Both directions of the connection are over: `POLLHUP` on the socket
/// (Linux sets it on a unix socket when the peer closed, or shut its
/// writing side after we shut ours). Elsewhere false: a close then looks
/// like a half-close, which the proxy passes on (the engine cancels the
/// request on it as it does on EOF).
#[cfg(target_os = "linux")]
pub fn hung_up(fd: BorrowedFd<'_>) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::OUT)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&now)).is_ok() && fds[0].revents().contains(PollFlags::HUP)
}

#[cfg(not(target_os = "linux"))]
pub fn hung_up(_: BorrowedFd<'_>) -> bool {
    false
}

/// No SIGPIPE for a peer gone: `MSG_NOSIGNAL` on Linux; on macOS the
/// sockets come from tokio (mio), which sets `SO_NOSIGPIPE` on them.
#[cfg(any(target_os = "linux", target_os = "android"))]
const FLAGS: SendFlags = SendFlags::NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const FLAGS: SendFlags = SendFlags::empty();

fn send(fd: &OwnedFd, buf: &[u8]) -> io::Result<usize> {
    Ok(rustix::net::send(fd, buf, FLAGS)?)
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let out = buf.initialize_unfilled();
            let want = out.len();
            match guard.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut *out)?)) {
                Ok(Ok(n)) => {
                    // A short read drained the socket (as tokio's own
                    // streams assume): wait for the next edge.
                    if n > 0 && n < want {
                        guard.clear_ready();
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.writable.is_none() {
            match send(self.fd.get_ref(), buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
        }
        let w = self.writable()?;
        loop {
            let mut guard = ready!(w.poll_write_ready(cx))?;
            if let Ok(r) = guard.try_io(|fd| send(fd.get_ref(), buf)) {
                return Poll::Ready(r);
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = rustix::net::shutdown(self.fd.get_ref(), rustix::net::Shutdown::Write);
        Poll::Ready(r.map_err(io::Error::from))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixStream;

    /// The epoll event masks registered for `fd` in this process, read
    /// from the kernel (`/proc/self/fdinfo` of each epoll descriptor; the
    /// inode tells our socket from another test's with the same number).
    /// Lines read `tfd: N events: MASK data: D pos:0 ino:I sdev:S`.
    fn registered(fd: i32, socket: BorrowedFd<'_>) -> Vec<u32> {
        let ino = format!("ino:{:x}", rustix::fs::fstat(socket).unwrap().st_ino);
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc/self/fdinfo").unwrap().flatten() {
            let Ok(info) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            for l in info.lines() {
                let w: Vec<&str> = l.split_whitespace().collect();
                if w.len() > 3
                    && w[0] == "tfd:"
                    && w[1] == fd.to_string()
                    && w[2] == "events:"
                    && w.contains(&ino.as_str())
                {
                    out.push((u32::from_str_radix(w[3], 16).unwrap(), w[5].to_string()));
                }
            }
        }
        // mio's epoll descriptor has a duplicate: one entry per `data`.
        out.sort();
        out.dedup();
        out.into_iter().map(|(mask, _)| mask).collect()
    }

    const IN: u32 = 0x1;
    const OUT: u32 = 0x4;

    /// The socket is registered to read only; a write larger than the
    /// socket buffer registers a duplicate for writability, arrives whole
    /// and in order, and `quiet` removes that registration again.
    #[tokio::test]
    async fn read_only_registration_until_a_write_blocks() {
        let (ours, peer) = UnixStream::pair().unwrap();
        let (mut r, mut w) = from_tokio(ours).unwrap();
        let fd = w.as_fd().as_raw_fd();
        assert_eq!(registered(fd, r.as_fd()).len(), 1);
        assert_eq!(registered(fd, r.as_fd())[0] & (IN | OUT), IN, "read-only");

        w.write_all(b"small").await.unwrap();
        assert!(w.writable.is_none(), "a write that fits registers nothing");

        let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 253) as u8).collect();
        let (mut pr, mut pw) = peer.into_split();
        let n = data.len() + 5;
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; n];
            pr.read_exact(&mut got).await.unwrap();
            pw.write_all(b"done").await.unwrap();
            got
        });
        w.write_all(&data).await.unwrap();
        let dup = w
            .writable
            .as_ref()
            .expect("a full buffer registers")
            .as_raw_fd();
        assert_eq!(registered(dup, r.as_fd())[0] & OUT, OUT);
        let got = reader.await.unwrap();
        assert!(got.starts_with(b"small") && got[5..] == data[..]);
        let mut done = [0u8; 4];
        r.read_exact(&mut done).await.unwrap();
        assert_eq!(&done, b"done");

        w.quiet();
        assert!(
            registered(dup, r.as_fd()).is_empty(),
            "quiet drops the registration"
        );
        assert_eq!(registered(fd, r.as_fd())[0] & (IN | OUT), IN);
    }

    /// A write blocked on a full buffer ends with an error when the peer
    /// goes away (no hang), as does a write to a closed peer; a read sees
    /// the end of the stream.
    #[tokio::test]
    async fn a_peer_that_goes_away_ends_blocked_writes_and_reads() {
        let (ours, peer) = UnixStream::pair().unwrap();
        let (mut r, mut w) = from_tokio(ours).unwrap();
        let big = vec![0u8; 16 << 20];
        let closer = tokio::spawn(async move {
            // The writer below blocks once the buffers are full; then the
            // peer closes without reading.
            peer.readable().await.unwrap();
            drop(peer);
        });
        let e = tokio::time::timeout(Duration::from_secs(10), w.write_all(&big))
            .await
            .expect("a blocked write ends when the peer closes")
            .unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{e}"
        );
        closer.await.unwrap();
        assert!(w.write_all(b"x").await.is_err());
        // The end of the stream, or a reset: the peer left data unread.
        let mut buf = [0u8; 8];
        let end = r.read(&mut buf).await;
        assert!(matches!(end, Ok(0)) || end.is_err(), "{end:?}");
    }
}
