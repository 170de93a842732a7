//! Room on the disk that holds the state. A write is refused while less than a minimum is
//! free, so the disk never fills half-way through one (the Raft log holding an entry the state
//! never got). A write that finds the disk full anyway (another program filled it, or a
//! follower's disk is smaller) waits for room and retries instead of failing, so the replica
//! carries on without a restart once space returns.

use std::fmt::Display;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Free space kept on the data dir's file system by default (`--min-free-disk`).
pub const DEFAULT_MIN_FREE: u64 = 64 << 20;

/// How often a write held up by a full disk is retried.
const RETRY: Duration = Duration::from_secs(1);

/// Set while a write of this process waits for room on a full disk.
static WAITING: AtomicBool = AtomicBool::new(false);

/// Bytes an unprivileged writer may still use on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(dir)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Whether `e` says the disk (or the quota) is full.
pub fn is_full(e: &impl Display) -> bool {
    let s = e.to_string();
    s.contains("No space left on device")
        || s.contains("os error 28")
        || s.contains("Disk quota exceeded")
        || s.contains("os error 122")
}

/// Whether a write is waiting for room right now.
pub fn waiting() -> bool {
    WAITING.load(Ordering::SeqCst)
}

/// Run `write` until it succeeds or fails for another reason than a full disk, waiting
/// [`RETRY`] between tries. A failed write must have written nothing (a redb transaction).
pub async fn retry_while_full<T, E: Display>(
    what: &str,
    mut write: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let mut logged = false;
    loop {
        match write() {
            Err(e) if is_full(&e) => {
                if !logged {
                    tracing::error!(what, error = %e, "disk full: waiting for room to write");
                    logged = true;
                }
                WAITING.store(true, Ordering::SeqCst);
                tokio::time::sleep(RETRY).await;
            }
            r => {
                if logged {
                    WAITING.store(false, Ordering::SeqCst);
                    tracing::info!(what, "room on the disk again: write done");
                }
                return r;
            }
        }
    }
}

/// In MiB with one decimal, for messages.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disk_errors_are_recognised() {
        let e = std::io::Error::from_raw_os_error(28);
        assert!(is_full(&e));
        assert!(is_full(&format!(
            "state store write failed: I/O error: {e}"
        )));
        assert!(!is_full(&std::io::Error::from_raw_os_error(5)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_finds_the_disk_full_waits_and_retries() {
        let mut tries = 0;
        let r = retry_while_full("test", || {
            tries += 1;
            if tries < 3 {
                Err(std::io::Error::from_raw_os_error(28))
            } else {
                Ok(tries)
            }
        })
        .await;
        assert_eq!(r.ok(), Some(3));
        assert!(!waiting());
        let other: Result<(), _> =
            retry_while_full("test", || Err(std::io::Error::from_raw_os_error(5))).await;
        assert!(other.is_err());
    }
}
