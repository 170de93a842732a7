//! Where a node stands in a cluster, and which changes it allows from there.
//!
//! A node is `Detached` (never joined, or left) or a `Member` with a role. `init` and
//! `join` move a detached node in, `leave` moves a member out (a node that left is detached
//! again and may init or join anew), and the cluster moves a member between roles. Every
//! change asks [`Standing::check`] first; the driver acts on the [`Step`] it returns and
//! records the new standing once the change is done.

use super::error::MembershipError;
use super::record::Membership;
use shoal_api::NodeRole;

/// Where this node stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Standing {
    /// In no cluster.
    #[default]
    Detached,
    Member(Membership),
}

/// A change asked of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Start a new cluster.
    Init,
    /// Join an existing one.
    Join,
    /// Restart the cluster this manager belonged to, as its only manager.
    ForceNewCluster,
    /// Leave the cluster; `other_managers` are the voters besides this node.
    Leave { force: bool, other_managers: usize },
    /// Take the role the cluster wants.
    Role(NodeRole),
}

/// What the driver does for an allowed change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Init or join: the node is detached.
    Enter,
    /// Restart from this manager's membership.
    ForceNewCluster(Membership),
    /// Leave `from`; a manager also forgets its copy of the cluster state.
    Leave { from: Membership },
    /// Move `from` to the role `to`.
    SwitchRole { from: Membership, to: NodeRole },
    /// Nothing to change.
    Stay,
}

impl Standing {
    pub fn from_membership(m: Option<Membership>) -> Standing {
        m.map_or(Standing::Detached, Standing::Member)
    }

    pub fn membership(&self) -> Option<&Membership> {
        match self {
            Standing::Detached => None,
            Standing::Member(m) => Some(m),
        }
    }

    /// The guard every membership change passes.
    pub fn check(&self, change: Change) -> Result<Step, MembershipError> {
        match (self, change) {
            (Standing::Detached, Change::Init | Change::Join) => Ok(Step::Enter),
            (Standing::Member(m), Change::Init) => Err(MembershipError::AlreadyMember {
                cluster_id: m.cluster_id.clone(),
                role: m.role.as_str(),
            }),
            (Standing::Member(m), Change::Join) => Err(MembershipError::LeaveFirst {
                cluster_id: m.cluster_id.clone(),
                role: m.role.as_str(),
            }),
            (Standing::Member(m), Change::ForceNewCluster) if m.role == NodeRole::Manager => {
                Ok(Step::ForceNewCluster(m.clone()))
            }
            (_, Change::ForceNewCluster) => Err(MembershipError::NotAManager),
            (Standing::Detached, Change::Leave { .. }) => Err(MembershipError::NotMember),
            (
                Standing::Member(m),
                Change::Leave {
                    force,
                    other_managers,
                },
            ) => match (m.role, force, other_managers) {
                (NodeRole::Manager, false, 0) => Err(MembershipError::OnlyManager),
                (NodeRole::Manager, false, others) => {
                    Err(MembershipError::ManagerWithPeers { others })
                }
                _ => Ok(Step::Leave { from: m.clone() }),
            },
            (Standing::Member(m), Change::Role(to)) if m.role != to => Ok(Step::SwitchRole {
                from: m.clone(),
                to,
            }),
            (_, Change::Role(_)) => Ok(Step::Stay),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(role: NodeRole) -> Standing {
        Standing::Member(Membership {
            role,
            cluster_id: "c1".into(),
            managers: vec!["10.0.0.1:2377".into()],
            advertise_addr: "10.0.0.1".into(),
            listen_addr: (role == NodeRole::Manager).then(|| "0.0.0.0:2377".into()),
        })
    }

    fn refusal(s: &Standing, c: Change) -> String {
        match s.check(c) {
            Err(e) => e.to_string(),
            Ok(step) => panic!("{c:?} from {s:?} allowed: {step:?}"),
        }
    }

    const MANAGER: NodeRole = NodeRole::Manager;
    const WORKER: NodeRole = NodeRole::Worker;

    #[test]
    fn a_detached_node_may_init_or_join() {
        assert_eq!(
            Standing::Detached.check(Change::Init).ok(),
            Some(Step::Enter)
        );
        assert_eq!(
            Standing::Detached.check(Change::Join).ok(),
            Some(Step::Enter)
        );
    }

    #[test]
    fn a_member_may_not_init_or_join_again() {
        assert_eq!(
            refusal(&member(MANAGER), Change::Init),
            "this node is already part of a cluster (c1) as a manager: nothing to do"
        );
        assert_eq!(
            refusal(&member(WORKER), Change::Join),
            "this node is already part of a cluster (c1) as a worker: run `shoal leave` first"
        );
    }

    #[test]
    fn only_a_manager_may_force_a_new_cluster() {
        let want = "--force-new-cluster needs a node that was a manager of a cluster";
        assert_eq!(refusal(&Standing::Detached, Change::ForceNewCluster), want);
        assert_eq!(refusal(&member(WORKER), Change::ForceNewCluster), want);
        let m = member(MANAGER);
        assert_eq!(
            m.check(Change::ForceNewCluster).ok(),
            m.membership().cloned().map(Step::ForceNewCluster)
        );
    }

    #[test]
    fn leave_table() {
        let leave = |force, other_managers| Change::Leave {
            force,
            other_managers,
        };
        let cases: &[(Standing, Change, Result<(), &str>)] = &[
            (
                Standing::Detached,
                leave(false, 0),
                Err("this node is not part of a cluster"),
            ),
            (
                Standing::Detached,
                leave(true, 0),
                Err("this node is not part of a cluster"),
            ),
            (member(WORKER), leave(false, 0), Ok(())),
            (member(WORKER), leave(true, 2), Ok(())),
            (
                member(MANAGER),
                leave(false, 0),
                Err("this node is the cluster's only manager: leaving destroys the cluster and its services (use --force)"),
            ),
            (
                member(MANAGER),
                leave(false, 2),
                Err("this node is a manager: demote it first (`shoal node demote` on a manager) so the 2 other manager(s) keep a quorum, or use --force"),
            ),
            (member(MANAGER), leave(true, 0), Ok(())),
            (member(MANAGER), leave(true, 2), Ok(())),
        ];
        for (standing, change, want) in cases {
            match (standing.check(*change), want) {
                (Ok(Step::Leave { from }), Ok(())) => {
                    assert_eq!(Some(&from), standing.membership())
                }
                (Err(e), Err(text)) => assert_eq!(e.to_string(), *text),
                (got, _) => panic!("{change:?} from {standing:?}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn role_changes_move_a_member_to_the_other_role_only() {
        for (from, to) in [(WORKER, MANAGER), (MANAGER, WORKER)] {
            let s = member(from);
            assert_eq!(
                s.check(Change::Role(to)).ok(),
                s.membership()
                    .cloned()
                    .map(|m| Step::SwitchRole { from: m, to })
            );
            assert_eq!(s.check(Change::Role(from)).ok(), Some(Step::Stay));
        }
        assert_eq!(
            Standing::Detached.check(Change::Role(MANAGER)).ok(),
            Some(Step::Stay)
        );
    }
}
