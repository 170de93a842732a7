//! How many client connections the mesh holds open at once, and what one costs.

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
