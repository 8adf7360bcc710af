//! Tessera's domain: what a token, a user, a role and a refresh *are*, and the
//! rules that govern them. This crate performs no I/O: it never touches a
//! socket, a file or a clock. Callers pass the current time in; the only
//! outside resource it reads is the operating system's random number
//! generator, for minting secrets.

pub mod api_key;
pub mod authn;
pub mod crypto;
pub mod oauth;
pub mod privilege;
pub mod query;
pub mod refresh;
pub mod role_mapping;
pub mod run_as;
pub mod service_account;
pub mod throttle;
pub mod time;
pub mod token;
pub mod user;

pub use authn::{Authentication, AuthenticationType, ClientRef, RealmRef};
pub use time::Millis;
pub use token::{TokenKey, TokenKind, TokenRecord};
