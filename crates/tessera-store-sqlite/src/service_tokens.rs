//! Service tokens: one row per token, keyed by account and name, with the
//! SHA-256 of the secret. Not cached: every authentication with a service
//! token reads its row, so a deletion (by this process or by a store
//! command beside it) is seen by the next request.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};
use tessera_store::service_tokens;
use tessera_store::{ServiceTokenRecord, ServiceTokenStore, StoreResult};

use crate::{internal, SqliteStore};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS service_tokens (
    account     TEXT NOT NULL,
    name        TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account, name)
) WITHOUT ROWID;
";

fn list(c: &Connection, account: &str) -> rusqlite::Result<Vec<(String, Vec<u8>, i64)>> {
    c.prepare_cached(
        "SELECT name, secret_hash, created_at FROM service_tokens
         WHERE account = ?1 ORDER BY name",
    )?
    .query_map([account], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
    .collect()
}

#[async_trait]
impl ServiceTokenStore for SqliteStore {
    async fn create_service_token(&self, token: &ServiceTokenRecord) -> StoreResult<bool> {
        let token = token.clone();
        self.write_uncached(move |c| {
            c.prepare_cached(
                "INSERT INTO service_tokens (account, name, secret_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (account, name) DO NOTHING",
            )
            .and_then(|mut stmt| {
                stmt.execute(rusqlite::params![
                    token.account,
                    token.name,
                    token.secret_hash.as_slice(),
                    token.created_at
                ])
            })
            .map(|n| n == 1)
            .map_err(internal)
        })
        .await
    }

    async fn list_service_tokens(&self, account: &str) -> StoreResult<Vec<ServiceTokenRecord>> {
        let owned = account.to_owned();
        let rows = self.read(move |c| list(c, &owned)).await?;
        service_tokens::records(account, rows)
    }

    async fn delete_service_token(&self, account: &str, name: &str) -> StoreResult<bool> {
        let (account, name) = (account.to_owned(), name.to_owned());
        self.write_uncached(move |c| {
            c.prepare_cached("DELETE FROM service_tokens WHERE account = ?1 AND name = ?2")
                .and_then(|mut stmt| stmt.execute([&account, &name]))
                .map(|n| n > 0)
                .map_err(internal)
        })
        .await
    }

    async fn find_service_token(&self, account: &str, name: &str) -> StoreResult<Option<[u8; 32]>> {
        let (account, name) = (account.to_owned(), name.to_owned());
        let found: Option<Vec<u8>> = self
            .read(move |c| {
                c.prepare_cached(
                    "SELECT secret_hash FROM service_tokens WHERE account = ?1 AND name = ?2",
                )?
                .query_row([&account, &name], |r| r.get(0))
                .optional()
            })
            .await?;
        found.map(service_tokens::secret_hash).transpose()
    }
}
