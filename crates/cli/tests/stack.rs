//! `shoal stack deploy|ls|ps|services|rm` against a real daemon: process services from a
//! compose file, with a secret, a config, the stack's network and Traefik labels; and the
//! same file deployed by the real `docker stack deploy` giving the same services.

use shoal_testkit::{free_port, http_get, wait_until, whoami_name, Daemon, Output};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

const SECRET: &str = "stack-secret-never-shown";

/// The test's stack: `web` (whoami, published on `port` or on any port) and `echo`, both
/// process services.
fn compose(port: Option<u16>, replicas: u32) -> String {
    let port = match port {
        Some(p) => format!("\"{p}:80\""),
        None => "\"80\"".into(),
    };
    format!(
        r#"version: "3.8"
services:
  web:
    image: shoal
    command: ["whoami"]
    environment:
      GREETING: hello
    ports:
      - {port}
    secrets:
      - s1
    configs:
      - source: c1
        target: /etc/c1.conf
    deploy:
      replicas: {replicas}
      labels:
        com.shoal.runtime: process
        traefik.enable: "true"
        traefik.http.routers.web.rule: "Host(`web.localhost`)"
        traefik.http.services.web.loadbalancer.server.port: "80"
      update_config:
        parallelism: 1
        order: start-first
      restart_policy:
        condition: on-failure
        delay: 1s
  echo:
    image: shoal
    command: ["echo"]
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
    )
}

/// Writes `text` as `name` beside the stack's secret and config files.
fn write_stack(d: &Daemon, name: &str, text: &str) -> PathBuf {
    let dir = d.dir.path().join("stack");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("secret.txt"), SECRET).expect("secret");
    std::fs::write(dir.join("config.txt"), "threads=4\n").expect("config");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("compose");
    path
}

fn ok(d: &Daemon, args: &[&str]) -> Output {
    let out = d.cli(args);
    assert!(out.ok(), "shoal {args:?}: {out:?}\n{}", d.log());
    assert!(
        !out.stdout.contains(SECRET) && !out.stderr.contains(SECRET),
        "{out:?}"
    );
    out
}

fn lines(out: &Output) -> Vec<String> {
    out.stdout.lines().map(str::to_owned).collect()
}

/// Waits until `stack services` shows each `(service, running/desired)`.
fn wait_running(d: &Daemon, stack: &str, want: &[(&str, &str)]) {
    let mut last = String::new();
    let done = wait_until(Duration::from_secs(60), || {
        last = d.cli(&["stack", "services", stack]).stdout;
        want.iter().all(|(name, counts)| {
            last.lines()
                .any(|l| l.contains(&format!(" {name} ")) && l.contains(&format!(" {counts} ")))
        })
    });
    assert!(done, "wanted {want:?}, last:\n{last}\n{}", d.log());
}

fn service(d: &Daemon, name: &str) -> serde_json::Value {
    d.json(&["service", "inspect", name])[0].clone()
}

fn ids(d: &Daemon, kind: &str) -> Vec<String> {
    lines(&ok(d, &[kind, "ls", "-q"]))
}

#[test]
fn a_stack_is_deployed_listed_updated_in_place_and_removed_without_a_trace() {
    let d = Daemon::start_cluster(bin());
    let port = free_port();
    let file = write_stack(&d, "compose.yml", &compose(Some(port), 2));
    let file = file.to_str().expect("utf-8 path");

    let out = ok(&d, &["stack", "deploy", "-c", file, "st"]);
    for line in [
        "Creating network st_default",
        "Creating secret st_s1",
        "Creating config st_c1",
        "Creating service st_echo",
        "Creating service st_web",
    ] {
        assert!(out.stdout.contains(line), "{line}: {out:?}");
    }
    wait_running(&d, "st", &[("st_web", "2/2"), ("st_echo", "1/1")]);
    let answer = http_get(port, "/").expect("whoami through the mesh");
    assert!(
        whoami_name(&answer).is_some_and(|n| n.starts_with("st_web.")),
        "{answer}"
    );

    let ls = ok(&d, &["stack", "ls"]);
    assert_eq!(lines(&ls), ["NAME   SERVICES", "st     2"], "{ls:?}");
    let ps = ok(&d, &["stack", "ps", "st"]).stdout;
    for task in ["st_web.1", "st_web.2", "st_echo.1"] {
        assert!(ps.contains(task), "{task}: {ps}");
    }

    // What the compose file asked for, in shoal's spec.
    let web = service(&d, "st_web");
    let spec = &web["spec"];
    let labels = &spec["labels"];
    assert_eq!(labels["com.docker.stack.namespace"], "st");
    assert_eq!(labels["com.docker.stack.image"], "shoal");
    assert_eq!(
        labels["traefik.http.routers.web.rule"],
        "Host(`web.localhost`)"
    );
    assert_eq!(spec["mode"]["replicated"]["replicas"], 2, "{spec}");
    let network: serde_json::Value = d.json(&["network", "inspect", "st_default"])[0].clone();
    assert_eq!(network["labels"]["com.docker.stack.namespace"], "st");
    let task = &spec["task"];
    assert_eq!(task["networks"][0]["network"], network["id"], "{task}");
    assert_eq!(task["networks"][0]["aliases"], serde_json::json!(["web"]));
    assert_eq!(task["secrets"][0]["name"], "st_s1", "{task}");
    assert_eq!(task["configs"][0]["target"], "/etc/c1.conf", "{task}");
    assert!(task["env"].to_string().contains("GREETING=hello"), "{task}");
    assert_eq!(task["restart"]["condition"], "on-failure", "{task}");
    assert_eq!(spec["update"]["order"], "start-first", "{spec}");
    let services_before = ids(&d, "service");
    assert_eq!(services_before.len(), 2);

    // The same file again changes nothing and duplicates nothing.
    let again = ok(&d, &["stack", "deploy", "-c", file, "st"]);
    assert!(
        again.stdout.contains("Service st_web is up to date"),
        "{again:?}"
    );
    assert!(
        again.stdout.contains("Service st_echo is up to date"),
        "{again:?}"
    );
    assert!(!again.stdout.contains("Creating"), "{again:?}");
    assert_eq!(ids(&d, "service"), services_before);
    for kind in ["network", "secret", "config"] {
        assert_eq!(ids(&d, kind).len(), 1, "{kind}");
    }

    // A changed file updates the service in place.
    std::fs::write(file, compose(Some(port), 3)).expect("rewrite");
    let update = ok(&d, &["stack", "deploy", "-c", file, "st"]);
    assert!(
        update.stdout.contains("Updating service st_web"),
        "{update:?}"
    );
    assert!(
        update.stdout.contains("Service st_echo is up to date"),
        "{update:?}"
    );
    wait_running(&d, "st", &[("st_web", "3/3"), ("st_echo", "1/1")]);
    assert_eq!(ids(&d, "service"), services_before);
    assert_eq!(service(&d, "st_web")["id"], web["id"]);

    let rm = ok(&d, &["stack", "rm", "st"]);
    for line in [
        "Removing service st_echo",
        "Removing service st_web",
        "Removing secret st_s1",
        "Removing config st_c1",
        "Removing network st_default",
    ] {
        assert!(rm.stdout.contains(line), "{line}: {rm:?}");
    }
    for kind in ["service", "network", "secret", "config"] {
        assert!(ids(&d, kind).is_empty(), "{kind} left behind");
    }
    assert_eq!(lines(&ok(&d, &["stack", "ls"])), ["NAME   SERVICES"]);
    let none = d.cli(&["stack", "services", "st"]);
    assert_eq!(none.code, 1, "{none:?}");
    assert!(
        none.stderr.contains("nothing found in stack: st"),
        "{none:?}"
    );
}

#[test]
fn a_compose_file_with_an_error_is_refused_by_file_line_and_key_and_writes_nothing() {
    let d = Daemon::start_cluster(bin());
    let bad = compose(None, 1).replace(
        "replicas: 1\n      labels:\n        com.shoal.runtime: process\nsecrets",
        "replicas: many\n      labels:\n        com.shoal.runtime: process\nsecrets",
    );
    assert!(bad.contains("replicas: many"));
    let line = bad
        .lines()
        .position(|l| l.contains("replicas: many"))
        .expect("the line")
        + 1;
    let file = write_stack(&d, "bad.yml", &bad);
    let file = file.to_str().expect("utf-8 path");
    let out = d.cli(&["stack", "deploy", "-c", file, "st"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    let want = format!("error: {file}:{line}:");
    assert!(out.stderr.starts_with(&want), "wanted {want}: {out:?}");
    assert!(
        out.stderr
            .contains("services.echo.deploy.replicas: invalid type"),
        "{out:?}"
    );

    // A reference to an undefined secret: refused before anything is made.
    let undefined = compose(None, 1).replace("      - s1\n", "      - s2\n");
    let file2 = write_stack(&d, "undefined.yml", &undefined);
    let out = d.cli(&["stack", "deploy", "-c", file2.to_str().expect("path"), "st"]);
    assert_eq!(out.code, 1, "{out:?}");
    let secrets_line = undefined
        .lines()
        .position(|l| l == "    secrets:")
        .expect("the line")
        + 1;
    let want = format!(
        "error: {}:{secrets_line}: services.web.secrets: secret \"s2\" is not defined",
        file2.display()
    );
    assert!(out.stderr.starts_with(&want), "wanted {want}: {out:?}");
    // A secret whose file is missing: refused naming the compose file, the line and the key.
    let missing = compose(None, 1).replace("file: ./secret.txt", "file: ./nope.txt");
    let file4 = write_stack(&d, "missing.yml", &missing);
    let out = d.cli(&["stack", "deploy", "-c", file4.to_str().expect("path"), "st"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    let s1_line = missing
        .lines()
        .position(|l| l == "  s1:")
        .expect("the line")
        + 1;
    let want = format!(
        "error: {}:{s1_line}: secrets.s1: cannot read secret file ",
        file4.display()
    );
    assert!(out.stderr.starts_with(&want), "wanted {want}: {out:?}");
    for kind in ["service", "network", "secret", "config"] {
        assert!(ids(&d, kind).is_empty(), "{kind} written");
    }

    // Unknown keys are warned about, one line each by path, and the rest deploys.
    let extra = compose(None, 1)
        .replace(
            "  echo:\n    image: shoal\n",
            "  echo:\n    image: shoal\n    build: .\n",
        )
        .replace(
            "secrets:\n  s1:",
            "volumes:\n  data: {}\nx-note: ignored\nsecrets:\n  s1:",
        );
    let file3 = write_stack(&d, "extra.yml", &extra);
    let file3 = file3.to_str().expect("utf-8 path");
    let out = ok(&d, &["stack", "deploy", "-c", file3, "st"]);
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(
        warnings,
        [
            format!("warning: {file3}: services.echo.build: not supported by shoal, ignored"),
            format!("warning: {file3}: volumes: not supported by shoal, ignored"),
        ],
        "{out:?}"
    );
    ok(&d, &["stack", "rm", "st"]);
    assert!(ids(&d, "service").is_empty());
}

#[test]
fn docker_stack_deploy_and_shoal_stack_deploy_make_the_same_services() {
    let d = Daemon::start_cluster(bin());
    let file = write_stack(&d, "compose.yml", &compose(None, 2));
    let file = file.to_str().expect("utf-8 path");
    let by_docker = d.docker(&["stack", "deploy", "-c", file, "dk"]);
    assert!(by_docker.ok(), "{by_docker:?}\n{}", d.log());
    ok(&d, &["stack", "deploy", "-c", file, "sh"]);

    // Each CLI sees both stacks.
    assert_eq!(
        lines(&ok(&d, &["stack", "ls"])),
        ["NAME   SERVICES", "dk     2", "sh     2"]
    );
    let docker_ls = d.docker(&["stack", "ls", "--format", "{{.Name}} {{.Services}}"]);
    assert_eq!(docker_ls.stdout.trim(), "dk 2\nsh 2", "{docker_ls:?}");

    for svc in ["web", "echo"] {
        let a = service(&d, &format!("dk_{svc}"));
        let b = service(&d, &format!("sh_{svc}"));
        let labels = |v: &serde_json::Value| {
            let mut l = v["spec"]["labels"].clone();
            l["com.docker.stack.namespace"] = serde_json::Value::Null;
            l
        };
        assert_eq!(labels(&a), labels(&b), "{svc}");
        assert_eq!(a["spec"]["labels"]["com.docker.stack.namespace"], "dk");
        assert_eq!(b["spec"]["labels"]["com.docker.stack.namespace"], "sh");
        assert_eq!(a["spec"]["mode"], b["spec"]["mode"], "{svc}");
        assert_eq!(
            a["spec"]["task"]["runtime"], b["spec"]["task"]["runtime"],
            "{svc}"
        );
        assert_eq!(a["spec"]["task"]["env"], b["spec"]["task"]["env"], "{svc}");
        assert_eq!(
            a["spec"]["task"]["networks"][0]["aliases"],
            b["spec"]["task"]["networks"][0]["aliases"],
            "{svc}"
        );
    }
    // The docker CLI lists the services and tasks of the stack shoal deployed.
    let services = d.docker(&["stack", "services", "sh", "--format", "{{.Name}}"]);
    let mut names: Vec<&str> = services.stdout.lines().collect();
    names.sort();
    assert_eq!(names, ["sh_echo", "sh_web"], "{services:?}");
    let mut ps = String::new();
    let listed = wait_until(Duration::from_secs(60), || {
        ps = d
            .docker(&["stack", "ps", "sh", "--format", "{{.Name}}"])
            .stdout;
        ["sh_web.1", "sh_web.2", "sh_echo.1"]
            .iter()
            .all(|t| ps.lines().any(|l| l == *t))
    });
    assert!(listed, "{ps}");
    let secrets = ok(&d, &["secret", "ls"]).stdout;
    assert!(
        secrets.contains("dk_s1") && secrets.contains("sh_s1"),
        "{secrets}"
    );

    // And each CLI removes the other's stack.
    ok(&d, &["stack", "rm", "dk"]);
    let rm = d.docker(&["stack", "rm", "sh"]);
    assert!(rm.ok(), "{rm:?}");
    for kind in ["service", "network", "secret", "config"] {
        assert!(ids(&d, kind).is_empty(), "{kind} left behind");
    }
}
