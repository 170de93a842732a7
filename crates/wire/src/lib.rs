//! The API's wire types: what the HTTP/JSON API reads and writes, in one place for the
//! daemon that serves it and the CLI that calls it.
//!
//! [`v1`] holds the bodies (and query strings) of shoal's own `/v1` routes, a module per
//! group of routes, with the pure checks a request passes at the edge and its conversion to
//! and from the stored model. Objects the API sends as they are stored (`Node`, `Task`,
//! `ServiceSpec`, `ClientRecord`) stay in `shoal-api`. Field names and shapes here are the
//! JSON on the wire: renaming one breaks every client. Reading a request strictly (an
//! unknown field refused by its path) is `shoal_api::strict`, applied by the server.
//!
//! [`docker`] holds the swarm part of the Docker Engine API (the JSON the `docker` CLI,
//! Traefik and docker-py send and read), its `filters` parameter, and the pure conversions
//! between Docker's objects and shoal's model.
//!
//! Depends only on `shoal-api` and `shoal-balance` (pure data, no I/O); never on the manager,
//! the node or the CLI.

pub mod docker;
pub mod v1;
