//! splice(2) between unix sockets through a pipe of 1 MiB.

use std::io;
use std::os::fd::AsFd;

use super::super::sock::{ReadHalf, WriteHalf};
use rustix::pipe::{PipeFlags, SpliceFlags};

pub const AVAILABLE: bool = true;

const PIPE: usize = 1 << 20;

/// Move `limit` bytes (None: until the end of the stream) from `from` to
/// `to`; returns how many moved. A stream that ends before `limit` is an
/// error (`UnexpectedEof`).
pub async fn splice(from: &ReadHalf, to: &mut WriteHalf, limit: Option<u64>) -> io::Result<u64> {
    let (pr, pw) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
    // Fails harmlessly above /proc/sys/fs/pipe-max-size: the default 64 KiB.
    let _ = rustix::pipe::fcntl_setpipe_size(&pw, PIPE);
    let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    let (mut taken, mut in_pipe) = (0u64, 0usize);
    loop {
        if in_pipe == 0 {
            let want = match limit {
                Some(l) if l == taken => return Ok(taken),
                Some(l) => (l - taken).min(PIPE as u64) as usize,
                None => PIPE,
            };
            let k = from
                .read_io(|| {
                    rustix::pipe::splice(from.as_fd(), None, &pw, None, want, flags)
                        .map_err(io::Error::from)
                })
                .await?;
            if k == 0 {
                return match limit {
                    Some(_) => Err(io::ErrorKind::UnexpectedEof.into()),
                    None => Ok(taken),
                };
            }
            taken += k as u64;
            in_pipe = k;
        }
        let k = to
            .write_io(|fd| {
                rustix::pipe::splice(&pr, None, fd, None, in_pipe, flags).map_err(io::Error::from)
            })
            .await?;
        in_pipe -= k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::sock::from_tokio;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixStream;

    /// 5 MiB of a pattern through splice, exactly `limit` of it, in order;
    /// then to the end of the stream; a short stream is an error.
    #[tokio::test]
    async fn moves_exactly_what_it_is_told_in_order() {
        let data: Vec<u8> = (0..5u32 << 20).map(|i| (i % 251) as u8).collect();
        let (mut src, from) = UnixStream::pair().unwrap();
        let (to, mut dst) = UnixStream::pair().unwrap();
        let (from, _) = from_tokio(from).unwrap();
        let (_, mut to) = from_tokio(to).unwrap();
        let d = data.clone();
        let writer = tokio::spawn(async move {
            src.write_all(&d).await.unwrap();
            src.write_all(b"tail").await.unwrap();
            drop(src);
        });
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            dst.read_to_end(&mut out).await.unwrap();
            out
        });
        let n = data.len() as u64;
        assert_eq!(splice(&from, &mut to, Some(n)).await.unwrap(), n);
        assert_eq!(splice(&from, &mut to, None).await.unwrap(), 4, "to the end");
        drop(to);
        writer.await.unwrap();
        let out = reader.await.unwrap();
        assert_eq!(out.len(), data.len() + 4);
        assert!(out[..data.len()] == data[..] && out.ends_with(b"tail"));

        let (mut src, from) = UnixStream::pair().unwrap();
        let (to, _dst) = UnixStream::pair().unwrap();
        let (from, _) = from_tokio(from).unwrap();
        let (_, mut to) = from_tokio(to).unwrap();
        src.write_all(b"short").await.unwrap();
        drop(src);
        let e = splice(&from, &mut to, Some(10)).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
