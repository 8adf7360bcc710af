//! Protocol work of external realms.
pub mod saml;
