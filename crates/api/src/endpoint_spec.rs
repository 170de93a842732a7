//! How a service is reached by its name and how its connections are spread: Swarm's
//! `--endpoint-mode` and shoal's `--lb` and `--lb-mode`.

use crate::SpecError;
use serde::{Deserialize, Serialize};

/// How clients reach a service's tasks by its name (Swarm's `--endpoint-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    /// One virtual address spreading connections over the tasks.
    #[default]
    Vip,
    /// The task addresses themselves, in DNS.
    Dnsrr,
}

impl EndpointMode {
    pub fn parse(text: &str) -> Result<EndpointMode, SpecError> {
        match text {
            "vip" => Ok(EndpointMode::Vip),
            "dnsrr" => Ok(EndpointMode::Dnsrr),
            _ => Err(SpecError::invalid(
                "endpoint-mode",
                text,
                "expected vip or dnsrr",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EndpointMode::Vip => "vip",
            EndpointMode::Dnsrr => "dnsrr",
        }
    }
}

/// Who forwards a service's TCP connections (`--lb-mode`), on its published ports and its
/// VIP alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LbMode {
    /// The node's data plane accepts each connection, picks a task and copies the bytes:
    /// every balancing algorithm, a refused connect retried on another task, PROXY headers
    /// and idle timeouts.
    #[default]
    Proxy,
    /// The kernel rewrites each new connection's destination to a task (nftables NAT) and
    /// forwards it with no process in the way: round-robin, random, source-hash and maglev
    /// only, and no retry of a refused connect. UDP ports stay with the proxy.
    Nat,
}

impl LbMode {
    pub fn parse(text: &str) -> Result<LbMode, SpecError> {
        match text {
            "proxy" => Ok(LbMode::Proxy),
            "nat" => Ok(LbMode::Nat),
            _ => Err(SpecError::invalid("lb-mode", text, "expected proxy or nat")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LbMode::Proxy => "proxy",
            LbMode::Nat => "nat",
        }
    }
}

impl Policy {
    /// Whether the kernel can balance by it (`--lb-mode nat`): not by counts of open
    /// connections, which only a proxy has.
    pub fn in_kernel(self) -> bool {
        !matches!(self, Policy::LeastConn | Policy::P2c)
    }
}

/// How a service's connections are spread over its endpoints (`--lb`), on its published
/// ports and its VIP alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// In turn, falling through to the next endpoint when one refuses.
    #[default]
    RoundRobin,
    /// The endpoint with the fewest connections open through this node.
    LeastConn,
    /// The less loaded of two endpoints picked at random (power of two choices).
    P2c,
    /// A hash of the client's address: a client stays on its endpoint while the set holds.
    SourceHash,
    /// Maglev consistent hashing of the client's address: when one of N endpoints leaves,
    /// only about 1/N of the clients move.
    Maglev,
    /// An endpoint picked at random.
    Random,
}

impl Policy {
    pub const ALL: [Policy; 6] = [
        Policy::RoundRobin,
        Policy::LeastConn,
        Policy::P2c,
        Policy::SourceHash,
        Policy::Maglev,
        Policy::Random,
    ];

    pub fn parse(text: &str) -> Result<Policy, SpecError> {
        Policy::ALL
            .into_iter()
            .find(|p| p.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Policy::ALL.iter().map(|p| p.as_str()).collect();
                SpecError::invalid(
                    "lb",
                    text,
                    format!("unknown load-balancing algorithm ({})", names.join(", ")),
                )
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::RoundRobin => "round-robin",
            Policy::LeastConn => "least-conn",
            Policy::P2c => "p2c",
            Policy::SourceHash => "source-hash",
            Policy::Maglev => "maglev",
            Policy::Random => "random",
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_parses_its_own_name() {
        for p in Policy::ALL {
            assert_eq!(Policy::parse(p.as_str()).expect("valid"), p);
            let json = serde_json::to_string(&p).expect("json");
            assert_eq!(json, format!("\"{}\"", p.as_str()));
        }
    }

    #[test]
    fn an_unknown_algorithm_names_the_valid_ones() {
        let err = Policy::parse("fastest").expect_err("unknown").to_string();
        assert_eq!(
            err,
            "invalid lb \"fastest\": unknown load-balancing algorithm (round-robin, \
             least-conn, p2c, source-hash, maglev, random)"
        );
        let err = EndpointMode::parse("ipvs")
            .expect_err("unknown")
            .to_string();
        assert!(err.contains("expected vip or dnsrr"), "{err}");
    }
}
