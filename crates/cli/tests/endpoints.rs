//! The endpoint watch: an external proxy follows a service's endpoints as they change.

use shoal_testkit::{wait_until, Daemon};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

/// Ready and terminating endpoints of one watch line.
fn counts(line: &serde_json::Value) -> (usize, usize) {
    let eps = line["endpoints"].as_array().cloned().unwrap_or_default();
    let ready = eps.iter().filter(|e| e["state"] == "ready").count();
    (ready, eps.len() - ready)
}

#[test]
fn the_watch_streams_each_change_of_the_endpoints() {
    let d = Daemon::start_cluster(bin());
    let out = d.cli(&[
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
    assert!(out.ok(), "{out:?}");
    assert!(wait_until(Duration::from_secs(30), || d
        .running_tasks("web")
        .len()
        == 2));

    let once = d.json(&["service", "endpoints", "web"]);
    assert_eq!(once["name"], "web");
    assert_eq!(counts(&once), (2, 0), "{once}");
    assert!(once["version"].as_u64().is_some_and(|v| v > 0), "{once}");
    assert_eq!(once["endpoints"][0]["ports"][0]["target"], 80, "{once}");

    let mut watch = Command::new(bin())
        .arg("-H")
        .arg(&d.socket)
        .args(["service", "endpoints", "web", "--watch"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("watch");
    let stdout = watch.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str(&line) else {
                continue;
            };
            if tx.send(v).is_err() {
                return;
            }
        }
    });
    let next = |rx: &mpsc::Receiver<serde_json::Value>| {
        rx.recv_timeout(Duration::from_secs(30))
            .expect("a watch line")
    };
    let first = next(&rx);
    assert_eq!(counts(&first), (2, 0), "{first}");

    assert!(d.cli(&["service", "scale", "web=3"]).ok());
    let mut last_version = first["version"].as_u64().unwrap_or(0);
    let mut line = next(&rx);
    while counts(&line) != (3, 0) {
        line = next(&rx);
    }
    let v = line["version"].as_u64().unwrap_or(0);
    assert!(v > last_version, "versions grow: {v} after {last_version}");
    last_version = v;

    assert!(d.cli(&["service", "scale", "web=1"]).ok());
    let mut seen = Vec::new();
    let mut line = next(&rx);
    loop {
        let v = line["version"].as_u64().unwrap_or(0);
        assert!(v > last_version, "versions grow: {v} after {last_version}");
        last_version = v;
        seen.push(counts(&line));
        if counts(&line) == (1, 0) {
            break;
        }
        line = next(&rx);
    }
    // Removed tasks leave the ready set at once, whatever else the watch saw.
    assert!(seen.iter().all(|(ready, _)| *ready <= 1), "{seen:?}");

    assert!(d.cli(&["service", "rm", "web"]).ok());
    let ended = wait_until(Duration::from_secs(20), || {
        matches!(watch.try_wait(), Ok(Some(_)))
    });
    let _ = watch.kill();
    assert!(ended, "the watch ends when the service is removed");
}
