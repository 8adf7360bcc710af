//! The steps of a code-flow login that are pure functions: the
//! authorization request, the callback URL, the token endpoint's answer
//! and the end-session request.

use base64::Engine;
use rand::RngCore;
use serde_json::Value;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::error::{OidcError, Rule};
use super::settings::OidcRealmConfig;

/// A fresh `state` or `nonce`: 256 bits from the operating system's
/// random source, base64url without padding.
pub fn random_value() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The URL the browser is sent to, in Elasticsearch's parameter order:
/// `scope`, `response_type`, `redirect_uri`, `state`, `nonce`,
/// `client_id`, then `login_hint` when given.
pub fn authorization_url(
    config: &OidcRealmConfig,
    authorization_endpoint: &str,
    state: &str,
    nonce: &str,
    login_hint: Option<&str>,
) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("scope", &config.scopes.join(" "))
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", &config.redirect_uri)
        .append_pair("state", state)
        .append_pair("nonce", nonce)
        .append_pair("client_id", &config.client_id);
    if let Some(hint) = login_hint {
        query.append_pair("login_hint", hint);
    }
    append_query(authorization_endpoint, &query.finish())
}

fn append_query(base: &str, query: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{query}")
}

/// The code of a callback URL (what the provider redirected the browser
/// to), after checking that it is the realm's redirect URI, that it
/// carries the caller's `state`, that it is no error answer, and that
/// its RFC 9207 `iss`, when present, is the provider's issuer.
pub fn callback_code(
    config: &OidcRealmConfig,
    callback: &str,
    expected_state: &str,
    issuer: &str,
) -> Result<Zeroizing<String>, OidcError> {
    let url = url::Url::parse(callback)
        .map_err(|e| OidcError::new(Rule::RedirectUri, format!("not a URL: {e}")))?;
    let configured = url::Url::parse(&config.redirect_uri)
        .map_err(|e| OidcError::new(Rule::RedirectUri, format!("rp.redirect_uri: {e}")))?;
    if url.origin() != configured.origin() || url.path() != configured.path() {
        return Err(OidcError::new(
            Rule::RedirectUri,
            "the callback URL is not the realm's rp.redirect_uri",
        ));
    }
    let mut state = None;
    let mut code = None;
    let mut error = None;
    let mut description = None;
    let mut iss = None;
    // A fragment is how implicit flows answer; the code flow answers in
    // the query, but both are read so that an error is reported.
    let pairs = url
        .query_pairs()
        .chain(
            url.fragment()
                .map_or_else(Vec::new, |f| form_urlencoded::parse(f.as_bytes()).collect()),
        )
        .collect::<Vec<_>>();
    for (k, v) in pairs {
        let slot = match k.as_ref() {
            "state" => &mut state,
            "code" => &mut code,
            "error" => &mut error,
            "error_description" => &mut description,
            "iss" => &mut iss,
            _ => continue,
        };
        if slot.is_some() {
            return Err(OidcError::new(
                Rule::RedirectUri,
                format!("the callback repeats the parameter [{k}]"),
            ));
        }
        *slot = Some(v.into_owned());
    }
    if let Some(code) = error {
        return Err(OidcError::new(
            Rule::ProviderError,
            format!(
                "OpenID Connect Provider response indicates authentication failure Code=[{code}], Description=[{}]",
                description.unwrap_or_default()
            ),
        ));
    }
    let Some(state) = state else {
        return Err(OidcError::new(
            Rule::State,
            "Failed to parse OpenID Connect response: it did not contain a state",
        ));
    };
    if expected_state.is_empty() || !bool::from(state.as_bytes().ct_eq(expected_state.as_bytes())) {
        return Err(OidcError::new(Rule::State, "Invalid state parameter"));
    }
    if let Some(iss) = iss {
        if iss != issuer {
            return Err(OidcError::new(
                Rule::Issuer,
                format!("the callback's iss [{iss}] is not the provider's issuer [{issuer}]"),
            ));
        }
    }
    match code {
        Some(c) if !c.is_empty() => Ok(Zeroizing::new(c)),
        _ => Err(OidcError::new(Rule::Code, "the callback carries no code")),
    }
}

/// What the token endpoint answered. No `Debug`: tokens are never logged.
pub struct TokenResponse {
    pub access_token: Zeroizing<String>,
    pub id_token: String,
}

/// Checks a token endpoint's JSON answer: `token_type` Bearer (in any
/// case), an access token and an ID token.
pub fn token_response(body: &Value) -> Result<TokenResponse, OidcError> {
    let text = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(error) = text("error") {
        return Err(OidcError::new(
            Rule::TokenResponse,
            format!(
                "the token endpoint refused the code: error=[{error}] description=[{}]",
                text("error_description").unwrap_or("")
            ),
        ));
    }
    match text("token_type") {
        Some(t) if t.eq_ignore_ascii_case("bearer") => {}
        Some(t) => {
            return Err(OidcError::new(
                Rule::TokenResponse,
                format!("unexpected token_type [{t}]: only Bearer is accepted"),
            ))
        }
        None => {
            return Err(OidcError::new(
                Rule::TokenResponse,
                "the token response has no token_type",
            ))
        }
    }
    let access_token = text("access_token").ok_or_else(|| {
        OidcError::new(
            Rule::TokenResponse,
            "the token response has no access_token",
        )
    })?;
    let id_token = text("id_token")
        .ok_or_else(|| OidcError::new(Rule::TokenResponse, "the token response has no id_token"))?;
    Ok(TokenResponse {
        access_token: Zeroizing::new(access_token.to_owned()),
        id_token: id_token.to_owned(),
    })
}

/// The end-session request (RP-initiated logout): the ID token as
/// `id_token_hint`, the realm's `rp.post_logout_redirect_uri` and a fresh
/// `state`.
pub fn end_session_url(
    endpoint: &str,
    id_token_hint: &str,
    post_logout_redirect_uri: Option<&str>,
    state: &str,
) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("id_token_hint", id_token_hint);
    if let Some(uri) = post_logout_redirect_uri {
        query.append_pair("post_logout_redirect_uri", uri);
    }
    query.append_pair("state", state);
    append_query(endpoint, &query.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::settings::OidcRealmSettings;
    use crate::testing::oidc::configured;
    use serde_json::json;

    fn config() -> OidcRealmConfig {
        OidcRealmSettings::from_toml(&format!(
            "{}rp.requested_scopes = [\"email\", \"openid\", \"groups\"]\n",
            configured()
        ))
        .unwrap()
        .validate("oidc1")
        .unwrap()
    }

    const CB: &str = "https://dashboard.example.org/api/security/oidc/callback";

    #[test]
    fn random_values_are_256_bits_and_differ() {
        let (a, b) = (random_value(), random_value());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn the_authorization_url_has_elasticsearchs_parameters() {
        let url = authorization_url(
            &config(),
            "https://op.example.org/auth?x=1",
            "st",
            "no",
            Some("a@b"),
        );
        assert_eq!(
            url,
            "https://op.example.org/auth?x=1&scope=openid+email+groups&response_type=code&redirect_uri=https%3A%2F%2Fdashboard.example.org%2Fapi%2Fsecurity%2Foidc%2Fcallback&state=st&nonce=no&client_id=dashboard&login_hint=a%40b"
        );
    }

    #[test]
    fn callbacks() {
        let c = config();
        let iss = "https://op.example.org";
        let code = callback_code(
            &c,
            &format!("{CB}?code=abc&state=st&iss=https%3A%2F%2Fop.example.org"),
            "st",
            iss,
        )
        .unwrap();
        assert_eq!(code.as_str(), "abc");
        let cases = [
            (format!("{CB}?code=abc&state=other"), Rule::State),
            (format!("{CB}?code=abc"), Rule::State),
            (format!("{CB}?code=abc&state="), Rule::State),
            (format!("{CB}?state=st"), Rule::Code),
            (
                format!("{CB}?code=abc&state=st&iss=https%3A%2F%2Fevil.example"),
                Rule::Issuer,
            ),
            (
                format!("{CB}?error=access_denied&state=st"),
                Rule::ProviderError,
            ),
            (format!("{CB}?code=a&code=b&state=st"), Rule::RedirectUri),
            (
                "https://evil.example/api/security/oidc/callback?code=a&state=st".into(),
                Rule::RedirectUri,
            ),
            (format!("{CB}/x?code=a&state=st"), Rule::RedirectUri),
            ("not a url".into(), Rule::RedirectUri),
        ];
        for (url, rule) in cases {
            let e = callback_code(&c, &url, "st", iss)
                .err()
                .unwrap_or_else(|| panic!("{url}"));
            assert_eq!(e.rule, rule, "{url}: {e}");
        }
        let e = callback_code(
            &c,
            &format!("{CB}?error=access_denied&error_description=no&state=st"),
            "st",
            iss,
        )
        .err()
        .unwrap();
        assert_eq!(
            e.detail,
            "OpenID Connect Provider response indicates authentication failure Code=[access_denied], Description=[no]"
        );
        // The caller's state must be given.
        assert_eq!(
            callback_code(&c, &format!("{CB}?code=a&state="), "", iss)
                .err()
                .unwrap()
                .rule,
            Rule::State
        );
    }

    #[test]
    fn token_responses() {
        let ok = token_response(
            &json!({"token_type": "bearer", "access_token": "at", "id_token": "a.b.c"}),
        )
        .unwrap();
        assert_eq!(ok.id_token, "a.b.c");
        for body in [
            json!({"token_type": "mac", "access_token": "at", "id_token": "a.b.c"}),
            json!({"access_token": "at", "id_token": "a.b.c"}),
            json!({"token_type": "Bearer", "access_token": "at"}),
            json!({"token_type": "Bearer", "id_token": "a.b.c"}),
            json!({"error": "invalid_grant"}),
            json!([1]),
        ] {
            assert_eq!(
                token_response(&body).err().unwrap().rule,
                Rule::TokenResponse,
                "{body}"
            );
        }
    }

    #[test]
    fn the_end_session_url() {
        assert_eq!(
            end_session_url("https://op/logout", "a.b.c", Some("https://d/"), "s"),
            "https://op/logout?id_token_hint=a.b.c&post_logout_redirect_uri=https%3A%2F%2Fd%2F&state=s"
        );
        assert_eq!(
            end_session_url("https://op/logout?x=1", "t", None, "s"),
            "https://op/logout?x=1&id_token_hint=t&state=s"
        );
    }
}
