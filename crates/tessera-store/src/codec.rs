//! The column-level shape of stored records, shared by every SQL backend so
//! that each one only moves values in and out of its driver.

use tessera_domain::api_key::ApiKeyRecord;
use tessera_domain::oauth::{AuthMethod, ClientMetadata, GrantType, OAuthClientRecord};
use tessera_domain::token::Refreshed;
use tessera_domain::user::UserRecord;
use tessera_domain::{Authentication, ClientRef, TokenKey, TokenRecord};

use crate::{StoreError, StoreResult};

/// A token record flattened into columns: PostgreSQL's `tokens` table
/// holds them as they are; SQLite spreads them over `token_pairs`,
/// `grants` and `refreshes` (see its `pairs` module).
#[derive(Clone)]
pub struct TokenRow {
    pub id: String,
    pub access_hash: Vec<u8>,
    pub refresh_hash: Option<Vec<u8>>,
    pub family_id: String,
    pub generation: i64,
    pub username: String,
    pub realm: String,
    pub subject: String,
    pub client: String,
    pub created_at: i64,
    pub access_expires_at: i64,
    pub refresh_expires_at: Option<i64>,
    pub access_invalidated: bool,
    pub refresh_invalidated: bool,
    pub refreshed_at: Option<i64>,
    pub successor_id: Option<String>,
    pub sealed_successor: Option<Vec<u8>>,
    pub purge_after: i64,
    /// The OAuth scope as a JSON array of strings; NULL is unrestricted.
    pub scope: Option<String>,
    /// The family's cap ([`TokenRecord::not_after`]).
    pub not_after: Option<i64>,
    /// [`TokenRecord::metadata`] as a JSON object; NULL when there is none.
    pub token_metadata: Option<String>,
}

/// Every column but the metadata's text, of which only the length shows
/// (it may hold a secret: an OpenID Connect ID token, kept for logout).
impl std::fmt::Debug for TokenRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRow")
            .field("id", &self.id)
            .field("family_id", &self.family_id)
            .field("generation", &self.generation)
            .field("username", &self.username)
            .field("realm", &self.realm)
            .field("client", &self.client)
            .field("created_at", &self.created_at)
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .field("access_invalidated", &self.access_invalidated)
            .field("refresh_invalidated", &self.refresh_invalidated)
            .field("refreshed_at", &self.refreshed_at)
            .field("successor_id", &self.successor_id)
            .field("purge_after", &self.purge_after)
            .field("scope", &self.scope)
            .field("not_after", &self.not_after)
            .field(
                "token_metadata_bytes",
                &self.token_metadata.as_ref().map(String::len),
            )
            .finish_non_exhaustive()
    }
}

/// The column list in the order [`TokenRow`] declares them, for SELECTs
/// and INSERTs (21 columns).
pub const TOKEN_COLUMNS: &str = "id, access_hash, refresh_hash, family_id, generation, username, realm, subject, client, created_at, access_expires_at, refresh_expires_at, access_invalidated, refresh_invalidated, refreshed_at, successor_id, sealed_successor, purge_after, scope, not_after, token_metadata";

impl TokenRow {
    pub fn from_record(r: &TokenRecord) -> StoreResult<Self> {
        Ok(Self {
            id: r.id.clone(),
            access_hash: r.access_hash.0.to_vec(),
            refresh_hash: r.refresh_hash.map(|h| h.0.to_vec()),
            family_id: r.family_id.clone(),
            generation: i64::from(r.generation),
            username: r.subject.username.clone(),
            realm: r.subject.authentication_realm.name.to_string(),
            subject: to_json(&r.subject)?,
            client: to_json(&r.client)?,
            created_at: r.created_at,
            access_expires_at: r.access_expires_at,
            refresh_expires_at: r.refresh_expires_at,
            access_invalidated: r.access_invalidated,
            refresh_invalidated: r.refresh_invalidated,
            refreshed_at: r.refreshed.as_ref().map(|d| d.at),
            successor_id: r.refreshed.as_ref().map(|d| d.successor_id.clone()),
            sealed_successor: r.refreshed.as_ref().map(|d| d.sealed_successor.clone()),
            purge_after: r.purgeable_after(),
            scope: r.scope.as_ref().map(to_json).transpose()?,
            not_after: r.not_after,
            token_metadata: r.metadata.as_ref().map(to_json).transpose()?,
        })
    }

    pub fn into_record(self) -> StoreResult<TokenRecord> {
        let subject: Authentication = from_json(&self.subject)?;
        let client: ClientRef = from_json(&self.client)?;
        let refreshed = match (self.refreshed_at, self.successor_id, self.sealed_successor) {
            (Some(at), Some(successor_id), Some(sealed_successor)) => Some(Refreshed {
                at,
                successor_id,
                sealed_successor,
            }),
            (None, None, None) => None,
            _ => {
                return Err(StoreError::Internal(format!(
                    "token {} has a partial refresh state",
                    self.id
                )))
            }
        };
        Ok(TokenRecord {
            id: self.id,
            access_hash: hash_from(&self.access_hash)?,
            refresh_hash: self.refresh_hash.as_deref().map(hash_from).transpose()?,
            family_id: self.family_id,
            generation: u32::try_from(self.generation)
                .map_err(|_| StoreError::Internal("negative generation".into()))?,
            subject,
            client,
            scope: self.scope.as_deref().map(from_json).transpose()?,
            created_at: self.created_at,
            access_expires_at: self.access_expires_at,
            refresh_expires_at: self.refresh_expires_at,
            access_invalidated: self.access_invalidated,
            refresh_invalidated: self.refresh_invalidated,
            refreshed,
            not_after: self.not_after,
            metadata: self.token_metadata.as_deref().map(from_json).transpose()?,
        })
    }
}

fn hash_from(bytes: &[u8]) -> StoreResult<TokenKey> {
    <[u8; 32]>::try_from(bytes)
        .map(TokenKey)
        .map_err(|_| StoreError::Internal("stored token hash is not 32 bytes".into()))
}

/// A user flattened into the columns of the `users` table.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub username: String,
    pub password_hash: String,
    pub roles: String,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub metadata: String,
    pub enabled: bool,
}

pub const USER_COLUMNS: &str =
    "username, password_hash, roles, full_name, email, metadata, enabled";

impl UserRow {
    pub fn into_record(self) -> StoreResult<UserRecord> {
        Ok(UserRecord {
            username: self.username,
            password_hash: self.password_hash,
            roles: from_json(&self.roles)?,
            full_name: self.full_name,
            email: self.email,
            metadata: from_json(&self.metadata)?,
            enabled: self.enabled,
        })
    }
}

pub fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Internal(format!("encoding a stored value: {e}")))
}

pub fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Internal(format!("decoding a stored value: {e}")))
}

/// Elasticsearch's per-record counting for invalidation by user or realm:
/// each half of an active pair counts once, as newly or previously
/// invalidated.
pub fn count_invalidation(
    counts: &mut crate::InvalidateCounts,
    has_refresh: bool,
    refresh_was: bool,
    access_was: bool,
) {
    let mut tally = |already: bool| {
        if already {
            counts.previously_invalidated += 1;
        } else {
            counts.invalidated += 1;
        }
    };
    if has_refresh {
        tally(refresh_was);
    }
    tally(access_was);
}

/// An API key flattened into the columns of the `api_keys` table.
#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    pub secret_hash: Vec<u8>,
    pub username: String,
    pub realm: String,
    pub owner: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub invalidated_at: Option<i64>,
    pub role_descriptors: String,
    pub metadata: String,
}

pub const API_KEY_COLUMNS: &str = "id, name, secret_hash, username, realm, owner, created_at, expires_at, invalidated_at, role_descriptors, metadata";

impl ApiKeyRow {
    pub fn from_record(k: &ApiKeyRecord) -> StoreResult<Self> {
        Ok(Self {
            id: k.id.clone(),
            name: k.name.clone(),
            secret_hash: k.secret_hash.to_vec(),
            username: k.owner.username.clone(),
            realm: k.owner.authentication_realm.name.to_string(),
            owner: to_json(&k.owner)?,
            created_at: k.created_at,
            expires_at: k.expires_at,
            invalidated_at: k.invalidated_at,
            role_descriptors: to_json(&k.role_descriptors)?,
            metadata: to_json(&k.metadata)?,
        })
    }

    pub fn into_record(self) -> StoreResult<ApiKeyRecord> {
        Ok(ApiKeyRecord {
            secret_hash: <[u8; 32]>::try_from(self.secret_hash.as_slice())
                .map_err(|_| StoreError::Internal("stored key hash is not 32 bytes".into()))?,
            id: self.id,
            name: self.name,
            owner: from_json(&self.owner)?,
            created_at: self.created_at,
            expires_at: self.expires_at,
            invalidated_at: self.invalidated_at,
            role_descriptors: from_json(&self.role_descriptors)?,
            metadata: from_json(&self.metadata)?,
        })
    }
}

/// The `client` column's value for pairs issued to this caller: what
/// [`TokenRow::from_record`] writes, so a backend can match on it.
pub fn client_column(client: &ClientRef) -> StoreResult<String> {
    to_json(client)
}

/// An OAuth client flattened into the columns of the `oauth_clients` table.
#[derive(Debug, Clone)]
pub struct OAuthClientRow {
    pub client_id: String,
    pub secret_hash: Vec<u8>,
    pub client_name: Option<String>,
    /// JSON array of grant type names.
    pub grant_types: String,
    /// JSON array of scope tokens.
    pub scope: String,
    pub token_endpoint_auth_method: String,
    pub created_at: i64,
}

pub const OAUTH_CLIENT_COLUMNS: &str =
    "client_id, secret_hash, client_name, grant_types, scope, token_endpoint_auth_method, created_at";

impl OAuthClientRow {
    pub fn from_record(c: &OAuthClientRecord) -> StoreResult<Self> {
        Ok(Self {
            client_id: c.client_id.clone(),
            secret_hash: c.secret_hash.to_vec(),
            client_name: c.metadata.client_name.clone(),
            grant_types: to_json(&c.metadata.grant_types)?,
            scope: to_json(&c.metadata.scope)?,
            token_endpoint_auth_method: c.metadata.token_endpoint_auth_method.as_str().to_owned(),
            created_at: c.created_at,
        })
    }

    pub fn into_record(self) -> StoreResult<OAuthClientRecord> {
        let grant_types: Vec<GrantType> = from_json(&self.grant_types)?;
        let method = AuthMethod::parse(&self.token_endpoint_auth_method).ok_or_else(|| {
            StoreError::Internal(format!(
                "client {} has an unknown auth method",
                self.client_id
            ))
        })?;
        Ok(OAuthClientRecord {
            secret_hash: <[u8; 32]>::try_from(self.secret_hash.as_slice())
                .map_err(|_| StoreError::Internal("stored client hash is not 32 bytes".into()))?,
            client_id: self.client_id,
            metadata: ClientMetadata {
                client_name: self.client_name,
                grant_types,
                scope: from_json(&self.scope)?,
                token_endpoint_auth_method: method,
            },
            created_at: self.created_at,
        })
    }
}
