//! Bounds on what a spec may ask for, and the checks that enforce them.
//!
//! Every count and size a user controls is bounded here, so that a stored spec can never make
//! a planner or the agent allocate, fork or exec out of proportion. docs/api.md lists them.

use crate::SpecError;
use std::time::Duration;

/// Most replicas one service may have.
pub const MAX_REPLICAS: u64 = 10_000;
/// Most labels on a service (and most added to a node in one update).
pub const MAX_LABELS: usize = 100;
/// Longest label key, in bytes.
pub const MAX_LABEL_KEY: usize = 256;
/// Longest label value, in bytes.
pub const MAX_LABEL_VALUE: usize = 4096;
/// Most entries of command and args together.
pub const MAX_ARGS: usize = 1000;
/// Most environment entries.
pub const MAX_ENV: usize = 1000;
/// Longest single command word, argument, environment entry or health command, in bytes
/// (the kernel refuses strings over 128 KiB in an exec).
pub const MAX_ARG_LEN: usize = 32 * 1024;
/// Most bytes of command, args and env together (the kernel's limit is usually 2 MiB).
pub const MAX_EXEC_BYTES: usize = 1024 * 1024;
/// Most placement constraints.
pub const MAX_CONSTRAINTS: usize = 64;
/// Most placement preferences.
pub const MAX_PLACEMENT_PREFS: usize = 16;
/// Longest constraint or placement preference, in bytes.
pub const MAX_EXPRESSION_LEN: usize = 1024;
/// Most published ports of one service.
pub const MAX_PORTS: usize = 100;
/// Most mounts of one container.
pub const MAX_MOUNTS: usize = 100;
/// Longest working directory, image name or health check HTTP path, in bytes.
pub const MAX_PATH_LEN: usize = 4096;
/// Shortest health check interval: a `cmd` probe forks a shell every interval.
pub const MIN_HEALTH_INTERVAL: Duration = Duration::from_millis(100);
/// Shortest health check timeout.
pub const MIN_HEALTH_TIMEOUT: Duration = Duration::from_millis(10);
/// Longest health check interval, timeout or start period.
pub const MAX_HEALTH_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Refuse more than `max` items.
pub fn check_count(field: &'static str, count: usize, max: usize) -> Result<(), SpecError> {
    if count > max {
        return Err(SpecError::invalid(
            field,
            format!("{count} entries"),
            format!("at most {max} allowed"),
        ));
    }
    Ok(())
}

/// Refuse text longer than `max` bytes or holding a NUL byte (which no exec, path or
/// environment can carry: the task would be rejected on every attempt).
pub fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), SpecError> {
    if text.len() > max {
        return Err(SpecError::invalid(
            field,
            text,
            format!("longer than {max} bytes"),
        ));
    }
    if text.contains('\0') {
        return Err(SpecError::invalid(
            field,
            text,
            "contains a NUL byte, which a process cannot receive",
        ));
    }
    Ok(())
}

/// Refuse a label key or value with control characters (they would reach terminals raw),
/// an empty or over-long key, or an over-long value.
pub fn check_label(key: &str, value: &str) -> Result<(), SpecError> {
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(SpecError::invalid(
            "label",
            key,
            "key must be non-empty and without spaces",
        ));
    }
    check_text("label", key, MAX_LABEL_KEY)?;
    check_text("label", value, MAX_LABEL_VALUE)?;
    for text in [key, value] {
        if text.chars().any(char::is_control) {
            return Err(SpecError::invalid(
                "label",
                format!("{key}={value}"),
                "control characters are not allowed",
            ));
        }
    }
    Ok(())
}

/// Check a set of labels: their number and each key and value.
pub fn check_labels<'a>(
    labels: impl ExactSizeIterator<Item = (&'a String, &'a String)>,
) -> Result<(), SpecError> {
    check_count("labels", labels.len(), MAX_LABELS)?;
    for (k, v) in labels {
        check_label(k, v)?;
    }
    Ok(())
}

/// Refuse a health check duration outside `min..=MAX_HEALTH_DURATION`.
pub fn check_health_duration(
    field: &'static str,
    value: Duration,
    min: Duration,
) -> Result<(), SpecError> {
    if value < min {
        return Err(SpecError::invalid(
            field,
            crate::duration::format(value),
            format!("must be at least {}", crate::duration::format(min)),
        ));
    }
    if value > MAX_HEALTH_DURATION {
        return Err(SpecError::invalid(
            field,
            crate::duration::format(value),
            format!(
                "must be at most {}",
                crate::duration::format(MAX_HEALTH_DURATION)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_over_the_limit_or_with_nul_is_refused() {
        assert!(check_text("arg", "abc", 3).is_ok());
        let long = check_text("arg", "abcd", 3).expect_err("too long");
        assert!(long.to_string().contains("longer than 3 bytes"), "{long}");
        let nul = check_text("arg", "a\0b", 10).expect_err("nul");
        assert!(nul.to_string().contains("NUL byte"), "{nul}");
        assert!(nul.to_string().contains(r#""a\0b""#), "escaped: {nul}");
    }

    #[test]
    fn labels_with_control_characters_are_refused() {
        assert!(check_label("team", "a b").is_ok());
        for (k, v) in [
            ("te\u{1b}am", "a"),
            ("team", "a\u{1b}[31m"),
            ("team", "\u{9b}"),
        ] {
            let err = check_label(k, v).expect_err("control character");
            let line = err.to_string();
            assert!(line.contains("control characters"), "{line}");
            assert!(!line.chars().any(char::is_control), "escaped: {line:?}");
        }
        assert!(check_label("", "a").is_err());
        assert!(check_label(&"k".repeat(MAX_LABEL_KEY + 1), "a").is_err());
        assert!(check_label("k", &"v".repeat(MAX_LABEL_VALUE + 1)).is_err());
    }

    #[test]
    fn health_durations_have_a_floor_and_a_ceiling() {
        let min = MIN_HEALTH_INTERVAL;
        assert!(check_health_duration("health-interval", min, min).is_ok());
        let err = check_health_duration("health-interval", Duration::from_millis(1), min)
            .expect_err("below the floor");
        assert_eq!(
            err.to_string(),
            r#"invalid health-interval "1ms": must be at least 100ms"#
        );
        assert!(
            check_health_duration("health-interval", Duration::from_secs(86_401), min).is_err()
        );
    }
}
