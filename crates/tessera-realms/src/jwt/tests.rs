//! The JWT realm's settings and the user its claims make.

use serde_json::json;

use super::*;
use crate::jose::{Algorithm, JwksLocation};

fn settings(toml: &str) -> JwtRealmSettings {
    toml::from_str(toml).expect("settings")
}

const BASE: &str = "order = 1\nallowed_issuer = \"https://issuer.example.org\"\nallowed_audiences = [\"tessera\"]\npkc_jwkset_path = \"https://idp.example.org/jwks\"\n";

#[test]
fn defaults_are_elasticsearchs() {
    let c = settings(BASE).validate("jwt1").unwrap();
    assert_eq!(c.token_type, TokenType::IdToken);
    assert_eq!(c.algorithms, vec![Algorithm::RS256]);
    assert_eq!(c.principal_claim, "sub");
    assert_eq!(c.allowed_clock_skew.as_secs(), 60);
    assert_eq!(c.client_authentication, ClientAuthentication::SharedSecret);
    assert!(matches!(c.jwkset, Some(JwksLocation::Url(_))));
    assert_eq!(
        c.shared_secret_env(),
        "TESSERA_REALMS_JWT_JWT1_CLIENT_AUTHENTICATION_SHARED_SECRET"
    );
    assert_eq!(
        settings(BASE).validate("my-realm").unwrap().hmac_key_env(),
        "TESSERA_REALMS_JWT_MY_REALM_HMAC_KEY"
    );
}

#[test]
fn bad_settings_name_their_key() {
    let cases = [
        (
            format!("{BASE}token_type = \"refresh_token\"\n"),
            "token_type",
        ),
        (BASE.replace("order = 1\n", ""), "order"),
        (
            BASE.replace("pkc_jwkset_path = \"https://idp.example.org/jwks\"\n", ""),
            "pkc_jwkset_path",
        ),
        (
            format!("{BASE}allowed_signature_algorithms = [\"HS256\"]\n"),
            "pkc_jwkset_path",
        ),
        (
            format!("{BASE}allowed_clock_skew = \"2h\"\n"),
            "allowed_clock_skew",
        ),
        (
            format!("{BASE}client_authentication.type = \"mtls\"\n"),
            "client_authentication.type",
        ),
        (
            format!("{BASE}claims.principal = \"\"\n"),
            "claims.principal",
        ),
    ];
    for (toml, key) in cases {
        let e = settings(&toml).validate("jwt1").unwrap_err();
        assert_eq!(e.key, key, "{toml}: {e}");
    }
}

#[test]
fn the_user_of_claims() {
    let mut c = settings(&format!(
        "{BASE}claims.groups = \"roles\"\nclaims.mail = \"email\"\nfallback_claims.sub = \"client_id\"\n"
    ))
    .validate("jwt1")
    .unwrap();
    let claims = json!({"sub": "alice", "roles": "admins", "email": "a@example.org",
                        "exp": 1_800_000_000u64, "nested": {"x": 1}, "flags": [true, 1, "x"]});
    let user = JwtUser::from_claims(&c, claims.as_object().unwrap()).unwrap();
    assert_eq!(user.identity.principal, "alice");
    assert_eq!(user.identity.groups, vec!["admins"]);
    assert_eq!(user.identity.mail.as_deref(), Some("a@example.org"));
    assert_eq!(user.exp, 1_800_000_000);
    assert_eq!(user.identity.metadata["jwt_claim_sub"], "alice");
    assert_eq!(
        user.identity.metadata["jwt_claim_flags"],
        json!([true, 1, "x"])
    );
    assert_eq!(user.identity.metadata["jwt_token_type"], "id_token");
    assert!(!user.identity.metadata.contains_key("jwt_claim_nested"));
    // No sub: the fallback claim; neither: no user.
    let claims = json!({"client_id": "app", "exp": 1});
    let user = JwtUser::from_claims(&c, claims.as_object().unwrap()).unwrap();
    assert_eq!(user.identity.principal, "app");
    c.fallback_sub = None;
    assert!(JwtUser::from_claims(&c, claims.as_object().unwrap()).is_err());
}
