//! docker-py (PyPI `docker`), the Docker SDK for Python, drives a shoal daemon over its
//! socket (`DOCKER_HOST=unix://.../shoal.sock`): the script `tests/dockerpy/test_shoal.py`
//! runs its round-trips (version, info, swarm, nodes, services with their tasks, logs,
//! scale, update and remove; secrets and configs) with the project's virtualenv. Without
//! docker-py installed (`scripts/install-deps docker-py`) the test skips and says why,
//! unless `SHOAL_REQUIRE_DOCKER=1` (set by `.ci/run`).

use shoal_testkit::{clients, free_port, run_within, Daemon};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

#[test]
fn docker_py_drives_the_swarm_api() {
    let Some(python) = clients::docker_py() else {
        return;
    };
    let d = Daemon::start_cluster(bin());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dockerpy/test_shoal.py");
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .env("DOCKER_HOST", format!("unix://{}", d.socket.display()))
        .env("SHOAL_NODE_ID", d.node_id())
        .env("SHOAL_PUBLISH_PORT", free_port().to_string())
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("DOCKER_CONFIG");
    // Each wait inside the script is bounded by 60 s; this bounds them all.
    let out = run_within(&mut cmd, Duration::from_secs(300)).expect("docker-py within 300 s");
    print!("{}", out.stdout);
    assert!(
        out.ok(),
        "docker-py failed:\n{}{}\ndaemon log:\n{}",
        out.stdout,
        out.stderr,
        d.log()
    );
    for check in [
        "version",
        "info",
        "swarm attrs",
        "node update labels",
        "service scale",
        "service remove",
        "a container spec round-trips as sent",
        "secrets create, list, get, remove",
        "configs create, list, get, remove",
    ] {
        assert!(
            out.stdout.contains(&format!("ok: {check}")),
            "{check} did not run:\n{}",
            out.stdout
        );
    }
}
