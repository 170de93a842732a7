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
            value: shorten(value.into()),
            reason: reason.into(),
        }
    }
}

/// Longest value an error repeats, in characters: a refused megabyte stays one short line.
const SHOWN_VALUE: usize = 64;

fn shorten(value: String) -> String {
    if value.chars().count() <= SHOWN_VALUE {
        return value;
    }
    let mut cut: String = value.chars().take(SHOWN_VALUE).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_shortened_in_the_message() {
        let err = SpecError::invalid("env", "A=".repeat(100_000), "too long");
        let line = err.to_string();
        assert!(line.len() < 200, "{line}");
        assert!(line.contains('…'), "{line}");
    }
}
