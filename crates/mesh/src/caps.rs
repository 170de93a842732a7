//! How many client connections the mesh holds open at once, and what one costs.

/// File descriptors counted per proxied connection: the client socket, the upstream socket,
/// and one pipe (two descriptors) for `splice(2)`. A direction takes a pipe only once it
/// carries bulk data, and the mesh keeps no more pipes open (in use or pooled) than its
/// connection cap: when they are all in use, a bulk direction copies through user space.
pub const FDS_PER_CONNECTION: u64 = 4;

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
