//! OpenID Connect test fixtures (feature `testing`): the claims of an ID
//! token. Tokens are signed with the JWT fixtures' keys ([`super::jwt`]).

use serde_json::{json, Value};

/// The claims of a valid ID token for `issuer`/`client_id`, issued at
/// `now_s` (seconds) and valid five minutes, for `nonce`.
pub fn claims(issuer: &str, client_id: &str, nonce: &str, now_s: i64) -> Value {
    json!({
        "iss": issuer, "sub": "alice", "aud": client_id, "nonce": nonce,
        "iat": now_s, "exp": now_s + 300, "email": "alice@example.org",
    })
}
