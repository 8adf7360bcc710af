//! OpenID Connect test fixtures (feature `testing`): the claims of an ID
//! token. Tokens are signed with the JWT fixtures' keys ([`super::jwt`]).

use serde_json::{json, Value};

/// What every OpenID Connect realm of the tests sets (the body of a
/// `[realms.oidc.<name>]` table, to which a test adds): order 3, the
/// provider `issuer`, the client `client_id` and its `redirect_uri`, the
/// authorization code flow, and the principal from `sub`. The endpoints
/// not added are discovered.
pub fn settings(issuer: &str, client_id: &str, redirect_uri: &str) -> String {
    format!(
        r#"order = 3
op.issuer = "{issuer}"
rp.client_id = "{client_id}"
rp.redirect_uri = "{redirect_uri}"
rp.response_type = "code"
claims.principal = "sub"
"#
    )
}

/// The settings that name the endpoints of the provider `issuer`
/// (authorization and token, under it) and its keys (`jwks.json`), so that
/// nothing is discovered.
pub fn endpoints(issuer: &str) -> String {
    format!(
        r#"op.authorization_endpoint = "{issuer}/auth"
op.token_endpoint = "{issuer}/token"
op.jwkset_path = "jwks.json"
"#
    )
}

/// [`settings`] for the client `dashboard` of `https://op.example.org`,
/// with its [`endpoints`].
pub fn configured() -> String {
    let issuer = "https://op.example.org";
    let redirect_uri = "https://dashboard.example.org/api/security/oidc/callback";
    settings(issuer, "dashboard", redirect_uri) + &endpoints(issuer)
}

/// The claims of a valid ID token for `issuer`/`client_id`, issued at
/// `now_s` (seconds) and valid five minutes, for `nonce`.
pub fn claims(issuer: &str, client_id: &str, nonce: &str, now_s: i64) -> Value {
    json!({
        "iss": issuer, "sub": "alice", "aud": client_id, "nonce": nonce,
        "iat": now_s, "exp": now_s + 300, "email": "alice@example.org",
    })
}
