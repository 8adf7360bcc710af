//! The pool of read-only connections.

use super::*;

/// Read connections kept open between reads. Enough for every request a
/// busy node has in flight, so connections (and their page caches) are
/// reused instead of reopened.
const READ_POOL_MAX_IDLE: usize = 64;

pub(crate) struct ReadPool {
    pub(crate) path: PathBuf,
    pub(crate) idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    pub(crate) fn take(&self) -> StoreResult<Connection> {
        if let Some(conn) = self.idle.lock().expect("read pool lock").pop() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(unavailable)?;
        schema::prepare_reader(&conn).map_err(internal)?;
        Ok(conn)
    }

    pub(crate) fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().expect("read pool lock");
        if idle.len() < READ_POOL_MAX_IDLE {
            idle.push(conn);
        }
    }
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}
