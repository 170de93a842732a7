//! Published ports: `--publish 8080:80`, `--publish 8080:80/udp`, `--publish 80` (published
//! port auto-assigned) and the long form `published=8080,target=80,protocol=tcp,mode=host`,
//! whose `proxy-protocol=v2` has the routing mesh start every connection it relays to the
//! task with a PROXY protocol v2 header naming the client (ingress TCP ports only).

use crate::SpecError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// `ingress`: every node's routing mesh answers; `host`: only the node running the task;
/// `internal` (`--expose`): no node answers, only the service's VIP and DNS lead to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    #[default]
    Ingress,
    Host,
    Internal,
}

impl PublishMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PublishMode::Ingress => "ingress",
            PublishMode::Host => "host",
            PublishMode::Internal => "internal",
        }
    }
}

/// A header the routing mesh sends a task ahead of each connection it relays, naming the
/// client (the task sees the mesh's address as the connection's peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    /// HAProxy's PROXY protocol version 2 (binary).
    V2,
}

impl ProxyProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyProtocol::V2 => "v2",
        }
    }
}

/// First port of Swarm's auto-assigned published range.
pub const AUTO_PORT_MIN: u16 = 30000;
/// Last port of Swarm's auto-assigned published range.
pub const AUTO_PORT_MAX: u16 = 32767;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortConfig {
    /// Port the cluster answers on; `None` until the manager assigns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<u16>,
    /// Port the task listens on.
    pub target: u16,
    pub protocol: Protocol,
    #[serde(default)]
    pub mode: PublishMode,
    /// A PROXY protocol header ahead of every relayed connection (left out when none, so
    /// ports stored before it read as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
}

impl PortConfig {
    /// Parse one `--expose` value, `PORT[/PROTO]`: a port the tasks listen on that is
    /// reached through the service's VIP (and its `tasks.` SRV records), published nowhere.
    pub fn expose(text: &str) -> Result<PortConfig, SpecError> {
        let bad = |reason: &str| SpecError::invalid("expose", text, reason);
        let (port, proto) = match text.split_once('/') {
            Some((p, proto)) => (
                p,
                parse_proto(proto).ok_or_else(|| bad("protocol must be tcp or udp"))?,
            ),
            None => (text, Protocol::Tcp),
        };
        Ok(PortConfig {
            published: None,
            target: parse_port(port).map_err(bad)?,
            protocol: proto,
            mode: PublishMode::Internal,
            proxy_protocol: None,
        })
    }

    /// Whether the port is answered on the nodes' addresses (ingress or host mode), not
    /// only through the VIP.
    pub fn is_published(&self) -> bool {
        self.mode != PublishMode::Internal
    }

    /// Parse one `--publish` value.
    pub fn parse(text: &str) -> Result<PortConfig, SpecError> {
        let bad = |reason: &str| SpecError::invalid("publish", text, reason);
        if text.contains('=') {
            return Self::parse_long(text);
        }
        let (ports, proto) = match text.split_once('/') {
            Some((p, proto)) => (
                p,
                parse_proto(proto).ok_or_else(|| bad("protocol must be tcp or udp"))?,
            ),
            None => (text, Protocol::Tcp),
        };
        let (published, target) = match ports.split_once(':') {
            Some((p, t)) => (
                Some(parse_port(p).map_err(bad)?),
                parse_port(t).map_err(bad)?,
            ),
            None => (None, parse_port(ports).map_err(bad)?),
        };
        Ok(PortConfig {
            published,
            target,
            protocol: proto,
            mode: PublishMode::Ingress,
            proxy_protocol: None,
        })
    }

    fn parse_long(text: &str) -> Result<PortConfig, SpecError> {
        let bad = |reason: String| SpecError::invalid("publish", text, reason);
        let mut published = None;
        let mut target = None;
        let mut protocol = Protocol::Tcp;
        let mut mode = PublishMode::Ingress;
        let mut proxy_protocol = None;
        for part in text.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("expected key=value, got {part:?}")))?;
            match k.trim() {
                "published" => published = Some(parse_port(v).map_err(|r| bad(r.into()))?),
                "target" => target = Some(parse_port(v).map_err(|r| bad(r.into()))?),
                "protocol" => {
                    protocol =
                        parse_proto(v).ok_or_else(|| bad("protocol must be tcp or udp".into()))?
                }
                "mode" => {
                    mode = match v {
                        "ingress" => PublishMode::Ingress,
                        "host" => PublishMode::Host,
                        _ => return Err(bad("mode must be ingress or host".into())),
                    }
                }
                "proxy-protocol" => {
                    proxy_protocol = match v {
                        "v2" => Some(ProxyProtocol::V2),
                        _ => return Err(bad("proxy-protocol must be v2".into())),
                    }
                }
                other => return Err(bad(format!("unknown key {other:?}"))),
            }
        }
        let target = target.ok_or_else(|| bad("missing target=PORT".into()))?;
        if mode == PublishMode::Host && published.is_none() {
            return Err(bad("mode=host needs published=PORT".into()));
        }
        let port = PortConfig {
            published,
            target,
            protocol,
            mode,
            proxy_protocol,
        };
        if let Some(reason) = port.proxy_protocol_problem() {
            return Err(bad(reason.into()));
        }
        Ok(port)
    }

    /// Why this port cannot have its PROXY protocol setting, if it cannot.
    pub fn proxy_protocol_problem(&self) -> Option<&'static str> {
        self.proxy_protocol?;
        if self.protocol != Protocol::Tcp {
            return Some("proxy-protocol is for tcp ports only");
        }
        if self.mode == PublishMode::Host {
            return Some(
                "proxy-protocol is for ingress ports only: in host mode the client connects \
                 to the task directly, and the task sees its address as it is",
            );
        }
        None
    }
}

impl std::fmt::Display for PortConfig {
    /// Docker's `service ls` form: `*:8080->80/tcp`; an exposed port `80/tcp (internal)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.is_published() {
            return write!(f, "{}/{} (internal)", self.target, self.protocol.as_str());
        }
        match self.published {
            Some(p) => write!(f, "*:{}->{}/{}", p, self.target, self.protocol.as_str())?,
            None => write!(f, "*:?->{}/{}", self.target, self.protocol.as_str())?,
        }
        if let Some(proxy) = self.proxy_protocol {
            write!(f, " (proxy-protocol {})", proxy.as_str())?;
        }
        Ok(())
    }
}

fn parse_proto(text: &str) -> Option<Protocol> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        _ => None,
    }
}

fn parse_port(text: &str) -> Result<u16, &'static str> {
    let n: u64 = text
        .trim()
        .parse()
        .map_err(|_| "port must be a number between 1 and 65535")?;
    if n == 0 || n > 65535 {
        return Err("port out of range 1-65535");
    }
    Ok(n as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_short_and_long_forms() {
        let p = PortConfig::parse("8080:80").unwrap();
        assert_eq!(
            (p.published, p.target, p.protocol),
            (Some(8080), 80, Protocol::Tcp)
        );
        let p = PortConfig::parse("53:53/udp").unwrap();
        assert_eq!(p.protocol, Protocol::Udp);
        let p = PortConfig::parse("80").unwrap();
        assert_eq!(p.published, None);
        let p = PortConfig::parse("published=8080,target=80,mode=host").unwrap();
        assert_eq!((p.published, p.mode), (Some(8080), PublishMode::Host));
        assert_eq!(
            PortConfig::parse("8080:80").unwrap().to_string(),
            "*:8080->80/tcp"
        );
    }

    #[test]
    fn an_exposed_port_is_published_nowhere() {
        let p = PortConfig::expose("80").unwrap();
        assert_eq!(
            (p.published, p.target, p.protocol),
            (None, 80, Protocol::Tcp)
        );
        assert!(!p.is_published());
        assert_eq!(p.to_string(), "80/tcp (internal)");
        assert_eq!(
            PortConfig::expose("53/udp").unwrap().protocol,
            Protocol::Udp
        );
        let json = serde_json::to_value(p).unwrap();
        assert_eq!(json["mode"], "internal");
        for text in ["0", "8080:80", "80/sctp", "", "x"] {
            let err = PortConfig::expose(text).expect_err(text).to_string();
            assert!(err.starts_with("invalid expose"), "{err}");
        }
    }

    #[test]
    fn rejects_bad_ports() {
        for text in [
            "0:80",
            "70000:80",
            "8080:0",
            "a:80",
            "8080:80/sctp",
            "target=",
            "mode=host,target=80",
            "foo=1,target=2",
            "",
        ] {
            let err = PortConfig::parse(text);
            assert!(err.is_err(), "{text:?} should be rejected");
        }
        let msg = PortConfig::parse("70000:80").unwrap_err().to_string();
        assert!(msg.contains("out of range"), "{msg}");
    }

    #[test]
    fn proxy_protocol_is_read_from_the_long_form() {
        let p = PortConfig::parse("published=8080,target=80,proxy-protocol=v2").unwrap();
        assert_eq!(p.proxy_protocol, Some(ProxyProtocol::V2));
        assert_eq!(p.to_string(), "*:8080->80/tcp (proxy-protocol v2)");
        assert_eq!(PortConfig::parse("8080:80").unwrap().proxy_protocol, None);
    }

    #[test]
    fn proxy_protocol_is_refused_where_it_cannot_work() {
        for (text, reason) in [
            (
                "published=53,target=53,protocol=udp,proxy-protocol=v2",
                "proxy-protocol is for tcp ports only",
            ),
            (
                "published=8080,target=80,mode=host,proxy-protocol=v2",
                "in host mode the client connects to the task directly",
            ),
            (
                "published=8080,target=80,proxy-protocol=v1",
                "proxy-protocol must be v2",
            ),
            (
                "published=8080,target=80,proxy-protocol=",
                "proxy-protocol must be v2",
            ),
        ] {
            let msg = PortConfig::parse(text).unwrap_err().to_string();
            assert!(msg.contains(reason), "{text}: {msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
    }

    #[test]
    fn ports_stored_without_proxy_protocol_read_and_write_as_before() {
        let before = r#"{"published":8080,"target":80,"protocol":"tcp","mode":"ingress"}"#;
        let p: PortConfig = serde_json::from_str(before).unwrap();
        assert_eq!(p.proxy_protocol, None);
        assert_eq!(serde_json::to_string(&p).unwrap(), before);
        let with = PortConfig {
            proxy_protocol: Some(ProxyProtocol::V2),
            ..p
        };
        let json = serde_json::to_string(&with).unwrap();
        assert!(json.contains(r#""proxy_protocol":"v2""#), "{json}");
        assert_eq!(serde_json::from_str::<PortConfig>(&json).unwrap(), with);
    }
}
