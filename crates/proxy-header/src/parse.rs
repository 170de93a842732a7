//! Reading a header, strictly: every byte of the fixed part is checked, the address block
//! must hold the addresses its family names, and nothing is read past the header's length.

use crate::header::{
    Addresses, Header, Transport, COMMAND_LOCAL, COMMAND_PROXY, IPV4_LEN, IPV6_LEN, TCP4, TCP6,
    UDP4, UDP6, UNIX_DGRAM, UNIX_LEN, UNIX_STREAM, UNSPEC, VERSION_2,
};
use crate::{FIXED_LEN, SIGNATURE};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// What is wrong with a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Everything so far is a header, cut short: `needed` bytes in all are needed to go on
    /// (the fixed part first, then the whole header once its length is known).
    #[error("PROXY header cut short: {needed} bytes needed")]
    Incomplete { needed: usize },
    /// The input does not start with the version 2 signature.
    #[error("no PROXY protocol v2 signature")]
    NotProxy,
    /// A version 1 (text) header, which is not read.
    #[error("PROXY protocol v1 (text) header: only v2 is read")]
    Version1,
    /// The signature, then a version other than 2.
    #[error("PROXY protocol version {0} is not supported: only v2 is read")]
    Version(u8),
    /// A command other than LOCAL and PROXY.
    #[error("unknown PROXY protocol command {0:#x}")]
    Command(u8),
    /// An address family and transport byte the protocol does not define.
    #[error("unknown PROXY protocol address family and transport {0:#04x}")]
    Family(u8),
    /// The header's length is shorter than the addresses of its family.
    #[error("PROXY header of family {family:#04x} holds {len} address bytes, {needed} needed")]
    ShortAddresses {
        family: u8,
        len: usize,
        needed: usize,
    },
}

/// The header at the start of `input` and its length in bytes (what follows it is the
/// connection's own data). Never reads past that length.
pub fn parse(input: &[u8]) -> Result<(Header, usize), ParseError> {
    let seen = input.len().min(SIGNATURE.len());
    if input[..seen] != SIGNATURE[..seen] {
        return Err(if input.starts_with(b"PROXY ") {
            ParseError::Version1
        } else {
            ParseError::NotProxy
        });
    }
    let Some(fixed) = input.get(..FIXED_LEN) else {
        return Err(ParseError::Incomplete { needed: FIXED_LEN });
    };
    let (version_command, family) = (fixed[12], fixed[13]);
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if version_command & 0xf0 != VERSION_2 {
        return Err(ParseError::Version(version_command >> 4));
    }
    let command = version_command & 0x0f;
    if command != COMMAND_LOCAL && command != COMMAND_PROXY {
        return Err(ParseError::Command(command));
    }
    let needed = match family {
        UNSPEC => 0,
        TCP4 | UDP4 => IPV4_LEN,
        TCP6 | UDP6 => IPV6_LEN,
        UNIX_STREAM | UNIX_DGRAM => UNIX_LEN,
        other => return Err(ParseError::Family(other)),
    };
    let total = FIXED_LEN + len;
    let Some(block) = input.get(FIXED_LEN..total) else {
        return Err(ParseError::Incomplete { needed: total });
    };
    // LOCAL: the addresses, if any, are to be ignored (the protocol's rule).
    if command == COMMAND_LOCAL {
        return Ok((Header::Local, total));
    }
    if len < needed {
        return Err(ParseError::ShortAddresses {
            family,
            len,
            needed,
        });
    }
    // What follows the addresses (TLVs) is skipped.
    let addresses = match family {
        TCP4 | UDP4 => Some(ipv4(block)),
        TCP6 | UDP6 => Some(ipv6(block)),
        _ => None,
    }
    .map(|(source, destination)| {
        let transport = if family & 0x0f == 0x1 {
            Transport::Stream
        } else {
            Transport::Datagram
        };
        // IPv4-mapped addresses in an IPv6 header read as IPv4, as the encoder writes them.
        Addresses::new(transport, source, destination)
    });
    Ok((Header::Proxy(addresses), total))
}

/// Source and destination of an IPv4 block (at least 12 bytes).
fn ipv4(block: &[u8]) -> (SocketAddr, SocketAddr) {
    let mut b = [0u8; IPV4_LEN];
    b.copy_from_slice(&block[..IPV4_LEN]);
    let ip = |i: usize| Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3]);
    let port = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    (
        SocketAddr::from((ip(0), port(8))),
        SocketAddr::from((ip(4), port(10))),
    )
}

/// Source and destination of an IPv6 block (at least 36 bytes).
fn ipv6(block: &[u8]) -> (SocketAddr, SocketAddr) {
    let mut b = [0u8; IPV6_LEN];
    b.copy_from_slice(&block[..IPV6_LEN]);
    let ip = |i: usize| {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&b[i..i + 16]);
        Ipv6Addr::from(octets)
    };
    let port = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    (
        SocketAddr::from((ip(0), port(32))),
        SocketAddr::from((ip(16), port(34))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_LEN;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn v4_header() -> Header {
        Header::tcp(addr("192.0.2.7:51000"), addr("10.0.0.1:8080"))
    }

    /// A header with the fixed part given and `block` after it.
    fn raw(version_command: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.push(version_command);
        out.push(family);
        out.extend_from_slice(&(block.len() as u16).to_be_bytes());
        out.extend_from_slice(block);
        out
    }

    #[test]
    fn headers_round_trip() {
        let headers = [
            v4_header(),
            Header::tcp(addr("[2001:db8::1]:443"), addr("[2001:db8::2]:80")),
            Header::tcp(addr("192.0.2.7:1"), addr("[2001:db8::2]:2")),
            Header::Proxy(Some(Addresses::new(
                Transport::Datagram,
                addr("192.0.2.7:53"),
                addr("10.0.0.1:5353"),
            ))),
            Header::Proxy(Some(Addresses::new(
                Transport::Datagram,
                addr("[2001:db8::1]:53"),
                addr("[2001:db8::2]:5353"),
            ))),
            Header::Local,
            Header::Proxy(None),
        ];
        for h in headers {
            let bytes = h.encode();
            assert_eq!(parse(&bytes), Ok((h, bytes.len())), "{h:?}");
        }
    }

    #[test]
    fn what_follows_the_header_is_left_alone() {
        let mut bytes = v4_header().encode();
        let len = bytes.len();
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(parse(&bytes), Ok((v4_header(), len)));
    }

    #[test]
    fn every_cut_short_header_asks_for_exactly_what_is_missing() {
        let bytes = v4_header().encode();
        for cut in 0..bytes.len() {
            let needed = if cut < FIXED_LEN {
                FIXED_LEN
            } else {
                bytes.len()
            };
            assert_eq!(
                parse(&bytes[..cut]),
                Err(ParseError::Incomplete { needed }),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn tlvs_after_the_addresses_are_skipped() {
        let mut block = vec![192, 0, 2, 7, 10, 0, 0, 1, 0xc7, 0x38, 0x1f, 0x90];
        // PP2_TYPE_AUTHORITY "web", then a NOOP.
        block.extend_from_slice(&[0x02, 0, 3, b'w', b'e', b'b', 0x04, 0, 0]);
        let bytes = raw(0x21, TCP4, &block);
        assert_eq!(parse(&bytes), Ok((v4_header(), bytes.len())));
    }

    #[test]
    fn local_ignores_any_addresses() {
        let bytes = raw(0x20, TCP4, &[1; 12]);
        assert_eq!(parse(&bytes), Ok((Header::Local, 28)));
        let bytes = raw(0x20, TCP4, &[]);
        assert_eq!(parse(&bytes), Ok((Header::Local, 16)));
    }

    #[test]
    fn unix_and_unspecified_families_name_no_addresses() {
        let bytes = raw(0x21, UNIX_STREAM, &[0; UNIX_LEN]);
        assert_eq!(parse(&bytes), Ok((Header::Proxy(None), bytes.len())));
        let bytes = raw(0x21, UNSPEC, &[7; 5]);
        assert_eq!(parse(&bytes), Ok((Header::Proxy(None), 21)));
    }

    #[test]
    fn malformed_headers_are_refused_by_what_is_wrong() {
        let cases: Vec<(Vec<u8>, ParseError)> = vec![
            (b"GET / HTTP/1.1\r\n".to_vec(), ParseError::NotProxy),
            (b"\r\n\r\nX".to_vec(), ParseError::NotProxy),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
                ParseError::Version1,
            ),
            (raw(0x11, TCP4, &[0; 12]), ParseError::Version(1)),
            (raw(0x31, TCP4, &[0; 12]), ParseError::Version(3)),
            (raw(0x22, TCP4, &[0; 12]), ParseError::Command(2)),
            (raw(0x2f, TCP4, &[0; 12]), ParseError::Command(0xf)),
            (raw(0x21, 0x13, &[0; 12]), ParseError::Family(0x13)),
            (raw(0x21, 0x10, &[0; 12]), ParseError::Family(0x10)),
            (raw(0x21, 0x41, &[0; 12]), ParseError::Family(0x41)),
            (
                raw(0x21, TCP4, &[0; 11]),
                ParseError::ShortAddresses {
                    family: TCP4,
                    len: 11,
                    needed: 12,
                },
            ),
            (
                raw(0x21, TCP6, &[0; 12]),
                ParseError::ShortAddresses {
                    family: TCP6,
                    len: 12,
                    needed: 36,
                },
            ),
            (
                raw(0x21, UNIX_DGRAM, &[0; 36]),
                ParseError::ShortAddresses {
                    family: UNIX_DGRAM,
                    len: 36,
                    needed: 216,
                },
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse(&bytes), Err(want), "{bytes:?}");
            assert!(!want.to_string().contains('\n'));
        }
    }

    /// Found by the fuzz target: an IPv6 header of two IPv4-mapped addresses read back as
    /// IPv6, but encoded again as IPv4.
    #[test]
    fn ipv4_mapped_addresses_in_an_ipv6_header_read_as_ipv4() {
        let mut block = Vec::new();
        for ip in ["::ffff:192.0.2.7", "::ffff:10.0.0.1"] {
            block.extend_from_slice(&ip.parse::<Ipv6Addr>().unwrap().octets());
        }
        block.extend_from_slice(&[0xc7, 0x38, 0x1f, 0x90]);
        let bytes = raw(0x21, TCP6, &block);
        let (header, len) = parse(&bytes).unwrap();
        assert_eq!((header, len), (v4_header(), bytes.len()));
        assert_eq!(parse(&header.encode()), Ok((header, FIXED_LEN + IPV4_LEN)));
    }

    #[test]
    fn the_longest_header_is_read_whole() {
        let mut block = vec![0u8; u16::MAX as usize];
        block[..12].copy_from_slice(&[192, 0, 2, 7, 10, 0, 0, 1, 0xc7, 0x38, 0x1f, 0x90]);
        let bytes = raw(0x21, TCP4, &block);
        assert_eq!(bytes.len(), MAX_LEN);
        assert_eq!(parse(&bytes), Ok((v4_header(), MAX_LEN)));
        assert_eq!(
            parse(&bytes[..MAX_LEN - 1]),
            Err(ParseError::Incomplete { needed: MAX_LEN })
        );
    }

    #[test]
    fn no_input_is_an_incomplete_header() {
        assert_eq!(
            parse(&[]),
            Err(ParseError::Incomplete { needed: FIXED_LEN })
        );
    }
}
