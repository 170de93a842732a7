//! The node's own resolvers, read from `/etc/resolv.conf`: where names that are not ours go.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::Path;

/// The port resolvers listen on.
const DNS_PORT: u16 = 53;

/// The `nameserver` addresses of the resolv.conf at `path`, on port 53, in the file's
/// order, leaving out `own` (the address this server listens on: forwarding to ourselves
/// would loop). A file that cannot be read lists none.
pub fn host_resolvers(path: impl AsRef<Path>, own: SocketAddr) -> Vec<SocketAddr> {
    match std::fs::read_to_string(path.as_ref()) {
        Ok(text) => parse_resolv_conf(&text, own),
        Err(e) => {
            tracing::debug!(path = %path.as_ref().display(), error = %e, "no upstream resolvers read");
            Vec::new()
        }
    }
}

/// The `nameserver` lines of `text` (resolv.conf syntax), as [`host_resolvers`] reads them.
pub fn parse_resolv_conf(text: &str, own: SocketAddr) -> Vec<SocketAddr> {
    let mut found: Vec<SocketAddr> = Vec::new();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = words.next().and_then(parse_nameserver) else {
            continue;
        };
        if !is_own(addr, own) && !found.contains(&addr) {
            found.push(addr);
        }
    }
    found
}

/// `1.2.3.4`, `2001:db8::1`, or `fe80::1%2` (a numeric zone: an interface name would need
/// a lookup, and a link-local address without its zone cannot be reached).
fn parse_nameserver(word: &str) -> Option<SocketAddr> {
    if let Some((addr, zone)) = word.split_once('%') {
        let addr: Ipv6Addr = addr.parse().ok()?;
        let scope: u32 = zone.parse().ok()?;
        return Some(SocketAddr::V6(SocketAddrV6::new(addr, DNS_PORT, 0, scope)));
    }
    let addr: IpAddr = word.parse().ok()?;
    if let IpAddr::V6(v6) = addr {
        if v6.is_unicast_link_local() {
            return None;
        }
    }
    Some(SocketAddr::new(addr, DNS_PORT))
}

/// Whether `addr` reaches this server listening on `own`.
fn is_own(addr: SocketAddr, own: SocketAddr) -> bool {
    if addr.port() != own.port() {
        return false;
    }
    addr.ip() == own.ip() || (own.ip().is_unspecified() && addr.ip().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_lines_are_read_in_order_without_our_own_address() {
        let text = "\
# generated
search example.internal
nameserver 10.0.0.2
nameserver 127.0.0.11   # the embedded server itself
nameserver 2001:db8::53
nameserver fe80::1%2
nameserver fe80::1
nameserver not-an-address
nameserver 10.0.0.2
; nameserver 10.9.9.9
options ndots:0
";
        let own: SocketAddr = "127.0.0.11:53".parse().expect("addr");
        let found = parse_resolv_conf(text, own);
        let want: Vec<SocketAddr> = vec![
            "10.0.0.2:53".parse().expect("addr"),
            "[2001:db8::53]:53".parse().expect("addr"),
            SocketAddr::V6(SocketAddrV6::new(
                "fe80::1".parse().expect("addr"),
                53,
                0,
                2,
            )),
        ];
        assert_eq!(found, want);
    }

    #[test]
    fn a_server_on_every_address_is_reached_by_loopback() {
        let own: SocketAddr = "0.0.0.0:53".parse().expect("addr");
        let found = parse_resolv_conf("nameserver 127.0.0.1\nnameserver 127.0.0.53\n", own);
        assert!(found.is_empty(), "{found:?}");
        let elsewhere: SocketAddr = "0.0.0.0:5353".parse().expect("addr");
        assert_eq!(
            parse_resolv_conf("nameserver 127.0.0.53\n", elsewhere),
            vec!["127.0.0.53:53".parse::<SocketAddr>().expect("addr")]
        );
    }

    #[test]
    fn a_missing_file_lists_no_resolver() {
        let dir = tempfile::tempdir().expect("tempdir");
        let own: SocketAddr = "127.0.0.11:53".parse().expect("addr");
        assert!(host_resolvers(dir.path().join("resolv.conf"), own).is_empty());
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "nameserver 192.0.2.1\n").expect("write");
        assert_eq!(
            host_resolvers(&path, own),
            vec!["192.0.2.1:53".parse::<SocketAddr>().expect("addr")]
        );
    }
}
