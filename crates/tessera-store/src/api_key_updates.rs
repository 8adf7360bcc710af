//! Updates of existing API keys by their owner (Elasticsearch's update and
//! bulk update): a supertrait of [`Store`](crate::Store).

use async_trait::async_trait;
use tessera_domain::api_key::{ApiKeyRecord, KeyUpdate, UpdateRefusal};
use tessera_domain::Millis;

use crate::{ApiKeyFilter, StoreResult};

/// Whose keys an update may touch: the owner's name and realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOwner {
    pub username: String,
    pub realm: String,
}

impl KeyOwner {
    /// The filter of the owner's keys among `ids`.
    pub fn filter(&self, ids: &[String]) -> ApiKeyFilter {
        ApiKeyFilter {
            ids: Some(ids.to_vec()),
            username: Some(self.username.clone()),
            realm: Some(self.realm.clone()),
            ..Default::default()
        }
    }
}

/// What an update did to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUpdated {
    Updated,
    /// The key already was as asked.
    Noop,
    /// No key of that id belongs to the owner.
    NotFound,
    /// The key is invalidated or expired.
    Refused(UpdateRefusal),
}

/// The outcome of one id: [`ApiKeyRecord::updated`] decides it on the key
/// as read in the updating transaction.
pub fn decide(
    key: Option<&ApiKeyRecord>,
    change: &KeyUpdate,
    now: Millis,
) -> (KeyUpdated, Option<ApiKeyRecord>) {
    match key.map(|k| k.updated(change, now)) {
        None => (KeyUpdated::NotFound, None),
        Some(Err(refusal)) => (KeyUpdated::Refused(refusal), None),
        Some(Ok(None)) => (KeyUpdated::Noop, None),
        Some(Ok(Some(next))) => (KeyUpdated::Updated, Some(next)),
    }
}

#[async_trait]
pub trait ApiKeyUpdateStore {
    /// Applies `change` at `now` to each key of `ids` that `owner` owns, in
    /// one transaction, and says what happened to each id (in the order
    /// asked, each once). Only the role descriptors, metadata, expiration
    /// and owner snapshot change; a key that is invalidated (or expired)
    /// when the transaction reads it is refused, and an update never
    /// undoes an invalidation that raced it. Once this has returned, every
    /// read on any node sees the updated keys.
    async fn update_api_keys(
        &self,
        owner: &KeyOwner,
        ids: &[String],
        change: &KeyUpdate,
        now: Millis,
    ) -> StoreResult<Vec<(String, KeyUpdated)>>;
}

/// `ids` in order, each once.
pub fn distinct(ids: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.iter().filter(|i| seen.insert(*i)).cloned().collect()
}
