//! UDP through a published port on one node (loopback): flows keep to their task, clients
//! spread over the tasks, idle flows are forgotten, the flows of a removed task move at
//! once, and echo payloads come back intact.

use shoal_testkit::{free_port, wait_until, Daemon};
use std::collections::HashSet;
use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

/// A client socket on loopback that waits at most `wait` for an answer.
fn client(wait: Duration) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind client");
    socket.set_read_timeout(Some(wait)).expect("timeout");
    socket
}

/// Sends `payload` to the published port and returns the answer, checking it comes from
/// that port.
fn ask(c: &UdpSocket, port: u16, payload: &[u8]) -> Option<Vec<u8>> {
    c.send_to(payload, ("127.0.0.1", port)).ok()?;
    let mut buf = vec![0u8; 65_536];
    let (len, from) = c.recv_from(&mut buf).ok()?;
    assert_eq!(from.port(), port, "an answer from another port");
    buf.truncate(len);
    Some(buf)
}

/// whoami's answer: (task name, the address the task saw: the mesh's socket of the flow).
fn whoami(c: &UdpSocket, port: u16) -> Option<(String, String)> {
    let answer = String::from_utf8(ask(c, port, b"whoami")?).ok()?;
    let field = |name: &str| {
        answer
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::to_string)
    };
    Some((field("Name: ")?, field("RemoteAddr: ")?))
}

fn create(d: &Daemon, args: &[&str]) {
    let mut all = vec!["service", "create"];
    all.extend_from_slice(args);
    let out = d.cli(&all);
    assert!(out.ok(), "{args:?}: {out:?}");
}

#[test]
fn udp_flows_through_a_published_port() {
    let d = Daemon::start_cluster(bin());
    let (who, quick, echo) = (free_port(), free_port(), free_port());
    let publish = |port: u16, target: u16| format!("{port}:{target}/udp");
    create(
        &d,
        &[
            "--name",
            "who",
            "--replicas",
            "3",
            "--publish",
            &publish(who, 53),
            "--",
            "shoal",
            "whoami",
        ],
    );
    create(
        &d,
        &[
            "--name",
            "quick",
            "--idle-timeout",
            "1s",
            "--publish",
            &publish(quick, 53),
            "--",
            "shoal",
            "whoami",
        ],
    );
    create(
        &d,
        &[
            "--name",
            "echo",
            "--publish",
            &publish(echo, 7),
            "--",
            "shoal",
            "echo",
        ],
    );
    assert!(
        wait_until(Duration::from_secs(60), || {
            d.running_tasks("who").len() == 3
                && d.running_tasks("quick").len() == 1
                && d.running_tasks("echo").len() == 1
        }),
        "tasks did not start: {}",
        d.log()
    );

    // Every task answers once the mesh routes by the table that has them all; round-robin
    // puts new clients on each in turn. The clients are kept: their flows stay open.
    let mut clients = Vec::new();
    let mut names = HashSet::new();
    let spread = wait_until(Duration::from_secs(30), || {
        let c = client(Duration::from_secs(2));
        if let Some((name, _)) = whoami(&c, who) {
            names.insert(name.clone());
            clients.push((c, name));
        }
        names.len() == 3
    });
    assert!(spread, "clients reached only {names:?}\n{}", d.log());

    // Affinity: every datagram of a client goes to the same task, on the same flow.
    for (c, name) in &clients {
        let first = whoami(c, who).expect("an answer");
        assert_eq!(&first.0, name, "a client moved to another task");
        for _ in 0..4 {
            assert_eq!(
                whoami(c, who).expect("an answer"),
                first,
                "the flow changed"
            );
        }
    }

    // Echo payloads come back intact, small and large.
    let c = client(Duration::from_secs(2));
    let mut echoed = None;
    assert!(
        wait_until(Duration::from_secs(20), || {
            echoed = ask(&c, echo, b"ping");
            echoed.is_some()
        }),
        "echo did not answer"
    );
    assert_eq!(echoed.as_deref(), Some(&b"ping"[..]));
    let big: Vec<u8> = (0..30_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(ask(&c, echo, &big), Some(big));

    // The idle timeout: after a quiet second the flow is forgotten, and the next datagram
    // opens a new one (the task sees it come from another socket of the mesh). Waiting
    // means not sending, so each try is a quiet period longer than the timeout; a datagram
    // that still finds the old flow (a busy machine) starts the quiet anew.
    let c = client(Duration::from_secs(2));
    let mut first = None;
    assert!(
        wait_until(Duration::from_secs(20), || {
            first = whoami(&c, quick);
            first.is_some()
        }),
        "quick did not answer"
    );
    let first = first.unwrap_or_default();
    assert_eq!(whoami(&c, quick).as_ref(), Some(&first), "the flow changed");
    let mut forgotten = false;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(1_500));
        if whoami(&c, quick).is_some_and(|again| again.1 != first.1) {
            forgotten = true;
            break;
        }
    }
    assert!(forgotten, "the idle flow was never forgotten\n{}", d.log());

    // Scale down: the flows on the removed tasks move at once. By the time the tasks have
    // stopped, every node acknowledged a table without them, which ended their flows.
    assert!(d.cli(&["service", "scale", "who=1"]).ok());
    assert!(
        wait_until(Duration::from_secs(60), || d.running_tasks("who").len()
            == 1
            && d.tasks("who").iter().all(
                |t| t["desired_state"] == "running" || t["status"]["state"] != "running"
            )),
        "scale down did not finish: {}",
        d.log()
    );
    let kept = whoami(&client(Duration::from_secs(2)), who)
        .expect("an answer")
        .0;
    let moved: Vec<&(UdpSocket, String)> = clients.iter().filter(|(_, n)| *n != kept).collect();
    assert!(!moved.is_empty(), "every client was on the kept task");
    for (c, was) in moved {
        // A few sends at most: a datagram may be lost, never sent to a removed task.
        let answer = (0..3).find_map(|_| whoami(c, who));
        assert_eq!(
            answer.map(|a| a.0).as_deref(),
            Some(kept.as_str()),
            "a client of {was} did not move to {kept}"
        );
    }
}
