//! A node's life: restarts on the same data directory, expired-token
//! cleanup, and graceful shutdown.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

#[test]
fn state_survives_a_restart_and_bootstrap_happens_once() {
    let dir = tempfile::tempdir().unwrap();
    let (user_tokens, cc_token, creator_tokens) = {
        let srv = TestServer::start_in(dir.path(), Options::default());
        srv.put_user("survivor", TEST_PW, &["superuser"]);
        srv.put_role("ops", json!({ "cluster": ["manage_token"] }));
        let user_tokens = srv.password_grant("survivor", TEST_PW);
        let cc = srv.client_credentials("survivor", TEST_PW);
        let creator = srv.password_grant(ADMIN, ADMIN_PW);
        // One refresh before the restart: its replay must survive too.
        let refreshed = srv.refresh(&creator.refresh);
        assert_eq!(refreshed.status, 200, "{}", refreshed.text);
        srv.stop();
        (
            user_tokens,
            cc,
            (creator, Tokens::from_body(&refreshed.body)),
        )
    };

    // A different bootstrap password is ignored: the store already has users.
    let srv = TestServer::start_in(
        dir.path(),
        Options::default().bootstrap_password("another-bootstrap-pw"),
    );
    srv.assert_basic_ok(ADMIN, ADMIN_PW);
    srv.assert_basic_refused(ADMIN, "another-bootstrap-pw");
    srv.assert_basic_ok("survivor", TEST_PW);
    let r = srv.get("/_security/user").admin().send();
    assert_eq!(keys(&r.body), [ADMIN, "survivor"], "{}", r.text);
    assert_eq!(r.body[ADMIN]["roles"], json!(["superuser"]));
    let r = srv.get("/_security/role/ops").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);

    // Tokens issued before the restart still work.
    srv.assert_bearer_ok(&user_tokens.access, "survivor");
    srv.assert_bearer_ok(&cc_token, "survivor");
    let r = srv.refresh(&user_tokens.refresh);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["authentication"]["username"], "survivor");
    srv.assert_bearer_ok(&r.str("access_token"), "survivor");
    // A repeat of a refresh made before the restart returns the same pair.
    let (creator, refreshed) = creator_tokens;
    let r = srv.refresh(&creator.refresh);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(Tokens::from_body(&r.body), refreshed);
    srv.stop();
}

#[test]
fn stop_is_graceful_and_frees_the_port() {
    let srv = TestServer::start();
    let addr = srv.addr();
    srv.assert_basic_ok(ADMIN, ADMIN_PW);
    srv.stop();
    // Nothing listens there any more.
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err());
}

#[test]
fn expired_purgeable_tokens_are_removed_by_the_cleanup_task() {
    let srv = TestServer::start_with(
        Options::default()
            .access_token_ttl("1s")
            .cleanup_interval("100ms")
            .manual_clock(),
    );
    let db = open_db_read_only(&srv.db_path());
    // A client_credentials token has no refresh token: once its access
    // token expires, nothing can use it. A password-grant token keeps its
    // refresh token for 24 hours and must stay.
    let cc = srv.client_credentials(ADMIN, ADMIN_PW);
    let pair = srv.password_grant(ADMIN, ADMIN_PW);
    assert_eq!(count_tokens(&db), 2);
    srv.assert_bearer_ok(&cc, ADMIN);
    // Both access tokens expire.
    srv.advance(1_000);

    let deadline = Instant::now() + Duration::from_secs(6);
    while count_tokens(&db) != 1 {
        assert!(
            Instant::now() < deadline,
            "the expired token was not removed in time"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let remaining: Option<Vec<u8>> = db
        .query_row("SELECT refresh_hash FROM token_pairs", [], |r| r.get(0))
        .unwrap();
    assert!(
        remaining.is_some(),
        "the token with a refresh token was kept"
    );

    // The removed token is simply unknown now.
    assert_unsuccessful_credentials(&srv.auth_bearer(&cc), "oauth2 token: invalid token");
    // The kept one: its access token expired, its refresh token works.
    assert_token_expired(&srv.auth_bearer(&pair.access));
    let r = srv.refresh(&pair.refresh);
    assert_eq!(r.status, 200, "{}", r.text);
    srv.assert_bearer_ok(&r.str("access_token"), ADMIN);
    assert_eq!(count_tokens(&db), 2);
}

/// A taken port fails the start before anything is created: no data
/// directory, no store, so no generated `elastic` password is printed and
/// lost.
#[test]
fn a_taken_port_fails_before_the_store_is_created() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = tessera::config::Config::resolve(tessera::config::ServeArgs {
        listen: Some(taken.local_addr().unwrap().to_string()),
        data_dir: Some(data.clone()),
        ..Default::default()
    })
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = runtime
        .block_on(tessera::server::start(config, std::future::pending()))
        .err()
        .expect("the port is taken");
    assert!(format!("{err:#}").contains("cannot listen on"), "{err:#}");
    assert!(!data.exists(), "the data directory was created");
}
