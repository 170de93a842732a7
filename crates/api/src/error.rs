//! Validation errors for user-supplied specs: one lowercase line naming the problem.

/// A spec or a field of one that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("invalid {field} {value:?}: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Other(String),
}

impl SpecError {
    pub fn invalid(
        field: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        SpecError::Invalid {
            field,
            value: value.into(),
            reason: reason.into(),
        }
    }
}
