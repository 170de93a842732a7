//! Minimal HTTP/1.1 client and a steady load driver for tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The task name a `shoal whoami` answer names (its `Name:` line).
pub fn whoami_name(answer: &str) -> Option<String> {
    answer
        .lines()
        .find_map(|l| l.strip_prefix("Name: "))
        .map(|n| n.trim().to_string())
}

/// The task names that answered `n` whoami requests to `addr` (failed requests left out).
pub fn whoami_names(addr: SocketAddr, n: usize) -> std::collections::HashSet<String> {
    (0..n)
        .filter_map(|_| http_get_at(addr, "/").ok())
        .filter_map(|b| whoami_name(&b))
        .collect()
}

/// `GET path` on 127.0.0.1:port with `Connection: close`; the whole response.
pub fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    http_get_at(SocketAddr::from(([127, 0, 0, 1], port)), path)
}

/// `GET path` on `addr` with `Connection: close`; the whole response.
pub fn http_get_at(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    http_get_host(addr, "test", path)
}

/// `GET path` on `addr` naming `host` in its `Host` header (what an L7 proxy routes by),
/// with `Connection: close`; the whole response, an error unless it is a 200.
pub fn http_get_host(addr: SocketAddr, host: &str, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    if !buf.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!(
            "bad response: {:?}",
            buf.lines().next()
        )));
    }
    Ok(buf)
}

/// One request on a kept-alive connection (opened if needed). The server's
/// `Connection: close` ends the connection after its answer, as HTTP/1.1 clients do.
pub(crate) fn keep_alive_get(
    conn: &mut Option<BufReader<TcpStream>>,
    addr: SocketAddr,
) -> std::io::Result<()> {
    if conn.is_none() {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.set_nodelay(true)?;
        *conn = Some(BufReader::new(s));
    }
    let Some(reader) = conn.as_mut() else {
        return Err(std::io::Error::other("no connection"));
    };
    let result = (|| {
        reader
            .get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")?;
        let mut status = String::new();
        reader.read_line(&mut status)?;
        if !status.starts_with("HTTP/1.1 200") {
            return Err(std::io::Error::other(format!("bad response: {status:?}")));
        }
        let (mut length, mut close) = (0usize, false);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Err(std::io::Error::other("connection closed in the headers"));
            }
            let line = line.trim_end().to_ascii_lowercase();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("content-length:") {
                length = v.trim().parse().map_err(std::io::Error::other)?;
            }
            if line == "connection: close" {
                close = true;
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        Ok(close)
    })();
    match result {
        Ok(close) => {
            if close {
                *conn = None;
            }
            Ok(())
        }
        Err(e) => {
            *conn = None;
            Err(e)
        }
    }
}

/// How a [`Load`] client talks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// A new connection per request (`Connection: close`).
    PerRequest,
    /// One connection reused for request after request (HTTP/1.1 keep-alive).
    KeepAlive,
}

/// Requests sent and failed by a [`Load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadReport {
    pub sent: u64,
    pub failed: u64,
}

/// A client thread sending connection-per-request traffic until stopped.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    /// When each failed request started.
    failed_at: Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
    thread: Option<JoinHandle<()>>,
}

impl Load {
    pub fn start(port: u16) -> Load {
        Load::start_at(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// Connection-per-request traffic to `addr` until [`Load::finish`].
    pub fn start_at(addr: SocketAddr) -> Load {
        Load::start_kind(addr, ClientKind::PerRequest)
    }

    /// Traffic of the given kind to `addr` until [`Load::finish`].
    pub fn start_kind(addr: SocketAddr, kind: ClientKind) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failed_at = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, n, at) = (stop.clone(), sent.clone(), failed_at.clone());
        let thread = std::thread::spawn(move || {
            let mut conn = None;
            while !s.load(Ordering::Relaxed) {
                n.fetch_add(1, Ordering::Relaxed);
                let started = std::time::Instant::now();
                let result = match kind {
                    ClientKind::PerRequest => http_get_at(addr, "/").map(|_| ()),
                    ClientKind::KeepAlive => keep_alive_get(&mut conn, addr),
                };
                if let Err(e) = result {
                    eprintln!("load: request failed: {e}");
                    at.lock().unwrap_or_else(|p| p.into_inner()).push(started);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Load {
            stop,
            sent,
            failed_at,
            thread: Some(thread),
        }
    }

    /// When the failed requests so far started.
    fn failures(&self) -> std::sync::MutexGuard<'_, Vec<std::time::Instant>> {
        self.failed_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Requests sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// How many of the failed requests so far started at or after `t`.
    pub fn failed_since(&self, t: std::time::Instant) -> usize {
        self.failures().iter().filter(|s| **s >= t).count()
    }

    pub fn finish(mut self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        LoadReport {
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failures().len() as u64,
        }
    }
}
