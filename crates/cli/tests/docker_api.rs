//! The Docker Engine API on the daemon's socket, driven by raw requests and by the real
//! docker CLI (`DOCKER_HOST=unix://.../shoal.sock`).

use shoal_testkit::Daemon;
#[path = "support/golden.rs"]
mod golden;
use golden::{assert_like_swarm, golden_stdout, masked};
use std::path::Path;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn ping_advertises_the_api_version_and_the_swarm_state() {
    let d = Daemon::start(bin());
    for path in ["/_ping", "/v1.44/_ping", "/v1.24/_ping"] {
        let (code, head, body) = d.http("GET", path);
        assert_eq!(code, 200, "{path}: {head}");
        assert_eq!(body, "OK", "{path}");
        assert_eq!(header(&head, "Api-Version"), Some("1.44"), "{head}");
        assert_eq!(header(&head, "Ostype"), Some("linux"), "{head}");
        assert_eq!(header(&head, "Swarm"), Some("inactive"), "{head}");
    }
    let (code, head, body) = d.http("HEAD", "/_ping");
    assert_eq!(code, 200, "{head}");
    assert!(body.is_empty(), "{body:?}");
    assert!(d.init().ok(), "{}", d.log());
    let (_, head, _) = d.http("HEAD", "/_ping");
    assert_eq!(header(&head, "Swarm"), Some("active/manager"), "{head}");
}

#[test]
fn unknown_routes_and_versions_get_docker_style_errors() {
    let d = Daemon::start(bin());
    let (code, head, body) = d.http("GET", "/v1.44/no/such/route");
    assert_eq!(code, 404, "{head}");
    let json: serde_json::Value = serde_json::from_str(&body).expect(&body);
    assert_eq!(json["message"], "page not found", "{body}");
    let (code, _, body) = d.http("GET", "/no/such/route");
    assert_eq!(code, 404, "{body}");
    let (code, _, body) = d.http("GET", "/v1.12/_ping");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("client version 1.12 is too old"), "{body}");
    let (code, _, body) = d.http("GET", "/v1.99/_ping");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("client version 1.99 is too new"), "{body}");
    // Stubs clients probe: no containers listed here, no registry to ask.
    let (code, _, body) = d.http("GET", "/v1.44/containers/json");
    assert_eq!((code, body.trim()), (200, "[]"));
    let (code, _, _) = d.http("GET", "/v1.44/distribution/img:1/json");
    assert_eq!(code, 404);
    // shoal's own API is untouched by the Docker routes.
    let (code, _, body) = d.http("GET", "/v1/info");
    assert_eq!(code, 200, "{body}");
}

/// A service's environment, as `docker service inspect --format` shows it.
const ENV: &str = "{{.Spec.TaskTemplate.ContainerSpec.Env}}";

/// The docker CLI drives a shoal cluster as it drives a swarm: node ls, service create with
/// its progress, ls, ps, inspect, scale, update, rollback and rm; outputs compared with
/// real Swarm's, and traffic reaches the service through the mesh.
#[test]
fn the_docker_cli_drives_services() {
    let d = Daemon::start(bin());
    assert!(d.init().ok(), "{}", d.log());
    let version = d.docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert!(version.ok(), "{version:?}");
    assert_eq!(version.stdout.trim(), "1.44");
    let info = d.docker(&[
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.NodeID}}",
    ]);
    assert_eq!(
        info.stdout.trim(),
        format!("active true {}", d.node_id()),
        "{info:?}"
    );
    let engine = golden::engine(&d);
    let nodes = d.docker(&["node", "ls"]);
    assert!(nodes.ok(), "{nodes:?}");
    assert_like_swarm("node-ls", &nodes.stdout, &[d.node_id()], &engine, &[]);
    let node = d.node_id();
    let update = d.docker(&["node", "update", "--label-add", "zone=a", &node]);
    assert!(update.ok(), "{update:?}");
    let labels = d.docker(&["node", "inspect", &node, "--format", "{{.Spec.Labels}}"]);
    assert_eq!(labels.stdout.trim(), "map[zone:a]", "{labels:?}");
    let drain = d.docker(&["node", "update", "--availability", "drain", &node]);
    assert!(drain.ok(), "{drain:?}");
    let active = d.docker(&["node", "update", "--availability", "active", &node]);
    assert!(active.ok(), "{active:?}");
    let demote = d.docker(&["node", "demote", &node]);
    assert!(!demote.ok(), "{demote:?}");
    assert!(demote.stderr.contains("last manager"), "{demote:?}");
    let rm = d.docker(&["node", "rm", &node]);
    assert!(!rm.ok() && rm.stderr.contains("is a manager"), "{rm:?}");
    let token = d.docker(&["swarm", "join-token", "worker"]);
    assert!(token.ok(), "{token:?}");
    assert!(
        token.stdout.contains(&d.worker_token()),
        "{token:?} lacks {}",
        d.worker_token()
    );

    let port = shoal_testkit::free_port();
    let publish = format!("{port}:80");
    let create = d.docker(&[
        "service",
        "create",
        "--name",
        "web",
        "--label",
        "com.shoal.runtime=process",
        "--replicas",
        "2",
        "-p",
        &publish,
        "shoal",
        "whoami",
    ]);
    assert!(create.ok(), "{create:?}\n{}", d.log());
    let id = create
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    assert!(create.stdout.contains("converged"), "{}", create.stdout);
    let answer = shoal_testkit::http_get(port, "/").expect("through the mesh");
    assert!(shoal_testkit::whoami_name(&answer).is_some(), "{answer}");

    // Logs as Docker prints them: `web.1.<id>@<host>    | <line>`, from Docker's
    // multiplexed frames with the swarm details.
    let mut logs = d.docker(&["service", "logs", "web"]);
    let logged = shoal_testkit::wait_until(std::time::Duration::from_secs(30), || {
        logs = d.docker(&["service", "logs", "web"]);
        logs.stdout
            .lines()
            .any(|l| l.starts_with("web.1.") && l.contains('@') && l.contains("| whoami web.1."))
    });
    assert!(logged && logs.ok(), "{logs:?}");

    let swap = [
        ("shoal:latest", "shoal-golden/app:1"),
        (publish.as_str(), "8080:80"),
    ];
    let swap_port = format!("*:{port}->80/tcp");
    let mut swaps = swap.to_vec();
    swaps.push((swap_port.as_str(), "*:8080->80/tcp"));
    let ls = d.docker(&["service", "ls"]);
    assert_like_swarm(
        "service-ls",
        &ls.stdout,
        std::slice::from_ref(&id),
        &engine,
        &swaps,
    );
    let tasks: Vec<String> = d
        .docker(&["service", "ps", "-q", "web"])
        .stdout
        .lines()
        .map(str::to_owned)
        .collect();
    let mut ids = tasks.clone();
    ids.push(id.clone());
    let ps = d.docker(&["service", "ps", "web"]);
    assert_like_swarm("service-ps", &ps.stdout, &ids, &engine, &swaps);
    let name = d.docker(&[
        "service",
        "inspect",
        "web",
        "--format",
        "{{.Spec.Name}} {{.ID}}",
    ]);
    assert_eq!(name.stdout.trim(), format!("web {id}"), "{name:?}");
    // `service inspect` asks with insertDefaults=true: what the CLI left out, as shoal runs it.
    let defaults = d.docker(&[
        "service",
        "inspect",
        "web",
        "--format",
        "{{.Spec.TaskTemplate.RestartPolicy.Condition}} {{.Spec.UpdateConfig.Order}} \
         {{.Spec.TaskTemplate.ContainerSpec.StopGracePeriod}} {{.Spec.TaskTemplate.Runtime}}",
    ]);
    assert_eq!(
        defaults.stdout.trim(),
        "any stop-first 10s container",
        "{defaults:?}"
    );

    let scale = d.docker(&["service", "scale", "web=3"]);
    assert!(
        scale.ok() && scale.stdout.contains("converged"),
        "{scale:?}"
    );
    let replicas = d.docker(&["service", "ls", "--format", "{{.Replicas}}"]);
    assert_eq!(replicas.stdout.trim(), "3/3", "{replicas:?}");
    let update = d.docker(&["service", "update", "--env-add", "X=1", "web"]);
    assert!(
        update.ok() && update.stdout.contains("converged"),
        "{update:?}"
    );
    let env = d.docker(&["service", "inspect", "web", "--format", ENV]);
    assert_eq!(env.stdout.trim(), "[X=1]", "{env:?}");
    let rollback = d.docker(&["service", "rollback", "web"]);
    assert!(rollback.ok(), "{rollback:?}");
    let env = d.docker(&["service", "inspect", "web", "--format", ENV]);
    assert_eq!(env.stdout.trim(), "[]", "{env:?}");
    // A rollback undoes the last update only: after a scale, the scale, restarting no task.
    let running = |d: &Daemon| {
        let mut ids: Vec<String> = d
            .docker(&[
                "service",
                "ps",
                "-q",
                "--filter",
                "desired-state=running",
                "web",
            ])
            .stdout
            .lines()
            .map(str::to_owned)
            .collect();
        ids.sort();
        ids
    };
    let scale = d.docker(&["service", "scale", "web=2"]);
    assert!(scale.ok(), "{scale:?}");
    let before = running(&d);
    assert_eq!(before.len(), 2, "{before:?}");
    let rollback = d.docker(&["service", "rollback", "web"]);
    assert!(rollback.ok(), "{rollback:?}");
    let replicas = d.docker(&[
        "service",
        "inspect",
        "web",
        "--format",
        "{{.Spec.Mode.Replicated.Replicas}}",
    ]);
    assert_eq!(replicas.stdout.trim(), "3", "{replicas:?}");
    let env = d.docker(&["service", "inspect", "web", "--format", ENV]);
    assert_eq!(env.stdout.trim(), "[]", "{env:?}");
    let three = shoal_testkit::wait_until(std::time::Duration::from_secs(30), || {
        running(&d).len() == 3
    });
    let after = running(&d);
    assert!(
        three && before.iter().all(|t| after.contains(t)),
        "{before:?} -> {after:?}"
    );

    let missing = d.docker(&["service", "scale", "nosuch=1"]);
    assert!(!missing.ok(), "{missing:?}");
    assert!(
        missing.stderr.contains("service nosuch not found"),
        "{missing:?}"
    );
    let missing = d.docker(&["service", "inspect", "nosuch"]);
    assert!(
        missing.stderr.contains("no such service: nosuch"),
        "{missing:?}"
    );

    let rm = d.docker(&["service", "rm", "web"]);
    assert!(rm.ok(), "{rm:?}");
    let ls = d.docker(&["service", "ls", "-q"]);
    assert!(ls.ok() && ls.stdout.trim().is_empty(), "{ls:?}");
}

/// Malformed specs and filters are refused with 400 and one line naming the problem;
/// nothing is written.
#[test]
fn malformed_docker_requests_are_refused_naming_the_field() {
    let d = Daemon::start(bin());
    assert!(d.init().ok(), "{}", d.log());
    let bad = [
        (
            r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"img"}},"Mode":{"Replicated":{"Replicas":-1}}}"#,
            "Replicas",
        ),
        (
            r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":""}}}"#,
            "Image",
        ),
        (
            r#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"img"}},"EndpointSpec":{"Ports":[{"Protocol":"icmp","TargetPort":80}]}}"#,
            "Protocol",
        ),
        ("not json", "invalid request body"),
    ];
    for (body, names) in bad {
        let (code, _, answer) = d.http_with("POST", "/v1.44/services/create", Some(body));
        assert_eq!(code, 400, "{body}: {answer}");
        let json: serde_json::Value = serde_json::from_str(&answer).expect(&answer);
        let message = json["message"].as_str().unwrap_or_default();
        assert!(message.contains(names), "{body}: {message}");
        assert!(!message.contains('\n'), "{message}");
    }
    let (code, _, answer) = d.http(
        "GET",
        "/v1.44/services?filters=%7B%22nosuch%22%3A%7B%22x%22%3Atrue%7D%7D",
    );
    assert_eq!(code, 400, "{answer}");
    assert!(answer.contains("nosuch"), "{answer}");
    let (code, _, answer) = d.http("GET", "/v1.44/services");
    assert_eq!((code, answer.trim()), (200, "[]"));
}

/// `docker swarm init`, `join` and `leave` against shoal daemons on two hosts (network
/// namespaces): the output of `init` is real Swarm's, the second node joins as a worker
/// and becomes ready, and leaves.
#[test]
fn docker_swarm_init_and_join_make_a_cluster() {
    assert!(
        shoal_testkit::netns::available(),
        "multi-node tests need root and iproute2 (network namespaces)"
    );
    let net = shoal_testkit::TestNet::create(2).expect("test network");
    let first = Daemon::start_in(bin(), &net, 0);
    let ip0 = net.ip(0).to_string();
    let control = format!("{ip0}:2377");
    let init = first.docker(&["swarm", "init", "--advertise-addr", &ip0]);
    assert!(init.ok(), "{init:?}\n{}", first.log());
    let golden = golden_stdout("swarm-init").replace("127.0.0.1", &ip0);
    let ours = masked(&init.stdout, &[first.node_id()], "");
    let token = first.docker(&["swarm", "join-token", "-q", "worker"]);
    assert!(token.ok(), "{token:?}");
    let token = token.stdout.trim().to_owned();
    assert_eq!(ours.replace(&token, "<TOKEN>"), golden, "swarm init");

    let second = Daemon::start_in(bin(), &net, 1);
    let ip1 = net.ip(1).to_string();
    let join = second.docker(&[
        "swarm",
        "join",
        "--token",
        &token,
        "--advertise-addr",
        &ip1,
        &control,
    ]);
    assert!(join.ok(), "{join:?}\n{}", second.log());
    assert_eq!(join.stdout.trim(), "This node joined a swarm as a worker.");
    let ready = shoal_testkit::wait_until(std::time::Duration::from_secs(60), || {
        let ls = first.docker(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"]);
        ls.stdout.lines().filter(|l| l.ends_with(" Ready")).count() == 2
    });
    assert!(ready, "{}", first.docker(&["node", "ls"]).stdout);
    let info = second.docker(&[
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
    ]);
    assert_eq!(info.stdout.trim(), "active false", "{info:?}");

    // Promoted and demoted with the docker CLI: the worker becomes a reachable manager that
    // answers the swarm routes itself, then a worker again.
    let id1 = second.node_id();
    let promote = first.docker(&["node", "promote", &id1]);
    assert!(promote.ok(), "{promote:?}");
    assert!(
        promote.stdout.contains("promoted to a manager"),
        "{promote:?}"
    );
    let status = |d: &Daemon| {
        d.docker(&[
            "node",
            "inspect",
            &id1,
            "--format",
            "{{.ManagerStatus.Reachability}}",
        ])
        .stdout
        .trim()
        .to_owned()
    };
    let manager = shoal_testkit::wait_until(std::time::Duration::from_secs(60), || {
        let control = second.docker(&["info", "--format", "{{.Swarm.ControlAvailable}}"]);
        control.stdout.trim() == "true" && status(&first) == "reachable"
    });
    assert!(
        manager,
        "{}\n{}",
        first.docker(&["node", "ls"]).stdout,
        second.log()
    );
    let from_second = second.docker(&["node", "ls", "-q"]);
    assert_eq!(from_second.stdout.lines().count(), 2, "{from_second:?}");
    let ps = second.docker(&["node", "ps", "self"]);
    assert!(ps.ok() && ps.stdout.starts_with("ID "), "{ps:?}");
    let demote = first.docker(&["node", "demote", &id1]);
    assert!(demote.ok(), "{demote:?}");
    let worker = shoal_testkit::wait_until(std::time::Duration::from_secs(60), || {
        let control = second.docker(&["info", "--format", "{{.Swarm.ControlAvailable}}"]);
        let role = first.docker(&["node", "inspect", &id1, "--format", "{{.Spec.Role}}"]);
        control.stdout.trim() == "false" && role.stdout.trim() == "worker"
    });
    assert!(
        worker,
        "{}\n{}",
        first.docker(&["node", "ls"]).stdout,
        second.log()
    );

    let leave = second.docker(&["swarm", "leave"]);
    assert!(leave.ok(), "{leave:?}\n{}", second.log());
    assert_eq!(leave.stdout.trim(), "Node left the swarm.");
    let info = second.docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    assert_eq!(info.stdout.trim(), "inactive", "{info:?}");
    // The node that left is removed from the cluster's list (forced: it may not be down yet).
    let rm = first.docker(&["node", "rm", "--force", &id1]);
    assert!(rm.ok(), "{rm:?}");
    let ls = first.docker(&["node", "ls", "-q"]);
    assert_eq!(ls.stdout.trim(), first.node_id(), "{ls:?}");
}

/// On every manager the Docker API answers as on the leader: a follower forwards the
/// swarm routes to the leader's control port, as it does shoal's own.
#[test]
fn every_manager_answers_the_docker_api() {
    let c = shoal_testkit::Cluster::start(bin(), 2, 0);
    let create = c.nodes[1].docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "fw",
        "--replicas",
        "0",
        "--label",
        "com.shoal.runtime=process",
        "shoal",
        "whoami",
    ]);
    assert!(create.ok(), "{create:?}\n{}", c.nodes[1].log());
    for d in &c.nodes {
        let ls = d.docker(&["service", "ls", "--format", "{{.Name}} {{.Replicas}}"]);
        assert_eq!(ls.stdout.trim(), "fw 0/0", "{ls:?}\n{}", d.log());
        let nodes = d.docker(&["node", "ls", "-q"]);
        assert_eq!(nodes.stdout.lines().count(), 2, "{nodes:?}");
    }
    // Events too: a follower's request streams back from the leader.
    let until = unix_time(std::time::SystemTime::now());
    for d in &c.nodes {
        let args = [
            "events",
            "--since",
            "0",
            "--until",
            &until,
            "--filter",
            "type=service",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ];
        let events = shoal_testkit::run_within(
            &mut docker_command(d, &args),
            std::time::Duration::from_secs(60),
        )
        .expect("docker events --until ends");
        assert_eq!(events.stdout.trim(), "create fw", "{events:?}\n{}", d.log());
    }
}

/// The real docker CLI on another machine's terms: `-H tcp://MANAGER:PORT --tlsverify`
/// with a client certificate from `shoal client-cert`, against the manager's control port.
fn remote_docker(d: &Daemon, tls: &[&str], args: &[&str]) -> shoal_testkit::Output {
    let out = std::process::Command::new("docker")
        .env("DOCKER_CONFIG", d.dir.path().join("remote-docker-config"))
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_API_VERSION")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .args(["-H", &format!("tcp://{}", d.control_addr())])
        .args(tls)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run docker");
    shoal_testkit::Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A remote docker CLI verifies the manager's certificate against the address it dialled
/// (an IP SAN) and shows a client certificate: `info`, `node ls`, `service create` and
/// `service ls` work; without a client certificate it is refused.
#[test]
fn a_remote_docker_cli_drives_a_manager_over_mutual_tls() {
    let d = Daemon::start(bin());
    d.init();
    let certs = d.dir.path().join("client");
    let dir = certs.to_str().unwrap_or_default();
    let issued = d.cli(&["client-cert", "--name", "laptop", "--out", dir]);
    assert!(issued.ok(), "{issued:?}");
    let (ca, cert, key) = (
        format!("{dir}/ca.pem"),
        format!("{dir}/cert.pem"),
        format!("{dir}/key.pem"),
    );
    let tls = [
        "--tlsverify",
        "--tlscacert",
        &ca,
        "--tlscert",
        &cert,
        "--tlskey",
        &key,
    ];
    let info = remote_docker(
        &d,
        &tls,
        &[
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.NodeID}}",
        ],
    );
    assert_eq!(
        info.stdout.trim(),
        format!("active true {}", d.node_id()),
        "{info:?}\n{}",
        d.log()
    );
    let nodes = remote_docker(&d, &tls, &["node", "ls", "--format", "{{.ID}} {{.Self}}"]);
    assert_eq!(
        nodes.stdout.trim(),
        format!("{} true", d.node_id()),
        "{nodes:?}"
    );
    let create = remote_docker(
        &d,
        &tls,
        &[
            "service",
            "create",
            "-d",
            "--name",
            "remote",
            "--replicas",
            "0",
            "--label",
            "com.shoal.runtime=process",
            "shoal",
            "whoami",
        ],
    );
    assert!(create.ok(), "{create:?}\n{}", d.log());
    let ls = remote_docker(
        &d,
        &tls,
        &["service", "ls", "--format", "{{.Name}} {{.Replicas}}"],
    );
    assert_eq!(ls.stdout.trim(), "remote 0/0", "{ls:?}");

    // The certificate names the manager's IP, not every name that reaches it.
    let by_name = std::process::Command::new("docker")
        .env("DOCKER_CONFIG", d.dir.path().join("remote-docker-config"))
        .args([
            "-H",
            &d.control_addr().replace("127.0.0.1", "tcp://localhost"),
        ])
        .args(tls)
        .arg("version")
        .output()
        .expect("run docker");
    let err = String::from_utf8_lossy(&by_name.stderr);
    assert!(
        !by_name.status.success() && err.contains("not localhost"),
        "{err}"
    );
    // The CA alone verifies the manager, but the manager wants a client certificate.
    let refused = remote_docker(&d, &["--tlsverify", "--tlscacert", &ca], &["node", "ls"]);
    assert!(!refused.ok(), "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("a client certificate of this cluster is required"),
        "{refused:?}"
    );
    // A revoked certificate is refused at the next call.
    assert!(d.cli(&["client-cert", "revoke", "laptop"]).ok());
    let revoked = remote_docker(&d, &tls, &["service", "ls"]);
    assert!(
        !revoked.ok() && revoked.stderr.contains("revoked"),
        "{revoked:?}"
    );
}

/// `docker swarm join-token --rotate` and `docker swarm update`: `POST
/// /swarm/update?version=N` with the whole spec. A rotated token is refused for joins and
/// the new one is taken; a stale version is refused as Docker refuses it.
#[test]
fn docker_swarm_update_rotates_tokens_and_applies_settings() {
    let d = Daemon::start(bin());
    d.init();
    let old = d.worker_token();
    let manager_token = d.join_token("manager");
    let rotate = d.docker(&["swarm", "join-token", "--rotate", "worker"]);
    assert!(rotate.ok(), "{rotate:?}\n{}", d.log());
    assert!(
        rotate
            .stdout
            .starts_with("Successfully rotated worker join token."),
        "{rotate:?}"
    );
    let shown = d.docker(&["swarm", "join-token", "-q", "worker"]);
    let new = shown.stdout.trim().to_owned();
    assert!(shown.ok() && new.starts_with("SWMTKN-1-"), "{shown:?}");
    assert_ne!(new, old, "the worker token changed");
    assert!(rotate.stdout.contains(&new), "{rotate:?}");
    assert_eq!(
        d.worker_token(),
        new,
        "shoal's own API shows the same token"
    );
    assert_eq!(
        d.join_token("manager"),
        manager_token,
        "only the worker token"
    );

    // A stale version is refused, and so is a malformed request, naming the problem.
    let (code, _, body) = d.http_with(
        "POST",
        "/v1.44/swarm/update?version=1&rotateWorkerToken=true",
        Some("{}"),
    );
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("update out of sequence"), "{body}");
    assert_eq!(d.worker_token(), new, "a refused update changes nothing");
    let (code, _, body) = d.http_with(
        "POST",
        "/v1.44/swarm/update?rotateWorkerToken=true",
        Some("{}"),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("invalid swarm version"), "{body}");

    // Settings shoal acts on, from the whole spec the CLI posts back.
    let update = d.docker(&["swarm", "update", "--dispatcher-heartbeat", "2s"]);
    assert!(update.ok(), "{update:?}");
    let heartbeat = d.docker(&[
        "info",
        "--format",
        "{{.Swarm.Cluster.Spec.Dispatcher.HeartbeatPeriod}}",
    ]);
    assert_eq!(heartbeat.stdout.trim(), "2s", "{heartbeat:?}");
    let lock = d.docker(&["swarm", "update", "--autolock=true"]);
    assert!(lock.ok(), "{lock:?}");
    let key = d.docker(&["swarm", "unlock-key", "-q"]);
    let shoal_key = d.cli(&["unlock-key", "-q"]);
    assert!(
        key.ok() && key.stdout.trim().starts_with("SWMKEY-1-"),
        "{key:?}"
    );
    assert_eq!(key.stdout.trim(), shoal_key.stdout.trim());
    assert!(lock.stdout.contains(key.stdout.trim()), "{lock:?}");

    // The old token is refused for a join; the new one is taken.
    let joiner = Daemon::start(bin());
    let control = d.control_addr();
    let refused = joiner.cli(&["join", "--token", &old, &control]);
    assert!(
        !refused.ok() && refused.stderr.contains("rotated"),
        "{refused:?}"
    );
    let joined = joiner.cli(&["join", "--token", &new, &control]);
    assert!(joined.ok(), "{joined:?}\n{}", joiner.log());
    let workers = shoal_testkit::wait_until(std::time::Duration::from_secs(60), || {
        d.docker(&["node", "ls", "-q", "--filter", "role=worker"])
            .stdout
            .lines()
            .count()
            == 1
    });
    assert!(workers, "{}", d.docker(&["node", "ls"]).stdout);
}

/// A `docker` command against `d`'s socket, not yet run (for commands that stream).
fn docker_command(d: &Daemon, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new("docker");
    cmd.env("DOCKER_HOST", format!("unix://{}", d.socket().display()))
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_API_VERSION")
        .args(args);
    cmd
}

/// Unix seconds with nanoseconds, as `docker events --since/--until` take them.
fn unix_time(t: std::time::SystemTime) -> String {
    let d = t
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch");
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// `docker events --filter type=service` follows services being created, updated and
/// removed (the create kept from before it connected, the rest as they happen), and no
/// node events; `--until` in the past answers the kept events and ends.
#[test]
fn docker_events_follow_services() {
    let d = Daemon::start(bin());
    d.init();
    let start = unix_time(std::time::SystemTime::now() - std::time::Duration::from_secs(1));
    let create = d.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "ev",
        "--replicas",
        "0",
        "--label",
        "com.shoal.runtime=process",
        "shoal",
        "whoami",
    ]);
    assert!(create.ok(), "{create:?}");
    let id = create.stdout.trim().to_owned();
    let mut events = docker_command(
        &d,
        &[
            "events",
            "--since",
            &start,
            "--filter",
            "type=service",
            "--format",
            "{{json .}}",
        ],
    )
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("docker events");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let stdout = events.stdout.take().expect("stdout");
    let reader = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let json = serde_json::from_str(&line).unwrap_or(serde_json::Value::Null);
                lines.lock().expect("lines").push(json);
            }
        })
    };
    let seen = |want: &str| {
        let lines = lines.lock().expect("lines");
        lines.iter().any(|e| e["Action"] == want)
    };
    let minute = std::time::Duration::from_secs(60);
    assert!(
        shoal_testkit::wait_until(minute, || seen("create")),
        "{:?}",
        lines.lock().expect("lines")
    );
    // Connected: what follows streams as it happens.
    let me = d.node_id();
    assert!(d
        .docker(&["node", "update", "--label-add", "zone=a", &me])
        .ok());
    let update = d.docker(&["service", "update", "-d", "--label-add", "tier=web", "ev"]);
    assert!(update.ok(), "{update:?}");
    assert!(d.docker(&["service", "rm", "ev"]).ok());
    assert!(
        shoal_testkit::wait_until(minute, || seen("remove")),
        "{:?}",
        lines.lock().expect("lines")
    );
    let _ = events.kill();
    let _ = events.wait();
    let _ = reader.join();
    let lines = lines.lock().expect("lines").clone();
    let got: Vec<(String, String, String, String)> = lines
        .iter()
        .map(|e| {
            let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
            (
                s(&e["Type"]),
                s(&e["Action"]),
                s(&e["Actor"]["ID"]),
                s(&e["Actor"]["Attributes"]["name"]),
            )
        })
        .collect();
    // The update may be followed by its rollout's (`updatestate.new`) ones, as in Swarm.
    let mut got = got;
    got.dedup();
    let want: Vec<(String, String, String, String)> = ["create", "update", "remove"]
        .iter()
        .map(|a| ("service".into(), a.to_string(), id.clone(), "ev".into()))
        .collect();
    assert_eq!(got, want, "{lines:?}");
    for e in &lines {
        assert_eq!(e["scope"], "swarm", "{e}");
        let nanos = e["timeNano"].as_i64().unwrap_or_default();
        assert_eq!(e["time"].as_i64(), Some(nanos / 1_000_000_000), "{e}");
    }

    // An `until` already past: the kept events it chooses, then the end.
    let until = unix_time(std::time::SystemTime::now());
    let past = shoal_testkit::run_within(
        &mut docker_command(
            &d,
            &[
                "events",
                "--since",
                &start,
                "--until",
                &until,
                "--filter",
                "event=remove",
                "--format",
                "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
            ],
        ),
        minute,
    )
    .expect("docker events --until ends");
    assert_eq!(past.stdout.trim(), "service remove ev", "{past:?}");
    // The node's label change was an event too, of type node.
    let nodes = shoal_testkit::run_within(
        &mut docker_command(
            &d,
            &[
                "events",
                "--since",
                &start,
                "--until",
                &until,
                "--filter",
                &format!("node={me}"),
                "--format",
                "{{.Type}} {{.Action}} {{.Actor.ID}}",
            ],
        ),
        minute,
    )
    .expect("docker events --until ends");
    assert!(
        nodes
            .stdout
            .lines()
            .any(|l| l == format!("node update {me}")),
        "{nodes:?}"
    );
    let bad = d.docker(&["events", "--filter", "colour=red", "--until", &until]);
    assert!(
        !bad.ok() && bad.stderr.contains("invalid filter 'colour'"),
        "{bad:?}"
    );
}
