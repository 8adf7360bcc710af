//! The nodes' read caches (`cluster_cache_ttl`) never honour what another
//! node took back once its call has answered.
//!
//! Credentials of every kind (Bearer tokens, a refreshed family, API keys,
//! Basic users) are made hot in every node's cache, and kept hot by
//! threads authenticating with them on every node while the revoking call
//! runs on one node: a token invalidated, a refresh token reused (which
//! revokes its family), a user disabled (which takes its password, tokens
//! and API keys with it). From the moment that call answers, every request
//! on every node with those credentials is refused.
//!
//! And the grace is where it must be: each call that takes something back
//! answers only `cluster_cache_ttl` after its commit (counted by the node
//! as `tessera_store_grace_waits_total`), and the calls that only add
//! answer without it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

const NODES: usize = 3;
/// The revoking workers, each with its own users and credentials.
const WORKERS: usize = 3;
const ROUNDS: usize = 6;
/// Requests per credential per node after each revoking call.
const CHECKS: usize = 14;
const TTL: &str = "500ms";

const GRACE_WAITS: &str = "tessera_store_grace_waits_total";
const HITS: &str = "tessera_store_cache_lookups_total{result=\"hit\"}";

/// A credential and how to present it.
#[derive(Clone, Debug)]
pub(crate) enum Cred {
    Bearer(String),
    Basic(String, String),
    ApiKey(String),
}

impl Cred {
    pub(crate) fn auth(&self) -> Auth<'_> {
        match self {
            Cred::Bearer(t) => Auth::Bearer(t),
            Cred::Basic(u, p) => Auth::Basic(u, p),
            Cred::ApiKey(k) => Auth::ApiKey(k),
        }
    }
}

pub(crate) fn authenticate(http: &Http, base: &str, cred: &Cred) -> Resp {
    arrived(
        "authenticate",
        http.send(Method::GET, base, AUTHENTICATE, cred.auth(), None),
    )
}

/// A request with a JSON body (none for `Value::Null`). A 503 (the
/// serializable transactions of concurrent workers conflicting more often
/// than the store retries) is not an answer that anything happened, so
/// the request is sent again, a few times.
pub(crate) fn call(
    http: &Http,
    base: &str,
    method: Method,
    path: &str,
    auth: Auth,
    body: &Value,
) -> Resp {
    let what = format!("{method} {path}");
    let body = (!body.is_null()).then_some(body);
    let mut tries = 0;
    loop {
        let r = arrived(&what, http.send(method.clone(), base, path, auth, body));
        tries += 1;
        if r.status != 503 || tries == 5 {
            return r;
        }
    }
}

pub(crate) fn admin() -> Auth<'static> {
    Auth::Basic(ADMIN, ADMIN_PW)
}

/// `body` posted to the token endpoint by `user`.
fn token_call(http: &Http, base: &str, (user, password): (&str, &str), body: &Value) -> Resp {
    call(
        http,
        base,
        Method::POST,
        TOKEN,
        Auth::Basic(user, password),
        body,
    )
}

/// Creates (or replaces) `user` as a superuser, as the admin on `base`.
pub(crate) fn put_superuser(http: &Http, base: &str, user: &str, password: &str) {
    let r = call(
        http,
        base,
        Method::PUT,
        &format!("/_security/user/{user}"),
        admin(),
        &json!({ "password": password, "roles": ["superuser"] }),
    );
    assert_eq!(r.status, 200, "create {user}: {}", r.text);
}

/// A password grant of `user` for itself.
pub(crate) fn grant(http: &Http, base: &str, user: &str, password: &str) -> Pair {
    let body = json!({ "grant_type": "password", "username": user, "password": password });
    let r = token_call(http, base, (user, password), &body);
    assert_eq!(r.status, 200, "grant for {user}: {}", r.text);
    Pair::from(&r)
}

fn refresh_as(http: &Http, base: &str, user: &str, password: &str, rt: &str) -> Resp {
    let body = json!({ "grant_type": "refresh_token", "refresh_token": rt });
    token_call(http, base, (user, password), &body)
}

/// Authenticates `rounds` times with every credential on every node,
/// each answered 200, so that every node holds them in its cache.
pub(crate) fn warm(http: &Http, bases: &[String], creds: &[Cred], rounds: usize, what: &str) {
    for base in bases {
        for cred in creds {
            for _ in 0..rounds {
                let r = authenticate(http, base, cred);
                assert_eq!(
                    r.status, 200,
                    "{what}: warming {cred:?} on {base}: {}",
                    r.text
                );
            }
        }
    }
}

/// Authenticates with every credential on every node until `stop`, so the
/// entries are refilled right up to the revoking commit.
pub(crate) fn keep_hot(
    bases: &[String],
    creds: &[Cred],
    stop: &Arc<AtomicBool>,
) -> thread::JoinHandle<()> {
    let (bases, creds, stop) = (bases.to_vec(), creds.to_vec(), Arc::clone(stop));
    thread::spawn(move || {
        let http = Http::new();
        while !stop.load(Ordering::SeqCst) {
            for base in &bases {
                for cred in &creds {
                    let _ = http.send(Method::GET, base, AUTHENTICATE, cred.auth(), None);
                }
            }
        }
    })
}

/// Warms `creds` on every node (each must authenticate, twice, so the
/// second answer is a cache hit), runs `revoke` while other threads keep
/// them hot, then checks that not one request with them succeeds on any
/// node. Returns the number of requests checked.
fn revoke_while_hot(
    bases: &[String],
    creds: &[Cred],
    what: &str,
    revoke: impl FnOnce() -> Resp,
    expect: u16,
) -> usize {
    let http = Http::new();
    warm(&http, bases, creds, 2, what);
    let stop = Arc::new(AtomicBool::new(false));
    let hot: Vec<_> = (0..2).map(|_| keep_hot(bases, creds, &stop)).collect();
    let r = revoke();
    stop.store(true, Ordering::SeqCst);
    assert_eq!(r.status, expect, "{what}: {}", r.text);
    let mut checked = 0;
    for _ in 0..CHECKS {
        for base in bases {
            for cred in creds {
                let r = authenticate(&http, base, cred);
                assert_eq!(
                    r.status, 401,
                    "{what}: {cred:?} still authenticates on {base} after the call answered: {}",
                    r.text
                );
                checked += 1;
            }
        }
    }
    for h in hot {
        h.join().expect("a warming thread panicked");
    }
    checked
}

/// One worker's rounds; returns the number of requests it checked.
fn worker(bases: &[String], w: usize) -> usize {
    let http = Http::new();
    let mut checked = 0;
    for round in 0..ROUNDS {
        let on = |k: usize| &bases[(w + round + k) % NODES];
        let (user, password) = (format!("hot{w}_{round}"), "hot-password".to_owned());
        put_superuser(&http, on(0), &user, &password);

        // A token invalidated by its access token.
        let doomed = grant(&http, on(1), &user, &password);
        checked += revoke_while_hot(
            bases,
            &[Cred::Bearer(doomed.access.clone())],
            "token invalidation",
            || {
                call(
                    &http,
                    on(2),
                    Method::DELETE,
                    TOKEN,
                    admin(),
                    &json!({ "token": doomed.access }),
                )
            },
            200,
        );

        // A family whose first refresh token is presented again: reuse
        // revokes the family, the successor included.
        let first = grant(&http, on(0), &user, &password);
        let r = refresh_as(&http, on(1), &user, &password, &first.refresh);
        assert_eq!(r.status, 200, "refresh: {}", r.text);
        let successor = Pair::from(&r);
        checked += revoke_while_hot(
            bases,
            &[
                Cred::Bearer(first.access.clone()),
                Cred::Bearer(successor.access.clone()),
            ],
            "refresh reuse",
            || refresh_as(&http, on(2), &user, &password, &first.refresh),
            400,
        );

        // The user disabled: its password, tokens and API keys die with it.
        let pair = grant(&http, on(1), &user, &password);
        let r = call(
            &http,
            on(2),
            Method::POST,
            "/_security/api_key",
            Auth::Basic(&user, &password),
            &json!({ "name": format!("key-{user}") }),
        );
        assert_eq!(r.status, 200, "create key: {}", r.text);
        let key = r.str("encoded");
        checked += revoke_while_hot(
            bases,
            &[
                Cred::Basic(user.clone(), password.clone()),
                Cred::Bearer(pair.access.clone()),
                Cred::ApiKey(key),
            ],
            "user disabled",
            || {
                call(
                    &http,
                    on(0),
                    Method::PUT,
                    &format!("/_security/user/{user}/_disable"),
                    admin(),
                    &Value::Null,
                )
            },
            200,
        );
    }
    checked
}

pub fn hot_credentials_die_on_every_node_once_the_revoking_call_answers(pg: &str) {
    let cluster = Cluster::start(
        pg,
        NODES,
        &["--cluster-cache-ttl", TTL, "--refresh-window", "0s"],
    );
    let bases = Arc::new(cluster.bases());
    let http = Http::new();
    let hits_before: Vec<f64> = bases.iter().map(|b| http.counter(b, HITS)).collect();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let bases = Arc::clone(&bases);
            thread::spawn(move || worker(&bases, w))
        })
        .collect();
    let checked: usize = join_all(workers, "revoking worker").into_iter().sum();
    assert!(checked >= 4000, "only {checked} requests checked");
    for (base, before) in bases.iter().zip(hits_before) {
        let hits = http.counter(base, HITS) - before;
        assert!(
            hits >= 1000.0,
            "{base} answered only {hits} reads from its cache"
        );
    }
}

/// Every kind of call that takes something back waits the grace; the calls
/// that only add do not.
pub fn every_revoking_call_waits_the_grace_and_adding_calls_do_not(pg: &str) {
    let ttl = Duration::from_millis(1000);
    let cluster = Cluster::start(
        pg,
        1,
        &[
            "--cluster-cache-ttl",
            "1s",
            "--refresh-window",
            "0s",
            "--cleanup-interval",
            "24h",
        ],
    );
    let node = &cluster.bases()[0];
    let http = Http::new();
    let password = "grace-password";
    let put_user = |name: &str, roles: &[&str]| {
        let r = call(
            &http,
            node,
            Method::PUT,
            &format!("/_security/user/{name}"),
            admin(),
            &json!({ "password": password, "roles": roles }),
        );
        assert_eq!(r.status, 200, "put user {name}: {}", r.text);
    };
    for name in [
        "g_token",
        "g_user",
        "g_pw",
        "g_del",
        "g_update",
        "g_disable",
    ] {
        put_user(name, &["superuser"]);
    }
    let r = call(
        &http,
        node,
        Method::PUT,
        "/_security/role/g_role",
        admin(),
        &json!({ "cluster": ["monitor"] }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let key = |name: &str| {
        let r = call(
            &http,
            node,
            Method::POST,
            "/_security/api_key",
            admin(),
            &json!({ "name": name }),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        r.str("id")
    };
    let client = {
        let r = call(
            &http,
            node,
            Method::POST,
            "/oauth2/register",
            admin(),
            &json!({ "client_name": "grace", "grant_types": ["client_credentials"] }),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        r.str("client_id")
    };
    let by_token = grant(&http, node, "g_token", password);
    let by_refresh = grant(&http, node, "g_token", password);
    let by_revoke = grant(&http, node, "g_token", password);
    let reused = grant(&http, node, "g_token", password);
    let r = refresh_as(&http, node, "g_token", password, &reused.refresh);
    assert_eq!(r.status, 200, "{}", r.text);
    grant(&http, node, "g_user", password);
    let key_id = key("grace-key");

    type Call<'a> = (&'a str, Box<dyn Fn() -> Resp + 'a>);
    let delete_token = |body: Value| {
        let http = &http;
        move || call(http, node, Method::DELETE, TOKEN, admin(), &body)
    };
    let calls: Vec<Call> = vec![
        (
            "invalidate an access token",
            Box::new(delete_token(json!({ "token": by_token.access }))),
        ),
        (
            "invalidate a refresh token",
            Box::new(delete_token(json!({ "refresh_token": by_refresh.refresh }))),
        ),
        (
            "invalidate a user's tokens",
            Box::new(delete_token(json!({ "username": "g_user" }))),
        ),
        (
            "refresh token reuse",
            Box::new(|| refresh_as(&http, node, "g_token", password, &reused.refresh)),
        ),
        (
            "revoke through /oauth2/revoke",
            Box::new(|| {
                arrived(
                    "revoke",
                    http.post_form_as(
                        node,
                        "/oauth2/revoke",
                        Auth::Basic("g_token", password),
                        &format!("token={}", by_revoke.access),
                    ),
                )
            }),
        ),
        (
            "invalidate an API key",
            Box::new(|| {
                call(
                    &http,
                    node,
                    Method::DELETE,
                    "/_security/api_key",
                    admin(),
                    &json!({ "ids": [key_id] }),
                )
            }),
        ),
        (
            "change a password",
            Box::new(|| {
                call(
                    &http,
                    node,
                    Method::POST,
                    "/_security/user/g_pw/_password",
                    admin(),
                    &json!({ "password": "another-password" }),
                )
            }),
        ),
        (
            "disable a user",
            Box::new(|| {
                call(
                    &http,
                    node,
                    Method::PUT,
                    "/_security/user/g_disable/_disable",
                    admin(),
                    &Value::Null,
                )
            }),
        ),
        (
            "change a user's roles",
            Box::new(|| {
                call(
                    &http,
                    node,
                    Method::PUT,
                    "/_security/user/g_update",
                    admin(),
                    &json!({ "roles": ["g_role"] }),
                )
            }),
        ),
        (
            "delete a user",
            Box::new(|| {
                call(
                    &http,
                    node,
                    Method::DELETE,
                    "/_security/user/g_del",
                    admin(),
                    &Value::Null,
                )
            }),
        ),
        (
            "change a role",
            Box::new(|| {
                call(
                    &http,
                    node,
                    Method::PUT,
                    "/_security/role/g_role",
                    admin(),
                    &json!({ "cluster": [] }),
                )
            }),
        ),
        (
            "delete a role",
            Box::new(|| {
                call(
                    &http,
                    node,
                    Method::DELETE,
                    "/_security/role/g_role",
                    admin(),
                    &Value::Null,
                )
            }),
        ),
        (
            "rotate an OAuth client's secret",
            Box::new(|| {
                call(
                    &http,
                    node,
                    Method::POST,
                    &format!("/oauth2/register/{client}/_rotate_secret"),
                    admin(),
                    &Value::Null,
                )
            }),
        ),
        (
            "delete an OAuth client",
            Box::new(|| {
                call(
                    &http,
                    node,
                    Method::DELETE,
                    &format!("/oauth2/register/{client}"),
                    admin(),
                    &Value::Null,
                )
            }),
        ),
        (
            "invalidate a realm's tokens",
            Box::new(delete_token(json!({ "realm_name": "default_native" }))),
        ),
    ];
    for (what, run) in &calls {
        let before = http.counter(node, GRACE_WAITS);
        let epoch = cache_epoch(cluster.store_url());
        let r = run();
        assert!(
            r.status < 300 || what.contains("reuse"),
            "{what}: {}",
            r.text
        );
        assert!(r.elapsed >= ttl, "{what} answered in {:?}", r.elapsed);
        let waited = http.counter(node, GRACE_WAITS) - before;
        assert!(waited >= 1.0, "{what} did not wait the grace");
        assert!(
            cache_epoch(cluster.store_url()) > epoch,
            "{what} did not move the revocation epoch"
        );
    }

    // Calls that only add, or rotate without taking anything back.
    let before = http.counter(node, GRACE_WAITS);
    let pair = grant(&http, node, ADMIN, ADMIN_PW);
    let r = refresh_as(&http, node, ADMIN, ADMIN_PW, &pair.refresh);
    assert_eq!(r.status, 200, "{}", r.text);
    let successor = Pair::from(&r);
    key("no-grace-key");
    let r = authenticate(&http, node, &Cred::Bearer(successor.access));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        http.counter(node, GRACE_WAITS),
        before,
        "a grant, a refresh, a new API key or an authentication waited the grace"
    );
}
