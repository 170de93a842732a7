//! Networks, secrets, configs and stacks through the real docker CLI against a shoal
//! daemon: what the commands print compared with real Swarm's goldens, what a task finds in
//! its files, and `docker stack rm` leaving nothing behind.

use shoal_testkit::{wait_until, Daemon};
use std::path::Path;
use std::time::Duration;

#[path = "support/golden.rs"]
mod golden;
use golden::{assert_like_swarm, engine};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

/// Every file under `dir` holding `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_holding(&p, needle));
        } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
            out.push(p);
        }
    }
    out
}

/// Networks, secrets and configs made, listed, inspected and removed with the docker CLI;
/// a process task reads its secret and its templated config from the files it is given;
/// a secret in use cannot be removed; the secret's text is nowhere in the node's data
/// directory or log.
#[test]
fn the_docker_cli_manages_networks_secrets_and_configs() {
    let d = Daemon::start(bin());
    assert!(d.init().ok(), "{}", d.log());
    let engine = engine(&d);

    let net = d.docker(&["network", "create", "-d", "overlay", "net1"]);
    assert!(net.ok(), "{net:?}");
    let ls = d.docker(&[
        "network",
        "ls",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}}",
    ]);
    let mut names: Vec<&str> = ls.stdout.lines().collect();
    names.sort();
    assert_eq!(
        names,
        ["net1 overlay swarm", "shoal overlay swarm"],
        "{ls:?}"
    );
    let again = d.docker(&["network", "create", "-d", "overlay", "net1"]);
    assert!(
        !again.ok() && again.stderr.contains("already exists"),
        "{again:?}"
    );
    let bridge = d.docker(&["network", "create", "-d", "bridge", "net2"]);
    assert!(
        !bridge.ok() && bridge.stderr.contains("overlay"),
        "{bridge:?}"
    );
    assert_eq!(bridge.stderr.trim().lines().count(), 1, "{bridge:?}");

    let secret = "hunter2-a1b2c3-secret";
    let created = d.docker_with_input(&["secret", "create", "s1", "-"], secret.as_bytes());
    assert!(created.ok(), "{created:?}");
    let s1 = created.stdout.trim().to_owned();
    let ls = d.docker(&["secret", "ls"]);
    assert_like_swarm(
        "secret-ls",
        &ls.stdout,
        std::slice::from_ref(&s1),
        &engine,
        &[],
    );
    let inspect = d.docker(&["secret", "inspect", "s1"]);
    assert!(!inspect.stdout.contains("Data"), "{inspect:?}");
    assert_like_swarm(
        "secret-inspect",
        &inspect.stdout,
        std::slice::from_ref(&s1),
        &engine,
        &[],
    );
    let template = b"slot={{.Task.Slot}} service={{.Service.Name}} mode={{env \"MODE\"}} pw={{secret \"s1\"}}\n";
    let cfg = d.docker_with_input(
        &["config", "create", "--template-driver", "golang", "c1", "-"],
        template,
    );
    assert!(cfg.ok(), "{cfg:?}");
    let empty = d.docker_with_input(&["secret", "create", "s2", "-"], b"");
    assert!(!empty.ok() && empty.stderr.contains("empty"), "{empty:?}");
    let big = vec![b'x'; 500 * 1024 + 1];
    let big = d.docker_with_input(&["secret", "create", "s3", "-"], &big);
    assert!(!big.ok() && big.stderr.contains("at most"), "{big:?}");
    let ls = d.docker(&["secret", "ls", "-q"]);
    assert_eq!(
        ls.stdout.trim(),
        s1,
        "refused secrets are not stored: {ls:?}"
    );

    let script = "cat \"$SHOAL_SECRET_S1\"; echo; cat \"$SHOAL_CONFIG_APP_CONF\"; \
                  stat -c '%a %u' \"$SHOAL_SECRET_S1\"; exec sleep 600";
    let create = d.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "reader",
        "--label",
        "com.shoal.runtime=process",
        "--network",
        "net1",
        "--env",
        "MODE=prod",
        "--secret",
        "s1",
        "--config",
        "source=c1,target=/etc/app.conf",
        "sh",
        "-c",
        script,
    ]);
    assert!(create.ok(), "{create:?}");
    let mut logs = d.docker(&["service", "logs", "--raw", "reader"]);
    let read = wait_until(Duration::from_secs(60), || {
        logs = d.docker(&["service", "logs", "--raw", "reader"]);
        logs.stdout.contains("444 0")
    });
    assert!(read, "{logs:?}\n{}", d.log());
    assert!(logs.stdout.contains(secret), "{logs:?}");
    assert!(
        logs.stdout
            .contains(&format!("slot=1 service=reader mode=prod pw={secret}")),
        "{logs:?}"
    );
    let vip_networks = d.docker(&[
        "service",
        "inspect",
        "reader",
        "--format",
        "{{len .Endpoint.VirtualIPs}}",
    ]);
    assert_eq!(vip_networks.stdout.trim(), "2", "{vip_networks:?}");

    let in_use = d.docker(&["secret", "rm", "s1"]);
    assert!(
        !in_use.ok() && in_use.stderr.contains("reader"),
        "{in_use:?}"
    );
    let in_use = d.docker(&["network", "rm", "net1"]);
    assert!(
        !in_use.ok() && in_use.stderr.contains("reader"),
        "{in_use:?}"
    );

    // The secret reached the task's file and its log, and nothing else in plain text:
    // the task's log goes with its service.
    assert!(d.docker(&["service", "rm", "reader"]).ok());
    let forgotten = wait_until(Duration::from_secs(30), || {
        files_holding(d.dir(), secret.as_bytes()).is_empty()
    });
    assert!(
        forgotten,
        "secret in plain text: {:?}",
        files_holding(d.dir(), secret.as_bytes())
    );
    assert!(!d.log().contains(secret));
    for rm in [
        ["secret", "rm", "s1"],
        ["config", "rm", "c1"],
        ["network", "rm", "net1"],
    ] {
        let out = d.docker(&rm);
        assert!(out.ok(), "{rm:?}: {out:?}");
    }
    let ls = d.docker(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(ls.stdout.trim(), "shoal", "{ls:?}");
}

/// The golden stack (two services, a secret, a config, Traefik labels, the default
/// network) deployed with `docker stack deploy`, as process services of shoal's built-in
/// workloads; ls, services and ps compared with real Swarm's; `docker stack rm` leaves no
/// service, network, secret or config behind.
#[test]
fn docker_stack_deploy_and_rm() {
    let d = Daemon::start(bin());
    assert!(d.init().ok(), "{}", d.log());
    let engine = engine(&d);
    let port = shoal_testkit::free_port();
    let echo_port = shoal_testkit::free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/docker/stack");
    for f in ["secret.txt", "config.txt"] {
        std::fs::copy(golden.join(f), dir.path().join(f)).expect("copy");
    }
    let compose = format!(
        r#"services:
  web:
    image: shoal
    command: ["whoami"]
    environment:
      SHOAL_TASK_NAME: "{{{{.Task.Name}}}}"
    ports:
      - "{port}:80"
    secrets:
      - s1
    configs:
      - source: c1
        target: /etc/c1.conf
    deploy:
      replicas: 2
      labels:
        com.shoal.runtime: process
        traefik.enable: "true"
        traefik.http.routers.web.rule: "Host(`web.localhost`)"
        traefik.http.services.web.loadbalancer.server.port: "80"
  echo:
    image: shoal
    command: ["echo", "--port", "{echo_port}"]
    deploy:
      replicas: 1
      labels:
        com.shoal.runtime: process
secrets:
  s1:
    file: ./secret.txt
configs:
  c1:
    file: ./config.txt
"#
    );
    let file = dir.path().join("compose.yml");
    std::fs::write(&file, compose).expect("compose");
    let file = file.display().to_string();
    let deploy = d.docker(&["stack", "deploy", "-c", &file, "st"]);
    assert!(deploy.ok(), "{deploy:?}\n{}", d.log());
    let mut created: Vec<&str> = deploy.stdout.lines().collect();
    created.sort();
    assert_eq!(
        created,
        [
            "Creating config st_c1",
            "Creating network st_default",
            "Creating secret st_s1",
            "Creating service st_echo",
            "Creating service st_web",
        ],
        "{deploy:?}"
    );
    let running = wait_until(Duration::from_secs(60), || {
        let ps = d.docker(&["stack", "ps", "st", "--format", "{{.CurrentState}}"]);
        let states: Vec<&str> = ps.stdout.lines().collect();
        states.len() == 3 && states.iter().all(|s| s.starts_with("Running"))
    });
    assert!(
        running,
        "{:?}\n{}",
        d.docker(&["stack", "ps", "st"]),
        d.log()
    );
    let answer = shoal_testkit::http_get(port, "/").expect("through the mesh");
    assert!(answer.contains("st_web."), "{answer}");

    let ids: Vec<String> = d
        .docker(&["stack", "services", "-q", "st"])
        .stdout
        .lines()
        .chain(d.docker(&["stack", "ps", "-q", "st"]).stdout.lines())
        .map(str::to_owned)
        .collect();
    let published = format!("*:{port}->80/tcp");
    let swap = [
        ("shoal:latest", "shoal-golden/app:1"),
        (published.as_str(), "*:8081->80/tcp"),
    ];
    let ls = d.docker(&["stack", "ls"]);
    assert_like_swarm("stack-ls", &ls.stdout, &ids, &engine, &swap);
    let services = d.docker(&["stack", "services", "st"]);
    assert_like_swarm("stack-services", &services.stdout, &ids, &engine, &swap);
    let ps = d.docker(&["stack", "ps", "st"]);
    assert_like_swarm("stack-ps", &ps.stdout, &ids, &engine, &swap);
    let labels = d.docker(&[
        "service",
        "inspect",
        "st_web",
        "--format",
        "{{index .Spec.Labels \"traefik.enable\"}} {{(index .Spec.TaskTemplate.Networks 0).Aliases}}",
    ]);
    assert_eq!(labels.stdout.trim(), "true [web]", "{labels:?}");

    // Deployed again: updated in place, nothing doubled.
    let again = d.docker(&["stack", "deploy", "-c", &file, "st"]);
    assert!(again.ok(), "{again:?}");
    assert!(
        again.stdout.contains("Updating service st_web"),
        "{again:?}"
    );
    let count = d.docker(&["service", "ls", "-q"]).stdout.lines().count();
    assert_eq!(count, 2);

    let rm = d.docker(&["stack", "rm", "st"]);
    assert!(rm.ok(), "{rm:?}");
    let mut removed: Vec<&str> = rm.stdout.lines().collect();
    removed.sort();
    assert_eq!(
        removed,
        [
            "Removing config st_c1",
            "Removing network st_default",
            "Removing secret st_s1",
            "Removing service st_echo",
            "Removing service st_web",
        ],
        "{rm:?}"
    );
    for kind in ["service", "secret", "config"] {
        let ls = d.docker(&[kind, "ls", "-q"]);
        assert!(ls.ok() && ls.stdout.trim().is_empty(), "{kind}: {ls:?}");
    }
    let ls = d.docker(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(ls.stdout.trim(), "shoal", "{ls:?}");
    let gone = wait_until(Duration::from_secs(30), || {
        d.docker(&["stack", "ls", "-q"]).stdout.trim().is_empty()
            && d.http("GET", "/v1.44/tasks").2.trim() == "[]"
    });
    assert!(gone, "{:?}", d.http("GET", "/v1.44/tasks"));
}

/// `shoal service create --secret/--config/--network` takes Docker's syntax; the names are
/// resolved by the manager, a missing one refused in one line.
#[test]
fn shoal_service_create_takes_secrets_configs_and_networks() {
    let d = Daemon::start(bin());
    assert!(d.init().ok(), "{}", d.log());
    assert!(d
        .docker(&["network", "create", "-d", "overlay", "backend"])
        .ok());
    assert!(d
        .docker_with_input(&["secret", "create", "token", "-"], b"t0k3n")
        .ok());
    assert!(d
        .docker_with_input(&["config", "create", "conf", "-"], b"level=3")
        .ok());
    let missing = d.cli(&[
        "service", "create", "--name", "m", "--secret", "nosuch", "--", "sleep", "600",
    ]);
    assert!(!missing.ok(), "{missing:?}");
    assert!(
        missing.stderr.contains("secret nosuch not found"),
        "{missing:?}"
    );
    let bad = d.cli(&[
        "service",
        "create",
        "--name",
        "m",
        "--config",
        "source=conf,mode=9",
        "--",
        "sleep",
        "1",
    ]);
    assert!(!bad.ok() && bad.stderr.contains("--config"), "{bad:?}");
    let create = d.cli(&[
        "service",
        "create",
        "--name",
        "app",
        "--secret",
        "source=token,target=api_token,mode=0400",
        "--config",
        "source=conf,target=/etc/app/level.conf",
        "--network",
        "name=backend,alias=api",
        "--",
        "sh",
        "-c",
        "cat \"$SHOAL_SECRET_API_TOKEN\"; echo; cat \"$SHOAL_CONFIG_LEVEL_CONF\"; echo; \
         stat -c 'mode=%a' \"$SHOAL_SECRET_API_TOKEN\"; exec sleep 600",
    ]);
    assert!(create.ok(), "{create:?}\n{}", d.log());
    let mut logs = d.cli(&["service", "logs", "app"]);
    let read = wait_until(Duration::from_secs(60), || {
        logs = d.cli(&["service", "logs", "app"]);
        logs.stdout.contains("mode=400")
    });
    assert!(read, "{logs:?}\n{}", d.log());
    assert!(
        logs.stdout.contains("t0k3n") && logs.stdout.contains("level=3"),
        "{logs:?}"
    );
    let aliases = d.docker(&[
        "service",
        "inspect",
        "app",
        "--format",
        "{{(index .Spec.TaskTemplate.Networks 0).Aliases}}",
    ]);
    assert_eq!(aliases.stdout.trim(), "[api]", "{aliases:?}");

    // Rotation as in Swarm: a new secret at the same target, the old one then removable.
    assert!(d
        .docker_with_input(&["secret", "create", "token2", "-"], b"n3w-t0k3n")
        .ok());
    let missing = d.cli(&["service", "update", "--secret-rm", "nosuch", "app"]);
    assert!(
        !missing.ok() && missing.stderr.contains("--secret-rm"),
        "{missing:?}"
    );
    let rotate = d.cli(&[
        "service",
        "update",
        "--secret-rm",
        "token",
        "--secret-add",
        "source=token2,target=api_token,mode=0400",
        "app",
    ]);
    assert!(rotate.ok(), "{rotate:?}\n{}", d.log());
    let rotated = wait_until(Duration::from_secs(60), || {
        d.cli(&["service", "logs", "app"])
            .stdout
            .contains("n3w-t0k3n")
    });
    assert!(rotated, "{:?}", d.cli(&["service", "logs", "app"]));
    let rm = d.docker(&["secret", "rm", "token"]);
    assert!(rm.ok(), "the old secret is no longer used: {rm:?}");
}
