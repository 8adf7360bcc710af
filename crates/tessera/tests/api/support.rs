//! The harness is `tessera_testkit`'s: a real Tessera node in-process (a
//! fresh SQLite data directory, real HTTP on 127.0.0.1:0) driven with
//! blocking clients. What only these tests use stays here.

use std::path::Path;

pub use tessera_testkit::es::*;
pub use tessera_testkit::http::{basic_header, client, keys, Api, Req, Resp};
pub use tessera_testkit::server::{
    source_budget, token_mode, Options, TestServer, ADMIN, ADMIN_PW,
};
pub use tessera_testkit::threads::join_all;

/// The password Elasticsearch's YAML tests use for their users.
pub const TEST_PW: &str = "x-pack-test-password";

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
