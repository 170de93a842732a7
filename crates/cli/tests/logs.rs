//! Task logs end to end: a real daemon, real task output, the real CLI.

use shoal_testkit::{wait_until, Daemon};
use std::path::Path;
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

/// Task log files in the daemon's logs dir: (file name, size).
fn log_files(d: &Daemon) -> Vec<(String, u64)> {
    std::fs::read_dir(d.data_dir().join("logs"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                    (e.file_name().to_string_lossy().into_owned(), size)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Files of the given tasks' logs.
fn files_of(d: &Daemon, task_ids: &[String]) -> Vec<String> {
    log_files(d)
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| {
            task_ids
                .iter()
                .any(|id| name.starts_with(&format!("{id}.log")))
        })
        .collect()
}

fn task_ids(d: &Daemon, service: &str) -> Vec<String> {
    d.tasks(service)
        .iter()
        .filter_map(|t| t["id"].as_str().map(str::to_string))
        .collect()
}

/// The peak resident memory of a process, in KiB (VmHWM).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

const LINES: u64 = 180_000;

#[test]
fn big_log_is_served_with_bounded_memory() {
    let d = Daemon::start_cluster(bin());
    // 180,000 lines of 101 bytes, each stamped with its time (31 bytes): about 24 MB on
    // disk, within the three 10 MB files a task keeps; then the task stays up.
    let script = format!("seq -f '%0100g' 1 {LINES}; sleep 600");
    let out = d.cli(&[
        "service", "create", "--name", "big", "-d", "--", "sh", "-c", &script,
    ]);
    assert!(out.ok(), "{out:?}");
    let total = LINES * (101 + shoal_api::task_log::STAMP_LEN as u64);
    let written = wait_until(Duration::from_secs(120), || {
        log_files(&d).iter().map(|(_, size)| size).sum::<u64>() >= total
    });
    assert!(written, "log written: {:?}", log_files(&d));
    let before = peak_rss_kib(d.pid());

    let tail = d.cli(&["service", "logs", "big", "--tail", "5"]);
    assert!(tail.ok(), "{}", tail.stderr);
    let lines: Vec<&str> = tail.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", tail.stdout);
    for (line, n) in lines.iter().zip(LINES - 4..=LINES) {
        assert!(line.starts_with("big.1."), "{line}");
        assert!(line.ends_with(&format!("| {n:0100}")), "{line}");
    }
    let all = d.cli(&["service", "logs", "big"]);
    assert!(all.ok(), "{}", all.stderr);
    assert_eq!(all.stdout.lines().count() as u64, LINES);
    assert!(all.stdout.ends_with(&format!("| {LINES:0100}\n")));

    // Serving 24 MB twice must not have held it in memory (it used to cost about 60 MB).
    let grown = peak_rss_kib(d.pid()).saturating_sub(before);
    assert!(
        grown < 16 * 1024,
        "the daemon's peak memory grew by {grown} KiB serving the logs"
    );
}

#[test]
fn service_rm_deletes_log_files() {
    let mut d = Daemon::start_cluster(bin());
    for (name, replicas) in [("chatty", "3"), ("keep", "1")] {
        let out = d.cli(&[
            "service",
            "create",
            "--name",
            name,
            "--replicas",
            replicas,
            "--",
            "sh",
            "-c",
            "echo started; sleep 600",
        ]);
        assert!(out.ok(), "{out:?}");
    }
    let chatty = task_ids(&d, "chatty");
    let keep = task_ids(&d, "keep");
    assert_eq!(chatty.len(), 3);
    assert!(
        wait_until(Duration::from_secs(30), || files_of(&d, &chatty).len() == 3),
        "{:?}",
        log_files(&d)
    );
    assert_eq!(files_of(&d, &keep).len(), 1);

    let rm = d.cli(&["service", "rm", "chatty"]);
    assert!(rm.ok(), "{rm:?}");
    assert!(
        wait_until(Duration::from_secs(60), || files_of(&d, &chatty).is_empty()),
        "logs left after service rm: {:?}",
        files_of(&d, &chatty)
    );
    assert_eq!(files_of(&d, &keep).len(), 1, "other services keep theirs");

    // Leftovers of tasks the node no longer knows are swept when the daemon starts.
    d.stop();
    let logs = d.data_dir().join("logs");
    for stray in ["0123stray.log", "0123stray.log.1"] {
        std::fs::write(logs.join(stray), "old\n").expect("write stray log");
    }
    d.restart();
    let stray = vec!["0123stray".to_string()];
    assert!(
        wait_until(Duration::from_secs(60), || files_of(&d, &stray).is_empty()),
        "stray logs left: {:?}",
        log_files(&d)
    );
    assert_eq!(files_of(&d, &keep).len(), 1, "a known task's log stays");
}
