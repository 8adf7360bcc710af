//! The JWT realm over HTTP: `Authorization: Bearer <jwt>` signed in the
//! test with the test keys (`tessera_realms::testing::jwt`), realms from a
//! config file, the server's manual clock, and a JWKS served over HTTP by
//! the test for the URL mode.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tessera_realms::testing::jwt::{self as fx, TestKey};

use crate::support::*;

const SECRET: &str = "client-shared-secret-0123456789";
const HMAC_KEY: &str = "an-hmac-key-of-more-than-32-bytes-for-hs256";
const ISSUER2: &str = "https://machines.example.org";

/// A server with three JWT realms:
/// - `jwt1` (order 1): RS256/ES256 from `jwks.json`, shared secret,
///   groups from `roles`, subjects alice/bob/carol;
/// - `jwt2` (order 2): HS256 with an HMAC key file, issuer [`ISSUER2`],
///   no client authentication, principal from `client_id` as fallback;
/// - `jwt3` (order 3): RS256 from the test's HTTP JWKS server, issuer
///   `https://url.example.org`.
struct Jwt {
    srv: TestServer,
    dir: tempfile::TempDir,
    jwks_served: Arc<Mutex<String>>,
}

fn serve_jwks(body: Arc<Mutex<String>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let body = body.lock().unwrap().clone();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/jwks.json")
}

fn write_config(dir: &Path, jwks_url: &str) -> std::path::PathBuf {
    let k1 = TestKey::rsa(1, "k1");
    let e1 = TestKey::ec("e1");
    std::fs::write(dir.join("jwks.json"), fx::jwks(&[&k1, &e1])).unwrap();
    std::fs::write(dir.join("secret.txt"), format!("{SECRET}\n")).unwrap();
    std::fs::write(dir.join("hmac.txt"), HMAC_KEY).unwrap();
    let config = dir.join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            r#"[realms.native.default_native]
order = 0

[realms.jwt.jwt1]
order = 1
allowed_issuer = "{iss}"
allowed_audiences = ["other", "{aud}"]
allowed_subjects = ["alice", "bob", "carol"]
allowed_signature_algorithms = ["RS256", "ES256"]
pkc_jwkset_path = "jwks.json"
claims.groups = "roles"
claims.name = "name"
claims.mail = "email"
client_authentication.shared_secret_file = "secret.txt"

[realms.jwt.jwt2]
order = 2
token_type = "access_token"
allowed_issuer = "{ISSUER2}"
allowed_audiences = ["{aud}"]
allowed_signature_algorithms = ["HS256"]
hmac_key_file = "hmac.txt"
fallback_claims.sub = "client_id"
client_authentication.type = "none"

[realms.jwt.jwt3]
order = 3
allowed_issuer = "https://url.example.org"
allowed_audiences = ["{aud}"]
pkc_jwkset_path = "{jwks_url}"
client_authentication.type = "none"
"#,
            iss = fx::ISSUER,
            aud = fx::AUDIENCE,
        ),
    )
    .unwrap();
    config
}

impl Jwt {
    fn start() -> Jwt {
        let dir = tempfile::tempdir().unwrap();
        let jwks_served = Arc::new(Mutex::new(fx::jwks(&[&TestKey::rsa(1, "u1")])));
        let url = serve_jwks(Arc::clone(&jwks_served));
        let config = write_config(dir.path(), &url);
        let srv = TestServer::start_with(Options {
            config: Some(config),
            ..Options::default().manual_clock()
        });
        let r = srv
            .put("/_security/role_mapping/jwt_admins")
            .admin()
            .json(&json!({"roles": ["superuser"], "enabled": true,
                "rules": {"all": [{"field": {"realm.name": "jwt1"}},
                                  {"field": {"groups": "admins"}}]}}))
            .send();
        assert_eq!(r.status, 200, "{}", r.text);
        Jwt {
            srv,
            dir,
            jwks_served,
        }
    }

    fn now(&self) -> u64 {
        (self.srv.now() / 1000) as u64
    }

    /// Claims of the test issuer for `sub`, valid for five minutes.
    fn claims(&self, sub: &str) -> Value {
        let mut c = fx::claims(sub, self.now(), 300);
        c["roles"] = json!(["admins", "readers"]);
        c["name"] = json!("Alice Liddell");
        c["email"] = json!("alice@example.org");
        c
    }

    fn call(&self, token: &str, secret: Option<&str>) -> Resp {
        let mut req = self.srv.get(AUTHENTICATE).bearer(token);
        if let Some(s) = secret {
            req = req.header("ES-Client-Authentication", &format!("SharedSecret {s}"));
        }
        req.send()
    }

    fn assert_refused(&self, token: &str, secret: Option<&str>, case: &str) {
        let r = self.call(token, secret);
        assert_eq!(r.status, 401, "{case}: {}", r.text);
        assert_eq!(r.body["error"]["type"], "security_exception", "{case}");
        assert_eq!(
            r.body["error"]["reason"],
            "unable to authenticate with provided credentials and anonymous access is not allowed for this request",
            "{case}: the reason says nothing of what failed"
        );
    }
}

#[test]
fn a_jwt_authenticates_with_its_claims_as_metadata_and_mapped_roles() {
    let s = Jwt::start();
    let token = TestKey::rsa(1, "k1").sign(&s.claims("alice"));
    let r = s.call(&token, Some(SECRET));
    assert_eq!(r.status, 200, "{}", r.text);
    let jwt1 = json!({"name": "jwt1", "type": "jwt"});
    assert_eq!(r.body["username"], "alice");
    assert_eq!(r.body["authentication_realm"], jwt1);
    assert_eq!(r.body["lookup_realm"], jwt1);
    assert_eq!(r.body["authentication_type"], "realm");
    assert_eq!(r.body["roles"], json!(["superuser"]));
    assert_eq!(r.body["full_name"], "Alice Liddell");
    assert_eq!(r.body["email"], "alice@example.org");
    let meta = &r.body["metadata"];
    assert_eq!(meta["jwt_claim_sub"], "alice");
    assert_eq!(meta["jwt_claim_iss"], fx::ISSUER);
    assert_eq!(meta["jwt_claim_roles"], json!(["admins", "readers"]));
    assert_eq!(meta["jwt_token_type"], "id_token");
    // An EC key of the same JWKS; a user outside the mapping has no roles.
    let mut c = s.claims("bob");
    c["roles"] = json!("readers");
    let r = s.call(&TestKey::ec("e1").sign(&c), Some(SECRET));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["roles"], json!([]));
    // Changing the role mappings is seen at once, cached or not.
    let r = s
        .srv
        .delete("/_security/role_mapping/jwt_admins")
        .admin()
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s.call(&token, Some(SECRET));
    assert_eq!(r.body["roles"], json!([]), "{}", r.text);
    let metrics = s.srv.get("/_tessera/metrics").admin().send().text;
    assert!(
        metrics.contains(
            r#"tessera_realm_authentications_total{realm="jwt1",type="jwt",outcome="success"}"#
        ),
        "{metrics}"
    );
}

#[test]
fn the_negative_matrix_is_refused_with_the_same_401() {
    let s = Jwt::start();
    let k1 = TestKey::rsa(1, "k1");
    let now = s.now();
    let ok = s.claims("alice");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = ok.clone();
        f(&mut c);
        k1.sign(&c)
    };
    s.assert_refused(
        &TestKey::rsa(2, "k1").sign(&ok),
        Some(SECRET),
        "bad signature",
    );
    s.assert_refused(
        &with(&|c| c["iss"] = json!("https://evil.example.org")),
        Some(SECRET),
        "wrong issuer",
    );
    s.assert_refused(
        &with(&|c| c["aud"] = json!("someone-else")),
        Some(SECRET),
        "wrong audience",
    );
    s.assert_refused(
        &k1.sign(&fx::claims("alice", now - 400, 300)),
        Some(SECRET),
        "expired",
    );
    s.assert_refused(
        &with(&|c| c["nbf"] = json!(now + 61)),
        Some(SECRET),
        "nbf beyond skew",
    );
    s.assert_refused(
        &k1.sign(&fx::claims("alice", now + 61, 300)),
        Some(SECRET),
        "iat beyond skew",
    );
    s.assert_refused(&fx::unsigned(&ok), Some(SECRET), "alg none");
    s.assert_refused(
        &fx::sign_hs256(fx::rsa_1_public_pem().as_bytes(), &ok),
        Some(SECRET),
        "HS/RS confusion",
    );
    s.assert_refused(
        &k1.sign(&s.claims("mallory")),
        Some(SECRET),
        "subject not allowed",
    );
    s.assert_refused(&k1.sign(&ok), None, "missing shared secret");
    s.assert_refused(&k1.sign(&ok), Some("wrong-secret"), "wrong shared secret");
    // Within the skew, nbf and iat in the future are accepted.
    let r = s.call(&with(&|c| c["nbf"] = json!(now + 59)), Some(SECRET));
    assert_eq!(r.status, 200, "nbf within skew: {}", r.text);
    let r = s.call(&k1.sign(&fx::claims("alice", now + 59, 300)), Some(SECRET));
    assert_eq!(r.status, 200, "iat within skew: {}", r.text);
    // A refusal is not cached: the right secret after a wrong one works.
    let r = s.call(&k1.sign(&ok), Some(SECRET));
    assert_eq!(r.status, 200, "{}", r.text);
    let metrics = s.srv.get("/_tessera/metrics").admin().send().text;
    for outcome in [
        "bad_signature",
        "wrong_issuer",
        "expired",
        "client_authentication",
        "algorithm_not_allowed",
    ] {
        assert!(
            metrics.contains(&format!(r#"realm="jwt1",type="jwt",outcome="{outcome}""#)),
            "{outcome} in {metrics}"
        );
    }
}

#[test]
fn an_hmac_realm_takes_the_fallback_subject() {
    let s = Jwt::start();
    let now = s.now();
    let claims = json!({"iss": ISSUER2, "aud": fx::AUDIENCE, "client_id": "reporting-app",
                        "iat": now, "exp": now + 300});
    let r = s.call(&fx::sign_hs256(HMAC_KEY.as_bytes(), &claims), None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["username"], "reporting-app");
    assert_eq!(
        r.body["authentication_realm"],
        json!({"name": "jwt2", "type": "jwt"})
    );
    assert_eq!(r.body["metadata"]["jwt_token_type"], "access_token");
    s.assert_refused(
        &fx::sign_hs256(b"another-key-of-more-than-32-bytes-long!!", &claims),
        None,
        "wrong HMAC key",
    );
}

#[test]
fn a_cached_result_never_outlives_the_tokens_exp() {
    let s = Jwt::start();
    let token = TestKey::rsa(1, "k1").sign(&fx::claims("alice", s.now(), 60));
    assert_eq!(s.call(&token, Some(SECRET)).status, 200);
    assert_eq!(s.call(&token, Some(SECRET)).status, 200, "cached");
    // Past exp plus the 60 s skew, well within the cache's ttl.
    s.srv.advance(121_000);
    s.assert_refused(&token, Some(SECRET), "cached but expired");
}

#[test]
fn a_minted_token_ends_with_the_jwt() {
    let s = Jwt::start();
    let mut c = s.claims("alice");
    c["exp"] = json!(s.now() + 120);
    let token = TestKey::rsa(1, "k1").sign(&c);
    let r = s
        .srv
        .post(TOKEN)
        .bearer(&token)
        .header(
            "ES-Client-Authentication",
            &format!("SharedSecret {SECRET}"),
        )
        .json(&json!({"grant_type": "client_credentials"}))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["expires_in"].as_i64().unwrap() <= 120, "{}", r.text);
    let minted = r.body["access_token"].as_str().unwrap().to_owned();
    let r = s.srv.get(AUTHENTICATE).bearer(&minted).send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["authentication_realm"],
        json!({"name": "jwt1", "type": "jwt"})
    );
    assert_eq!(r.body["authentication_type"], "token");
    s.srv.advance(121_000);
    assert_eq!(s.srv.get(AUTHENTICATE).bearer(&minted).send().status, 401);
    // Its authority is borrowed: no API key outliving the JWT.
    let fresh = TestKey::rsa(1, "k1").sign(&s.claims("alice"));
    let r = s
        .srv
        .post("/_security/api_key")
        .bearer(&fresh)
        .header(
            "ES-Client-Authentication",
            &format!("SharedSecret {SECRET}"),
        )
        .json(&json!({"name": "k"}))
        .send();
    assert!(r.status >= 400 && r.status < 500, "{}", r.text);
}

/// A JWT's principal that bears a native user's name is not that user: it
/// may not change the native user's password as its own (Elasticsearch
/// allows that only to the native realm's own users), whichever path names
/// it, and the native password still works afterwards.
#[test]
fn a_jwt_principal_cannot_change_a_native_users_password() {
    let s = Jwt::start();
    s.srv.put_user("bob", "bobs-own-password", &["superuser"]);
    let mut c = s.claims("bob");
    c["roles"] = json!(["readers"]);
    let token = TestKey::rsa(1, "k1").sign(&c);
    assert_eq!(s.call(&token, Some(SECRET)).status, 200);
    for path in ["/_security/user/_password", "/_security/user/bob/_password"] {
        let r = s
            .srv
            .put(path)
            .bearer(&token)
            .header(
                "ES-Client-Authentication",
                &format!("SharedSecret {SECRET}"),
            )
            .json(&json!({"password": "attackers-password"}))
            .send();
        assert_eq!(r.status, 403, "{path}: {}", r.text);
        assert_eq!(r.body["error"]["type"], "security_exception", "{path}");
    }
    s.srv.assert_basic_ok("bob", "bobs-own-password");
    // The native user itself still may.
    let r = s
        .srv
        .put("/_security/user/_password")
        .basic("bob", "bobs-own-password")
        .json(&json!({"password": "bobs-new-password"}))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    s.srv.assert_basic_ok("bob", "bobs-new-password");
}

/// `manage_own_api_key` held by a JWT's principal covers its own keys
/// only: naming the owner by user name alone, it neither sees nor
/// invalidates the keys of the native user of the same name.
#[test]
fn own_api_keys_are_a_realms_own() {
    let s = Jwt::start();
    s.srv
        .put_role("own_keys", json!({"cluster": ["manage_own_api_key"]}));
    let r = s
        .srv
        .put("/_security/role_mapping/jwt_readers")
        .admin()
        .json(&json!({"roles": ["own_keys"], "enabled": true,
            "rules": {"all": [{"field": {"realm.name": "jwt1"}},
                              {"field": {"groups": "readers"}}]}}))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    s.srv.put_user("bob", "bobs-own-password", &["own_keys"]);
    let r = s
        .srv
        .post("/_security/api_key")
        .basic("bob", "bobs-own-password")
        .json(&json!({"name": "native-bobs-key"}))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let key = r.body["encoded"].as_str().unwrap().to_owned();

    let mut c = s.claims("bob");
    c["roles"] = json!(["readers"]);
    let token = TestKey::rsa(1, "k1").sign(&c);
    let as_jwt_bob = |req: tessera_testkit::http::Req| {
        req.bearer(&token)
            .header(
                "ES-Client-Authentication",
                &format!("SharedSecret {SECRET}"),
            )
            .send()
    };
    let r = as_jwt_bob(s.srv.get("/_security/api_key?username=bob"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["api_keys"], json!([]), "{}", r.text);
    let r = as_jwt_bob(
        s.srv
            .delete("/_security/api_key")
            .json(&json!({"username": "bob"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["invalidated_api_keys"], json!([]), "{}", r.text);
    let r = s
        .srv
        .get(AUTHENTICATE)
        .header("Authorization", &format!("ApiKey {key}"))
        .send();
    assert_eq!(r.status, 200, "native bob's key still works: {}", r.text);
    // Named with its realm, or with `owner`, the answer is the same.
    let r = as_jwt_bob(s.srv.get("/_security/api_key?owner=true"));
    assert_eq!(r.body["api_keys"], json!([]), "{}", r.text);
}

#[test]
fn rotated_keys_are_picked_up_from_a_file_and_from_a_url() {
    let s = Jwt::start();
    // File: an unknown kid is refused until the JWKS file holds it.
    let k2 = TestKey::rsa(2, "k2");
    let token = k2.sign(&s.claims("alice"));
    s.assert_refused(&token, Some(SECRET), "unknown kid");
    std::fs::write(
        s.dir.path().join("jwks.json"),
        fx::jwks(&[&TestKey::rsa(1, "k1"), &k2]),
    )
    .unwrap();
    let r = s.call(&token, Some(SECRET));
    assert_eq!(r.status, 200, "after rotation: {}", r.text);

    // URL: fetched on first use; a new key is fetched again when a token
    // names it, at most once a minute.
    let url_claims = |sub: &str| {
        let mut c = fx::claims(sub, s.now(), 300);
        c["iss"] = json!("https://url.example.org");
        c
    };
    let r = s.call(&TestKey::rsa(1, "u1").sign(&url_claims("alice")), None);
    assert_eq!(r.status, 200, "first fetch: {}", r.text);
    let u2 = TestKey::rsa(2, "u2");
    s.assert_refused(
        &u2.sign(&url_claims("alice")),
        None,
        "unknown kid at the URL",
    );
    *s.jwks_served.lock().unwrap() = fx::jwks(&[&TestKey::rsa(1, "u1"), &u2]);
    s.assert_refused(&u2.sign(&url_claims("bob")), None, "refetch rate-limited");
    s.srv.advance(61_000);
    let r = s.call(&u2.sign(&url_claims("carol")), None);
    assert_eq!(r.status, 200, "after the interval: {}", r.text);
}

#[test]
fn a_key_dropped_from_the_jwks_ends_the_cached_results_it_validated() {
    let s = Jwt::start();
    // File: a k1 token is validated and cached, then k1 leaves the file.
    let k1_token = TestKey::rsa(1, "k1").sign(&s.claims("alice"));
    assert_eq!(s.call(&k1_token, Some(SECRET)).status, 200);
    assert_eq!(s.call(&k1_token, Some(SECRET)).status, 200, "cached");
    std::fs::write(
        s.dir.path().join("jwks.json"),
        fx::jwks(&[&TestKey::ec("e1")]),
    )
    .unwrap();
    // Cached results look at the file at most once a second.
    assert_eq!(s.call(&k1_token, Some(SECRET)).status, 200, "cached");
    s.srv.advance(1_000);
    s.assert_refused(&k1_token, Some(SECRET), "k1 dropped from the file");

    // URL: a u1 token is validated and cached; the provider replaces u1
    // with u2, which a u2 token makes the realm fetch.
    let url_claims = |sub: &str| {
        let mut c = fx::claims(sub, s.now(), 300);
        c["iss"] = json!("https://url.example.org");
        c
    };
    let u1_token = TestKey::rsa(1, "u1").sign(&url_claims("alice"));
    assert_eq!(s.call(&u1_token, None).status, 200, "first fetch");
    assert_eq!(s.call(&u1_token, None).status, 200, "cached");
    let u2 = TestKey::rsa(2, "u2");
    *s.jwks_served.lock().unwrap() = fx::jwks(&[&u2]);
    s.srv.advance(61_000);
    let r = s.call(&u2.sign(&url_claims("bob")), None);
    assert_eq!(r.status, 200, "u2 fetched: {}", r.text);
    s.assert_refused(&u1_token, None, "u1 dropped at the URL");
}
