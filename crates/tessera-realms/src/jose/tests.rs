//! Unit tests of the JOSE rules, with the test keys and a fixed `now`.

use serde_json::json;

use super::*;
use crate::testing::jwt::{self as fx, TestKey, AUDIENCE, ISSUER};

const NOW: u64 = 1_800_000_000;

fn policy() -> Policy {
    Policy {
        issuer: ISSUER.into(),
        audiences: vec!["other".into(), AUDIENCE.into()],
        algorithms: vec![Algorithm::RS256, Algorithm::ES256],
        skew_secs: 60,
        subjects: None,
    }
}

fn keyset(keys: &[&TestKey]) -> KeySet {
    KeySet::parse(fx::jwks(keys).as_bytes()).expect("jwks")
}

fn refused(token: &str, keys: &Keys<'_>, policy: &Policy, now: u64) -> &'static str {
    validate(token, keys, policy, now)
        .expect_err("refused")
        .label()
}

#[test]
fn a_valid_token_gives_its_claims() {
    let key = TestKey::rsa(1, "k1");
    let set = keyset(&[&key]);
    let token = key.sign(&fx::claims("alice", NOW, 300));
    let claims = validate(&token, &Keys::jwks(&set), &policy(), NOW).expect("valid");
    assert_eq!(claims["sub"], "alice");
    let ec = TestKey::ec("e1");
    let set = keyset(&[&key, &ec]);
    let token = ec.sign(&fx::claims("bob", NOW, 300));
    assert!(validate(&token, &Keys::jwks(&set), &policy(), NOW).is_ok());
}

#[test]
fn the_negative_matrix() {
    let key = TestKey::rsa(1, "k1");
    let other = TestKey::rsa(2, "k1");
    let set = keyset(&[&key]);
    let keys = Keys::jwks(&set);
    let p = policy();
    let ok = fx::claims("alice", NOW, 300);

    // Signed by another key under the same kid.
    assert_eq!(refused(&other.sign(&ok), &keys, &p, NOW), "bad_signature");
    // A kid the set does not have.
    assert_eq!(
        refused(&TestKey::rsa(1, "nope").sign(&ok), &keys, &p, NOW),
        "unknown_key"
    );
    // Tampered payload.
    let token = key.sign(&ok);
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = fx::unsigned(&fx::claims("mallory", NOW, 300));
    parts[1] = forged.split('.').nth(1).unwrap();
    assert_eq!(refused(&parts.join("."), &keys, &p, NOW), "bad_signature");

    let mut c = ok.clone();
    c["iss"] = json!("https://evil.example.org");
    assert_eq!(refused(&key.sign(&c), &keys, &p, NOW), "wrong_issuer");
    let mut c = ok.clone();
    c["aud"] = json!(["a", "b"]);
    assert_eq!(refused(&key.sign(&c), &keys, &p, NOW), "wrong_audience");
    let mut c = ok.clone();
    c["aud"] = json!(["a", AUDIENCE]);
    assert!(
        validate(&key.sign(&c), &keys, &p, NOW).is_ok(),
        "aud intersects"
    );

    // exp: valid until exp + skew, excluded.
    let token = key.sign(&fx::claims("alice", NOW - 400, 300)); // exp = NOW - 100
    assert_eq!(refused(&token, &keys, &p, NOW), "expired");
    let token = key.sign(&fx::claims("alice", NOW - 330, 300)); // exp = NOW - 30
    assert!(validate(&token, &keys, &p, NOW).is_ok(), "within skew");
    assert_eq!(refused(&token, &keys, &p, NOW + 30), "expired");

    // nbf and iat in the future: refused beyond the skew, accepted within.
    let mut c = ok.clone();
    c["nbf"] = json!(NOW + 61);
    assert_eq!(refused(&key.sign(&c), &keys, &p, NOW), "not_yet_valid");
    c["nbf"] = json!(NOW + 59);
    assert!(validate(&key.sign(&c), &keys, &p, NOW).is_ok());
    let c = fx::claims("alice", NOW + 61, 300);
    assert_eq!(refused(&key.sign(&c), &keys, &p, NOW), "issued_in_future");
    let c = fx::claims("alice", NOW + 59, 300);
    assert!(validate(&key.sign(&c), &keys, &p, NOW).is_ok());

    // Missing exp, string exp.
    let mut c = ok.clone();
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(refused(&key.sign(&c), &keys, &p, NOW), "expired");
    let mut c = ok.clone();
    c["exp"] = json!("tomorrow");
    assert_eq!(refused(&key.sign(&c), &keys, &p, NOW), "malformed");

    // alg: none, an algorithm outside the allow-list, garbage.
    assert_eq!(
        refused(&fx::unsigned(&ok), &keys, &p, NOW),
        "algorithm_not_allowed"
    );
    let mut only_es = policy();
    only_es.algorithms = vec![Algorithm::ES256];
    assert_eq!(
        refused(&key.sign(&ok), &keys, &only_es, NOW),
        "algorithm_not_allowed"
    );
    assert_eq!(refused("a.b", &keys, &p, NOW), "malformed");
    assert_eq!(refused("e30.e30.", &keys, &p, NOW), "malformed");

    // Subject allow-list.
    let mut subjects = policy();
    subjects.subjects = Some(vec!["bob".into()]);
    assert_eq!(
        refused(&key.sign(&ok), &keys, &subjects, NOW),
        "subject_not_allowed"
    );
    subjects.subjects = Some(vec!["alice".into()]);
    assert!(validate(&key.sign(&ok), &keys, &subjects, NOW).is_ok());
}

#[test]
fn hs_and_rs_never_mix() {
    let key = TestKey::rsa(1, "k1");
    let set = keyset(&[&key]);
    let ok = fx::claims("alice", NOW, 300);
    let mut p = policy();
    p.algorithms = vec![Algorithm::RS256, Algorithm::HS256];
    // HS256 signed with the RSA public key as the secret: no HMAC key is
    // configured, so HS256 has no key at all.
    let confused = fx::sign_hs256(fx::rsa_1_public_pem().as_bytes(), &ok);
    assert_eq!(
        refused(&confused, &Keys::jwks(&set), &p, NOW),
        "algorithm_not_allowed"
    );
    // Even when an HMAC key is configured, it is the only HS key.
    let hmac = HmacKey::new(b"a-secret-of-at-least-32-bytes-long!!".to_vec());
    let both = Keys {
        jwks: Some(&set),
        hmac: Some(&hmac),
    };
    assert_eq!(refused(&confused, &both, &p, NOW), "bad_signature");
    let good = fx::sign_hs256(b"a-secret-of-at-least-32-bytes-long!!", &ok);
    assert!(validate(&good, &both, &p, NOW).is_ok());
    // And an RS256 token is never checked against the HMAC key.
    assert_eq!(
        refused(&key.sign(&ok), &Keys::hmac(&hmac), &p, NOW),
        "algorithm_not_allowed"
    );
    assert_eq!(format!("{hmac:?}"), "HmacKey(<redacted>)");
}

#[test]
fn jwks_parsing_skips_what_cannot_sign() {
    let key = TestKey::rsa(1, "k1");
    let mut enc = key.jwk();
    enc["use"] = json!("enc");
    let doc = json!({"keys": [enc, {"kty": "oct", "k": "c2VjcmV0"}, key.jwk()]}).to_string();
    let set = KeySet::parse(doc.as_bytes()).expect("jwks");
    assert_eq!(set.keys().len(), 1);
    assert!(KeySet::parse(br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#).is_err());
    assert!(KeySet::parse(b"[]").is_err());
}

#[test]
fn id_tokens() {
    let key = TestKey::rsa(1, "k1");
    let set = keyset(&[&key]);
    let keys = Keys::jwks(&set);
    let algs = [Algorithm::RS256];
    let check = IdTokenCheck {
        issuer: ISSUER,
        client_id: AUDIENCE,
        algorithms: &algs,
        skew_secs: 60,
        nonce: Some("n-0S6_WzA2Mj"),
        access_token: Some("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
    };
    let mut c = fx::claims("alice", NOW, 300);
    c["nonce"] = json!("n-0S6_WzA2Mj");
    c["at_hash"] = json!(at_hash(Algorithm::RS256, check.access_token.unwrap()));
    assert!(validate_id_token(&key.sign(&c), &keys, &check, NOW).is_ok());

    let label = |c: &serde_json::Value| {
        validate_id_token(&key.sign(c), &keys, &check, NOW)
            .expect_err("refused")
            .label()
    };
    let mut bad = c.clone();
    bad["nonce"] = json!("other");
    assert_eq!(label(&bad), "wrong_nonce");
    let mut bad = c.clone();
    bad["at_hash"] = json!("AAAA");
    assert_eq!(label(&bad), "wrong_at_hash");
    let mut bad = c.clone();
    bad["aud"] = json!([AUDIENCE, "other"]);
    assert_eq!(label(&bad), "wrong_authorized_party");
    bad["azp"] = json!("other");
    assert_eq!(label(&bad), "wrong_authorized_party");
    bad["azp"] = json!(AUDIENCE);
    assert!(validate_id_token(&key.sign(&bad), &keys, &check, NOW).is_ok());
    let mut bad = c.clone();
    bad["aud"] = json!("other");
    assert_eq!(label(&bad), "wrong_audience");
    // The at_hash example of OpenID Connect Core (A.3, RS256).
    assert_eq!(
        at_hash(
            Algorithm::RS256,
            "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
        ),
        "77QmUPtjPfzWtF2AnpK9RQ"
    );
}

#[test]
fn locations() {
    assert!(matches!(
        JwksLocation::parse("/etc/jwks.json"),
        Ok(JwksLocation::File(_))
    ));
    assert!(JwksLocation::parse("https://idp.example.org/jwks").is_ok());
    assert!(JwksLocation::parse("http://127.0.0.1:8080/jwks").is_ok());
    assert!(JwksLocation::parse("http://[::1]:8080/jwks").is_ok());
    assert!(JwksLocation::parse("http://idp.example.org/jwks").is_err());
    assert!(JwksLocation::parse("http://localhost/jwks").is_err());
    assert!(JwksLocation::parse("ftp://127.0.0.1/jwks").is_err());
    assert!(looks_like_jwt("eyJh.eyJz.abc_-"));
    assert!(!looks_like_jwt("dGVzc2VyYQ=="));
    assert!(!looks_like_jwt("a.b.c.d"));
}

#[tokio::test]
async fn a_file_source_refreshes_rate_limited_and_on_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let k1 = TestKey::rsa(1, "k1");
    let k2 = TestKey::rsa(2, "k2");
    std::fs::write(&path, fx::jwks(&[&k1])).unwrap();
    let source = JwksSource::load(
        JwksLocation::File(path.clone()),
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();
    let token = k2.sign(&fx::claims("alice", NOW, 300));
    let p = policy();
    let err = validate(&token, &Keys::jwks(&source.current()), &p, NOW).unwrap_err();
    assert!(err.warrants_refresh());
    let first = source.generation();
    std::fs::write(&path, fx::jwks(&[&k1, &k2, &k2])).unwrap();
    assert!(source.refresh(NOW * 1000).await.unwrap());
    assert!(validate(&token, &Keys::jwks(&source.current()), &p, NOW).is_ok());
    // Keys added: a new generation.
    let added = source.generation();
    assert!(added > first);
    // A second refresh within the interval is not let through.
    assert!(!source.refresh(NOW * 1000 + 59_000).await.unwrap());
    // Read again, the same keys stay in their generation.
    assert!(source.refresh(NOW * 1000 + 60_000).await.unwrap());
    assert_eq!(source.generation(), added);
    // A changed file is picked up without a refresh; keys removed: a new
    // generation.
    std::fs::write(&path, fx::jwks(&[&k1])).unwrap();
    assert!(source.reload_if_changed().await.unwrap());
    assert!(!source.reload_if_changed().await.unwrap());
    assert_eq!(source.current().keys().len(), 1);
    assert!(source.generation() > added);
    // A broken file keeps the current keys.
    let removed = source.generation();
    std::fs::write(&path, "{").unwrap();
    assert!(source.reload_if_changed().await.is_err());
    assert_eq!(source.current().keys().len(), 1);
    assert_eq!(source.generation(), removed);
}
