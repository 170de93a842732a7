//! Service VIPs and the embedded DNS on a cluster whose nodes are network namespaces of
//! the test's own: the VIPs live on each namespace's VIP interface, never on the machine's.

use shoal_testkit::{wait_until, whoami_name, Cluster, Daemon, TestNet};
use std::path::Path;
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

/// The answer to one UDP datagram sent to `ip:port` from inside node `i`, on a socket of
/// its own (bash's `/dev/udp` connects it, so only a reply from `ip:port` itself is read).
fn udp_from(c: &Cluster, i: usize, ip: &str, port: u16) -> Option<String> {
    c.bash_from(
        i,
        &format!(
            "exec 3<>/dev/udp/{ip}/{port} && printf whoami >&3 && timeout 5 dd bs=65536 count=1 status=none <&3"
        ),
    )
}

/// From inside node `i`, `vip:80` reaches two different tasks.
fn assert_vip_reaches_both(c: &Cluster, i: usize, vip: &str) {
    let mut seen = std::collections::HashSet::new();
    let ok = wait_until(Duration::from_secs(30), || {
        if let Some(name) = c.http_get_from(i, vip, 80).as_deref().and_then(whoami_name) {
            seen.insert(name);
        }
        seen.len() == 2
    });
    assert!(
        ok,
        "node {i}: VIP {vip}:80 reached only {seen:?}\n{}",
        c.nodes[i].log()
    );
}

fn vip_of(c: &Cluster, service: &str) -> String {
    let svc = c.m().json(&["service", "inspect", service]);
    svc[0]["vip"]
        .as_str()
        .unwrap_or_else(|| panic!("no vip in {svc}"))
        .to_string()
}

#[test]
fn a_service_vip_reaches_its_tasks_from_every_node() {
    let c = Cluster::start(bin(), 1, 2);
    let m = c.m();
    let out = m.cli(&[
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "2",
        "--publish",
        "80",
        "--",
        "shoal",
        "whoami",
    ]);
    assert!(out.ok(), "create: {out:?}");
    // A UDP service, started alongside.
    let out = m.cli(&[
        "service",
        "create",
        "--name",
        "names",
        "--replicas",
        "2",
        "--publish",
        "53/udp",
        "--",
        "shoal",
        "whoami",
    ]);
    assert!(out.ok(), "create names: {out:?}");
    assert!(
        wait_until(Duration::from_secs(30), || m.running_tasks("web").len()
            == 2),
        "tasks did not start: {}",
        m.log()
    );
    let vip = vip_of(&c, "web");
    assert!(vip.starts_with("10.96."), "{vip}");
    for i in 0..3 {
        assert_vip_reaches_both(&c, i, &vip);
    }

    // UDP to the VIP: every node reaches both tasks (a new socket, a new flow each time),
    // and the replies come from the VIP and port (the socket is connected to them).
    assert!(
        wait_until(Duration::from_secs(30), || m.running_tasks("names").len()
            == 2),
        "names did not start: {}",
        m.log()
    );
    let names_vip = vip_of(&c, "names");
    for i in 0..3 {
        let mut seen = std::collections::HashSet::new();
        let ok = wait_until(Duration::from_secs(20), || {
            if let Some(name) = udp_from(&c, i, &names_vip, 53)
                .as_deref()
                .and_then(whoami_name)
            {
                seen.insert(name);
            }
            seen.len() == 2
        });
        assert!(
            ok,
            "node {i}: VIP {names_vip}:53/udp reached only {seen:?}\n{}",
            c.nodes[i].log()
        );
    }

    // source-hash keeps a client on its task.
    assert!(m
        .cli(&["service", "update", "--lb", "source-hash", "web"])
        .ok());
    let one_task = wait_until(Duration::from_secs(20), || {
        let names: std::collections::HashSet<String> = (0..6)
            .filter_map(|_| {
                c.http_get_from(1, &vip, 80)
                    .as_deref()
                    .and_then(whoami_name)
            })
            .collect();
        names.len() == 1
    });
    assert!(one_task, "source-hash spread one client over several tasks");
    assert_eq!(m.running_tasks("web").len(), 2, "--lb rolled no task");

    // A process task reaches the service by name: the node's DNS, then the VIP.
    // And over UDP: `names` by its VIP.
    let script = "while true; do ip=$(dig +short @\"$SHOAL_DNS\" web); \
                  if exec 3<>/dev/tcp/$ip/80; then printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; \
                  cat <&3; exec 3<&-; fi; \
                  ip=$(dig +short @\"$SHOAL_DNS\" names); \
                  if exec 3<>/dev/udp/$ip/53; then printf whoami >&3; \
                  timeout 2 dd bs=65536 count=1 status=none <&3; exec 3<&-; fi; sleep 1; done";
    let out = m.cli(&[
        "service", "create", "--name", "client", "--", "bash", "-c", script,
    ]);
    assert!(out.ok(), "create client: {out:?}");
    let reached = wait_until(Duration::from_secs(30), || {
        let logs = m.cli(&["service", "logs", "client"]).stdout;
        logs.contains("Name: web.") && logs.contains("Name: names.")
    });
    assert!(
        reached,
        "the client task did not reach web by name: {:?}",
        m.cli(&["service", "logs", "client"])
    );

    // A target port published with proxy-protocol gets the PROXY header through the VIP
    // too, naming the VIP and port the client connected to.
    let out = m.cli(&[
        "service",
        "create",
        "--name",
        "proxied",
        "--publish",
        "target=80,proxy-protocol=v2",
        "--",
        "shoal",
        "whoami",
    ]);
    assert!(out.ok(), "create proxied: {out:?}");
    let vip = vip_of(&c, "proxied");
    let mut answer = None;
    let ok = wait_until(Duration::from_secs(20), || {
        answer = c
            .http_get_from(1, &vip, 80)
            .filter(|a| whoami_name(a).is_some());
        answer.is_some()
    });
    assert!(
        ok,
        "VIP {vip}:80 of proxied did not answer\n{}",
        c.nodes[1].log()
    );
    let answer = answer.unwrap_or_default();
    assert!(
        answer.contains("ProxyProtocol: v2 via ") && answer.contains(&format!(" to {vip}:80\n")),
        "no PROXY header naming the VIP:\n{answer}"
    );

    // A service that publishes nothing: its exposed port is reached through the VIP from
    // every node, and no node publishes it.
    let out = m.cli(&[
        "service",
        "create",
        "--name",
        "hidden",
        "--replicas",
        "2",
        "--expose",
        "80",
        "--",
        "shoal",
        "whoami",
    ]);
    assert!(out.ok(), "create hidden: {out:?}");
    let svc = m.json(&["service", "inspect", "hidden"]);
    let ports = &svc[0]["ports"];
    assert_eq!(ports[0]["mode"], "internal", "{svc}");
    assert!(ports[0].get("published").is_none(), "{svc}");
    let vip = vip_of(&c, "hidden");
    for i in [0, 2] {
        assert_vip_reaches_both(&c, i, &vip);
    }
    // Its SRV records name the exposed port at the VIP.
    let srv = short(&c, 1, &["SRV", "_80._tcp.hidden"]);
    assert_eq!(srv, ["0 10 80 hidden.shoal.internal."]);
}

/// `dig` against the cluster's DNS server, from inside node `i`: its output.
fn dig(c: &Cluster, i: usize, args: &[&str]) -> String {
    let out = c
        .net
        .command(i, "dig")
        .args(["@10.96.0.1", "+time=2", "+tries=2"])
        .args(args)
        .output()
        .expect("run dig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lines of `dig +short`, sorted.
fn short(c: &Cluster, i: usize, args: &[&str]) -> Vec<String> {
    let mut args = args.to_vec();
    args.push("+short");
    let mut lines: Vec<String> = dig(c, i, &args).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// Node addresses of the running tasks of `service`, sorted and distinct.
fn task_addrs(c: &Cluster, service: &str) -> Vec<String> {
    let mut addrs: Vec<String> = c
        .m()
        .running_tasks(service)
        .iter()
        .filter_map(|t| t["endpoint"]["addr"].as_str().map(str::to_string))
        .collect();
    addrs.sort();
    addrs.dedup();
    addrs
}

/// A resolver on `addr` answering every A question with 192.0.2.7, as the host's
/// resolvers would answer names outside the cluster.
fn fake_upstream(addr: std::net::SocketAddr) -> std::thread::JoinHandle<()> {
    let socket = std::net::UdpSocket::bind(addr).expect("bind fake upstream");
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            // The question ends after its name (a zero label) and type and class.
            let Some(end) = buf[12..n].iter().position(|b| *b == 0).map(|p| 12 + p + 5) else {
                continue;
            };
            if end > n {
                continue;
            }
            let mut reply = buf[..end].to_vec();
            reply[2] = 0x81; // response, recursion desired
            reply[3] = 0x80; // recursion available, no error
            reply[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
            reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
            if socket.send_to(&reply, from).is_err() {
                return;
            }
            if buf[12..end].starts_with(b"\x04stop") {
                return;
            }
        }
    })
}

#[test]
fn every_node_answers_service_names_and_forwards_the_rest() {
    let c = Cluster::start(bin(), 1, 2);
    let upstream = std::net::SocketAddr::from((c.net.host_ip(), 53));
    let _upstream = fake_upstream(upstream);
    let m = c.m();
    for args in [
        &[
            "service",
            "create",
            "--name",
            "web",
            "--replicas",
            "2",
            "--publish",
            "80",
            "--",
            "shoal",
            "whoami",
        ][..],
        &[
            "service",
            "create",
            "--name",
            "db",
            "--endpoint-mode",
            "dnsrr",
            "--replicas",
            "2",
            "--publish",
            "published=9000,target=9000,mode=host",
            "--",
            "shoal",
            "whoami",
        ][..],
    ] {
        let out = m.cli(args);
        assert!(out.ok(), "{args:?}: {out:?}");
    }
    assert!(
        wait_until(Duration::from_secs(30), || {
            m.running_tasks("web").len() == 2 && m.running_tasks("db").len() == 2
        }),
        "tasks did not start: {}",
        m.log()
    );
    let vip = vip_of(&c, "web");
    for i in 0..3 {
        let want_web = task_addrs(&c, "web");
        let want_db = task_addrs(&c, "db");
        let ok = wait_until(Duration::from_secs(10), || {
            short(&c, i, &["web"]) == [vip.clone()]
                && short(&c, i, &["WEB.shoal.internal"]) == [vip.clone()]
                && short(&c, i, &["tasks.web"]) == want_web
                && short(&c, i, &["db"]) == want_db
        });
        assert!(
            ok,
            "node {i}: web {:?} (VIP {vip}), tasks.web {:?} (want {want_web:?}), db {:?} (want {want_db:?})\n{}",
            short(&c, i, &["web"]),
            short(&c, i, &["tasks.web"]),
            short(&c, i, &["db"]),
            c.nodes[i].log()
        );
        let srv = short(&c, i, &["SRV", "_80._tcp.web"]);
        assert_eq!(srv, ["0 10 80 web.shoal.internal."], "node {i}");
        let srv = short(&c, i, &["SRV", "_http._tcp.db"]);
        assert_eq!(srv.len(), want_db.len(), "node {i}: {srv:?}");
        assert!(
            srv.iter().all(|r| r.contains(" 9000 ")),
            "node {i}: {srv:?}"
        );
        let unknown = dig(&c, i, &["nosuch"]);
        assert!(unknown.contains("status: NXDOMAIN"), "node {i}: {unknown}");
        let unknown = dig(&c, i, &["tasks.nosuch"]);
        assert!(unknown.contains("status: NXDOMAIN"), "node {i}: {unknown}");
        assert_eq!(
            short(&c, i, &["example.test"]),
            ["192.0.2.7"],
            "node {i}: forwarded to the node's resolver"
        );
    }

    // A scale shows in the answers as soon as the new task is ready.
    assert!(m.cli(&["service", "scale", "web=3"]).ok());
    assert!(wait_until(Duration::from_secs(30), || m
        .running_tasks("web")
        .len()
        == 3));
    let running_at = std::time::Instant::now();
    let want = task_addrs(&c, "web");
    assert!(
        wait_until(Duration::from_secs(10), || short(&c, 1, &["tasks.web"])
            == want),
        "tasks.web {:?}, want {want:?}",
        short(&c, 1, &["tasks.web"])
    );
    eprintln!(
        "tasks.web followed the scale {:?} after the API showed the task running",
        running_at.elapsed()
    );
    let _ = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| {
        s.send_to(
            b"\0\0\0\0\0\x01\0\0\0\0\0\0\x04stop\0\0\x01\0\x01",
            upstream,
        )
    });
}

/// A node with an address inside the cluster's VIP pool is refused at join, naming the
/// network, and the cluster is left as it was; without that address it joins.
#[test]
fn a_node_with_a_network_inside_the_vip_pool_is_refused_at_join() {
    let net = TestNet::create(2).expect("test network");
    let first = Daemon::start_in(bin(), &net, 0);
    first.init_with(&["--vip-pool", "10.250.0.0/16"]);
    let token = first.join_token("worker");
    let second = Daemon::start_in(bin(), &net, 1);
    let ip = |args: &[&str]| {
        let out = net.command(1, "ip").args(args).output().expect("ip");
        assert!(out.status.success(), "ip {args:?}: {out:?}");
    };
    // On the namespace's loopback: this kernel may have no dummy links.
    ip(&["address", "add", "10.250.7.1/24", "dev", "lo"]);
    let join = || {
        second.cli(&[
            "join",
            "--token",
            &token,
            "--advertise-addr",
            &net.ip(1).to_string(),
            &format!("{}:2377", net.ip(0)),
        ])
    };
    let out = join();
    assert!(!out.ok(), "joined with a network inside the pool: {out:?}");
    assert!(
        out.stderr.contains(
            "this node has 10.250.7.1/24 on lo, which overlaps the cluster's vip-pool 10.250.0.0/16"
        ),
        "{out:?}"
    );
    let nodes = first.json(&["node", "ls", "--format", "json"]);
    assert_eq!(nodes.as_array().map(Vec::len), Some(1), "{nodes}");
    ip(&["address", "del", "10.250.7.1/24", "dev", "lo"]);
    let out = join();
    assert!(out.ok(), "join: {out:?}\n{}", second.log());
}

/// A service attached to a network with an alias answers to the alias in every node's DNS
/// (`api` and `tasks.api`), its own name still winning over another service's alias.
#[test]
fn a_network_alias_resolves_to_its_service() {
    let c = Cluster::start(bin(), 1, 1);
    let m = c.m();
    let net = m.cli(&["network", "create", "backend"]);
    assert!(net.ok(), "{net:?}");
    for args in [
        &[
            "service",
            "create",
            "--name",
            "st_api",
            "--network",
            "name=backend,alias=api",
            "--network",
            "name=backend,alias=web",
            "--expose",
            "80",
            "--",
            "shoal",
            "whoami",
        ][..],
        &[
            "service", "create", "--name", "web", "--expose", "80", "--", "shoal", "whoami",
        ][..],
    ] {
        let out = m.cli(args);
        assert!(out.ok(), "{args:?}: {out:?}");
    }
    assert!(
        wait_until(Duration::from_secs(30), || {
            m.running_tasks("st_api").len() == 1 && m.running_tasks("web").len() == 1
        }),
        "tasks did not start: {}",
        m.log()
    );
    let (api, web) = (vip_of(&c, "st_api"), vip_of(&c, "web"));
    let tasks = task_addrs(&c, "st_api");
    for i in [0, 1] {
        let answered = wait_until(Duration::from_secs(10), || {
            short(&c, i, &["api"]) == [api.clone()]
                && short(&c, i, &["tasks.api"]) == tasks
                && short(&c, i, &["web"]) == [web.clone()]
        });
        assert!(
            answered,
            "node {i}: api {:?}, tasks.api {:?}, web {:?}",
            short(&c, i, &["api"]),
            short(&c, i, &["tasks.api"]),
            short(&c, i, &["web"])
        );
    }
}
