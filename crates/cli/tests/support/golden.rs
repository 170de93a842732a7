//! Comparing docker CLI output with the goldens recorded from real Swarm
//! (`tests/golden/docker`, `scripts/record-docker-golden`).

// Each test crate that includes this module uses only part of it.
#![allow(dead_code)]

use std::path::Path;

/// The golden output of a docker command recorded from real Swarm: its stdout.
pub fn golden_stdout(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/docker/cli")
        .join(format!("{name}.txt"));
    let text = std::fs::read_to_string(&path).expect("golden file");
    let (_, rest) = text.split_once("--- stdout\n").expect("stdout section");
    let (out, _) = rest.split_once("--- stderr").expect("stderr section");
    out.to_owned()
}

/// `text` masked as the goldens are (IDs, ages, host, engine version), by the goldens' own
/// masking module.
pub fn masked(text: &str, ids: &[String], engine: &str) -> String {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let ids_file = dir.path().join("ids");
    std::fs::write(&ids_file, ids.join("\n")).expect("ids");
    let mask = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/docker/mask.py");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut child = std::process::Command::new("python3")
        .arg(mask)
        .arg("text")
        .args(["--host", host.trim(), "--engine", engine, "--ids"])
        .arg(&ids_file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("mask");
    assert!(out.status.success(), "mask.py failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Compares a command's output with its golden from real Swarm, field by field once both
/// are masked; `swap` turns shoal's values that differ by design (the image of a process
/// service, the port) into the golden's.
pub fn assert_like_swarm(
    name: &str,
    ours: &str,
    ids: &[String],
    engine: &str,
    swap: &[(&str, &str)],
) {
    // Masked first: the masking cuts table cells at the header's column starts.
    let mut ours = masked(ours, ids, engine);
    for (from, to) in swap {
        ours = ours.replace(from, to);
    }
    let golden = golden_stdout(name);
    let rows = |t: &str| -> Vec<Vec<String>> {
        t.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect()
    };
    assert_eq!(
        rows(&ours),
        rows(&golden),
        "{name}: shoal's output\n{ours}\ndiffers from real Swarm's\n{golden}"
    );
}

/// The engine version the daemon reports for itself, which the goldens mask.
pub fn engine(d: &shoal_testkit::Daemon) -> String {
    d.docker(&[
        "node",
        "inspect",
        "self",
        "--format",
        "{{.Description.Engine.EngineVersion}}",
    ])
    .stdout
    .trim()
    .to_owned()
}
