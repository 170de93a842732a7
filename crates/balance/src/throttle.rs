//! Lets a warning through at most once per interval, so a cap hit again and again under a
//! flood logs a line now and then, not one per connection. The caller gives the time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a cap that stays hit is logged again.
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    /// When the last warning was let through.
    last: Mutex<Option<Instant>>,
}

impl Throttle {
    pub fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            last: Mutex::new(None),
        }
    }

    /// True if a warning may go out at `now`.
    pub fn ready(&self, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| now.saturating_duration_since(t) < self.interval) {
            return false;
        }
        *last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_lets_one_warning_through_per_interval() {
        let t0 = Instant::now();
        let throttle = Throttle::new(Duration::from_secs(10));
        assert!(throttle.ready(t0));
        assert!(!throttle.ready(t0 + Duration::from_secs(9)));
        assert!(throttle.ready(t0 + Duration::from_secs(10)));
        let every_time = Throttle::new(Duration::ZERO);
        assert!(every_time.ready(t0));
        assert!(every_time.ready(t0));
    }
}
