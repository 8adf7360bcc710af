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
//!    (mark old, insert successor) commits as a unit or not at all.

pub mod codec;
pub mod conformance;

use async_trait::async_trait;
use tessera_domain::refresh::{RefreshError, RefreshPolicy};
use tessera_domain::token::{TokenPair, TokenString};
use tessera_domain::user::UserRecord;
use tessera_domain::{Authentication, ClientRef, Millis, TokenHash, TokenRecord};

pub use tessera_domain::privilege::RoleDescriptor;

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

/// A refresh request as the store sees it.
#[derive(Debug, Clone)]
pub struct RefreshRequest {
    pub refresh_token: TokenString,
    pub caller: ClientRef,
    pub now: Millis,
    pub policy: RefreshPolicy,
}

/// A successful refresh: the pair to hand out and who it stands for.
#[derive(Debug)]
pub struct RefreshGranted {
    pub pair: TokenPair,
    pub subject: Authentication,
    /// `false` when this call was a repeat inside the window.
    pub rotated: bool,
}

pub type RefreshOutcome = Result<RefreshGranted, RefreshError>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the store can serve reads and writes.
    async fn ping(&self) -> StoreResult<()>;

    // ---- users ----
    async fn get_user(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    /// All users, sorted by name.
    async fn list_users(&self) -> StoreResult<Vec<UserRecord>>;
    /// Creates or replaces a user. Returns `true` when it was created.
    async fn put_user(&self, user: UserUpsert) -> StoreResult<bool>;
    /// Returns whether the user existed.
    async fn delete_user(&self, username: &str) -> StoreResult<bool>;
    /// Returns whether the user exists.
    async fn set_password(&self, username: &str, password_hash: &str) -> StoreResult<bool>;
    /// Returns whether the user exists.
    async fn set_enabled(&self, username: &str, enabled: bool) -> StoreResult<bool>;
    /// Creates the user only if there are no users at all. Returns whether it did.
    async fn bootstrap_user(&self, user: UserUpsert) -> StoreResult<bool>;

    // ---- roles ----
    /// Returns `true` when the role was created.
    async fn put_role(&self, name: &str, role: &RoleDescriptor) -> StoreResult<bool>;
    /// All roles, sorted by name.
    async fn list_roles(&self) -> StoreResult<Vec<(String, RoleDescriptor)>>;
    async fn get_roles(&self, names: &[String]) -> StoreResult<Vec<(String, RoleDescriptor)>>;
    async fn delete_role(&self, name: &str) -> StoreResult<bool>;

    // ---- tokens ----
    /// Stores a freshly issued pair. Returns after it is durably committed.
    async fn insert_token(&self, record: &TokenRecord) -> StoreResult<()>;
    async fn find_by_access(&self, hash: &TokenHash) -> StoreResult<Option<TokenRecord>>;
    /// The atomic refresh (see the crate docs).
    async fn refresh(&self, request: RefreshRequest) -> StoreResult<RefreshOutcome>;
    async fn invalidate_access(&self, hash: &TokenHash) -> StoreResult<InvalidateOne>;
    async fn invalidate_refresh(&self, hash: &TokenHash) -> StoreResult<InvalidateOne>;
    /// Invalidates both halves of every active pair whose subject matches the
    /// given username and/or realm name (at least one is given).
    async fn invalidate_matching(
        &self,
        username: Option<&str>,
        realm: Option<&str>,
        now: Millis,
    ) -> StoreResult<InvalidateCounts>;
    /// Whether any token was ever issued (Elasticsearch's "the tokens index exists").
    async fn tokens_ever_issued(&self) -> StoreResult<bool>;
    /// Deletes up to `limit` records that can no longer be used or replayed
    /// at `now`. Returns how many it deleted.
    async fn purge_expired(&self, now: Millis, limit: u32) -> StoreResult<u64>;
    /// Number of stored token records (for metrics and tests).
    async fn count_tokens(&self) -> StoreResult<u64>;
}
