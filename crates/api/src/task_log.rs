//! Where a task's output is kept: `<logs dir>/<task id>.log`, and once it grows past its
//! size limit, the older parts `<task id>.log.1` (the newest) to `<task id>.log.N`.
//!
//! Every line in them starts with the time it was written, `2026-11-30T17:00:00.123456789Z `
//! (UTC, always nine digits of the second, then one space), so `--since` and `--timestamps`
//! need no index.
//!
//! The agent writes and deletes these files and the node serves them; both name them and
//! read the time stamps here. Naming and time stamps only; no I/O.

use std::path::{Path, PathBuf};

/// Most rotated parts a reader looks for (the agent keeps far fewer).
pub const MAX_LOG_PARTS: usize = 100;

/// The file holding part `part` of a task's output: 0 is the one being written, 1 the
/// newest rotated part, and so on.
pub fn log_path(dir: &Path, task_id: &str, part: usize) -> PathBuf {
    if part == 0 {
        dir.join(format!("{task_id}.log"))
    } else {
        dir.join(format!("{task_id}.log.{part}"))
    }
}

/// The task a log file name belongs to (`abc.log` and `abc.log.2` give `abc`), if it is one.
pub fn task_of_log_file(name: &str) -> Option<&str> {
    let (task, rest) = name.split_once(".log")?;
    let part_ok = rest.is_empty()
        || rest
            .strip_prefix('.')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    (!task.is_empty() && part_ok).then_some(task)
}

/// What a reader of task logs asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogRequest {
    /// Lines from the end of each task's log (on the first read of that task); all if none.
    pub tail: Option<usize>,
    /// Only lines stamped at or after this time (unix nanoseconds).
    pub since: Option<i64>,
    /// Keep sending output as it is written.
    pub follow: bool,
}

/// One line of a task's output, without its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub task_id: String,
    /// When the line was written (unix nanoseconds); none for a line written unstamped.
    pub time: Option<i64>,
    pub line: Vec<u8>,
}

/// Bytes of the time stamp at the start of every log line, the space after it included.
pub const STAMP_LEN: usize = 31;

const NANOS: i64 = 1_000_000_000;

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day counted from 1970-01-01: (year, month, day).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `unix_nanos` as RFC 3339 in UTC with nine digits of the second:
/// `2026-11-30T17:00:00.123456789Z`.
pub fn format_time(unix_nanos: i64) -> String {
    let secs = unix_nanos.div_euclid(NANOS);
    let nanos = unix_nanos.rem_euclid(NANOS);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Digits of `text` as a number, all of them digits.
fn digits(text: &str) -> Option<i64> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// An RFC 3339 time (`2026-11-30T17:00:00Z`, with a fraction of the second or an offset
/// such as `+01:00`), or a date and time with no zone (`2026-11-30T17:00:00`, `2026-11-30`),
/// read as UTC; unix nanoseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    let (date, rest) = text.split_once(['T', ' ']).unwrap_or((text, ""));
    let mut ymd = date.splitn(3, '-');
    let (y, mo, d) = (
        digits(ymd.next()?)?,
        digits(ymd.next()?)?,
        digits(ymd.next()?)?,
    );
    if date.len() != 10 || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut secs = days_from_civil(y, mo, d) * 86_400;
    let mut nanos = 0;
    if !rest.is_empty() {
        let zone_at = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
        let (clock, zone) = rest.split_at(zone_at);
        let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
        let mut parts = hms.splitn(3, ':');
        let (h, mi, s) = (
            digits(parts.next()?)?,
            digits(parts.next()?)?,
            digits(parts.next()?)?,
        );
        if hms.len() != 8 || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        secs += h * 3600 + mi * 60 + s;
        if !frac.is_empty() {
            if frac.len() > 9 {
                return None;
            }
            nanos = digits(frac)? * 10i64.pow(9 - frac.len() as u32);
        }
        match zone {
            "" | "Z" | "z" => {}
            _ => {
                let sign = if zone.starts_with('-') { -1 } else { 1 };
                let (zh, zm) = zone[1..].split_once(':')?;
                let (zh, zm) = (digits(zh)?, digits(zm)?);
                if zh > 23 || zm > 59 || zone.len() != 6 {
                    return None;
                }
                secs -= sign * (zh * 3600 + zm * 60);
            }
        }
    }
    secs.checked_mul(NANOS)?.checked_add(nanos)
}

/// A log line's time stamp and the output after it; a line without a stamp (written
/// before lines were stamped) has no time.
pub fn split_stamp(line: &[u8]) -> (Option<i64>, &[u8]) {
    let stamped = line.len() >= STAMP_LEN && line[STAMP_LEN - 1] == b' ';
    let time = stamped
        .then(|| std::str::from_utf8(&line[..STAMP_LEN - 1]).ok())
        .flatten()
        .filter(|t| t.ends_with('Z') && t.as_bytes().get(10) == Some(&b'T'))
        .and_then(parse_time);
    match time {
        Some(t) => (Some(t), &line[STAMP_LEN..]),
        None => (None, line),
    }
}

/// What `--since` accepts, as Docker does: a unix time in seconds with an optional fraction
/// (`1764522000.5`), an RFC 3339 time or date (see [`parse_time`]), or a duration back
/// from `now` (`10m`, `1h30m`); unix nanoseconds.
pub fn parse_since(text: &str, now_unix_nanos: i64) -> Result<i64, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "invalid --since {text:?}: expected a duration such as 10m, a time such as \
             2026-11-30T17:00:00Z, or unix seconds"
        )
    };
    if let Some(n) = parse_unix_seconds(t) {
        return Ok(n);
    }
    if let Some(n) = parse_time(t) {
        return Ok(n);
    }
    let back = crate::duration::parse("--since", t).map_err(|_| bad())?;
    let back = i64::try_from(back.as_nanos()).map_err(|_| bad())?;
    Ok(now_unix_nanos.saturating_sub(back))
}

/// `1764522000` or `1764522000.000000001` (Docker's API form of `since`): unix nanoseconds.
pub fn parse_unix_seconds(text: &str) -> Option<i64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let mut n = digits(whole)?.checked_mul(NANOS)?;
    if !frac.is_empty() {
        if frac.len() > 9 {
            return None;
        }
        n = n.checked_add(digits(frac)? * 10i64.pow(9 - frac.len() as u32))?;
    } else if text.ends_with('.') {
        return None;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_and_parse_back() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000000000Z");
        let t = 1_764_522_000_123_456_789; // 2025-11-30T17:00:00.123456789Z
        let s = format_time(t);
        assert_eq!(s, "2025-11-30T17:00:00.123456789Z");
        assert_eq!(s.len() + 1, STAMP_LEN);
        assert_eq!(parse_time(&s), Some(t));
        assert_eq!(
            parse_time("2025-11-30T18:00:00+01:00"),
            Some(1_764_522_000 * NANOS)
        );
        assert_eq!(
            parse_time("2025-11-30T17:00:00.5Z"),
            Some(1_764_522_000 * NANOS + NANOS / 2)
        );
        assert_eq!(parse_time("2025-11-30"), Some(1_764_460_800 * NANOS));
        assert_eq!(
            format_time(951_782_400 * NANOS),
            "2000-02-29T00:00:00.000000000Z"
        );
        for bad in [
            "",
            "2025-13-01",
            "2025-11-30T25:00:00Z",
            "yesterday",
            "2025-11-30T17:00Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn stamps_are_split_from_lines() {
        let line = format!("{} hello world", format_time(5));
        assert_eq!(split_stamp(line.as_bytes()), (Some(5), &b"hello world"[..]));
        assert_eq!(
            split_stamp(b"plain old line"),
            (None, &b"plain old line"[..])
        );
        let almost = b"2025-11-30T17:00:00.123456789X rest";
        assert_eq!(split_stamp(almost).0, None);
    }

    #[test]
    fn since_takes_durations_times_and_unix_seconds() {
        let now = 1_000 * NANOS;
        assert_eq!(parse_since("10s", now), Ok(990 * NANOS));
        assert_eq!(parse_since("1764522000", now), Ok(1_764_522_000 * NANOS));
        assert_eq!(parse_since("12.000000001", now), Ok(12 * NANOS + 1));
        assert_eq!(
            parse_since("2025-11-30T17:00:00Z", now),
            Ok(1_764_522_000 * NANOS)
        );
        let err = parse_since("soon", now).expect_err("refused");
        assert!(err.starts_with("invalid --since \"soon\""), "{err}");
    }

    #[test]
    fn names_and_their_tasks() {
        let dir = Path::new("/logs");
        assert_eq!(log_path(dir, "t1", 0), Path::new("/logs/t1.log"));
        assert_eq!(log_path(dir, "t1", 2), Path::new("/logs/t1.log.2"));
        assert_eq!(task_of_log_file("t1.log"), Some("t1"));
        assert_eq!(task_of_log_file("t1.log.12"), Some("t1"));
        for other in [
            "t1.log.",
            "t1.log.x",
            "t1.logs",
            ".log",
            "t1.txt",
            "daemon.lock",
        ] {
            assert_eq!(task_of_log_file(other), None, "{other}");
        }
    }
}
