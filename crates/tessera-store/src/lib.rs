//! The storage contract of Tessera.
//!
//! [`Store`] is everything the service needs from a database, expressed in
//! domain terms. Every backend (one crate each) implements it, and every
//! backend must pass the same [`conformance`] suite. This crate depends on no
//! database driver.
//!
//! Two rules every implementation keeps (ARCHITECTURE.md, "Invariants"):
//! 1. A method that writes returns only after the write is durably committed
//!    and visible to every later read on any connection or node.
//! 2. [`Store::refresh`] is one transaction: the old record is locked, the
//!    domain's [`tessera_domain::refresh::decide`] runs on it, and a rotation
//!    (mark old, insert successor) commits as a unit or not at all; so does
//!    the revocation of a family on reuse.
//! 3. Refresh, invalidation and family revocation are linearizable per
//!    family: once an invalidation has returned, no member of the family
//!    authenticates or refreshes, including a successor minted by a refresh
//!    that raced it.
//! 4. Derived credentials die with their source. A family minted by a
//!    token-authenticated caller is a *child* of that token's family;
//!    revoking a family (in any way) revokes its children, and theirs,
//!    in the same transaction. Invalidating an API key revokes every family
//!    it minted or stands for, and [`Store::delete_user`] and friends, when
//!    asked, revoke every family of the user. [`Store::insert_derived`]
//!    checks the sources in the storing transaction, so a token minted
//!    while its source is being taken back is either revoked with it or
//!    never stored.

pub mod api_key_updates;
pub mod cleanup;
pub mod codec;
pub mod conformance;
pub mod engine;
pub mod privileges;
pub mod role_mappings;
pub mod service_tokens;

use async_trait::async_trait;
use tessera_domain::refresh::Denied;
use tessera_domain::token::TokenPair;
use tessera_domain::user::UserRecord;
use tessera_domain::{Authentication, Millis, TokenKey, TokenRecord};

pub use privileges::PrivilegeStore;
pub use service_tokens::{ServiceTokenRecord, ServiceTokenStore};
pub use tessera_domain::api_key::ApiKeyRecord;
pub use tessera_domain::oauth::OAuthClientRecord;
pub use tessera_domain::privilege::RoleDescriptor;
pub use tessera_domain::role_mapping::RoleMapping;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is not answering in time. The
    /// caller should answer 503; retrying later may succeed.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A put that needs a password was given none for a new user.
    #[error("password must be specified unless you are updating an existing user")]
    PasswordRequired,
    /// Anything else: a bug or a corrupted store. The detail is for logs,
    /// never for clients.
    #[error("internal store error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A user to create or replace. `password_hash: None` keeps the existing
/// hash of an existing user (and fails with [`StoreError::PasswordRequired`]
/// for a new one).
#[derive(Debug, Clone)]
pub struct UserUpsert {
    pub username: String,
    pub password_hash: Option<String>,
    pub roles: Vec<String>,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub enabled: bool,
    /// Revoke the user's tokens (as [`Store::delete_user`] does) if this
    /// replaces an existing user's password or disables it.
    pub revoke_tokens: bool,
}

/// What a new token's source must still be when the token is stored,
/// checked in the storing transaction (see [`Store::insert_derived`]).
#[derive(Clone, PartialEq, Eq)]
pub enum Requirement {
    /// The native user exists and is enabled, and, when a hash is given,
    /// still has that password hash (the one a login just verified).
    User {
        username: String,
        password_hash: Option<String>,
    },
    /// The API key exists, is not invalidated and has not expired at the
    /// new token's creation time.
    ApiKey { id: String },
    /// The OAuth client is still registered (a pair stored for a client
    /// deleted meanwhile would escape the deletion's invalidation).
    OAuthClient { client_id: String },
}

impl std::fmt::Debug for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Requirement::User { username, .. } => write!(f, "User({username})"),
            Requirement::ApiKey { id } => write!(f, "ApiKey({id})"),
            Requirement::OAuthClient { client_id } => write!(f, "OAuthClient({client_id})"),
        }
    }
}

/// Where a new token's authority came from, beyond its subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineage {
    /// The access token the minting caller authenticated with. The new
    /// family becomes a child of that token's family, and dies with it.
    pub parent: Option<TokenKey>,
    /// What must still hold of the sources when the token is stored.
    pub requires: Vec<Requirement>,
    /// A proof that may mint only once (a SAML assertion): recorded in the
    /// storing transaction, and a second use stores nothing.
    pub one_time: Option<OneTime>,
}

/// A one-time proof of a login, such as a SAML assertion's id: accepted
/// once per realm, on every node, remembered until `keep_until` (after
/// which the proof itself has expired and would be refused anyway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTime {
    pub realm: String,
    pub id: String,
    pub keep_until: Millis,
}

impl RefreshGranted {
    /// Seconds the access token lives, for the response's `expires_in`:
    /// the configured lifetime, or less when the family's cap comes first.
    pub fn expires_in(&self, access_ttl_ms: Millis, now: Millis) -> Millis {
        let ttl = match self.not_after {
            Some(cap) => access_ttl_ms.min(cap.saturating_sub(now)).max(0),
            None => access_ttl_ms,
        };
        ttl / 1000
    }
}

impl Lineage {
    pub fn is_empty(&self) -> bool {
        self.parent.is_none() && self.requires.is_empty() && self.one_time.is_none()
    }
}

/// Whose live pairs an invalidation by subject is about (what
/// [`Store::invalidate_matching`] and [`Store::invalidate_by_nameid`] are
/// given), for the backends to turn into their queries.
#[derive(Debug, Clone, Copy)]
pub enum Whose<'a> {
    /// A user and/or realm (at least one is given).
    User {
        username: Option<&'a str>,
        realm: Option<&'a str>,
    },
    /// A SAML realm's NameID (`metadata.saml_nameid` of the subject), and
    /// the session (`saml_session` of the token metadata) when given.
    NameId {
        realm: &'a str,
        nameid: &'a str,
        session: Option<&'a str>,
    },
}

/// How an invalidation of one token went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidateOne {
    NotFound,
    Invalidated,
    AlreadyInvalidated,
}

/// Counts, in Elasticsearch's units, of an invalidation by user or realm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InvalidateCounts {
    pub invalidated: u64,
    pub previously_invalidated: u64,
}

/// A refresh request: the domain's, randomness for a rotation included.
pub use tessera_domain::refresh::Request as RefreshRequest;

/// A successful refresh: the pair to hand out and who it stands for.
#[derive(Debug)]
pub struct RefreshGranted {
    pub pair: TokenPair,
    pub subject: Authentication,
    /// The pair's OAuth scope (inherited from the refreshed pair).
    pub scope: Option<Vec<String>>,
    /// The family's cap ([`TokenRecord::not_after`]).
    pub not_after: Option<Millis>,
    /// `false` when this call was a repeat inside the window.
    pub rotated: bool,
}

/// `Err` carries why; its `revoke_family` says the store revoked the family.
pub type RefreshOutcome = Result<RefreshGranted, Denied>;

/// How a filter matches API key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMatch {
    Exact(String),
    /// `name*` in the API.
    Prefix(String),
}

/// Which API keys a listing or invalidation is about. Every criterion that
/// is set must match; a filter with none set matches every key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiKeyFilter {
    pub ids: Option<Vec<String>>,
    pub name: Option<NameMatch>,
    pub username: Option<String>,
    pub realm: Option<String>,
}

impl ApiKeyFilter {
    /// The filter's meaning, for backends that narrow in SQL and finish here.
    pub fn matches(&self, key: &ApiKeyRecord) -> bool {
        self.ids.as_ref().is_none_or(|ids| ids.contains(&key.id))
            && self.name.as_ref().is_none_or(|m| match m {
                NameMatch::Exact(n) => &key.name == n,
                NameMatch::Prefix(p) => key.name.starts_with(p.as_str()),
            })
            && self
                .username
                .as_ref()
                .is_none_or(|u| &key.owner.username == u)
            && self
                .realm
                .as_ref()
                .is_none_or(|r| key.owner.authentication_realm.name == r.as_str())
    }
}

/// Ids of the keys an invalidation touched, as Elasticsearch lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiKeyInvalidation {
    pub invalidated: Vec<String>,
    pub previously_invalidated: Vec<String>,
}

/// Invalidated or expired API keys are kept this long (for listings), then
/// purged.
pub const API_KEY_RETENTION_MS: Millis = 7 * 24 * 3_600_000;

/// A connection pool's state (see [`Store::pool_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// The most connections the pool opens.
    pub max_size: usize,
    /// The connections open now.
    pub size: usize,
    /// The open connections idle now.
    pub idle: usize,
    /// Of the open connections neither idle nor leased, those that single
    /// statements share (PostgreSQL: `shared.rs` of its store).
    pub shared: usize,
    /// The callers waiting for a connection.
    pub waiting: usize,
    /// Authentication reads answered from the node's read cache, and those
    /// that went to the database (PostgreSQL: `cluster_cache_ttl`).
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Of the hits, those served past `cluster_cache_ttl` because no
    /// revoking write had committed since the entry was read (the
    /// revocation epoch).
    pub cache_extended_hits: u64,
    /// Writes that waited the revocation grace before answering.
    pub grace_waits: u64,
}

#[async_trait]
pub trait Store:
    api_key_updates::ApiKeyUpdateStore + PrivilegeStore + ServiceTokenStore + Send + Sync + 'static
{
    /// Succeeds when the store can serve reads and writes.
    async fn ping(&self) -> StoreResult<()>;

    /// Succeeds when the store can take writes now, not only answer: what
    /// `/_tessera/ready` reports. A read-only database (a PostgreSQL
    /// standby or read-only session, a read-only SQLite file or disk) is
    /// [`StoreError::Unavailable`]. The default is [`Store::ping`]; a
    /// backend whose `ping` cannot see a read-only database overrides it.
    async fn ready(&self) -> StoreResult<()> {
        self.ping().await
    }

    // ---- users ----
    async fn get_user(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    /// All users, sorted by name.
    async fn list_users(&self) -> StoreResult<Vec<UserRecord>>;
    /// Creates or replaces a user. Returns `true` when it was created.
    /// With [`UserUpsert::revoke_tokens`], replacing an existing user's
    /// password or disabling it revokes the user's tokens as
    /// [`Store::delete_user`] does, in the same transaction.
    async fn put_user(&self, user: UserUpsert) -> StoreResult<bool>;
    /// Returns whether the user existed. With `revoke_tokens`, also revokes,
    /// in the same transaction, every family the user stands for or minted
    /// (directly, with Basic credentials, or through one of its API keys),
    /// and every family derived from those, and invalidates (at `now`)
    /// every API key the user owns: a user created later under the same
    /// name does not get them back.
    async fn delete_user(
        &self,
        username: &str,
        revoke_tokens: bool,
        now: Millis,
    ) -> StoreResult<bool>;
    /// Returns whether the user exists. `revoke_tokens` as for
    /// [`Store::delete_user`].
    async fn set_password(
        &self,
        username: &str,
        password_hash: &str,
        revoke_tokens: bool,
    ) -> StoreResult<bool>;
    /// Returns whether the user exists. `revoke_tokens` (which only applies
    /// when disabling) as for [`Store::delete_user`].
    async fn set_enabled(
        &self,
        username: &str,
        enabled: bool,
        revoke_tokens: bool,
    ) -> StoreResult<bool>;
    /// Creates the user only if there are no users at all. Returns whether it did.
    async fn bootstrap_user(&self, user: UserUpsert) -> StoreResult<bool>;

    // ---- roles ----
    /// Returns `true` when the role was created.
    async fn put_role(&self, name: &str, role: &RoleDescriptor) -> StoreResult<bool>;
    /// All roles, sorted by name.
    async fn list_roles(&self) -> StoreResult<Vec<(String, RoleDescriptor)>>;
    async fn get_roles(&self, names: &[String]) -> StoreResult<Vec<(String, RoleDescriptor)>>;
    async fn delete_role(&self, name: &str) -> StoreResult<bool>;

    // ---- role mappings ----
    /// Creates or replaces a role mapping. Returns `true` when it was created.
    async fn put_role_mapping(&self, name: &str, mapping: &RoleMapping) -> StoreResult<bool>;
    /// The named mappings that exist, in the order asked, each once.
    async fn get_role_mappings(&self, names: &[String]) -> StoreResult<Vec<(String, RoleMapping)>>;
    /// All role mappings, sorted by name.
    async fn list_role_mappings(&self) -> StoreResult<Vec<(String, RoleMapping)>>;
    /// Returns whether the mapping existed.
    async fn delete_role_mapping(&self, name: &str) -> StoreResult<bool>;

    // ---- tokens ----
    /// Stores a freshly issued pair, the first of a new family (successors
    /// are stored by [`Store::refresh`]). Returns after it is durably
    /// committed.
    async fn insert_token(&self, record: &TokenRecord) -> StoreResult<()> {
        if self.insert_derived(record, &Lineage::default()).await? {
            Ok(())
        } else {
            Err(StoreError::Internal(
                "a token with no source to check was refused".into(),
            ))
        }
    }
    /// Stores a freshly issued pair whose authority came from `lineage`:
    /// in one transaction, checks every [`Requirement`], that the parent
    /// token's family (if any) is not revoked and that the one-time proof
    /// (if any) was never used, records the proof, and only then stores
    /// the pair as a child of that family. Returns `false`, storing nothing,
    /// when a source was taken back. Returns after it is durably committed.
    async fn insert_derived(&self, record: &TokenRecord, lineage: &Lineage) -> StoreResult<bool>;
    async fn find_by_access(&self, hash: &TokenKey) -> StoreResult<Option<TokenRecord>>;
    /// What [`Store::find_by_access`] would answer, when the store can tell
    /// from memory without waiting (a read cache that is current); `None`
    /// means "ask `find_by_access`", never "not found". It saves the
    /// authentication path an asynchronous call on a cache hit. Stores
    /// without a cache keep the default.
    fn find_by_access_now(&self, _hash: &TokenKey) -> Option<TokenRecord> {
        None
    }
    /// The connection pool's state, for the metrics; `None` for a store
    /// without a pool of connections.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }
    /// The pair holding this refresh token (for introspection and
    /// revocation; refreshing goes through [`Store::refresh`]).
    async fn find_by_refresh(&self, hash: &TokenKey) -> StoreResult<Option<TokenRecord>>;
    /// The atomic refresh (see the crate docs).
    async fn refresh(&self, request: RefreshRequest) -> StoreResult<RefreshOutcome>;
    /// Invalidates the pair holding this access token and every other pair
    /// of its family, atomically with respect to refreshes of that family:
    /// once this has returned, no member authenticates or refreshes. The
    /// answer describes the named token's state before the call.
    async fn invalidate_access(&self, hash: &TokenKey) -> StoreResult<InvalidateOne>;
    /// The same, naming a refresh token.
    async fn invalidate_refresh(&self, hash: &TokenKey) -> StoreResult<InvalidateOne>;
    /// Invalidates the named token alone (Elasticsearch's invalidation): the
    /// other half of its pair and the rest of its family stay as they are.
    async fn invalidate_token(
        &self,
        half: engine::Half,
        hash: &TokenKey,
    ) -> StoreResult<InvalidateOne>;
    /// Invalidates both halves of every active pair whose subject matches the
    /// given username and/or realm name (at least one is given). This
    /// includes a successor minted by a refresh racing this call: once it has
    /// returned, no pair of that user or realm issued before it works.
    async fn invalidate_matching(
        &self,
        username: Option<&str>,
        realm: Option<&str>,
        now: Millis,
    ) -> StoreResult<InvalidateCounts>;
    /// Invalidates both halves of every active pair of realm `realm` whose
    /// subject carries the SAML NameID `nameid` (`metadata.saml_nameid`)
    /// and, when `session` is given, whose token metadata names that
    /// session (`saml_session`), and every family derived from them, as
    /// [`Store::invalidate_matching`] does: SAML single logout. Found
    /// through an index, not a scan. Returns how many pairs it
    /// invalidated (Elasticsearch's unit for this API).
    async fn invalidate_by_nameid(
        &self,
        realm: &str,
        nameid: &str,
        session: Option<&str>,
        now: Millis,
    ) -> StoreResult<u64>;
    /// Whether any token was ever issued (Elasticsearch's "the tokens index exists").
    async fn tokens_ever_issued(&self) -> StoreResult<bool>;
    /// The store's cluster UUID (`GET /`): `fresh` is kept the first time
    /// this is called; every later call, from any node, answers the kept one.
    async fn cluster_uuid(&self, fresh: &str) -> StoreResult<String>;
    /// Deletes up to `limit` token records that can no longer be used or
    /// replayed at `now`, up to `limit` API keys that have been expired
    /// or invalidated for longer than [`API_KEY_RETENTION_MS`], and up to
    /// `limit` one-time proofs kept until before `now`. Returns how many it
    /// deleted.
    async fn purge_expired(&self, now: Millis, limit: u32) -> StoreResult<u64>;
    /// Number of stored token records (for metrics and tests).
    async fn count_tokens(&self) -> StoreResult<u64>;

    // ---- API keys ----
    /// Stores a new key. Returns after it is durably committed.
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()>;
    async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// Every key the filter matches, oldest first.
    async fn find_api_keys(&self, filter: &ApiKeyFilter) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Invalidates every key the filter matches, atomically, with every
    /// token family a matched key minted or stands for, and every family
    /// derived from those. Once this has returned, no read on any node sees
    /// those keys or tokens as valid.
    async fn invalidate_api_keys(
        &self,
        filter: &ApiKeyFilter,
        now: Millis,
    ) -> StoreResult<ApiKeyInvalidation>;

    // ---- OAuth clients ----
    /// Creates a client, or updates an existing one's metadata. An update
    /// keeps the stored secret hash and creation time: a secret changes
    /// only through [`Store::set_oauth_client_secret`], so an update racing
    /// a rotation cannot bring an old secret back. Returns `true` when it
    /// created the client.
    async fn put_oauth_client(&self, client: &OAuthClientRecord) -> StoreResult<bool>;
    async fn get_oauth_client(&self, client_id: &str) -> StoreResult<Option<OAuthClientRecord>>;
    /// Every client, oldest first (ties by id).
    async fn list_oauth_clients(&self) -> StoreResult<Vec<OAuthClientRecord>>;
    /// Replaces a client's secret hash. Returns whether the client exists.
    async fn set_oauth_client_secret(
        &self,
        client_id: &str,
        secret_hash: &[u8; 32],
    ) -> StoreResult<bool>;
    /// Deletes a client and, in the same transaction, invalidates every
    /// pair issued to it (RFC 7592 §2.3). Returns whether it existed.
    async fn delete_oauth_client(&self, client_id: &str) -> StoreResult<bool>;
}
