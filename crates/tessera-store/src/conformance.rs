//! The conformance suite: one story every backend must pass.
//!
//! A backend crate calls [`run`] from a test with a factory that returns a
//! fresh, empty store each time. The suite exercises every operation and
//! error of [`Store`], then the concurrency cases with real tasks on a
//! multi-threaded runtime: many refreshes of one token, refresh racing
//! invalidation, and invalidation by user racing refresh.

use std::future::Future;
use std::sync::Arc;

use tessera_domain::authn::{Authentication, AuthenticationType, NATIVE_REALM};
use tessera_domain::oauth::{self, AuthMethod, ClientMetadata, GrantType};
use tessera_domain::refresh::{RefreshError, RefreshPolicy};
use tessera_domain::token::{TokenPair, TokenString};
use tessera_domain::{ClientRef, Millis, TokenRecord};

use crate::{
    ApiKeyFilter, ApiKeyInvalidation, InvalidateCounts, InvalidateOne, NameMatch, RefreshRequest,
    RoleDescriptor, Store, StoreError, UserUpsert, API_KEY_RETENTION_MS,
};

pub type DynStore = Arc<dyn Store>;

const POLICY: RefreshPolicy = RefreshPolicy {
    access_ttl_ms: 1_200_000,
    window_ms: 30_000,
    reuse_revokes_family: true,
};
/// Strict Elasticsearch behaviour: reuse is refused, nothing is revoked.
const ES_POLICY: RefreshPolicy = RefreshPolicy {
    reuse_revokes_family: false,
    ..POLICY
};
const T0: Millis = 1_700_000_000_000;

/// Runs every case, each on a fresh store from `fresh`.
pub async fn run<F, Fut>(mut fresh: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = DynStore>,
{
    users(fresh().await).await;
    bootstrap(fresh().await).await;
    roles(fresh().await).await;
    issue_and_find(fresh().await).await;
    refresh_rules(fresh().await).await;
    replay_of_invalidated_successor(fresh().await).await;
    invalidate_single(fresh().await).await;
    invalidate_matching(fresh().await).await;
    purge(fresh().await).await;
    families(fresh().await).await;
    api_keys(fresh().await).await;
    token_scope_and_find_by_refresh(fresh().await).await;
    oauth_clients(fresh().await).await;
    concurrent_refreshes_agree(fresh().await).await;
    refresh_races_invalidate_refresh(fresh().await).await;
    refresh_races_invalidate_by_user(fresh().await).await;
    refresh_races_client_deletion(fresh().await).await;
    reads_follow_every_change(fresh().await).await;
    reads_race_invalidation(fresh().await).await;
}

pub fn subject(username: &str) -> Authentication {
    Authentication {
        username: username.into(),
        roles: vec!["superuser".into()],
        full_name: Some(format!("{username} full")),
        email: None,
        metadata: Default::default(),
        enabled: true,
        authentication_realm: NATIVE_REALM,
        lookup_realm: NATIVE_REALM,
        authentication_type: AuthenticationType::Realm,
        api_key: None,
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
    }
}

async fn issue(store: &DynStore, username: &str, now: Millis) -> (TokenRecord, TokenPair) {
    let s = subject(username);
    let (record, pair) = TokenRecord::issue(&s, s.client_ref(), true, now, POLICY.access_ttl_ms);
    store.insert_token(&record).await.expect("insert");
    (record, pair)
}

fn request(token: &TokenString, caller: &ClientRef, now: Millis) -> RefreshRequest {
    RefreshRequest {
        refresh_token: token.clone(),
        caller: caller.clone(),
        now,
        policy: POLICY,
    }
}

async fn users(store: DynStore) {
    assert!(store.get_user("joe").await.unwrap().is_none());
    assert!(matches!(
        store.put_user(user("joe", None)).await,
        Err(StoreError::PasswordRequired)
    ));
    assert!(
        store.get_user("joe").await.unwrap().is_none(),
        "a failed put stores nothing"
    );
    assert!(
        store.put_user(user("joe", Some("h1"))).await.unwrap(),
        "created"
    );
    let mut update = user("joe", None);
    update.full_name = None;
    assert!(
        !store.put_user(update).await.unwrap(),
        "updated, not created"
    );
    let joe = store.get_user("joe").await.unwrap().unwrap();
    assert_eq!(
        joe.password_hash, "h1",
        "an update without a password keeps it"
    );
    assert_eq!(joe.full_name, None);
    assert_eq!(joe.roles, vec!["r1".to_string()]);
    assert_eq!(joe.metadata["k"], 1);
    assert!(store.put_user(user("amy", Some("h2"))).await.unwrap());
    let names: Vec<_> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["amy", "joe"]);
    assert!(store.set_password("joe", "h3").await.unwrap());
    assert!(!store.set_password("nobody", "h3").await.unwrap());
    assert_eq!(
        store.get_user("joe").await.unwrap().unwrap().password_hash,
        "h3"
    );
    assert!(store.set_enabled("joe", false).await.unwrap());
    assert!(!store.get_user("joe").await.unwrap().unwrap().enabled);
    assert!(!store.set_enabled("nobody", false).await.unwrap());
    assert!(store.delete_user("joe").await.unwrap());
    assert!(!store.delete_user("joe").await.unwrap());
    assert!(store.get_user("joe").await.unwrap().is_none());
}

async fn bootstrap(store: DynStore) {
    assert!(store
        .bootstrap_user(user("elastic", Some("h")))
        .await
        .unwrap());
    assert!(!store
        .bootstrap_user(user("elastic", Some("other")))
        .await
        .unwrap());
    assert_eq!(
        store
            .get_user("elastic")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "h"
    );
    assert!(!store
        .bootstrap_user(user("second", Some("h")))
        .await
        .unwrap());
    assert!(store.get_user("second").await.unwrap().is_none());
}

async fn roles(store: DynStore) {
    let mut role: RoleDescriptor =
        serde_json::from_value(serde_json::json!({"cluster": ["manage_token"]})).unwrap();
    assert!(store.put_role("r", &role).await.unwrap());
    role.cluster.push("monitor".into());
    assert!(!store.put_role("r", &role).await.unwrap());
    assert!(store.put_role("a", &role).await.unwrap());
    let got = store
        .get_roles(&["r".into(), "missing".into()])
        .await
        .unwrap();
    assert_eq!(got, vec![("r".to_string(), role.clone())]);
    let all: Vec<_> = store
        .list_roles()
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(all, ["a", "r"]);
    assert!(store.delete_role("r").await.unwrap());
    assert!(!store.delete_role("r").await.unwrap());
    assert!(store.get_roles(&["r".into()]).await.unwrap().is_empty());
}

async fn issue_and_find(store: DynStore) {
    assert!(!store.tokens_ever_issued().await.unwrap());
    let (record, pair) = issue(&store, "u", T0).await;
    assert!(store.tokens_ever_issued().await.unwrap());
    let found = store
        .find_by_access(&pair.access.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, record);
    let missing = TokenString::mint(tessera_domain::TokenKind::Access, 0);
    assert!(store
        .find_by_access(&missing.hash())
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.count_tokens().await.unwrap(), 1);

    // A pair without a refresh token (client_credentials).
    let s = subject("svc");
    let (cc, cc_pair) = TokenRecord::issue(&s, s.client_ref(), false, T0, 1000);
    store.insert_token(&cc).await.unwrap();
    assert_eq!(
        store
            .find_by_access(&cc_pair.access.hash())
            .await
            .unwrap()
            .unwrap(),
        cc
    );
}

async fn refresh_rules(store: DynStore) {
    let (record, pair) = issue(&store, "u", T0).await;
    let rt = pair.refresh.clone().unwrap();
    let me = record.client.clone();
    let stranger = subject("stranger").client_ref();

    let unknown = TokenString::mint(tessera_domain::TokenKind::Refresh, 0);
    assert_eq!(
        store
            .refresh(request(&unknown, &me, T0))
            .await
            .unwrap()
            .unwrap_err()
            .error,
        RefreshError::NotFound
    );
    assert_eq!(
        store
            .refresh(request(&rt, &stranger, T0 + 1))
            .await
            .unwrap()
            .unwrap_err()
            .error,
        RefreshError::WrongClient
    );
    let first = store
        .refresh(request(&rt, &me, T0 + 10))
        .await
        .unwrap()
        .unwrap();
    assert!(first.rotated);
    assert_eq!(first.subject.authentication_type, AuthenticationType::Token);
    let successor = store
        .find_by_access(&first.pair.access.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(successor.generation, 1);
    assert_eq!(successor.family_id, record.family_id);
    assert_eq!(successor.client, me);
    // the old access token stays valid
    assert!(store
        .find_by_access(&pair.access.hash())
        .await
        .unwrap()
        .unwrap()
        .access_usable(T0 + 10));

    let again = store
        .refresh(request(&rt, &me, T0 + 20_000))
        .await
        .unwrap()
        .unwrap();
    assert!(!again.rotated);
    assert_eq!(
        again.pair, first.pair,
        "a repeat in the window returns the identical pair"
    );
    // the successor refreshes normally, once
    let next_rt = first.pair.refresh.clone().unwrap();
    let second = store
        .refresh(request(&next_rt, &me, T0 + 40_000))
        .await
        .unwrap()
        .unwrap();
    assert!(second.rotated);
    assert_eq!(second.pair.access.hash(), {
        let s = store
            .find_by_access(&second.pair.access.hash())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.generation, 2);
        s.access_hash
    });
    // reuse of the first refresh token after its window revokes the family
    let late = store
        .refresh(request(&rt, &me, T0 + 10 + 30_001))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(
        late.error,
        RefreshError::RefreshedTooLongAgo { .. }
    ));
    assert!(late.revoke_family);
    assert_family_dead(&store, &[&pair, &first.pair, &second.pair], T0 + 40_002).await;

    // invalidated and expired refresh tokens
    let (_, p2) = issue(&store, "u", T0).await;
    let rt2 = p2.refresh.unwrap();
    assert_eq!(
        store.invalidate_refresh(&rt2.hash()).await.unwrap(),
        InvalidateOne::Invalidated
    );
    assert_eq!(
        store
            .refresh(request(&rt2, &me, T0 + 1))
            .await
            .unwrap()
            .unwrap_err()
            .error,
        RefreshError::Invalidated
    );
    let (_, p3) = issue(&store, "u", T0).await;
    assert_eq!(
        store
            .refresh(request(
                p3.refresh.as_ref().unwrap(),
                &me,
                T0 + 24 * 3_600_000
            ))
            .await
            .unwrap()
            .unwrap_err()
            .error,
        RefreshError::Expired
    );
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
            let refused = store
                .refresh(request(rt, &rec.client, now))
                .await
                .unwrap()
                .unwrap_err();
            assert_eq!(
                refused.error,
                RefreshError::Invalidated,
                "member {i} refuses to refresh"
            );
        }
    }
}

async fn families(store: DynStore) {
    // gen0 -> gen1 -> gen2, then a repeat of gen0 inside its window: an
    // older generation than the head's predecessor is reuse.
    let (record, g0) = issue(&store, "fam", T0).await;
    let me = record.client.clone();
    let g1 = store
        .refresh(request(g0.refresh.as_ref().unwrap(), &me, T0))
        .await
        .unwrap()
        .unwrap()
        .pair;
    let g2 = store
        .refresh(request(g1.refresh.as_ref().unwrap(), &me, T0 + 1))
        .await
        .unwrap()
        .unwrap()
        .pair;
    // the immediate predecessor still enjoys the window
    let replay = store
        .refresh(request(g1.refresh.as_ref().unwrap(), &me, T0 + 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replay.pair, g2);
    let reuse = store
        .refresh(request(g0.refresh.as_ref().unwrap(), &me, T0 + 3))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(reuse.error, RefreshError::AlreadyRefreshed);
    assert!(reuse.revoke_family);
    assert_family_dead(&store, &[&g0, &g1, &g2], T0 + 4).await;

    // Elasticsearch mode: the same pattern replays, and reuse after the
    // window is refused without revoking anything.
    let strict = |t: &TokenString, now: Millis| RefreshRequest {
        policy: ES_POLICY,
        ..request(t, &me, now)
    };
    let (_, h0) = issue(&store, "fam", T0).await;
    let h1 = store
        .refresh(strict(h0.refresh.as_ref().unwrap(), T0))
        .await
        .unwrap()
        .unwrap()
        .pair;
    let h2 = store
        .refresh(strict(h1.refresh.as_ref().unwrap(), T0 + 1))
        .await
        .unwrap()
        .unwrap()
        .pair;
    let again = store
        .refresh(strict(h0.refresh.as_ref().unwrap(), T0 + 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.pair, h1);
    let late = store
        .refresh(strict(h0.refresh.as_ref().unwrap(), T0 + 31_000))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(
        late.error,
        RefreshError::RefreshedTooLongAgo { .. }
    ));
    assert!(!late.revoke_family);
    let head = store
        .find_by_access(&h2.access.hash())
        .await
        .unwrap()
        .unwrap();
    assert!(head.access_usable(T0 + 31_000), "nothing was revoked");

    // Invalidating any member's token is final for the whole family.
    assert_eq!(
        store.invalidate_access(&h0.access.hash()).await.unwrap(),
        InvalidateOne::Invalidated
    );
    assert_family_dead(&store, &[&h0, &h1, &h2], T0 + 5).await;
}

async fn replay_of_invalidated_successor(store: DynStore) {
    let (record, pair) = issue(&store, "u", T0).await;
    let rt = pair.refresh.unwrap();
    let first = store
        .refresh(request(&rt, &record.client, T0))
        .await
        .unwrap()
        .unwrap();
    store
        .invalidate_access(&first.pair.access.hash())
        .await
        .unwrap();
    assert_eq!(
        store
            .refresh(request(&rt, &record.client, T0 + 1))
            .await
            .unwrap()
            .unwrap_err()
            .error,
        RefreshError::Invalidated,
        "a replay never hands out a token that was taken back"
    );
}

async fn invalidate_single(store: DynStore) {
    let (_, pair) = issue(&store, "u", T0).await;
    let access = pair.access.hash();
    let refresh = pair.refresh.unwrap().hash();
    let unknown = TokenString::mint(tessera_domain::TokenKind::Access, 0).hash();
    assert_eq!(
        store.invalidate_access(&unknown).await.unwrap(),
        InvalidateOne::NotFound
    );
    assert_eq!(
        store.invalidate_refresh(&unknown).await.unwrap(),
        InvalidateOne::NotFound
    );
    assert_eq!(
        store.invalidate_access(&access).await.unwrap(),
        InvalidateOne::Invalidated
    );
    assert_eq!(
        store.invalidate_access(&access).await.unwrap(),
        InvalidateOne::AlreadyInvalidated
    );
    let rec = store.find_by_access(&access).await.unwrap().unwrap();
    assert!(
        rec.access_invalidated && rec.refresh_invalidated,
        "invalidating one half is final for the pair"
    );
    assert_eq!(
        store.invalidate_refresh(&refresh).await.unwrap(),
        InvalidateOne::AlreadyInvalidated
    );
    let (_, other) = issue(&store, "u", T0).await;
    assert_eq!(
        store
            .invalidate_refresh(&other.refresh.as_ref().unwrap().hash())
            .await
            .unwrap(),
        InvalidateOne::Invalidated
    );
    assert_eq!(
        store.invalidate_refresh(&refresh).await.unwrap(),
        InvalidateOne::AlreadyInvalidated
    );
}

async fn invalidate_matching(store: DynStore) {
    let none = store
        .invalidate_matching(Some("u"), None, T0)
        .await
        .unwrap();
    assert_eq!(none, InvalidateCounts::default());
    let (_, a) = issue(&store, "u", T0).await;
    let (_, b) = issue(&store, "u", T0).await;
    issue(&store, "other", T0).await;
    let s = subject("u");
    let (cc, _) = TokenRecord::issue(&s, s.client_ref(), false, T0, POLICY.access_ttl_ms);
    store.insert_token(&cc).await.unwrap();
    store.invalidate_access(&b.access.hash()).await.unwrap();

    let counts = store
        .invalidate_matching(Some("u"), None, T0 + 1)
        .await
        .unwrap();
    // a: 2; cc: 1; b was already wholly invalidated, so it is not active
    assert_eq!(
        counts,
        InvalidateCounts {
            invalidated: 3,
            previously_invalidated: 0
        }
    );
    for p in [&a, &b] {
        let rec = store
            .find_by_access(&p.access.hash())
            .await
            .unwrap()
            .unwrap();
        assert!(rec.access_invalidated && rec.refresh_invalidated);
    }
    assert_eq!(
        store
            .invalidate_matching(Some("u"), None, T0 + 2)
            .await
            .unwrap(),
        InvalidateCounts::default(),
        "nothing active is left"
    );
    let by_realm = store
        .invalidate_matching(None, Some("default_native"), T0 + 2)
        .await
        .unwrap();
    assert_eq!(
        by_realm.invalidated, 2,
        "only `other`'s pair was still active"
    );
    let both = store
        .invalidate_matching(Some("u"), Some("elsewhere"), T0 + 2)
        .await
        .unwrap();
    assert_eq!(both, InvalidateCounts::default());
}

async fn purge(store: DynStore) {
    for _ in 0..5 {
        issue(&store, "u", T0).await;
    }
    let s = subject("u");
    let (short, short_pair) = TokenRecord::issue(&s, s.client_ref(), false, T0, 1_000);
    store.insert_token(&short).await.unwrap();
    assert_eq!(store.purge_expired(T0 + 2_000, 100).await.unwrap(), 1);
    assert!(store
        .find_by_access(&short_pair.access.hash())
        .await
        .unwrap()
        .is_none());
    let day = 24 * 3_600_000;
    assert_eq!(
        store.purge_expired(T0 + day, 2).await.unwrap(),
        2,
        "bounded batches"
    );
    assert_eq!(store.purge_expired(T0 + day, 100).await.unwrap(), 3);
    assert_eq!(store.count_tokens().await.unwrap(), 0);
}

const RACERS: usize = 12;

async fn concurrent_refreshes_agree(store: DynStore) {
    for trial in 0..40 {
        let (record, pair) = issue(&store, "u", T0).await;
        let rt = pair.refresh.unwrap();
        let now = T0 + trial;
        let tasks: Vec<_> = (0..RACERS)
            .map(|_| {
                let (store, req) = (Arc::clone(&store), request(&rt, &record.client, now));
                tokio::spawn(async move { store.refresh(req).await })
            })
            .collect();
        let mut pairs = Vec::new();
        let mut rotations = 0;
        for t in tasks {
            let granted = t.await.unwrap().unwrap().unwrap();
            rotations += usize::from(granted.rotated);
            pairs.push(granted.pair);
        }
        assert_eq!(rotations, 1, "exactly one refresh rotates");
        assert!(
            pairs.iter().all(|p| *p == pairs[0]),
            "every racer got the identical pair"
        );
        let successor = store.find_by_access(&pairs[0].access.hash()).await.unwrap();
        assert!(
            successor.is_some_and(|s| s.access_usable(now)),
            "the pair is stored once answered"
        );
    }
}

async fn refresh_races_invalidate_refresh(store: DynStore) {
    for _ in 0..40 {
        let (record, pair) = issue(&store, "u", T0).await;
        let rt = pair.refresh.clone().unwrap();
        let refresher = {
            let (store, req) = (Arc::clone(&store), request(&rt, &record.client, T0));
            tokio::spawn(async move { store.refresh(req).await })
        };
        let invalidator = {
            let (store, hash) = (Arc::clone(&store), rt.hash());
            tokio::spawn(async move { store.invalidate_refresh(&hash).await })
        };
        let refreshed = refresher.await.unwrap().unwrap();
        assert_eq!(
            invalidator.await.unwrap().unwrap(),
            InvalidateOne::Invalidated
        );
        match refreshed {
            Ok(granted) => {
                let successor = store
                    .find_by_access(&granted.pair.access.hash())
                    .await
                    .unwrap()
                    .expect("a granted successor is stored");
                assert!(
                    successor.access_invalidated && successor.refresh_invalidated,
                    "the invalidation is final for the successor a racing refresh minted"
                );
            }
            Err(e) => assert_eq!(e.error, RefreshError::Invalidated),
        }
        let original = store
            .find_by_access(&pair.access.hash())
            .await
            .unwrap()
            .unwrap();
        assert!(original.access_invalidated);
        assert_eq!(
            store
                .refresh(request(&rt, &record.client, T0 + 1))
                .await
                .unwrap()
                .unwrap_err()
                .error,
            RefreshError::Invalidated,
            "after the invalidation answered, the refresh token is dead"
        );
    }
}

async fn refresh_races_invalidate_by_user(store: DynStore) {
    for _ in 0..40 {
        let (record, pair) = issue(&store, "racer", T0).await;
        let rt = pair.refresh.unwrap();
        let refresher = {
            let (store, req) = (Arc::clone(&store), request(&rt, &record.client, T0));
            tokio::spawn(async move { store.refresh(req).await })
        };
        let invalidator = {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.invalidate_matching(Some("racer"), None, T0).await })
        };
        let refreshed = refresher.await.unwrap().unwrap();
        invalidator.await.unwrap().unwrap();
        if let Ok(granted) = refreshed {
            let successor = store
                .find_by_access(&granted.pair.access.hash())
                .await
                .unwrap()
                .unwrap();
            assert!(
                successor.access_invalidated && successor.refresh_invalidated,
                "a successor minted by a racing refresh is invalidated too"
            );
        }
        let original = store
            .find_by_access(&pair.access.hash())
            .await
            .unwrap()
            .unwrap();
        assert!(original.access_invalidated && original.refresh_invalidated);
    }
}

/// Deleting an OAuth client while one of its refresh tokens is being used:
/// once the deletion has returned, no pair issued to the client works,
/// including a successor the racing refresh minted.
async fn refresh_races_client_deletion(store: DynStore) {
    for _ in 0..40 {
        let client = oauth::mint_client(ClientMetadata::default(), T0).record;
        store.put_oauth_client(&client).await.unwrap();
        let s = subject("racer");
        let (record, pair) = TokenRecord::issue_scoped(
            &s,
            client.client_ref(),
            Some(Vec::new()),
            true,
            T0,
            POLICY.access_ttl_ms,
        );
        store.insert_token(&record).await.unwrap();
        let rt = pair.refresh.clone().unwrap();
        let refresher = {
            let (store, req) = (Arc::clone(&store), request(&rt, &record.client, T0));
            tokio::spawn(async move { store.refresh(req).await })
        };
        let deleter = {
            let (store, id) = (Arc::clone(&store), client.client_id.clone());
            tokio::spawn(async move { store.delete_oauth_client(&id).await })
        };
        let refreshed = refresher.await.unwrap().unwrap();
        assert!(deleter.await.unwrap().unwrap());
        if let Ok(granted) = refreshed {
            let successor = store
                .find_by_access(&granted.pair.access.hash())
                .await
                .unwrap()
                .unwrap();
            assert!(
                successor.access_invalidated && successor.refresh_invalidated,
                "a successor minted by a racing refresh dies with its client"
            );
        }
        let original = store
            .find_by_access(&pair.access.hash())
            .await
            .unwrap()
            .unwrap();
        assert!(original.access_invalidated && original.refresh_invalidated);
    }
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

async fn api_keys(store: DynStore) {
    assert!(store.get_api_key("nope").await.unwrap().is_none());
    let a = key("alice", "deploy-1", T0);
    let b = key("alice", "deploy-2", T0 + 1);
    let c = key("bob", "other", T0 + 2);
    for k in [&a, &b, &c] {
        store.insert_api_key(k).await.unwrap();
    }
    assert_eq!(store.get_api_key(&a.id).await.unwrap().unwrap(), a);

    let ids = |keys: Vec<tessera_domain::api_key::ApiKeyRecord>| -> Vec<String> {
        keys.into_iter().map(|k| k.id).collect()
    };
    let all = store.find_api_keys(&ApiKeyFilter::default()).await.unwrap();
    assert_eq!(
        ids(all),
        [a.id.clone(), b.id.clone(), c.id.clone()],
        "oldest first"
    );
    let by = |f: ApiKeyFilter| {
        let store = Arc::clone(&store);
        async move { ids(store.find_api_keys(&f).await.unwrap()) }
    };
    assert_eq!(
        by(ApiKeyFilter {
            username: Some("alice".into()),
            ..Default::default()
        })
        .await,
        [a.id.clone(), b.id.clone()]
    );
    assert_eq!(
        by(ApiKeyFilter {
            name: Some(NameMatch::Prefix("deploy".into())),
            ..Default::default()
        })
        .await,
        [a.id.clone(), b.id.clone()]
    );
    assert_eq!(
        by(ApiKeyFilter {
            name: Some(NameMatch::Exact("deploy".into())),
            ..Default::default()
        })
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        by(ApiKeyFilter {
            ids: Some(vec![c.id.clone(), "missing".into()]),
            ..Default::default()
        })
        .await,
        vec![c.id.clone()]
    );
    assert_eq!(
        by(ApiKeyFilter {
            realm: Some("default_native".into()),
            username: Some("bob".into()),
            ..Default::default()
        })
        .await,
        vec![c.id.clone()]
    );
    assert!(by(ApiKeyFilter {
        realm: Some("elsewhere".into()),
        ..Default::default()
    })
    .await
    .is_empty());

    let alice = ApiKeyFilter {
        username: Some("alice".into()),
        ..Default::default()
    };
    let first = store
        .invalidate_api_keys(
            &ApiKeyFilter {
                ids: Some(vec![a.id.clone()]),
                ..Default::default()
            },
            T0 + 10,
        )
        .await
        .unwrap();
    assert_eq!(
        first,
        ApiKeyInvalidation {
            invalidated: vec![a.id.clone()],
            previously_invalidated: vec![]
        }
    );
    let second = store.invalidate_api_keys(&alice, T0 + 20).await.unwrap();
    assert_eq!(
        second,
        ApiKeyInvalidation {
            invalidated: vec![b.id.clone()],
            previously_invalidated: vec![a.id.clone()]
        }
    );
    let stored = store.get_api_key(&a.id).await.unwrap().unwrap();
    assert_eq!(
        stored.invalidated_at,
        Some(T0 + 10),
        "the first invalidation time is kept"
    );
    assert_eq!(
        store
            .invalidate_api_keys(
                &ApiKeyFilter {
                    ids: Some(vec!["missing".into()]),
                    ..Default::default()
                },
                T0
            )
            .await
            .unwrap(),
        ApiKeyInvalidation::default()
    );
    assert!(
        store
            .get_api_key(&c.id)
            .await
            .unwrap()
            .unwrap()
            .invalidated_at
            .is_none(),
        "bob's key untouched"
    );

    // Expired or invalidated keys are kept for the retention period, then purged.
    assert_eq!(store.purge_expired(T0 + 30, 100).await.unwrap(), 0);
    let purged = store
        .purge_expired(T0 + 2_000 + API_KEY_RETENTION_MS, 100)
        .await
        .unwrap();
    assert_eq!(purged, 3);
    assert!(store.get_api_key(&c.id).await.unwrap().is_none());
}

fn scoped(username: &str, scope: Option<Vec<String>>, now: Millis) -> (TokenRecord, TokenPair) {
    let s = subject(username);
    TokenRecord::issue_scoped(&s, s.client_ref(), scope, true, now, POLICY.access_ttl_ms)
}

async fn token_scope_and_find_by_refresh(store: DynStore) {
    let ab = Some(vec!["a".to_string(), "tessera:admin".to_string()]);
    let cases = [
        scoped("u", ab.clone(), T0),
        scoped("u", Some(Vec::new()), T0),
        scoped("u", None, T0),
    ];
    for (record, pair) in &cases {
        store.insert_token(record).await.unwrap();
        let by_access = store
            .find_by_access(&pair.access.hash())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            &by_access, record,
            "the scope round-trips, None and empty apart"
        );
        let by_refresh = store
            .find_by_refresh(&pair.refresh.as_ref().unwrap().hash())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&by_refresh, record);
    }
    let unknown = TokenString::mint(tessera_domain::TokenKind::Refresh, 0);
    assert!(store
        .find_by_refresh(&unknown.hash())
        .await
        .unwrap()
        .is_none());
    assert!(
        store
            .find_by_refresh(&cases[0].1.access.hash())
            .await
            .unwrap()
            .is_none(),
        "an access token is not a refresh token"
    );
    let s = subject("svc");
    let (cc, cc_pair) = TokenRecord::issue_scoped(&s, s.client_ref(), ab.clone(), false, T0, 1000);
    store.insert_token(&cc).await.unwrap();
    assert_eq!(
        store
            .find_by_access(&cc_pair.access.hash())
            .await
            .unwrap()
            .unwrap()
            .scope,
        ab
    );

    // Successors inherit the scope; a replay reports it too.
    let (record, pair) = &cases[0];
    let rt = pair.refresh.clone().unwrap();
    let first = store
        .refresh(request(&rt, &record.client, T0 + 1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.scope, ab);
    let successor = store
        .find_by_access(&first.pair.access.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(successor.scope, ab);
    let replay = store
        .refresh(request(&rt, &record.client, T0 + 2))
        .await
        .unwrap()
        .unwrap();
    assert!(!replay.rotated);
    assert_eq!(replay.scope, ab);
    let unrestricted = store
        .refresh(request(
            cases[2].1.refresh.as_ref().unwrap(),
            &cases[2].0.client,
            T0 + 1,
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unrestricted.scope, None);
    let spent = store.find_by_refresh(&rt.hash()).await.unwrap().unwrap();
    assert!(spent.refreshed.is_some() && !spent.refresh_unused(T0 + 2));
}

fn client_metadata(name: &str, scope: &[&str]) -> ClientMetadata {
    ClientMetadata {
        client_name: Some(name.into()),
        grant_types: vec![GrantType::Password, GrantType::RefreshToken],
        scope: scope.iter().map(|s| s.to_string()).collect(),
        token_endpoint_auth_method: AuthMethod::ClientSecretPost,
    }
}

async fn oauth_clients(store: DynStore) {
    assert!(store.get_oauth_client("nope").await.unwrap().is_none());
    assert!(store.list_oauth_clients().await.unwrap().is_empty());
    let a = oauth::mint_client(client_metadata("a", &["x", "y"]), T0).record;
    let mut b = oauth::mint_client(ClientMetadata::default(), T0 + 1).record;
    assert!(store.put_oauth_client(&a).await.unwrap(), "created");
    assert!(store.put_oauth_client(&b).await.unwrap());
    assert_eq!(
        store.get_oauth_client(&a.client_id).await.unwrap().unwrap(),
        a
    );
    assert_eq!(
        store.get_oauth_client(&b.client_id).await.unwrap().unwrap(),
        b
    );
    let ids: Vec<_> = store
        .list_oauth_clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(
        ids,
        [a.client_id.clone(), b.client_id.clone()],
        "oldest first"
    );

    // An update changes the metadata only: the secret and creation time stay.
    let original_hash = b.secret_hash;
    b.metadata = client_metadata("renamed", &[]);
    b.secret_hash = [7; 32];
    b.created_at = T0 + 99;
    assert!(
        !store.put_oauth_client(&b).await.unwrap(),
        "updated, not created"
    );
    let stored = store.get_oauth_client(&b.client_id).await.unwrap().unwrap();
    assert_eq!(stored.metadata, b.metadata);
    assert_eq!(stored.secret_hash, original_hash);
    assert_eq!(stored.created_at, T0 + 1);

    // Rotation replaces the hash.
    let (secret, hash) = oauth::new_secret();
    assert!(store
        .set_oauth_client_secret(&b.client_id, &hash)
        .await
        .unwrap());
    let rotated = store.get_oauth_client(&b.client_id).await.unwrap().unwrap();
    assert!(rotated.verify_secret(&secret));
    assert_eq!(rotated.metadata, b.metadata);
    assert!(!store.set_oauth_client_secret("nope", &hash).await.unwrap());

    // Deleting a client invalidates every pair issued to it, and only those.
    let user = subject("jane");
    let (mine, mine_pair) = TokenRecord::issue_scoped(
        &user,
        a.client_ref(),
        Some(vec!["x".into()]),
        true,
        T0,
        POLICY.access_ttl_ms,
    );
    store.insert_token(&mine).await.unwrap();
    let (cc, cc_pair) = TokenRecord::issue_scoped(
        &a.authentication(),
        a.client_ref(),
        Some(Vec::new()),
        false,
        T0,
        POLICY.access_ttl_ms,
    );
    store.insert_token(&cc).await.unwrap();
    let next = store
        .refresh(request(
            mine_pair.refresh.as_ref().unwrap(),
            &a.client_ref(),
            T0 + 1,
        ))
        .await
        .unwrap()
        .unwrap()
        .pair;
    let (theirs, theirs_pair) = TokenRecord::issue_scoped(
        &user,
        b.client_ref(),
        Some(Vec::new()),
        true,
        T0,
        POLICY.access_ttl_ms,
    );
    store.insert_token(&theirs).await.unwrap();
    let (_, es_pair) = issue(&store, "jane", T0).await;

    assert!(store.delete_oauth_client(&a.client_id).await.unwrap());
    assert!(!store.delete_oauth_client(&a.client_id).await.unwrap());
    assert!(store
        .get_oauth_client(&a.client_id)
        .await
        .unwrap()
        .is_none());
    assert_family_dead(&store, &[&mine_pair, &next], T0 + 2).await;
    let cc_now = store
        .find_by_access(&cc_pair.access.hash())
        .await
        .unwrap()
        .unwrap();
    assert!(!cc_now.access_usable(T0 + 2));
    for alive in [&theirs_pair, &es_pair] {
        let rec = store
            .find_by_access(&alive.access.hash())
            .await
            .unwrap()
            .unwrap();
        assert!(
            rec.access_usable(T0 + 2),
            "other clients' tokens are untouched"
        );
        assert!(!rec.refresh_invalidated);
    }
    let left: Vec<_> = store
        .list_oauth_clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(left, [b.client_id.clone()]);
}

/// What the authentication path reads (a token by its access hash, a user,
/// roles, an API key), read repeatedly (so a backend that caches has it
/// cached), then changed: the next read shows the change.
async fn reads_follow_every_change(store: DynStore) {
    async fn twice<T, F, Fut>(f: F) -> T
    where
        F: Fn() -> Fut,
        Fut: Future<Output = T>,
    {
        f().await;
        f().await
    }

    // Tokens: invalidation, by hash, by user and by family.
    let (_, pair) = issue(&store, "cached", T0).await;
    let access = pair.access.hash();
    let read = || async { store.find_by_access(&access).await.unwrap().unwrap() };
    assert!(!twice(read).await.access_invalidated);
    store.invalidate_access(&access).await.unwrap();
    assert!(read().await.access_invalidated);

    let (_, pair) = issue(&store, "cached-user", T0).await;
    let access = pair.access.hash();
    let read = || async { store.find_by_access(&access).await.unwrap().unwrap() };
    assert!(!twice(read).await.access_invalidated);
    store
        .invalidate_matching(Some("cached-user"), None, T0)
        .await
        .unwrap();
    assert!(read().await.access_invalidated);

    let (record, pair) = issue(&store, "cached-family", T0).await;
    let access = pair.access.hash();
    let read = || async { store.find_by_access(&access).await.unwrap().unwrap() };
    assert!(twice(read).await.refreshed.is_none());
    let rt = pair.refresh.unwrap();
    store
        .refresh(request(&rt, &record.client, T0))
        .await
        .unwrap()
        .unwrap();
    assert!(
        read().await.refreshed.is_some(),
        "a refresh is visible through the access hash"
    );
    store.invalidate_refresh(&rt.hash()).await.unwrap();
    assert!(read().await.access_invalidated);

    // Users: password, enabled, roles, deletion.
    store.put_user(user("carl", Some("h1"))).await.unwrap();
    let read = || async { store.get_user("carl").await.unwrap() };
    assert_eq!(twice(read).await.unwrap().password_hash, "h1");
    store.set_password("carl", "h2").await.unwrap();
    assert_eq!(read().await.unwrap().password_hash, "h2");
    store.set_enabled("carl", false).await.unwrap();
    assert!(!read().await.unwrap().enabled);
    let mut changed = user("carl", None);
    changed.roles = vec!["other".into()];
    store.put_user(changed).await.unwrap();
    assert_eq!(read().await.unwrap().roles, vec!["other".to_string()]);
    store.delete_user("carl").await.unwrap();
    assert!(read().await.is_none());

    // Roles: change and deletion.
    let names = vec!["cached-role".to_string()];
    let role = |cluster: &str| -> RoleDescriptor {
        serde_json::from_value(serde_json::json!({ "cluster": [cluster] })).unwrap()
    };
    store.put_role("cached-role", &role("all")).await.unwrap();
    let read = || async { store.get_roles(&names).await.unwrap() };
    assert_eq!(twice(read).await[0].1.cluster, vec!["all".to_string()]);
    store
        .put_role("cached-role", &role("manage_token"))
        .await
        .unwrap();
    assert_eq!(read().await[0].1.cluster, vec!["manage_token".to_string()]);
    store.delete_role("cached-role").await.unwrap();
    assert!(read().await.is_empty());

    // API keys: invalidation.
    let k = key("dana", "cached-key", T0);
    store.insert_api_key(&k).await.unwrap();
    let read = || async { store.get_api_key(&k.id).await.unwrap().unwrap() };
    assert!(twice(read).await.invalidated_at.is_none());
    store
        .invalidate_api_keys(
            &ApiKeyFilter {
                ids: Some(vec![k.id.clone()]),
                ..Default::default()
            },
            T0 + 1,
        )
        .await
        .unwrap();
    assert!(read().await.invalidated_at.is_some());
}

/// Readers hammer one access token while it is invalidated: once the
/// invalidation has returned, no read that starts afterwards sees the token
/// alive, however the reads interleaved with the write.
async fn reads_race_invalidation(store: DynStore) {
    use std::sync::atomic::{AtomicBool, Ordering};
    for _ in 0..60 {
        let (_, pair) = issue(&store, "raced", T0).await;
        let access = pair.access.hash();
        assert!(
            !store
                .find_by_access(&access)
                .await
                .unwrap()
                .unwrap()
                .access_invalidated
        );
        let returned = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (store, returned) = (Arc::clone(&store), Arc::clone(&returned));
                tokio::spawn(async move {
                    let mut after = 0;
                    // Keep reading until a few reads started after the return.
                    while after < 5 {
                        let started_after = returned.load(Ordering::SeqCst);
                        // Every other read takes the synchronous path (a
                        // store's cache, if it has one).
                        let found = match store.find_by_access_now(&access).filter(|_| after % 2 == 0) {
                            Some(found) => found,
                            None => store.find_by_access(&access).await.unwrap().unwrap(),
                        };
                        if started_after {
                            assert!(
                                found.access_invalidated,
                                "a read that started after the invalidation returned saw the token alive"
                            );
                            after += 1;
                        }
                    }
                })
            })
            .collect();
        tokio::task::yield_now().await;
        store.invalidate_access(&access).await.unwrap();
        returned.store(true, Ordering::SeqCst);
        for r in readers {
            r.await.unwrap();
        }
    }
}
