//! Service tokens: the credentials of the built-in service accounts
//! (`tessera_domain::service_account`), kept as the SHA-256 of their
//! secrets. Authentication reads [`ServiceTokenStore::find_service_token`]
//! on every request that presents one (no cache), so a deletion takes
//! effect on every node as soon as it has returned.

use async_trait::async_trait;

use crate::{StoreError, StoreResult};

pub use tessera_domain::service_account::ServiceTokenRecord;

/// A stored hash, checked to be a SHA-256.
pub fn secret_hash(bytes: Vec<u8>) -> StoreResult<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Internal("a service token hash is not 32 bytes".into()))
}

/// The account's tokens from stored `(name, hash, created_at)` rows,
/// sorted by name (here rather than by a database's collation, so every
/// backend orders names alike).
pub fn records(
    account: &str,
    rows: Vec<(String, Vec<u8>, i64)>,
) -> StoreResult<Vec<ServiceTokenRecord>> {
    let mut tokens = rows
        .into_iter()
        .map(|(name, hash, created_at)| {
            Ok(ServiceTokenRecord {
                account: account.to_owned(),
                name,
                secret_hash: secret_hash(hash)?,
                created_at,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    tokens.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tokens)
}

#[async_trait]
pub trait ServiceTokenStore: Send + Sync {
    /// Stores a new token. Returns `false`, storing nothing, when the
    /// account already has a token of that name. Returns after it is
    /// durably committed.
    async fn create_service_token(&self, token: &ServiceTokenRecord) -> StoreResult<bool>;
    /// The account's tokens (`namespace/service`), sorted by name.
    async fn list_service_tokens(&self, account: &str) -> StoreResult<Vec<ServiceTokenRecord>>;
    /// Returns whether the token existed. Once this has returned, no node
    /// authenticates it.
    async fn delete_service_token(&self, account: &str, name: &str) -> StoreResult<bool>;
    /// The SHA-256 of the secret of the account's token `name`, if it
    /// exists.
    async fn find_service_token(&self, account: &str, name: &str) -> StoreResult<Option<[u8; 32]>>;
}
