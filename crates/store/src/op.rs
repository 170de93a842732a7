//! The changes a write is made of.

use crate::kind::{kinds, Kind, OpVisitor};
use shoal_api::{Cluster, ClusterState};
use std::convert::Infallible;

// Every kind the store keeps. A new kind is one more line here.
kinds! {
    Node in nodes, table "nodes", ops PutNode / DeleteNode;
    Service in services, table "services", ops PutService / DeleteService;
    Task in tasks, table "tasks", ops PutTask / DeleteTask;
    Network in networks, table "networks", ops PutNetwork / DeleteNetwork;
    Secret in secrets, table "secrets", ops PutSecret / DeleteSecret;
    Config in configs, table "configs", ops PutConfig / DeleteConfig;
}

/// Apply one op to a state. Deterministic: the same ops in the same order give the same state.
pub fn apply_op(state: &mut ClusterState, op: &Op) {
    let Ok(()) = op.visit(&mut Apply(state));
}

struct Apply<'a>(&'a mut ClusterState);

impl OpVisitor for Apply<'_> {
    type Error = Infallible;

    fn set_cluster(&mut self, cluster: &Cluster) -> Result<(), Infallible> {
        self.0.cluster = Some(cluster.clone());
        Ok(())
    }

    fn reset(&mut self) -> Result<(), Infallible> {
        let version = self.0.version;
        *self.0 = ClusterState::default();
        self.0.version = version;
        Ok(())
    }

    fn put<K: Kind>(&mut self, object: &K) -> Result<(), Infallible> {
        K::map_mut(self.0).insert(object.id().to_string(), object.clone());
        Ok(())
    }

    fn delete<K: Kind>(&mut self, id: &str) -> Result<(), Infallible> {
        K::map_mut(self.0).remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::KindVisitor;
    use crate::raft::Batch;
    use serde_json::json;
    use shoal_api::{Node, Service, Task};
    use std::collections::BTreeSet;

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

    /// Objects of every kind, as the Raft log carried them before kinds were generic.
    fn legacy_objects() -> (serde_json::Value, serde_json::Value, serde_json::Value) {
        let node = json!({
            "id": "n1", "hostname": "h", "role": "worker", "availability": "active",
            "state": "ready", "addr": "10.0.0.2", "engine_version": "9",
            "created_at": 1, "updated_at": 1
        });
        let service = json!({
            "id": "s1", "version": 1, "ports": [], "created_at": 1, "updated_at": 1,
            "spec": {
                "name": "web", "mode": {"replicated": {"replicas": 2}},
                "task": {"runtime": {"process": {"command": ["shoal", "whoami"]}}}
            }
        });
        let task = json!({
            "id": "t1", "service_id": "s1", "service_name": "web", "slot": 1,
            "spec_version": 1,
            "spec": {"runtime": {"process": {"command": ["shoal", "whoami"]}}},
            "desired_state": "running",
            "status": {"state": "new", "timestamp": 1, "message": ""},
            "created_at": 1
        });
        (node, service, task)
    }

    fn encode_json<T: serde::Serialize>(value: &T) -> String {
        serde_json::to_string(value).expect("encode")
    }

    /// Entries written by earlier versions (every op form) still decode and apply, and ops
    /// encode exactly as they did, so replicas of either version share one log.
    #[test]
    fn old_form_entries_decode_and_ops_encode_as_before() {
        let (node, service, task) = legacy_objects();
        let mut cluster = json!({
            "id": "c1", "ca_cert_pem": "", "ca_key_pem": "", "worker_secret": "w",
            "manager_secret": "m", "heartbeat_period_ms": 1000, "cert_lifetime_secs": 3600,
            "managers": [], "created_at": 0
        });
        let entry = json!({"ops": [
            "Reset",
            {"SetCluster": cluster},
            {"PutNode": node}, {"PutNode": {"id": "n2", "hostname": "h2", "role": "worker",
                "availability": "active", "state": "ready", "addr": "10.0.0.3",
                "engine_version": "9", "created_at": 1, "updated_at": 1}},
            {"PutService": service}, {"PutService": {"id": "s2", "version": 1, "ports": [],
                "created_at": 1, "updated_at": 1, "spec": {"name": "db",
                "mode": {"replicated": {"replicas": 1}}, "task": {"runtime": {"process": {"command": ["x"]}}}}}},
            {"PutTask": task},
            {"DeleteNode": "n2"},
            {"DeleteService": "s2"},
            {"DeleteTask": "t0"}
        ]});
        let batch: Batch = serde_json::from_value(entry).expect("old-form entry");
        let mut state = ClusterState::default();
        for op in &batch.ops {
            apply_op(&mut state, op);
        }
        assert_eq!(state.cluster_id(), Some("c1"));
        assert_eq!(state.nodes.keys().collect::<Vec<_>>(), ["n1"]);
        assert_eq!(state.services.keys().collect::<Vec<_>>(), ["s1"]);
        assert_eq!(state.tasks.keys().collect::<Vec<_>>(), ["t1"]);

        // The same ops, made through the kinds, encode byte for byte as the old enum did.
        let cluster_op = serde_json::to_string(&Op::SetCluster(Box::new(
            state.cluster.clone().expect("cluster"),
        )))
        .expect("encode");
        cluster["clients"] = json!([]);
        cluster["autolock_key"] = json!(null);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&cluster_op).expect("json"),
            json!({"SetCluster": cluster})
        );
        let encode = |op: &Op| encode_json(op);
        let wrap = |name: &str, inner: String| format!("{{\"{name}\":{inner}}}");
        let n = state.nodes["n1"].clone();
        let s = state.services["s1"].clone();
        let t = state.tasks["t1"].clone();
        assert_eq!(encode(&Op::Reset), "\"Reset\"");
        assert_eq!(
            encode(&n.clone().put_op()),
            wrap("PutNode", encode_json(&n))
        );
        assert_eq!(
            encode(&s.clone().put_op()),
            wrap("PutService", encode_json(&s))
        );
        assert_eq!(
            encode(&t.clone().put_op()),
            wrap("PutTask", encode_json(&t))
        );
        assert_eq!(
            encode(&Node::delete_op("n1".into())),
            r#"{"DeleteNode":"n1"}"#
        );
        assert_eq!(
            encode(&Service::delete_op("s1".into())),
            r#"{"DeleteService":"s1"}"#
        );
        assert_eq!(
            encode(&Task::delete_op("t1".into())),
            r#"{"DeleteTask":"t1"}"#
        );
    }

    /// Every map of the state (every field a snapshot carries) is a kind with a table of its
    /// own: a map added without a kind would be lost on restart.
    #[test]
    fn every_map_of_the_state_is_a_kind() {
        struct Names(Vec<(&'static str, &'static str)>);
        impl KindVisitor for Names {
            type Error = Infallible;
            fn visit<K: Kind>(&mut self) -> Result<(), Infallible> {
                self.0.push((K::FIELD, K::TABLE));
                Ok(())
            }
        }
        let mut names = Names(Vec::new());
        let Ok(()) = each_kind(&mut names);
        let fields: BTreeSet<&str> = names.0.iter().map(|(f, _)| *f).collect();
        let tables: BTreeSet<&str> = names.0.iter().map(|(_, t)| *t).collect();
        assert_eq!(fields.len(), names.0.len(), "a field listed twice");
        assert_eq!(tables.len(), names.0.len(), "a table listed twice");
        assert!(!tables.contains("meta"), "meta is the store's own table");
        let state = serde_json::to_value(ClusterState::default()).expect("encode");
        let maps: BTreeSet<&str> = state
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .filter(|k| !matches!(*k, "version" | "cluster"))
            .collect();
        assert_eq!(maps, fields);
    }
}
