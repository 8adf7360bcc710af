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
