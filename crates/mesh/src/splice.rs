//! Proxying one connection both ways: small messages through a user-space buffer, bulk
//! transfers with `splice(2)` (socket → pipe → socket, no copies through user space).
//!
//! Each direction starts copying: request/response traffic is small, and a `recv` that
//! returns less than the buffer means the socket is drained (the rule nginx uses with
//! edge-triggered epoll), so readiness is cleared without a third, `EAGAIN` call: two
//! system calls per message. A read that fills the whole buffer marks a bulk flow, and the
//! direction switches to splice for good. (A short `splice` does not prove the socket
//! drained: the pipe can run out of slots first, so splice keeps the `EAGAIN` read.)
//!
//! One future drives both directions. Each direction fills its pipe only when the pipe is
//! empty and drains it completely before reading again, so `EAGAIN` from a splice into the
//! pipe always means "the socket has nothing" and from a splice out of it "the socket is
//! full", which keeps tokio's readiness tracking exact. End of stream on one side becomes
//! `shutdown(Write)` on the other (half-close); an error on either side ends both.
//!
//! Where the kernel refuses to splice a socket (`EINVAL`, `ENOSYS`), the direction falls back
//! to `tokio::io::copy` (its pipe is empty at that point, so nothing is lost) and later
//! connections use `tokio::io::copy_bidirectional` from the start.
//!
//! `splice` has no `MSG_NOSIGNAL`: writing to a socket whose peer is gone raises `SIGPIPE`.
//! Rust programs ignore `SIGPIPE` from the start, so it shows up here as `EPIPE`; the daemon
//! must not restore the signal's default action.

use crate::pipe::{Pipe, PipePool};
use nix::errno::Errno;
use nix::sys::socket::MsgFlags;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

/// Set once a splice was refused with `EINVAL`/`ENOSYS`; from then on every connection copies.
static SPLICE_UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// Proxies between `client` and `upstream` until both directions have ended.
pub(crate) async fn proxy(
    mut client: TcpStream,
    mut upstream: TcpStream,
    pipes: &PipePool,
) -> io::Result<()> {
    if SPLICE_UNSUPPORTED.load(Ordering::Relaxed) {
        return copy(&mut client, &mut upstream).await;
    }
    let (mut up, mut down) = match (pipes.take(), pipes.take()) {
        (Ok(up), Ok(down)) => (up, down),
        // Out of file descriptors for pipes: copying needs none.
        (up, down) => {
            for pipe in [up, down].into_iter().flatten() {
                pipes.give(pipe);
            }
            return copy(&mut client, &mut upstream).await;
        }
    };
    let result = {
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        let one_done = AtomicBool::new(false);
        tokio::try_join!(
            pump(client_read, upstream_write, &mut up, &one_done),
            pump(upstream_read, client_write, &mut down, &one_done),
        )
    };
    pipes.give(up);
    pipes.give(down);
    result.map(|_| ())
}

async fn copy(client: &mut TcpStream, upstream: &mut TcpStream) -> io::Result<()> {
    tokio::io::copy_bidirectional(client, upstream)
        .await
        .map(|_| ())
}

/// First size of the copy buffer (request/response messages are small); a read that fills
/// it grows it to [`COPY_BUFFER_MAX`], and a read that fills that switches to splice.
const COPY_BUFFER: usize = 4 * 1024;
const COPY_BUFFER_MAX: usize = 16 * 1024;

/// End of stream on one direction: half-close the other side, unless the other direction
/// already ended (then both sockets close right after, which sends the FIN anyway).
async fn finish(to: &mut WriteHalf<'_>, one_done: &AtomicBool) -> io::Result<()> {
    if one_done.swap(true, Ordering::AcqRel) {
        return Ok(());
    }
    to.shutdown().await
}

/// One direction: `from` → `to` (copy while messages are small, then splice), then
/// `shutdown(Write)` on `to` at end of stream.
async fn pump(
    from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    pipe: &mut Pipe,
    one_done: &AtomicBool,
) -> io::Result<()> {
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let src: &TcpStream = from.as_ref();
        let n = loop {
            src.readable().await?;
            let mut got = 0;
            let read = src.try_io(Interest::READABLE, || {
                let n = nix::sys::socket::recv(src.as_raw_fd(), &mut buf, MsgFlags::empty())
                    .map_err(io::Error::from)?;
                got = n;
                if n > 0 && n < buf.len() {
                    // Short read: the socket is drained; report "would block" so tokio clears
                    // its readiness (it keeps it if an event arrived meanwhile).
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            });
            match read {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => break got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return finish(&mut to, one_done).await;
        }
        to.write_all(&buf[..n]).await?;
        if n == buf.len() {
            if buf.len() < COPY_BUFFER_MAX {
                buf.resize(COPY_BUFFER_MAX, 0);
            } else {
                drop(buf);
                return splice_pump(from, to, pipe, one_done).await;
            }
        }
    }
}

/// One direction with splice: `from` → pipe → `to`, then `shutdown(Write)` on `to` at end
/// of stream.
async fn splice_pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    pipe: &mut Pipe,
    one_done: &AtomicBool,
) -> io::Result<()> {
    loop {
        let src: &TcpStream = from.as_ref();
        let dst: &TcpStream = to.as_ref();
        let n = loop {
            src.readable().await?;
            match src.try_io(Interest::READABLE, || pipe.fill_from(src)) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if refuses_splice(&e) => {
                    SPLICE_UNSUPPORTED.store(true, Ordering::Relaxed);
                    tracing::warn!(error = %e, "splice not supported here; copying through user space");
                    tokio::io::copy(&mut from, &mut to).await?;
                    return finish(&mut to, one_done).await;
                }
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return finish(&mut to, one_done).await;
        }
        while pipe.buffered() > 0 {
            dst.writable().await?;
            match dst.try_io(Interest::WRITABLE, || pipe.drain_into(dst)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn refuses_splice(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EINVAL | Errno::ENOSYS)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;
    use tokio::time::{timeout, Duration};

    /// Two connected sockets over loopback.
    async fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (a.unwrap(), b.unwrap().0)
    }

    fn data(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add((i >> 9) as u8) ^ seed)
            .collect()
    }

    /// Sends `up` from the client and `down` from the server at the same time, each side
    /// half-closing after its last byte, and returns what each side received.
    async fn exchange(
        client: TcpStream,
        server: TcpStream,
        up: &[u8],
        down: &[u8],
    ) -> (Vec<u8>, Vec<u8>) {
        async fn side(mut s: TcpStream, send: &[u8]) -> Vec<u8> {
            let (mut r, mut w) = s.split();
            let mut got = Vec::new();
            let send = async {
                w.write_all(send).await.unwrap();
                w.shutdown().await.unwrap();
            };
            let recv = r.read_to_end(&mut got);
            let ((), n) = tokio::join!(send, recv);
            n.unwrap();
            got
        }
        let (at_client, at_server) = tokio::join!(side(client, up), side(server, down));
        (at_server, at_client)
    }

    async fn proxied_exchange(force_copy: bool) {
        let (client, proxy_front) = socket_pair().await;
        let (proxy_back, server) = socket_pair().await;
        let pool = PipePool::default();
        let up = data(1, 3 << 20);
        let down = data(2, 2 << 20);
        let proxying = async {
            if force_copy {
                let (mut a, mut b) = (proxy_front, proxy_back);
                copy(&mut a, &mut b).await
            } else {
                proxy(proxy_front, proxy_back, &pool).await
            }
        };
        let (res, (at_server, at_client)) = timeout(Duration::from_secs(30), async {
            tokio::join!(proxying, exchange(client, server, &up, &down))
        })
        .await
        .unwrap();
        res.unwrap();
        assert!(at_server == up, "upstream bytes differ");
        assert!(at_client == down, "downstream bytes differ");
    }

    #[tokio::test]
    async fn splice_moves_both_ways_with_half_close() {
        proxied_exchange(false).await;
        // The bytes really went through splice(2), not the fallback.
        assert!(!SPLICE_UNSUPPORTED.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn copy_fallback_moves_both_ways_with_half_close() {
        proxied_exchange(true).await;
    }

    #[test]
    fn einval_and_enosys_mean_no_splice() {
        assert!(refuses_splice(&io::Error::from(Errno::EINVAL)));
        assert!(refuses_splice(&io::Error::from(Errno::ENOSYS)));
        assert!(!refuses_splice(&io::Error::from(Errno::EPIPE)));
    }
}
