//! The health probe: `GET /_ping` on the engine's unix socket, bounded by
//! a timeout. Three API calls don't justify an HTTP client: this speaks
//! just enough HTTP/1.1 to read a status line.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// What a probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ping {
    /// `200 OK`: the engine serves the Docker API.
    Ok,
    /// Nothing at the path.
    NoSocket,
    /// A socket file, but nobody accepts (a stale socket).
    Refused,
    /// Connected, but no full answer within the timeout (a hung engine).
    Timeout,
    /// Answered, but not 200, or not HTTP.
    Bad(String),
    /// dockhand could not even try: out of file descriptors (EMFILE,
    /// ENFILE). dockhand's trouble, never the engine's.
    NoFds(String),
}

impl Ping {
    pub fn is_ok(&self) -> bool {
        *self == Ping::Ok
    }
}

impl std::fmt::Display for Ping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ping::Ok => write!(f, "answers /_ping"),
            Ping::NoSocket => write!(f, "no socket"),
            Ping::Refused => write!(f, "socket refuses connections"),
            Ping::Timeout => write!(f, "no answer to /_ping in time"),
            Ping::Bad(s) => write!(f, "bad answer to /_ping: {s}"),
            Ping::NoFds(s) => write!(f, "dockhand could not probe: out of file descriptors ({s})"),
        }
    }
}

/// Ping the Docker API at `socket`, giving up after `timeout`.
pub async fn ping(socket: &Path, timeout: Duration) -> Ping {
    match tokio::time::timeout(timeout, ping_inner(socket)).await {
        Ok(p) => p,
        Err(_) => Ping::Timeout,
    }
}

async fn ping_inner(socket: &Path) -> Ping {
    let mut s = match UnixStream::connect(socket).await {
        Ok(s) => s,
        Err(e) if out_of_fds(&e) => return Ping::NoFds(e.to_string()),
        Err(e) => {
            return match e.kind() {
                std::io::ErrorKind::NotFound => Ping::NoSocket,
                std::io::ErrorKind::ConnectionRefused => Ping::Refused,
                _ => Ping::Bad(e.to_string()),
            };
        }
    };
    let req =
        b"GET /_ping HTTP/1.1\r\nHost: docker\r\nUser-Agent: dockhand\r\nConnection: close\r\n\r\n";
    if let Err(e) = s.write_all(req).await {
        return Ping::Bad(e.to_string());
    }
    // The status line is all we need: "HTTP/1.1 200 OK\r\n".
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < buf.len() {
        match s.read(&mut buf[n..]).await {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                if buf[..n].contains(&b'\n') {
                    break;
                }
            }
            Err(e) => return Ping::Bad(e.to_string()),
        }
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let line = head.lines().next().unwrap_or("").trim();
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(v), Some("200")) if v.starts_with("HTTP/") => Ping::Ok,
        _ if line.is_empty() => Ping::Bad("connection closed without an answer".into()),
        _ => Ping::Bad(line.to_string()),
    }
}

/// The process (EMFILE) or the system (ENFILE) has no descriptor left.
pub fn out_of_fds(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Blocking wrapper for commands that don't run a runtime of their own.
pub fn ping_blocking(socket: &Path, timeout: Duration) -> Ping {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(ping(socket, timeout)),
        Err(e) => Ping::Bad(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    async fn serve_once(answer: &'static [u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let l = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut c, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 256];
            let _ = c.read(&mut buf).await;
            if !answer.is_empty() {
                let _ = c.write_all(answer).await;
            } else {
                // Hang: hold the connection open.
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        });
        (dir, path)
    }

    #[tokio::test]
    async fn ok_on_200() {
        let (_d, p) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK").await;
        assert_eq!(ping(&p, Duration::from_secs(2)).await, Ping::Ok);
    }

    #[tokio::test]
    async fn bad_on_500() {
        let (_d, p) = serve_once(b"HTTP/1.1 500 Internal Server Error\r\n\r\n").await;
        assert!(matches!(
            ping(&p, Duration::from_secs(2)).await,
            Ping::Bad(_)
        ));
    }

    #[tokio::test]
    async fn timeout_on_hang() {
        let (_d, p) = serve_once(b"").await;
        assert_eq!(ping(&p, Duration::from_millis(100)).await, Ping::Timeout);
    }

    #[tokio::test]
    async fn missing_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("none.sock");
        assert_eq!(ping(&p, Duration::from_secs(1)).await, Ping::NoSocket);
        drop(std::os::unix::net::UnixListener::bind(&p).unwrap());
        assert_eq!(ping(&p, Duration::from_secs(1)).await, Ping::Refused);
    }

    /// Out of descriptors: `NoFds`, not a failure of the engine (issue 15).
    #[test]
    fn out_of_descriptors_is_our_own_trouble() {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.sock");
        let _l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        // In a child process: the limit is per process and tests share one.
        // SAFETY: the child only sets a limit, opens files and runs its
        // own runtime, then _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let old = getrlimit(Resource::Nofile);
            let low = Rlimit {
                current: Some(64),
                maximum: old.maximum,
            };
            let ok = setrlimit(Resource::Nofile, low).is_ok() && {
                let mut hold = Vec::new();
                while let Ok(f) = std::fs::File::open("/dev/null") {
                    hold.push(f);
                }
                matches!(
                    rt.block_on(ping(&p, Duration::from_secs(2))),
                    Ping::NoFds(_)
                )
            };
            // SAFETY: ends the forked child without running destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
