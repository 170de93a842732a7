//! The updater planner: rolls a service's tasks over to its current spec version.
//!
//! Pure: takes a service, its tasks and the current time; returns the actions that move the
//! rollout on, the rollout status to write when it changes, whether to roll back now, and
//! when to look again. It acts only while the service's `update_status` is `updating` or
//! `rollback_started` for the service's current `version`. A task is out of date when its
//! `spec_version` is older than the service's `version`, so `--force` (a version bump with
//! the same spec) replaces every task too. The orchestrator runs it per service and the
//! reconciler commits its decisions in the same write as everything else of the pass.
//!
//! What the tasks tell us, and what we read from them:
//! - a new task became ready at its `status.ready_at` (recorded from the first report that
//!   made it ready; tasks stored without it: the `status.timestamp` of `running`): the `delay`
//!   between batches and the `monitor` window are counted from there;
//! - a dead task ended at its `status.timestamp`. As in Swarm, a new task that ends on its
//!   own without ever having been ready (a process that exits at start, a health check that
//!   never passes) fails the rollout at once, however long it took to fail; one that was
//!   ready fails it only if it ended within `monitor` of becoming ready.

use crate::plan::{planned_replicas, replacement, stop, Action, Plan, SlotKey};
use shoal_api::{
    duration, ClusterState, FailureAction, PublishMode, Service, ServiceMode, Task, TaskState,
    UpdateConfig, UpdateOrder, UpdateState, UpdateStatus,
};
use std::collections::BTreeMap;

/// The status note of a start-first rollout that had to run stop-first (moby#41364).
pub const HOST_PORT_FALLBACK: &str =
    "start-first is not possible with host-mode ports: using stop-first";
/// The status message of a finished update.
pub const UPDATE_COMPLETED: &str = "update completed";
/// The status message of a finished rollback.
pub const ROLLBACK_COMPLETED: &str = "rollback completed";

/// What the updater decided for one service in one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdatePlan {
    pub actions: Vec<Action>,
    /// The rollout status to write, when it changes.
    pub status: Option<UpdateStatus>,
    /// Roll back now: put `previous_spec` back as a new version (see [`rolled_back`]);
    /// `status` then holds the `rollback_started` status for that new version.
    pub rollback: bool,
    /// Earliest time (Unix ms) at which planning again may move the rollout on.
    pub wake_at: Option<u64>,
}

impl UpdatePlan {
    fn wake(&mut self, at: u64) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }
}

/// The config of the service's latest rollout: `spec.rollback` for a rollback.
pub fn rollout_config(service: &Service) -> &UpdateConfig {
    match &service.update_status {
        Some(s) if s.state.is_rollback() => &service.spec.rollback,
        _ => &service.spec.update,
    }
}

/// The service publishes a port in host mode: two of its tasks cannot share a node's port.
pub fn has_host_ports(service: &Service) -> bool {
    service
        .spec
        .ports
        .iter()
        .chain(&service.ports)
        .any(|p| p.mode == PublishMode::Host)
}

/// The order tasks are replaced in: the config's, except that start-first falls back to
/// stop-first when the service has host-mode ports (old and new task would need the same
/// port on one node, and the new one would wait for it forever).
pub fn rollout_order(service: &Service) -> UpdateOrder {
    match rollout_config(service).order {
        UpdateOrder::StartFirst if has_host_ports(service) => UpdateOrder::StopFirst,
        order => order,
    }
}

/// Where one slot stands in the rollout.
#[derive(Debug)]
enum Phase<'t> {
    /// Its new-version task is ready.
    Updated(&'t Task),
    /// A new-version task not ready yet, an old task still stopping, or a replacement on
    /// its way (the orchestrator's restart policy).
    InFlight,
    /// A new-version task of the slot failed the rollout (ended before it was ready or
    /// within `monitor` of it, was rejected, or was not ready within the progress deadline)
    /// and none is ready now. Counted in the failures; no longer in flight (so `continue`
    /// goes on) and not waited for at the end: its restarts are the restart policy's.
    Failed,
    /// Start-first: the new task died (or was stopped) while the old one still serves. The
    /// restart policy (`next`) decides when to try again; if it gives up, the old tasks stop.
    /// After a counted `failure`, the retries go on but no longer hold the rollout up.
    Retry {
        next: Plan,
        old: Vec<&'t Task>,
        failed: bool,
    },
    /// The old version still serves: a batch may take it.
    OutOfDate(Vec<&'t Task>),
    /// Nothing runs and nothing is coming (the restart policy gave up).
    Idle,
}

impl Phase<'_> {
    fn in_flight(&self) -> bool {
        match self {
            Phase::InFlight => true,
            Phase::Retry { next, failed, .. } => pending(next) && !failed,
            _ => false,
        }
    }

    /// The rollout cannot complete yet: something is in flight, left to replace, or (a
    /// start-first retry the restart policy gave up) old tasks are still to stop.
    fn busy(&self) -> bool {
        match self {
            Phase::OutOfDate(_) => true,
            Phase::Retry { next, .. } if !pending(next) => true,
            p => p.in_flight(),
        }
    }
}

/// The orchestrator's plan for a slot creates a task now or later.
fn pending(next: &Plan) -> bool {
    next.wake_at.is_some()
        || next
            .actions
            .iter()
            .any(|a| matches!(a, Action::Create { .. }))
}

fn is_new(service: &Service, t: &Task) -> bool {
    t.spec_version >= service.version
}

/// When a ready task became ready (tasks stored before `ready_at` existed: when it reached
/// `running`).
fn ready_since(t: &Task) -> u64 {
    t.status.ready_at.unwrap_or(t.status.timestamp)
}

/// The service's slots and their tasks, oldest first. Replicated: `1..=replicas`; global:
/// every node the given tasks are on (the orchestrator passes only eligible nodes' tasks).
fn slots<'t>(service: &Service, tasks: &[&'t Task]) -> Vec<(SlotKey, Vec<&'t Task>)> {
    let mut by_slot: BTreeMap<SlotKey, Vec<&'t Task>> = match service.spec.mode {
        ServiceMode::Replicated { .. } => (1..=planned_replicas(service))
            .map(|s| (SlotKey::Slot(s), vec![]))
            .collect(),
        ServiceMode::Global => BTreeMap::new(),
    };
    for t in tasks {
        match &service.spec.mode {
            ServiceMode::Replicated { .. } => {
                if let Some(v) = by_slot.get_mut(&SlotKey::Slot(t.slot)) {
                    v.push(t);
                }
            }
            ServiceMode::Global => by_slot
                .entry(SlotKey::Node(t.node_id.clone().unwrap_or_default()))
                .or_default()
                .push(t),
        }
    }
    for v in by_slot.values_mut() {
        v.sort_by_key(|t| (t.created_at, t.attempt));
    }
    by_slot.into_iter().collect()
}

fn millis(d: std::time::Duration) -> u64 {
    d.as_millis() as u64
}

fn past_deadline(t: &Task, config: &UpdateConfig, now: u64) -> bool {
    now >= t
        .created_at
        .saturating_add(millis(config.progress_deadline))
}

fn classify<'t>(
    service: &Service,
    key: &SlotKey,
    tasks: &[&'t Task],
    config: &UpdateConfig,
    order: UpdateOrder,
    now: u64,
) -> Phase<'t> {
    let newest_new = tasks
        .iter()
        .rev()
        .copied()
        .find(|t| t.is_wanted() && is_new(service, t));
    // A dead new task that failed the rollout: the orchestrator's restarts of the slot (a
    // fresh task each time) must not make the slot look in flight forever.
    let failed = tasks
        .iter()
        .any(|t| is_new(service, t) && !t.is_live() && failure(t, config, now).is_some());
    if let Some(n) = newest_new {
        return if n.is_ready() {
            Phase::Updated(n)
        } else if failed || past_deadline(n, config, now) {
            Phase::Failed
        } else {
            Phase::InFlight
        };
    }
    let latest = tasks.last().copied();
    let old: Vec<&Task> = tasks
        .iter()
        .copied()
        .filter(|t| t.is_wanted() && !is_new(service, t))
        .collect();
    if !old.is_empty() {
        // Start-first: the slot's new task ended (or is being stopped) while the old one
        // still serves; the orchestrator leaves such a slot alone, so the updater retries.
        if let Some(tried) =
            latest.filter(|l| order == UpdateOrder::StartFirst && is_new(service, l))
        {
            let next = replacement(service, key, Some(tried), now);
            return Phase::Retry { next, old, failed };
        }
        return Phase::OutOfDate(old);
    }
    // Stop-first: the old task is stopping; the orchestrator replaces it once it is dead.
    if tasks
        .iter()
        .any(|t| t.is_live() && !is_new(service, t) && t.desired_state == TaskState::Shutdown)
    {
        return Phase::InFlight;
    }
    if failed {
        return Phase::Failed;
    }
    if pending(&replacement(service, key, latest, now)) {
        Phase::InFlight
    } else {
        Phase::Idle
    }
}

/// Why a new-version task counts as a failure of the rollout, and when it failed.
fn failure(t: &Task, config: &UpdateConfig, now: u64) -> Option<(u64, String)> {
    let ended = t.status.timestamp;
    // Never ready: a failure however long it took (a health check that never passes can
    // take longer than `monitor` to give up, and the restart makes a fresh task each time).
    let early = t
        .status
        .ready_at
        .is_none_or(|r| ended.saturating_sub(r) < millis(config.monitor));
    let detail = t
        .status
        .err
        .clone()
        .or_else(|| t.status.exit_code.map(|c| format!("exit code {c}")))
        .or_else(|| Some(t.status.message.clone()).filter(|m| !m.is_empty()))
        .map(|d| format!(": {d}"))
        .unwrap_or_default();
    let what = match t.status.state {
        TaskState::Rejected => "was rejected",
        TaskState::Failed if early => "failed",
        TaskState::Complete if early => "exited",
        _ if t.is_wanted() && !t.is_ready() && past_deadline(t, config, now) => {
            let at = t
                .created_at
                .saturating_add(millis(config.progress_deadline));
            let why = format!(
                "task {} was not ready within the {} progress deadline",
                t.name(),
                duration::format(config.progress_deadline)
            );
            return Some((at, why));
        }
        _ => return None,
    };
    Some((ended, format!("task {} {what}{detail}", t.name())))
}

/// Plan one pass of a service's rollout. `tasks` are the service's tasks (those of its
/// wanted slots; others are ignored for replicated services).
pub fn plan_update(service: &Service, tasks: &[&Task], now: u64) -> UpdatePlan {
    let mut plan = UpdatePlan::default();
    let Some(status) = service
        .update_status
        .as_ref()
        .filter(|s| s.state.in_progress() && s.version == service.version)
    else {
        return plan;
    };
    let rolling_back = status.state == UpdateState::RollbackStarted;
    let config = rollout_config(service);
    let order = rollout_order(service);
    let fallback = order != config.order;
    let slots = slots(service, tasks);
    let phases: Vec<(&SlotKey, Phase)> = slots
        .iter()
        .map(|(k, ts)| (k, classify(service, k, ts, config, order, now)))
        .collect();

    // Failures among the new tasks, against the slots updated so far.
    let mut failures: Vec<(u64, String)> = slots
        .iter()
        .flat_map(|(_, ts)| ts.iter())
        .filter(|t| is_new(service, t))
        .filter_map(|t| failure(t, config, now))
        .collect();
    failures.sort();
    let updated = slots
        .iter()
        .zip(&phases)
        .filter(|((_, ts), (_, phase))| phase.in_flight() || ts.iter().any(|t| is_new(service, t)))
        .count();
    if let Some((_, why)) = failures.last() {
        let ratio = failures.len() as f64 / updated.max(1) as f64;
        if ratio > config.max_failure_ratio {
            let halt = match config.failure_action {
                FailureAction::Continue => None,
                FailureAction::Rollback if !rolling_back && service.previous_spec.is_some() => {
                    plan.rollback = true;
                    Some(UpdateStatus {
                        state: UpdateState::RollbackStarted,
                        version: service.version + 1,
                        started_at: now,
                        completed_at: None,
                        message: format!("update failed: {why}, rolling back"),
                    })
                }
                action => {
                    let (state, what) = if rolling_back {
                        (UpdateState::RollbackPaused, "rollback")
                    } else {
                        (UpdateState::Paused, "update")
                    };
                    let mut message = format!("{what} paused: {why}");
                    if action == FailureAction::Rollback && !rolling_back {
                        message.push_str(" (no previous spec to roll back to)");
                    }
                    Some(UpdateStatus {
                        state,
                        message,
                        completed_at: None,
                        ..status.clone()
                    })
                }
            };
            if let Some(halt) = halt {
                plan.status = Some(halt);
                return plan;
            }
        }
    }

    // Done: nothing left to replace or waiting, and every new task watched for `monitor`.
    // Failed slots (only tolerated or `continue`d failures get here) are not waited for, or
    // a task that never becomes ready would hold the rollout forever.
    if !phases.iter().any(|(_, p)| p.busy()) {
        // The last new task to leave its window decides (deaths wake us anyway).
        let watched_until = phases
            .iter()
            .filter_map(|(_, p)| match p {
                Phase::Updated(t) => Some(ready_since(t).saturating_add(millis(config.monitor))),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        if now < watched_until {
            plan.wake(watched_until);
        } else {
            let (state, done) = if rolling_back {
                (UpdateState::RollbackCompleted, ROLLBACK_COMPLETED)
            } else {
                (UpdateState::Completed, UPDATE_COMPLETED)
            };
            let message = match failures.last() {
                None => done.to_string(),
                Some((_, why)) => {
                    let n = failures.len();
                    let s = if n == 1 { "" } else { "s" };
                    format!("{done} with {n} failure{s} (last: {why})")
                }
            };
            plan.status = Some(UpdateStatus {
                state,
                completed_at: Some(now),
                message,
                ..status.clone()
            });
            return plan;
        }
    }

    // Deadlines of the new tasks in flight.
    for (_, ts) in &slots {
        for t in ts.iter().filter(|t| is_new(service, t) && t.is_wanted()) {
            if !t.is_ready() && !past_deadline(t, config, now) {
                plan.wake(
                    t.created_at
                        .saturating_add(millis(config.progress_deadline)),
                );
            }
        }
    }

    // Start-first retries follow the restart policy; if it gives up, the slot ends as a
    // stop-first one would: the old task stops too.
    for (_, p) in &phases {
        if let Phase::Retry { next, old, .. } = p {
            if pending(next) {
                plan.actions.extend(next.actions.iter().cloned());
                if let Some(w) = next.wake_at {
                    plan.wake(w);
                }
            } else {
                plan.actions.extend(old.iter().map(|t| stop(t)));
            }
        }
    }

    // The next batch: as many out-of-date slots as parallelism leaves room for, once the
    // delay since the latest new task became ready has passed.
    let in_flight = phases.iter().filter(|(_, p)| p.in_flight()).count();
    let room = match config.parallelism {
        0 => usize::MAX,
        n => usize::try_from(n)
            .unwrap_or(usize::MAX)
            .saturating_sub(in_flight),
    };
    let batch: Vec<(&SlotKey, &Vec<&Task>)> = phases
        .iter()
        .filter_map(|(k, p)| match p {
            Phase::OutOfDate(old) => Some((*k, old)),
            _ => None,
        })
        .take(room)
        .collect();
    let last_ready = phases
        .iter()
        .filter_map(|(_, p)| match p {
            Phase::Updated(t) => Some(ready_since(t)),
            _ => None,
        })
        .max();
    let due = last_ready.map_or(0, |r| r.saturating_add(millis(config.delay)));
    if !batch.is_empty() && now < due {
        plan.wake(due);
    } else {
        for (key, old) in batch {
            match order {
                UpdateOrder::StartFirst => plan.actions.push(Action::Create {
                    service_id: service.id.clone(),
                    slot: key.clone(),
                    attempt: old.last().map_or(0, |t| t.attempt),
                    quick_exits: 0,
                }),
                UpdateOrder::StopFirst => plan.actions.extend(old.iter().map(|t| stop(t))),
            }
        }
    }

    if fallback && !status.message.contains(HOST_PORT_FALLBACK) {
        let message = if status.message.is_empty() {
            HOST_PORT_FALLBACK.to_string()
        } else {
            format!("{}; {HOST_PORT_FALLBACK}", status.message)
        };
        plan.status = Some(UpdateStatus {
            message,
            ..status.clone()
        });
    }
    plan
}

/// The service after an automatic rollback: `previous_spec` back in place as a new version,
/// the spec it replaces kept as `previous_spec`, and `status` (for the new version). `None`
/// if there is nothing to roll back to.
pub fn rolled_back(
    state: &ClusterState,
    service: &Service,
    status: UpdateStatus,
    now: u64,
) -> Option<Service> {
    let previous = service.previous_spec.clone()?;
    let mut out = service.clone();
    // Unchanged ports keep their numbers; others get what the cluster has left.
    out.ports = if previous.ports == service.spec.ports {
        service.ports.clone()
    } else {
        crate::alloc::rollback_ports(state, service, &previous.ports)
    };
    out.previous_spec = Some(std::mem::replace(&mut out.spec, previous));
    out.version = service.version + 1;
    out.update_status = Some(UpdateStatus {
        version: out.version,
        ..status
    });
    out.updated_at = now;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::{Health, PortConfig, RestartCondition, ServiceSpec, TaskStatus, TaskTemplate};
    use std::time::Duration;
    use TaskState::*;
    use UpdateState::*;

    const S: u64 = 1000;

    fn config(parallelism: u64, order: UpdateOrder) -> UpdateConfig {
        UpdateConfig {
            parallelism,
            order,
            ..UpdateConfig::default()
        }
    }

    /// Version 2 of a service whose previous spec is the same (as after `--force`).
    fn service(mode: ServiceMode, update: UpdateConfig) -> Service {
        let mut task = TaskTemplate::with_command(vec!["true".into()]);
        task.restart.delay = Duration::from_secs(5);
        let spec = ServiceSpec {
            endpoint_mode: Default::default(),
            lb: Default::default(),
            lb_local_first: false,
            lb_mode: Default::default(),
            idle_timeout: Default::default(),
            name: "web".into(),
            labels: Default::default(),
            mode,
            task,
            ports: vec![],
            update: update.clone(),
            rollback: update,
        };
        Service {
            vip: None,
            id: "s1".into(),
            version: 2,
            spec: spec.clone(),
            previous_spec: Some(spec),
            ports: vec![],
            update_status: Some(UpdateStatus {
                state: Updating,
                version: 2,
                started_at: 0,
                completed_at: None,
                message: String::new(),
            }),
            created_at: 0,
            updated_at: 0,
            docker_spec: None,
            docker_previous_spec: None,
        }
    }

    /// A task of spec version `v` in `slot`, created at `created`, last changed at `at`.
    fn task(
        id: &str,
        slot: u64,
        v: u64,
        (state, desired): (TaskState, TaskState),
        created: u64,
        at: u64,
    ) -> Task {
        Task {
            id: id.into(),
            service_id: "s1".into(),
            service_name: "web".into(),
            slot,
            node_id: Some("n1".into()),
            spec_version: v,
            spec: TaskTemplate::default(),
            ports: vec![],
            desired_state: desired,
            status: TaskStatus::new(state, at, ""),
            endpoint: None,
            created_at: created,
            attempt: 0,
            quick_exits: 0,
            pending_reason: None,
        }
    }

    /// An old task serving in `slot`.
    fn old(id: &str, slot: u64) -> Task {
        task(id, slot, 1, (Running, Running), 0, 0)
    }

    /// An old task being stopped, or already stopped (`dead`).
    fn stopping(id: &str, slot: u64, dead: bool) -> Task {
        let state = if dead { Shutdown } else { Running };
        task(id, slot, 1, (state, Shutdown), 0, S)
    }

    /// A new task wanted running.
    fn new(id: &str, slot: u64, state: TaskState, created: u64, at: u64) -> Task {
        task(id, slot, 2, (state, Running), created, at)
    }

    /// A new task that ended on its own with exit code 1, never having been ready.
    fn failed(id: &str, slot: u64, created: u64, at: u64) -> Task {
        let mut t = task(id, slot, 2, (Failed, Shutdown), created, at);
        t.status.exit_code = Some(1);
        t
    }

    /// A new task that became ready at `ready` and failed (exit code 1) at `at`.
    fn failed_after_ready(id: &str, slot: u64, ready: u64, at: u64) -> Task {
        let mut t = failed(id, slot, ready, at);
        t.status.ready_at = Some(ready);
        t
    }

    /// A new task whose health check never passed: the agent stopped it as unhealthy at `at`.
    fn unhealthy(id: &str, slot: u64, created: u64, at: u64) -> Task {
        let mut t = task(id, slot, 2, (Failed, Shutdown), created, at);
        t.status.health = Some(Health::Unhealthy);
        t.status.err = Some("task: unhealthy: health check failed".into());
        t.status.exit_code = Some(0);
        t
    }

    struct Case {
        name: &'static str,
        replicas: u64,
        config: UpdateConfig,
        state: UpdateState,
        tasks: Vec<Task>,
        now: u64,
        creates: Vec<u64>,
        stops: Vec<&'static str>,
        status: Option<(UpdateState, &'static str)>,
        rollback: bool,
        wake_at: Option<u64>,
    }

    fn base() -> Case {
        Case {
            name: "",
            replicas: 3,
            config: UpdateConfig::default(),
            state: Updating,
            tasks: vec![],
            now: 0,
            creates: vec![],
            stops: vec![],
            status: None,
            rollback: false,
            wake_at: None,
        }
    }

    fn creates(plan: &UpdatePlan) -> Vec<u64> {
        plan.actions
            .iter()
            .filter_map(|a| match a {
                Action::Create {
                    slot: SlotKey::Slot(s),
                    ..
                } => Some(*s),
                _ => None,
            })
            .collect()
    }

    fn stops(plan: &UpdatePlan) -> Vec<String> {
        plan.actions
            .iter()
            .filter_map(|a| match a {
                Action::SetDesired {
                    task_id,
                    state: Shutdown,
                } => Some(task_id.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn rollout_table() {
        let stop_first = UpdateOrder::StopFirst;
        let start_first = UpdateOrder::StartFirst;
        let cases = vec![
            Case {
                name: "stop-first, parallelism 1: the first slot's old task stops",
                tasks: vec![old("a1", 1), old("a2", 2), old("a3", 3)],
                stops: vec!["a1"],
                ..base()
            },
            Case {
                name: "stop-first: nothing more while the old task is stopping",
                tasks: vec![stopping("a1", 1, false), old("a2", 2), old("a3", 3)],
                ..base()
            },
            Case {
                name: "stop-first: nothing more while the replacement is not ready",
                tasks: vec![
                    stopping("a1", 1, true),
                    new("n1", 1, Starting, S, S),
                    old("a2", 2),
                    old("a3", 3),
                ],
                now: 2 * S,
                wake_at: Some(61 * S),
                ..base()
            },
            Case {
                name: "stop-first: the next slot goes once the replacement is ready",
                tasks: vec![
                    stopping("a1", 1, true),
                    new("n1", 1, Running, S, 2 * S),
                    old("a2", 2),
                    old("a3", 3),
                ],
                now: 3 * S,
                stops: vec!["a2"],
                ..base()
            },
            Case {
                name: "parallelism 2 starts two slots",
                config: config(2, stop_first),
                tasks: vec![old("a1", 1), old("a2", 2), old("a3", 3)],
                stops: vec!["a1", "a2"],
                ..base()
            },
            Case {
                name: "parallelism 2 with one slot in flight starts one more",
                config: config(2, stop_first),
                tasks: vec![stopping("a1", 1, false), old("a2", 2), old("a3", 3)],
                stops: vec!["a2"],
                ..base()
            },
            Case {
                name: "parallelism 2 with two slots in flight waits",
                config: config(2, stop_first),
                tasks: vec![
                    stopping("a1", 1, false),
                    stopping("a2", 2, true),
                    new("n2", 2, Pending, S, S),
                    old("a3", 3),
                ],
                now: S,
                wake_at: Some(61 * S),
                ..base()
            },
            Case {
                name: "parallelism 0 starts every slot at once",
                config: config(0, stop_first),
                tasks: vec![old("a1", 1), old("a2", 2), old("a3", 3)],
                stops: vec!["a1", "a2", "a3"],
                ..base()
            },
            Case {
                name: "delay: the next batch waits for it after the last one became ready",
                config: UpdateConfig {
                    delay: Duration::from_secs(10),
                    ..UpdateConfig::default()
                },
                tasks: vec![
                    stopping("a1", 1, true),
                    new("n1", 1, Running, S, 2 * S),
                    old("a2", 2),
                    old("a3", 3),
                ],
                now: 5 * S,
                wake_at: Some(12 * S),
                ..base()
            },
            Case {
                name: "delay: the next batch goes once it has passed",
                config: UpdateConfig {
                    delay: Duration::from_secs(10),
                    ..UpdateConfig::default()
                },
                tasks: vec![
                    stopping("a1", 1, true),
                    new("n1", 1, Running, S, 2 * S),
                    old("a2", 2),
                    old("a3", 3),
                ],
                now: 12 * S,
                stops: vec!["a2"],
                ..base()
            },
            Case {
                name: "delay does not hold the first batch",
                config: UpdateConfig {
                    delay: Duration::from_secs(10),
                    ..UpdateConfig::default()
                },
                tasks: vec![old("a1", 1), old("a2", 2), old("a3", 3)],
                stops: vec!["a1"],
                ..base()
            },
            Case {
                name: "start-first creates the new task first",
                config: config(1, start_first),
                tasks: vec![old("a1", 1), old("a2", 2), old("a3", 3)],
                creates: vec![1],
                ..base()
            },
            Case {
                name: "start-first: the old task serves while the new one starts",
                config: config(1, start_first),
                tasks: vec![
                    old("a1", 1),
                    new("n1", 1, Starting, S, S),
                    old("a2", 2),
                    old("a3", 3),
                ],
                now: 2 * S,
                wake_at: Some(61 * S),
                ..base()
            },
            Case {
                name: "start-first: the next slot once the new task is ready",
                config: config(1, start_first),
                tasks: vec![
                    old("a1", 1),
                    new("n1", 1, Running, S, 2 * S),
                    old("a2", 2),
                    old("a3", 3),
                ],
                now: 3 * S,
                creates: vec![2],
                ..base()
            },
            Case {
                name: "start-first parallelism 0 starts every slot (a --force update)",
                config: config(0, start_first),
                tasks: vec![old("a1", 1), old("a2", 2), old("a3", 3)],
                creates: vec![1, 2, 3],
                ..base()
            },
            Case {
                name: "monitor: a new task dying 1s after it started is a failure",
                tasks: vec![
                    stopping("a1", 1, true),
                    failed("n1", 1, S, 2 * S),
                    old("a2", 2),
                    old("a3", 3),
                ],
                now: 2 * S,
                status: Some((Paused, "update paused: task web.1.n1 failed: exit code 1")),
                ..base()
            },
            Case {
                name: "monitor: a new task dying 6s after it became ready is not",
                tasks: vec![
                    stopping("a1", 1, true),
                    failed_after_ready("n1", 1, S, 7 * S),
                    old("a2", 2),
                    old("a3", 3),
                ],
                // The slot waits for its restart (the orchestrator's), so no new batch.
                now: 8 * S,
                ..base()
            },
            Case {
                name: "a rejected new task is a failure",
                tasks: vec![stopping("a1", 1, true), {
                    let mut t = task("n1", 1, 2, (Rejected, Shutdown), S, 90 * S);
                    t.status.err = Some("command not found".into());
                    t
                }],
                replicas: 1,
                now: 90 * S,
                status: Some((
                    Paused,
                    "update paused: task web.1.n1 was rejected: command not found",
                )),
                ..base()
            },
            Case {
                name: "progress deadline: a new task not ready in time is a failure",
                tasks: vec![
                    stopping("a1", 1, true),
                    new("n1", 1, Pending, S, S),
                    old("a2", 2),
                ],
                replicas: 2,
                now: 61 * S,
                status: Some((
                    Paused,
                    "update paused: task web.1.n1 was not ready within the 1m progress deadline",
                )),
                ..base()
            },
            Case {
                name: "progress deadline: just in time is no failure",
                tasks: vec![
                    stopping("a1", 1, true),
                    new("n1", 1, Running, S, 60 * S),
                    old("a2", 2),
                ],
                replicas: 2,
                now: 61 * S,
                stops: vec!["a2"],
                ..base()
            },
            Case {
                name: "ratio: one failure in two updated slots is within 0.5",
                config: UpdateConfig {
                    parallelism: 2,
                    max_failure_ratio: 0.5,
                    ..UpdateConfig::default()
                },
                tasks: vec![
                    stopping("a1", 1, true),
                    failed("n1", 1, S, 2 * S),
                    stopping("a2", 2, true),
                    new("n2", 2, Running, S, 2 * S),
                    old("a3", 3),
                ],
                now: 3 * S,
                stops: vec!["a3"],
                ..base()
            },
            Case {
                name: "ratio: one failure in two updated slots exceeds 0.4",
                config: UpdateConfig {
                    parallelism: 2,
                    max_failure_ratio: 0.4,
                    ..UpdateConfig::default()
                },
                tasks: vec![
                    stopping("a1", 1, true),
                    failed("n1", 1, S, 2 * S),
                    stopping("a2", 2, true),
                    new("n2", 2, Running, S, 2 * S),
                    old("a3", 3),
                ],
                now: 3 * S,
                status: Some((Paused, "update paused: task web.1.n1 failed: exit code 1")),
                ..base()
            },
            Case {
                name: "failure action continue goes on",
                config: UpdateConfig {
                    parallelism: 2,
                    failure_action: FailureAction::Continue,
                    ..UpdateConfig::default()
                },
                tasks: vec![
                    stopping("a1", 1, true),
                    failed("n1", 1, S, 2 * S),
                    stopping("a2", 2, true),
                    new("n2", 2, Running, S, 2 * S),
                    old("a3", 3),
                ],
                now: 3 * S,
                stops: vec!["a3"],
                ..base()
            },
            Case {
                name: "failure action rollback starts a rollback",
                config: UpdateConfig {
                    failure_action: FailureAction::Rollback,
                    ..UpdateConfig::default()
                },
                tasks: vec![
                    stopping("a1", 1, true),
                    failed("n1", 1, S, 2 * S),
                    old("a2", 2),
                    old("a3", 3),
                ],
                now: 3 * S,
                status: Some((
                    RollbackStarted,
                    "update failed: task web.1.n1 failed: exit code 1, rolling back",
                )),
                rollback: true,
                ..base()
            },
            Case {
                name: "a failing rollback pauses, never rolls back again",
                config: UpdateConfig {
                    failure_action: FailureAction::Rollback,
                    ..UpdateConfig::default()
                },
                state: RollbackStarted,
                tasks: vec![
                    stopping("a1", 1, true),
                    failed("n1", 1, S, 2 * S),
                    old("a2", 2),
                    old("a3", 3),
                ],
                now: 3 * S,
                status: Some((
                    RollbackPaused,
                    "rollback paused: task web.1.n1 failed: exit code 1",
                )),
                ..base()
            },
            Case {
                name: "done but still within the monitor window",
                replicas: 2,
                tasks: vec![
                    stopping("a1", 1, true),
                    new("n1", 1, Running, S, 2 * S),
                    stopping("a2", 2, true),
                    new("n2", 2, Running, 3 * S, 4 * S),
                ],
                now: 5 * S,
                wake_at: Some(9 * S),
                ..base()
            },
            Case {
                name: "completed once every new task ran for the monitor window",
                replicas: 2,
                tasks: vec![
                    stopping("a1", 1, true),
                    new("n1", 1, Running, S, 2 * S),
                    stopping("a2", 2, true),
                    new("n2", 2, Running, 3 * S, 4 * S),
                ],
                now: 9 * S,
                status: Some((Completed, UPDATE_COMPLETED)),
                ..base()
            },
            Case {
                name: "a rollback completes",
                replicas: 2,
                state: RollbackStarted,
                tasks: vec![
                    new("n1", 1, Running, S, 2 * S),
                    new("n2", 2, Running, 3 * S, 4 * S),
                ],
                now: 9 * S,
                status: Some((RollbackCompleted, ROLLBACK_COMPLETED)),
                ..base()
            },
            Case {
                name: "start-first: a failed new task is retried after the restart delay",
                config: UpdateConfig {
                    order: start_first,
                    failure_action: FailureAction::Continue,
                    ..UpdateConfig::default()
                },
                replicas: 2,
                tasks: vec![old("a1", 1), failed("n1", 1, S, 2 * S), old("a2", 2)],
                now: 3 * S,
                // The failure is counted, so `continue` also goes on with slot 2.
                creates: vec![2],
                wake_at: Some(7 * S),
                ..base()
            },
            Case {
                name: "start-first: the retry comes once the delay has passed",
                config: UpdateConfig {
                    order: start_first,
                    failure_action: FailureAction::Continue,
                    ..UpdateConfig::default()
                },
                replicas: 2,
                tasks: vec![old("a1", 1), failed("n1", 1, S, 2 * S), old("a2", 2)],
                now: 7 * S,
                creates: vec![1, 2],
                ..base()
            },
            Case {
                name: "a paused update does nothing",
                state: Paused,
                tasks: vec![old("a1", 1), old("a2", 2), old("a3", 3)],
                ..base()
            },
            Case {
                name: "a completed update does nothing",
                state: Completed,
                tasks: vec![old("a1", 1), old("a2", 2), old("a3", 3)],
                ..base()
            },
        ];
        check(cases);
    }

    fn check(cases: Vec<Case>) {
        for c in cases {
            let mut svc = service(
                ServiceMode::Replicated {
                    replicas: c.replicas,
                },
                c.config,
            );
            if let Some(s) = svc.update_status.as_mut() {
                s.state = c.state;
            }
            let refs: Vec<&Task> = c.tasks.iter().collect();
            let plan = plan_update(&svc, &refs, c.now);
            assert_eq!(creates(&plan), c.creates, "{}", c.name);
            assert_eq!(stops(&plan), c.stops, "{}", c.name);
            let status = plan.status.as_ref().map(|s| (s.state, s.message.as_str()));
            assert_eq!(status, c.status, "{}", c.name);
            assert_eq!(plan.rollback, c.rollback, "{}", c.name);
            assert_eq!(plan.wake_at, c.wake_at, "{}", c.name);
        }
    }

    /// An update whose new task never became healthy (`--health-cmd false`, monitor 3s)
    /// stayed `updating` for good: the task took longer than `monitor` to be declared
    /// unhealthy, so its death was not counted, and the restart policy's fresh task each
    /// time kept the slot in flight (and its progress deadline new).
    #[test]
    fn new_task_that_fails_before_ready_fails_the_update_at_once() {
        let monitor3 = |failure_action| UpdateConfig {
            monitor: Duration::from_secs(3),
            failure_action,
            ..UpdateConfig::default()
        };
        let cases = vec![
            Case {
                name: "unhealthy before ready, long after monitor: pause",
                config: monitor3(FailureAction::Pause),
                tasks: vec![
                    stopping("a1", 1, true),
                    unhealthy("n1", 1, S, 10 * S),
                    old("a2", 2),
                    old("a3", 3),
                ],
                now: 10 * S,
                status: Some((Paused, "update paused: task web.1.n1 failed: task: unhealthy: health check failed")),
                ..base()
            },
            Case {
                name: "unhealthy before ready: rollback",
                config: monitor3(FailureAction::Rollback),
                tasks: vec![
                    stopping("a1", 1, true),
                    unhealthy("n1", 1, S, 10 * S),
                    old("a2", 2),
                    old("a3", 3),
                ],
                now: 10 * S,
                status: Some((
                    RollbackStarted,
                    "update failed: task web.1.n1 failed: task: unhealthy: health check failed, rolling back",
                )),
                rollback: true,
                ..base()
            },
            Case {
                name: "unhealthy before ready: continue goes on to the next slot at once",
                config: monitor3(FailureAction::Continue),
                tasks: vec![
                    stopping("a1", 1, true),
                    unhealthy("n1", 1, S, 10 * S),
                    old("a2", 2),
                    old("a3", 3),
                ],
                now: 10 * S,
                stops: vec!["a2"],
                ..base()
            },
            Case {
                name: "continue: the slot's restarted task starting again does not hold the rollout",
                config: monitor3(FailureAction::Continue),
                tasks: vec![
                    stopping("a1", 1, true),
                    unhealthy("n1", 1, S, 10 * S),
                    {
                        let mut t = new("n1b", 1, Running, 15 * S, 15 * S);
                        t.status.health = Some(Health::Starting);
                        t
                    },
                    old("a2", 2),
                    old("a3", 3),
                ],
                now: 16 * S,
                stops: vec!["a2"],
                // The restarted task's progress deadline.
                wake_at: Some(75 * S),
                ..base()
            },
            Case {
                name: "continue: completes without waiting for the failed slot, and says so",
                config: monitor3(FailureAction::Continue),
                replicas: 2,
                tasks: vec![
                    stopping("a1", 1, true),
                    unhealthy("n1", 1, S, 10 * S),
                    stopping("a2", 2, true),
                    new("n2", 2, Running, 10 * S, 11 * S),
                ],
                now: 14 * S,
                status: Some((
                    Completed,
                    "update completed with 1 failure (last: task web.1.n1 failed: task: unhealthy: health check failed)",
                )),
                ..base()
            },
            Case {
                name: "exits before running: pause",
                config: monitor3(FailureAction::Pause),
                tasks: vec![stopping("a1", 1, true), {
                    let mut t = task("n1", 1, 2, (Failed, Running), S, S + 200);
                    t.status.exit_code = Some(2);
                    t.status.err = Some("non-zero exit (2)".into());
                    t
                }, old("a2", 2), old("a3", 3)],
                now: 2 * S,
                status: Some((Paused, "update paused: task web.1.n1 failed: non-zero exit (2)")),
                ..base()
            },
            Case {
                name: "exits (code 0) before it was ready, after a long start: rollback",
                config: monitor3(FailureAction::Rollback),
                tasks: vec![
                    stopping("a1", 1, true),
                    task("n1", 1, 2, (Complete, Shutdown), S, 40 * S),
                    old("a2", 2),
                    old("a3", 3),
                ],
                now: 40 * S,
                status: Some((
                    RollbackStarted,
                    "update failed: task web.1.n1 exited, rolling back",
                )),
                rollback: true,
                ..base()
            },
            Case {
                name: "rejected: continue goes on",
                config: monitor3(FailureAction::Continue),
                tasks: vec![stopping("a1", 1, true), {
                    let mut t = task("n1", 1, 2, (Rejected, Shutdown), S, S);
                    t.status.err = Some("command not found".into());
                    t
                }, old("a2", 2), old("a3", 3)],
                now: 2 * S,
                stops: vec!["a2"],
                ..base()
            },
            Case {
                name: "rejected: rollback",
                config: monitor3(FailureAction::Rollback),
                tasks: vec![stopping("a1", 1, true), {
                    let mut t = task("n1", 1, 2, (Rejected, Shutdown), S, S);
                    t.status.err = Some("command not found".into());
                    t
                }, old("a2", 2), old("a3", 3)],
                now: 2 * S,
                status: Some((
                    RollbackStarted,
                    "update failed: task web.1.n1 was rejected: command not found, rolling back",
                )),
                rollback: true,
                ..base()
            },
            Case {
                name: "never ready is a failure even with no monitor window",
                config: UpdateConfig {
                    monitor: Duration::ZERO,
                    ..UpdateConfig::default()
                },
                tasks: vec![
                    stopping("a1", 1, true),
                    unhealthy("n1", 1, S, 10 * S),
                    old("a2", 2),
                    old("a3", 3),
                ],
                now: 10 * S,
                status: Some((
                    Paused,
                    "update paused: task web.1.n1 failed: task: unhealthy: health check failed",
                )),
                ..base()
            },
            Case {
                name: "ready, then failing within monitor of becoming ready: a failure",
                config: monitor3(FailureAction::Pause),
                tasks: vec![
                    stopping("a1", 1, true),
                    failed_after_ready("n1", 1, 8 * S, 10 * S),
                    old("a2", 2),
                    old("a3", 3),
                ],
                now: 10 * S,
                status: Some((Paused, "update paused: task web.1.n1 failed: exit code 1")),
                ..base()
            },
            Case {
                name: "ready, then failing after the monitor window: not a failure, the slot waits for its restart",
                config: monitor3(FailureAction::Pause),
                tasks: vec![
                    stopping("a1", 1, true),
                    failed_after_ready("n1", 1, 2 * S, 6 * S),
                    old("a2", 2),
                    old("a3", 3),
                ],
                now: 7 * S,
                ..base()
            },
            Case {
                name: "ready, then unhealthy after the monitor window: not a failure either",
                config: monitor3(FailureAction::Rollback),
                tasks: vec![stopping("a1", 1, true), {
                    let mut t = unhealthy("n1", 1, S, 9 * S);
                    t.status.ready_at = Some(2 * S);
                    t
                }, old("a2", 2), old("a3", 3)],
                now: 9 * S,
                ..base()
            },
            Case {
                name: "a rollback counts only its own new tasks, not the update's that failed",
                config: monitor3(FailureAction::Rollback),
                state: RollbackStarted,
                tasks: vec![
                    {
                        let mut t = unhealthy("n1", 1, S, 10 * S);
                        t.spec_version = 1;
                        t
                    },
                    old("a2", 2),
                    old("a3", 3),
                ],
                now: 10 * S,
                ..base()
            },
        ];
        check(cases);
    }

    #[test]
    fn completion_status_keeps_version_and_start() {
        let mut svc = service(
            ServiceMode::Replicated { replicas: 1 },
            config(1, UpdateOrder::StopFirst),
        );
        svc.update_status.as_mut().unwrap().started_at = 500;
        let n = new("n1", 1, Running, S, 2 * S);
        let plan = plan_update(&svc, &[&n], 7 * S);
        assert_eq!(
            plan.status,
            Some(UpdateStatus {
                state: Completed,
                version: 2,
                started_at: 500,
                completed_at: Some(7 * S),
                message: UPDATE_COMPLETED.into(),
            })
        );
    }

    #[test]
    fn status_of_another_version_is_left_alone() {
        let mut svc = service(
            ServiceMode::Replicated { replicas: 1 },
            UpdateConfig::default(),
        );
        svc.update_status.as_mut().unwrap().version = 1;
        let a = old("a1", 1);
        assert_eq!(plan_update(&svc, &[&a], 0), UpdatePlan::default());
        svc.update_status = None;
        assert_eq!(plan_update(&svc, &[&a], 0), UpdatePlan::default());
    }

    #[test]
    fn start_first_with_host_ports_runs_stop_first_and_says_so() {
        let mut svc = service(
            ServiceMode::Replicated { replicas: 2 },
            config(1, UpdateOrder::StartFirst),
        );
        svc.spec.ports = vec![PortConfig::parse("published=8080,target=80,mode=host").unwrap()];
        svc.ports = svc.spec.ports.clone();
        assert_eq!(rollout_order(&svc), UpdateOrder::StopFirst);
        let (a1, a2) = (old("a1", 1), old("a2", 2));
        let plan = plan_update(&svc, &[&a1, &a2], 0);
        assert!(creates(&plan).is_empty());
        assert_eq!(stops(&plan), vec!["a1".to_string()]);
        let status = plan.status.expect("the fallback is noted");
        assert_eq!(
            (status.state, status.message.as_str()),
            (Updating, HOST_PORT_FALLBACK)
        );
        // Once noted, the status is not written again.
        svc.update_status = Some(status);
        let plan = plan_update(&svc, &[&a1, &a2], 0);
        assert_eq!(plan.status, None);
        assert_eq!(stops(&plan), vec!["a1".to_string()]);
        // Ingress ports overlap fine: start-first stays start-first.
        svc.spec.ports = vec![PortConfig::parse("8080:80").unwrap()];
        svc.ports = svc.spec.ports.clone();
        assert_eq!(rollout_order(&svc), UpdateOrder::StartFirst);
    }

    #[test]
    fn force_update_replaces_every_task() {
        // `--force`: same spec, version bumped; every task is out of date.
        let svc = service(
            ServiceMode::Replicated { replicas: 2 },
            config(0, UpdateOrder::StopFirst),
        );
        assert_eq!(svc.previous_spec.as_ref(), Some(&svc.spec));
        let (a1, a2) = (old("a1", 1), old("a2", 2));
        let plan = plan_update(&svc, &[&a1, &a2], 0);
        assert_eq!(stops(&plan), vec!["a1".to_string(), "a2".to_string()]);
        // Tasks already at the current version are left alone.
        let (n1, n2) = (new("n1", 1, Running, 0, 0), new("n2", 2, Running, 0, 0));
        let plan = plan_update(&svc, &[&n1, &n2], 10 * S);
        assert!(plan.actions.is_empty());
        assert_eq!(plan.status.map(|s| s.state), Some(Completed));
    }

    #[test]
    fn start_first_retry_gives_up_with_the_restart_policy() {
        let mut svc = service(
            ServiceMode::Replicated { replicas: 1 },
            UpdateConfig {
                order: UpdateOrder::StartFirst,
                failure_action: FailureAction::Continue,
                ..UpdateConfig::default()
            },
        );
        svc.spec.task.restart.condition = RestartCondition::None;
        let (a1, n1) = (old("a1", 1), failed("n1", 1, S, 2 * S));
        let plan = plan_update(&svc, &[&a1, &n1], 10 * S);
        // As stop-first would have left it: the old task stops too.
        assert_eq!(stops(&plan), vec!["a1".to_string()]);
        assert!(creates(&plan).is_empty());
    }

    #[test]
    fn global_services_update_one_node_at_a_time() {
        let svc = service(ServiceMode::Global, UpdateConfig::default());
        let on = |mut t: Task, node: &str| {
            t.slot = 0;
            t.node_id = Some(node.into());
            t
        };
        let (a, b) = (on(old("a", 0), "n1"), on(old("b", 0), "n2"));
        let plan = plan_update(&svc, &[&a, &b], 0);
        assert_eq!(stops(&plan), vec!["a".to_string()]);
        // The first node's old task is dead and its replacement not created yet: in flight.
        let a_dead = on(stopping("a", 0, true), "n1");
        let plan = plan_update(&svc, &[&a_dead, &b], S);
        assert!(plan.actions.is_empty(), "{plan:?}");
        let n = on(new("n", 0, Running, S, 2 * S), "n1");
        let plan = plan_update(&svc, &[&a_dead, &n, &b], 3 * S);
        assert_eq!(stops(&plan), vec!["b".to_string()]);
        // Start-first creates on the node itself.
        let svc = service(ServiceMode::Global, config(1, UpdateOrder::StartFirst));
        let plan = plan_update(&svc, &[&a, &b], 0);
        assert_eq!(
            plan.actions,
            vec![Action::Create {
                service_id: "s1".into(),
                slot: SlotKey::Node("n1".into()),
                attempt: 0,
                quick_exits: 0
            }]
        );
    }

    #[test]
    fn rollback_puts_the_previous_spec_back_as_a_new_version() {
        let mut svc = service(
            ServiceMode::Replicated { replicas: 1 },
            UpdateConfig::default(),
        );
        let mut previous = svc.spec.clone();
        previous.task.process_mut().expect("process").command = vec!["old".into()];
        previous.ports = vec![PortConfig::parse("80").unwrap()];
        svc.previous_spec = Some(previous.clone());
        svc.spec.ports = vec![PortConfig::parse("8080:80").unwrap()];
        svc.ports = svc.spec.ports.clone();
        let mut other = svc.clone();
        other.id = "s2".into();
        other.ports = vec![PortConfig::parse("30000:80").unwrap()];
        let mut state = ClusterState::default();
        state.services.insert(other.id.clone(), other);
        let status = UpdateStatus {
            state: RollbackStarted,
            version: 3,
            started_at: 9,
            completed_at: None,
            message: "update failed: x, rolling back".into(),
        };
        let out = rolled_back(&state, &svc, status.clone(), 9).unwrap();
        assert_eq!(out.version, 3);
        assert_eq!(out.spec, previous);
        assert_eq!(out.previous_spec.as_ref(), Some(&svc.spec));
        assert_eq!(out.update_status, Some(status.clone()));
        assert_eq!(out.updated_at, 9);
        // The auto-assigned port keeps this service's number for the same target.
        assert_eq!(out.ports[0].published, Some(8080));
        svc.ports.clear();
        let out = rolled_back(&state, &svc, status.clone(), 9).unwrap();
        assert_eq!(out.ports[0].published, Some(30001), "30000 is taken");
        svc.previous_spec = None;
        assert!(rolled_back(&state, &svc, status, 9).is_none());
    }
}
