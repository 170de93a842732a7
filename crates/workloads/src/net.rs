//! Socket helpers shared by the workloads.

use std::io;
use std::time::Duration;

/// Waits a little after a failed `accept`, when the failure is not just one peer giving up.
///
/// Running out of file descriptors fails every accept until a connection closes; without the
/// pause the accept loop would spin on the CPU.
pub(crate) async fn pause_after_accept_error(err: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted, WouldBlock};
    if !matches!(
        err.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
