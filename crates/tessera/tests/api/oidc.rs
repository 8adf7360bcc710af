//! The OpenID Connect realm over HTTP against a tiny provider stub (axum
//! on 127.0.0.1:0 serving the token and userinfo endpoints; the JWKS is a
//! file), for what a real provider cannot be made to send: ID tokens
//! signed in the test with wrong claims, foreign keys or `alg: none`, a
//! userinfo of another subject, odd token answers, and one ID token
//! handed out twice. The server runs in-process with a manual clock.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::routing::{get, post};
use axum::Json;
use serde_json::{json, Value};
use tessera_realms::testing::jwt::{self, TestKey};
use tessera_realms::testing::oidc as fx;

use crate::support::*;

const CLIENT_ID: &str = "tessera-dashboard";
const CB: &str = "https://dashboard.example.org/api/security/oidc/callback";
const NONCE: &str = "the-nonce-the-dashboard-kept";
const STATE: &str = "the-state-the-dashboard-kept";

/// What the stub answers, set by the test.
#[derive(Default)]
struct Answers {
    token: Value,
    userinfo: Value,
    /// `Authorization` headers the token endpoint received.
    token_auth: Vec<String>,
}

type Shared = Arc<Mutex<Answers>>;

/// The provider stub on its own runtime, on a free port.
fn start_stub(answers: Shared) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (t, u) = (Arc::clone(&answers), Arc::clone(&answers));
            let app = axum::Router::new()
                .route(
                    "/token",
                    post(move |headers: axum::http::HeaderMap| {
                        let t = Arc::clone(&t);
                        async move {
                            let mut a = t.lock().unwrap();
                            let auth = headers
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned();
                            a.token_auth.push(auth);
                            Json(a.token.clone())
                        }
                    }),
                )
                .route(
                    "/me",
                    get(move || {
                        let u = Arc::clone(&u);
                        async move { Json(u.lock().unwrap().userinfo.clone()) }
                    }),
                );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

struct Stub {
    srv: TestServer,
    answers: Shared,
    issuer: String,
    dir: tempfile::TempDir,
}

/// The provider's signing key, published in its JWKS file.
fn key1() -> TestKey {
    TestKey::rsa(1, "k1")
}

impl Stub {
    fn start() -> Stub {
        let answers: Shared = Arc::default();
        let addr = start_stub(Arc::clone(&answers));
        let issuer = format!("http://{addr}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jwks.json"), jwt::jwks(&[&key1()])).unwrap();
        std::fs::write(dir.path().join("secret.txt"), "stub-secret\n").unwrap();
        let config = dir.path().join("tessera.toml");
        std::fs::write(
            &config,
            format!(
                r#"[realms.oidc.oidc1]
{}{}op.userinfo_endpoint = "{issuer}/me"
rp.client_secret_file = "secret.txt"
claims.mail = "email"
claims.groups = "groups"
"#,
                fx::settings(&issuer, CLIENT_ID, CB),
                fx::endpoints(&issuer),
            ),
        )
        .unwrap();
        let srv = TestServer::start_with(Options {
            config: Some(config),
            ..Options::default().manual_clock()
        });
        srv.put_user(DASHBOARD, DASHBOARD_PW, &["kibana_system"]);
        let stub = Stub {
            srv,
            answers,
            issuer,
            dir,
        };
        let claims = stub.claims();
        stub.answer(
            &key1().sign(&claims),
            json!({"sub": "alice", "groups": ["staff"]}),
        );
        stub
    }

    fn now_s(&self) -> i64 {
        self.srv.now() / 1000
    }

    fn claims(&self) -> Value {
        fx::claims(&self.issuer, CLIENT_ID, NONCE, self.now_s())
    }

    fn answer(&self, id_token: &str, userinfo: Value) {
        let mut a = self.answers.lock().unwrap();
        a.token = json!({"token_type": "Bearer", "access_token": "op-access", "id_token": id_token, "expires_in": 60});
        a.userinfo = userinfo;
    }

    fn authenticate(&self, code: &str) -> Resp {
        self.srv
            .post("/_security/oidc/authenticate")
            .basic(DASHBOARD, DASHBOARD_PW)
            .json(
                &json!({"redirect_uri": format!("{CB}?code={code}&state={STATE}"),
                "state": STATE, "nonce": NONCE, "realm": "oidc1"}),
            )
            .send()
    }

    fn tokens_stored(&self) -> i64 {
        count_tokens(&open_db_read_only(&self.srv.db_path()))
    }

    /// Until when the store keeps the one-time proofs of realm `oidc1`.
    fn proofs_kept_until(&self) -> Vec<i64> {
        let db = open_db_read_only(&self.srv.db_path());
        let mut stmt = db
            .prepare("SELECT keep_until FROM one_time_proofs WHERE realm = 'oidc1'")
            .unwrap();
        let kept = stmt.query_map([], |r| r.get(0)).unwrap();
        kept.collect::<Result<_, _>>().unwrap()
    }
}

/// The realm's `allowed_clock_skew` (the default), in milliseconds.
const SKEW_MS: i64 = 60_000;

fn assert_refused(r: &Resp) {
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(
        r.body["error"]["reason"],
        "unable to authenticate user [<OIDC Token>] for action [cluster:admin/xpack/security/oidc/authenticate]",
        "{}",
        r.text
    );
}

#[test]
fn a_login_through_the_stub_mints_once_per_id_token() {
    let s = Stub::start();
    let r = s.authenticate("code-1");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["username"], "alice");
    assert_eq!(
        r.body["authentication"]["authentication_realm"],
        json!({"name": "oidc1", "type": "oidc"})
    );
    assert_eq!(r.body["authentication"]["email"], "alice@example.org");
    assert_eq!(
        r.body["authentication"]["metadata"]["oidc(groups)"],
        json!(["staff"])
    );
    // client_secret_basic with the secret from the file.
    let auth = s.answers.lock().unwrap().token_auth[0].clone();
    assert_eq!(
        auth,
        tessera_testkit::http::basic_header(CLIENT_ID, "stub-secret")
    );
    let stored = s.tokens_stored();
    // The ID token's proof is kept until its exp (plus the skew).
    let exp_ms = s.claims()["exp"].as_i64().unwrap() * 1000;
    assert_eq!(s.proofs_kept_until(), [exp_ms + SKEW_MS]);
    // The same ID token again (another code, the same callback): refused,
    // nothing stored.
    assert_refused(&s.authenticate("code-2"));
    assert_refused(&s.authenticate("code-1"));
    assert_eq!(s.tokens_stored(), stored);
    let metrics = s.srv.get("/_tessera/metrics").admin().send().text;
    for result in ["success", "replayed"] {
        let line = format!("tessera_oidc_logins_total{{realm=\"oidc1\",result=\"{result}\"}}");
        assert!(metrics.contains(&line), "no {line} in\n{metrics}");
    }
}

#[test]
fn a_fractional_exp_keeps_the_proof_until_that_expiry() {
    let s = Stub::start();
    // A NumericDate may have a fraction; validation reads it in whole
    // seconds, and so must the proof's keep time.
    let exp_s = s.now_s() + 3600;
    let mut claims = s.claims();
    claims["exp"] = json!(exp_s as f64 + 0.5);
    s.answer(&key1().sign(&claims), json!({"sub": "alice"}));
    let r = s.authenticate("code-1");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.proofs_kept_until(), [exp_s * 1000 + SKEW_MS]);
    // Long past the skew but before exp, the same ID token is still refused.
    s.srv.advance(30 * 60_000);
    assert_refused(&s.authenticate("code-2"));
}

#[test]
fn refused_logins_get_one_401_store_nothing_and_are_counted_by_rule() {
    let s = Stub::start();
    let base = s.claims();
    let with = |patch: Value| {
        let mut c = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let now = s.now_s();
    let info = json!({"sub": "alice"});
    let sign = |c: &Value| key1().sign(c);
    let cases: Vec<(&str, String, Value, &str)> = vec![
        (
            "nonce",
            sign(&with(json!({"nonce": "another"}))),
            info.clone(),
            "nonce",
        ),
        (
            "issuer",
            sign(&with(json!({"iss": "https://evil.example"}))),
            info.clone(),
            "id_token",
        ),
        (
            "audience",
            sign(&with(json!({"aud": "someone-else"}))),
            info.clone(),
            "id_token",
        ),
        (
            "azp of another client",
            sign(&with(json!({"aud": [CLIENT_ID, "x"], "azp": "x"}))),
            info.clone(),
            "id_token",
        ),
        (
            "expired",
            sign(&with(json!({"iat": now - 600, "exp": now - 61}))),
            info.clone(),
            "id_token",
        ),
        (
            "issued in the future",
            sign(&with(json!({"iat": now + 120, "exp": now + 400}))),
            info.clone(),
            "id_token",
        ),
        (
            "wrong at_hash",
            sign(&with(json!({"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}))),
            info.clone(),
            "id_token",
        ),
        ("alg none", jwt::unsigned(&base), info.clone(), "id_token"),
        (
            "HS256 with the RSA public key",
            jwt::sign_hs256(jwt::rsa_1_public_pem().as_bytes(), &base),
            info.clone(),
            "id_token",
        ),
        (
            "another key under the known kid",
            TestKey::rsa(2, "k1").sign(&base),
            info.clone(),
            "id_token",
        ),
        (
            "userinfo of another subject",
            sign(&base),
            json!({"sub": "mallory"}),
            "userinfo",
        ),
    ];
    let stored = s.tokens_stored();
    for (case, id_token, userinfo, rule) in cases {
        s.answer(&id_token, userinfo);
        let r = s.authenticate("code");
        assert_eq!(r.status, 401, "{case}: {}", r.text);
        assert_refused(&r);
        let metrics = s.srv.get("/_tessera/metrics").admin().send().text;
        let line = format!("tessera_oidc_logins_total{{realm=\"oidc1\",result=\"{rule}\"}}");
        assert!(metrics.contains(&line), "{case}: no {line}");
    }
    for (case, token) in [
        (
            "not Bearer",
            json!({"token_type": "mac", "access_token": "a", "id_token": key1().sign(&base)}),
        ),
        (
            "no ID token",
            json!({"token_type": "Bearer", "access_token": "a"}),
        ),
        ("an OAuth error", json!({"error": "invalid_grant"})),
    ] {
        s.answers.lock().unwrap().token = token;
        assert_refused(&s.authenticate("code"));
        let _ = case;
    }
    assert_eq!(s.tokens_stored(), stored);
}

#[test]
fn a_key_rotation_is_followed_once_the_jwks_names_the_new_key() {
    let s = Stub::start();
    let key2 = TestKey::rsa(2, "k2");
    s.answer(&key2.sign(&s.claims()), json!({"sub": "alice"}));
    // Unknown key id: the JWKS is read again, still without it: refused.
    assert_refused(&s.authenticate("c1"));
    // The provider publishes its new key; the next login reads it.
    std::fs::write(s.dir.path().join("jwks.json"), jwt::jwks(&[&key1(), &key2])).unwrap();
    s.srv.advance(11_000);
    s.answer(&key2.sign(&s.claims()), json!({"sub": "alice"}));
    let r = s.authenticate("c2");
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn callbacks_the_dashboard_should_not_have_passed_are_refused() {
    let s = Stub::start();
    let send = |body: Value| dashboard_post(&s.srv, "/_security/oidc/authenticate", &body);
    for callback in [
        format!("{CB}?code=c&state=another"),
        format!("{CB}?error=access_denied&state={STATE}"),
        format!("https://evil.example/cb?code=c&state={STATE}"),
        format!("{CB}?code=c&state={STATE}&iss=https%3A%2F%2Fevil.example"),
    ] {
        assert_refused(&send(
            json!({"redirect_uri": callback, "state": STATE, "nonce": NONCE, "realm": "oidc1"}),
        ));
    }
    assert!(
        s.answers.lock().unwrap().token_auth.is_empty(),
        "no code was exchanged"
    );
}

#[test]
fn bad_requests_get_400_in_elasticsearchs_shape() {
    let s = Stub::start();
    let post = |path: &str, body: Value| dashboard_post(&s.srv, path, &body);
    for (path, body, says) in [
        (
            "/_security/oidc/prepare",
            json!({}),
            "one of [realm, issuer] must be provided",
        ),
        (
            "/_security/oidc/prepare",
            json!({"realm": "oidc1", "iss": "x"}),
            "only one of [realm, issuer]",
        ),
        (
            "/_security/oidc/prepare",
            json!({"realm": "nope"}),
            "Cannot find OpenID Connect realm with name [nope]",
        ),
        (
            "/_security/oidc/prepare",
            json!({"iss": "https://nope"}),
            "Cannot find OpenID Connect realm with issuer [https://nope]",
        ),
        (
            "/_security/oidc/prepare",
            json!({"realm": "oidc1", "surprise": 1}),
            "surprise",
        ),
        (
            "/_security/oidc/authenticate",
            json!({"state": "s", "nonce": "n"}),
            "redirect_uri parameter must be provided",
        ),
        (
            "/_security/oidc/authenticate",
            json!({"redirect_uri": CB, "nonce": "n"}),
            "state parameter must be provided",
        ),
        (
            "/_security/oidc/authenticate",
            json!({"redirect_uri": CB, "state": "s"}),
            "nonce parameter must be provided",
        ),
        (
            "/_security/oidc/authenticate",
            json!({"redirect_uri": CB, "state": "s", "nonce": "n", "realm": "nope"}),
            "Cannot find OpenID Connect realm with name [nope]",
        ),
        (
            "/_security/oidc/authenticate",
            json!({"redirect_uri": 3, "state": "s", "nonce": "n"}),
            "",
        ),
        ("/_security/oidc/logout", json!({}), "token is missing"),
        (
            "/_security/oidc/logout",
            json!({"token": "x", "access_token": "y"}),
            "access_token",
        ),
    ] {
        let r = post(path, body.clone());
        assert_eq!(r.status, 400, "{path} {body}: {}", r.text);
        assert!(r.body["error"]["type"].is_string(), "{}", r.text);
        assert!(r.text.contains(says), "{path} {body}: {}", r.text);
    }
    let r = s
        .srv
        .post("/_security/oidc/prepare")
        .basic(DASHBOARD, DASHBOARD_PW)
        .body("application/json", "{")
        .send();
    assert_eq!(r.status, 400, "{}", r.text);
}

#[test]
fn prepare_gives_fresh_state_and_nonce_or_the_callers() {
    let s = Stub::start();
    let prepare = |body: Value| dashboard_post(&s.srv, "/_security/oidc/prepare", &body);
    let a = prepare(json!({"realm": "oidc1"}));
    let b = prepare(json!({"iss": s.issuer, "login_hint": "alice@example.org"}));
    assert_eq!((a.status, b.status), (200, 200), "{} {}", a.text, b.text);
    assert_ne!(a.str("state"), b.str("state"));
    assert_ne!(a.str("nonce"), b.str("nonce"));
    assert!(a.str("state").len() >= 43);
    assert!(
        b.str("redirect")
            .ends_with("&login_hint=alice%40example.org"),
        "{}",
        b.text
    );
    assert!(a.str("redirect").starts_with(&format!(
        "{}/auth?scope=openid&response_type=code&redirect_uri=",
        s.issuer
    )));
    let c = prepare(json!({"realm": "oidc1", "state": "mine", "nonce": "also-mine"}));
    assert_eq!(
        (c.str("state"), c.str("nonce")),
        ("mine".to_owned(), "also-mine".to_owned())
    );
    assert!(c
        .str("redirect")
        .contains("&state=mine&nonce=also-mine&client_id=tessera-dashboard"));
    // Without manage_oidc: 403.
    s.srv
        .put_role("monitor_only", json!({"cluster": ["monitor"]}));
    s.srv.put_user("watcher", DASHBOARD_PW, &["monitor_only"]);
    let r = s
        .srv
        .post("/_security/oidc/prepare")
        .basic("watcher", DASHBOARD_PW)
        .json(&json!({"realm": "oidc1"}))
        .send();
    assert_eq!(r.status, 403, "{}", r.text);
}

#[test]
fn logout_ends_the_family_and_has_no_redirect_without_an_end_session_endpoint() {
    let s = Stub::start();
    let login = s.authenticate("c");
    assert_eq!(login.status, 200, "{}", login.text);
    let (access, refresh) = (login.str("access_token"), login.str("refresh_token"));
    let r = dashboard_post(
        &s.srv,
        "/_security/oidc/logout",
        &json!({"token": access, "refresh_token": refresh}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({"redirect": null}));
    assert_eq!(s.srv.get(AUTHENTICATE).bearer(&access).send().status, 401);
    // A native user's token is not an OpenID Connect login.
    let native = s.srv.password_grant(ADMIN, ADMIN_PW);
    let r = dashboard_post(
        &s.srv,
        "/_security/oidc/logout",
        &json!({"token": native.access}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
}
