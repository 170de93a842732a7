//! Proxying one connection both ways: small messages through a user-space buffer, bulk
//! transfers with `splice(2)` (socket → pipe → socket, no copies through user space).
//!
//! Each direction starts copying: request/response traffic is small, and a `recv` that
//! returns less than the buffer means the socket is drained (the rule nginx uses with
//! edge-triggered epoll), so readiness is cleared without a third, `EAGAIN` call: two
//! system calls per message. A read that fills the whole buffer marks a bulk flow, and the
//! direction switches to splice for good. (A short `splice` does not prove the socket
//! drained: the pipe can run out of slots first, so splice keeps the `EAGAIN` read.)
//! A direction takes its pipe from the pool only then, and holds a copy buffer only while
//! bytes move, so an idle or request/response connection holds neither pipe descriptors
//! nor buffers.
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

/// Set once a splice was refused with `EINVAL`/`ENOSYS`; from then on every connection copies.
static SPLICE_UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// Proxies between `client` and `upstream` until both directions have ended, or — with an
/// `idle` timeout — until neither direction has moved a byte for that long: then both
/// sockets close (each peer sees the connection end, never a silent black hole) and the
/// result is a `TimedOut` error.
pub(crate) async fn proxy(
    mut client: TcpStream,
    mut upstream: TcpStream,
    pipes: &PipePool,
    idle: Option<Duration>,
) -> io::Result<()> {
    let Some(idle) = idle else {
        return proxy_to_the_end(&mut client, &mut upstream, pipes, None).await;
    };
    let activity = Activity::new();
    let result = tokio::select! {
        r = proxy_to_the_end(&mut client, &mut upstream, pipes, Some(&activity)) => r,
        () = activity.quiet(idle) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no traffic for {}", shoal_api::duration::format(idle)),
        )),
    };
    if result.is_err() {
        // Both peers get a FIN now (an RST where unread bytes remain) rather than waiting
        // on the drop.
        for s in [&client, &upstream] {
            let _ = nix::sys::socket::shutdown(s.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        }
    }
    result
}

/// When a connection last moved a byte either way, for its idle timeout.
#[derive(Debug)]
pub(crate) struct Activity {
    start: Instant,
    /// Milliseconds after `start`.
    last: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    pub(crate) fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    /// Returns once no byte has moved for `idle`.
    pub(crate) async fn quiet(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last.load(Ordering::Relaxed));
            let quiet = last.elapsed();
            if quiet >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    }
}

async fn proxy_to_the_end(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    pipes: &PipePool,
    activity: Option<&Activity>,
) -> io::Result<()> {
    if SPLICE_UNSUPPORTED.load(Ordering::Relaxed) {
        return copy(client, upstream, activity).await;
    }
    let (client_read, client_write) = client.split();
    let (upstream_read, upstream_write) = upstream.split();
    let one_done = AtomicBool::new(false);
    tokio::try_join!(
        pump(client_read, upstream_write, pipes, &one_done, activity),
        pump(upstream_read, client_write, pipes, &one_done, activity),
    )
    .map(|_| ())
}

/// A pipe taken from the pool for one direction, given back however the direction ends
/// (a pipe still holding bytes is closed instead).
struct Taken<'a> {
    pool: &'a PipePool,
    pipe: Option<Pipe>,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if let Some(pipe) = self.pipe.take() {
            self.pool.give(pipe);
        }
    }
}

/// Copies both ways through user space, half-closing each side at the other's end of
/// stream; with an idle timeout, every read touches `activity`.
async fn copy(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    activity: Option<&Activity>,
) -> io::Result<()> {
    let Some(activity) = activity else {
        return tokio::io::copy_bidirectional(client, upstream)
            .await
            .map(|_| ());
    };
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = upstream.split();
    let up = async {
        copy_touching(&mut cr, &mut uw, activity).await?;
        uw.shutdown().await
    };
    let down = async {
        copy_touching(&mut ur, &mut cw, activity).await?;
        cw.shutdown().await
    };
    tokio::try_join!(up, down).map(|_| ())
}

async fn copy_touching(
    from: &mut ReadHalf<'_>,
    to: &mut WriteHalf<'_>,
    activity: &Activity,
) -> io::Result<()> {
    let mut buf = vec![0u8; COPY_BUFFER_MAX];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        activity.touch();
        to.write_all(&buf[..n]).await?;
    }
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
    pipes: &PipePool,
    one_done: &AtomicBool,
    activity: Option<&Activity>,
) -> io::Result<()> {
    // No buffer while the direction is idle: one is taken when bytes arrive and given back
    // once a short read has drained the socket and its bytes are written (to a per-thread
    // spare list of at most 64), so an idle connection holds no user-space memory beyond
    // its task.
    let mut buf: Vec<u8> = Vec::new();
    let mut size = COPY_BUFFER;
    loop {
        let src: &TcpStream = from.as_ref();
        let n = loop {
            src.readable().await?;
            if buf.is_empty() {
                buf = take_buffer(size);
            }
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
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Woken with nothing to read (readiness may be spurious): the buffer
                    // goes back while the direction waits, so an idle connection holds none.
                    give_buffer(std::mem::take(&mut buf));
                    continue;
                }
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return finish(&mut to, one_done).await;
        }
        if let Some(a) = activity {
            a.touch();
        }
        to.write_all(&buf[..n]).await?;
        if n < buf.len() {
            give_buffer(std::mem::take(&mut buf));
            continue;
        }
        if size < COPY_BUFFER_MAX {
            size = COPY_BUFFER_MAX;
            buf.resize(size, 0);
            continue;
        }
        // A full buffer at the largest size: a bulk flow, spliced from now on if a pipe
        // can be had (out of file descriptors, it keeps copying).
        if let Ok(pipe) = pipes.take() {
            drop(buf);
            let mut taken = Taken {
                pool: pipes,
                pipe: None,
            };
            let pipe = taken.pipe.insert(pipe);
            // Boxed: only a bulk direction pays for the splice state; an idle connection
            // keeps its task small.
            return Box::pin(splice_pump(from, to, pipe, one_done, activity)).await;
        }
    }
}

thread_local! {
    /// Copy buffers of [`COPY_BUFFER`] bytes that no direction holds, kept per thread so
    /// that taking one for a message costs neither an allocation nor zeroing.
    static SPARE_BUFFERS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Spare buffers kept per thread.
const MAX_SPARE_BUFFERS: usize = 64;

fn take_buffer(size: usize) -> Vec<u8> {
    if size == COPY_BUFFER {
        if let Some(buf) = SPARE_BUFFERS.with(|b| b.borrow_mut().pop()) {
            return buf;
        }
    }
    vec![0u8; size]
}

fn give_buffer(buf: Vec<u8>) {
    if buf.len() == COPY_BUFFER {
        SPARE_BUFFERS.with(|b| {
            let mut spare = b.borrow_mut();
            if spare.len() < MAX_SPARE_BUFFERS {
                spare.push(buf);
            }
        });
    }
}

/// One direction with splice: `from` → pipe → `to`, then `shutdown(Write)` on `to` at end
/// of stream.
async fn splice_pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    pipe: &mut Pipe,
    one_done: &AtomicBool,
    activity: Option<&Activity>,
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
                    match activity {
                        Some(a) => copy_touching(&mut from, &mut to, a).await?,
                        None => {
                            tokio::io::copy(&mut from, &mut to).await?;
                        }
                    }
                    return finish(&mut to, one_done).await;
                }
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return finish(&mut to, one_done).await;
        }
        if let Some(a) = activity {
            a.touch();
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
                copy(&mut a, &mut b, None).await
            } else {
                proxy(proxy_front, proxy_back, &pool, None).await
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

    /// Reads until end of stream or an error; true if the peer closed (not timed out here).
    async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
        let mut buf = [0u8; 64];
        timeout(limit, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_on_both_sides() {
        let (mut client, proxy_front) = socket_pair().await;
        let (proxy_back, mut server) = socket_pair().await;
        let pool = PipePool::default();
        let idle = Duration::from_millis(300);
        let proxying =
            tokio::spawn(async move { proxy(proxy_front, proxy_back, &pool, Some(idle)).await });
        client.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 5];
        server.read_exact(&mut got).await.unwrap();
        let ended = timeout(Duration::from_secs(20), proxying).await.unwrap();
        let err = ended.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(closed_within(&mut client, Duration::from_secs(20)).await);
        assert!(closed_within(&mut server, Duration::from_secs(20)).await);
    }

    #[tokio::test]
    async fn traffic_keeps_a_connection_past_its_idle_timeout() {
        let (mut client, proxy_front) = socket_pair().await;
        let (proxy_back, mut server) = socket_pair().await;
        let pool = PipePool::default();
        let idle = Duration::from_secs(3);
        let proxying =
            tokio::spawn(async move { proxy(proxy_front, proxy_back, &pool, Some(idle)).await });
        // 4 s of traffic in both directions, never 3 s apart.
        let mut got = [0u8; 4];
        for _ in 0..8 {
            client.write_all(b"ping").await.unwrap();
            server.read_exact(&mut got).await.unwrap();
            tokio::time::sleep(Duration::from_millis(250)).await;
            server.write_all(b"pong").await.unwrap();
            client.read_exact(&mut got).await.unwrap();
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(!proxying.is_finished(), "closed while in use");
        drop(client);
        drop(server);
        let ended = timeout(Duration::from_secs(20), proxying).await.unwrap();
        let result = ended.unwrap();
        assert!(
            !matches!(&result, Err(e) if e.kind() == io::ErrorKind::TimedOut),
            "{result:?}"
        );
    }

    #[test]
    fn einval_and_enosys_mean_no_splice() {
        assert!(refuses_splice(&io::Error::from(Errno::EINVAL)));
        assert!(refuses_splice(&io::Error::from(Errno::ENOSYS)));
        assert!(!refuses_splice(&io::Error::from(Errno::EPIPE)));
    }
}
