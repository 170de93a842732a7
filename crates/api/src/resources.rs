//! What a task may use (limits, enforced by its runtime) and what it needs (reservations,
//! which the scheduler sets aside on the node it places the task on), as in Docker's
//! `--limit-*` and `--reserve-*` flags. Every amount is a count where 0 means none.

use crate::SpecError;
use serde::{Deserialize, Serialize};

/// Nano CPUs in one CPU (`--limit-cpu 1.5` is 1_500_000_000).
pub const NANO_CPUS: u64 = 1_000_000_000;
/// The smallest memory limit Docker accepts for a container.
pub const MIN_MEMORY_LIMIT: u64 = 6 * 1024 * 1024;
/// Largest amount stored: Docker's API counts in signed 64-bit integers.
const MAX_AMOUNT: u64 = i64::MAX as u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "ResourceLimits::is_none")]
    pub limits: ResourceLimits,
    #[serde(default, skip_serializing_if = "ResourceReservations::is_none")]
    pub reservations: ResourceReservations,
}

/// The most a task may use; 0 is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResourceLimits {
    #[serde(default)]
    pub nano_cpus: u64,
    #[serde(default)]
    pub memory_bytes: u64,
    /// Most processes (threads included) the task may run.
    #[serde(default)]
    pub pids: u64,
}

/// What a task needs of its node; 0 is nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResourceReservations {
    #[serde(default)]
    pub nano_cpus: u64,
    #[serde(default)]
    pub memory_bytes: u64,
}

impl ResourceLimits {
    pub fn is_none(&self) -> bool {
        *self == ResourceLimits::default()
    }
}

impl ResourceReservations {
    pub fn is_none(&self) -> bool {
        *self == ResourceReservations::default()
    }
}

impl Resources {
    pub fn is_none(&self) -> bool {
        self.limits.is_none() && self.reservations.is_none()
    }

    /// Check what can be checked without the nodes (a CPU limit above every node's CPUs is
    /// the scheduler's to find).
    pub fn validate(&self) -> Result<(), SpecError> {
        let (l, r) = (&self.limits, &self.reservations);
        for (field, n, show) in [
            ("limit-cpu", l.nano_cpus, format_cpus as fn(u64) -> String),
            ("reserve-cpu", r.nano_cpus, format_cpus),
            ("limit-memory", l.memory_bytes, format_bytes),
            ("reserve-memory", r.memory_bytes, format_bytes),
            ("limit-pids", l.pids, |n: u64| n.to_string()),
        ] {
            if n > MAX_AMOUNT {
                return Err(SpecError::invalid(field, show(n), "too large"));
            }
        }
        if l.memory_bytes > 0 && l.memory_bytes < MIN_MEMORY_LIMIT {
            return Err(SpecError::invalid(
                "limit-memory",
                format_bytes(l.memory_bytes),
                format!("at least {}", format_bytes(MIN_MEMORY_LIMIT)),
            ));
        }
        if l.memory_bytes > 0 && l.memory_bytes < r.memory_bytes {
            return Err(SpecError::invalid(
                "limit-memory",
                format_bytes(l.memory_bytes),
                format!(
                    "below the memory reservation of {}",
                    format_bytes(r.memory_bytes)
                ),
            ));
        }
        if l.nano_cpus > 0 && l.nano_cpus < r.nano_cpus {
            return Err(SpecError::invalid(
                "limit-cpu",
                format_cpus(l.nano_cpus),
                format!("below the CPU reservation of {}", format_cpus(r.nano_cpus)),
            ));
        }
        Ok(())
    }
}

/// CPUs as a user writes them: `1.5`, `2`, `0.25`.
pub fn format_cpus(nano_cpus: u64) -> String {
    let whole = nano_cpus / NANO_CPUS;
    let frac = nano_cpus % NANO_CPUS;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:09}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// A byte count as Docker prints one: binary units, 4 significant digits (`512MiB`,
/// `1.944GiB`, `100B`).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let int_digits = if value < 1.0 {
        1
    } else {
        value.log10().floor() as usize + 1
    };
    let decimals = 4usize.saturating_sub(int_digits);
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS[unit])
}

/// A size as Docker reads one: `64M` → 67108864, `1.5g`, `512MiB`, `4096`: bytes, or
/// k, m, g, t (powers of 1024), upper or lower case, optionally followed by `b` or `ib`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "invalid size {text:?}: expected bytes, or a number with b, k, m, g or t (512m, 1.5g)"
        )
    };
    let t = text.trim();
    let end = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(end);
    let unit = unit.to_ascii_lowercase();
    let (letter, rest) = unit.split_at(unit.len().min(1));
    let shift = match letter {
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => 0,
    };
    let suffix = if shift == 0 { unit.as_str() } else { rest };
    let known = matches!(suffix, "" | "b") || (shift > 0 && matches!(suffix, "i" | "ib"));
    if !known {
        return Err(bad());
    }
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || (number.contains('.') && frac.is_empty()) || frac.len() > 9 {
        return Err(bad());
    }
    let whole: u128 = whole.parse().map_err(|_| bad())?;
    let frac_value: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| bad())?
    };
    let scale = 10u128.pow(frac.len() as u32);
    // Like Docker, a fraction of a byte is dropped.
    let bytes = (whole << shift) + ((frac_value << shift) / scale);
    u64::try_from(bytes).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn resources(limit_cpu: u64, limit_mem: u64, reserve_cpu: u64, reserve_mem: u64) -> Resources {
        Resources {
            limits: ResourceLimits {
                nano_cpus: limit_cpu,
                memory_bytes: limit_mem,
                pids: 0,
            },
            reservations: ResourceReservations {
                nano_cpus: reserve_cpu,
                memory_bytes: reserve_mem,
            },
        }
    }

    #[test]
    fn validation_table() {
        // (resources, the error's start, or "" when valid)
        let cases = [
            (resources(0, 0, 0, 0), ""),
            (
                resources(NANO_CPUS, 512 * MIB, NANO_CPUS / 2, 256 * MIB),
                "",
            ),
            (resources(0, 0, 4 * NANO_CPUS, 1 << 40), ""),
            (resources(0, 6 * MIB, 0, 0), ""),
            (resources(NANO_CPUS, 0, NANO_CPUS, 0), ""),
            (
                resources(0, 4 * MIB, 0, 0),
                "invalid limit-memory \"4MiB\": at least 6MiB",
            ),
            (
                resources(0, 256 * MIB, 0, 512 * MIB),
                "invalid limit-memory \"256MiB\": below the memory reservation of 512MiB",
            ),
            (
                resources(NANO_CPUS / 2, 0, NANO_CPUS, 0),
                "invalid limit-cpu \"0.5\": below the CPU reservation of 1",
            ),
            (
                resources(u64::MAX, 0, 0, 0),
                "invalid limit-cpu \"18446744073.709551615\": too large",
            ),
        ];
        for (r, want) in cases {
            match r.validate() {
                Ok(()) => assert_eq!(want, "", "{r:?} passed"),
                Err(e) => assert!(
                    !want.is_empty() && e.to_string().starts_with(want),
                    "{r:?}: {e}"
                ),
            }
        }
    }

    #[test]
    fn amounts_print_like_docker() {
        assert_eq!(format_cpus(1_500_000_000), "1.5");
        assert_eq!(format_cpus(2 * NANO_CPUS), "2");
        assert_eq!(format_cpus(250_000_000), "0.25");
        assert_eq!(format_cpus(1), "0.000000001");
        assert_eq!(format_bytes(0), "0B");
        assert_eq!(format_bytes(100), "100B");
        assert_eq!(format_bytes(512 * MIB), "512MiB");
        assert_eq!(format_bytes(1536 * MIB), "1.5GiB");
        assert_eq!(format_bytes(2_087_452_672), "1.944GiB");
        assert_eq!(format_bytes(1023), "1023B");
    }

    #[test]
    fn empty_resources_are_left_out_of_json() {
        #[derive(Serialize)]
        struct T {
            #[serde(skip_serializing_if = "Resources::is_none")]
            resources: Resources,
        }
        let json = serde_json::to_string(&T {
            resources: Resources::default(),
        })
        .expect("json");
        assert_eq!(json, "{}");
        let r: Resources =
            serde_json::from_str(r#"{"limits":{"memory_bytes":7340032}}"#).expect("json");
        assert_eq!(r.limits.memory_bytes, 7 * MIB);
    }

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2kb"), Ok(2048));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("7b"), Ok(7));
        assert_eq!(parse_size("1Ki"), Ok(1024));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        for bad in [
            "",
            "M",
            "12X",
            "12XB",
            "-1",
            "1.",
            ".5g",
            "1.2.3m",
            "12ib",
            "12mbb",
            "99999999999999999999G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
