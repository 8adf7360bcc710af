//! The `tessera` binary's library half: configuration and the server, so
//! that tests can start real nodes in-process.

pub mod admin;
pub mod audit;
pub mod clients;
pub mod config;
pub mod connections;
#[doc(hidden)]
pub mod fuzzing;
pub mod logging;
pub mod server;
pub mod tls;
