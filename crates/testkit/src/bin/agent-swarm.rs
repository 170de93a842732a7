//! `agent-swarm`: many simulated worker nodes against one manager, for the dispatcher load
//! benchmark (`bench/dispatcher-load`).
//!
//! Each simulated node joins like `shoal join` does (root CA over first-contact TLS, checked
//! against the token's digest; a fresh key and CSR; `IssueNodeCertificate`), then, over its
//! own mTLS channel (`shoal_rpc::tls::channel`, as the real agent), keeps a
//! `Dispatcher.Session` stream open, sends a `Heartbeat` every period (the first one after a
//! random delay, so beats spread over the period) and answers its assignments like the real
//! agent: a task `assigned` with desired `running` is reported accepted, preparing, ready,
//! starting (one `ReportStatus` batch) and then running (a second one), the same two calls
//! the agent makes around starting a process; a task it runs whose desired state moves past
//! running is reported shut down. No process is started.
//!
//! `--keepalive-ms` replaces the agent's HTTP/2 keep-alive (a PING after a second without
//! incoming frames) with another interval, or none, to measure what it costs the manager.
//!
//! Progress goes to stderr as JSON lines, the summary to stdout as one JSON object. The run
//! lasts `--duration` after the last node has joined, or until SIGINT/SIGTERM. Exit code 1
//! if a node could not join, 2 on a setup error.

use anyhow::bail;
use clap::Parser;
use rand::Rng;
use rustls::ClientConfig;
use serde_json::json;
use shoal_api::{Task, TaskReport, TaskState};
use shoal_rpc::proto::ca_client::CaClient;
use shoal_rpc::proto::dispatcher_client::DispatcherClient;
use shoal_rpc::proto::{Empty, HeartbeatRequest, IssueRequest, SessionRequest, StatusReport};
use shoal_rpc::{pki, tls, token};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tonic::transport::Channel;

const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Deadline of one unary call (heartbeat, report, join step).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// A report the manager did not take is retried after this long (as the agent does).
const REPORT_RETRY: Duration = Duration::from_millis(300);
const JOIN_ATTEMPTS: u32 = 3;
/// File descriptors beyond one per node and two per join in flight: stdio, runtime, slack.
const SPARE_FDS: u64 = 128;
/// Join and session errors printed in full (each kind); later ones are only counted.
const ERRORS_SHOWN: u64 = 10;
/// The address every simulated node advertises.
const NODE_ADDR: &str = "127.0.0.1";

#[derive(Debug, Parser)]
#[command(
    name = "agent-swarm",
    about = "Simulated worker nodes against one shoal manager"
)]
struct Args {
    /// The manager's control address, IP:PORT
    #[arg(long)]
    manager: SocketAddr,
    /// Worker join token (`shoal join-token worker -q`)
    #[arg(long)]
    token: String,
    /// Number of simulated nodes
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// How long to run once every node has joined (e.g. 30s, 2m)
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Heartbeat period in ms (default: the period the manager announces in the session)
    #[arg(long)]
    period_ms: Option<u64>,
    /// Joins in flight at once
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Interval of the progress lines on stderr, in ms
    #[arg(long, default_value_t = 2000)]
    progress_ms: u64,
    /// HTTP/2 keep-alive PING interval of the session channels in ms, 0 for none (default:
    /// the agent's, from shoal_rpc::tls::channel)
    #[arg(long)]
    keepalive_ms: Option<u64>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    shoal_api::duration::parse("duration", text).map_err(|e| e.to_string())
}

/// Counters of the whole swarm. `*_sent` count attempts, `*_failed` the attempts that got an
/// error or no answer within [`CALL_TIMEOUT`].
#[derive(Debug, Default)]
struct Stats {
    joined: AtomicU64,
    join_failed: AtomicU64,
    sessions_open: AtomicU64,
    session_errors: AtomicU64,
    heartbeats_sent: AtomicU64,
    heartbeats_failed: AtomicU64,
    reports_sent: AtomicU64,
    reports_failed: AtomicU64,
    /// Tasks reported running whose desired state is still running.
    tasks_running: AtomicU64,
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn dec(c: &AtomicU64) {
    c.fetch_sub(1, Ordering::Relaxed);
}

impl Stats {
    fn json(&self) -> serde_json::Value {
        json!({
            "joined": get(&self.joined),
            "join_failed": get(&self.join_failed),
            "sessions_open": get(&self.sessions_open),
            "session_errors": get(&self.session_errors),
            "heartbeats_sent": get(&self.heartbeats_sent),
            "heartbeats_failed": get(&self.heartbeats_failed),
            "reports_sent": get(&self.reports_sent),
            "reports_failed": get(&self.reports_failed),
            "tasks_running": get(&self.tasks_running),
        })
    }
}

/// What every simulated node shares.
#[derive(Debug)]
struct Swarm {
    manager: SocketAddr,
    token: String,
    ca_digest: String,
    period: Option<Duration>,
    keepalive: Option<Duration>,
    stats: Stats,
}

/// A joined node: its identity and the mTLS configuration holding its certificate.
struct Member {
    node_id: String,
    hostname: String,
    tls: Arc<ClientConfig>,
}

/// Raise the soft limit of open files to at least `need` (up to the hard limit).
#[allow(unsafe_code)]
fn raise_nofile(need: u64) -> anyhow::Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass, which lives on
    // our stack for the whole call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        bail!(
            "getrlimit(RLIMIT_NOFILE): {}",
            std::io::Error::last_os_error()
        );
    }
    if lim.rlim_cur >= need {
        return Ok(());
    }
    if lim.rlim_max < need {
        bail!(
            "{need} open files are needed but the hard limit is {}: raise it (ulimit -Hn, or run as root) or use fewer --agents",
            lim.rlim_max
        );
    }
    lim.rlim_cur = need;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        bail!(
            "cannot raise the open-file limit to {need}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

async fn timed<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(s)) => bail!("{what}: {} ({:?})", s.message(), s.code()),
        Err(_) => bail!("{what}: no answer within {CALL_TIMEOUT:?}"),
    }
}

/// Join one node, as `shoal join` does.
async fn join(swarm: &Swarm, i: usize) -> anyhow::Result<Member> {
    let node_id = shoal_api::id::new_id();
    let hostname = format!("sim-{i}");
    let first = tls::channel(swarm.manager, tls::first_contact_config()?)?;
    let root = timed("get root CA", CaClient::new(first).get_root_ca(Empty {}))
        .await?
        .into_inner()
        .cert_pem;
    if token::digest(&pki::pem_to_der(&root)?) != swarm.ca_digest {
        bail!(
            "the manager at {} belongs to another cluster (CA digest does not match the token)",
            swarm.manager
        );
    }
    let key = pki::new_node_key()?;
    let verified = tls::channel(swarm.manager, tls::client_config(&root, None, &[b"h2"])?)?;
    let resp = timed(
        "issue node certificate",
        CaClient::new(verified).issue_node_certificate(IssueRequest {
            token: swarm.token.clone(),
            csr_pem: key.csr_pem,
            node_id: node_id.clone(),
            hostname: hostname.clone(),
            addr: NODE_ADDR.into(),
            control_addr: String::new(),
            networks: Vec::new(),
        }),
    )
    .await?
    .into_inner();
    let tls = tls::client_config(&root, Some((&resp.cert_pem, &key.key_pem)), &[b"h2"])?;
    Ok(Member {
        node_id,
        hostname,
        tls,
    })
}

/// What one node has reported of its tasks, kept across session reconnects.
#[derive(Debug, Default)]
struct NodeTasks {
    /// Tasks reported accepted (and on to running).
    started: HashSet<String>,
    /// Tasks reported running and not yet shut down.
    running: HashSet<String>,
}

/// The channel a node keeps its session on: the agent's (`shoal_rpc::tls::channel`), or
/// the same with another HTTP/2 keep-alive when `--keepalive-ms` is given.
fn session_channel(swarm: &Swarm, cfg: Arc<ClientConfig>) -> anyhow::Result<Channel> {
    let Some(keepalive) = swarm.keepalive else {
        return Ok(tls::channel(swarm.manager, cfg)?);
    };
    let mut endpoint = tonic::transport::Endpoint::from_shared(format!(
        "http://{}",
        shoal_rpc::MANAGER_SERVER_NAME
    ))?
    .connect_timeout(CALL_TIMEOUT);
    if !keepalive.is_zero() {
        endpoint = endpoint
            .http2_keep_alive_interval(keepalive)
            .keep_alive_timeout(keepalive * 3)
            .keep_alive_while_idle(true);
    }
    let addr = swarm.manager;
    let connector = tower::service_fn(move |_uri: tonic::transport::Uri| {
        let cfg = cfg.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let name = rustls::pki_types::ServerName::try_from(shoal_rpc::MANAGER_SERVER_NAME)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let tls = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}

/// One simulated node after its join: session, heartbeats, reports, until `stop`.
async fn run_node(swarm: Arc<Swarm>, member: Member, mut stop: watch::Receiver<bool>) {
    let channel = match session_channel(&swarm, member.tls.clone()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "{}",
                json!({"event": "error", "node": member.hostname, "error": e.to_string()})
            );
            return;
        }
    };
    let (period_tx, period_rx) =
        watch::channel(swarm.period.unwrap_or(Duration::from_millis(1000)));
    let acked = Arc::new(AtomicU64::new(0));
    let mut tasks = NodeTasks::default();
    let mut beating = false;
    let mut backoff = BACKOFF_MIN;
    let beat_stop = stop.clone();
    loop {
        if *stop.borrow() {
            return;
        }
        let outcome = tokio::select! {
            r = session(&swarm, &member, &channel, &acked, &period_tx, &mut tasks, &mut beating, &period_rx, &beat_stop) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match outcome {
            Ok(()) => backoff = BACKOFF_MIN,
            Err(e) => {
                let n = swarm.stats.session_errors.fetch_add(1, Ordering::Relaxed);
                if n < ERRORS_SHOWN {
                    eprintln!(
                        "{}",
                        json!({"event": "session_error", "node": member.hostname, "node_id": member.node_id, "error": format!("{e:#}")})
                    );
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {},
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Counts an open session for as long as it lives.
struct OpenSession<'a>(&'a Stats);

impl Drop for OpenSession<'_> {
    fn drop(&mut self) {
        dec(&self.0.sessions_open);
    }
}

#[allow(clippy::too_many_arguments)]
async fn session(
    swarm: &Arc<Swarm>,
    member: &Member,
    channel: &Channel,
    acked: &Arc<AtomicU64>,
    period_tx: &watch::Sender<Duration>,
    tasks: &mut NodeTasks,
    beating: &mut bool,
    period_rx: &watch::Receiver<Duration>,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut client = DispatcherClient::new(channel.clone());
    let mut stream = timed(
        "open session",
        client.session(SessionRequest {
            hostname: member.hostname.clone(),
            addr: NODE_ADDR.into(),
            description_json: Vec::new(),
        }),
    )
    .await?
    .into_inner();
    inc(&swarm.stats.sessions_open);
    let _open = OpenSession(&swarm.stats);
    if !*beating {
        // Like the agent, beat once the session is up (and keep beating across reconnects).
        *beating = true;
        tokio::spawn(heartbeat_loop(
            swarm.clone(),
            DispatcherClient::new(channel.clone()),
            acked.clone(),
            period_rx.clone(),
            stop.clone(),
        ));
    }
    while let Some(msg) = stream
        .message()
        .await
        .map_err(|s| anyhow::anyhow!("session: {} ({:?})", s.message(), s.code()))?
    {
        acked.store(msg.version, Ordering::Relaxed);
        if swarm.period.is_none() && msg.heartbeat_period_ms > 0 {
            period_tx.send_if_modified(|p| {
                let new = Duration::from_millis(msg.heartbeat_period_ms.max(50));
                std::mem::replace(p, new) != new
            });
        }
        let assigned: Vec<Task> = shoal_rpc::session::decode_tasks(&msg)?;
        for t in &assigned {
            if t.desired_state == TaskState::Running
                && t.status.state == TaskState::Assigned
                && !tasks.started.contains(&t.id)
            {
                tasks.started.insert(t.id.clone());
                report(
                    swarm,
                    &mut client,
                    vec![
                        TaskReport::new(&t.id, TaskState::Accepted, "accepted"),
                        TaskReport::new(&t.id, TaskState::Preparing, "preparing"),
                        TaskReport::new(&t.id, TaskState::Ready, "ready"),
                        TaskReport::new(&t.id, TaskState::Starting, "starting"),
                    ],
                )
                .await;
                report(
                    swarm,
                    &mut client,
                    vec![TaskReport::new(&t.id, TaskState::Running, "started")],
                )
                .await;
                tasks.running.insert(t.id.clone());
                inc(&swarm.stats.tasks_running);
            } else if t.desired_state > TaskState::Running && tasks.running.remove(&t.id) {
                dec(&swarm.stats.tasks_running);
                report(
                    swarm,
                    &mut client,
                    vec![TaskReport::new(&t.id, TaskState::Shutdown, "shutdown")],
                )
                .await;
            }
        }
    }
    Ok(())
}

/// Send one batch of reports, retrying until the manager takes it (as the agent does).
async fn report(swarm: &Swarm, client: &mut DispatcherClient<Channel>, reports: Vec<TaskReport>) {
    let body = match serde_json::to_vec(&reports) {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "{}",
                json!({"event": "error", "error": format!("encoding reports: {e}")})
            );
            return;
        }
    };
    loop {
        inc(&swarm.stats.reports_sent);
        let sent = timed(
            "report status",
            client.report_status(StatusReport {
                reports_json: body.clone(),
            }),
        )
        .await;
        if sent.is_ok() {
            return;
        }
        inc(&swarm.stats.reports_failed);
        tokio::time::sleep(REPORT_RETRY).await;
    }
}

/// Beat at a fixed rate: the first beat after a random part of the period, so the beats of
/// all nodes spread evenly; a late beat does not make the next ones come in a burst.
async fn heartbeat_loop(
    swarm: Arc<Swarm>,
    mut client: DispatcherClient<Channel>,
    acked: Arc<AtomicU64>,
    period: watch::Receiver<Duration>,
    mut stop: watch::Receiver<bool>,
) {
    let first = *period.borrow();
    let jitter_ms = rand::rng().random_range(0..first.as_millis().max(1) as u64);
    let mut next = tokio::time::Instant::now() + Duration::from_millis(jitter_ms);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {},
            _ = stop.wait_for(|s| *s) => return,
        }
        inc(&swarm.stats.heartbeats_sent);
        let acked_version = acked.load(Ordering::Relaxed);
        if timed(
            "heartbeat",
            client.heartbeat(HeartbeatRequest { acked_version }),
        )
        .await
        .is_err()
        {
            inc(&swarm.stats.heartbeats_failed);
        }
        next += *period.borrow();
        next = next.max(tokio::time::Instant::now());
    }
}

/// Join every node, `concurrency` at a time; each starts its session as soon as it joined.
fn start_joins(
    swarm: &Arc<Swarm>,
    agents: usize,
    concurrency: usize,
    stop: &watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    for i in 0..agents {
        let swarm = swarm.clone();
        let permits = permits.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let member = {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                let mut attempt = 1;
                loop {
                    match join(&swarm, i).await {
                        Ok(m) => break m,
                        Err(e) if attempt >= JOIN_ATTEMPTS => {
                            let n = swarm.stats.join_failed.fetch_add(1, Ordering::Relaxed);
                            if n < ERRORS_SHOWN {
                                eprintln!(
                                    "{}",
                                    json!({"event": "join_failed", "node": format!("sim-{i}"), "error": format!("{e:#}")})
                                );
                            }
                            return;
                        }
                        Err(_) => {
                            attempt += 1;
                            tokio::time::sleep(BACKOFF_MIN * attempt).await;
                        }
                    }
                }
            };
            inc(&swarm.stats.joined);
            run_node(swarm, member, stop).await;
        });
    }
}

fn progress(swarm: &Swarm, t0: Instant, phase: &str) {
    let mut line = swarm.stats.json();
    line["event"] = json!("progress");
    line["phase"] = json!(phase);
    line["elapsed_s"] = json!((t0.elapsed().as_secs_f64() * 10.0).round() / 10.0);
    eprintln!("{line}");
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.agents > 0, "--agents must be at least 1");
    raise_nofile(args.agents as u64 + 2 * args.concurrency as u64 + SPARE_FDS)?;
    let parsed = token::JoinToken::parse(&args.token)?;
    let swarm = Arc::new(Swarm {
        manager: args.manager,
        token: args.token.trim().to_string(),
        ca_digest: parsed.ca_digest,
        period: args.period_ms.map(|ms| Duration::from_millis(ms.max(50))),
        keepalive: args.keepalive_ms.map(Duration::from_millis),
        stats: Stats::default(),
    });
    // A signal ends the run; the nodes stop only after the summary has been counted.
    let (stop_tx, stop) = watch::channel(false);
    let (signalled_tx, mut signalled) = watch::channel(false);
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            signalled_tx.send_replace(true);
        });
    }

    let t0 = Instant::now();
    let phase = Arc::new(std::sync::Mutex::new("join"));
    {
        let swarm = swarm.clone();
        let phase = phase.clone();
        let every = Duration::from_millis(args.progress_ms.max(100));
        let mut stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {},
                    _ = stop.wait_for(|s| *s) => return,
                }
                let p = *phase.lock().unwrap_or_else(|p| p.into_inner());
                progress(&swarm, t0, p);
            }
        });
    }

    start_joins(&swarm, args.agents, args.concurrency, &stop);
    let all_in = async {
        while get(&swarm.stats.joined) + get(&swarm.stats.join_failed) < args.agents as u64 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        _ = all_in => {},
        _ = signalled.wait_for(|s| *s) => {},
    }
    let join_s = t0.elapsed().as_secs_f64();
    *phase.lock().unwrap_or_else(|p| p.into_inner()) = "run";
    let mut line = swarm.stats.json();
    line["event"] = json!("joined");
    line["join_s"] = json!(join_s);
    eprintln!("{line}");

    let beats0 = get(&swarm.stats.heartbeats_sent);
    let t1 = Instant::now();
    tokio::select! {
        _ = tokio::time::sleep(args.duration) => {},
        _ = signalled.wait_for(|s| *s) => {},
    }
    let run_s = t1.elapsed().as_secs_f64();
    let beats = get(&swarm.stats.heartbeats_sent) - beats0;
    // Counted before the nodes stop, so `sessions_open` is what was open during the run.
    let mut summary = swarm.stats.json();
    stop_tx.send_replace(true);
    summary["agents"] = json!(args.agents);
    summary["join_s"] = json!((join_s * 100.0).round() / 100.0);
    summary["run_s"] = json!((run_s * 100.0).round() / 100.0);
    summary["run_heartbeats_per_s"] = json!(if run_s > 0.0 {
        (beats as f64 / run_s * 10.0).round() / 10.0
    } else {
        0.0
    });
    println!("{summary}");
    Ok(if get(&swarm.stats.join_failed) > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("agent-swarm: {e:#}");
            ExitCode::from(2)
        }
    }
}
