//! `shoal secret|config|network` against a real daemon, shoal's `/v1` routes for them, and
//! the real docker CLI seeing what shoal's CLI made (and the other way round).

use shoal_testkit::{Daemon, Output};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

const SECRET: &str = "hunter2-never-shown";

fn write(d: &Daemon, name: &str, data: &[u8]) -> PathBuf {
    let path = d.dir.path().join(name);
    std::fs::write(&path, data).expect("write file");
    path
}

/// `shoal ARGS` with `input` on its stdin.
fn cli_with_stdin(d: &Daemon, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(bin())
        .arg("-H")
        .arg(d.socket())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run shoal");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
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

/// A refusal: exit status 1 and exactly one line on stderr, which contains `want`.
fn refused(out: &Output, want: &str) {
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "one line: {out:?}");
    assert!(out.stderr.contains(want), "wanted {want:?}: {out:?}");
}

fn first_line(out: &Output) -> String {
    out.stdout
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn secrets_configs_and_networks_are_made_listed_inspected_and_removed() {
    let d = Daemon::start_cluster(bin());
    let file = write(&d, "pw.txt", SECRET.as_bytes());
    let file = file.to_str().expect("utf-8 path");
    let id = first_line(&ok(
        &d,
        &["secret", "create", "--label", "team=db", "db_pw", file],
    ));
    assert!(!id.is_empty());
    let ls = ok(&d, &["secret", "ls"]);
    assert!(
        ls.stdout.starts_with("ID") && ls.stdout.contains("db_pw"),
        "{ls:?}"
    );
    assert_eq!(ok(&d, &["secret", "ls", "-q"]).stdout.trim(), id);
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&d, &["secret", "inspect", "db_pw"]).stdout).expect("json");
    assert_eq!(inspect[0]["id"], id.as_str());
    assert_eq!(inspect[0]["labels"]["team"], "db");
    assert_eq!(inspect[0]["size"], SECRET.len());
    assert!(inspect[0].get("data").is_none(), "{inspect}");

    // Shoal's own routes never answer a secret's data either; relabelling keeps it.
    let (code, _, body) = d.http("GET", &format!("/v1/secrets/{id}"));
    assert_eq!(code, 200, "{body}");
    assert!(
        !body.contains("data") && !body.contains("aHVudGVy"),
        "{body}"
    );
    let (code, _, body) = d.http_with(
        "POST",
        "/v1/secrets/db_pw/update",
        Some(r#"{"labels":{"team":"ops"}}"#),
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(r#""team":"ops""#) && !body.contains("data"),
        "{body}"
    );
    let (code, _, body) = d.http_with(
        "POST",
        "/v1/secrets",
        Some(r#"{"name":"x","data":"eA==","driver":"vault"}"#),
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("unknown field `driver`"), "{body}");

    // A config from stdin, shown back with its data.
    let out = cli_with_stdin(
        &d,
        &[
            "config",
            "create",
            "--template-driver",
            "golang",
            "app_conf",
            "-",
        ],
        b"slot={{.Task.Slot}}\n",
    );
    assert!(out.ok(), "{out:?}");
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&d, &["config", "inspect", "app_conf"]).stdout).expect("json");
    assert_eq!(inspect[0]["data"], "c2xvdD17ey5UYXNrLlNsb3R9fQo=");
    assert_eq!(inspect[0]["templating"], "golang");
    assert!(ok(&d, &["config", "ls"]).stdout.contains("app_conf"));

    let net = first_line(&ok(&d, &["network", "create", "--label", "a=b", "backend"]));
    let ls = ok(&d, &["network", "ls"]);
    assert!(
        ls.stdout.contains("backend") && ls.stdout.contains("overlay"),
        "{ls:?}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&d, &["network", "inspect", "backend"]).stdout).expect("json");
    assert_eq!(inspect[0]["id"], net.as_str());
    assert_eq!(inspect[0]["labels"]["a"], "b");

    // In use: removal refused, naming the service.
    let svc = d.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "uses-it",
        "--label",
        "com.shoal.runtime=process",
        "--secret",
        "db_pw",
        "--config",
        "source=app_conf,target=/etc/app.conf",
        "--network",
        "backend",
        "shoal",
        "whoami",
    ]);
    assert!(svc.ok(), "{svc:?}\n{}", d.log());
    refused(
        &d.cli(&["secret", "rm", "db_pw"]),
        "in use by the following service: uses-it",
    );
    refused(&d.cli(&["config", "rm", "app_conf"]), "uses-it");
    refused(
        &d.cli(&["network", "rm", "backend"]),
        "in use by service uses-it",
    );
    ok(&d, &["service", "rm", "uses-it"]);

    assert_eq!(ok(&d, &["secret", "rm", "db_pw"]).stdout.trim(), "db_pw");
    ok(&d, &["config", "rm", "app_conf"]);
    ok(&d, &["network", "rm", "backend"]);
    for kind in ["secret", "config", "network"] {
        assert_eq!(ok(&d, &[kind, "ls", "-q"]).stdout.trim(), "", "{kind}");
    }
    refused(
        &d.cli(&["secret", "inspect", "db_pw"]),
        "secret db_pw not found",
    );
    refused(
        &d.cli(&["network", "rm", "backend"]),
        "network backend not found",
    );
}

#[test]
fn bad_input_is_refused_with_one_line_and_nothing_is_stored() {
    let d = Daemon::start_cluster(bin());
    let good = write(&d, "good.txt", b"x");
    let good = good.to_str().expect("utf-8 path");
    let empty = write(&d, "empty.txt", b"");
    let empty = empty.to_str().expect("utf-8 path");
    let big_secret = write(&d, "big1", &vec![b'a'; 500 * 1024 + 1]);
    let big_secret = big_secret.to_str().expect("utf-8 path");
    let max_secret = write(&d, "max1", &vec![b'a'; 500 * 1024]);
    let max_secret = max_secret.to_str().expect("utf-8 path");
    let big_config = write(&d, "big2", &vec![b'a'; 1000 * 1024 + 1]);
    let big_config = big_config.to_str().expect("utf-8 path");

    refused(
        &d.cli(&["secret", "create", "s", "/no/such/file"]),
        "cannot read secret file /no/such/file",
    );
    refused(
        &d.cli(&["secret", "create", "s", empty]),
        "secret data is empty",
    );
    refused(
        &d.cli(&["secret", "create", "s", big_secret]),
        "at most 512000 bytes",
    );
    refused(
        &d.cli(&["config", "create", "c", big_config]),
        "at most 1024000 bytes",
    );
    refused(
        &cli_with_stdin(&d, &["config", "create", "c", "-"], b""),
        "config data is empty",
    );
    refused(
        &d.cli(&["secret", "create", "a b", good]),
        "invalid secret \"a b\"",
    );
    refused(
        &d.cli(&["secret", "create", "--label", "=v", "s", good]),
        "invalid label",
    );
    let out = d.cli(&["config", "create", "--template-driver", "jinja", "c", good]);
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    refused(
        &d.cli(&["network", "create", "bad-"]),
        "invalid network \"bad-\"",
    );
    refused(
        &d.cli(&["network", "create", "shoal"]),
        "cluster's own network",
    );
    for kind in ["secret", "config", "network"] {
        assert_eq!(ok(&d, &[kind, "ls", "-q"]).stdout.trim(), "", "{kind}");
    }
    // The largest secret allowed goes in; a second of the same name does not.
    ok(&d, &["secret", "create", "s", max_secret]);
    refused(
        &d.cli(&["secret", "create", "s", good]),
        "secret s already exists",
    );
    assert_eq!(ok(&d, &["secret", "ls", "-q"]).stdout.lines().count(), 1);
}

#[test]
fn the_docker_cli_sees_what_shoal_made_and_shoal_sees_what_docker_made() {
    let d = Daemon::start_cluster(bin());
    let file = write(&d, "pw.txt", SECRET.as_bytes());
    let file = file.to_str().expect("utf-8 path");

    // shoal → docker
    ok(
        &d,
        &["secret", "create", "--label", "k=v", "from_shoal", file],
    );
    ok(&d, &["network", "create", "net_shoal"]);
    let ls = d.docker(&["secret", "ls", "--format", "{{.Name}}"]);
    assert!(ls.ok() && ls.stdout.trim() == "from_shoal", "{ls:?}");
    let inspect = d.docker(&["secret", "inspect", "from_shoal"]);
    assert!(inspect.ok(), "{inspect:?}");
    let v: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("json");
    assert_eq!(v[0]["Spec"]["Labels"]["k"], "v");
    assert!(!inspect.stdout.contains("aHVudGVy") && !inspect.stdout.contains(SECRET));
    let nets = d.docker(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert!(nets.stdout.contains("net_shoal overlay"), "{nets:?}");

    // docker → shoal
    let conf = write(&d, "app.conf", b"listen 80\n");
    let conf = conf.to_str().expect("utf-8 path");
    let made = d.docker(&["config", "create", "from_docker", conf]);
    assert!(made.ok(), "{made:?}");
    let made = d.docker(&["network", "create", "-d", "overlay", "net_docker"]);
    assert!(made.ok(), "{made:?}");
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&d, &["config", "inspect", "from_docker"]).stdout).expect("json");
    assert_eq!(inspect[0]["data"], "bGlzdGVuIDgwCg==");
    assert!(ok(&d, &["network", "ls"]).stdout.contains("net_docker"));
    // And each removes what the other made.
    assert!(d.docker(&["secret", "rm", "from_shoal"]).ok());
    ok(&d, &["config", "rm", "from_docker"]);
    ok(&d, &["network", "rm", "net_docker"]);
    assert!(d.docker(&["network", "rm", "net_shoal"]).ok());
    for kind in ["secret", "config", "network"] {
        assert_eq!(ok(&d, &[kind, "ls", "-q"]).stdout.trim(), "", "{kind}");
    }
}
