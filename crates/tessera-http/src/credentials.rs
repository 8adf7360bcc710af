//! The verified-credentials cache for Basic authentication.
//!
//! Verifying a password costs an argon2id computation by design. Repeated
//! Basic authentication of the same user with the same password skips it:
//! the cache remembers, per user, a keyed hash of the password that was
//! verified and the stored hash it was verified against. A hit requires
//! both to match, and the stored hash is re-read on every request, so a
//! password change (on any node) or a deletion makes the entry useless at
//! once; disabled users are refused before the cache is consulted. Entries
//! are also dropped eagerly on change, disable and delete.

use std::collections::HashMap;
use std::sync::RwLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tessera_domain::crypto;

const MAX_ENTRIES: usize = 100_000;

pub struct CredentialCache {
    /// Random per process: the cache's keyed hashes mean nothing elsewhere.
    key: [u8; 32],
    entries: RwLock<HashMap<String, Entry>>,
}

struct Entry {
    password_mac: [u8; 32],
    stored_hash: String,
}

impl Default for CredentialCache {
    fn default() -> Self {
        Self {
            key: crypto::random_bytes(),
            entries: RwLock::new(HashMap::new()),
        }
    }
}

impl CredentialCache {
    fn mac(&self, username: &str, password: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(username.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Whether `password` was already verified against `stored_hash`.
    pub fn hit(&self, username: &str, password: &str, stored_hash: &str) -> bool {
        let mac = self.mac(username, password);
        let entries = self.entries.read().expect("credential cache lock");
        entries
            .get(username)
            .is_some_and(|e| crypto::ct_eq(&e.password_mac, &mac) && e.stored_hash == stored_hash)
    }

    pub fn remember(&self, username: &str, password: &str, stored_hash: &str) {
        let entry = Entry {
            password_mac: self.mac(username, password),
            stored_hash: stored_hash.to_owned(),
        };
        let mut entries = self.entries.write().expect("credential cache lock");
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(username) {
            entries.clear();
        }
        entries.insert(username.to_owned(), entry);
    }

    pub fn forget(&self, username: &str) {
        self.entries
            .write()
            .expect("credential cache lock")
            .remove(username);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_only_for_same_password_and_stored_hash() {
        let c = CredentialCache::default();
        assert!(!c.hit("u", "pw", "h1"));
        c.remember("u", "pw", "h1");
        assert!(c.hit("u", "pw", "h1"));
        assert!(!c.hit("u", "pw2", "h1"));
        assert!(
            !c.hit("u", "pw", "h2"),
            "a changed stored hash invalidates the entry"
        );
        assert!(!c.hit("v", "pw", "h1"));
        c.forget("u");
        assert!(!c.hit("u", "pw", "h1"));
    }
}
