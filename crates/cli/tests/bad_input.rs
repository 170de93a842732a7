//! Every bad input gets one clear line on stderr, a non-zero exit, and changes nothing.

use shoal_testkit::{free_port, Daemon};
use std::path::Path;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

#[test]
fn bad_input_is_rejected_and_changes_nothing() {
    let d = Daemon::start_cluster(bin());
    let port = free_port().to_string();
    let other = free_port().to_string();
    let publish = format!("{port}:80");
    let out = d.cli(&[
        "service",
        "create",
        "--name",
        "web",
        "--publish",
        &publish,
        "-d",
        "--",
        "shoal",
        "whoami",
    ]);
    assert!(out.ok(), "{out:?}");
    let spec_of = |d: &Daemon| {
        let v = d.json(&["service", "inspect", "web"]);
        (
            v[0]["spec"].clone(),
            v[0]["version"].clone(),
            v[0]["ports"].clone(),
        )
    };
    let before = spec_of(&d);
    let taken = format!("{port}:81");
    let other_publish = format!("{other}:80");
    let blocker = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    let busy = format!("{}:80", blocker.local_addr().expect("addr").port());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["service", "create", "--", "shoal", "whoami"], "--name"),
        (
            vec!["service", "create", "--name", "", "--", "shoal", "whoami"],
            "name is missing",
        ),
        (
            vec![
                "service", "create", "--name", "web", "--", "shoal", "whoami",
            ],
            "service web already exists",
        ),
        (
            vec![
                "service",
                "create",
                "--name",
                "x",
                "--replicas",
                "abc",
                "--",
                "shoal",
                "whoami",
            ],
            "--replicas",
        ),
        (
            vec![
                "service",
                "create",
                "--name",
                "x",
                "--publish",
                "70000:80",
                "--",
                "shoal",
                "whoami",
            ],
            "out of range",
        ),
        (
            vec![
                "service",
                "create",
                "--name",
                "x",
                "--publish",
                &taken,
                "--",
                "shoal",
                "whoami",
            ],
            "already published by service web",
        ),
        (
            vec![
                "service",
                "create",
                "--name",
                "x",
                "--publish",
                &busy,
                "--",
                "shoal",
                "whoami",
            ],
            "already in use",
        ),
        (
            vec![
                "service",
                "create",
                "--name",
                "x",
                "--bogus-flag",
                "--",
                "shoal",
                "whoami",
            ],
            "--bogus-flag",
        ),
        (
            vec![
                "service",
                "create",
                "--name",
                "x",
                "--publish",
                &other_publish,
                "--",
                "no-such-program-xyz",
            ],
            "command not found: no-such-program-xyz",
        ),
        (
            vec![
                "service",
                "create",
                "--name",
                "x",
                "--restart-delay",
                "5x",
                "--",
                "true",
            ],
            "5x",
        ),
        (
            vec![
                "service",
                "create",
                "--name",
                "x",
                "--constraint",
                "node.hostnme==a",
                "--",
                "true",
            ],
            "constraint",
        ),
        (
            vec![
                "service",
                "create",
                "--name",
                "x",
                "--publish",
                "published=5353,target=53,protocol=udp,proxy-protocol=v2",
                "--",
                "shoal",
                "whoami",
            ],
            "proxy-protocol is for tcp ports only",
        ),
        (
            vec![
                "service",
                "create",
                "--name",
                "x",
                "--publish",
                "published=8088,target=80,mode=host,proxy-protocol=v2",
                "--",
                "shoal",
                "whoami",
            ],
            "in host mode the client connects to the task directly",
        ),
        (
            vec![
                "service",
                "update",
                "--publish-add",
                "target=80,proxy-protocol=v1",
                "web",
            ],
            "proxy-protocol must be v2",
        ),
        (vec!["service", "scale", "web=abc"], "not a number"),
        (
            vec!["service", "scale", "web=2", "nope=1"],
            "service nope not found",
        ),
        (vec!["service", "ps", "nope"], "service nope not found"),
        (vec!["service", "rm", "nope"], "service nope not found"),
        (vec!["node", "inspect", "nope"], "node nope not found"),
        (vec!["init"], "already part of a cluster"),
        (
            vec!["service", "update", "--env-add", "A=1", "nope"],
            "service nope not found",
        ),
        (
            vec!["service", "update", "--update-delay", "5x", "web"],
            "5x",
        ),
        (
            vec!["service", "update", "--update-parallelism", "-1", "web"],
            "-1",
        ),
        (
            vec![
                "service",
                "update",
                "--update-max-failure-ratio",
                "1.5",
                "web",
            ],
            "outside 0..1",
        ),
        (
            vec!["service", "update", "--update-order", "sideways", "web"],
            "sideways",
        ),
        (vec!["service", "update", "web"], "nothing to update"),
        (vec!["service", "rollback", "web"], "no previous spec"),
    ];
    for (args, want) in cases {
        let out = d.cli(&args);
        assert_ne!(out.code, 0, "{args:?} should fail: {out:?}");
        assert!(
            out.stderr.contains(want),
            "{args:?}: stderr {:?} lacks {want:?}",
            out.stderr
        );
        assert_eq!(
            out.stderr.trim_end().lines().count(),
            1,
            "{args:?}: one line: {:?}",
            out.stderr
        );
    }
    drop(blocker);
    let ls = d.cli(&["service", "ls", "-q"]).stdout;
    assert_eq!(ls.lines().count(), 1, "only the first service exists: {ls}");
    assert_eq!(
        spec_of(&d),
        before,
        "web unchanged (scale web=2 nope=1 did nothing)"
    );
}

#[test]
fn daemon_not_running_says_how_to_start_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("none.sock");
    let out = std::process::Command::new(bin())
        .arg("-H")
        .arg(&socket)
        .args(["service", "ls"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr.contains("cannot reach the shoal daemon") && stderr.contains("shoal daemon"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

#[test]
fn commands_before_init_say_to_run_init() {
    let d = Daemon::start(bin());
    let out = d.cli(&["service", "ls"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("shoal init"), "{}", out.stderr);
}

#[test]
fn second_daemon_on_the_same_data_dir_is_refused() {
    let d = Daemon::start(bin());
    let out = std::process::Command::new(bin())
        .args(["daemon", "--data-dir"])
        .arg(d.data_dir())
        .arg("--socket")
        .arg(d.dir.path().join("other.sock"))
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr.contains("another shoal daemon"), "{stderr}");
}

/// A cluster with one service `web` (3 replicas of `true`, detached).
fn cluster_with_web() -> Daemon {
    let d = Daemon::start_cluster(bin());
    let out = d.cli(&[
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "3",
        "-d",
        "--",
        "sleep",
        "600",
    ]);
    assert!(out.ok(), "{out:?}");
    d
}

/// Each command fails with one line holding its text, and `web` stays as it was.
fn refused_all(d: &Daemon, cases: &[(Vec<&str>, &str)]) {
    let before = d.json(&["service", "inspect", "web"])[0]["version"].clone();
    for (args, want) in cases {
        let out = d.cli(args);
        assert_ne!(out.code, 0, "{args:?} should fail: {out:?}");
        assert!(
            out.stderr.contains(want),
            "{args:?}: stderr {:?} lacks {want:?}",
            out.stderr
        );
        assert_eq!(out.stderr.trim_end().lines().count(), 1, "{out:?}");
        assert!(
            !out.stderr.trim_end().chars().any(char::is_control),
            "escaped: {:?}",
            out.stderr
        );
    }
    let ls = d.cli(&["service", "ls", "-q"]).stdout;
    assert_eq!(ls.lines().count(), 1, "only web exists: {ls}");
    let after = d.json(&["service", "inspect", "web"]);
    assert_eq!(after[0]["version"], before, "web unchanged");
    assert_eq!(after[0]["spec"]["mode"]["replicated"]["replicas"], 3);
}

#[test]
fn huge_replica_count_is_refused() {
    let d = cluster_with_web();
    let create = |extra: &[&'static str]| {
        let mut args = vec!["service", "create", "--name", "x", "-d"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "true"]);
        args
    };
    let huge = "at most 10000 per service";
    refused_all(
        &d,
        &[
            (create(&["--replicas", "1000000000000"]), huge),
            (create(&["--replicas", "10001"]), huge),
            (vec!["service", "scale", "web=1000000000000"], huge),
            (
                vec!["service", "update", "--replicas", "20000", "-d", "web"],
                huge,
            ),
            (
                create(&["--update-parallelism", "1000000000000"]),
                "invalid update-parallelism",
            ),
            (
                vec![
                    "service",
                    "update",
                    "--rollback-parallelism",
                    "10001",
                    "web",
                ],
                "invalid rollback-parallelism",
            ),
            (
                create(&["--replicas-max-per-node", "1000000000000"]),
                "invalid replicas-max-per-node",
            ),
        ],
    );
    // The daemon is still up and answers (nothing made it allocate per replica).
    assert!(d.cli(&["service", "ls"]).ok());
}

#[test]
fn control_characters_in_labels_are_refused_and_stored_text_prints_escaped() {
    let d = cluster_with_web();
    let me = d.node_id();
    refused_all(
        &d,
        &[
            (
                vec![
                    "service",
                    "create",
                    "--name",
                    "x",
                    "--label",
                    "a=\u{1b}[2J",
                    "--",
                    "true",
                ],
                "control characters are not allowed",
            ),
            (
                vec![
                    "service",
                    "update",
                    "--label-add",
                    "a\u{1b}]0;t\u{7}=1",
                    "web",
                ],
                "control characters are not allowed",
            ),
            (
                vec!["service", "create", "--name", "x\u{1b}[31m", "--", "true"],
                "invalid service name",
            ),
            (
                vec!["node", "update", "--label-add", "zone=\u{1b}[2J", &me],
                "control characters are not allowed",
            ),
            (
                vec![
                    "service",
                    "create",
                    "--name",
                    "x",
                    "--",
                    "no-such-\u{1b}[2J",
                ],
                "command not found: no-such-\\x1b[2J",
            ),
        ],
    );
    // Arguments may hold control characters; every table and pretty printer escapes them.
    let out = d.cli(&[
        "service",
        "create",
        "--name",
        "esc",
        "-d",
        "--",
        "echo",
        "\u{1b}[2J\u{9b}31m",
    ]);
    assert!(out.ok(), "{out:?}");
    for args in [
        vec!["service", "ls"],
        vec!["service", "inspect", "--pretty", "esc"],
    ] {
        let out = d.cli(&args);
        assert!(out.ok(), "{out:?}");
        assert!(
            out.stdout.contains("echo \\x1b[2J\\u{9b}31m"),
            "{args:?}: {}",
            out.stdout
        );
        assert!(
            !out.stdout
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t'),
            "{args:?} printed raw control characters: {:?}",
            out.stdout
        );
    }
}

#[test]
fn health_interval_below_the_floor_is_refused() {
    let d = cluster_with_web();
    let port = free_port().to_string();
    let publish = format!("{port}:80");
    refused_all(
        &d,
        &[
            (
                vec![
                    "service",
                    "create",
                    "--name",
                    "x",
                    "--publish",
                    &publish,
                    "--health-tcp",
                    "--health-interval",
                    "1ms",
                    "--",
                    "shoal",
                    "whoami",
                ],
                "invalid health-interval \"1ms\": must be at least 100ms",
            ),
            (
                vec![
                    "service",
                    "update",
                    "--health-cmd",
                    "true",
                    "--health-timeout",
                    "1ms",
                    "web",
                ],
                "invalid health-timeout",
            ),
            (
                vec![
                    "service",
                    "update",
                    "--health-cmd",
                    "true",
                    "--health-start-period",
                    "48h",
                    "web",
                ],
                "invalid health-start-period",
            ),
        ],
    );
}

#[test]
fn zero_progress_deadline_names_the_deadline_flag() {
    let d = cluster_with_web();
    refused_all(
        &d,
        &[(
            vec![
                "service",
                "update",
                "--update-progress-deadline",
                "0s",
                "web",
            ],
            "invalid update-progress-deadline \"0s\": progress deadline must be more than 0",
        )],
    );
}

#[test]
fn bad_resource_flags_are_refused_naming_the_flag() {
    let d = cluster_with_web();
    let create = |extra: &[&'static str]| {
        let mut args = vec!["service", "create", "--name", "x", "-d"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "true"]);
        args
    };
    refused_all(
        &d,
        &[
            (create(&["--limit-memory", "12XB"]), "--limit-memory"),
            (create(&["--reserve-memory", "lots"]), "--reserve-memory"),
            (create(&["--limit-cpu", "1,5"]), "--limit-cpu"),
            (create(&["--reserve-cpu", "-1"]), "--reserve-cpu"),
            (create(&["--limit-pids", "many"]), "--limit-pids"),
            (
                create(&["--limit-memory", "4M"]),
                "invalid limit-memory \"4MiB\": at least 6MiB",
            ),
            (
                create(&["--limit-memory", "256M", "--reserve-memory", "512M"]),
                "invalid limit-memory \"256MiB\": below the memory reservation of 512MiB",
            ),
            (
                create(&["--limit-cpu", "0.5", "--reserve-cpu", "1"]),
                "invalid limit-cpu \"0.5\": below the CPU reservation of 1",
            ),
            (
                vec!["service", "update", "--limit-memory", "1M", "-d", "web"],
                "invalid limit-memory \"1MiB\"",
            ),
        ],
    );
}

#[test]
fn zero_mesh_connection_caps_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    for flag in ["--mesh-max-connections", "--mesh-max-connections-per-port"] {
        let out = std::process::Command::new(bin())
            .args(["daemon", "--data-dir"])
            .arg(&data)
            .arg("--socket")
            .arg(dir.path().join("shoal.sock"))
            .args([flag, "0"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.lines().next().is_some_and(|l| l.contains(flag)),
            "{stderr}"
        );
        assert!(!data.exists(), "nothing is created");
    }
}

#[test]
fn bad_load_balancing_input_is_refused() {
    let d = cluster_with_web();
    refused_all(
        &d,
        &[
            (
                vec!["service", "create", "--name", "x", "--lb", "fastest", "--", "true"],
                "invalid lb \"fastest\": unknown load-balancing algorithm (round-robin, least-conn, p2c, source-hash, maglev, random)",
            ),
            (
                vec!["service", "update", "--lb", "fastest", "web"],
                "unknown load-balancing algorithm",
            ),
            (
                vec![
                    "service", "create", "--name", "x", "--endpoint-mode", "ipvs", "--", "true",
                ],
                "invalid endpoint-mode \"ipvs\": expected vip or dnsrr",
            ),
            (
                vec![
                    "service",
                    "create",
                    "--name",
                    "x",
                    "--endpoint-mode",
                    "dnsrr",
                    "--publish",
                    "8080:80",
                    "--",
                    "true",
                ],
                "port published with ingress mode can't be used with dnsrr mode",
            ),
            (
                vec!["service", "create", "--name", "x", "--expose", "8080:80", "--", "true"],
                "invalid expose \"8080:80\": port must be a number between 1 and 65535",
            ),
            (
                vec!["service", "update", "--expose-rm", "81", "web"],
                "invalid --expose-rm \"81\": the service does not expose it",
            ),
            (
                vec!["service", "create", "--name", "x", "--lb-mode", "ipvs", "--", "true"],
                "invalid lb-mode \"ipvs\": expected proxy or nat",
            ),
            (
                vec![
                    "service", "create", "--name", "x", "--lb-mode", "nat", "--lb", "p2c", "--",
                    "true",
                ],
                "invalid lb \"p2c\": lb-mode nat balances by round-robin, random, source-hash or maglev",
            ),
            (
                vec![
                    "service",
                    "create",
                    "--name",
                    "x",
                    "--lb-mode",
                    "nat",
                    "--publish",
                    "published=8080,target=80,proxy-protocol=v2",
                    "--",
                    "true",
                ],
                "proxy-protocol needs lb-mode proxy",
            ),
            (
                vec!["service", "update", "--lb-mode", "nat", "--idle-timeout", "5m", "web"],
                "an idle timeout needs lb-mode proxy",
            ),
        ],
    );
}

#[test]
fn a_vip_pool_that_is_too_small_or_overlaps_the_node_is_refused() {
    let d = Daemon::start(bin());
    // A network this machine has an address in.
    let ours = std::process::Command::new("ip")
        .args(["-4", "-o", "address", "show", "scope", "global"])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
                let mut w = l.split_whitespace();
                w.find(|x| *x == "inet")?;
                let (addr, len) = w.next()?.split_once('/')?;
                let addr: std::net::Ipv4Addr = addr.parse().ok()?;
                let len: u32 = len.parse().ok()?;
                let len = len.clamp(8, 24);
                let mask = u32::MAX << (32 - len);
                Some(format!(
                    "{}/{len}",
                    std::net::Ipv4Addr::from(u32::from(addr) & mask)
                ))
            })
        });
    let mut cases = vec![
        (
            "10.96.0.0/25",
            "invalid vip-pool \"10.96.0.0/25\": too small",
        ),
        ("10.96.0.1/16", "did you mean 10.96.0.0/16"),
        ("fe80::/64", "not an IPv4 address"),
    ];
    if let Some(net) = ours.as_deref() {
        cases.push((net, "overlaps"));
    }
    for (pool, want) in cases {
        let out = d.cli(&["init", "--vip-pool", pool]);
        assert!(!out.ok(), "{pool}: {out:?}");
        assert!(out.stderr.contains(want), "{pool}: {:?}", out.stderr);
        assert_eq!(out.stderr.trim_end().lines().count(), 1, "{out:?}");
    }
    let out = d.cli(&["init", "--vip-pool", "10.97.0.0/24"]);
    assert!(out.ok(), "a good pool: {out:?}");
}
