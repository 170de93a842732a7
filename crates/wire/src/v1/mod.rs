//! The bodies of shoal's own API, versioned under `/v1` (docs/api.md).

pub mod clients;
pub mod cluster;
pub mod daemon;
pub mod endpoints;
pub mod logs;
pub mod membership;
pub mod nodes;
pub mod objects;
pub mod services;
pub mod tasks;

use serde::{Deserialize, Serialize};

/// `{"message": ...}`: the body of every error, and of a call that only acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub message: String,
}

impl Message {
    pub fn new(message: impl Into<String>) -> Self {
        Message {
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests;
