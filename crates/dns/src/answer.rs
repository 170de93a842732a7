//! What to do with one query, decided without I/O: the reply bytes, a forward to the
//! upstream resolvers, or nothing.
//!
//! Names (relative to the domain, case-insensitive, also in the short form without it):
//! `web` (the VIP, or the ready tasks' addresses in dnsrr mode or without a VIP),
//! `tasks.web` (the ready tasks' addresses), `<task id>.tasks.web` (one task's address),
//! `_<port or name>._<tcp|udp>.web` and `_<…>._<tcp|udp>.tasks.web` (SRV). A name under the
//! domain that is none of these, a single label, `tasks.<x>`, or a name below `tasks.web`
//! is NXDOMAIN; any other name goes to the upstream resolvers.

use crate::names::{Names, Node, ServiceNames};
use crate::reply::{
    fits_pointer, pointer, Reply, Section, MAX_MESSAGE, MAX_UDP_PAYLOAD, PLAIN_UDP_PAYLOAD,
    QUESTION_NAME,
};
use crate::request::{Rejected, Request};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use rand::Rng;
use shoal_api::task::EndpointPort;
use shoal_api::Protocol;
use std::net::IpAddr;

/// SRV priority of every record (one tier).
const SRV_PRIORITY: u16 = 0;
/// SRV weight of every record (all equal).
const SRV_WEIGHT: u16 = 10;
const CLASS_IN: u16 = 1;
const CLASS_ANY: u16 = 255;

/// What the query came over: it bounds the reply's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// 512 bytes, or the EDNS payload size the client gives (at most 4096).
    Udp,
    /// 65,535 bytes.
    Tcp,
}

/// What to do with one query.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send these bytes back to the client.
    Reply(Vec<u8>),
    /// Not a name of ours: send the query, as it stands, to the upstream resolvers.
    Forward(Forward),
    /// Send nothing (not a query, or too short to answer).
    Drop,
}

/// A query to forward, with what the driver needs to relay the upstream's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// The client's query ID, which the upstream's reply is given back.
    pub id: u16,
    /// The largest reply the client takes over the transport it asked on (the upstream is
    /// asked with the client's own EDNS size, so it answers within it).
    pub reply_limit: usize,
}

/// Decides what to answer `query` (one DNS message, no TCP length prefix) that came over
/// `transport`, from `names`; `rng` shuffles address records. Never panics.
pub fn answer(names: &Names, query: &[u8], transport: Transport, rng: &mut impl Rng) -> Outcome {
    let req = match Request::parse(query) {
        Ok(req) => req,
        Err(Rejected::Drop) => return Outcome::Drop,
        Err(Rejected::Error {
            head,
            question,
            code,
        }) => {
            let reply = Reply::start(head, question, None, PLAIN_UDP_PAYLOAD);
            return Outcome::Reply(reply.finish(code, false));
        }
    };
    let max_size = reply_limit(&req, transport);
    if req.edns.is_some_and(|e| e.version != 0) {
        let reply = Reply::start(req.head, Some(req.question), req.edns, max_size);
        return Outcome::Reply(reply.finish(ResponseCode::BADVERS, false));
    }
    let found = match resolve(names, &req) {
        Resolved::Elsewhere => {
            return Outcome::Forward(Forward {
                id: req.head.id,
                reply_limit: forward_limit(&req, transport),
            })
        }
        Resolved::Missing => {
            let reply = Reply::to(&req, max_size);
            return Outcome::Reply(reply.finish(ResponseCode::NXDomain, true));
        }
        Resolved::Apex => None,
        Resolved::Found(node, srv) => Some((node, srv)),
    };
    let mut reply = Reply::to(&req, max_size);
    if let Some((node, srv)) = found {
        if req.qclass == CLASS_IN || req.qclass == CLASS_ANY {
            records(names, &req, node, srv, &mut reply, rng);
        }
    }
    Outcome::Reply(reply.finish(ResponseCode::NoError, true))
}

/// The reply a forwarded query gets when no upstream answers: SERVFAIL to its question.
/// `None` if `query` is not a query `answer` forwards.
pub fn servfail(query: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let req = Request::parse(query).ok()?;
    let max_size = reply_limit(&req, transport);
    Some(Reply::to(&req, max_size).finish(ResponseCode::ServFail, false))
}

fn reply_limit(req: &Request<'_>, transport: Transport) -> usize {
    match (transport, req.edns) {
        (Transport::Tcp, _) => MAX_MESSAGE,
        (Transport::Udp, None) => PLAIN_UDP_PAYLOAD,
        (Transport::Udp, Some(edns)) => usize::from(
            edns.payload
                .clamp(PLAIN_UDP_PAYLOAD as u16, MAX_UDP_PAYLOAD),
        ),
    }
}

/// The largest reply the client takes from an upstream: what it says it takes, which is
/// what the upstream sees in the query.
fn forward_limit(req: &Request<'_>, transport: Transport) -> usize {
    match (transport, req.edns) {
        (Transport::Tcp, _) => MAX_MESSAGE,
        (Transport::Udp, None) => PLAIN_UDP_PAYLOAD,
        (Transport::Udp, Some(edns)) => usize::from(edns.payload).max(PLAIN_UDP_PAYLOAD),
    }
}

/// An SRV name's service and port: `_<x>._<proto>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SrvQuery {
    protocol: Protocol,
    /// The target port asked for (`_8080`), or every port of the protocol (`_http`).
    port: Option<u16>,
}

#[derive(Debug)]
enum Resolved {
    /// A name we know; with the SRV prefix it was asked under.
    Found(Node, Option<SrvQuery>),
    /// The domain itself: it exists, holds no record.
    Apex,
    /// NXDOMAIN.
    Missing,
    /// For the upstream resolvers.
    Elsewhere,
}

fn resolve(names: &Names, req: &Request<'_>) -> Resolved {
    let name = req.name.text();
    let domain = names.domain().as_bytes();
    let (relative, in_domain) = if name == domain {
        (&name[..0], true)
    } else {
        match name.strip_suffix(domain) {
            Some(rest) if rest.ends_with(b".") => (&rest[..rest.len() - 1], true),
            _ => (name, false),
        }
    };
    if in_domain && relative.is_empty() {
        return Resolved::Apex;
    }
    if req.name.plain() {
        if let Some(node) = names.find(relative) {
            return Resolved::Found(node, None);
        }
        if let Some((srv, rest)) = srv_prefix(relative) {
            if let Some(node @ (Node::Service(_) | Node::Tasks(_))) = names.find(rest) {
                return Resolved::Found(node, Some(srv));
            }
        }
    }
    if in_domain || (req.name.plain() && under_tasks(names, relative)) {
        return Resolved::Missing;
    }
    match req.name.labels() {
        0 => Resolved::Elsewhere,
        1 => Resolved::Missing,
        2 if name.starts_with(b"tasks.") => Resolved::Missing,
        _ => Resolved::Elsewhere,
    }
}

/// Whether `name` is below `tasks.<service>` of a known service: every name there is ours.
fn under_tasks(names: &Names, name: &[u8]) -> bool {
    const TASKS: &[u8] = b".tasks.";
    name.windows(TASKS.len())
        .enumerate()
        .filter(|(_, w)| *w == TASKS)
        .any(|(at, _)| matches!(names.find(&name[at + 1..]), Some(Node::Tasks(_))))
}

/// `_<x>._tcp.` or `_<x>._udp.` at the front of `name`, and the rest.
fn srv_prefix(name: &[u8]) -> Option<(SrvQuery, &[u8])> {
    let (service, rest) = split_label(name)?;
    let (protocol, rest) = split_label(rest)?;
    let protocol = match protocol {
        b"_tcp" => Protocol::Tcp,
        b"_udp" => Protocol::Udp,
        _ => return None,
    };
    // A number is a port (one too large for a port matches none); any other label, all.
    let digits = service.strip_prefix(b"_").unwrap_or(service);
    let port = std::str::from_utf8(digits)
        .ok()
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .map(|d| d.parse::<u16>().unwrap_or(0));
    Some((SrvQuery { protocol, port }, rest))
}

/// The first label of a dotted name and the rest, if there is a rest.
fn split_label(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let dot = name.iter().position(|&b| b == b'.')?;
    Some((&name[..dot], &name[dot + 1..]))
}

/// Which address families a query asks for.
#[derive(Debug, Clone, Copy)]
struct Families {
    v4: bool,
    v6: bool,
}

impl Families {
    const BOTH: Families = Families { v4: true, v6: true };

    fn of(qtype: RecordType) -> Families {
        match qtype {
            RecordType::A => Families {
                v4: true,
                v6: false,
            },
            RecordType::AAAA => Families {
                v4: false,
                v6: true,
            },
            RecordType::ANY => Families::BOTH,
            _ => Families {
                v4: false,
                v6: false,
            },
        }
    }
}

/// The records of a known name.
fn records(
    names: &Names,
    req: &Request<'_>,
    node: Node,
    srv: Option<SrvQuery>,
    reply: &mut Reply,
    rng: &mut impl Rng,
) {
    let question = pointer(QUESTION_NAME);
    let (Node::Service(at) | Node::Tasks(at) | Node::Task(at, _)) = node;
    let service = names.service(at);
    // The service's own name stands for its VIP when it has one, for its tasks otherwise.
    let vip = match node {
        Node::Service(_) => service.vip,
        Node::Tasks(_) | Node::Task(..) => None,
    };
    if let Some(srv) = srv {
        if matches!(req.qtype, RecordType::SRV | RecordType::ANY) {
            match vip {
                Some(vip) => vip_srv(service, vip, srv, reply),
                None => tasks_srv(service, srv, reply),
            }
        }
        return;
    }
    let families = Families::of(req.qtype);
    match (node, vip) {
        (Node::Task(_, t), _) => {
            let addr = service.tasks[t].addr;
            address(reply, Section::Answer, &[&question], addr, families);
        }
        (_, Some(vip)) => address(reply, Section::Answer, &[&question], vip, families),
        (_, None) => {
            if families.v4 {
                let v4 = service.v4.iter().map(|a| a.octets());
                reply.push_addresses(RecordType::A, v4, rng);
            }
            if families.v6 {
                let v6 = service.v6.iter().map(|a| a.octets());
                reply.push_addresses(RecordType::AAAA, v6, rng);
            }
        }
    }
}

/// One A or AAAA record of `addr`, if its family is asked for.
fn address(reply: &mut Reply, section: Section, owner: &[&[u8]], addr: IpAddr, families: Families) {
    match addr {
        IpAddr::V4(a) if families.v4 => {
            reply.push(section, owner, RecordType::A, &[&a.octets()]);
        }
        IpAddr::V6(a) if families.v6 => {
            reply.push(section, owner, RecordType::AAAA, &[&a.octets()]);
        }
        _ => {}
    }
}

/// Priority, weight and port: the SRV RDATA before its target.
const SRV_FIXED: usize = 6;

fn srv_fixed(port: u16) -> [u8; SRV_FIXED] {
    let mut fixed = [0u8; SRV_FIXED];
    fixed[0..2].copy_from_slice(&SRV_PRIORITY.to_be_bytes());
    fixed[2..4].copy_from_slice(&SRV_WEIGHT.to_be_bytes());
    fixed[4..6].copy_from_slice(&port.to_be_bytes());
    fixed
}

/// One SRV per matching port to `web.<domain>.` on the target port, the VIP in the
/// additional section.
fn vip_srv(service: &ServiceNames, vip: IpAddr, srv: SrvQuery, reply: &mut Reply) {
    let question = pointer(QUESTION_NAME);
    let mut target = None;
    for &(port, protocol) in &service.ports {
        if protocol != srv.protocol || srv.port.is_some_and(|p| p != port) {
            continue;
        }
        // SRV targets are never compressed (RFC 2782).
        let Some(at) = reply.push(
            Section::Answer,
            &[&question],
            RecordType::SRV,
            &[&srv_fixed(port), &service.fqdn],
        ) else {
            break;
        };
        target.get_or_insert(at + SRV_FIXED);
    }
    let Some(target) = target else {
        return;
    };
    match fits_pointer(target) {
        Some(at) => address(
            reply,
            Section::Additional,
            &[&pointer(at)],
            vip,
            Families::BOTH,
        ),
        None => address(
            reply,
            Section::Additional,
            &[&service.fqdn],
            vip,
            Families::BOTH,
        ),
    }
}

/// One SRV per ready task and matching port, to `<task id>.tasks.web.<domain>.` on the
/// task's host port; the tasks' addresses in the additional section.
fn tasks_srv(service: &ServiceNames, srv: SrvQuery, reply: &mut Reply) {
    let question = pointer(QUESTION_NAME);
    let wanted = |p: &&EndpointPort| {
        p.protocol == srv.protocol && srv.port.is_none_or(|want| want == p.target)
    };
    // Where `tasks.web.<domain>.` was first written, for the additional records' owners.
    let mut suffix = None;
    // Tasks answered, in order: fewer than all when the answer was cut short.
    let mut answered = 0;
    'tasks: for task in &service.tasks {
        for (n, p) in task.ports.iter().filter(wanted).enumerate() {
            let Some(at) = reply.push(
                Section::Answer,
                &[&question],
                RecordType::SRV,
                &[&srv_fixed(p.host_port), &task.label, &service.tasks_fqdn],
            ) else {
                break 'tasks;
            };
            suffix.get_or_insert(at + SRV_FIXED + task.label.len());
            if n == 0 {
                answered += 1;
            }
        }
    }
    let suffix = suffix.and_then(fits_pointer).map(pointer);
    let answered = service
        .tasks
        .iter()
        .filter(|t| t.ports.iter().any(|p| wanted(&p)))
        .take(answered);
    for task in answered {
        let owner: [&[u8]; 2] = match &suffix {
            Some(suffix) => [&task.label, suffix],
            None => [&task.label, &service.tasks_fqdn],
        };
        address(
            reply,
            Section::Additional,
            &owner,
            task.addr,
            Families::BOTH,
        );
    }
}
