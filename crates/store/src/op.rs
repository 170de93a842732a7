//! The changes a write is made of.

use serde::{Deserialize, Serialize};
use shoal_api::{ClusterState, Node, Service, Task};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    SetClusterId(String),
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
        Op::SetClusterId(id) => state.cluster_id = Some(id.clone()),
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
