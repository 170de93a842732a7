//! Rolling updates: how a spec change is rolled out (`UpdateConfig`) and where a rollout
//! stands (`UpdateStatus`). Swarm's defaults and state names.

use crate::duration::millis;
use crate::limits::MAX_REPLICAS;
use crate::SpecError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureAction {
    #[default]
    Pause,
    Continue,
    Rollback,
}

impl FailureAction {
    pub fn parse(text: &str) -> Result<FailureAction, SpecError> {
        match text {
            "pause" => Ok(FailureAction::Pause),
            "continue" => Ok(FailureAction::Continue),
            "rollback" => Ok(FailureAction::Rollback),
            _ => Err(SpecError::invalid(
                "failure-action",
                text,
                "expected pause, continue or rollback",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureAction::Pause => "pause",
            FailureAction::Continue => "continue",
            FailureAction::Rollback => "rollback",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    /// Stop the old task, then start the new one (Swarm's default).
    #[default]
    StopFirst,
    /// Start the new task and wait until it is ready, then stop the old one.
    StartFirst,
}

impl UpdateOrder {
    pub fn parse(text: &str) -> Result<UpdateOrder, SpecError> {
        match text {
            "stop-first" => Ok(UpdateOrder::StopFirst),
            "start-first" => Ok(UpdateOrder::StartFirst),
            _ => Err(SpecError::invalid(
                "update-order",
                text,
                "expected stop-first or start-first",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UpdateOrder::StopFirst => "stop-first",
            UpdateOrder::StartFirst => "start-first",
        }
    }
}

/// How to roll out a change (also used, separately, for rollbacks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateConfig {
    /// Tasks updated at once; 0 means all at once.
    #[serde(default = "one")]
    pub parallelism: u64,
    /// Pause between batches.
    #[serde(with = "millis", default)]
    pub delay: Duration,
    #[serde(default)]
    pub failure_action: FailureAction,
    /// How long a new task is watched after it becomes ready; failing within it counts as a
    /// failure (failing before it was ever ready always does).
    #[serde(with = "millis", default = "five_seconds")]
    pub monitor: Duration,
    /// Failures tolerated, as a fraction of the tasks updated (0 to 1).
    #[serde(default)]
    pub max_failure_ratio: f64,
    #[serde(default)]
    pub order: UpdateOrder,
    /// A task that is not ready this long after its update started counts as failed.
    #[serde(with = "millis", default = "progress_deadline")]
    pub progress_deadline: Duration,
}

impl Eq for UpdateConfig {}

fn one() -> u64 {
    1
}
fn five_seconds() -> Duration {
    Duration::from_secs(5)
}
fn progress_deadline() -> Duration {
    Duration::from_secs(60)
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            parallelism: 1,
            delay: Duration::ZERO,
            failure_action: FailureAction::Pause,
            monitor: five_seconds(),
            max_failure_ratio: 0.0,
            order: UpdateOrder::StopFirst,
            progress_deadline: progress_deadline(),
        }
    }
}

/// The flag names an [`UpdateConfig`]'s errors speak of: `--update-*` or `--rollback-*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigFields {
    pub parallelism: &'static str,
    pub max_failure_ratio: &'static str,
    pub progress_deadline: &'static str,
}

pub const UPDATE_FIELDS: ConfigFields = ConfigFields {
    parallelism: "update-parallelism",
    max_failure_ratio: "update-max-failure-ratio",
    progress_deadline: "update-progress-deadline",
};

pub const ROLLBACK_FIELDS: ConfigFields = ConfigFields {
    parallelism: "rollback-parallelism",
    max_failure_ratio: "rollback-max-failure-ratio",
    progress_deadline: "rollback-progress-deadline",
};

impl UpdateConfig {
    /// Check the config; errors name the flag in `fields`.
    pub fn validate(&self, fields: &ConfigFields) -> Result<(), SpecError> {
        if self.parallelism > MAX_REPLICAS {
            return Err(SpecError::invalid(
                fields.parallelism,
                self.parallelism.to_string(),
                format!("at most {MAX_REPLICAS} (0 updates every task at once)"),
            ));
        }
        if !(0.0..=1.0).contains(&self.max_failure_ratio) || self.max_failure_ratio.is_nan() {
            return Err(SpecError::invalid(
                fields.max_failure_ratio,
                self.max_failure_ratio.to_string(),
                "max failure ratio must be between 0 and 1",
            ));
        }
        if self.progress_deadline.is_zero() {
            return Err(SpecError::invalid(
                fields.progress_deadline,
                "0s",
                "progress deadline must be more than 0",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    Updating,
    Paused,
    Completed,
    RollbackStarted,
    RollbackPaused,
    RollbackCompleted,
}

impl UpdateState {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateState::Updating => "updating",
            UpdateState::Paused => "paused",
            UpdateState::Completed => "completed",
            UpdateState::RollbackStarted => "rollback_started",
            UpdateState::RollbackPaused => "rollback_paused",
            UpdateState::RollbackCompleted => "rollback_completed",
        }
    }

    /// A rollout is under way (tasks are being replaced).
    pub fn in_progress(self) -> bool {
        matches!(self, UpdateState::Updating | UpdateState::RollbackStarted)
    }

    pub fn is_rollback(self) -> bool {
        matches!(
            self,
            UpdateState::RollbackStarted
                | UpdateState::RollbackPaused
                | UpdateState::RollbackCompleted
        )
    }
}

/// Where the latest rollout of a service stands (shown by `service inspect`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    pub state: UpdateState,
    /// The service version being rolled out.
    pub version: u64,
    pub started_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<u64>,
    /// Why it paused or rolled back, or a note on how it runs.
    #[serde(default)]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_swarms() {
        let c: UpdateConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, UpdateConfig::default());
        assert_eq!(
            (c.parallelism, c.delay, c.monitor),
            (1, Duration::ZERO, Duration::from_secs(5))
        );
        assert_eq!(
            (c.failure_action, c.order),
            (FailureAction::Pause, UpdateOrder::StopFirst)
        );
    }

    #[test]
    fn ratio_outside_zero_one_is_refused() {
        for r in [-0.1, 1.5, f64::NAN] {
            let c = UpdateConfig {
                max_failure_ratio: r,
                ..UpdateConfig::default()
            };
            let err = c.validate(&UPDATE_FIELDS).expect_err("ratio");
            assert!(
                err.to_string().contains("update-max-failure-ratio"),
                "{r}: {err}"
            );
        }
        assert!(UpdateOrder::parse("sideways").is_err());
        assert!(FailureAction::parse("explode").is_err());
    }

    #[test]
    fn zero_progress_deadline_names_the_deadline_flag() {
        let c = UpdateConfig {
            progress_deadline: Duration::ZERO,
            ..UpdateConfig::default()
        };
        let err = c.validate(&UPDATE_FIELDS).expect_err("zero deadline");
        assert_eq!(
            err.to_string(),
            r#"invalid update-progress-deadline "0s": progress deadline must be more than 0"#
        );
        let err = c.validate(&ROLLBACK_FIELDS).expect_err("zero deadline");
        assert!(
            err.to_string().contains("rollback-progress-deadline"),
            "{err}"
        );
    }

    #[test]
    fn parallelism_above_the_replica_bound_is_refused() {
        let c = UpdateConfig {
            parallelism: MAX_REPLICAS + 1,
            ..UpdateConfig::default()
        };
        let err = c.validate(&UPDATE_FIELDS).expect_err("too parallel");
        assert!(err.to_string().contains("update-parallelism"), "{err}");
        let ok = UpdateConfig {
            parallelism: MAX_REPLICAS,
            ..UpdateConfig::default()
        };
        assert!(ok.validate(&ROLLBACK_FIELDS).is_ok());
    }
}
