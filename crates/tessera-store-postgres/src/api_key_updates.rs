//! Updates of API keys by their owner on PostgreSQL: one serializable
//! transaction that reads the owner's keys and updates them, so an update
//! racing an invalidation of the same key is ordered before or after it.
//! The `invalidated_at IS NULL` condition keeps an update from ever
//! writing over an invalidation.

use tessera_domain::api_key::KeyUpdate;
use tessera_store::api_key_updates::{self, ApiKeyUpdateStore, KeyOwner, KeyUpdated};

use super::*;

async fn update_attempt(
    c: &mut Client,
    owner: &KeyOwner,
    ids: &[String],
    change: &KeyUpdate,
    now: Millis,
) -> Result<Bumped<Vec<(String, KeyUpdated)>>, Fail> {
    let tx = begin(c, IsolationLevel::Serializable).await?;
    let found = select_api_keys(&tx, &owner.filter(ids)).await?;
    let stmt = tx
        .prepare_cached(
            "UPDATE api_keys SET owner = $2, expires_at = $3, role_descriptors = $4, metadata = $5
             WHERE id = $1 AND invalidated_at IS NULL",
        )
        .await?;
    let mut outcome = Vec::with_capacity(ids.len());
    for id in ids {
        let key = found.iter().find(|k| &k.id == id);
        let (what, next) = api_key_updates::decide(key, change, now);
        if let Some(next) = next {
            let r = ApiKeyRow::from_record(&next)?;
            tx.execute(
                &stmt,
                &[
                    &r.id,
                    &r.owner,
                    &r.expires_at,
                    &r.role_descriptors,
                    &r.metadata,
                ],
            )
            .await?;
        }
        outcome.push((id.clone(), what));
    }
    commit_bumped(tx, outcome).await
}

#[async_trait]
impl ApiKeyUpdateStore for PostgresStore {
    async fn update_api_keys(
        &self,
        owner: &KeyOwner,
        ids: &[String],
        change: &KeyUpdate,
        now: Millis,
    ) -> StoreResult<Vec<(String, KeyUpdated)>> {
        let ids = &api_key_updates::distinct(ids);
        self.db
            .revoking(
                "update_api_keys",
                attempt!(|c| update_attempt(c, owner, ids, change, now).await),
            )
            .await
    }
}
