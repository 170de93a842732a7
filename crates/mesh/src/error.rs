//! Errors the mesh reports to its caller.

/// Something the mesh could not do for one published port; the other ports keep routing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    /// The published port could not be listened on (in use, no permission, ...).
    #[error("cannot listen on published port {port}: {source}")]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    /// The published UDP port could not be bound.
    #[error("cannot receive on published udp port {port}: {source}")]
    BindUdp {
        port: u16,
        #[source]
        source: std::io::Error,
    },
}

impl MeshError {
    /// The published port the error is about.
    pub fn port(&self) -> u16 {
        match self {
            MeshError::Bind { port, .. } | MeshError::BindUdp { port, .. } => *port,
        }
    }
}

/// Why one client connection could not be served to its end.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Upstream: no endpoint of the port accepted a connection. Nothing reached a task,
    /// so the client may safely try again.
    #[error("no endpoint reachable ({tried} tried)")]
    NoEndpoint { tried: usize },
    /// Proxying failed once connected (on either side: the copy does not tell which):
    /// bytes may have reached the task, so a retry is not safe to make for the client.
    #[error("proxying failed: {0}")]
    Proxy(#[source] std::io::Error),
    /// The endpoint took the connection but not the PROXY header ahead of it: none of the
    /// client's bytes were sent.
    #[error("sending the PROXY header failed: {0}")]
    ProxyHeader(#[source] std::io::Error),
}

impl ConnectionError {
    /// Whether the request may be sent again, elsewhere, without the task seeing it twice.
    pub fn retry_safe(&self) -> bool {
        matches!(
            self,
            ConnectionError::NoEndpoint { .. } | ConnectionError::ProxyHeader(_)
        )
    }
}
