//! The configured SAML realms, in the order of the realm chain, each
//! rebuilt when its IdP metadata file changes.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use tessera_domain::Millis;
use tessera_realms::saml::SamlRealm;

/// How often, at most, a realm's metadata file is looked at again.
pub const RELOAD_CHECK_MS: Millis = 5_000;

/// The SAML realms of the realm chain. Cheap to clone.
#[derive(Clone, Default)]
pub struct SamlRealms(Arc<Vec<Slot>>);

struct Slot {
    name: String,
    /// The config file's folder, against which the realm's paths resolve.
    base_dir: PathBuf,
    current: RwLock<Loaded>,
}

struct Loaded {
    realm: Arc<SamlRealm>,
    /// The metadata file's modification time and length when it was last
    /// read.
    mtime: Option<(SystemTime, u64)>,
    checked_at: Millis,
}

impl std::fmt::Debug for SamlRealms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|s| s.current().config.clone()))
            .finish()
    }
}

impl SamlRealms {
    /// The realms as loaded at start-up, each with the folder its paths are
    /// relative to; kept in the order of their `order` setting.
    pub fn new(mut loaded: Vec<(SamlRealm, PathBuf)>) -> Self {
        loaded.sort_by_key(|(r, _)| r.config.order);
        Self(Arc::new(
            loaded
                .into_iter()
                .map(|(realm, base_dir)| {
                    let mtime = modified(&base_dir.join(&realm.config.idp_metadata_path));
                    Slot {
                        name: realm.config.name.clone(),
                        base_dir,
                        current: RwLock::new(Loaded {
                            realm: Arc::new(realm),
                            mtime,
                            checked_at: Millis::MIN,
                        }),
                    }
                })
                .collect(),
        ))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The realm named `name`, its metadata reloaded if the file changed.
    pub fn get(&self, name: &str, now: Millis) -> Option<Arc<SamlRealm>> {
        self.0.iter().find(|s| s.name == name).map(|s| s.realm(now))
    }

    /// The one SAML realm, when there is exactly one.
    pub fn only(&self, now: Millis) -> Option<Arc<SamlRealm>> {
        match self.0.as_slice() {
            [one] => Some(one.realm(now)),
            _ => None,
        }
    }

    /// Every realm, in chain order.
    pub fn all(&self, now: Millis) -> Vec<Arc<SamlRealm>> {
        self.0.iter().map(|s| s.realm(now)).collect()
    }

    /// The first realm (in chain order) whose ACS is `acs`.
    pub fn by_acs(&self, acs: &str, now: Millis) -> Option<Arc<SamlRealm>> {
        self.0
            .iter()
            .map(|s| s.realm(now))
            .find(|r| r.config.sp_acs == acs)
    }
}

fn modified(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Slot {
    /// The realm as it is now, without looking at its file.
    fn current(&self) -> Arc<SamlRealm> {
        let loaded = self.current.read().unwrap_or_else(|e| e.into_inner());
        Arc::clone(&loaded.realm)
    }

    /// The realm, after looking at its metadata file if the last look is
    /// more than [`RELOAD_CHECK_MS`] old. A file that changed is loaded
    /// into a new realm; a broken one is logged and the old realm kept.
    fn realm(&self, now: Millis) -> Arc<SamlRealm> {
        {
            let loaded = self.current.read().unwrap_or_else(|e| e.into_inner());
            if now.saturating_sub(loaded.checked_at) < RELOAD_CHECK_MS {
                return Arc::clone(&loaded.realm);
            }
        }
        let mut loaded = self.current.write().unwrap_or_else(|e| e.into_inner());
        if now.saturating_sub(loaded.checked_at) < RELOAD_CHECK_MS {
            return Arc::clone(&loaded.realm);
        }
        loaded.checked_at = now;
        let config = loaded.realm.config.clone();
        let mtime = modified(&self.base_dir.join(&config.idp_metadata_path));
        if mtime == loaded.mtime {
            return Arc::clone(&loaded.realm);
        }
        loaded.mtime = mtime;
        match SamlRealm::load(config, &self.base_dir) {
            Ok(realm) => {
                tracing::info!(realm = %self.name, "SAML realm: IdP metadata reloaded");
                loaded.realm = Arc::new(realm);
            }
            Err(e) => tracing::warn!(
                realm = %self.name,
                error = %e,
                "SAML realm: the changed IdP metadata cannot be used; keeping the previous metadata"
            ),
        }
        Arc::clone(&loaded.realm)
    }
}
