//! Minimal HTTP/1.1 client and a steady load driver for tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// `GET path` on 127.0.0.1:port with `Connection: close`; the whole response.
pub fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    http_get_at(SocketAddr::from(([127, 0, 0, 1], port)), path)
}

/// `GET path` on `addr` with `Connection: close`; the whole response.
pub fn http_get_at(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
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
    failed: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Load {
    pub fn start(port: u16) -> Load {
        Load::start_at(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// Connection-per-request traffic to `addr` until [`Load::finish`].
    pub fn start_at(addr: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (s, n, f) = (stop.clone(), sent.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                n.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = http_get_at(addr, "/") {
                    eprintln!("load: request failed: {e}");
                    f.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Load {
            stop,
            sent,
            failed,
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        LoadReport {
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}
