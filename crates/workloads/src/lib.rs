//! Built-in demo workloads that the `shoal` binary exposes as `shoal whoami` and `shoal echo`.
//!
//! They run as the tasks of demo and test services: the agent launches them with `PORT` and
//! the `SHOAL_TASK_*` / `SHOAL_SERVICE_NAME` / `SHOAL_NODE_*` environment variables, and they
//! report who answered a request, so tests and benchmarks can see the load balancing at work.
//!
//! - [`run_whoami`]: an HTTP/1.1 server in the style of traefik/whoami, with a switchable
//!   health endpoint, slow replies and bulk data for throughput benchmarks.
//! - [`run_echo`]: TCP and UDP echo on the same port number.
//!
//! Of the shoal crates it depends only on `shoal-proxy-header` (whoami reads the PROXY
//! header the routing mesh may send); only the CLI uses it.

mod body;
mod echo;
mod env;
mod net;
mod proxied;
mod signal;
#[cfg(test)]
mod testing;
mod whoami;

pub use echo::{run_echo, serve_echo, EchoOptions};
pub use env::{port_from_env, TaskEnv};
pub use whoami::{run_whoami, serve_whoami, WhoamiOptions, HEALTH_FILE_VAR};
