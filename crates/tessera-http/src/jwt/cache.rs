//! The JWT realms' result cache: a validated token's [`Authentication`]
//! by the SHA-256 of the token and the presented client secret. An entry
//! ends at the earlier of the realm's `jwt.cache.ttl` and the token's
//! `exp`, on the injected clock; failures are never cached. The whole
//! cache is dropped when role mappings change on this node, and an entry
//! is no longer served once its realm's JWKS has changed (the entry keeps
//! the generation of the keys that validated it).

use std::collections::HashMap;
use std::sync::RwLock;

use tessera_domain::{Authentication, Millis};

#[derive(Default)]
pub struct JwtCache {
    max: usize,
    entries: RwLock<HashMap<[u8; 32], Entry>>,
}

struct Entry {
    hit: Hit,
    /// When the entry ends, in ms (never after `not_after`).
    until: Millis,
}

/// A cached result: the user, the token's `exp`, and what validated it.
#[derive(Clone)]
pub struct Hit {
    pub who: Authentication,
    /// The token's `exp`, in ms.
    pub not_after: Millis,
    /// The index of the realm that validated the token, in chain order.
    pub realm: usize,
    /// The generation of that realm's keys when it did
    /// ([`tessera_realms::jose::JwksSource::generation`]; 0 without a JWKS).
    pub keys: u64,
}

impl JwtCache {
    /// A cache of at most `max` entries (0: nothing is cached).
    pub fn new(max: usize) -> Self {
        Self {
            max,
            entries: RwLock::default(),
        }
    }

    /// The cached result for `key`, if its entry is still alive at `now`.
    /// The caller still checks that its realm's keys are those of the hit.
    pub fn get(&self, key: &[u8; 32], now: Millis) -> Option<Hit> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let e = entries.get(key)?;
        (now < e.until && now < e.hit.not_after).then(|| e.hit.clone())
    }

    /// Caches `hit` for `key` until `until` (never past `hit.not_after`).
    pub fn insert(&self, key: [u8; 32], hit: Hit, until: Millis, now: Millis) {
        if self.max == 0 || until <= now {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.max {
            entries.retain(|_, e| now < e.until);
            if entries.len() >= self.max {
                entries.clear();
            }
        }
        let until = until.min(hit.not_after);
        entries.insert(key, Entry { hit, until });
    }

    pub fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}
