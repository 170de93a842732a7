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

/// A port free for TCP and UDP on every address, for a test to bind a moment later.
///
/// Chosen at random below the kernel's ephemeral range, never from it: a port the kernel
/// picks for `bind(0)` or for an outgoing connection (of this test or of any other running
/// beside it) is taken from that range, so it cannot land on this port between the check
/// here and the caller's bind. The port is claimed for the life of this process with a
/// file under the testkit's claim directory, as network namespaces' subnets are, so no
/// two test processes are given the same one (nor one process twice); claims of processes
/// that have exited are swept with the namespaces they left.
pub fn free_port() -> u16 {
    use rand::Rng;
    use std::net::{Ipv4Addr, TcpListener, UdpSocket};

    let (low, high) = ports_outside_the_ephemeral_range();
    // Without a claim directory (not root), the bind check alone.
    let claims = std::path::Path::new(netns::CLAIM_DIR);
    let claims = std::fs::create_dir_all(claims).is_ok().then_some(claims);
    let mut rng = rand::rng();
    for _ in 0..10_000 {
        let port = rng.random_range(low..high);
        let unspecified = (Ipv4Addr::UNSPECIFIED, port);
        if TcpListener::bind(unspecified).is_err() || UdpSocket::bind(unspecified).is_err() {
            continue;
        }
        let Some(claims) = claims else {
            return port;
        };
        let claim = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(claims.join(format!("port-{port}")));
        match claim {
            Ok(mut file) => {
                use std::io::Write;
                writeln!(file, "{}", std::process::id()).expect("write a port claim");
                return port;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("claim port {port}: {e}"),
        }
    }
    panic!("no free port in {low}..{high}");
}

/// The ports `free_port` chooses from: below the kernel's ephemeral range (from
/// `ip_local_port_range`) when there is room there, else above it.
fn ports_outside_the_ephemeral_range() -> (u16, u16) {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut bounds = text.split_whitespace().map(|b| b.parse::<u16>().ok());
            Some((bounds.next()??, bounds.next()??))
        });
    match range {
        Some((first, _)) if first >= 12_000 => (10_000, first),
        Some((_, last)) if last <= 63_000 => (last + 1, u16::MAX),
        _ => panic!("no room outside the ephemeral port range {range:?}"),
    }
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
