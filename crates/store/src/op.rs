//! The changes a write is made of.

use serde::{Deserialize, Serialize};
use shoal_api::{Cluster, ClusterState, Node, Service, Task};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    SetCluster(Box<Cluster>),
    /// Forget everything (leaving the cluster for good).
    Reset,
    PutNode(Box<Node>),
    DeleteNode(String),
    PutService(Box<Service>),
    DeleteService(String),
    PutTask(Box<Task>),
    DeleteTask(String),
}

/// Apply one op to a state. Deterministic: the same ops in the same order give the same state.
pub fn apply_op(state: &mut ClusterState, op: &Op) {
    match op {
        Op::SetCluster(c) => state.cluster = Some((**c).clone()),
        Op::Reset => {
            let version = state.version;
            *state = ClusterState::default();
            state.version = version;
        }
        Op::PutNode(n) => {
            state.nodes.insert(n.id.clone(), (**n).clone());
        }
        Op::DeleteNode(id) => {
            state.nodes.remove(id);
        }
        Op::PutService(s) => {
            state.services.insert(s.id.clone(), (**s).clone());
        }
        Op::DeleteService(id) => {
            state.services.remove(id);
        }
        Op::PutTask(t) => {
            state.tasks.insert(t.id.clone(), (**t).clone());
        }
        Op::DeleteTask(id) => {
            state.tasks.remove(id);
        }
    }
}
