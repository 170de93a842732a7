//! Test harness: real `shoal` daemons in temporary directories, driven through the real
//! CLI, plus small helpers to send traffic and inspect task processes; [`netns`]: several
//! "hosts" on one machine as network namespaces on a private bridge; and [`Cluster`]: a
//! multi-node cluster of daemons on them; [`clients`]: Traefik and docker-py from the
//! project's virtualenv. Dev-only: nothing in the product depends on it.

mod claims;
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

/// A port free for TCP and UDP on every address, for a test to bind a moment later.
///
/// Chosen at random from [`TEST_PORTS`], outside the kernel's ephemeral range: a port the
/// kernel picks for `bind(0)` or for an outgoing connection (of this test or of any other
/// running beside it) comes from that range, so it cannot land on this port between the
/// check here and the caller's bind. The port is claimed for the life of this process (see
/// `claims`), so no two test processes are given the same one, and one process never
/// gets it twice.
pub fn free_port() -> u16 {
    use rand::Rng;
    use std::collections::BTreeSet;
    use std::net::{Ipv4Addr, TcpListener, UdpSocket};
    static GIVEN: std::sync::Mutex<BTreeSet<u16>> = std::sync::Mutex::new(BTreeSet::new());

    let ports = test_ports();
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut rng = rand::rng();
    for _ in 0..10_000 {
        let port = rng.random_range(ports.clone());
        let unspecified = (Ipv4Addr::UNSPECIFIED, port);
        if given.contains(&port)
            || TcpListener::bind(unspecified).is_err()
            || UdpSocket::bind(unspecified).is_err()
        {
            continue;
        }
        // Without a claim directory (not root), this process's own record alone.
        if let claims::Claim::Ours(_) | claims::Claim::Unavailable(_) =
            claims::claim(&format!("port-{port}"), true)
        {
            given.insert(port);
            return port;
        }
    }
    panic!("no free port in {ports:?}");
}

/// Where [`free_port`] picks: below the kernel's ephemeral range (32768 and up by default),
/// and apart from the ports tests use otherwise: the flood of `limits.rs` sends from
/// 127.0.0.2 on 19999 and 20000-29999, and a cluster assigns published ports itself from
/// 30000-32767.
pub const TEST_PORTS: std::ops::Range<u16> = 10_000..19_990;
const _: () = assert!(TEST_PORTS.end <= shoal_api::port::AUTO_PORT_MIN);

/// [`TEST_PORTS`], checked against the kernel's ephemeral range (`ip_local_port_range`).
fn test_ports() -> std::ops::Range<u16> {
    let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    assert!(
        first_ephemeral >= TEST_PORTS.end,
        "the kernel's ephemeral ports start at {first_ephemeral}, inside the tests' ports \
         {TEST_PORTS:?}: raise net.ipv4.ip_local_port_range"
    );
    TEST_PORTS
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
