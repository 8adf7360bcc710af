//! The configured OpenID Connect realms, in the order of the realm chain,
//! each with its back channel and its provider's endpoints.
//!
//! A realm whose endpoints are all configured is ready at once. One that
//! needs discovery fetches the provider's document at start
//! ([`OidcRealms::discover_all`]) and, while the provider cannot be
//! reached or answers nonsense, refuses its logins (the reason in the
//! log) and tries again at most every [`DISCOVERY_RETRY`] when a login
//! asks for it. The server starts either way.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tessera_domain::time::millis;
use tessera_domain::Millis;
use tessera_realms::jose::JwksSource;
use tessera_realms::oidc::{OidcError, OidcRealmConfig, ProviderEndpoints, Rule};

use super::backchannel::{BackChannel, DISCOVERY_RETRY};
use super::id_token::jwks_source;

/// The OpenID Connect realms of the realm chain. Cheap to clone.
#[derive(Clone, Default)]
pub struct OidcRealms(Arc<Vec<Arc<OidcRealm>>>);

/// One realm: its settings, back channel and provider endpoints.
pub struct OidcRealm {
    pub config: OidcRealmConfig,
    /// The config file's folder, against which a JWKS file path resolves.
    pub base_dir: PathBuf,
    pub back: BackChannel,
    provider: RwLock<State>,
}

/// A realm's provider as a login uses it: its endpoints and its keys.
pub struct Provider {
    pub endpoints: ProviderEndpoints,
    pub jwks: Arc<JwksSource>,
}

impl Provider {
    fn new(endpoints: ProviderEndpoints, base_dir: &std::path::Path) -> Result<Provider, String> {
        let jwks =
            jwks_source(&endpoints.jwks, base_dir).map_err(|e| format!("[op.jwkset_path] {e}"))?;
        Ok(Provider {
            endpoints,
            jwks: Arc::new(jwks),
        })
    }
}

enum State {
    Ready(Arc<Provider>),
    /// Not discovered yet: why, and when to try again.
    Unavailable {
        reason: String,
        retry_at: Millis,
    },
}

impl std::fmt::Debug for OidcRealms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|r| &r.config))
            .finish()
    }
}

impl OidcRealms {
    /// The realms as configured (each with the folder its paths are
    /// relative to), kept in the order of their `order` setting.
    pub fn new(mut configs: Vec<(OidcRealmConfig, PathBuf)>) -> Result<Self, String> {
        configs.sort_by_key(|(c, _)| c.order);
        let mut realms = Vec::new();
        for (config, base_dir) in configs {
            let back = BackChannel::new(&config.http)?;
            let provider = if config.needs_discovery() {
                State::Unavailable {
                    reason: "the provider's discovery document was not fetched yet".into(),
                    retry_at: Millis::MIN,
                }
            } else {
                // Configured endpoints; a JWKS file is read now, so that a
                // missing or broken one stops the start.
                let endpoints = ProviderEndpoints::resolve(&config, None)?;
                let provider = Provider::new(endpoints, &base_dir)
                    .map_err(|e| format!("realm [{}]: {e}", config.name))?;
                State::Ready(Arc::new(provider))
            };
            realms.push(Arc::new(OidcRealm {
                config,
                base_dir,
                back,
                provider: RwLock::new(provider),
            }));
        }
        Ok(Self(Arc::new(realms)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<Arc<OidcRealm>> {
        self.0.iter().find(|r| r.config.name == name).cloned()
    }

    /// The first realm (in chain order) whose provider is `issuer`.
    pub fn by_issuer(&self, issuer: &str) -> Option<Arc<OidcRealm>> {
        self.0.iter().find(|r| r.config.issuer == issuer).cloned()
    }

    /// The first realm whose redirect URI is the start of `callback`.
    pub fn by_callback(&self, callback: &str) -> Option<Arc<OidcRealm>> {
        self.0
            .iter()
            .find(|r| {
                callback
                    .strip_prefix(r.config.redirect_uri.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['?', '#']))
            })
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<OidcRealm>> {
        self.0.to_vec()
    }

    /// Discovers the providers of the realms that need it (at start). A
    /// provider that cannot be reached is logged; its realm tries again
    /// on a later login.
    pub async fn discover_all(&self, now: Millis) {
        for realm in self.0.iter() {
            if let Err(e) = realm.provider(now).await {
                tracing::warn!(
                    realm = %realm.config.name,
                    reason = %e.detail,
                    "OpenID Connect realm: the provider could not be discovered; its logins are refused until it can"
                );
            }
        }
    }
}

impl OidcRealm {
    /// The provider's endpoints and keys, discovering them if needed and due.
    pub async fn provider(&self, now: Millis) -> Result<Arc<Provider>, OidcError> {
        {
            let provider = self.provider.read().unwrap_or_else(|e| e.into_inner());
            match &*provider {
                State::Ready(p) => return Ok(Arc::clone(p)),
                State::Unavailable { reason, retry_at } if now < *retry_at => {
                    return Err(OidcError::new(Rule::Unavailable, reason.clone()))
                }
                State::Unavailable { .. } => {}
            }
        }
        // Claim the attempt, so that concurrent logins do not all ask.
        self.set_unavailable("discovery in progress".into(), now);
        let result = match self.back.discover(&self.config.issuer).await {
            Ok(d) => ProviderEndpoints::resolve(&self.config, Some(&d))
                .and_then(|endpoints| Provider::new(endpoints, &self.base_dir)),
            Err(e) => Err(e),
        };
        match result {
            Ok(provider) => {
                tracing::info!(realm = %self.config.name, "OpenID Connect realm: provider discovered");
                let provider = Arc::new(provider);
                *self.provider.write().unwrap_or_else(|e| e.into_inner()) =
                    State::Ready(Arc::clone(&provider));
                Ok(provider)
            }
            Err(reason) => {
                let reason = format!("discovery failed: {reason}");
                self.set_unavailable(reason.clone(), now);
                Err(OidcError::new(Rule::Unavailable, reason))
            }
        }
    }

    fn set_unavailable(&self, reason: String, now: Millis) {
        *self.provider.write().unwrap_or_else(|e| e.into_inner()) = State::Unavailable {
            reason,
            retry_at: now.saturating_add(millis(DISCOVERY_RETRY)),
        };
    }
}
