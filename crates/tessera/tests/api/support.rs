//! The harness is `tessera_testkit`'s: a real Tessera node in-process (a
//! fresh SQLite data directory, real HTTP on 127.0.0.1:0) driven with
//! blocking clients. What only these tests use stays here.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_testkit::process::{tessera_command, Process};

pub use tessera_testkit::es::*;
pub use tessera_testkit::http::{basic_header, client, keys, Api, Req, Resp};
pub use tessera_testkit::server::{
    source_budget, token_mode, Options, TestServer, ADMIN, ADMIN_PW,
};
pub use tessera_testkit::threads::join_all;

/// The password Elasticsearch's YAML tests use for their users.
pub const TEST_PW: &str = "x-pack-test-password";

/// The built-in roles, as `GET /_security/role` lists them (before the
/// stored ones).
pub const BUILT_IN_ROLES: [&str; 6] = [
    "superuser",
    "kibana_system",
    "kibana_admin",
    "viewer",
    "editor",
    "monitoring_user",
];

/// Asserts who may use a security administration API (`api`: the word in
/// its action names, `cluster:admin/xpack/security/<api>/<verb>`): a
/// `read_security` user (`reader`: name and role) is refused a `PUT` of
/// `body` to `put` and a `DELETE` of `delete` with 403s that name
/// `manage_security`; a user with neither privilege (`other`: name and
/// role) is refused a `GET` of `get` with one that names `read_security`
/// too.
pub fn assert_changes_need_manage_security(
    srv: &Api,
    api: &str,
    (reader, other): ((&str, &str), (&str, &str)),
    (put, body): (&str, &Value),
    delete: &str,
    get: &str,
) {
    let action = |verb: &str| format!("cluster:admin/xpack/security/{api}/{verb}");
    let manage = "manage_security,all";
    let r = srv.put(put).basic(reader.0, TEST_PW).json(body).send();
    assert_forbidden(&r, &action("put"), reader.0, reader.1, manage);
    let r = srv.delete(delete).basic(reader.0, TEST_PW).send();
    assert_forbidden(&r, &action("delete"), reader.0, reader.1, manage);
    let r = srv.get(get).basic(other.0, TEST_PW).send();
    let read = "read_security,manage_security,all";
    assert_forbidden(&r, &action("get"), other.0, other.1, read);
}

/// The dashboard's own user (`kibana_system`), which calls the realms'
/// endpoints for the browser.
pub const DASHBOARD: &str = "dashboard";
pub const DASHBOARD_PW: &str = "dashboard-password";

/// The dashboard's `POST` of `body` to `path` (the realms' endpoints
/// that the dashboard calls for the browser).
pub fn dashboard_post(srv: &Api, path: &str, body: &Value) -> Resp {
    srv.post(path)
        .basic(DASHBOARD, DASHBOARD_PW)
        .json(body)
        .send()
}

/// A real `tessera` process (the binary Cargo built; `name` in its log
/// lines) serving with the config file `config` and the environment `env`,
/// ready, with the
/// dashboard's user and the role mapping `mapping` (its JSON document)
/// under `mapping_name`.
pub fn serve_for_dashboard(
    name: &str,
    config: &Path,
    env: &[(&str, &str)],
    (mapping_name, mapping): (&str, Value),
) -> (Api, Process) {
    let mut cmd = tessera_command(env!("CARGO_BIN_EXE_tessera").as_ref());
    cmd.env("TESSERA_BOOTSTRAP_PASSWORD", ADMIN_PW);
    cmd.envs(env.iter().copied());
    let mut node = Process::serve(name, cmd, None, &["--config", config.to_str().unwrap()]);
    node.expect_ready();
    let srv = Api::new(&node.base);
    srv.put_user(DASHBOARD, DASHBOARD_PW, &["kibana_system"]);
    let r = srv
        .put(&format!("/_security/role_mapping/{mapping_name}"))
        .admin()
        .json(&mapping)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    (srv, node)
}

/// The audit log's lines written so far, each parsed.
pub fn audit_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Waits (at most two seconds: the audit writer flushes within one) until
/// an event matching `want` is in the audit log at `path`, and returns it.
pub fn wait_event(path: &Path, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(e) = audit_lines(path).into_iter().find(|e| want(e)) {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "no such audit event within 2s; the log holds:\n{}",
            std::fs::read_to_string(path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens the server's SQLite file read-only (to observe what it stored).
pub fn open_db_read_only(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("opening the store read-only")
}

pub fn count_tokens(db: &rusqlite::Connection) -> i64 {
    db.query_row("SELECT COUNT(*) FROM token_pairs", [], |r| r.get(0))
        .expect("counting tokens")
}

/// What one refresher saw: the refresh's status and body, then the status
/// and body of `_authenticate` with the access token it got.
pub type RefreshSeen = (u16, serde_json::Value, u16, serde_json::Value);

/// `n` refreshes of `refresh` by the client `(user, password)` released at
/// the same instant on their own threads, each followed at once by
/// `_authenticate` with what it got: a dashboard refreshing one login.
pub fn refresh_race(
    base: &str,
    (user, password): (&str, &str),
    refresh: &str,
    n: usize,
) -> Vec<RefreshSeen> {
    use std::sync::{Arc, Barrier};
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            let (base, user, password, refresh) = (
                base.to_owned(),
                user.to_owned(),
                password.to_owned(),
                refresh.to_owned(),
            );
            std::thread::spawn(move || {
                let client = client();
                barrier.wait();
                let r = Req::new(&client, &base, reqwest::Method::POST, TOKEN)
                    .basic(&user, &password)
                    .json(&serde_json::json!({"grant_type": "refresh_token", "refresh_token": refresh}))
                    .send();
                let access = r.body["access_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let a = Req::new(&client, &base, reqwest::Method::GET, AUTHENTICATE)
                    .bearer(&access)
                    .send();
                (r.status, r.body, a.status, a.body)
            })
        })
        .collect();
    join_all(handles, "a refreshing dashboard")
}
