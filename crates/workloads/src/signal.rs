//! Waiting for the signal that ends a workload.

use std::future::Future;

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};

/// Resolves on the first SIGTERM (what the agent sends on stop) or SIGINT.
///
/// The handlers are installed before this returns, so a signal that arrives while the
/// workload is still binding its sockets is not lost (and does not kill the process).
pub(crate) fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
