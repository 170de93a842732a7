//! The embedded DNS server every node runs, Docker Swarm's names plus SRV.
//!
//! A service `web` is answered as `web` and `web.<domain>` (default `shoal.internal`): its
//! VIP, or in dnsrr mode (or without a VIP) the addresses of its ready tasks; `tasks.web`
//! lists the ready tasks' addresses, `<task id>.tasks.web` names one; `_<port|name>._tcp.web`
//! and `_<port|name>._udp.web` (and under `tasks.web`) are SRV records. Every other name goes
//! to the node's resolvers (`host_resolvers`). Answers carry a TTL of [`TTL`] seconds.
//! See docs/dns.md.
//!
//! Decided in pure code, acted on by thin drivers: [`Names`] is built once per data-plane
//! snapshot, [`answer`] turns a query's bytes into an [`Outcome`] with no I/O; the
//! [`DnsServer`] receives, sends and forwards (`udp`, `tcp`, `forward`).
//!
//! Dependencies: only `shoal-api` and `shoal-balance` (the snapshot), never manager, agent,
//! node or mesh code. Like the mesh, the server keeps answering by its last snapshot when the
//! control plane is gone.

mod answer;
#[cfg(test)]
mod answer_tests;
mod error;
mod forward;
mod names;
mod reply;
mod request;
mod resolv;
mod server;
mod tcp;
mod udp;

pub use answer::{answer, servfail, Forward, Outcome, Transport};
pub use error::DnsError;
pub use names::{normalize_domain, Names, DEFAULT_DOMAIN};
pub use resolv::{host_resolvers, parse_resolv_conf};
pub use server::{
    DnsConfig, DnsServer, DEFAULT_UPSTREAM_TIMEOUT, MAX_FORWARDS, MAX_TCP_CONNECTIONS,
    TCP_IDLE_TIMEOUT,
};

/// TTL of every record we answer, in seconds: short, because tasks come and go and a new
/// snapshot changes the answer at once; long enough that a client resolving the same name
/// for each of a burst of connections does not ask again for each.
pub const TTL: u32 = 2;
