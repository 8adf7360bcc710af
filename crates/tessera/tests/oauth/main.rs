//! Integration tests of the standard OAuth 2.0 endpoints: every test starts
//! a real Tessera node in-process (real SQLite file, real HTTP on an
//! ephemeral port). `interop` drives it with the `oauth2` crate, a widely
//! used OAuth 2.0 client; `cli` runs the `tessera client` commands.

mod support;

mod cli;
mod interop;
mod metadata;
mod register;
mod revoke_introspect;
mod scope;
mod throttle;
mod token;
