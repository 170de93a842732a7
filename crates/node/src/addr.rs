//! The addresses a user gives `init` and `join`: a manager's `HOST[:PORT]`, a control-port
//! listen address, an advertise address. Each bad one is refused in one line naming it.

use shoal_rpc::DEFAULT_CONTROL_PORT;
use std::net::{IpAddr, SocketAddr};

/// An address that does not parse, named by what it was for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("invalid {what} {text:?}: expected HOST[:PORT]")]
    Host { what: &'static str, text: String },
    #[error("invalid listen address {0:?}: expected IP:PORT")]
    Listen(String),
    #[error("invalid advertise address {0:?}: expected an IP address")]
    Advertise(String),
}

/// `text` with the control port appended unless it names a port already.
fn with_default_port(text: &str) -> String {
    let has_port = text.parse::<SocketAddr>().is_ok()
        || text
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    if has_port {
        text.to_string()
    } else {
        format!("{text}:{DEFAULT_CONTROL_PORT}")
    }
}

/// `HOST[:PORT]` to a socket address (port 2377 by default); `what` names it in the error.
pub async fn resolve(text: &str, what: &'static str) -> Result<SocketAddr, AddrError> {
    tokio::net::lookup_host(with_default_port(text))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| AddrError::Host {
            what,
            text: text.to_string(),
        })
}

/// A control-port `--listen-addr` (`IP:PORT`; all addresses, port 2377 by default).
pub fn listen_addr(text: Option<&str>) -> Result<SocketAddr, AddrError> {
    match text {
        None => Ok(SocketAddr::from(([0, 0, 0, 0], DEFAULT_CONTROL_PORT))),
        Some(t) => t.parse().map_err(|_| AddrError::Listen(t.to_string())),
    }
}

/// The IP of an `--advertise-addr` (`IP` or `IP:PORT`).
pub fn advertise_ip(text: &str) -> Result<IpAddr, AddrError> {
    text.split(':')
        .next()
        .unwrap_or("")
        .parse()
        .map_err(|_| AddrError::Advertise(text.to_string()))
}

/// The local address used to reach `remote` (no packet is sent).
pub fn local_ip_towards(remote: SocketAddr) -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind(("0.0.0.0", 0)).ok()?;
    s.connect(remote).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_port_is_added_only_when_none_is_given() {
        for (text, want) in [
            ("10.0.0.1", "10.0.0.1:2377"),
            ("10.0.0.1:4000", "10.0.0.1:4000"),
            ("manager", "manager:2377"),
            ("manager:4000", "manager:4000"),
            ("[::1]:4000", "[::1]:4000"),
            ("manager:port", "manager:port:2377"),
        ] {
            assert_eq!(with_default_port(text), want, "{text}");
        }
    }

    #[tokio::test]
    async fn resolve_reads_ips_with_and_without_port() {
        assert_eq!(
            resolve("127.0.0.1", "manager address").await,
            Ok(SocketAddr::from(([127, 0, 0, 1], 2377)))
        );
        assert_eq!(
            resolve("127.0.0.1:4000", "manager address").await,
            Ok(SocketAddr::from(([127, 0, 0, 1], 4000)))
        );
    }

    #[tokio::test]
    async fn resolve_names_a_bad_address() {
        let e = resolve("10.0.0.1:99999", "manager address")
            .await
            .expect_err("port out of range");
        assert_eq!(
            e.to_string(),
            "invalid manager address \"10.0.0.1:99999\": expected HOST[:PORT]"
        );
    }

    #[test]
    fn listen_addr_defaults_to_every_address_on_the_control_port() {
        assert_eq!(
            listen_addr(None),
            Ok(SocketAddr::from(([0, 0, 0, 0], 2377)))
        );
        assert_eq!(
            listen_addr(Some("127.0.0.1:4000")),
            Ok(SocketAddr::from(([127, 0, 0, 1], 4000)))
        );
    }

    #[test]
    fn listen_addr_needs_ip_and_port() {
        for bad in ["127.0.0.1", "host:4000", "", "1.2.3.4:70000"] {
            assert_eq!(
                listen_addr(Some(bad)).map_err(|e| e.to_string()),
                Err(format!("invalid listen address {bad:?}: expected IP:PORT"))
            );
        }
    }

    #[test]
    fn advertise_ip_takes_the_ip_with_or_without_port() {
        let ip = IpAddr::from([10, 0, 0, 5]);
        assert_eq!(advertise_ip("10.0.0.5"), Ok(ip));
        assert_eq!(advertise_ip("10.0.0.5:2377"), Ok(ip));
    }

    #[test]
    fn advertise_ip_refuses_what_is_not_an_ip() {
        for bad in ["", "eth0", "host:2377", "10.0.0"] {
            assert_eq!(
                advertise_ip(bad).map_err(|e| e.to_string()),
                Err(format!(
                    "invalid advertise address {bad:?}: expected an IP address"
                ))
            );
        }
    }

    #[test]
    fn local_ip_towards_loopback_is_loopback() {
        let ip = local_ip_towards(SocketAddr::from(([127, 0, 0, 1], 2377)));
        assert_eq!(ip, Some(IpAddr::from([127, 0, 0, 1])));
    }
}
