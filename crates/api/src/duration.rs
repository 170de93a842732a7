//! Durations written the Go/Docker way (`500ms`, `10s`, `1m30s`, `2h`), parsed and printed.
//!
//! Specs keep durations as milliseconds in JSON so the API stays readable from any client.

use crate::SpecError;
use std::time::Duration;

/// Parse `1h2m3s`, `1.5s`, `250ms`, `0`. A bare number other than 0 is rejected, as in Docker.
pub fn parse(field: &'static str, text: &str) -> Result<Duration, SpecError> {
    let bad = |reason: &str| SpecError::invalid(field, text, reason);
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad("expected a duration such as 5s, 500ms or 1m30s"));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad("expected a duration such as 5s, 500ms or 1m30s"));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| bad("expected a duration such as 5s, 500ms or 1m30s"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(bad("missing unit (use ms, s, m or h)")),
            other => return Err(bad(&format!("unknown unit {other:?} (use ms, s, m or h)"))),
        };
        total += value * scale;
    }
    if !total.is_finite() || total > 1e9 {
        return Err(bad("duration too large"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Print a duration the way Docker does (`10s`, `1m30s`, `500ms`).
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let mut out = String::new();
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let frac = ms % 1000;
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || frac > 0 {
        if frac > 0 {
            let text = format!("{s}.{frac:03}");
            out.push_str(text.trim_end_matches('0'));
        } else {
            out.push_str(&s.to_string());
        }
        out.push('s');
    }
    out
}

/// Serde helpers: a `Duration` stored as integer milliseconds.
pub mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_durations() {
        let cases = [
            ("0", 0),
            ("0s", 0),
            ("500ms", 500),
            ("10s", 10_000),
            ("1m30s", 90_000),
            ("1.5s", 1_500),
            ("2h", 7_200_000),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse("delay", text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_malformed_durations() {
        for text in ["", "5", "5x", "s", "1m3", "-1s", "1..2s"] {
            assert!(parse("delay", text).is_err(), "{text} should be rejected");
        }
        let err = parse("update-delay", "5x").unwrap_err().to_string();
        assert!(err.contains("update-delay") && err.contains("5x"), "{err}");
    }

    #[test]
    fn formats_round_trip() {
        for ms in [0u64, 5, 999, 1000, 1500, 90_000, 3_723_000] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse("d", &format(d)), Ok(d), "{}", format(d));
        }
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
    }
}
