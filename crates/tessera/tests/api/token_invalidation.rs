//! `token_invalidation = "token"`: `DELETE /_security/oauth2/token` by value
//! invalidates the named token alone, as Elasticsearch does. The default
//! (`"family"`) is covered in `tokens.rs`.

use serde_json::json;

use crate::support::*;

fn es_mode() -> TestServer {
    let srv = TestServer::start_with(Options::default().token_invalidation("token"));
    srv.put_user("token_user", TEST_PW, &["superuser"]);
    srv
}

#[test]
fn invalidating_an_access_token_leaves_its_refresh_token_alive() {
    let srv = es_mode();
    let t = srv.password_grant("token_user", TEST_PW);
    srv.invalidate(json!({ "token": t.access }))
        .assert_is(200, &counts(1, 0));
    srv.invalidate(json!({ "token": t.access }))
        .assert_is(200, &counts(0, 1));
    assert_token_expired(&srv.auth_bearer(&t.access));
    // As in Elasticsearch, the refresh token of the pair still refreshes.
    let next = srv.assert_refresh_ok((ADMIN, ADMIN_PW), &t.refresh, "token_user");
    srv.assert_bearer_ok(&next.access, "token_user");
}

#[test]
fn invalidating_a_refresh_token_leaves_its_access_token_alive() {
    let srv = es_mode();
    let t = srv.password_grant("token_user", TEST_PW);
    srv.invalidate(json!({ "refresh_token": t.refresh }))
        .assert_is(200, &counts(1, 0));
    srv.invalidate(json!({ "refresh_token": t.refresh }))
        .assert_is(200, &counts(0, 1));
    assert_oauth_error(
        &srv.refresh(&t.refresh),
        "invalid_grant",
        "token has been invalidated",
    );
    srv.assert_bearer_ok(&t.access, "token_user");
    // Invalidating the access token afterwards counts it once.
    srv.invalidate(json!({ "token": t.access }))
        .assert_is(200, &counts(1, 0));
    assert_token_expired(&srv.auth_bearer(&t.access));
}

#[test]
fn by_user_invalidation_is_unchanged_by_the_mode() {
    let srv = es_mode();
    let t = srv.password_grant("token_user", TEST_PW);
    srv.invalidate(json!({ "username": "token_user" }))
        .assert_is(200, &counts(2, 0));
    assert_token_expired(&srv.auth_bearer(&t.access));
}

#[test]
fn an_unknown_mode_is_refused() {
    let Err(err) = tessera::config::Config::resolve(tessera::config::ServeArgs {
        compat: tessera::config::CompatArgs {
            token_invalidation: Some("pair".into()),
            ..Default::default()
        },
        ..Default::default()
    }) else {
        panic!("an unknown token_invalidation is refused");
    };
    assert!(err.to_string().contains("token_invalidation"), "{err:#}");
}
