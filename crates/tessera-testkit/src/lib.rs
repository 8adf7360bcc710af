//! What the integration tests share, so that each harness exists once:
//!
//! - [`server`]: a real Tessera node in-process on `127.0.0.1:0` with a
//!   fresh SQLite data directory and, on request, a manual clock;
//!   [`http`]: blocking requests to it and complete responses; [`es`] and
//!   [`oauth`]: conveniences and assertions for the Elasticsearch security
//!   API and the standard OAuth 2.0 endpoints.
//! - [`process`]: a real `tessera` process, its address read from the line
//!   it logs once bound; [`ports`]: addresses without bind-and-release.
//! - [`threads`]: joining threads that race each other.
//! - [`proxy`]: the chaos proxy that cuts or stalls TCP on demand.
//! - [`postgres`]: the PostgreSQL server under test and a database or
//!   schema of its own per test; [`trials`]: the harness that reports tests
//!   needing PostgreSQL as ignored when it cannot be reached (and fails
//!   them under CI).
//!
//! The default feature `server` brings everything that drives Tessera
//! itself; the store crates use the rest without it.

#[cfg(feature = "server")]
pub mod es;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod oauth;
pub mod ports;
pub mod postgres;
#[cfg(feature = "server")]
pub mod process;
pub mod proxy;
#[cfg(feature = "server")]
pub mod server;
pub mod threads;
pub mod trials;
