//! The harness is `tessera_testkit`'s: a real Tessera node in-process (a
//! fresh SQLite data directory, real HTTP on 127.0.0.1:0) driven with
//! blocking clients, with the OAuth endpoints' conveniences and assertions.

pub use tessera_testkit::es::{AUTHENTICATE, TOKEN as ES_TOKEN};
pub use tessera_testkit::http::Resp;
pub use tessera_testkit::oauth::*;
pub use tessera_testkit::server::{source_budget, Options, TestServer, ADMIN, ADMIN_PW};
