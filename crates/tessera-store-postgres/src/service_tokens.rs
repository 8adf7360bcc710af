//! Service tokens on PostgreSQL (migration 8): one row per token, keyed by
//! account and name, with the SHA-256 of the secret. Every authentication
//! reads its row, so a deletion is seen by every node once it has
//! committed.

use async_trait::async_trait;
use tessera_store::service_tokens;
use tessera_store::{ServiceTokenRecord, ServiceTokenStore, StoreResult};

use crate::db::Repeat;
use crate::PostgresStore;

#[async_trait]
impl ServiceTokenStore for PostgresStore {
    async fn create_service_token(&self, token: &ServiceTokenRecord) -> StoreResult<bool> {
        let hash = token.secret_hash.as_slice();
        self.db
            .run(
                "create_service_token",
                // Only adds: an existing token is never replaced.
                Repeat::Adds,
                attempt!(|c| {
                    let stmt = c
                        .prepare_cached(
                            "INSERT INTO service_tokens (account, name, secret_hash, created_at)
                             VALUES ($1, $2, $3, $4) ON CONFLICT (account, name) DO NOTHING",
                        )
                        .await?;
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                        [&token.account, &token.name, &hash, &token.created_at];
                    Ok(c.execute(&stmt, &params).await? == 1)
                }),
            )
            .await
    }

    async fn list_service_tokens(&self, account: &str) -> StoreResult<Vec<ServiceTokenRecord>> {
        let rows = self
            .db
            .run(
                "list_service_tokens",
                Repeat::Safe,
                attempt!(|c| {
                    let stmt = c
                        .prepare_cached(
                            "SELECT name, secret_hash, created_at FROM service_tokens
                             WHERE account = $1",
                        )
                        .await?;
                    let mut out = Vec::new();
                    for row in c.query(&stmt, &[&account]).await? {
                        let name: String = row.try_get(0)?;
                        let hash: Vec<u8> = row.try_get(1)?;
                        let created_at: i64 = row.try_get(2)?;
                        out.push((name, hash, created_at));
                    }
                    Ok(out)
                }),
            )
            .await?;
        service_tokens::records(account, rows)
    }

    async fn delete_service_token(&self, account: &str, name: &str) -> StoreResult<bool> {
        let sql = "DELETE FROM service_tokens WHERE account = $1 AND name = $2";
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&account, &name];
        Ok(self
            .revoking_execute("delete_service_token", sql, &params)
            .await?
            > 0)
    }

    async fn find_service_token(&self, account: &str, name: &str) -> StoreResult<Option<[u8; 32]>> {
        let found: Option<Vec<u8>> = self
            .db
            .run(
                "find_service_token",
                Repeat::Safe,
                attempt!(|c| {
                    let stmt = c
                        .prepare_cached(
                            "SELECT secret_hash FROM service_tokens
                             WHERE account = $1 AND name = $2",
                        )
                        .await?;
                    match c.query_opt(&stmt, &[&account, &name]).await? {
                        Some(row) => Ok(Some(row.try_get(0)?)),
                        None => Ok(None),
                    }
                }),
            )
            .await?;
        found.map(service_tokens::secret_hash).transpose()
    }
}
