//! The DNS server's decision on arbitrary query bytes, over UDP and TCP: it never panics, a
//! reply answers the query's ID within the transport's size limit, a forward keeps the ID,
//! and the SERVFAIL a failed forward gets is built the same way.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rand::rngs::StdRng;
use rand::SeedableRng;
use shoal_api::task::EndpointPort;
use shoal_api::{PortConfig, Protocol, PublishMode};
use shoal_balance::snapshot::{EndpointMode, EndpointState};
use shoal_balance::{DataPlaneSnapshot, ServiceEndpoint, ServiceEntry};
use shoal_dns::{answer, servfail, Names, Outcome, Transport};
use std::sync::LazyLock;

fn endpoint(task: &str, addr: &str, port: (u16, u16, Protocol)) -> ServiceEndpoint {
    ServiceEndpoint {
        task_id: task.into(),
        addr: addr.parse().expect("address"),
        ports: vec![EndpointPort {
            target: port.0,
            host_port: port.1,
            protocol: port.2,
        }],
        ..ServiceEndpoint::default()
    }
}

/// `web` (a VIP, three tasks, one terminating), `db` (dnsrr, IPv4 and IPv6 tasks), `v6`
/// (an IPv6 VIP, no task).
static NAMES: LazyLock<Names> = LazyLock::new(|| {
    let port = |target, protocol| PortConfig {
        published: Some(target + 1000),
        target,
        protocol,
        mode: PublishMode::Ingress,
        proxy_protocol: None,
    };
    let web = ServiceEntry {
        id: "id-web".into(),
        name: "web".into(),
        vip: Some("10.96.0.2".parse().expect("vip")),
        ports: vec![port(80, Protocol::Tcp), port(53, Protocol::Udp)],
        endpoints: vec![
            endpoint("t1", "10.0.0.1", (80, 30001, Protocol::Tcp)),
            endpoint("t2", "10.0.0.2", (53, 30002, Protocol::Udp)),
            ServiceEndpoint {
                state: EndpointState::Terminating,
                ..endpoint("t3", "10.0.0.3", (80, 30003, Protocol::Tcp))
            },
        ],
        ..ServiceEntry::default()
    };
    let db = ServiceEntry {
        id: "id-db".into(),
        name: "db".into(),
        endpoint_mode: EndpointMode::Dnsrr,
        ports: vec![port(5432, Protocol::Tcp)],
        endpoints: vec![
            endpoint("d1", "10.0.1.1", (5432, 5432, Protocol::Tcp)),
            endpoint("d2", "fd00::2", (5432, 5432, Protocol::Tcp)),
        ],
        ..ServiceEntry::default()
    };
    let v6 = ServiceEntry {
        id: "id-v6".into(),
        name: "v6".into(),
        vip: Some("fd00::10".parse().expect("vip")),
        ..ServiceEntry::default()
    };
    let snapshot = DataPlaneSnapshot {
        version: 1,
        services: vec![web, db, v6],
        vip_pool: None,
    };
    Names::new(&snapshot, "shoal.internal")
});

fuzz_target!(|data: &[u8]| {
    // The first byte picks the transport; the rest is the query.
    let Some((&first, query)) = data.split_first() else {
        return;
    };
    let (transport, limit) = if first & 1 == 0 {
        (Transport::Udp, 4096)
    } else {
        (Transport::Tcp, 65535)
    };
    let mut rng = StdRng::seed_from_u64(u64::from(first));
    match answer(&NAMES, query, transport, &mut rng) {
        Outcome::Reply(reply) => {
            assert!(reply.len() >= 12 && reply.len() <= limit, "{}", reply.len());
            assert_eq!(reply[..2], query[..2], "reply to another ID");
            assert!(reply[2] & 0x80 != 0, "a reply not marked as a response");
        }
        Outcome::Forward(forward) => {
            assert_eq!(forward.id.to_be_bytes(), query[..2]);
            // What the client says it takes, which may be more than we answer with.
            assert!((512..=65535).contains(&forward.reply_limit));
            let reply = servfail(query, transport).expect("a forwarded query has a SERVFAIL");
            assert_eq!(reply[..2], query[..2]);
        }
        Outcome::Drop => {}
    }
});
