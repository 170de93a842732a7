//! `shoal whoami`: an HTTP/1.1 server that says which task answered (like traefik/whoami).
//!
//! Routes:
//! - `GET /health`: 200 `ok` or 503 `unhealthy`; `POST /health/fail` and `POST /health/ok`
//!   switch it at runtime, and an existing file named by `SHOAL_WHOAMI_HEALTH_FILE` fails it.
//! - `GET /data?bytes=N`: N bytes of filler (at most 64 MiB), for throughput benchmarks.
//! - `GET /slow?ms=N`: the whoami page after N milliseconds.
//! - anything else: the whoami page (task identity, client address, request line, headers).
//!
//! A connection may start with a PROXY protocol v2 header (the routing mesh sends one on a
//! port published with `proxy-protocol=v2`): the page then names the client the header
//! names as `RemoteAddr`, and the proxy in a `ProxyProtocol: v2 via <proxy> to <address the
//! client connected to>` line. A malformed header closes the connection.
//!
//! UDP on the same port number: every datagram is answered with the identity lines of the
//! page and the sender as the server saw it (`Name: ...`, ..., `RemoteAddr: <ip:port>`),
//! whatever it carries, so tests can tell which task a UDP flow reached. When the UDP port
//! cannot be bound, whoami says so and serves HTTP alone.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use shoal_proxy_header::Header;
use tokio::net::{TcpListener, UdpSocket};

use crate::body::ReplyBody;
use crate::env::{hostname, TaskEnv};
use crate::net::pause_after_accept_error;
use crate::proxied::{read_header, Prefixed};
use crate::signal::shutdown_signal;

/// Environment variable naming a file whose existence makes `/health` fail.
pub const HEALTH_FILE_VAR: &str = "SHOAL_WHOAMI_HEALTH_FILE";
/// How long a stopping server waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long busy keep-alive connections get to send one last request before idle ones are
/// closed on shutdown.
const KEEPALIVE_HANDOFF: Duration = Duration::from_secs(1);
/// Largest body `/data` sends.
const MAX_DATA_BYTES: u64 = 64 * 1024 * 1024;
/// Longest delay `/slow` accepts, so a typo cannot park a connection for days.
const MAX_SLOW: Duration = Duration::from_secs(600);
const X_SHOAL_TASK: &str = "x-shoal-task";
const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// Settings of `shoal whoami`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoamiOptions {
    /// Port to listen on (see [`crate::port_from_env`]).
    pub port: u16,
    /// Address to listen on; `0.0.0.0` by default.
    pub bind: IpAddr,
    /// Name to report instead of `SHOAL_TASK_NAME`.
    pub name: Option<String>,
    /// Start with `/health` failing.
    pub unhealthy: bool,
    /// Delay before every reply.
    pub slow: Duration,
}

impl Default for WhoamiOptions {
    fn default() -> Self {
        Self {
            port: 80,
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            name: None,
            unhealthy: false,
            slow: Duration::ZERO,
        }
    }
}

/// Serves whoami on `bind:port` until SIGTERM or SIGINT, then drains in-flight requests
/// (for at most 5 s) and returns `Ok`.
pub async fn run_whoami(opts: WhoamiOptions) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    let addr = SocketAddr::new(opts.bind, opts.port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("whoami cannot listen on {addr}"))?;
    let udp_addr = listener.local_addr().context("whoami listener address")?;
    let udp = match UdpSocket::bind(udp_addr).await {
        Ok(socket) => Some(socket),
        Err(e) => {
            println!("whoami answers no UDP: cannot bind udp {udp_addr}: {e}");
            None
        }
    };
    serve_whoami(listener, udp, opts, shutdown).await
}

/// Serves whoami on `listener` (and answers datagrams on `udp`) until `shutdown` resolves,
/// then stops accepting, lets in-flight requests finish (for at most 5 s) and returns `Ok`.
///
/// The task identity comes from the `SHOAL_*` environment variables; `opts.port` and
/// `opts.bind` are ignored since the sockets are already bound.
pub async fn serve_whoami(
    listener: TcpListener,
    udp: Option<UdpSocket>,
    opts: WhoamiOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let health_file = std::env::var_os(HEALTH_FILE_VAR)
        .filter(|path| !path.is_empty())
        .map(PathBuf::from);
    let whoami = Arc::new(Whoami::new(
        &opts,
        &TaskEnv::from_env(),
        &hostname(),
        health_file,
    ));
    let answering = udp.map(|socket| tokio::spawn(answer_datagrams(socket, whoami.clone())));
    let result = serve(listener, whoami, shutdown).await;
    if let Some(answering) = answering {
        answering.abort();
    }
    result
}

/// Answers every datagram on `socket` with the identity lines and its sender.
pub(crate) async fn answer_datagrams(socket: UdpSocket, whoami: Arc<Whoami>) {
    if let Ok(addr) = socket.local_addr() {
        println!("whoami {} answering udp on {addr}", whoami.name);
    }
    let mut buf = vec![0u8; 2048];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((_, peer)) => {
                let reply = format!("{}RemoteAddr: {peer}\n", whoami.page_prefix);
                // A reply that cannot be sent is lost, as UDP allows.
                let _ = socket.send_to(reply.as_bytes(), peer).await;
            }
            // An ICMP error of an earlier peer concerns that peer only; anything else gets a
            // pause, so a lasting error does not spin.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// State shared by every connection of one whoami server.
#[derive(Debug)]
pub(crate) struct Whoami {
    name: String,
    /// `X-Shoal-Task` value; `None` if the name is not a valid header value.
    task_header: Option<HeaderValue>,
    /// The identity lines of the whoami page, built once since the environment is fixed.
    page_prefix: String,
    healthy: AtomicBool,
    health_file: Option<PathBuf>,
    slow: Duration,
    /// Set on shutdown: every further response closes its connection.
    stopping: AtomicBool,
}

impl Whoami {
    pub(crate) fn new(
        opts: &WhoamiOptions,
        env: &TaskEnv,
        hostname: &str,
        health_file: Option<PathBuf>,
    ) -> Self {
        let name = opts
            .name
            .clone()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| env.task_name.clone());
        let page_prefix = format!(
            "Name: {name}\nSlot: {}\nService: {}\nNode: {}\nHostname: {hostname}\n",
            env.slot, env.service, env.node_id
        );
        Self {
            task_header: HeaderValue::from_str(&name).ok(),
            name,
            page_prefix,
            healthy: AtomicBool::new(!opts.unhealthy),
            health_file,
            slow: opts.slow,
            stopping: AtomicBool::new(false),
        }
    }

    fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
            && !self.health_file.as_ref().is_some_and(|path| path.exists())
    }
}

/// Accept loop: one hyper HTTP/1.1 connection task per client, all watched for draining.
pub(crate) async fn serve(
    listener: TcpListener,
    whoami: Arc<Whoami>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr().context("whoami listener address")?;
    println!("whoami {} listening on {addr}", whoami.name);

    let mut http = http1::Builder::new();
    // No header read timeout: idle keep-alive clients (such as a mesh's pooled connections)
    // stay connected for as long as they like.
    http.keep_alive(true).header_read_timeout(None);
    let graceful = GracefulShutdown::new();
    // Connections still reading their PROXY header are not hyper's yet: this stops them.
    let (stop_header_reads, header_reads) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);

    loop {
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    pause_after_accept_error(&err).await;
                    continue;
                }
            },
        };
        // Small replies must not wait for Nagle's algorithm; failure only costs latency.
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let (whoami, http, mut stop) = (whoami.clone(), http.clone(), header_reads.clone());
        tokio::spawn(async move {
            let mut stream = stream;
            let read = tokio::select! {
                read = read_header(&mut stream) => read,
                _ = stop.wait_for(|stop| *stop) => return,
            };
            // A malformed PROXY header ends the connection.
            let Ok((header, replay)) = read else { return };
            let conn = Arc::new(WhoamiConn::new(whoami, remote, header));
            let service = service_fn(move |req| conn.clone().handle(req));
            let io = TokioIo::new(Prefixed::new(replay, stream));
            // A client that resets or speaks garbage only ends its own connection.
            let _ = watcher.watch(http.serve_connection(io, service)).await;
        });
    }

    drop(listener);
    println!("whoami {} stopping", whoami.name);
    // Busy keep-alive connections each get one more answer, marked `Connection: close`,
    // instead of being cut between requests (which a client would see as a failure).
    whoami.stopping.store(true, Ordering::Relaxed);
    let handoff = tokio::time::Instant::now() + KEEPALIVE_HANDOFF;
    while graceful.count() > 0 && tokio::time::Instant::now() < handoff {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let in_flight = graceful.count();
    let _ = stop_header_reads.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        println!(
            "whoami {} stopped with connections still open after {}s (of {in_flight})",
            whoami.name,
            DRAIN_TIMEOUT.as_secs()
        );
    }
    Ok(())
}

/// One client connection: the server state plus the page prefix with its address.
#[derive(Debug)]
struct WhoamiConn {
    whoami: Arc<Whoami>,
    /// Identity lines, the `RemoteAddr` line and the `ProxyProtocol` line if the connection
    /// came with a PROXY header, built once per connection.
    page_prefix: Bytes,
}

impl WhoamiConn {
    /// `remote` is the connection's peer; `header` its PROXY header, if it had one.
    fn new(whoami: Arc<Whoami>, remote: SocketAddr, header: Option<Header>) -> Self {
        let prefix = &whoami.page_prefix;
        let page_prefix = match header {
            None => format!("{prefix}RemoteAddr: {remote}\n"),
            Some(Header::Proxy(Some(a))) => format!(
                "{prefix}RemoteAddr: {}\nProxyProtocol: v2 via {remote} to {}\n",
                a.source, a.destination
            ),
            // LOCAL, or no IP addresses: the connection's own peer stands.
            Some(_) => format!("{prefix}RemoteAddr: {remote}\nProxyProtocol: v2 via {remote}\n"),
        };
        Self {
            whoami,
            page_prefix: Bytes::from(page_prefix),
        }
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<ReplyBody>, Infallible> {
        let whoami = &self.whoami;
        if !whoami.slow.is_zero() {
            tokio::time::sleep(whoami.slow).await;
        }
        let response = match (req.method(), req.uri().path()) {
            (_, "/health") => {
                if whoami.is_healthy() {
                    self.reply(StatusCode::OK, "ok")
                } else {
                    self.reply(StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
                }
            }
            (&Method::POST, "/health/fail") => {
                whoami.healthy.store(false, Ordering::Relaxed);
                self.reply(StatusCode::OK, "health set to failing\n")
            }
            (&Method::POST, "/health/ok") => {
                whoami.healthy.store(true, Ordering::Relaxed);
                self.reply(StatusCode::OK, "health set to ok\n")
            }
            (_, "/health/fail" | "/health/ok") => {
                let mut response = self.reply(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("POST"));
                response
            }
            (_, "/data") => match query_number(req.uri().query(), "bytes") {
                Some(len) => self.respond(StatusCode::OK, ReplyBody::data(len.min(MAX_DATA_BYTES))),
                None => self.reply(StatusCode::BAD_REQUEST, "usage: /data?bytes=<count>\n"),
            },
            (_, "/slow") => match query_number(req.uri().query(), "ms") {
                Some(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms).min(MAX_SLOW)).await;
                    self.page(&req)
                }
                None => self.reply(StatusCode::BAD_REQUEST, "usage: /slow?ms=<milliseconds>\n"),
            },
            _ => self.page(&req),
        };
        let mut response = response;
        if whoami.stopping.load(Ordering::Relaxed) {
            // Hand keep-alive clients off cleanly: this answer is the connection's last, and
            // says so, so the client opens a new connection (to another replica) next.
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        Ok(response)
    }

    /// The whoami page: identity, client address, request line and request headers.
    fn page(&self, req: &Request<Incoming>) -> Response<ReplyBody> {
        let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let headers_len: usize = req
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 3)
            .sum();
        let mut page = Vec::with_capacity(self.page_prefix.len() + path.len() + headers_len + 32);
        page.extend_from_slice(&self.page_prefix);
        // Writing into a Vec cannot fail.
        let _ = writeln!(
            page,
            "{} {path} {}",
            req.method(),
            version_str(req.version())
        );
        for (name, value) in req.headers() {
            push_canonical_name(&mut page, name.as_str());
            page.extend_from_slice(b": ");
            page.extend_from_slice(value.as_bytes());
            page.push(b'\n');
        }
        self.respond(StatusCode::OK, ReplyBody::full(page))
    }

    fn reply(&self, status: StatusCode, text: &'static str) -> Response<ReplyBody> {
        self.respond(status, ReplyBody::full(Bytes::from_static(text.as_bytes())))
    }

    fn respond(&self, status: StatusCode, body: ReplyBody) -> Response<ReplyBody> {
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, TEXT_PLAIN);
        if let Some(task) = &self.whoami.task_header {
            headers.insert(X_SHOAL_TASK, task.clone());
        }
        response
    }
}

/// The number in `name=<number>` of a query string, if present and valid.
fn query_number(query: Option<&str>, name: &str) -> Option<u64> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .and_then(|(_, value)| value.parse().ok())
}

fn version_str(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

/// Appends a header name the way Go (and so traefik/whoami) prints it: `User-Agent`, since
/// hyper hands names over in lowercase.
fn push_canonical_name(out: &mut Vec<u8>, name: &str) {
    let mut upper = true;
    for byte in name.bytes() {
        out.push(if upper {
            byte.to_ascii_uppercase()
        } else {
            byte
        });
        upper = byte == b'-';
    }
}

#[cfg(test)]
mod tests;
