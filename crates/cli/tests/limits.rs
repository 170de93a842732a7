//! File-descriptor exhaustion: floods of idle connections on a published port and on the
//! control port, against a real daemon whose hard limit is 1,024 descriptors (so it cannot
//! raise its way out), with real task processes and the real CLI.

use shoal_testkit::{
    free_port, http_get, http_get_at, raise_fd_limit, run_within, wait_until, Daemon, Output,
};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The usual default soft limit, here the hard limit too.
const DAEMON_FDS: u64 = 1024;

/// Generous bound on waits for something that must happen, on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(60);

/// How long one CLI call may take during a flood: tens of milliseconds when nothing is
/// wrong; a daemon out of descriptors answers only once the control port's handshake
/// timeout (5 s) frees some, if at all.
const CLI_LIMIT: Duration = Duration::from_secs(5);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

/// A single-node cluster whose daemon may hold at most `DAEMON_FDS` descriptors.
fn cluster() -> Daemon {
    raise_fd_limit(4 * DAEMON_FDS);
    let d = Daemon::start_with_fd_limit(bin(), DAEMON_FDS);
    d.init();
    d
}

fn create_whoami(d: &Daemon, name: &str, port: u16) {
    let publish = format!("{port}:80");
    let out = d.cli(&[
        "service",
        "create",
        "--name",
        name,
        "--publish",
        &publish,
        "--",
        "shoal",
        "whoami",
    ]);
    assert!(out.ok(), "create {name} failed: {out:?}\n{}", d.log());
}

/// `d.cli(args)` that must answer within [`CLI_LIMIT`] and succeed.
fn cli_answers(d: &Daemon, args: &[&str], when: &str) -> Output {
    match d.cli_within(args, CLI_LIMIT) {
        Some(out) if out.ok() => out,
        Some(out) => panic!("shoal {args:?} {when} failed: {out:?}\n{}", d.log()),
        None => panic!(
            "shoal {args:?} {when}: no answer within {CLI_LIMIT:?}\n{}",
            d.log()
        ),
    }
}

/// A remote CLI call with the client certificate in `certs`, within [`CLI_LIMIT`].
fn remote_cli_answers(d: &Daemon, certs: &Path, addr: SocketAddr, args: &[&str], when: &str) {
    let mut cmd = Command::new(bin());
    cmd.args(["--host", &format!("tcp://{addr}"), "--tls-dir"])
        .arg(certs)
        .args(args);
    match run_within(&mut cmd, CLI_LIMIT) {
        Some(out) if out.ok() => {}
        Some(out) => panic!("remote shoal {args:?} {when} failed: {out:?}\n{}", d.log()),
        None => panic!(
            "remote shoal {args:?} {when}: no answer within {CLI_LIMIT:?}\n{}",
            d.log()
        ),
    }
}

/// `n` TCP connections to `addr` that send `request` (if any) and never read.
fn flood(addr: SocketAddr, n: usize, request: &[u8]) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s =
                TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_or_else(|e| {
                    panic!("flood connection {i} to {addr}: {e} (is net.core.somaxconn low?)")
                });
            if !request.is_empty() {
                s.write_all(request).expect("flood request");
            }
            s
        })
        .collect()
}

/// True once the peer closed `s` (end of stream or reset); false while it is open.
/// `s` must be non-blocking.
fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// Source ports of the flood from another loopback address: below both the kernel's
/// ephemeral range and the ports the cluster assigns (30000-32767), and above the ports
/// tests pick to publish (`free_port`), so that thousands of them in use (and the one
/// below, for the handshake) collide with neither.
const FLOOD_SOURCE_PORTS: std::ops::Range<u16> = 20_000..30_000;
const _: () = assert!(shoal_testkit::TEST_PORTS.end < FLOOD_SOURCE_PORTS.start - 1);

/// A connection to `addr` from `from`, given up after `limit`.
async fn connect_from(
    from: SocketAddr,
    addr: SocketAddr,
    limit: Duration,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(from)?;
    tokio::time::timeout(limit, socket.connect(addr))
        .await
        .map_err(|_| std::io::Error::from(ErrorKind::TimedOut))?
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Keeps `n` connections from `from` to `addr` open that never send a byte, opening new
/// ones (many at once, as an attacker would) as the daemon closes old ones, until stopped.
struct Flood {
    stop: Arc<AtomicBool>,
    /// Connections opened so far.
    opened: Arc<AtomicUsize>,
    thread: Option<JoinHandle<Vec<TcpStream>>>,
}

impl Flood {
    /// New connections tried per round at most (a round every 50 ms).
    const PER_ROUND: usize = 200;

    fn start(from: Ipv4Addr, addr: SocketAddr, n: usize) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::spawn({
            let (stop, opened) = (Arc::clone(&stop), Arc::clone(&opened));
            move || runtime().block_on(Flood::run(from, addr, n, stop, opened))
        });
        Flood {
            stop,
            opened,
            thread: Some(thread),
        }
    }

    /// Connects in the background and never waits for a connect to finish, so a full
    /// listen queue does not slow the flood down.
    async fn run(
        from: Ipv4Addr,
        addr: SocketAddr,
        n: usize,
        stop: Arc<AtomicBool>,
        opened: Arc<AtomicUsize>,
    ) -> Vec<TcpStream> {
        let mut open: Vec<TcpStream> = Vec::new();
        let mut connecting = tokio::task::JoinSet::new();
        let mut ports = FLOOD_SOURCE_PORTS.cycle();
        while !stop.load(Ordering::Relaxed) {
            open.retain_mut(|s| !closed(s));
            while let Some(done) = connecting.try_join_next() {
                if let Ok(Ok(s)) = done {
                    if let Ok(s) = tokio::net::TcpStream::into_std(s) {
                        open.push(s);
                        opened.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            let missing = n.saturating_sub(open.len() + connecting.len());
            for _ in 0..missing.min(Flood::PER_ROUND) {
                let source = SocketAddr::from((from, ports.next().unwrap_or_default()));
                connecting.spawn(connect_from(source, addr, Duration::from_secs(3)));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        connecting.abort_all();
        open
    }

    fn opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }

    /// Stops opening connections; the ones still open.
    fn stop(mut self) -> Vec<TcpStream> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether a TLS handshake with the control port at `addr`, from address `from` and
/// without a client certificate (as a joining node's first contact), succeeds.
fn handshake_from(from: Ipv4Addr, addr: SocketAddr, certs: &Path) -> bool {
    let ca = std::fs::read_to_string(certs.join("ca.pem")).expect("ca.pem");
    let cfg = shoal_rpc::tls::client_config(&ca, None, &[b"http/1.1"]).expect("tls config");
    let name = rustls::pki_types::ServerName::try_from(shoal_rpc::MANAGER_SERVER_NAME)
        .expect("server name");
    runtime().block_on(async {
        let source = SocketAddr::from((from, FLOOD_SOURCE_PORTS.start - 1));
        let Ok(tcp) = connect_from(source, addr, Duration::from_secs(10)).await else {
            return false;
        };
        let handshake = tokio_rustls::TlsConnector::from(cfg).connect(name, tcp);
        matches!(
            tokio::time::timeout(Duration::from_secs(10), handshake).await,
            Ok(Ok(_))
        )
    })
}

#[test]
fn published_port_flood_keeps_api_and_other_ports_answering() {
    let d = cluster();
    let flooded = free_port();
    let other = std::iter::repeat_with(free_port)
        .find(|&p| p != flooded)
        .unwrap_or_default();
    create_whoami(&d, "flooded", flooded);
    create_whoami(&d, "other", other);
    let target = SocketAddr::from(([127, 0, 0, 1], flooded));

    // 200 clients that ask for 10 MB and never read it, then 1,800 idle ones.
    let mut open = flood(
        target,
        200,
        b"GET /data?bytes=10000000 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    open.extend(flood(target, 1800, b""));

    let ls = cli_answers(&d, &["service", "ls"], "during the flood");
    assert!(
        ls.stdout.contains("flooded") && ls.stdout.contains("other"),
        "{}",
        ls.stdout
    );
    let health = http_get_at(
        SocketAddr::from(([127, 0, 0, 1], d.health_port)),
        "/healthz",
    );
    assert!(
        health.as_ref().is_ok_and(|h| h.contains("\"ready\":true")),
        "/healthz during the flood: {health:?}"
    );
    for _ in 0..20 {
        let answer = http_get(other, "/");
        assert!(answer.is_ok(), "the other published port: {answer:?}");
    }
    // Task start-up (a log file, a process) still has descriptors.
    let scale = d.cli_within(&["service", "scale", "other=2"], DEADLINE);
    assert!(
        scale.as_ref().is_some_and(Output::ok),
        "scale during the flood: {scale:?}\n{}",
        d.log()
    );
    assert!(
        wait_until(DEADLINE, || d.running_tasks("other").len() == 2),
        "the new task did not reach running\n{}",
        d.log()
    );
    assert!(
        d.log().contains("published port at its connection cap"),
        "the cap was not reported\n{}",
        d.log()
    );

    // The flood ends: the flooded port serves again.
    drop(open);
    assert!(
        wait_until(DEADLINE, || http_get(flooded, "/").is_ok()),
        "the flooded port did not recover\n{}",
        d.log()
    );
}

#[test]
fn control_port_handshake_flood_keeps_api_answering() {
    let d = cluster();
    let control: SocketAddr = d.control_addr().parse().expect("control address");
    let certs = d.dir.path().join("client");
    let out = d.cli(&["client-cert", "--out", certs.to_str().unwrap_or_default()]);
    assert!(out.ok(), "client-cert: {out:?}");

    // Connections that never send a TLS hello, from another loopback address, kept up as
    // the daemon closes them: more than the daemon's descriptors in handshakes, and a full
    // listen queue behind them.
    let flooder = Ipv4Addr::new(127, 0, 0, 2);
    let flood = Flood::start(flooder, control, 2200);
    assert!(
        wait_until(DEADLINE, || flood.opened() >= 1100),
        "the flood did not get going"
    );

    let during = "during the flood";
    cli_answers(&d, &["service", "ls"], during);
    remote_cli_answers(&d, &certs, control, &["service", "ls"], during);
    cli_answers(&d, &["service", "ls"], during);

    // Once no new ones come, every flood connection is closed by the daemon: at once past
    // the per-address cap, by the 5 s handshake timeout otherwise.
    let mut open = flood.stop();
    let ended = wait_until(DEADLINE, || {
        open.retain_mut(|s| !closed(s));
        open.is_empty()
    });
    assert!(ended, "{} flood connections still open", open.len());
    assert!(
        d.log()
            .contains("too many connections without a client certificate"),
        "the cap was not reported\n{}",
        d.log()
    );

    // After the flood the control port answers, from the flooder's address too.
    remote_cli_answers(&d, &certs, control, &["service", "ls"], "after the flood");
    assert!(
        handshake_from(flooder, control, &certs),
        "no handshake from the flooder's address after the flood\n{}",
        d.log()
    );
}
