//! Protocol work of external realms (SAML, JWT, OpenID Connect): parse, verify and validate what an
//! identity provider sends, and build what is sent to it. A realm proves who
//! someone is; it never touches the store and never mints a token.

pub mod identity;
pub mod jose;
pub mod jwt;
pub mod oidc;
pub mod saml;
pub mod settings;

#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;
