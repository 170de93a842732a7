//! How many client connections the mesh holds open at once, and what one costs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// File descriptors one proxied connection can hold: the client socket, the upstream
/// socket, and a pipe (two descriptors) per direction for `splice(2)`. Idle pooled pipes
/// fit in the same count: the pool only keeps pipes that connections held at one time.
pub const FDS_PER_CONNECTION: u64 = 6;

/// Caps on open client connections. At a cap the listener stops accepting: new clients
/// wait in the kernel's listen queue until a connection ends, instead of being accepted and
/// failed for want of file descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCaps {
    /// Over all published ports together.
    pub total: usize,
    /// On any one published port, so one flooded port leaves room for the others.
    pub per_port: usize,
}

impl ConnectionCaps {
    /// No cap beyond what the process's file descriptors allow. The daemon always sets
    /// caps from its file-descriptor budget; this is for embedding the mesh in tests.
    pub const UNCAPPED: ConnectionCaps = ConnectionCaps {
        total: tokio::sync::Semaphore::MAX_PERMITS,
        per_port: tokio::sync::Semaphore::MAX_PERMITS,
    };
}

/// Lets a warning through at most once per interval, so a cap hit again and again under a
/// flood logs a line now and then, not one per connection.
#[derive(Debug)]
pub(crate) struct Throttle {
    start: Instant,
    interval: Duration,
    /// Milliseconds after `start` of the last warning let through, plus one (0: never).
    last: AtomicU64,
}

/// How often a cap that stays hit is logged again.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(10);

impl Throttle {
    pub(crate) fn new(interval: Duration) -> Throttle {
        Throttle {
            start: Instant::now(),
            interval,
            last: AtomicU64::new(0),
        }
    }

    /// True if a warning may go out now.
    pub(crate) fn ready(&self) -> bool {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
        let last = self.last.load(Ordering::Relaxed);
        let interval = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX);
        if last != 0 && now.saturating_sub(last) < interval {
            return false;
        }
        self.last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_lets_one_warning_through_per_interval() {
        let throttle = Throttle::new(Duration::from_secs(3600));
        assert!(throttle.ready());
        assert!(!throttle.ready());
        assert!(!throttle.ready());
        let every_time = Throttle::new(Duration::ZERO);
        assert!(every_time.ready());
        assert!(every_time.ready());
    }
}
