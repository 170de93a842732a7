//! What a node says about itself when its session opens (address, hostname, description),
//! and the change that makes to its record. Pure; the dispatcher writes the result.

use shoal_api::{Node, NodeDescription, NodeState};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Announcement {
    /// The address the node is reached at (see [`crate::ca::reachable_addr`]), if known.
    pub addr: Option<String>,
    /// The hostname it reports, cleaned; empty: keep the stored one.
    pub hostname: String,
    /// Its description, cleaned; `None`: not reported (keep the stored one).
    pub description: Option<NodeDescription>,
}

impl Announcement {
    /// Read a session's description field: empty is not reported, and so is one that does
    /// not parse (logged: the node still gets its session, the stored description stays).
    pub fn description(node_id: &str, json: &[u8]) -> Option<NodeDescription> {
        if json.is_empty() {
            return None;
        }
        match serde_json::from_slice::<NodeDescription>(json) {
            Ok(d) => Some(d.cleaned()),
            Err(e) => {
                tracing::warn!(node = %node_id, error = %e, "node sent an unreadable description: keeping the stored one");
                None
            }
        }
    }

    /// The node's record once it opened a session and said this: ready, with what changed;
    /// `None` when the record already says it all (no write needed).
    pub fn apply(&self, node: &Node, now: u64) -> Option<Node> {
        let mut n = node.clone();
        n.state = NodeState::Ready;
        if let Some(a) = &self.addr {
            n.addr.clone_from(a);
        }
        if !self.hostname.is_empty() {
            n.hostname.clone_from(&self.hostname);
        }
        if let Some(d) = &self.description {
            n.description.clone_from(d);
        }
        if n == *node {
            return None;
        }
        n.updated_at = now;
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::{NodeRole, RuntimeKind};

    fn node() -> Node {
        Node::new(
            "n1".into(),
            "old".into(),
            NodeRole::Worker,
            "10.0.0.1".into(),
            0,
        )
    }

    fn described(cpus: u64) -> NodeDescription {
        NodeDescription {
            nano_cpus: cpus,
            memory_bytes: 1 << 30,
            runtimes: vec![RuntimeKind::Process],
            engine: None,
            arch: String::new(),
        }
    }

    #[test]
    fn announcement_table() {
        let mut known = node();
        known.description = described(2);
        let mut down = known.clone();
        down.state = NodeState::Down;
        // (name, stored node, announcement, the change to the record: None = no write)
        type Change = Option<fn(&mut Node)>;
        let cases: Vec<(&str, Node, Announcement, Change)> = vec![
            (
                "nothing new: no write",
                known.clone(),
                Announcement {
                    addr: Some("10.0.0.1".into()),
                    hostname: "old".into(),
                    description: Some(described(2)),
                },
                None,
            ),
            (
                "a first description is recorded",
                node(),
                Announcement {
                    description: Some(described(2)),
                    ..Announcement::default()
                },
                Some(|n| n.description = described(2)),
            ),
            (
                "a changed description replaces the stored one",
                known.clone(),
                Announcement {
                    description: Some(described(4)),
                    ..Announcement::default()
                },
                Some(|n| n.description = described(4)),
            ),
            (
                "no description (older node): the stored one stays",
                known.clone(),
                Announcement::default(),
                None,
            ),
            (
                "a down node is ready again",
                down,
                Announcement::default(),
                Some(|n| n.state = NodeState::Ready),
            ),
            (
                "new address and hostname",
                known.clone(),
                Announcement {
                    addr: Some("10.0.0.9".into()),
                    hostname: "new".into(),
                    description: None,
                },
                Some(|n| {
                    n.addr = "10.0.0.9".into();
                    n.hostname = "new".into();
                }),
            ),
        ];
        for (name, stored, said, want) in cases {
            let got = said.apply(&stored, 7);
            let want = want.map(|change| {
                let mut n = stored.clone();
                n.state = NodeState::Ready;
                change(&mut n);
                n.updated_at = 7;
                n
            });
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn descriptions_are_read_leniently() {
        assert_eq!(Announcement::description("n1", b""), None);
        assert_eq!(Announcement::description("n1", b"{not json"), None);
        let d = Announcement::description(
            "n1",
            br#"{"nano_cpus":1,"runtimes":["container","process","process"]}"#,
        )
        .expect("read");
        assert_eq!(
            d.runtimes,
            vec![RuntimeKind::Process, RuntimeKind::Container]
        );
    }
}
