//! Waiting for a service to converge, with Swarm-style progress lines.

use crate::client::Client;
use shoal_api::{Health, ServiceMode, Task, TaskState};
use shoal_wire::v1::services::ServiceInfo;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(200);
/// Converged must hold this long before we call it done (tasks that crash at once show up).
const VERIFY: Duration = Duration::from_millis(600);

#[derive(Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    Converged,
    /// Not converged in time: why, in one line.
    TimedOut(String),
}

fn serving(t: &Task) -> bool {
    t.status.state == TaskState::Running
        && t.desired_state == TaskState::Running
        && matches!(t.status.health, None | Some(Health::Healthy))
}

/// The state to show per slot (replicated) or per node (global), newest task first.
fn slot_states(info: &ServiceInfo, tasks: &[Task]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let ServiceMode::Replicated { replicas } = info.service.spec.mode {
        for slot in 1..=replicas {
            out.insert(format!("{slot:>3}/{replicas}"), "new".to_string());
        }
    }
    let mut newest: BTreeMap<String, &Task> = BTreeMap::new();
    for t in tasks
        .iter()
        .filter(|t| t.desired_state == TaskState::Running)
    {
        let key = match info.service.spec.mode {
            ServiceMode::Replicated { replicas } => format!("{:>3}/{replicas}", t.slot),
            ServiceMode::Global => t.node_id.clone().unwrap_or_default(),
        };
        if newest.get(&key).is_none_or(|n| n.created_at < t.created_at) {
            newest.insert(key, t);
        }
    }
    for (k, t) in newest {
        let mut s = t.status.state.as_str().to_string();
        if t.status.state == TaskState::Running && !serving(t) {
            s = "starting (health check pending)".into();
        }
        // As in Docker, a task no node takes shows why instead of its state.
        if let Some(reason) = t
            .pending_reason
            .as_ref()
            .filter(|_| t.status.state <= TaskState::Pending)
        {
            s.clone_from(reason);
        }
        out.insert(k, s);
    }
    out
}

fn converged(info: &ServiceInfo, tasks: &[Task]) -> bool {
    let ready = tasks.iter().filter(|t| serving(t)).count() as u64;
    let stopping = tasks
        .iter()
        .any(|t| t.desired_state > TaskState::Running && t.is_live());
    ready == info.desired && !stopping && (info.desired > 0 || tasks.iter().all(|t| !t.is_live()))
}

pub async fn wait_converged(
    client: &Client,
    service_id: &str,
    timeout: Duration,
) -> anyhow::Result<WaitOutcome> {
    let deadline = Instant::now() + timeout;
    let mut shown: BTreeMap<String, String> = BTreeMap::new();
    let mut last_overall = None;
    let mut converged_since: Option<Instant> = None;
    loop {
        let info: ServiceInfo = client.get(&format!("/v1/services/{service_id}")).await?;
        let tasks: Vec<Task> = client
            .get(&format!("/v1/tasks?service={service_id}"))
            .await?;
        let ready = tasks.iter().filter(|t| serving(t)).count() as u64;
        let overall = format!("overall progress: {ready} out of {} tasks", info.desired);
        if last_overall.as_ref() != Some(&overall) {
            println!("{overall}");
            last_overall = Some(overall);
        }
        for (slot, state) in slot_states(&info, &tasks) {
            if shown.get(&slot) != Some(&state) {
                println!("{slot}: {}", crate::table::escape(&state));
                shown.insert(slot, state);
            }
        }
        if converged(&info, &tasks) {
            let since = *converged_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= VERIFY {
                println!("verify: Service converged");
                return Ok(WaitOutcome::Converged);
            }
        } else {
            converged_since = None;
        }
        if Instant::now() >= deadline {
            let last_err = tasks
                .iter()
                .filter_map(|t| {
                    t.status
                        .err
                        .as_ref()
                        .or(t.pending_reason.as_ref())
                        .map(|e| (t.status.timestamp, e))
                })
                .max_by_key(|(ts, _)| *ts)
                .map(|(_, e)| format!("; last task error: {e}"))
                .unwrap_or_default();
            return Ok(WaitOutcome::TimedOut(format!(
                "service {} did not converge within {}: {ready} out of {} tasks running{last_err}",
                info.service.spec.name,
                shoal_api::duration::format(timeout),
                info.desired
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Follow a rollout of `version` to its end. Converged only when it completed with every
/// task of the version serving; a pause, a rollback (automatic, after failures), or a
/// completion past failed tasks (`--update-failure-action continue`, or failures within the
/// ratio whose slots still do not serve) is an error naming why. A manual rollback
/// (`version` started as a rollback) succeeds when the rollback completes.
pub async fn wait_rollout(
    client: &Client,
    service_id: &str,
    version: u64,
    timeout: Duration,
) -> anyhow::Result<WaitOutcome> {
    use shoal_api::UpdateState::*;
    let deadline = Instant::now() + timeout;
    let mut last_overall = None;
    let mut last_state = None;
    let mut manual_rollback = None;
    // Why an automatic rollback started: its completion status says only that it completed.
    let mut rollback_reason: Option<String> = None;
    loop {
        let info: ServiceInfo = client.get(&format!("/v1/services/{service_id}")).await?;
        let tasks: Vec<Task> = client
            .get(&format!("/v1/tasks?service={service_id}"))
            .await?;
        let svc = &info.service;
        let Some(status) = svc.update_status.clone() else {
            anyhow::bail!("service {} has no rollout in progress", svc.spec.name);
        };
        if manual_rollback.is_none() {
            manual_rollback = Some(status.version == version && status.state.is_rollback());
        }
        let current = tasks
            .iter()
            .filter(|t| t.spec_version == svc.version && serving(t))
            .count() as u64;
        let overall = format!(
            "overall progress: {current} out of {} tasks updated",
            info.desired
        );
        if last_overall.as_ref() != Some(&overall) {
            println!("{overall}");
            last_overall = Some(overall);
        }
        if last_state != Some(status.state) {
            if status.state.is_rollback() && manual_rollback == Some(false) {
                println!("rollback: {}", crate::table::escape(&status.message));
                if status.state == RollbackStarted {
                    rollback_reason = Some(status.message.clone());
                }
            }
            last_state = Some(status.state);
        }
        let name = &svc.spec.name;
        let finished = match status.state {
            Completed => status.version == version,
            RollbackCompleted => manual_rollback == Some(true),
            _ => false,
        };
        match status.state {
            _ if finished && current < info.desired => {
                let what = if status.state == Completed {
                    "update"
                } else {
                    "rollback"
                };
                return Ok(WaitOutcome::TimedOut(format!(
                    "{what} of service {name} completed with only {current} of {} tasks running: {}",
                    info.desired, status.message
                )));
            }
            _ if finished => {
                println!("verify: Service converged");
                return Ok(WaitOutcome::Converged);
            }
            RollbackCompleted => {
                return Ok(WaitOutcome::TimedOut(format!(
                    "update of service {name} failed and was rolled back: {}",
                    rollback_reason.as_deref().unwrap_or(&status.message)
                )))
            }
            Paused => {
                return Ok(WaitOutcome::TimedOut(format!(
                    "update of service {name} paused: {}",
                    status.message
                )))
            }
            RollbackPaused => {
                return Ok(WaitOutcome::TimedOut(format!(
                    "rollback of service {name} paused: {}",
                    status.message
                )))
            }
            Completed => {
                return Ok(WaitOutcome::TimedOut(format!(
                    "service {name} was updated again (version {}) while this update was followed",
                    status.version
                )))
            }
            Updating | RollbackStarted => {}
        }
        if Instant::now() >= deadline {
            return Ok(WaitOutcome::TimedOut(format!(
                "rollout of service {name} not finished after {} ({current} of {} tasks updated); it goes on: follow it with shoal service inspect {name}",
                shoal_api::duration::format(timeout),
                info.desired
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}
