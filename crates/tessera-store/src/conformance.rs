//! The conformance suite: one story every backend must pass.
//!
//! A backend crate invokes [`conformance_tests!`](crate::conformance_tests)
//! in a test module with a factory of fresh, empty stores; it expands to
//! one named test per case, so a failure names its case. The cases
//! exercise every operation and error of [`Store`] (`accounts`, `tokens`,
//! `api_keys`, `clients`), the concurrency cases with real tasks on a
//! multi-threaded runtime (`races`), derived credentials (`lineage`),
//! one-time login proofs (`one_time`), SAML logout by NameID (`sessions`),
//! role mappings (`role_mappings`), service tokens (`service_tokens`),
//! application privileges (`privileges`) and the purge's passes
//! (`cleanup`).

use std::sync::Arc;

use tessera_domain::authn::{Authentication, AuthenticationType, NATIVE_REALM};
use tessera_domain::oauth::{self, AuthMethod, ClientMetadata, GrantType};
use tessera_domain::refresh::{Denied, RefreshError, RefreshPolicy};
use tessera_domain::token::{Fresh, TokenKind, TokenPair, TokenString};
use tessera_domain::{ClientRef, Millis, TokenKey, TokenRecord};

use crate::{
    ApiKeyFilter, ApiKeyInvalidation, InvalidateCounts, InvalidateOne, NameMatch, RefreshGranted,
    RefreshOutcome, RefreshRequest, RoleDescriptor, Store, StoreError, UserUpsert,
    API_KEY_RETENTION_MS,
};

pub mod accounts;
pub mod api_key_updates;
pub mod api_keys;
pub mod cleanup;
pub mod clients;
pub mod lineage;
pub mod one_time;
pub mod privileges;
pub mod races;
pub mod role_mappings;
pub mod service_tokens;
pub mod sessions;
pub mod tokens;

/// One `#[tokio::test]` per conformance case. `$fresh` names an
/// `async fn() -> Option<(DynStore, G)>` that returns a fresh, empty store
/// and whatever must live as long as it (a temporary directory, a schema
/// to drop), or `None` when the backend cannot be reached here (the case
/// then returns at once, after saying so on stderr). A harness that lists
/// its tests at run time takes them from [`cases`] instead.
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::conformance_tests!(@each [@tests $fresh]);
    };
    // The one list of cases; `$how` says what to make of it.
    (@each [$($how:tt)*]) => {
        $crate::conformance_tests! { $($how)*;
            accounts::users,
            accounts::bootstrap,
            accounts::ready,
            accounts::cluster_uuid_is_kept,
            accounts::roles,
            tokens::issue_and_find,
            tokens::refresh_rules,
            tokens::replay_of_invalidated_successor,
            tokens::invalidate_single,
            tokens::invalidate_token_alone,
            tokens::invalidate_matching,
            tokens::purge,
            tokens::a_refresh_record_outlives_the_successor,
            cleanup::a_backlog_is_purged_in_one_pass,
            tokens::families,
            tokens::token_scope_and_find_by_refresh,
            api_keys::api_keys,
            api_key_updates::api_key_updates,
            api_key_updates::update_races_invalidation,
            clients::oauth_clients,
            races::concurrent_refreshes_agree,
            races::refresh_races_invalidate_refresh,
            races::refresh_races_invalidate_by_user,
            races::refresh_races_client_deletion,
            races::reads_follow_every_change,
            races::reads_race_invalidation,
            lineage::chains_die_with_their_api_key,
            lineage::revocation_reaches_descendants,
            lineage::user_changes_reach_tokens,
            lineage::sources_are_checked_when_storing,
            lineage::caps_are_kept,
            lineage::minting_races_key_invalidation,
            one_time::proofs_mint_once_per_realm,
            one_time::proofs_race,
            sessions::logout_by_nameid,
            sessions::token_metadata_is_kept,
            role_mappings::role_mapping_crud,
            role_mappings::role_mappings_resolve_roles,
            service_tokens::service_token_crud,
            service_tokens::service_token_creation_races,
            privileges::application_privileges,
        }
    };
    (@tests $fresh:path; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some((store, keep)) = $fresh().await else {
                    eprintln!("skipped: the store cannot be reached here");
                    return;
                };
                $crate::conformance::$module::$case(store).await;
                drop(keep);
            }
        )*
    };
    (@list; $($module:ident :: $case:ident),* $(,)?) => {
        vec![$(
            $crate::conformance::Case {
                name: stringify!($case),
                run: |store| Box::pin($crate::conformance::$module::$case(store)),
            }
        ),*]
    };
}

/// One case of the suite: its name and the case itself, to be run on a
/// fresh, empty store inside a multi-threaded runtime.
pub struct Case {
    pub name: &'static str,
    pub run: fn(DynStore) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

/// Every case, as [`conformance_tests!`](crate::conformance_tests) runs them.
pub fn cases() -> Vec<Case> {
    crate::conformance_tests!(@each [@list])
}

pub type DynStore = Arc<dyn Store>;

/// Calls the tests make again and again, asserting what they expect.
#[async_trait::async_trait]
pub trait StoreExt: Store {
    /// The stored record of the pair `token` is the `half` of, if any.
    async fn find(&self, half: TokenKind, token: &TokenString) -> Option<TokenRecord> {
        match half {
            TokenKind::Access => self.find_by_access(&token.hash()).await,
            TokenKind::Refresh => self.find_by_refresh(&token.hash()).await,
        }
        .expect("the lookup answers")
    }

    /// Invalidates the `half` of the pair `hash` belongs to, as a
    /// revocation does.
    async fn invalidate(&self, half: TokenKind, hash: &TokenKey) -> InvalidateOne {
        match half {
            TokenKind::Access => self.invalidate_access(hash).await,
            TokenKind::Refresh => self.invalidate_refresh(hash).await,
        }
        .expect("the invalidation answers")
    }

    /// The stored record of the pair whose access token is `access`; it
    /// must exist.
    async fn stored(&self, access: &TokenString) -> TokenRecord {
        self.find_by_access(&access.hash())
            .await
            .expect("find_by_access answers")
            .expect("the pair is stored")
    }

    /// What the store grants for `request`; it must grant it.
    async fn granted(&self, request: RefreshRequest) -> RefreshGranted {
        self.refresh(request)
            .await
            .expect("refresh answers")
            .expect("the refresh is granted")
    }

    /// How the store refuses `request`; it must refuse.
    async fn denied(&self, request: RefreshRequest) -> Denied {
        self.refresh(request)
            .await
            .expect("refresh answers")
            .expect_err("the refresh is refused")
    }

    /// Why the store refuses `request`; it must refuse.
    async fn refusal(&self, request: RefreshRequest) -> RefreshError {
        self.denied(request).await.error
    }

    /// The ids of every OAuth client, in the store's order.
    async fn client_ids(&self) -> Vec<String> {
        let clients = self.list_oauth_clients().await.unwrap();
        clients.into_iter().map(|c| c.client_id).collect()
    }

    /// The names of every user, in the store's order.
    async fn usernames(&self) -> Vec<String> {
        let users = self.list_users().await.unwrap();
        users.into_iter().map(|u| u.username).collect()
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

/// What a store upgraded from a schema before OAuth must do: `old`, stored
/// before the upgrade, reads back unchanged and unrestricted, and OAuth
/// clients and scoped tokens can be stored and read.
pub async fn assert_upgraded_for_oauth<S: Store + ?Sized>(
    store: &S,
    subject: &Authentication,
    old: &TokenRecord,
    old_pair: &TokenPair,
) {
    let found = store.stored(&old_pair.access).await;
    assert_eq!(&found, old);
    assert_eq!(found.scope, None);
    let client = oauth::mint_client(Default::default(), 5).record;
    assert!(store.put_oauth_client(&client).await.unwrap());
    let (scoped, pair) = TokenRecord::first_of_family(
        Fresh::draw(1_000),
        subject,
        client.client_ref(),
        Some(vec!["a".into()]),
        false,
        1_000,
        60_000,
    );
    store.insert_token(&scoped).await.unwrap();
    assert_eq!(store.stored(&pair.access).await, scoped);
}

/// The policy of the cases: 20-minute access tokens, a 30-second window.
const POLICY: RefreshPolicy = RefreshPolicy::elasticsearch(true);
/// Strict Elasticsearch behaviour: reuse is refused, nothing is revoked.
const ES_POLICY: RefreshPolicy = RefreshPolicy::elasticsearch(false);
const T0: Millis = 1_700_000_000_000;

pub fn subject(username: &str) -> Authentication {
    Authentication {
        full_name: Some(format!("{username} full")),
        ..Authentication::of_realm(username, vec!["superuser".into()], NATIVE_REALM)
    }
}

/// An enabled user with a password hash and `roles`, nothing else.
pub fn bare_user(name: &str, hash: &str, roles: &[&str]) -> UserUpsert {
    UserUpsert {
        username: name.into(),
        password_hash: Some(hash.into()),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        full_name: None,
        email: None,
        metadata: Default::default(),
        enabled: true,
        revoke_tokens: false,
    }
}

fn user(name: &str, hash: Option<&str>) -> UserUpsert {
    UserUpsert {
        username: name.into(),
        password_hash: hash.map(str::to_owned),
        roles: vec!["r1".into()],
        full_name: Some("Full".into()),
        email: Some("a@b.c".into()),
        metadata: serde_json::from_value(serde_json::json!({"k": 1})).unwrap(),
        enabled: true,
        revoke_tokens: false,
    }
}

/// A pair `client` holds for `subject`, with `scope`, issued at `T0`.
fn issue_to_client(
    subject: &Authentication,
    client: &oauth::OAuthClientRecord,
    scope: Vec<String>,
    with_refresh: bool,
) -> (TokenRecord, TokenPair) {
    TokenRecord::first_of_family(
        Fresh::draw(T0),
        subject,
        client.client_ref(),
        Some(scope),
        with_refresh,
        T0,
        POLICY.access_ttl_ms,
    )
}

/// The filter that selects the API keys `ids`.
fn by_ids(ids: &[&str]) -> ApiKeyFilter {
    ApiKeyFilter {
        ids: Some(ids.iter().map(|id| id.to_string()).collect()),
        ..Default::default()
    }
}

async fn issue(store: &DynStore, username: &str, now: Millis) -> (TokenRecord, TokenPair) {
    let s = subject(username);
    let (record, pair) = TokenRecord::issue(&s, s.client_ref(), true, now, POLICY.access_ttl_ms);
    store.insert_token(&record).await.expect("insert");
    (record, pair)
}

fn request(token: &TokenString, caller: &ClientRef, now: Millis) -> RefreshRequest {
    RefreshRequest::new(token.clone(), caller.clone(), now, POLICY)
}

fn key(owner: &str, name: &str, created_at: Millis) -> tessera_domain::api_key::ApiKeyRecord {
    let mut descriptors = std::collections::BTreeMap::new();
    descriptors.insert(
        "limited".to_string(),
        serde_json::from_value(serde_json::json!({"cluster": ["manage_token"]})).unwrap(),
    );
    let mut key = tessera_domain::api_key::mint(
        &subject(owner),
        tessera_domain::api_key::NewKey {
            name: name.into(),
            expires_at: Some(created_at + 1_000),
            role_descriptors: descriptors,
            metadata: serde_json::from_value(serde_json::json!({"team": "a"})).unwrap(),
        },
        created_at,
    )
    .record;
    key.created_at = created_at;
    key
}

/// Every access token of `pairs` is invalidated and every refresh token refuses.
async fn assert_family_dead(store: &DynStore, pairs: &[&TokenPair], now: Millis) {
    for (i, p) in pairs.iter().enumerate() {
        let rec = store
            .find_by_access(&p.access.hash())
            .await
            .unwrap()
            .unwrap();
        assert!(!rec.access_usable(now), "member {i}'s access token is dead");
        if let Some(rt) = &p.refresh {
            let refused = store.denied(request(rt, &rec.client, now)).await;
            assert_eq!(
                refused.error,
                RefreshError::Invalidated,
                "member {i} refuses to refresh"
            );
        }
    }
}
