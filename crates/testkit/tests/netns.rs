//! The network-namespace harness on the real kernel: nodes talk to each other and to the
//! test process, `cut`/`restore` isolate one node, two TestNets coexist, and nothing is left
//! behind — neither by `Drop` nor, after `sweep_stale`, by a process that died mid-test.
//! Needs root; fails (does not skip) without it.

#![allow(clippy::unwrap_used)] // test helpers, where a panic is the failure report

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use shoal_testkit::netns::{self, TestNet};
use shoal_testkit::wait_until;

const PORT: u16 = 7000;

/// Echo server: reads until EOF, writes it back. Exits by itself after 2 idle minutes in
/// case nobody kills it.
const SERVER: &str = r#"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(16)
s.settimeout(120)
while True:
    c, _ = s.accept()
    c.settimeout(5)
    try:
        data = b""
        while True:
            d = c.recv(4096)
            if not d:
                break
            data += d
        c.sendall(data)
    except Exception:
        pass
    c.close()
"#;

/// Echo client: host port timeout message; prints the reply, exits 1 on any error.
const CLIENT: &str = r#"
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    c.sendall(sys.argv[4].encode())
    c.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        d = c.recv(4096)
        if not d:
            break
        data += d
    sys.stdout.write(data.decode())
except Exception as e:
    sys.stderr.write(repr(e))
    sys.exit(1)
"#;

fn require_netns() {
    assert!(
        netns::available(),
        "these tests need network namespaces: run them as root with iproute2 installed"
    );
}

/// The real interpreter behind `python3` (skips pyenv-style shims on every call).
fn python() -> &'static str {
    static PY: OnceLock<String> = OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 is needed by the netns tests");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
}

fn start_server(net: &TestNet, i: usize) -> Child {
    net.command(i, python())
        .args(["-c", SERVER, &PORT.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn echo server")
}

/// Run `cmd` to completion or kill it after `timeout`; returns (success, stdout, stderr).
/// Output goes to files, not pipes, so a grandchild holding them open cannot block us.
fn run_bounded(mut cmd: Command, timeout: Duration) -> (bool, String, String) {
    let mut out_file = tempfile::tempfile().unwrap();
    let mut err_file = tempfile::tempfile().unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out_file.try_clone().unwrap())
        .stderr(err_file.try_clone().unwrap())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let read = |f: &mut std::fs::File| {
        let mut s = String::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_string(&mut s).unwrap();
        s
    };
    let (out, err) = (read(&mut out_file), read(&mut err_file));
    match status {
        Some(s) => (s.success(), out, err),
        None => (false, out, format!("killed after {timeout:?}; {err}")),
    }
}

/// Echo `msg` from inside node `from` to `to:PORT`, giving up after `timeout`.
fn echo_from(net: &TestNet, from: usize, to: Ipv4Addr, timeout: Duration) -> Result<(), String> {
    let msg = format!("hello from node {from} to {to}");
    let mut cmd = net.command(from, python());
    cmd.args(["-c", CLIENT, &to.to_string(), &PORT.to_string()])
        .arg(timeout.as_secs_f64().to_string())
        .arg(&msg);
    let (ok, out, err) = run_bounded(cmd, timeout + Duration::from_secs(5));
    match (ok, out == msg) {
        (true, true) => Ok(()),
        (true, false) => Err(format!("echo mismatch: sent {msg:?}, got {out:?}")),
        (false, _) => Err(format!("node {from} -> {to}: {err}")),
    }
}

/// Echo a message from the root namespace (the test process) to `to:port`.
fn echo_from_root(to: Ipv4Addr, port: u16, timeout: Duration) -> Result<(), String> {
    let msg = format!("hello from the root namespace to {to}");
    let run = || -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&SocketAddr::from((to, port)), timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.write_all(msg.as_bytes())?;
        s.shutdown(std::net::Shutdown::Write)?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)?;
        Ok(reply)
    };
    match run() {
        Ok(reply) if reply == msg => Ok(()),
        Ok(reply) => Err(format!("echo mismatch: sent {msg:?}, got {reply:?}")),
        Err(e) => Err(format!("root -> {to}:{port}: {e}")),
    }
}

/// An echo server in the root namespace, on the bridge address (for node -> host traffic).
fn root_echo_server(addr: Ipv4Addr) -> u16 {
    let listener = TcpListener::bind((addr, 0)).expect("bind on the bridge address");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut data = Vec::new();
            if conn.read_to_end(&mut data).is_ok() {
                let _ = conn.write_all(&data);
            }
        }
    });
    port
}

fn netns_list() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn forward_rules() -> String {
    match Command::new("iptables")
        .args(["-w", "5", "-S", "FORWARD"])
        .output()
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(_) => String::new(),
    }
}

fn exited_within(child: &mut Child, timeout: Duration) -> bool {
    wait_until(timeout, || child.try_wait().ok().flatten().is_some())
}

/// Everything a TestNet created, to check it is gone afterwards.
struct Names {
    bridge: String,
    namespaces: Vec<String>,
}

impl Names {
    fn of(net: &TestNet) -> Names {
        Names {
            bridge: net.bridge().to_string(),
            namespaces: (0..net.len()).map(|i| net.ns(i).to_string()).collect(),
        }
    }

    fn assert_gone(&self) {
        let list = netns_list();
        for ns in &self.namespaces {
            assert!(
                !list
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(ns)),
                "namespace {ns} left behind:\n{list}"
            );
        }
        assert!(
            !link_exists(&self.bridge),
            "bridge {} left behind",
            self.bridge
        );
        let rules = forward_rules();
        assert!(
            !rules.contains(&self.bridge),
            "FORWARD rule for {} left behind:\n{rules}",
            self.bridge
        );
    }
}

#[test]
fn three_nodes_talk_and_a_cut_node_is_isolated() {
    require_netns();
    let net = TestNet::create(3).expect("create a TestNet of 3");
    assert_eq!(net.len(), 3);
    let short = Duration::from_secs(1);
    let mut servers: Vec<Child> = (0..3).map(|i| start_server(&net, i)).collect();
    for i in 0..3 {
        let ip = net.ip(i);
        assert!(
            wait_until(Duration::from_secs(10), || echo_from_root(ip, PORT, short)
                .is_ok()),
            "echo server on node {i} ({ip}) never answered the root namespace"
        );
    }

    // Node to node over the bridge (the path Docker's FORWARD DROP would block), and node
    // to the test process on the bridge address.
    echo_from(&net, 2, net.ip(1), Duration::from_secs(3)).unwrap();
    echo_from(&net, 0, net.ip(2), Duration::from_secs(3)).unwrap();
    echo_from(&net, 1, net.ip(0), Duration::from_secs(3)).unwrap();
    let host_port = root_echo_server(net.host_ip());
    let mut to_host = net.command(1, python());
    to_host
        .args([
            "-c",
            CLIENT,
            &net.host_ip().to_string(),
            &host_port.to_string(),
        ])
        .args(["3", "to the host"]);
    let (ok, out, err) = run_bounded(to_host, Duration::from_secs(8));
    assert!(ok && out == "to the host", "node 1 -> host: {out:?} {err}");

    net.cut(1).unwrap();
    let err = echo_from(&net, 2, net.ip(1), short).expect_err("node 2 reached cut-off node 1");
    assert!(!err.contains("mismatch"), "{err}");
    assert!(echo_from_root(net.ip(1), PORT, short).is_err());
    echo_from(&net, 0, net.ip(2), Duration::from_secs(3)).expect("0 -> 2 while 1 is cut");
    echo_from(&net, 2, net.ip(0), Duration::from_secs(3)).expect("2 -> 0 while 1 is cut");

    net.restore(1).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || echo_from(
            &net,
            2,
            net.ip(1),
            short
        )
        .is_ok()),
        "node 1 unreachable after restore: {:?}",
        echo_from(&net, 2, net.ip(1), short)
    );
    echo_from_root(net.ip(1), PORT, short).expect("root -> 1 after restore");

    // Drop kills what still runs inside and removes everything.
    let names = Names::of(&net);
    drop(net);
    for (i, server) in servers.iter_mut().enumerate() {
        assert!(
            exited_within(server, Duration::from_secs(5)),
            "server in node {i} survived the drop"
        );
    }
    names.assert_gone();
}

#[test]
fn two_testnets_at_once_do_not_collide() {
    require_netns();
    // Created concurrently to race the subnet choice as well.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| TestNet::create(2));
        let b = s.spawn(|| TestNet::create(2));
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert_ne!(a.bridge(), b.bridge());
    for i in 0..2 {
        for j in 0..2 {
            assert_ne!(a.ns(i), b.ns(j));
        }
    }
    let subnet = |net: &TestNet| net.host_ip().octets()[..3].to_vec();
    assert_ne!(subnet(&a), subnet(&b), "both TestNets got the same /24");
    assert!(a.bridge().len() <= 15 && b.bridge().len() <= 15);

    let _servers: Vec<Child> = [&a, &b].iter().map(|net| start_server(net, 0)).collect();
    let short = Duration::from_secs(1);
    for net in [&a, &b] {
        let ip = net.ip(0);
        assert!(
            wait_until(Duration::from_secs(10), || echo_from_root(ip, PORT, short)
                .is_ok()),
            "echo server in {} never answered",
            net.ns(0)
        );
        echo_from(net, 1, ip, Duration::from_secs(3)).unwrap();
    }

    let names = [Names::of(&a), Names::of(&b)];
    drop(a);
    drop(b);
    for n in &names {
        n.assert_gone();
    }
}

/// Not a test on its own: run by `stale_leftovers_are_swept` in a child process, where it
/// creates a TestNet with a process inside, prints the names and dies without dropping.
#[test]
fn leaky_child_helper() {
    if std::env::var_os("SHOAL_NETNS_LEAKY_CHILD").is_none() {
        return;
    }
    let net = TestNet::create(2).unwrap();
    let sleeper = net
        .command(0, "sleep")
        .arg("60")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // `ip netns exec` joins the namespace after it starts: a sweep in between would not find
    // the process in it, and delete the namespace from under it.
    let joined = wait_until(Duration::from_secs(20), || {
        Command::new("ip")
            .args(["netns", "pids", net.ns(0)])
            .output()
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .any(|p| p == sleeper.id().to_string())
            })
    });
    assert!(joined, "the sleeper joins its namespace");
    println!(
        "LEAK {} {} {} {} {}",
        std::process::id(),
        net.bridge(),
        net.ns(0),
        net.ns(1),
        sleeper.id()
    );
    std::io::stdout().flush().unwrap();
    std::process::abort();
}

#[test]
fn stale_leftovers_are_swept() {
    require_netns();
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe);
    child
        .args([
            "--exact",
            "leaky_child_helper",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("SHOAL_NETNS_LEAKY_CHILD", "1");
    let (ok, out, err) = run_bounded(child, Duration::from_secs(30));
    assert!(!ok, "the leaky child was supposed to abort");
    // libtest prints "test leaky_child_helper ... " on the same line first.
    let line = out
        .split_once("LEAK ")
        .and_then(|(_, rest)| rest.lines().next())
        .unwrap_or_else(|| panic!("no LEAK line from the child: {out} {err}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let [owner, bridge, ns0, ns1, sleeper] = words[..] else {
        panic!("bad LEAK line {line:?}")
    };
    let sleeper: u32 = sleeper.parse().unwrap();

    // Any concurrent TestNet::create (another test here, or another process) may sweep the
    // leftovers before we do, so their presence is not asserted; their absence afterwards is.
    netns::sweep_stale();
    Names {
        bridge: bridge.to_string(),
        namespaces: vec![ns0.to_string(), ns1.to_string()],
    }
    .assert_gone();
    assert!(
        wait_until(Duration::from_secs(5), || !shoal_testkit::alive(sleeper)),
        "process {sleeper} inside the stale namespace survived the sweep"
    );
    let claims: Vec<String> = std::fs::read_dir("/run/shoal-testkit")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !claims.iter().any(|c| c.trim() == owner),
        "subnet claim of dead process {owner} left behind"
    );
}

#[test]
fn a_panicking_test_still_cleans_up() {
    require_netns();
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::panic::catch_unwind(move || {
        let net = TestNet::create(2).unwrap();
        let sleeper = net
            .command(1, "sleep")
            .arg("60")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        tx.send((Names::of(&net), sleeper)).unwrap();
        panic!("deliberate panic with a TestNet alive");
    });
    assert!(result.is_err());
    let (names, mut sleeper) = rx.recv().unwrap();
    names.assert_gone();
    assert!(
        exited_within(&mut sleeper, Duration::from_secs(5)),
        "process inside the namespace survived the unwinding drop"
    );
}
