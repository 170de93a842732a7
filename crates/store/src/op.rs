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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::Batch;
    use serde_json::json;

    /// A leader one version ahead writes fields this replica does not know, at every depth.
    #[test]
    fn an_entry_carrying_unknown_fields_applies() {
        let entry = json!({
            "ops": [
                {"PutService": {
                    "id": "s1", "version": 1, "ports": [], "created_at": 1, "updated_at": 1,
                    "added_later": {"x": 1},
                    "spec": {
                        "name": "web", "mode": {"replicated": {"replicas": 2, "extra": 1}},
                        "task": {"runtime": {"process": {"command": ["shoal", "whoami"], "pty": 1}}, "gpus": 1,
                                 "restart": {"condition": "any", "jitter": 3}},
                        "update": {"parallelism": 2, "new_knob": true}
                    }
                }},
                {"PutNode": {
                    "id": "n1", "hostname": "h", "role": "worker", "availability": "active",
                    "state": "ready", "addr": "10.0.0.2", "engine_version": "9",
                    "created_at": 1, "updated_at": 1, "topology": {"zone": "a"}
                }}
            ],
            "trace_id": "abc"
        });
        let batch: Batch = serde_json::from_value(entry).expect("lenient entry");
        let mut state = ClusterState::default();
        for op in &batch.ops {
            apply_op(&mut state, op);
        }
        let svc = &state.services["s1"];
        assert_eq!(svc.spec.name, "web");
        assert_eq!(svc.spec.replicas(), Some(2));
        assert_eq!(svc.spec.update.parallelism, 2);
        assert_eq!(state.nodes["n1"].addr, "10.0.0.2");
    }
}
