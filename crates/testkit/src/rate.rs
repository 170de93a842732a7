//! A steady-rate HTTP load driver for benchmarks: requests go out on a fixed schedule
//! whatever the server does, and latency is measured from each request's *scheduled* send
//! time, so a stall shows up in the percentiles instead of silently lowering the rate
//! (no coordinated omission).
//!
//! ```text
//!   shared clock: tick i is due at start + i / rate
//!   worker 1 ──take tick──► sleep until due ──► GET / ──► record(now - due) ──take tick──► …
//!   worker 2 ──take tick──► …
//!   mark() ──► the window since the previous mark: sent, failed, latency histogram
//! ```
//!
//! A worker takes one tick at a time, so when every worker is stuck the schedule keeps
//! running and the next requests start late, counting the wait in their latency. Keep-alive
//! workers keep their connection across requests and reconnect after the server's
//! `Connection: close` (see [`crate::http`]).

use std::io::BufReader;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::http::{http_get_at, keep_alive_get, ClientKind};

/// Failed requests whose error a [`RateReport`] keeps (the count is always exact).
const KEPT_ERRORS: usize = 20;
/// Slowest requests a [`RateReport`] keeps with their time.
const KEPT_SLOWEST: usize = 10;

/// Sub-buckets per power of two: values are kept within 1/128 (< 0.8%).
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// Values below this have a bucket each.
const LINEAR: u64 = 2 * SUB;
/// Buckets for every u64: the linear ones, then `SUB` per further power of two.
const BUCKETS: usize = (LINEAR + (64 - SUB_BITS as u64 - 1) * SUB) as usize;

/// A latency histogram in microseconds with log-linear buckets (like HdrHistogram with
/// two significant digits): exact below 256 µs, within 0.8% above; the maximum is exact.
#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    max_us: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("p50", &self.p50())
            .field("p99", &self.p99())
            .field("max", &self.max())
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            max_us: 0,
        }
    }

    /// Record one latency (whole microseconds, saturating).
    pub fn record(&mut self, latency: Duration) {
        self.record_us(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Record one value in microseconds.
    pub fn record_us(&mut self, us: u64) {
        self.counts[bucket(us)] += 1;
        self.count += 1;
        self.max_us = self.max_us.max(us);
    }

    /// Add every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.count += other.count;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The smallest recorded value that at least `q` (0.0..=1.0) of the values do not
    /// exceed, as the highest value of its bucket (never above the maximum); zero when
    /// empty.
    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_micros(self.quantile_us(q))
    }

    fn quantile_us(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        // Rank of the value wanted, 1-based: ceil(q * count), at least 1.
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bucket_high(i).min(self.max_us);
            }
        }
        self.max_us
    }

    pub fn p50(&self) -> Duration {
        self.quantile(0.50)
    }

    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_us)
    }
}

/// Bucket of a value: itself below `LINEAR`, then the top `SUB_BITS + 1` bits.
fn bucket(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros(); // >= SUB_BITS + 1
    let shift = msb - SUB_BITS;
    let mantissa = v >> shift; // SUB..2*SUB
    (LINEAR + u64::from(shift - 1) * SUB + (mantissa - SUB)) as usize
}

/// Highest value that falls in bucket `i`.
fn bucket_high(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let shift = (i - LINEAR) / SUB + 1;
    let mantissa = (i - LINEAR) % SUB + SUB;
    // The last bucket's top is u64::MAX: compute without overflow.
    (mantissa << shift) + ((1u64 << shift) - 1)
}

/// One failed request: when (since the load started) and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// Scheduled send time of the request, since [`RateLoad::start`].
    pub at: Duration,
    /// The request used a connection opened for it (always true per request).
    pub new_connection: bool,
    pub error: String,
}

/// What a [`RateLoad`] saw over a window (or its whole run).
#[derive(Debug, Clone, Default)]
pub struct RateReport {
    /// Requests whose answer (or failure) arrived in the window.
    pub sent: u64,
    pub failed: u64,
    /// Connections opened (per request: one each; keep-alive: the first of every worker and
    /// one after every `Connection: close` or error).
    pub connections: u64,
    /// Latency of the successful requests, from their scheduled send time.
    pub latencies: Histogram,
    /// The part of `latencies` of requests that opened a connection (keep-alive: the first
    /// request of each connection; per request: all of them).
    pub new_connection_latencies: Histogram,
    /// The first failed requests of the window (at most 20).
    pub errors: Vec<RequestError>,
    /// How long the window lasted.
    pub elapsed: Duration,
    /// Requests that started more than 1 ms after their scheduled time (the workers were
    /// all busy or starved of CPU).
    pub late: u64,
    /// The slowest successful requests, slowest first (at most 10): (scheduled send time
    /// since [`RateLoad::start`], latency).
    pub slowest: Vec<(Duration, Duration)>,
}

impl RateReport {
    pub fn p50(&self) -> Duration {
        self.latencies.p50()
    }

    pub fn p99(&self) -> Duration {
        self.latencies.p99()
    }

    pub fn max(&self) -> Duration {
        self.latencies.max()
    }

    /// Requests per second over the window.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.sent as f64 / secs
        } else {
            0.0
        }
    }

    /// Add `other` (a later window) to this one.
    pub fn merge(&mut self, other: &RateReport) {
        self.sent += other.sent;
        self.failed += other.failed;
        self.connections += other.connections;
        self.latencies.merge(&other.latencies);
        self.new_connection_latencies
            .merge(&other.new_connection_latencies);
        let room = KEPT_ERRORS.saturating_sub(self.errors.len());
        self.errors.extend(other.errors.iter().take(room).cloned());
        self.elapsed += other.elapsed;
        self.late += other.late;
        for &(at, latency) in &other.slowest {
            self.keep_if_slow(at, latency);
        }
    }

    fn keep_if_slow(&mut self, at: Duration, latency: Duration) {
        if self.slowest.len() == KEPT_SLOWEST && self.slowest.last().is_some_and(|s| s.1 >= latency)
        {
            return;
        }
        let i = self.slowest.partition_point(|s| s.1 >= latency);
        self.slowest.insert(i, (at, latency));
        self.slowest.truncate(KEPT_SLOWEST);
    }

    fn record(&mut self, outcome: Outcome) {
        self.sent += 1;
        if outcome.new_connection {
            self.connections += 1;
        }
        if outcome.late {
            self.late += 1;
        }
        match outcome.result {
            Ok(latency) => {
                self.latencies.record(latency);
                if outcome.new_connection {
                    self.new_connection_latencies.record(latency);
                }
                self.keep_if_slow(outcome.at, latency);
            }
            Err(error) => {
                self.failed += 1;
                if self.errors.len() < KEPT_ERRORS {
                    self.errors.push(RequestError {
                        at: outcome.at,
                        new_connection: outcome.new_connection,
                        error,
                    });
                }
            }
        }
    }
}

/// One request's result, as a worker hands it over.
struct Outcome {
    at: Duration,
    new_connection: bool,
    late: bool,
    result: Result<Duration, String>,
}

/// The open window and everything before it.
#[derive(Debug)]
struct Windows {
    current: RateReport,
    window_start: Instant,
    total: RateReport,
}

#[derive(Debug)]
struct Shared {
    start: Instant,
    rate_per_sec: u32,
    next_tick: AtomicU64,
    stop: AtomicBool,
    windows: Mutex<Windows>,
}

impl Shared {
    fn windows(&self) -> MutexGuard<'_, Windows> {
        // A worker cannot panic while holding the lock; recover the data anyway.
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The due time of the next free tick, or `None` once stopped.
    fn take_tick(&self) -> Option<Instant> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        let i = self.next_tick.fetch_add(1, Ordering::Relaxed);
        // Tick i is due at i / rate seconds, computed exactly (no drift from rounding).
        let nanos = u128::from(i) * 1_000_000_000 / u128::from(self.rate_per_sec);
        Some(self.start + Duration::from_nanos(u64::try_from(nanos).ok()?))
    }
}

/// HTTP `GET /` at a fixed rate from a few worker threads until [`RateLoad::finish`].
#[derive(Debug)]
pub struct RateLoad {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl RateLoad {
    /// `rate_per_sec` requests a second of `kind` to `addr`, spread over `workers` threads
    /// (each with its own connection when keep-alive). Enough workers must be free to take
    /// each tick on time: about rate × latency, plus room for stalls.
    pub fn start(
        addr: SocketAddr,
        kind: ClientKind,
        rate_per_sec: u32,
        workers: usize,
    ) -> RateLoad {
        assert!(rate_per_sec > 0 && workers > 0, "a rate and a worker");
        let start = Instant::now();
        let shared = Arc::new(Shared {
            start,
            rate_per_sec,
            next_tick: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            windows: Mutex::new(Windows {
                current: RateReport::default(),
                window_start: start,
                total: RateReport::default(),
            }),
        });
        let threads = (0..workers)
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("rate-load-{i}"))
                    .spawn(move || worker(&shared, addr, kind))
                    .expect("spawn a load worker")
            })
            .collect();
        RateLoad { shared, threads }
    }

    /// The window since the previous mark (or the start), and a new window from now.
    pub fn mark(&self) -> RateReport {
        let now = Instant::now();
        let mut w = self.shared.windows();
        let mut window = std::mem::take(&mut w.current);
        window.elapsed = now - w.window_start;
        w.window_start = now;
        w.total.merge(&window);
        window
    }

    /// Time since the load started.
    pub fn elapsed(&self) -> Duration {
        self.shared.start.elapsed()
    }

    /// Stop the workers (each finishes its request in flight) and report the whole run,
    /// every window included.
    pub fn finish(mut self) -> RateReport {
        self.stop_workers();
        self.mark();
        let mut w = self.shared.windows();
        let mut total = std::mem::take(&mut w.total);
        total.elapsed = self.shared.start.elapsed();
        total
    }

    fn stop_workers(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for RateLoad {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

/// One worker: take a tick, wait for its time, send, record; until stopped.
fn worker(shared: &Shared, addr: SocketAddr, kind: ClientKind) {
    let mut conn: Option<BufReader<TcpStream>> = None;
    while let Some(due) = shared.take_tick() {
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let late = Instant::now().saturating_duration_since(due) > Duration::from_millis(1);
        let new_connection = kind == ClientKind::PerRequest || conn.is_none();
        let result = match kind {
            ClientKind::PerRequest => http_get_at(addr, "/").map(drop),
            ClientKind::KeepAlive => keep_alive_get(&mut conn, addr),
        };
        let outcome = Outcome {
            at: due - shared.start,
            new_connection,
            late,
            result: result.map(|()| due.elapsed()).map_err(|e| e.to_string()),
        };
        shared.windows().current.record(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, Write};
    use std::net::TcpListener;

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in 0..LINEAR {
            h.record_us(v);
        }
        assert_eq!(h.count(), LINEAR);
        assert_eq!(h.quantile(0.0), Duration::from_micros(0));
        assert_eq!(h.p50(), Duration::from_micros(127));
        assert_eq!(h.quantile(1.0), Duration::from_micros(255));
        assert_eq!(h.max(), Duration::from_micros(255));
    }

    #[test]
    fn every_value_lands_in_a_bucket_within_one_percent() {
        let mut values: Vec<u64> = (0..64).map(|s| 1u64 << s).collect();
        values.extend((0..64).map(|s| (1u64 << s).wrapping_sub(1)));
        values.extend([255, 256, 257, 1000, 4321, 99_999, 1_234_567, u64::MAX]);
        let mut v = 1u64;
        while v < u64::MAX / 3 {
            values.push(v);
            v = v * 3 + 1;
        }
        for v in values {
            let b = bucket(v);
            assert!(b < BUCKETS, "{v} -> bucket {b} of {BUCKETS}");
            let high = bucket_high(b);
            assert!(high >= v, "{v}: bucket top {high}");
            assert!(b == 0 || bucket_high(b - 1) < v, "{v}: previous bucket");
            assert!((high - v) as f64 <= v as f64 / 128.0, "{v}: {high} too far");
        }
        assert_eq!(bucket_high(BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut h = Histogram::new();
        for us in 1..=10_000 {
            h.record(Duration::from_micros(us));
        }
        let near = |got: Duration, want: u64| {
            let got = got.as_micros() as f64;
            assert!(
                got >= want as f64 && got <= want as f64 * 1.008,
                "{got} vs {want}"
            );
        };
        near(h.p50(), 5_000);
        near(h.p99(), 9_900);
        near(h.quantile(0.999), 9_990);
        assert_eq!(h.max(), Duration::from_micros(10_000));
        assert_eq!(h.quantile(1.0), h.max(), "never above the maximum");
    }

    #[test]
    fn one_slow_request_in_a_hundred_is_the_p99() {
        let mut h = Histogram::new();
        for _ in 0..99 {
            h.record(Duration::from_millis(1));
        }
        h.record(Duration::from_millis(500));
        // 1 ms, as the top of its bucket (1000..=1003 µs).
        assert_eq!(h.p99(), Duration::from_micros(1003));
        h.record(Duration::from_millis(500));
        assert!(h.p99() >= Duration::from_millis(496), "{:?}", h.p99());
        assert_eq!(h.max(), Duration::from_millis(500));
    }

    #[test]
    fn empty_histogram_reports_zero() {
        let h = Histogram::new();
        assert_eq!(
            (h.p50(), h.p99(), h.max()),
            (Duration::ZERO, Duration::ZERO, Duration::ZERO)
        );
    }

    #[test]
    fn merge_adds_counts_and_keeps_the_max() {
        let (mut a, mut b) = (Histogram::new(), Histogram::new());
        for us in 1..=50 {
            a.record_us(us);
        }
        for us in 51..=100 {
            b.record_us(us * 1000);
        }
        a.merge(&b);
        assert_eq!(a.count(), 100);
        assert_eq!(a.p50(), Duration::from_micros(50));
        assert_eq!(a.max(), Duration::from_millis(100));
        let mut whole = Histogram::new();
        (1..=50).for_each(|us| whole.record_us(us));
        (51..=100).for_each(|us| whole.record_us(us * 1000));
        assert_eq!(a, whole);
    }

    #[test]
    fn report_merge_keeps_twenty_errors() {
        let mut r = RateReport::default();
        for i in 0..30 {
            r.record(Outcome {
                at: Duration::from_millis(i),
                new_connection: true,
                late: false,
                result: Err(format!("e{i}")),
            });
        }
        let mut total = RateReport::default();
        total.merge(&r);
        total.merge(&r);
        assert_eq!((total.sent, total.failed, total.connections), (60, 60, 60));
        assert_eq!(total.errors.len(), KEPT_ERRORS);
        assert_eq!(total.errors[0].error, "e0");
    }

    #[test]
    fn report_keeps_the_ten_slowest_in_order() {
        let ms = Duration::from_millis;
        let (mut a, mut b) = (RateReport::default(), RateReport::default());
        for i in 0..31u64 {
            let r = if i % 2 == 0 { &mut a } else { &mut b };
            r.record(Outcome {
                at: ms(i),
                new_connection: false,
                late: false,
                result: Ok(ms((i * 7) % 31)),
            });
        }
        a.merge(&b);
        let latencies: Vec<u64> = a.slowest.iter().map(|s| s.1.as_millis() as u64).collect();
        assert_eq!(latencies, vec![30, 29, 28, 27, 26, 25, 24, 23, 22, 21]);
        assert!(a
            .slowest
            .iter()
            .all(|(at, l)| (at.as_millis() as u64 * 7) % 31 == l.as_millis() as u64));
    }

    /// A tiny HTTP/1.1 server: keep-alive, `Connection: close` on every `close_every`-th
    /// answer of a connection, and on every answer to a `Connection: close` request.
    fn server(close_every: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    for n in 1.. {
                        let mut client_close = false;
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line.eq_ignore_ascii_case("connection: close\r\n") {
                                client_close = true;
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let close = client_close || n % close_every == 0;
                        let header = if close { "Connection: close\r\n" } else { "" };
                        let reply =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n{header}\r\nok");
                        if reader.get_mut().write_all(reply.as_bytes()).is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn keeps_the_rate_and_reconnects_after_connection_close() {
        let addr = server(10);
        let load = RateLoad::start(addr, ClientKind::KeepAlive, 400, 2);
        std::thread::sleep(Duration::from_millis(500));
        let first = load.mark();
        std::thread::sleep(Duration::from_millis(500));
        let second = load.mark();
        let total = load.finish();
        for w in [&first, &second] {
            assert_eq!(w.failed, 0, "{w:?}");
            // 400 a second over the window's own length (the sleeps may overrun); wide
            // margins for a busy machine, where late requests catch up in the next window.
            let due = 400.0 * w.elapsed.as_secs_f64();
            let sent = w.sent as f64;
            assert!(sent >= 0.4 * due && sent <= 1.8 * due, "{due} due: {w:?}");
            assert!(w.latencies.count() == w.sent, "{w:?}");
            assert_eq!(w.new_connection_latencies.count(), w.connections, "{w:?}");
            // One new connection per 10 requests on each of the 2 connections.
            assert!(w.connections >= w.sent / 12, "{w:?}");
        }
        assert!(total.sent >= first.sent + second.sent, "{total:?}");
        assert_eq!(total.failed, 0);
    }

    #[test]
    fn per_request_opens_a_connection_each() {
        let addr = server(usize::MAX);
        let load = RateLoad::start(addr, ClientKind::PerRequest, 200, 2);
        let mut sent = 0;
        assert!(crate::wait_until(Duration::from_secs(20), || {
            sent += load.mark().sent;
            sent >= 40
        }));
        let r = load.finish();
        assert_eq!(r.failed, 0, "{r:?}");
        assert!(r.sent >= 40, "{r:?}");
        assert_eq!(r.connections, r.sent);
    }

    #[test]
    fn failures_are_counted_with_their_time() {
        // A port nobody listens on: every connect is refused.
        let addr = SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
        let load = RateLoad::start(addr, ClientKind::KeepAlive, 100, 1);
        let mut failed = 0;
        assert!(crate::wait_until(Duration::from_secs(20), || {
            failed += load.mark().failed;
            failed >= 10
        }));
        let r = load.finish();
        assert!(r.sent >= 10 && r.failed == r.sent, "{r:?}");
        assert_eq!(r.latencies.count(), 0);
        assert!(
            r.errors.windows(2).all(|w| w[0].at < w[1].at),
            "{:?}",
            r.errors
        );
    }

    #[test]
    fn a_stalled_server_shows_in_the_latency() {
        // One worker, a server that answers after 50 ms: requests due every 5 ms queue up,
        // and their latency counts the wait from their scheduled time.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    line.clear();
                }
                std::thread::sleep(Duration::from_millis(50));
                let _ = reader.get_mut().write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        let load = RateLoad::start(addr, ClientKind::PerRequest, 200, 1);
        std::thread::sleep(Duration::from_millis(400));
        let r = load.finish();
        assert!(r.sent >= 4 && r.late >= r.sent - 1, "{r:?}");
        assert!(
            r.max() >= Duration::from_millis(150),
            "queueing counted: {r:?}"
        );
    }
}
