use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::*;
use crate::testing::{HttpConn, TEST_TIMEOUT};

struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

async fn start(opts: WhoamiOptions, health_file: Option<PathBuf>) -> Server {
    let env = TaskEnv::from_lookup(|key| match key {
        "SHOAL_TASK_NAME" => Some("web.2.task2".to_owned()),
        "SHOAL_TASK_SLOT" => Some("2".to_owned()),
        "SHOAL_SERVICE_NAME" => Some("web".to_owned()),
        "SHOAL_NODE_ID" => Some("node-a".to_owned()),
        _ => None,
    });
    let whoami = Whoami::new(&opts, &env, "host-a", health_file);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, Arc::new(whoami), async move {
        let _ = stopped.await;
    }));
    Server { addr, stop, task }
}

impl Server {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("join").expect("serve");
    }
}

#[tokio::test]
async fn page_shows_task_client_and_headers() {
    timeout(TEST_TIMEOUT, async {
        let server = start(WhoamiOptions::default(), None).await;
        let mut conn = HttpConn::connect(server.addr).await.expect("connect");
        let response = conn
            .request("GET", "/some/path?x=1")
            .await
            .expect("request");
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-shoal-task"), Some("web.2.task2"));
        let page = response.text();
        for line in [
            "Name: web.2.task2\n",
            "Slot: 2\n",
            "Service: web\n",
            "Node: node-a\n",
            "Hostname: host-a\n",
            &format!("RemoteAddr: {}\n", conn.local_addr()),
            "GET /some/path?x=1 HTTP/1.1\n",
            "Host: test.local\n",
            "User-Agent: shoal-test\n",
            "X-Test-Header: hello\n",
        ] {
            assert!(page.contains(line), "{line:?} missing from {page:?}");
        }
        server.stop().await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn name_option_overrides_task_name() {
    timeout(TEST_TIMEOUT, async {
        let opts = WhoamiOptions {
            name: Some("custom".to_owned()),
            ..WhoamiOptions::default()
        };
        let server = start(opts, None).await;
        let mut conn = HttpConn::connect(server.addr).await.expect("connect");
        let response = conn.request("GET", "/").await.expect("request");
        assert!(response.text().starts_with("Name: custom\nSlot: 2\n"));
        assert_eq!(response.header("x-shoal-task"), Some("custom"));
        server.stop().await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn keep_alive_serves_two_requests_on_one_connection() {
    timeout(TEST_TIMEOUT, async {
        let server = start(WhoamiOptions::default(), None).await;
        let mut conn = HttpConn::connect(server.addr).await.expect("connect");
        let first = conn.request("GET", "/first").await.expect("first");
        let second = conn.request("GET", "/second").await.expect("second");
        assert!(first.text().contains("GET /first HTTP/1.1"));
        assert!(second.text().contains("GET /second HTTP/1.1"));
        // Same connection, so the same client address on both pages.
        let remote = format!("RemoteAddr: {}", conn.local_addr());
        assert!(first.text().contains(&remote) && second.text().contains(&remote));
        server.stop().await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn health_flips_with_post_endpoints() {
    timeout(TEST_TIMEOUT, async {
        let server = start(WhoamiOptions::default(), None).await;
        let mut conn = HttpConn::connect(server.addr).await.expect("connect");
        let health = conn.request("GET", "/health").await.expect("health");
        assert_eq!((health.status, health.text().as_str()), (200, "ok"));

        assert_eq!(
            conn.request("POST", "/health/fail")
                .await
                .expect("fail")
                .status,
            200
        );
        let health = conn.request("GET", "/health").await.expect("health");
        assert_eq!((health.status, health.text().as_str()), (503, "unhealthy"));

        assert_eq!(
            conn.request("POST", "/health/ok").await.expect("ok").status,
            200
        );
        assert_eq!(
            conn.request("GET", "/health").await.expect("health").status,
            200
        );

        assert_eq!(
            conn.request("GET", "/health/fail")
                .await
                .expect("get")
                .status,
            405
        );
        assert_eq!(
            conn.request("GET", "/health").await.expect("health").status,
            200
        );
        server.stop().await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn unhealthy_option_starts_failing() {
    timeout(TEST_TIMEOUT, async {
        let opts = WhoamiOptions {
            unhealthy: true,
            ..WhoamiOptions::default()
        };
        let server = start(opts, None).await;
        let mut conn = HttpConn::connect(server.addr).await.expect("connect");
        assert_eq!(
            conn.request("GET", "/health").await.expect("health").status,
            503
        );
        assert_eq!(
            conn.request("POST", "/health/ok").await.expect("ok").status,
            200
        );
        assert_eq!(
            conn.request("GET", "/health").await.expect("health").status,
            200
        );
        server.stop().await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn health_file_fails_health_while_it_exists() {
    timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("unhealthy");
        let server = start(WhoamiOptions::default(), Some(file.clone())).await;
        let mut conn = HttpConn::connect(server.addr).await.expect("connect");
        assert_eq!(
            conn.request("GET", "/health").await.expect("health").status,
            200
        );
        std::fs::write(&file, b"").expect("create health file");
        assert_eq!(
            conn.request("GET", "/health").await.expect("health").status,
            503
        );
        std::fs::remove_file(&file).expect("remove health file");
        assert_eq!(
            conn.request("GET", "/health").await.expect("health").status,
            200
        );
        server.stop().await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn data_returns_the_requested_bytes() {
    timeout(TEST_TIMEOUT, async {
        let server = start(WhoamiOptions::default(), None).await;
        let mut conn = HttpConn::connect(server.addr).await.expect("connect");
        let response = conn.request("GET", "/data?bytes=1000").await.expect("data");
        assert_eq!(response.status, 200);
        assert_eq!(response.body.len(), 1000);
        let big = conn
            .request("GET", "/data?bytes=200000")
            .await
            .expect("big");
        assert_eq!(big.body.len(), 200_000);
        let bad = conn.request("GET", "/data?bytes=lots").await.expect("bad");
        assert_eq!(bad.status, 400);
        server.stop().await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn slow_delays_the_reply() {
    timeout(TEST_TIMEOUT, async {
        let server = start(WhoamiOptions::default(), None).await;
        let mut conn = HttpConn::connect(server.addr).await.expect("connect");
        let started = std::time::Instant::now();
        let response = conn.request("GET", "/slow?ms=200").await.expect("slow");
        assert_eq!(response.status, 200);
        assert!(started.elapsed() >= Duration::from_millis(200));
        server.stop().await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn slow_option_delays_every_reply() {
    timeout(TEST_TIMEOUT, async {
        let opts = WhoamiOptions {
            slow: Duration::from_millis(150),
            ..WhoamiOptions::default()
        };
        let server = start(opts, None).await;
        let mut conn = HttpConn::connect(server.addr).await.expect("connect");
        let started = std::time::Instant::now();
        assert_eq!(
            conn.request("GET", "/health").await.expect("health").status,
            200
        );
        assert!(started.elapsed() >= Duration::from_millis(150));
        server.stop().await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn shutdown_lets_in_flight_request_finish() {
    timeout(TEST_TIMEOUT, async {
        let server = start(WhoamiOptions::default(), None).await;
        let addr = server.addr;
        let mut conn = HttpConn::connect(addr).await.expect("connect");
        conn.send("GET", "/slow?ms=500").await.expect("send");
        // Let the server read the request before stopping it.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let _ = server.stop.send(());
        let response = conn.receive().await.expect("in-flight reply");
        assert_eq!(response.status, 200);
        assert!(response.text().contains("GET /slow?ms=500"));
        server.task.await.expect("join").expect("serve");
        assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections_after_the_handoff_window() {
    timeout(TEST_TIMEOUT, async {
        let server = start(WhoamiOptions::default(), None).await;
        let mut conn = HttpConn::connect(server.addr).await.expect("connect");
        assert_eq!(conn.request("GET", "/").await.expect("request").status, 200);
        let started = std::time::Instant::now();
        server.stop().await;
        assert!(
            started.elapsed() < super::KEEPALIVE_HANDOFF + Duration::from_millis(500),
            "waited on an idle connection beyond the handoff window"
        );
    })
    .await
    .expect("timed out");
}

#[test]
fn query_number_finds_its_parameter() {
    assert_eq!(query_number(Some("bytes=10"), "bytes"), Some(10));
    assert_eq!(query_number(Some("a=1&bytes=7&b"), "bytes"), Some(7));
    assert_eq!(query_number(Some("bytes=-1"), "bytes"), None);
    assert_eq!(query_number(Some("other=1"), "bytes"), None);
    assert_eq!(query_number(None, "bytes"), None);
}

#[test]
fn header_names_are_canonicalised() {
    let mut out = Vec::new();
    push_canonical_name(&mut out, "x-forwarded-for");
    assert_eq!(out, b"X-Forwarded-For");
}

#[tokio::test]
async fn shutdown_answers_the_next_keep_alive_request_with_connection_close() {
    timeout(TEST_TIMEOUT, async {
        let server = start(WhoamiOptions::default(), None).await;
        let mut conn = HttpConn::connect(server.addr).await.expect("connect");
        assert_eq!(conn.request("GET", "/").await.expect("request").status, 200);
        let _ = server.stop.send(());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let last = conn
            .request("GET", "/")
            .await
            .expect("answered during shutdown");
        assert_eq!(last.status, 200);
        assert_eq!(last.header("connection"), Some("close"));
        server.task.await.expect("join").expect("serve");
    })
    .await
    .expect("timed out");
}

fn proxy_header() -> Vec<u8> {
    let addr = |s: &str| s.parse::<SocketAddr>().expect("address");
    Header::tcp(addr("192.0.2.7:51000"), addr("10.0.0.1:8080")).encode()
}

#[tokio::test]
async fn a_proxy_header_names_the_client_on_every_request_of_the_connection() {
    timeout(TEST_TIMEOUT, async {
        let server = start(WhoamiOptions::default(), None).await;
        let mut conn = HttpConn::connect(server.addr).await.expect("connect");
        conn.send_raw(&proxy_header()).await.expect("header");
        let via = format!(
            "ProxyProtocol: v2 via {} to 10.0.0.1:8080\n",
            conn.local_addr()
        );
        for path in ["/", "/again"] {
            let page = conn.request("GET", path).await.expect("request").text();
            assert!(page.contains("RemoteAddr: 192.0.2.7:51000\n"), "{page}");
            assert!(page.contains(&via), "{page}");
            assert!(page.contains(&format!("GET {path} HTTP/1.1\n")), "{page}");
        }
        server.stop().await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_local_proxy_header_leaves_the_peer_as_the_client() {
    timeout(TEST_TIMEOUT, async {
        let server = start(WhoamiOptions::default(), None).await;
        let mut conn = HttpConn::connect(server.addr).await.expect("connect");
        conn.send_raw(&Header::Local.encode())
            .await
            .expect("header");
        let page = conn.request("GET", "/").await.expect("request").text();
        let peer = conn.local_addr();
        assert!(page.contains(&format!("RemoteAddr: {peer}\n")), "{page}");
        assert!(
            page.contains(&format!("ProxyProtocol: v2 via {peer}\n")),
            "{page}"
        );
        server.stop().await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_malformed_proxy_header_closes_the_connection() {
    timeout(TEST_TIMEOUT, async {
        let server = start(WhoamiOptions::default(), None).await;
        let mut bad = proxy_header();
        bad[12] = 0x11; // version 1 in binary form
        let mut conn = HttpConn::connect(server.addr).await.expect("connect");
        conn.send_raw(&bad).await.expect("header");
        assert!(conn.request("GET", "/").await.is_err(), "answered");
        // The server goes on serving others.
        let mut conn = HttpConn::connect(server.addr).await.expect("connect");
        assert_eq!(conn.request("GET", "/").await.expect("request").status, 200);
        server.stop().await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_connection_stuck_in_its_proxy_header_holds_no_shutdown() {
    timeout(TEST_TIMEOUT, async {
        let server = start(WhoamiOptions::default(), None).await;
        let mut conn = HttpConn::connect(server.addr).await.expect("connect");
        conn.send_raw(&proxy_header()[..20]).await.expect("part");
        // Answered, so the stuck connection was accepted before the stop.
        let mut other = HttpConn::connect(server.addr).await.expect("connect");
        assert_eq!(
            other.request("GET", "/").await.expect("request").status,
            200
        );
        let started = std::time::Instant::now();
        server.stop().await;
        assert!(
            started.elapsed() < super::KEEPALIVE_HANDOFF + Duration::from_millis(500),
            "waited on a connection stuck in its header beyond the handoff window"
        );
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn datagrams_are_answered_with_the_task_and_the_sender() {
    timeout(TEST_TIMEOUT, async {
        let env = TaskEnv::from_lookup(|key| match key {
            "SHOAL_TASK_NAME" => Some("dns.1.task1".to_owned()),
            _ => None,
        });
        let whoami = Arc::new(Whoami::new(&WhoamiOptions::default(), &env, "host-a", None));
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = socket.local_addr().expect("addr");
        let answering = tokio::spawn(answer_datagrams(socket, whoami));
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let me = client.local_addr().expect("addr");
        for payload in [&b"whoami"[..], b""] {
            client.send_to(payload, addr).await.expect("send");
            let mut buf = [0u8; 2048];
            let (len, from) = client.recv_from(&mut buf).await.expect("answer");
            assert_eq!(from, addr);
            let answer = String::from_utf8_lossy(&buf[..len]).into_owned();
            assert!(answer.starts_with("Name: dns.1.task1\n"), "{answer}");
            assert!(answer.ends_with(&format!("RemoteAddr: {me}\n")), "{answer}");
        }
        answering.abort();
    })
    .await
    .expect("timed out");
}
