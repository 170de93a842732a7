//! The client's address as a task sees it: through the routing mesh with a PROXY v2 header
//! (`proxy-protocol=v2`), and natively on a host-mode port. A real daemon and real whoami
//! tasks.

use shoal_testkit::{free_port, wait_until, Daemon};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

/// One `GET /` on 127.0.0.1:`port`: the test's own address and whoami's page, once one
/// answers.
fn whoami_page(port: u16) -> Option<(SocketAddr, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut page = String::new();
    s.read_to_string(&mut page).ok()?;
    let local = s.local_addr().ok()?;
    page.starts_with("HTTP/1.1 200").then_some((local, page))
}

fn create(d: &Daemon, name: &str, publish: &str) {
    let out = d.cli(&[
        "service",
        "create",
        "--name",
        name,
        "--publish",
        publish,
        "--",
        "shoal",
        "whoami",
    ]);
    assert!(out.ok(), "create {name}: {out:?}\n{}", d.log());
}

#[test]
fn proxy_v2_seen_by_whoami_names_the_real_client() {
    let d = Daemon::start_cluster(bin());
    let port = free_port();
    create(
        &d,
        "web",
        &format!("published={port},target=80,proxy-protocol=v2"),
    );
    let svc = d.json(&["service", "inspect", "web"]);
    assert_eq!(svc[0]["ports"][0]["proxy_protocol"], "v2", "{svc}");

    let mut answer = None;
    assert!(
        wait_until(Duration::from_secs(20), || {
            answer = whoami_page(port);
            answer.is_some()
        }),
        "no answer on published port {port}\n{}",
        d.log()
    );
    let Some((client, page)) = answer else {
        unreachable!()
    };
    // The test's own address and port, not the mesh's connection to the task.
    assert!(
        page.contains(&format!("RemoteAddr: {client}\n")),
        "whoami did not report the client {client}:\n{page}"
    );
    assert!(
        page.contains("ProxyProtocol: v2 via ")
            && page.contains(&format!(" to 127.0.0.1:{port}\n")),
        "no PROXY header line naming the published port:\n{page}"
    );
    let pretty = d.cli(&["service", "inspect", "--pretty", "web"]).stdout;
    assert!(pretty.contains("ProxyProtocol = v2"), "{pretty}");
}

#[test]
fn a_host_mode_port_shows_the_client_natively() {
    let d = Daemon::start_cluster(bin());
    let port = free_port();
    create(
        &d,
        "direct",
        &format!("published={port},target=80,mode=host"),
    );
    let mut answer = None;
    assert!(
        wait_until(Duration::from_secs(20), || {
            answer = whoami_page(port);
            answer.is_some()
        }),
        "no answer on host port {port}\n{}",
        d.log()
    );
    let Some((client, page)) = answer else {
        unreachable!()
    };
    assert!(
        page.contains(&format!("RemoteAddr: {client}\n")),
        "whoami did not see the client {client}:\n{page}"
    );
    assert!(!page.contains("ProxyProtocol"), "{page}");
}
