//! The fixtures live in the crate's `testing` module, which the server's
//! tests share.

pub use tessera_realms::testing::*;
