//! Run-as: `es-security-runas-user` (Elasticsearch's "submitting requests
//! on behalf of other users"), on a real node: the privilege, its patterns,
//! refusals that do not tell whether a user exists, the `_authenticate`
//! shape for each kind of caller, what is minted while running as, and the
//! audit lines.

use serde_json::{json, Value};

use crate::support::*;

const RUN_AS: &str = "es-security-runas-user";
const RUNNER: &str = "runner";
const TARGET: &str = "target_user";
const AUTHENTICATE_ACTION: &str = "cluster:admin/xpack/security/user/authenticate";

/// `runner` may run as what `run_as` covers (and create tokens and its own
/// keys); `target_user` manages security; `other_user` and a disabled
/// `disabled_user` exist too.
fn setup(run_as: &[&str]) -> TestServer {
    setup_with(Options::default(), run_as)
}

fn setup_with(options: Options, run_as: &[&str]) -> TestServer {
    let srv = TestServer::start_with(options);
    srv.put_role(
        "runner_role",
        json!({ "cluster": ["manage_token", "manage_own_api_key"], "run_as": run_as }),
    );
    srv.put_user(RUNNER, TEST_PW, &["runner_role"]);
    srv.put_role("target_role", json!({ "cluster": ["manage_security"] }));
    srv.create_user(
        TARGET,
        json!({ "password": TEST_PW, "roles": ["target_role"], "full_name": "Target User" }),
    );
    srv.put_user("other_user", TEST_PW, &[]);
    srv.create_user(
        "disabled_user",
        json!({ "password": TEST_PW, "roles": ["target_role"], "enabled": false }),
    );
    srv
}

fn authenticate_as(srv: &TestServer, target: &str) -> Resp {
    srv.get(AUTHENTICATE)
        .basic(RUNNER, TEST_PW)
        .header(RUN_AS, target)
        .send()
}

/// Asserts Elasticsearch's 403 for `user` (as the message names it, with
/// its `roles`) running as `target` for `action`.
fn assert_denied(r: &Resp, action: &str, user: &str, roles: &str, target: &str) {
    assert_es_error(
        r,
        403,
        "security_exception",
        &format!(
            "action [{action}] is unauthorized for {user} with effective roles [{roles}], because {user} is unauthorized to run as [{target}]"
        ),
    );
}

fn assert_run_as_denied(r: &Resp, target: &str) {
    assert_denied(
        r,
        AUTHENTICATE_ACTION,
        &format!("user [{RUNNER}]"),
        "runner_role",
        target,
    );
}

/// `_authenticate` of `target_user` run as by a caller of `realm` and
/// `kind`.
fn target_authentication(realm: (&str, &str), kind: &str) -> Value {
    json!({
        "username": TARGET,
        "roles": ["target_role"],
        "full_name": "Target User",
        "email": null,
        "metadata": {},
        "enabled": true,
        "authentication_realm": { "name": realm.0, "type": realm.1 },
        "lookup_realm": { "name": "default_native", "type": "native" },
        "authentication_type": kind,
    })
}

const NATIVE: (&str, &str) = ("default_native", "native");

#[test]
fn a_granted_run_as_is_the_target_with_its_roles() {
    let srv = setup(&[TARGET]);
    authenticate_as(&srv, TARGET).assert_is(200, &target_authentication(NATIVE, "realm"));
    // The target's roles decide: it manages security, the runner does not.
    let users = |run_as: Option<&str>| {
        let req = srv.get("/_security/user").basic(RUNNER, TEST_PW);
        match run_as {
            Some(t) => req.header(RUN_AS, t),
            None => req,
        }
        .send()
    };
    assert_eq!(users(Some(TARGET)).status, 200);
    assert_eq!(users(None).status, 403);
    // The superuser may run as anyone.
    let r = srv.get(AUTHENTICATE).admin().header(RUN_AS, TARGET).send();
    assert_eq!(r.body["username"], TARGET, "{}", r.text);
}

#[test]
fn a_target_outside_the_run_as_list_is_refused_with_elasticsearchs_words() {
    let srv = setup(&[TARGET]);
    assert_run_as_denied(&authenticate_as(&srv, "other_user"), "other_user");
    // The action named is the request's.
    let r = srv
        .get("/_security/user")
        .basic(RUNNER, TEST_PW)
        .header(RUN_AS, "other_user")
        .send();
    assert_denied(
        &r,
        "cluster:admin/xpack/security/user/get",
        "user [runner]",
        "runner_role",
        "other_user",
    );
    // A user without any run_as privilege.
    let r = srv
        .get(AUTHENTICATE)
        .basic("other_user", TEST_PW)
        .header(RUN_AS, TARGET)
        .send();
    assert_denied(&r, AUTHENTICATE_ACTION, "user [other_user]", "", TARGET);
}

#[test]
fn run_as_patterns_are_wildcards_or_regular_expressions() {
    let srv = setup(&["target_*", "/oth.r_user/"]);
    assert_eq!(authenticate_as(&srv, TARGET).body["username"], TARGET);
    assert_eq!(
        authenticate_as(&srv, "other_user").body["username"],
        "other_user"
    );
    assert_run_as_denied(&authenticate_as(&srv, "elastic"), "elastic");
    let srv = setup(&["?arget_user"]);
    assert_eq!(authenticate_as(&srv, TARGET).body["username"], TARGET);
}

#[test]
fn unknown_disabled_and_empty_targets_tell_nothing_apart() {
    // Allowed by the pattern or not, a user that does not exist gets the
    // same 403: no 404, nothing that tells it apart. A disabled target
    // fails authentication only for who may run as it; without the
    // privilege it is refused like any other name. An empty header fails
    // authentication.
    enum Expect {
        Denied,
        Unauthenticated,
    }
    for (run_as, target, expect) in [
        ("*", "nobody", Expect::Denied),
        (TARGET, "nobody", Expect::Denied),
        ("*", "disabled_user", Expect::Unauthenticated),
        (TARGET, "disabled_user", Expect::Denied),
        ("*", "", Expect::Unauthenticated),
    ] {
        let r = authenticate_as(&setup(&[run_as]), target);
        match expect {
            Expect::Denied => assert_run_as_denied(&r, target),
            Expect::Unauthenticated => assert_unauthenticated(
                &r,
                "unable to authenticate user [runner] for REST request [/_security/_authenticate]",
            ),
        }
    }
}

#[test]
fn tokens_and_api_keys_run_as_with_their_own_authentication_type() {
    let srv = setup(&[TARGET]);
    let t = srv.password_grant(RUNNER, TEST_PW);
    let r = srv
        .get(AUTHENTICATE)
        .bearer(&t.access)
        .header(RUN_AS, TARGET)
        .send();
    r.assert_is(200, &target_authentication(NATIVE, "token"));

    let key = srv
        .post("/_security/api_key")
        .basic(RUNNER, TEST_PW)
        .json(&json!({ "name": "runner-key" }))
        .send();
    assert_eq!(key.status, 200, "{}", key.text);
    let encoded = key.str("encoded");
    let r = srv
        .get(AUTHENTICATE)
        .header("authorization", &format!("ApiKey {encoded}"))
        .header(RUN_AS, TARGET)
        .send();
    // No `api_key` object: the effective user is the target, not the key.
    r.assert_is(
        200,
        &target_authentication(("_es_api_key", "_es_api_key"), "api_key"),
    );
    // A key whose own descriptors do not reach the target may not.
    let limited = srv
        .post("/_security/api_key")
        .basic(RUNNER, TEST_PW)
        .json(&json!({ "name": "limited", "role_descriptors": { "r": { "run_as": ["other_user"] } } }))
        .send();
    assert_eq!(limited.status, 200, "{}", limited.text);
    let r = srv
        .get(AUTHENTICATE)
        .header(
            "authorization",
            &format!("ApiKey {}", limited.str("encoded")),
        )
        .header(RUN_AS, TARGET)
        .send();
    assert_denied(
        &r,
        AUTHENTICATE_ACTION,
        &format!("API key id [{}] of user [{RUNNER}]", limited.str("id")),
        "",
        TARGET,
    );
}

#[test]
fn what_is_minted_while_running_as_belongs_to_the_target() {
    let srv = setup(&[TARGET, "other_user"]);
    // client_credentials: a token of the run-as authentication.
    let r = srv
        .post(TOKEN)
        .basic(RUNNER, TEST_PW)
        .header(RUN_AS, TARGET)
        .json(&json!({ "grant_type": "client_credentials" }))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.str("access_token");
    srv.auth_bearer(&token)
        .assert_is(200, &target_authentication(NATIVE, "token"));
    // It cannot run as anyone else: the header is ignored, as
    // Elasticsearch ignores it for an authentication that already runs as.
    let r = srv
        .get(AUTHENTICATE)
        .bearer(&token)
        .header(RUN_AS, "other_user")
        .send();
    assert_eq!(r.body["username"], TARGET, "{}", r.text);

    // An API key created while running as is the target's.
    let r = srv
        .post("/_security/api_key")
        .basic(RUNNER, TEST_PW)
        .header(RUN_AS, TARGET)
        .json(&json!({ "name": "made-for-target" }))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.str("id");
    let r = srv
        .get(&format!("/_security/api_key?id={id}"))
        .admin()
        .send();
    assert_eq!(r.body["api_keys"][0]["username"], TARGET, "{}", r.text);
    assert_eq!(
        r.body["api_keys"][0]["realm"], "default_native",
        "{}",
        r.text
    );
}

#[test]
fn run_as_is_audited_in_elasticsearchs_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.json");
    let srv = setup_with(Options::default().audit_log(&path), &[TARGET]);
    let r = srv
        .get("/_security/user")
        .basic(RUNNER, TEST_PW)
        .header(RUN_AS, TARGET)
        .header("x-opaque-id", "run-as-1")
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let granted = wait_event(&path, |e| {
        e["event.action"] == "run_as_granted" && e["request.id"] == "run-as-1"
    });
    assert_eq!(granted["event.type"], "transport");
    assert_eq!(granted["user.name"], RUNNER);
    assert_eq!(granted["user.realm"], "default_native");
    assert_eq!(granted["user.roles"], json!(["runner_role"]));
    assert_eq!(granted["user.run_as.name"], TARGET);
    assert_eq!(granted["user.run_as.realm"], "default_native");
    assert_eq!(granted["action"], "cluster:admin/xpack/security/user/get");
    // What follows is the target's, run by the runner.
    let access = wait_event(&path, |e| {
        e["event.action"] == "access_granted" && e["request.id"] == "run-as-1"
    });
    assert_eq!(access["user.name"], TARGET);
    assert_eq!(access["user.realm"], "default_native");
    assert_eq!(access["user.roles"], json!(["target_role"]));
    assert_eq!(access["user.run_by.name"], RUNNER);
    assert_eq!(access["user.run_by.realm"], "default_native");
    let success = wait_event(&path, |e| {
        e["event.action"] == "authentication_success" && e["request.id"] == "run-as-1"
    });
    assert_eq!(success["user.name"], TARGET);
    assert_eq!(success["user.run_by.name"], RUNNER);

    let r = srv
        .get(AUTHENTICATE)
        .basic(RUNNER, TEST_PW)
        .header(RUN_AS, "nobody")
        .header("x-opaque-id", "run-as-2")
        .send();
    assert_eq!(r.status, 403);
    let denied = wait_event(&path, |e| {
        e["event.action"] == "run_as_denied" && e["request.id"] == "run-as-2"
    });
    assert_eq!(denied["user.name"], RUNNER);
    assert_eq!(denied["user.run_as.name"], "nobody");
    assert!(denied.get("user.run_as.realm").is_none(), "{denied}");
    assert_eq!(denied["action"], AUTHENTICATE_ACTION);
    // A request without the header carries no run-as field.
    srv.get(AUTHENTICATE)
        .basic(RUNNER, TEST_PW)
        .header("x-opaque-id", "plain")
        .send();
    let plain = wait_event(&path, |e| {
        e["event.action"] == "authentication_success" && e["request.id"] == "plain"
    });
    assert!(plain.get("user.run_by.name").is_none(), "{plain}");
}

/// What a runner mints while running as another user is taken back with
/// the runner: the invalidation of the API key it ran with, a change of its
/// password, its deletion. The runner is the token's client: it refreshes
/// what it obtained, the user it ran as does not.
#[test]
fn what_a_runner_mints_dies_with_the_runner() {
    let srv = setup(&[TARGET, "other_user"]);
    let mint = |authorization: &str| {
        let r = srv
            .post(TOKEN)
            .header("Authorization", authorization)
            .header(RUN_AS, TARGET)
            .json(&json!({ "grant_type": "client_credentials" }))
            .send();
        assert_eq!(r.status, 200, "{}", r.text);
        r.str("access_token")
    };
    let r = srv
        .post("/_security/api_key")
        .basic(RUNNER, TEST_PW)
        .json(&json!({ "name": "runner-key" }))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let (id, encoded) = (r.str("id"), r.str("encoded"));
    let by_key = mint(&format!("ApiKey {encoded}"));
    srv.auth_bearer(&by_key).assert_is(
        200,
        &target_authentication(("_es_api_key", "_es_api_key"), "token"),
    );
    let r = srv
        .delete("/_security/api_key")
        .admin()
        .json(&json!({ "ids": [id] }))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        srv.auth_bearer(&by_key).status,
        401,
        "the key was invalidated"
    );

    // A password grant obtained while running as: the runner refreshes it.
    let r = srv
        .post(TOKEN)
        .basic(RUNNER, TEST_PW)
        .header(RUN_AS, TARGET)
        .json(&json!({ "grant_type": "password", "username": "other_user", "password": TEST_PW }))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let refresh = r.str("refresh_token");
    let r = srv.refresh_as((TARGET, TEST_PW), &refresh);
    assert_eq!(
        r.status, 400,
        "the user run as did not obtain it: {}",
        r.text
    );
    let r = srv.refresh_as((RUNNER, TEST_PW), &refresh);
    assert_eq!(r.status, 200, "{}", r.text);
    let obtained = r.str("access_token");

    let by_password = mint(&basic_header(RUNNER, TEST_PW));
    let r = srv
        .put(&format!("/_security/user/{RUNNER}/_password"))
        .admin()
        .json(&json!({ "password": "a-new-password" }))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    for token in [&by_password, &obtained] {
        assert_eq!(
            srv.auth_bearer(token).status,
            401,
            "the runner's password changed"
        );
    }
    let by_new_password = mint(&basic_header(RUNNER, "a-new-password"));
    let r = srv
        .delete(&format!("/_security/user/{RUNNER}"))
        .admin()
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        srv.auth_bearer(&by_new_password).status,
        401,
        "the runner was deleted"
    );
    srv.assert_basic_ok(TARGET, TEST_PW);
}
