//! The rules of `answer`, as tables: queries built and replies read with hickory-proto.

use crate::answer::{answer, servfail, Forward, Outcome, Transport};
use crate::names::Names;
use crate::TTL;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shoal_api::task::EndpointPort;
use shoal_api::{PortConfig, Protocol, PublishMode};
use shoal_balance::snapshot::{EndpointMode, EndpointState};
use shoal_balance::{DataPlaneSnapshot, ServiceEndpoint, ServiceEntry};
use std::collections::BTreeSet;
use std::net::IpAddr;

const ID: u16 = 0x4242;

fn port(target: u16, protocol: Protocol) -> PortConfig {
    PortConfig {
        published: Some(target + 1000),
        target,
        protocol,
        mode: PublishMode::Ingress,
        proxy_protocol: None,
    }
}

fn endpoint(task: &str, addr: &str, ports: &[(u16, u16, Protocol)]) -> ServiceEndpoint {
    ServiceEndpoint {
        task_id: task.into(),
        addr: addr.parse().expect("address"),
        ports: ports
            .iter()
            .map(|&(target, host_port, protocol)| EndpointPort {
                target,
                host_port,
                protocol,
            })
            .collect(),
        ..ServiceEndpoint::default()
    }
}

fn terminating(mut e: ServiceEndpoint) -> ServiceEndpoint {
    e.state = EndpointState::Terminating;
    e
}

fn service(name: &str, vip: Option<&str>, mode: EndpointMode) -> ServiceEntry {
    ServiceEntry {
        id: format!("id-{name}"),
        name: name.into(),
        vip: vip.map(|v| v.parse().expect("vip")),
        endpoint_mode: mode,
        ..ServiceEntry::default()
    }
}

/// `web` (VIP, two tasks on one node), `db` (dnsrr, one IPv6 task), `empty` (dnsrr, no
/// task), `v6` (IPv6 VIP), `novip` (vip mode, no VIP yet).
fn snapshot() -> DataPlaneSnapshot {
    use Protocol::{Tcp, Udp};
    let mut web = service("web", Some("10.255.0.2"), EndpointMode::Vip);
    web.ports = vec![
        port(8080, Tcp),
        port(8080, Tcp),
        port(5353, Udp),
        port(9090, Tcp),
    ];
    web.endpoints = vec![
        endpoint(
            "t1",
            "10.0.0.1",
            &[(8080, 30001, Tcp), (5353, 30002, Udp), (9090, 30005, Tcp)],
        ),
        endpoint("t2", "10.0.0.1", &[(8080, 30003, Tcp)]),
        endpoint("t3", "10.0.0.2", &[(8080, 30004, Tcp)]),
        terminating(endpoint("t4", "10.0.0.3", &[(8080, 30006, Tcp)])),
    ];
    let mut db = service("db", None, EndpointMode::Dnsrr);
    db.ports = vec![port(5432, Tcp)];
    db.endpoints = vec![
        endpoint("d1", "10.0.1.1", &[(5432, 5432, Tcp)]),
        endpoint("d2", "10.0.1.2", &[(5432, 5432, Tcp)]),
        endpoint("d3", "fd00::3", &[(5432, 5432, Tcp)]),
        terminating(endpoint("d4", "10.0.1.4", &[(5432, 5432, Tcp)])),
    ];
    let empty = service("empty", None, EndpointMode::Dnsrr);
    let v6 = service("v6", Some("fd00::10"), EndpointMode::Vip);
    let mut novip = service("novip", None, EndpointMode::Vip);
    novip.endpoints = vec![endpoint("n1", "10.0.2.1", &[])];
    DataPlaneSnapshot {
        vip_pool: None,
        version: 3,
        services: vec![web, db, empty, v6, novip],
    }
}

fn names() -> Names {
    Names::new(&snapshot(), "shoal.internal")
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

fn query_message(name: &str, qtype: RecordType) -> Message {
    let mut msg = Message::new(ID, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    msg
}

fn query(name: &str, qtype: RecordType) -> Vec<u8> {
    query_message(name, qtype).to_vec().expect("encode")
}

fn ask(names: &Names, query: &[u8], transport: Transport) -> Message {
    match answer(names, query, transport, &mut rng()) {
        Outcome::Reply(bytes) => Message::from_vec(&bytes).expect("reply parses"),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn render(record: &Record) -> String {
    match &record.data {
        RData::A(a) => format!("A {}", a.0),
        RData::AAAA(a) => format!("AAAA {}", a.0),
        RData::SRV(s) => format!("SRV {s}"),
        other => format!("{other:?}"),
    }
}

fn rendered(records: &[Record], with_owner: bool) -> BTreeSet<String> {
    records
        .iter()
        .map(|r| {
            if with_owner {
                format!("{} {}", r.name, render(r))
            } else {
                render(r)
            }
        })
        .collect()
}

#[derive(Debug)]
enum Want {
    /// NOERROR, these answers and additional records (any order).
    Answers(&'static [&'static str], &'static [&'static str]),
    NxDomain,
    Forward,
}

#[test]
fn names_answer_by_the_rules() {
    use RecordType::{A, AAAA, MX, SRV};
    use Want::{Answers, Forward as Fwd, NxDomain};
    let cases: &[(&str, RecordType, Want)] = &[
        // A service's VIP, in both forms, any case.
        ("web.", A, Answers(&["A 10.255.0.2"], &[])),
        ("WEB.Shoal.Internal.", A, Answers(&["A 10.255.0.2"], &[])),
        ("web.shoal.internal.", AAAA, Answers(&[], &[])),
        ("web.", MX, Answers(&[], &[])),
        ("v6.", AAAA, Answers(&["AAAA fd00::10"], &[])),
        ("v6.", A, Answers(&[], &[])),
        // Tasks: ready ones only, each address once.
        ("tasks.web.", A, Answers(&["A 10.0.0.1", "A 10.0.0.2"], &[])),
        (
            "tasks.web.shoal.internal.",
            A,
            Answers(&["A 10.0.0.1", "A 10.0.0.2"], &[]),
        ),
        ("tasks.web.", AAAA, Answers(&[], &[])),
        ("t1.tasks.web.", A, Answers(&["A 10.0.0.1"], &[])),
        (
            "t3.tasks.web.shoal.internal.",
            A,
            Answers(&["A 10.0.0.2"], &[]),
        ),
        ("t4.tasks.web.", A, NxDomain),
        ("a.t1.tasks.web.", A, NxDomain),
        // dnsrr, or no VIP: the tasks' addresses under the service's own name.
        ("db.", A, Answers(&["A 10.0.1.1", "A 10.0.1.2"], &[])),
        ("db.", AAAA, Answers(&["AAAA fd00::3"], &[])),
        ("empty.", A, Answers(&[], &[])),
        ("tasks.empty.", A, Answers(&[], &[])),
        ("novip.", A, Answers(&["A 10.0.2.1"], &[])),
        // Unknown.
        ("nosuch.", A, NxDomain),
        ("nosuch.shoal.internal.", A, NxDomain),
        ("a.b.web.shoal.internal.", A, NxDomain),
        ("tasks.nosuch.", A, NxDomain),
        ("shoal.internal.", A, Answers(&[], &[])),
        // Not ours.
        ("example.com.", A, Fwd),
        ("foo.web.", A, Fwd),
        (".", A, Fwd),
        ("_http._tcp.nosuch.", SRV, Fwd),
        ("_http._tcp.nosuch.shoal.internal.", SRV, NxDomain),
        // SRV by VIP: the target port, the VIP beside.
        (
            "_http._tcp.web.",
            SRV,
            Answers(
                &[
                    "SRV 0 10 8080 web.shoal.internal.",
                    "SRV 0 10 9090 web.shoal.internal.",
                ],
                &["web.shoal.internal. A 10.255.0.2"],
            ),
        ),
        (
            "_8080._tcp.web.shoal.internal.",
            SRV,
            Answers(
                &["SRV 0 10 8080 web.shoal.internal."],
                &["web.shoal.internal. A 10.255.0.2"],
            ),
        ),
        (
            "_dns._udp.web.",
            SRV,
            Answers(
                &["SRV 0 10 5353 web.shoal.internal."],
                &["web.shoal.internal. A 10.255.0.2"],
            ),
        ),
        ("_9999._tcp.web.", SRV, Answers(&[], &[])),
        ("_65616._tcp.web.", SRV, Answers(&[], &[])),
        ("_http._tcp.web.", A, Answers(&[], &[])),
        // SRV by task: the host port, each task's address beside.
        (
            "_8080._tcp.tasks.web.",
            SRV,
            Answers(
                &[
                    "SRV 0 10 30001 t1.tasks.web.shoal.internal.",
                    "SRV 0 10 30003 t2.tasks.web.shoal.internal.",
                    "SRV 0 10 30004 t3.tasks.web.shoal.internal.",
                ],
                &[
                    "t1.tasks.web.shoal.internal. A 10.0.0.1",
                    "t2.tasks.web.shoal.internal. A 10.0.0.1",
                    "t3.tasks.web.shoal.internal. A 10.0.0.2",
                ],
            ),
        ),
        (
            "_any._tcp.tasks.web.",
            SRV,
            Answers(
                &[
                    "SRV 0 10 30001 t1.tasks.web.shoal.internal.",
                    "SRV 0 10 30005 t1.tasks.web.shoal.internal.",
                    "SRV 0 10 30003 t2.tasks.web.shoal.internal.",
                    "SRV 0 10 30004 t3.tasks.web.shoal.internal.",
                ],
                &[
                    "t1.tasks.web.shoal.internal. A 10.0.0.1",
                    "t2.tasks.web.shoal.internal. A 10.0.0.1",
                    "t3.tasks.web.shoal.internal. A 10.0.0.2",
                ],
            ),
        ),
        (
            "_dns._udp.tasks.web.",
            SRV,
            Answers(
                &["SRV 0 10 30002 t1.tasks.web.shoal.internal."],
                &["t1.tasks.web.shoal.internal. A 10.0.0.1"],
            ),
        ),
        // SRV of a dnsrr service: by task.
        (
            "_postgres._tcp.db.shoal.internal.",
            SRV,
            Answers(
                &[
                    "SRV 0 10 5432 d1.tasks.db.shoal.internal.",
                    "SRV 0 10 5432 d2.tasks.db.shoal.internal.",
                    "SRV 0 10 5432 d3.tasks.db.shoal.internal.",
                ],
                &[
                    "d1.tasks.db.shoal.internal. A 10.0.1.1",
                    "d2.tasks.db.shoal.internal. A 10.0.1.2",
                    "d3.tasks.db.shoal.internal. AAAA fd00::3",
                ],
            ),
        ),
    ];
    let names = names();
    for (name, qtype, want) in cases {
        let q = query(name, *qtype);
        let outcome = answer(&names, &q, Transport::Udp, &mut rng());
        let what = format!("{name} {qtype}");
        match want {
            Want::Forward => {
                assert_eq!(
                    outcome,
                    Outcome::Forward(Forward {
                        id: ID,
                        reply_limit: 512
                    }),
                    "{what}"
                );
                continue;
            }
            Want::NxDomain | Want::Answers(..) => {}
        }
        let Outcome::Reply(bytes) = outcome else {
            panic!("{what}: {outcome:?}");
        };
        let reply = Message::from_vec(&bytes).expect("reply parses");
        assert_eq!(reply.id, ID, "{what}");
        assert_eq!(reply.message_type, MessageType::Response, "{what}");
        assert!(reply.authoritative, "{what}");
        assert!(reply.recursion_available, "{what}");
        assert!(reply.recursion_desired, "{what}: copied");
        assert!(!reply.truncation, "{what}");
        assert_eq!(reply.queries.len(), 1, "{what}");
        assert_eq!(
            reply.queries[0].name().to_ascii(),
            *name,
            "{what}: as asked"
        );
        assert!(reply
            .answers
            .iter()
            .chain(&reply.additionals)
            .all(|r| r.ttl == TTL));
        match want {
            Want::NxDomain => {
                assert_eq!(reply.response_code, ResponseCode::NXDomain, "{what}");
                assert!(reply.answers.is_empty(), "{what}");
            }
            Want::Answers(answers, additionals) => {
                assert_eq!(reply.response_code, ResponseCode::NoError, "{what}");
                let want_answers: BTreeSet<String> =
                    answers.iter().map(|s| s.to_string()).collect();
                let want_additionals: BTreeSet<String> =
                    additionals.iter().map(|s| s.to_string()).collect();
                assert_eq!(rendered(&reply.answers, false), want_answers, "{what}");
                assert_eq!(reply.answers.len(), answers.len(), "{what}: no duplicates");
                assert!(
                    reply.answers.iter().all(|r| r.name.to_ascii() == *name),
                    "{what}: answers owned by the question's name"
                );
                assert_eq!(
                    rendered(&reply.additionals, true),
                    want_additionals,
                    "{what}"
                );
            }
            Want::Forward => unreachable!(),
        }
    }
}

#[test]
fn addresses_are_shuffled_per_answer() {
    let mut many = service("many", None, EndpointMode::Dnsrr);
    many.endpoints = (1..=8)
        .map(|i| endpoint(&format!("m{i}"), &format!("10.1.0.{i}"), &[]))
        .collect();
    let names = Names::new(
        &DataPlaneSnapshot {
            vip_pool: None,
            version: 1,
            services: vec![many],
        },
        "shoal.internal",
    );
    let q = query("tasks.many.", RecordType::A);
    let mut rng = rng();
    let mut orders = BTreeSet::new();
    for _ in 0..20 {
        let Outcome::Reply(bytes) = answer(&names, &q, Transport::Udp, &mut rng) else {
            panic!("no reply");
        };
        let reply = Message::from_vec(&bytes).expect("parses");
        assert_eq!(reply.answers.len(), 8);
        let order: Vec<String> = reply.answers.iter().map(render).collect();
        orders.insert(order);
    }
    assert!(orders.len() > 10, "orders seen: {}", orders.len());
}

fn crowd(tasks: usize) -> Names {
    let mut crowd = service("crowd", None, EndpointMode::Dnsrr);
    crowd.endpoints = (0..tasks)
        .map(|i| {
            endpoint(
                &format!("task{i:021}"),
                &format!("10.2.{}.{}", i / 250, i % 250 + 1),
                &[(80, 31000 + i as u16, Protocol::Tcp)],
            )
        })
        .collect();
    Names::new(
        &DataPlaneSnapshot {
            vip_pool: None,
            version: 1,
            services: vec![crowd],
        },
        "shoal.internal",
    )
}

#[test]
fn a_large_answer_is_truncated_to_what_the_client_takes() {
    let names = crowd(300);
    let plain = query("crowd.", RecordType::A);
    let with_edns = {
        let mut msg = query_message("crowd.", RecordType::A);
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        msg.edns = Some(edns);
        msg.to_vec().expect("encode")
    };
    // (query, transport, reply size at most, answers, truncated)
    let cases = [
        (&plain, Transport::Udp, 512, 30, true),
        (&with_edns, Transport::Udp, 1232, 74, true),
        (&plain, Transport::Tcp, 65535, 300, false),
    ];
    for (q, transport, max, answers, truncated) in cases {
        let Outcome::Reply(bytes) = answer(&names, q, transport, &mut rng()) else {
            panic!("no reply");
        };
        assert!(bytes.len() <= max, "{transport:?}: {} bytes", bytes.len());
        let reply = Message::from_vec(&bytes).expect("parses");
        assert_eq!(reply.answers.len(), answers, "{transport:?}");
        assert_eq!(reply.truncation, truncated, "{transport:?}");
    }
    let srv = query("_http._tcp.tasks.crowd.", RecordType::SRV);
    for (transport, answers, truncated) in [(Transport::Udp, 6, true), (Transport::Tcp, 300, false)]
    {
        let Outcome::Reply(bytes) = answer(&names, &srv, transport, &mut rng()) else {
            panic!("no reply");
        };
        let reply = Message::from_vec(&bytes).expect("parses");
        assert!(bytes.len() <= 512 || transport == Transport::Tcp);
        assert_eq!(reply.answers.len(), answers, "{transport:?}");
        assert_eq!(reply.truncation, truncated, "{transport:?}");
        // Every additional record is the address of a task answered.
        for extra in &reply.additionals {
            assert!(
                reply.answers.iter().any(|a| match &a.data {
                    RData::SRV(s) => s.target == extra.name,
                    _ => false,
                }),
                "{transport:?}: {extra}"
            );
        }
        if transport == Transport::Tcp {
            assert_eq!(reply.additionals.len(), 300);
        }
    }
}

#[test]
fn edns_is_answered_with_our_payload_size_and_the_do_bit() {
    let mut msg = query_message("web.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_dnssec_ok(true);
    msg.edns = Some(edns);
    let reply = ask(&names(), &msg.to_vec().expect("encode"), Transport::Udp);
    let edns = reply.edns.expect("OPT in the reply");
    assert_eq!(edns.max_payload(), 4096);
    assert!(edns.flags().dnssec_ok);
    assert_eq!(rendered(&reply.answers, false).len(), 1);

    let mut msg = query_message("web.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_version(1);
    msg.edns = Some(edns);
    let reply = ask(&names(), &msg.to_vec().expect("encode"), Transport::Udp);
    // BADVERS and BADSIG share code 16; hickory reads it as the latter.
    assert_eq!(u16::from(reply.response_code), 16);
    assert!(reply.answers.is_empty());
}

#[test]
fn a_name_of_ours_in_another_class_has_no_record() {
    let mut msg = Message::new(ID, MessageType::Query, OpCode::Query);
    let mut q = Query::query(Name::from_ascii("web.").expect("name"), RecordType::A);
    q.set_query_class(DNSClass::CH);
    msg.add_query(q);
    let reply = ask(&names(), &msg.to_vec().expect("encode"), Transport::Udp);
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert!(reply.answers.is_empty());
}

#[test]
fn malformed_queries_get_an_error_or_nothing() {
    let names = names();
    let valid = query("web.", RecordType::A);
    let mut response = valid.clone();
    response[2] |= 0x80;
    let mut notify = valid.clone();
    notify[2] = 4 << 3;
    let mut two = query_message("web.", RecordType::A);
    two.add_query(Query::query(
        Name::from_ascii("db.").expect("name"),
        RecordType::A,
    ));
    let two = two.to_vec().expect("encode");
    let mut no_question = valid[..12].to_vec();
    no_question[5] = 0;
    let mut cut = valid.clone();
    cut.truncate(valid.len() - 3);
    let cases: Vec<(&str, Vec<u8>, Option<ResponseCode>)> = vec![
        ("empty", vec![], None),
        ("shorter than a header", valid[..11].to_vec(), None),
        ("a response", response, None),
        (
            "header only, one question announced",
            valid[..12].to_vec(),
            Some(ResponseCode::FormErr),
        ),
        ("question cut short", cut, Some(ResponseCode::FormErr)),
        ("no question", no_question, Some(ResponseCode::FormErr)),
        ("two questions", two, Some(ResponseCode::FormErr)),
        ("NOTIFY", notify, Some(ResponseCode::NotImp)),
    ];
    for (what, q, want) in cases {
        let outcome = answer(&names, &q, Transport::Udp, &mut rng());
        match (outcome, want) {
            (Outcome::Drop, None) => {}
            (Outcome::Reply(bytes), Some(code)) => {
                let reply = Message::from_vec(&bytes).expect("reply parses");
                assert_eq!(reply.id, ID, "{what}");
                assert_eq!(reply.response_code, code, "{what}");
                assert_eq!(reply.message_type, MessageType::Response, "{what}");
            }
            (other, _) => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn random_and_mutated_bytes_never_panic() {
    let names = names();
    let mut rng = StdRng::seed_from_u64(42);
    let seeds = [
        query("web.", RecordType::A),
        query("_http._tcp.tasks.web.shoal.internal.", RecordType::SRV),
        {
            let mut msg = query_message("db.", RecordType::AAAA);
            msg.edns = Some(Edns::new());
            msg.to_vec().expect("encode")
        },
    ];
    for round in 0..20_000 {
        let bytes: Vec<u8> = if round % 2 == 0 {
            let len = rng.random_range(0..64);
            (0..len).map(|_| rng.random()).collect()
        } else {
            let mut bytes = seeds[round % seeds.len()].clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..bytes.len());
                bytes[at] = rng.random();
            }
            bytes.truncate(rng.random_range(0..=bytes.len()));
            bytes
        };
        for transport in [Transport::Udp, Transport::Tcp] {
            if let Outcome::Reply(reply) = answer(&names, &bytes, transport, &mut rng) {
                assert!(reply.len() >= 12);
                assert_eq!(reply[..2], bytes[..2], "the reply keeps the query's ID");
            }
        }
    }
}

#[test]
fn a_new_snapshot_changes_the_answer() {
    let before = names();
    let mut moved = snapshot();
    moved.services[0].vip = Some(IpAddr::from([10, 255, 0, 9]));
    moved.version = 4;
    let after = Names::new(&moved, "shoal.internal");
    let q = query("web.", RecordType::A);
    let answers = |names: &Names| rendered(&ask(names, &q, Transport::Udp).answers, false);
    assert_eq!(
        answers(&before),
        BTreeSet::from(["A 10.255.0.2".to_string()])
    );
    assert_eq!(
        answers(&after),
        BTreeSet::from(["A 10.255.0.9".to_string()])
    );
    assert_eq!(after.version(), 4);
}

#[test]
fn another_domain_serves_the_same_names_under_it() {
    let names = Names::new(&snapshot(), "Cluster.Example.");
    let reply = ask(
        &names,
        &query("_8080._tcp.web.cluster.example.", RecordType::SRV),
        Transport::Udp,
    );
    assert_eq!(
        rendered(&reply.answers, false),
        BTreeSet::from(["SRV 0 10 8080 web.cluster.example.".to_string()])
    );
    assert_eq!(
        answer(
            &names,
            &query("web.shoal.internal.", RecordType::A),
            Transport::Udp,
            &mut rng()
        ),
        Outcome::Forward(Forward {
            id: ID,
            reply_limit: 512
        })
    );
}

#[test]
fn a_forward_that_fails_gets_servfail_to_its_question() {
    let q = query("example.com.", RecordType::A);
    let reply = Message::from_vec(&servfail(&q, Transport::Udp).expect("a query")).expect("parses");
    assert_eq!(reply.id, ID);
    assert_eq!(reply.response_code, ResponseCode::ServFail);
    assert_eq!(reply.queries[0].name().to_ascii(), "example.com.");
    assert!(!reply.authoritative);
    assert_eq!(servfail(&q[..5], Transport::Udp), None);
}

#[test]
fn a_truncated_answer_is_a_random_pick_of_the_addresses() {
    let names = crowd(300);
    let q = query("crowd.", RecordType::A);
    let mut rng = rng();
    let mut seen = BTreeSet::new();
    for _ in 0..20 {
        let Outcome::Reply(bytes) = answer(&names, &q, Transport::Udp, &mut rng) else {
            panic!("no reply");
        };
        let reply = Message::from_vec(&bytes).expect("parses");
        let these = rendered(&reply.answers, false);
        assert_eq!(these.len(), 30, "30 distinct addresses fit in 512 bytes");
        seen.extend(these);
    }
    assert!(seen.len() > 200, "addresses seen: {}", seen.len());
}
