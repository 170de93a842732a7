//! Cluster networks: named objects services attach to, as `docker network create -d
//! overlay` makes them (and `docker stack deploy` does for `<stack>_default`).
//!
//! A network in shoal is a name and a scope for names, not a separate address space: a
//! service attached to it is reachable by its name and by its aliases on the network, over
//! its one VIP (docs/networking.md says what this is beside Swarm's VXLAN overlay).

use crate::SpecError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The only driver a cluster network has: Docker's name for a swarm-scoped network.
pub const OVERLAY: &str = "overlay";

/// A stored cluster network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    /// Always [`OVERLAY`].
    pub driver: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Standalone containers may attach (kept and shown; shoal attaches only tasks).
    #[serde(default)]
    pub attachable: bool,
    /// No route out of the network (kept and shown, not enforced).
    #[serde(default)]
    pub internal: bool,
    pub created_at: u64,
    pub updated_at: u64,
}

/// A service's attachment to a network: the network's ID and the extra names the service
/// answers to on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    pub network: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

impl NetworkAttachment {
    /// Docker's `--network` syntax: `NAME`, or `name=NAME[,alias=A]...`. The name is
    /// resolved by the manager.
    pub fn parse(text: &str) -> Result<NetworkAttachment, SpecError> {
        let bad = |why: String| SpecError::Other(format!("invalid --network {text:?}: {why}"));
        let mut n = NetworkAttachment {
            network: String::new(),
            aliases: Vec::new(),
        };
        if !text.contains('=') {
            n.network = text.to_owned();
        } else {
            for part in text.split(',') {
                match part.split_once('=') {
                    Some(("name" | "target", v)) => n.network = v.to_owned(),
                    Some(("alias", v)) => {
                        check_alias(v)?;
                        n.aliases.push(v.to_owned());
                    }
                    Some((k, _)) => return Err(bad(format!("unknown key {k:?}"))),
                    None => return Err(bad(format!("{part:?} is not KEY=VALUE"))),
                }
            }
        }
        if n.network.is_empty() {
            return Err(bad("name the network".into()));
        }
        Ok(n)
    }
}

/// Most networks one service attaches to.
pub const MAX_ATTACHMENTS: usize = 32;
/// Most aliases of a service on one network.
pub const MAX_ALIASES: usize = 32;

/// Names of networks, secrets and configs follow Docker's rule: letters, digits, `-`, `_`
/// and `.`, starting and ending with a letter or digit, at most 64 characters.
pub fn check_object_name(what: &'static str, name: &str) -> Result<(), SpecError> {
    if name.is_empty() {
        return Err(SpecError::Other(format!("{what} name is missing")));
    }
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok_chars || !edge(name.chars().next()) || !edge(name.chars().last()) || name.len() > 64 {
        return Err(SpecError::invalid(
            what,
            name,
            "use letters, digits, '-', '_' or '.', starting and ending with a letter or digit, at most 64 characters",
        ));
    }
    Ok(())
}

/// An alias: a DNS label or dotted name, at most 63 characters.
pub fn check_alias(alias: &str) -> Result<(), SpecError> {
    let ok = !alias.is_empty()
        && alias.len() <= 63
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && alias
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok {
        return Err(SpecError::invalid(
            "network alias",
            alias,
            "use letters, digits, '-', '_' or '.', starting with a letter or digit, at most 63 characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_follow_dockers_rule() {
        for ok in ["a", "st_default", "db.password-1", &"x".repeat(64)] {
            check_object_name("secret", ok).unwrap();
        }
        for bad in ["", "-a", "a-", "a b", "a/b", &"x".repeat(65)] {
            let e = check_object_name("secret", bad).unwrap_err().to_string();
            assert!(e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn attachments_parse_as_docker_writes_them() {
        let n = NetworkAttachment::parse("net1").unwrap();
        assert_eq!((n.network.as_str(), n.aliases.len()), ("net1", 0));
        let n = NetworkAttachment::parse("name=net1,alias=web,alias=www").unwrap();
        assert_eq!(n.aliases, ["web", "www"]);
        assert!(NetworkAttachment::parse("alias=web").is_err());
        assert!(NetworkAttachment::parse("name=n,alias=a b").is_err());
        assert!(NetworkAttachment::parse("name=n,driver=x").is_err());
    }

    #[test]
    fn aliases_are_dns_names() {
        check_alias("web").unwrap();
        check_alias("db.internal").unwrap();
        assert!(check_alias("").is_err());
        assert!(check_alias("a b").is_err());
        assert!(check_alias(&"a".repeat(64)).is_err());
    }
}
