//! Password guessing on the Elasticsearch API: the per-account soft lock,
//! the per-source budget (429 in the Elasticsearch envelope), which
//! `X-Forwarded-For` is believed, and the authentication counter.
//!
//! Locks here last an hour (`lockout_delays`) so that no test depends on
//! how fast the machine is; their expiry is tested with manual time in
//! `tessera_domain::throttle`.

use tessera::config::ThrottleArgs;

use crate::support::*;

fn locking_server(extra: ThrottleArgs) -> TestServer {
    TestServer::start_with(Options::hour_long_locks(extra))
}

fn password_grant(srv: &TestServer, user: &str, password: &str) -> Resp {
    srv.request_password_grant((ADMIN, ADMIN_PW), user, password)
}

fn assert_too_many(r: &Resp) {
    assert_es_error_matching(
        r,
        429,
        "security_exception",
        |reason| reason.starts_with("too many failed authentication attempts from this address"),
        "too many failed authentication attempts …",
    );
    let retry: u64 = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After: {:?}", r.headers))
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(retry >= 1, "{retry}");
}

#[test]
fn five_wrong_passwords_lock_the_account_with_the_wrong_password_answer() {
    let srv = locking_server(ThrottleArgs::default());
    srv.put_user("mallory-target", TEST_PW, &["superuser"]);
    srv.put_user("bystander", TEST_PW, &["superuser"]);
    for i in 0..5 {
        srv.assert_basic_refused("mallory-target", &format!("guess-{i}"));
    }
    // The right password is now refused exactly as a wrong one is, on
    // Basic and on the password grant.
    srv.assert_basic_refused("mallory-target", TEST_PW);
    assert_grant_refused(
        &password_grant(&srv, "mallory-target", TEST_PW),
        "mallory-target",
    );
    let wrong = password_grant(&srv, "mallory-target", "guess-x");
    assert_grant_refused(&wrong, "mallory-target");
    // Another account is unaffected, and so is the admin's own Basic.
    srv.assert_basic_ok("bystander", TEST_PW);
    let r = password_grant(&srv, "bystander", TEST_PW);
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn the_password_grant_counts_toward_the_same_lock() {
    let srv = locking_server(ThrottleArgs::default());
    srv.put_user("grantee", TEST_PW, &["superuser"]);
    for i in 0..3 {
        assert_grant_refused(
            &password_grant(&srv, "grantee", &format!("g-{i}")),
            "grantee",
        );
    }
    for i in 0..2 {
        srv.assert_basic_refused("grantee", &format!("b-{i}"));
    }
    assert_grant_refused(&password_grant(&srv, "grantee", TEST_PW), "grantee");
}

#[test]
fn a_success_resets_the_count_and_unknown_users_lock_too() {
    let srv = locking_server(ThrottleArgs::default());
    srv.put_user("forgetful", TEST_PW, &["superuser"]);
    for round in 0..3 {
        for i in 0..4 {
            srv.assert_basic_refused("forgetful", &format!("r{round}-{i}"));
        }
        srv.assert_basic_ok("forgetful", TEST_PW);
    }
    // An unknown user is locked like a real one, so that the lock tells
    // nothing about who exists; creating it later meets the same lock.
    for i in 0..5 {
        srv.assert_basic_refused("ghost", &format!("g-{i}"));
    }
    srv.put_user("ghost", TEST_PW, &["superuser"]);
    srv.assert_basic_refused("ghost", TEST_PW);
}

#[test]
fn disabled_users_and_malformed_credentials_do_not_count() {
    let srv = locking_server(ThrottleArgs::default());
    srv.put_user("sleeper", TEST_PW, &["superuser"]);
    let r = srv.put("/_security/user/sleeper/_disable").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    for i in 0..8 {
        srv.assert_basic_refused("sleeper", &format!("d-{i}"));
    }
    let r = srv.put("/_security/user/sleeper/_enable").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    for _ in 0..8 {
        let r = srv.auth_header("Basic !!!not-base64");
        assert_eq!(r.status, 401, "{}", r.text);
    }
    srv.assert_basic_ok("sleeper", TEST_PW);
}

#[test]
fn a_source_past_its_budget_gets_429_with_retry_after_in_the_es_envelope() {
    let srv = locking_server(source_budget("3"));
    srv.put_user("u1", TEST_PW, &["superuser"]);
    // Three failures over different accounts (no lock involved).
    srv.assert_basic_refused("u1", "wrong-1");
    srv.assert_basic_refused("nobody-a", "wrong-2");
    assert_grant_refused(&password_grant(&srv, "nobody-b", "wrong-3"), "nobody-b");
    // Now even the right password from this address is 429, on Basic and
    // on the password grant (whose caller's own Basic is refused first).
    assert_too_many(&srv.auth_basic("u1", TEST_PW));
    assert_too_many(&password_grant(&srv, "u1", TEST_PW));
    // Bearer tokens are not password guesses: unaffected.
    let r = srv.get("/_tessera/live").send();
    assert_eq!(r.status, 200);
}

#[test]
fn refusals_while_locked_spend_the_source_budget() {
    let srv = locking_server(source_budget("7"));
    for i in 0..5 {
        srv.assert_basic_refused("locked-one", &format!("w-{i}"));
    }
    srv.assert_basic_refused("locked-one", "w-5");
    srv.assert_basic_refused("locked-one", "w-6");
    assert_too_many(&srv.auth_basic("locked-one", "w-7"));
}

#[test]
fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    let budget = || ThrottleArgs {
        source_failure_burst: Some("2".into()),
        source_failure_rate: Some("0.01".into()),
        ..Default::default()
    };
    let behind_proxy = locking_server(ThrottleArgs {
        trusted_proxies: Some("127.0.0.1/32".into()),
        ..budget()
    });
    let from = |srv: &TestServer, xff: &str, user: &str| {
        srv.get(AUTHENTICATE)
            .basic(user, "wrong-password")
            .header("x-forwarded-for", xff)
            .send()
    };
    for user in ["a1", "a2"] {
        assert_eq!(from(&behind_proxy, "203.0.113.1", user).status, 401);
    }
    assert_too_many(&from(&behind_proxy, "203.0.113.1", "a3"));
    // Another client behind the same proxy has its own budget; a forged
    // entry left of what the proxy appended changes nothing.
    assert_eq!(from(&behind_proxy, "203.0.113.2", "b1").status, 401);
    assert_too_many(&from(&behind_proxy, "198.51.100.9, 203.0.113.1", "a4"));

    // Not a trusted proxy: the header is ignored, every guess is the peer's.
    let direct = locking_server(budget());
    assert_eq!(from(&direct, "203.0.113.1", "c1").status, 401);
    assert_eq!(from(&direct, "203.0.113.2", "c2").status, 401);
    assert_too_many(&from(&direct, "203.0.113.3", "c3"));
}

#[test]
fn authentications_are_counted_by_realm_and_outcome() {
    let srv = TestServer::start();
    srv.put_user("counted", TEST_PW, &["superuser"]);
    srv.assert_basic_ok("counted", TEST_PW);
    srv.assert_basic_refused("counted", "wrong-pw");
    srv.assert_basic_refused("uncounted-nobody", "wrong-pw");
    let r = srv.get("/_tessera/metrics").admin().send();
    assert_eq!(r.status, 200);
    for outcome in ["success", "invalid_credentials", "unknown_principal"] {
        let line = format!(
            "tessera_authentications_total{{realm_type=\"native\",realm=\"default_native\",outcome=\"{outcome}\"}}"
        );
        assert!(r.text.contains(&line), "no {line} in\n{}", r.text);
    }
}
