//! Test harness: real `shoal` daemons in temporary directories, driven through the real
//! CLI, plus small helpers to send traffic and inspect task processes; [`netns`]: several
//! "hosts" on one machine as network namespaces on a private bridge; and [`Cluster`]: a
//! multi-node cluster of daemons on them; [`clients`]: Traefik and docker-py from the
//! project's virtualenv. Dev-only: nothing in the product depends on it.

mod cluster;
mod daemon;
mod http;
mod procs;

pub mod clients;
pub mod docker;
pub mod netns;
pub mod rate;

pub use cluster::Cluster;
pub use daemon::{run_within, Daemon, Output};
pub use http::{
    http_get, http_get_at, http_get_host, whoami_name, whoami_names, ClientKind, Load, LoadReport,
};
pub use netns::TestNet;
pub use procs::{alive, processes_with_env};
pub use rate::{Histogram, RateLoad, RateReport};

use std::time::{Duration, Instant};

/// A TCP port that was free a moment ago (bind to port 0, then release).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Raises this process's soft file-descriptor limit to at least `wanted` (tests that open
/// thousands of connections); panics if the hard limit does not allow it.
pub fn raise_fd_limit(wanted: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft >= wanted {
        return;
    }
    assert!(
        hard >= wanted,
        "this test needs {wanted} file descriptors; the hard limit is {hard}"
    );
    setrlimit(Resource::RLIMIT_NOFILE, wanted, hard).expect("setrlimit");
}

/// Poll `f` every 100 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
