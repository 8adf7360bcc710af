//! The JWT realms' result cache: a validated token's [`Authentication`]
//! by the SHA-256 of the token and the presented client secret. An entry
//! ends at the earlier of the realm's `jwt.cache.ttl` and the token's
//! `exp`, on the injected clock; failures are never cached. The whole
//! cache is dropped when role mappings change on this node.

use std::collections::HashMap;
use std::sync::RwLock;

use tessera_domain::{Authentication, Millis};

#[derive(Default)]
pub struct JwtCache {
    max: usize,
    entries: RwLock<HashMap<[u8; 32], Entry>>,
}

struct Entry {
    who: Authentication,
    /// The token's `exp`, in ms.
    not_after: Millis,
    /// When the entry ends, in ms (never after `not_after`).
    until: Millis,
}

impl JwtCache {
    /// A cache of at most `max` entries (0: nothing is cached).
    pub fn new(max: usize) -> Self {
        Self {
            max,
            entries: RwLock::default(),
        }
    }

    /// The cached authentication and the token's `exp` (ms), if an entry
    /// for `key` is still alive at `now`.
    pub fn get(&self, key: &[u8; 32], now: Millis) -> Option<(Authentication, Millis)> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let e = entries.get(key)?;
        (now < e.until && now < e.not_after).then(|| (e.who.clone(), e.not_after))
    }

    pub fn insert(
        &self,
        key: [u8; 32],
        who: Authentication,
        not_after: Millis,
        until: Millis,
        now: Millis,
    ) {
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
        entries.insert(
            key,
            Entry {
                who,
                not_after,
                until: until.min(not_after),
            },
        );
    }

    pub fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}
