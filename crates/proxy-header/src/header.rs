//! What a header says, and its encoding.

use crate::{FIXED_LEN, SIGNATURE};
use std::net::{IpAddr, SocketAddr};

/// Version 2 in the high nibble; the command in the low one.
pub(crate) const VERSION_2: u8 = 0x20;
pub(crate) const COMMAND_LOCAL: u8 = 0x0;
pub(crate) const COMMAND_PROXY: u8 = 0x1;

/// Address family (high nibble) and transport (low nibble).
pub(crate) const UNSPEC: u8 = 0x00;
pub(crate) const TCP4: u8 = 0x11;
pub(crate) const UDP4: u8 = 0x12;
pub(crate) const TCP6: u8 = 0x21;
pub(crate) const UDP6: u8 = 0x22;
pub(crate) const UNIX_STREAM: u8 = 0x31;
pub(crate) const UNIX_DGRAM: u8 = 0x32;

/// Bytes of the address block for IPv4 (two addresses, two ports), IPv6 and unix sockets.
pub(crate) const IPV4_LEN: usize = 12;
pub(crate) const IPV6_LEN: usize = 36;
pub(crate) const UNIX_LEN: usize = 216;

/// One PROXY v2 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// The proxy speaks for itself (a health check, say): the connection's own addresses
    /// stand.
    Local,
    /// The proxy relays a client. `None` when the header names no IP addresses (family
    /// `UNSPEC` or a unix socket): the connection's own addresses stand then too.
    Proxy(Option<Addresses>),
}

/// Whom a relayed connection is from and where it was headed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    pub transport: Transport,
    /// The client.
    pub source: SocketAddr,
    /// The address the client connected to.
    pub destination: SocketAddr,
}

/// What the client's connection was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP.
    Stream,
    /// UDP.
    Datagram,
}

impl Header {
    /// The header for a TCP connection from `source` to `destination`.
    pub fn tcp(source: SocketAddr, destination: SocketAddr) -> Header {
        Header::Proxy(Some(Addresses::new(Transport::Stream, source, destination)))
    }

    /// The header's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let (command, family, block) = match self {
            Header::Local => (COMMAND_LOCAL, UNSPEC, Vec::new()),
            Header::Proxy(None) => (COMMAND_PROXY, UNSPEC, Vec::new()),
            Header::Proxy(Some(a)) => {
                let (family, block) = a.encode();
                (COMMAND_PROXY, family, block)
            }
        };
        let mut out = Vec::with_capacity(FIXED_LEN + block.len());
        out.extend_from_slice(&SIGNATURE);
        out.push(VERSION_2 | command);
        out.push(family);
        // At most 36 bytes: the length always fits.
        out.extend_from_slice(&(block.len() as u16).to_be_bytes());
        out.extend_from_slice(&block);
        out
    }
}

impl Addresses {
    /// Both addresses in one family, as a header carries them: IPv4 when both are IPv4 (or
    /// IPv4-mapped IPv6, as a dual-stack socket reports an IPv4 peer), else IPv6 with any
    /// IPv4 address mapped.
    pub fn new(transport: Transport, source: SocketAddr, destination: SocketAddr) -> Addresses {
        let (source, destination) = match (v4(source), v4(destination)) {
            (Some(s), Some(d)) => (s, d),
            _ => (v6(source), v6(destination)),
        };
        Addresses {
            transport,
            source,
            destination,
        }
    }

    /// Family byte and address block; mixed families are written as IPv6.
    fn encode(&self) -> (u8, Vec<u8>) {
        let Addresses {
            transport,
            source,
            destination,
        } = Addresses::new(self.transport, self.source, self.destination);
        let mut block = Vec::with_capacity(IPV6_LEN);
        let family = match (source.ip(), destination.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                block.extend_from_slice(&s.octets());
                block.extend_from_slice(&d.octets());
                match transport {
                    Transport::Stream => TCP4,
                    Transport::Datagram => UDP4,
                }
            }
            (s, d) => {
                block.extend_from_slice(&mapped(s).octets());
                block.extend_from_slice(&mapped(d).octets());
                match transport {
                    Transport::Stream => TCP6,
                    Transport::Datagram => UDP6,
                }
            }
        };
        block.extend_from_slice(&source.port().to_be_bytes());
        block.extend_from_slice(&destination.port().to_be_bytes());
        (family, block)
    }
}

fn v4(addr: SocketAddr) -> Option<SocketAddr> {
    match addr.ip() {
        IpAddr::V4(_) => Some(addr),
        IpAddr::V6(ip) => ip
            .to_ipv4_mapped()
            .map(|ip| SocketAddr::new(IpAddr::V4(ip), addr.port())),
    }
}

fn v6(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(mapped(addr.ip())), addr.port())
}

fn mapped(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(ip) => ip.to_ipv6_mapped(),
        IpAddr::V6(ip) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_ipv4_header_is_the_signature_then_twelve_address_bytes() {
        let h = Header::tcp(addr("192.0.2.7:51000"), addr("10.0.0.1:8080"));
        let bytes = h.encode();
        assert_eq!(&bytes[..12], &SIGNATURE);
        assert_eq!(bytes[12..16], [0x21, 0x11, 0, 12]);
        assert_eq!(
            bytes[16..],
            [192, 0, 2, 7, 10, 0, 0, 1, 0xc7, 0x38, 0x1f, 0x90]
        );
    }

    #[test]
    fn an_ipv6_header_carries_thirty_six_address_bytes() {
        let bytes = Header::tcp(addr("[2001:db8::1]:443"), addr("[2001:db8::2]:80")).encode();
        assert_eq!(bytes[12..16], [0x21, 0x21, 0, 36]);
        assert_eq!(bytes.len(), FIXED_LEN + IPV6_LEN);
    }

    #[test]
    fn ipv4_mapped_addresses_are_written_as_ipv4() {
        let h = Header::tcp(addr("[::ffff:192.0.2.7]:1"), addr("[::ffff:10.0.0.1]:2"));
        assert_eq!(
            h,
            Header::tcp(addr("192.0.2.7:1"), addr("10.0.0.1:2")),
            "normalized"
        );
        assert_eq!(h.encode()[13], TCP4);
    }

    #[test]
    fn mixed_families_are_written_as_ipv6() {
        let h = Header::tcp(addr("192.0.2.7:1"), addr("[2001:db8::2]:2"));
        let Header::Proxy(Some(a)) = h else {
            panic!("{h:?}")
        };
        assert_eq!(a.source, addr("[::ffff:192.0.2.7]:1"));
        assert_eq!(h.encode()[13], TCP6);
    }

    #[test]
    fn local_and_unspecified_headers_carry_no_addresses() {
        assert_eq!(Header::Local.encode()[12..], [0x20, 0x00, 0, 0]);
        assert_eq!(Header::Proxy(None).encode()[12..], [0x21, 0x00, 0, 0]);
    }
}
