//! `POST /swarm/update` and `GET /swarm/unlockkey`: what `docker swarm join-token
//! --rotate`, `docker swarm update` and `docker swarm unlock-key` send.
//!
//! The body is the whole `SwarmSpec` the client read from `GET /swarm`, with its changes.
//! shoal acts on `Dispatcher.HeartbeatPeriod`, `CAConfig.NodeCertExpiry` (for
//! certificates issued from now on) and `EncryptionConfig.AutoLockManagers`; the other
//! keys (`Name`, `Labels`, `Orchestration`, `Raft`, `TaskDefaults`, external CAs) are read
//! and ignored. Rotations go through the same code as shoal's own `join-token --rotate`
//! and `unlock-key --rotate`, and everything changes in one write.

use super::{json_body, swarm_index};
use crate::ca::rotate_join_token;
use crate::control::cluster::{no_unlock_key, rotate_unlock_key, set_autolock};
use crate::control::services::out_of_sequence;
use crate::control::{cluster_record, ApiError, ControlState};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shoal_api::cluster::{HEARTBEAT_MS_RANGE, MIN_CERT_LIFETIME_SECS};
use shoal_api::NodeRole;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SwarmUpdateQuery {
    version: Option<String>,
    rotate_worker_token: Option<String>,
    rotate_manager_token: Option<String>,
    rotate_manager_unlock_key: Option<String>,
}

/// A boolean query flag as Go's `strconv.ParseBool` reads it; absent is false.
fn flag(name: &str, v: Option<&str>) -> Result<bool, ApiError> {
    match v {
        None | Some("") => Ok(false),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "invalid value for {name}: {other:?} is not a boolean"
        ))),
    }
}

/// The settings of a `SwarmSpec` shoal acts on; `None` where the spec leaves one out.
#[derive(Debug, Default, PartialEq, Eq)]
struct Settings {
    heartbeat_ms: Option<u64>,
    cert_lifetime_secs: Option<u64>,
    autolock: Option<bool>,
}

/// Read the settings out of a posted `SwarmSpec`, each malformed or out-of-range one
/// refused by its path. A zero duration is one the client left unset, as Docker reads it.
fn settings(spec: &Value) -> Result<Settings, ApiError> {
    if !spec.is_object() {
        return Err(ApiError::bad_request(
            "invalid request body: expected a SwarmSpec object",
        ));
    }
    let at = |path: &[&str]| {
        path.iter()
            .try_fold(spec, |v, k| v.get(k))
            .filter(|v| !v.is_null())
    };
    let nanos = |path: &[&str]| -> Result<Option<u64>, ApiError> {
        match at(path) {
            None => Ok(None),
            Some(v) => v.as_u64().map(|n| (n > 0).then_some(n)).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid {}: expected a whole number of nanoseconds",
                    path.join(".")
                ))
            }),
        }
    };
    let heartbeat_ms = nanos(&["Dispatcher", "HeartbeatPeriod"])?.map(|n| n / 1_000_000);
    if let Some(ms) = heartbeat_ms.filter(|ms| !HEARTBEAT_MS_RANGE.contains(ms)) {
        return Err(ApiError::bad_request(format!(
            "invalid Dispatcher.HeartbeatPeriod {ms}ms: use 50ms to 1m"
        )));
    }
    let cert_lifetime_secs = nanos(&["CAConfig", "NodeCertExpiry"])?.map(|n| n / 1_000_000_000);
    if cert_lifetime_secs.is_some_and(|s| s < MIN_CERT_LIFETIME_SECS) {
        return Err(ApiError::bad_request(format!(
            "invalid CAConfig.NodeCertExpiry: at least {MIN_CERT_LIFETIME_SECS}s"
        )));
    }
    let autolock = match at(&["EncryptionConfig", "AutoLockManagers"]) {
        None => None,
        Some(v) => Some(v.as_bool().ok_or_else(|| {
            ApiError::bad_request(
                "invalid EncryptionConfig.AutoLockManagers: expected true or false",
            )
        })?),
    };
    Ok(Settings {
        heartbeat_ms,
        cert_lifetime_secs,
        autolock,
    })
}

/// `POST /swarm/update?version=N[&rotateWorkerToken=true][&rotateManagerToken=true]
/// [&rotateManagerUnlockKey=true]`: the settings of the posted spec, the rotations asked
/// for, in one write; refused with 409 when the swarm changed since the client read
/// `version`.
pub async fn update_swarm(
    State(s): State<ControlState>,
    Query(q): Query<SwarmUpdateQuery>,
    body: Bytes,
) -> Result<(), ApiError> {
    s.cluster()?;
    let raw = q.version.as_deref().unwrap_or_default();
    let version: u64 = raw.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid swarm version {raw:?}: expected a whole number"
        ))
    })?;
    let rotate_worker = flag("rotateWorkerToken", q.rotate_worker_token.as_deref())?;
    let rotate_manager = flag("rotateManagerToken", q.rotate_manager_token.as_deref())?;
    let rotate_unlock = flag(
        "rotateManagerUnlockKey",
        q.rotate_manager_unlock_key.as_deref(),
    )?;
    let spec: Value = json_body(&body)?;
    let wanted = settings(&spec)?;
    let new_key =
        || shoal_store::seal::new_unlock_key().map_err(|e| ApiError::internal(e.to_string()));
    // Made before the write: a new key for autolock turned on, or for a rotation.
    let (lock_key, rotated_key) = (new_key()?, new_key()?);
    s.store
        .update(|tx| {
            let mut c = cluster_record(tx)?;
            if swarm_index(&c) != version {
                return Err(out_of_sequence());
            }
            let before = c.clone();
            if let Some(ms) = wanted.heartbeat_ms {
                c.heartbeat_period_ms = ms;
            }
            if let Some(secs) = wanted.cert_lifetime_secs {
                c.cert_lifetime_secs = secs;
            }
            if let Some(on) = wanted.autolock {
                set_autolock(&mut c, on.then(|| lock_key.clone()));
            }
            if rotate_worker {
                rotate_join_token(&mut c, NodeRole::Worker);
            }
            if rotate_manager {
                rotate_join_token(&mut c, NodeRole::Manager);
            }
            if rotate_unlock {
                rotate_unlock_key(&mut c, rotated_key.clone())?;
            }
            if c != before {
                tx.push(shoal_store::Op::SetCluster(Box::new(c)));
            }
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok(())
}

/// `GET /swarm/unlockkey`'s answer.
#[derive(Debug, Serialize)]
pub struct UnlockKey {
    #[serde(rename = "UnlockKey")]
    unlock_key: String,
}

/// `GET /swarm/unlockkey`: the key that unlocks a restarted manager of an autolocked
/// swarm (`docker swarm unlock-key`, and `docker swarm update --autolock=true` to print it).
pub async fn unlock_key(State(s): State<ControlState>) -> Result<Json<UnlockKey>, ApiError> {
    let state = s.cluster()?;
    let key = state
        .cluster
        .as_ref()
        .and_then(|c| c.autolock_key.clone())
        .ok_or_else(no_unlock_key)?;
    Ok(Json(UnlockKey { unlock_key: key }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_settings_shoal_acts_on_are_read_and_the_rest_ignored() {
        let spec = json!({
            "Name": "default", "Labels": {}, "Orchestration": {"TaskHistoryRetentionLimit": 5},
            "Raft": {"SnapshotInterval": 10000}, "Dispatcher": {"HeartbeatPeriod": 2_000_000_000_u64},
            "CAConfig": {"NodeCertExpiry": 7_776_000_000_000_000_u64, "ExternalCAs": null},
            "EncryptionConfig": {"AutoLockManagers": true}, "TaskDefaults": {}
        });
        assert_eq!(
            settings(&spec).unwrap(),
            Settings {
                heartbeat_ms: Some(2000),
                cert_lifetime_secs: Some(7_776_000),
                autolock: Some(true)
            }
        );
        let unset = json!({"Dispatcher": {"HeartbeatPeriod": 0}, "CAConfig": {}});
        assert_eq!(settings(&unset).unwrap(), Settings::default());
    }

    #[test]
    fn a_bad_setting_is_refused_by_its_path() {
        let refused = |spec: Value| settings(&spec).unwrap_err().message;
        assert_eq!(
            refused(json!({"Dispatcher": {"HeartbeatPeriod": "5s"}})),
            "invalid Dispatcher.HeartbeatPeriod: expected a whole number of nanoseconds"
        );
        assert_eq!(
            refused(json!({"Dispatcher": {"HeartbeatPeriod": 1_000_000}})),
            "invalid Dispatcher.HeartbeatPeriod 1ms: use 50ms to 1m"
        );
        assert_eq!(
            refused(json!({"CAConfig": {"NodeCertExpiry": 1_000_000_000}})),
            "invalid CAConfig.NodeCertExpiry: at least 10s"
        );
        assert_eq!(
            refused(json!({"EncryptionConfig": {"AutoLockManagers": "yes"}})),
            "invalid EncryptionConfig.AutoLockManagers: expected true or false"
        );
        assert_eq!(
            refused(json!([1])),
            "invalid request body: expected a SwarmSpec object"
        );
        assert!(flag("rotateWorkerToken", Some("maybe")).is_err());
        assert!(flag("rotateWorkerToken", Some("true")).unwrap());
        assert!(!flag("rotateWorkerToken", None).unwrap());
    }
}
