//! `--limit-cpu`, `--limit-memory`, `--limit-pids`, `--reserve-cpu` and `--reserve-memory`,
//! shared by `service create` and `service update`: only the given ones change.

use crate::commands::daemon::parse_size;
use shoal_api::resources::NANO_CPUS;
use shoal_api::Resources;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ResourceFlags {
    /// Most CPUs each task may use, e.g. 1.5 (0: no limit)
    #[arg(long, value_name = "CPUS", value_parser = parse_cpus)]
    limit_cpu: Option<u64>,
    /// Most memory each task may use, e.g. 512M (0: no limit)
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    limit_memory: Option<u64>,
    /// Most processes each task may run (0: no limit)
    #[arg(long, value_name = "N")]
    limit_pids: Option<u64>,
    /// CPUs set aside on its node for each task, e.g. 0.5
    #[arg(long, value_name = "CPUS", value_parser = parse_cpus)]
    reserve_cpu: Option<u64>,
    /// Memory set aside on its node for each task, e.g. 256M
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    reserve_memory: Option<u64>,
}

impl ResourceFlags {
    pub fn apply(&self, r: &mut Resources) {
        let changes = [
            (self.limit_cpu, &mut r.limits.nano_cpus),
            (self.limit_memory, &mut r.limits.memory_bytes),
            (self.limit_pids, &mut r.limits.pids),
            (self.reserve_cpu, &mut r.reservations.nano_cpus),
            (self.reserve_memory, &mut r.reservations.memory_bytes),
        ];
        for (given, field) in changes {
            if let Some(v) = given {
                *field = v;
            }
        }
    }
}

/// CPUs as Docker reads them (`1.5`, `2`, `0.25`), in nano CPUs.
pub fn parse_cpus(text: &str) -> Result<u64, String> {
    let bad = || format!("invalid CPU count {text:?}: expected a number such as 1.5");
    let (whole, frac) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || text.trim().ends_with('.') {
        return Err(bad());
    }
    if frac.len() > 9 {
        return Err(format!(
            "invalid CPU count {text:?}: too precise (at most 9 decimals)"
        ));
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let frac: u64 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(NANO_CPUS)
        .and_then(|n| n.checked_add(frac))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_parse_like_docker() {
        assert_eq!(parse_cpus("1.5"), Ok(1_500_000_000));
        assert_eq!(parse_cpus("2"), Ok(2 * NANO_CPUS));
        assert_eq!(parse_cpus("0.25"), Ok(250_000_000));
        assert_eq!(parse_cpus("0.000000001"), Ok(1));
        assert_eq!(parse_cpus("0"), Ok(0));
        for bad in ["", "x", "-1", "1.", ".5", "1.5.2", "1e3", "99999999999"] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
        let err = parse_cpus("0.0000000001").expect_err("too precise");
        assert!(err.contains("too precise"), "{err}");
    }

    #[test]
    fn only_given_flags_change() {
        let mut r = Resources::default();
        r.limits.pids = 100;
        r.reservations.memory_bytes = 1 << 30;
        ResourceFlags {
            limit_cpu: Some(NANO_CPUS),
            reserve_memory: Some(0),
            ..ResourceFlags::default()
        }
        .apply(&mut r);
        assert_eq!(r.limits.nano_cpus, NANO_CPUS);
        assert_eq!(r.limits.pids, 100);
        assert_eq!(r.reservations.memory_bytes, 0);
    }
}
