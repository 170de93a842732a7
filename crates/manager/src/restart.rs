//! Restart back-off (pure): how long a slot waits before replacing a task that ended on its
//! own.
//!
//! A task that exits at once under restart condition `any` (or keeps failing) would otherwise
//! be replaced as fast as the configured delay allows: with `--restart-delay 0s` that is a
//! fork and a store write per task, a hundred times a second. So the delay has a floor, and
//! every quick exit in a row doubles it, up to a cap; a task that ran long enough resets it.

use std::time::Duration;

/// Shortest delay between a task's end and its replacement, whatever the restart policy says.
pub const RESTART_DELAY_FLOOR: Duration = Duration::from_millis(100);
/// Longest the back-off grows to (a configured delay above it is kept as it is).
pub const RESTART_BACKOFF_CAP: Duration = Duration::from_secs(60);
/// A task that ran at least this long ends the streak of quick exits.
pub const RESTART_BACKOFF_RESET: Duration = Duration::from_secs(10);

/// The slot's quick exits in a row once a task that ran `ran_for` has ended, given the quick
/// exits in a row before it (`before`).
pub fn quick_exits(before: u32, ran_for: Duration) -> u32 {
    if ran_for >= RESTART_BACKOFF_RESET {
        0
    } else {
        before.saturating_add(1)
    }
}

/// The delay before replacing a task: the configured delay (at least the floor), doubled for
/// each quick exit in a row after the first, at most the cap or the configured delay, if
/// larger.
pub fn restart_delay(configured: Duration, quick_exits: u32) -> Duration {
    let base = configured.max(RESTART_DELAY_FLOOR);
    let ceiling = RESTART_BACKOFF_CAP.max(base);
    let doublings = quick_exits.saturating_sub(1).min(31);
    base.saturating_mul(1u32 << doublings).min(ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn zero_restart_delay_backs_off() {
        // (configured delay, quick exits in a row, delay)
        let cases = [
            (MS(0), 0, MS(100)),
            (MS(0), 1, MS(100)),
            (MS(0), 2, MS(200)),
            (MS(0), 3, MS(400)),
            (MS(0), 10, MS(51_200)),
            (MS(0), 11, MS(60_000)),
            (MS(0), u32::MAX, MS(60_000)),
            (MS(50), 1, MS(100)),
            (MS(5_000), 0, MS(5_000)),
            (MS(5_000), 1, MS(5_000)),
            (MS(5_000), 2, MS(10_000)),
            (MS(5_000), 5, MS(60_000)),
            (MS(120_000), 1, MS(120_000)),
            (MS(120_000), 9, MS(120_000)),
        ];
        for (configured, streak, want) in cases {
            assert_eq!(
                restart_delay(configured, streak),
                want,
                "delay {configured:?} after {streak} quick exits"
            );
        }
    }

    #[test]
    fn a_task_that_ran_long_enough_resets_the_streak() {
        // (quick exits before, ran for, quick exits after)
        let cases = [
            (0, MS(5), 1),
            (4, MS(9_999), 5),
            (4, MS(10_000), 0),
            (0, MS(3_600_000), 0),
            (u32::MAX, MS(0), u32::MAX),
        ];
        for (before, ran_for, want) in cases {
            assert_eq!(
                quick_exits(before, ran_for),
                want,
                "{before} then {ran_for:?}"
            );
        }
    }
}
