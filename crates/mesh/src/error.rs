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
}

impl MeshError {
    /// The published port the error is about.
    pub fn port(&self) -> u16 {
        match self {
            MeshError::Bind { port, .. } => *port,
        }
    }
}
