//! JOSE: the one place where a JSON Web Token is verified, for every realm
//! that accepts one (the JWT realm, the OpenID Connect realm's ID tokens).
//!
//! Layers:
//! - [`keys`]: the keys a token may be signed with. A [`KeySet`] is a parsed
//!   JWKS (public keys: RS*, PS*, ES*, EdDSA); an [`HmacKey`] is a configured
//!   shared secret (HS*). The two never mix: an HS* token is checked only
//!   against the [`HmacKey`], any other algorithm only against the
//!   [`KeySet`], so an RSA public key can never serve as an HMAC secret.
//! - [`validate`]: the rules, a pure function of the token, the keys, a
//!   [`Policy`] and `now` (seconds since the epoch, from the caller's clock):
//!   algorithm allow-list (never `none`), signature, `iss`, `aud`, `exp`,
//!   `nbf`, `iat` with skew, optional `sub` allow-list. The result is the
//!   claims as a JSON map.
//! - [`id_token`]: OpenID Connect ID token specifics on top of [`validate`]:
//!   `aud` contains the client id, `azp`, `nonce`, `at_hash`.
//! - [`source`]: the only I/O: a JWKS read from a file or fetched from a URL
//!   (`https://`, or `http://` on loopback only), held as the current
//!   [`KeySet`] and refreshed, rate-limited, when the caller asks (an unknown
//!   `kid` or a failed signature).
//!
//! Every refusal is a [`JoseError`]: a bounded, stable [`JoseErrorKind`]
//! label for metrics, and a detail for the server log only.
//!
//! The usual call sequence for a realm:
//! ```text
//! let keys = source.current();
//! match validate(token, &Keys::jwks(&keys), &policy, now) {
//!     Err(e) if e.warrants_refresh() && source.refresh(now_ms).await? => retry once,
//!     other => other,
//! }
//! ```

pub mod error;
pub mod id_token;
pub mod keys;
pub mod source;
pub mod validate;

pub use error::{JoseError, JoseErrorKind};
pub use id_token::{at_hash, validate_id_token, IdTokenCheck};
pub use keys::{HmacKey, KeySet, Keys};
pub use source::{JwksLocation, JwksSource, SourceError};
pub use validate::{looks_like_jwt, validate, Claims, Policy};

/// The JWS algorithms, re-exported so callers need no direct dependency.
pub use jsonwebtoken::Algorithm;

#[cfg(test)]
mod tests;
