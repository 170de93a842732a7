//! Checks of a new spec against this host: does the command exist, is the port free.
//! They bind and look at files, so they run before a store write, never inside one.

use shoal_api::service::SELF_PROGRAM;
use shoal_api::{ClusterState, PortConfig, Protocol};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Whether `program` can be executed here: a path to an executable file, or a name on PATH.
pub fn command_exists(program: &str) -> bool {
    if program == SELF_PROGRAM {
        return true;
    }
    let executable = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        return executable(Path::new(program));
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| executable(&dir.join(program))))
        .unwrap_or(false)
}

/// The explicit ports of `wanted` that something other than the cluster holds on this host.
/// Ports a service publishes already are left to the allocator (`alloc`): the mesh holds
/// them, and whose they are is for the cluster's table to say. Advisory: the port may be
/// taken or freed between this check and the write.
pub fn ports_in_use(state: &ClusterState, wanted: &[PortConfig]) -> Vec<(u16, Protocol)> {
    let published = |port: u16, protocol: Protocol| {
        state
            .services
            .values()
            .flat_map(|s| &s.ports)
            .any(|p| p.published == Some(port) && p.protocol == protocol)
    };
    wanted
        .iter()
        .filter_map(|p| Some((p.published?, p.protocol)))
        .filter(|&(port, protocol)| !published(port, protocol) && !port_free(port, protocol))
        .collect()
}

/// Whether nothing on this host listens on the port (checked by binding it for a moment).
fn port_free(port: u16, protocol: Protocol) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    match protocol {
        Protocol::Tcp => TcpListener::bind(addr).is_ok(),
        Protocol::Udp => UdpSocket::bind(addr).is_ok(),
    }
}
