//! Updates of API keys by their owner: one job on the writer, so an update
//! and an invalidation of the same key are serialised, and a revoking
//! write of the cached keys (the serving process's cache forgets them
//! before anyone is answered).

use tessera_domain::api_key::KeyUpdate;
use tessera_store::api_key_updates::{self, ApiKeyUpdateStore, KeyOwner, KeyUpdated};

use super::*;

#[async_trait]
impl ApiKeyUpdateStore for SqliteStore {
    async fn update_api_keys(
        &self,
        owner: &KeyOwner,
        ids: &[String],
        change: &KeyUpdate,
        now: Millis,
    ) -> StoreResult<Vec<(String, KeyUpdated)>> {
        let ids = api_key_updates::distinct(ids);
        let filter = owner.filter(&ids);
        let change = change.clone();
        self.write(Affects::API_KEYS, move |c| {
            let found = select_api_keys(c, &filter)?;
            let mut update = c
                .prepare_cached(
                    "UPDATE api_keys SET owner = ?2, expires_at = ?3, role_descriptors = ?4,
                       metadata = ?5 WHERE id = ?1 AND invalidated_at IS NULL",
                )
                .map_err(internal)?;
            let mut outcome = Vec::with_capacity(ids.len());
            for id in &ids {
                let key = found.iter().find(|k| &k.id == id);
                let (what, next) = api_key_updates::decide(key, &change, now);
                if let Some(next) = next {
                    let r = ApiKeyRow::from_record(&next)?;
                    update
                        .execute(params![
                            r.id,
                            r.owner,
                            r.expires_at,
                            r.role_descriptors,
                            r.metadata
                        ])
                        .map_err(internal)?;
                }
                outcome.push((id.clone(), what));
            }
            Ok(outcome)
        })
        .await
    }
}
