//! The JWT realm's protocol work, as Elasticsearch's JWT realm does it:
//! its settings, and what a valid token's claims make of a user. Token
//! validation itself is [`crate::jose`]; the keys' I/O, the cache and the
//! HTTP side are the server's.

pub mod settings;
pub mod user;

pub use settings::{ClientAuthentication, JwtRealmConfig, JwtRealmSettings, TokenType};
pub use user::{JwtUser, METADATA_PREFIX};

#[cfg(test)]
mod tests;
