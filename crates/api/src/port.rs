//! Published ports: `--publish 8080:80`, `--publish 8080:80/udp`, `--publish 80` (published
//! port auto-assigned) and the long form `published=8080,target=80,protocol=tcp,mode=host`.

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

/// `ingress`: every node's routing mesh answers; `host`: only the node running the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    #[default]
    Ingress,
    Host,
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
}

impl PortConfig {
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
        })
    }

    fn parse_long(text: &str) -> Result<PortConfig, SpecError> {
        let bad = |reason: String| SpecError::invalid("publish", text, reason);
        let mut published = None;
        let mut target = None;
        let mut protocol = Protocol::Tcp;
        let mut mode = PublishMode::Ingress;
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
                other => return Err(bad(format!("unknown key {other:?}"))),
            }
        }
        let target = target.ok_or_else(|| bad("missing target=PORT".into()))?;
        if mode == PublishMode::Host && published.is_none() {
            return Err(bad("mode=host needs published=PORT".into()));
        }
        Ok(PortConfig {
            published,
            target,
            protocol,
            mode,
        })
    }
}

impl std::fmt::Display for PortConfig {
    /// Docker's `service ls` form: `*:8080->80/tcp`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.published {
            Some(p) => write!(f, "*:{}->{}/{}", p, self.target, self.protocol.as_str()),
            None => write!(f, "*:?->{}/{}", self.target, self.protocol.as_str()),
        }
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
}
