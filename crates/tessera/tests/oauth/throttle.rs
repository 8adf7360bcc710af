//! Guessing at `/oauth2/*`: client secrets and the password grant lock
//! their account like passwords do on the Elasticsearch API, and a source
//! past its failure budget gets 429 in the flat OAuth shape.
//!
//! Locks last an hour here (`lockout_delays`); their expiry is tested with
//! manual time in `tessera_domain::throttle`.

use serde_json::json;
use tessera::config::ThrottleArgs;

use crate::support::*;

fn server(extra: ThrottleArgs) -> TestServer {
    TestServer::start_with(Options::hour_long_locks(extra))
}

const CC: [(&str, &str); 1] = [("grant_type", "client_credentials")];

fn assert_wrong_secret_answer(r: &Resp) {
    assert_oauth_error_says(r, 401, "invalid_client", "client authentication failed");
    assert_eq!(r.header_all("www-authenticate"), [BASIC_CHALLENGE]);
}

fn assert_too_many(r: &Resp) {
    assert_oauth_error(r, 429, "temporarily_unavailable", false);
    let description = r.body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.starts_with("too many failed authentication attempts from this address"),
        "{}",
        r.text
    );
    let retry: u64 = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After: {}", r.text))
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(retry >= 1);
}

#[test]
fn five_wrong_secrets_lock_the_client_with_the_wrong_secret_answer() {
    let srv = server(ThrottleArgs::default());
    let target = srv.register(json!({}));
    let other = srv.register(json!({}));
    for i in 0..5 {
        assert_wrong_secret_answer(&srv.token(&target.with_secret(&format!("guess-{i}")), &CC));
    }
    // The right secret is refused as a wrong one is, at every endpoint.
    assert_wrong_secret_answer(&srv.token(&target, &CC));
    assert_wrong_secret_answer(&srv.introspect(&target, "whatever"));
    // Another client is unaffected.
    srv.grant(&other, &CC);
}

#[test]
fn a_success_resets_a_clients_count() {
    let srv = server(ThrottleArgs::default());
    let client = srv.register(json!({}));
    for round in 0..3 {
        for i in 0..4 {
            assert_wrong_secret_answer(
                &srv.token(&client.with_secret(&format!("{round}-{i}")), &CC),
            );
        }
        srv.grant(&client, &CC);
    }
}

#[test]
fn the_oauth_password_grant_locks_the_user() {
    let srv = server(ThrottleArgs::default());
    let client = srv.register(json!({ "grant_types": ["password"] }));
    srv.add_user("jane", &["superuser"]);
    let grant = |pw: &str| {
        srv.token(
            &client,
            &[
                ("grant_type", "password"),
                ("username", "jane"),
                ("password", pw),
            ],
        )
    };
    for i in 0..5 {
        assert_oauth_error_says(
            &grant(&format!("w-{i}")),
            400,
            "invalid_grant",
            "unable to authenticate user [jane]",
        );
    }
    assert_oauth_error_says(
        &grant(USER_PW),
        400,
        "invalid_grant",
        "unable to authenticate user [jane]",
    );
    // The lock is the account's, whichever API asks: the Elasticsearch
    // API refuses her too.
    let r = srv.get(AUTHENTICATE).basic("jane", USER_PW).send();
    assert_eq!(r.status, 401, "{}", r.text);
    // The client itself is not locked by its user's failures.
    let cc = srv.register(json!({}));
    srv.grant(&cc, &CC);
}

#[test]
fn a_source_past_its_budget_gets_429_in_the_flat_shape() {
    let srv = server(source_budget("2"));
    let client = srv.register(json!({}));
    assert_wrong_secret_answer(&srv.token(&client.with_secret("w1"), &CC));
    let unknown = TestClient {
        id: "no-such-client".into(),
        secret: "w2".into(),
    };
    assert_wrong_secret_answer(&srv.token(&unknown, &CC));
    // Past the budget: 429, even with the right secret, at every endpoint.
    assert_too_many(&srv.token(&client, &CC));
    assert_too_many(&srv.revoke(&client, "whatever"));
    let r = srv
        .post(TOKEN)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client.id),
            ("client_secret", &client.secret),
        ])
        .send();
    assert_too_many(&r);
    // A native user at introspection, too.
    let r = srv
        .post(INTROSPECT)
        .basic(ADMIN, ADMIN_PW)
        .form(&[("token", "whatever")])
        .send();
    assert_too_many(&r);
}

#[test]
fn client_authentications_are_counted() {
    let srv = server(ThrottleArgs::default());
    let client = srv.register(json!({}));
    srv.grant(&client, &CC);
    assert_wrong_secret_answer(&srv.token(&client.with_secret("nope"), &CC));
    let r = srv.get("/_tessera/metrics").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    for outcome in ["success", "invalid_credentials"] {
        let line = format!(
            "tessera_authentications_total{{realm_type=\"_oauth2_client\",realm=\"_oauth2_client\",outcome=\"{outcome}\"}}"
        );
        assert!(r.text.contains(&line), "no {line} in\n{}", r.text);
    }
}
