//! The SAML 2.0 service provider's protocol work, as Elasticsearch's SAML
//! realm does it: settings, IdP metadata, requests and responses, XML
//! signatures and Elasticsearch's validation rules. No store, no HTTP, no
//! tokens; time is an argument.
//!
//! Layers: [`xml`] (hostile input: size limits, no DTD), [`verify`]
//! (signatures by the IdP's metadata keys only, bound to the element
//! consumed), [`response`] and [`assertion`] (the rules, pure functions of
//! the parsed message, the realm, the caller's ids and `now`).

pub mod assertion;
pub mod error;
pub mod keys;
pub mod metadata;
pub mod realm;
pub mod redirect;
pub mod requests;
pub mod response;
pub mod settings;
pub mod time;
pub mod verify;
pub mod xml;

pub use assertion::{SamlAttribute, SamlIdentity};
pub use error::{Rule, SamlError};
pub use realm::{LoadError, SamlRealm};
pub use response::{process_response, process_response_xml, Validation};
pub use settings::{SamlRealmConfig, SamlRealmSettings, SettingsError};
