//! The OpenID Connect relying party's protocol work (authorization code
//! flow), as Elasticsearch's OIDC realm does it: settings, the
//! authorization request, the callback, the token and userinfo answers,
//! claims, discovery documents and the end-session request. No store, no
//! HTTP client, no clock: the back channel lives in the server, time is
//! an argument.

pub mod claims;
pub mod error;
pub mod flow;
pub mod provider;
pub mod settings;

pub use error::{OidcError, Rule};
pub use provider::{Discovered, ProviderEndpoints};
pub use settings::{ClientSecret, OidcRealmConfig, OidcRealmSettings};
