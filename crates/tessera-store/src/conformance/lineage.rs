//! Derived credentials: a token dies with the API key, user or token whose
//! authority minted it, however deep the chain, and a token minted while
//! its source is taken back is never left alive.

use std::sync::Arc;

use tessera_domain::api_key::ApiKeyRecord;
use tessera_domain::refresh::RefreshError;
use tessera_domain::token::TokenPair;
use tessera_domain::{Authentication, ClientRef, Millis, TokenRecord};

use super::{by_ids, key, request, subject, user, DynStore, StoreExt, POLICY, T0};
use crate::{ApiKeyFilter, Lineage, Requirement};

/// Mints a pair for `subject` on behalf of `client`, derived as `lineage`
/// says, and stores it. Returns `None` when the store refused it.
async fn derive(
    store: &DynStore,
    subject: &Authentication,
    client: ClientRef,
    lineage: Lineage,
    now: Millis,
) -> Option<(TokenRecord, TokenPair)> {
    let (record, pair) = TokenRecord::issue(subject, client, true, now, POLICY.access_ttl_ms);
    let stored = store.insert_derived(&record, &lineage).await.unwrap();
    stored.then_some((record, pair))
}

/// A pair minted by the caller holding `parent`'s access token.
async fn child(store: &DynStore, parent: &(TokenRecord, TokenPair)) -> (TokenRecord, TokenPair) {
    let lineage = Lineage {
        parent: Some(parent.0.access_hash),
        requires: vec![],
        ..Default::default()
    };
    let s = parent.0.subject.clone();
    derive(store, &s, s.client_ref(), lineage, T0)
        .await
        .expect("a live parent may mint")
}

async fn stored_key(store: &DynStore, owner: &str, name: &str) -> ApiKeyRecord {
    let mut k = key(owner, name, T0);
    k.expires_at = None;
    store.insert_api_key(&k).await.unwrap();
    k
}

fn requires_key(k: &ApiKeyRecord) -> Lineage {
    Lineage {
        parent: None,
        requires: vec![Requirement::ApiKey { id: k.id.clone() }],
        ..Default::default()
    }
}

/// Asserts that no token of `pairs` authenticates or refreshes any more.
async fn all_dead(store: &DynStore, pairs: &[&(TokenRecord, TokenPair)], why: &str) {
    for (i, (record, pair)) in pairs.iter().enumerate() {
        let found = store.stored(&pair.access).await;
        assert!(
            found.access_invalidated,
            "{why}: pair {i} still authenticates"
        );
        assert_eq!(
            store
                .refusal(request(
                    pair.refresh.as_ref().unwrap(),
                    &record.client,
                    T0 + 1,
                ))
                .await,
            RefreshError::Invalidated,
            "{why}: pair {i}"
        );
    }
}

async fn all_alive(store: &DynStore, pairs: &[&(TokenRecord, TokenPair)], why: &str) {
    for (i, (_, pair)) in pairs.iter().enumerate() {
        let found = store.stored(&pair.access).await;
        assert!(found.access_usable(T0 + 1), "{why}: pair {i} was revoked");
    }
}

/// key → token → token → token, and a password-grant pair the key obtained
/// for another user: invalidating the key kills all of them.
pub async fn chains_die_with_their_api_key(store: DynStore) {
    store.put_user(user("bob", Some("hb"))).await.unwrap();
    store.put_user(user("jane", Some("hj"))).await.unwrap();
    let k = stored_key(&store, "bob", "k").await;
    let by_key = k.authentication();
    let first = derive(&store, &by_key, by_key.client_ref(), requires_key(&k), T0)
        .await
        .expect("a live key may mint");
    let mut for_jane = requires_key(&k);
    for_jane.requires.push(Requirement::User {
        username: "jane".into(),
        password_hash: Some("hj".into()),
    });
    let jane = derive(&store, &subject("jane"), by_key.client_ref(), for_jane, T0)
        .await
        .expect("a live key may obtain a pair for a user");
    let second = child(&store, &first).await;
    let third = child(&store, &second).await;
    let other_key = stored_key(&store, "bob", "other").await;
    let other = k_token(&store, &other_key).await;
    let stranger = child(&store, &super::issue(&store, "stranger", T0).await).await;

    let outcome = store
        .invalidate_api_keys(&by_ids(&[&k.id]), T0)
        .await
        .unwrap();
    assert_eq!(outcome.invalidated, vec![k.id.clone()]);
    all_dead(&store, &[&first, &second, &third, &jane], "key invalidated").await;
    all_alive(&store, &[&other, &stranger], "unrelated").await;
    // Nothing more can be minted from the dead chain or the dead key.
    let s = third.0.subject.clone();
    let late = Lineage {
        parent: Some(third.0.access_hash),
        requires: vec![],
        ..Default::default()
    };
    assert!(derive(&store, &s, s.client_ref(), late, T0).await.is_none());
    assert!(
        derive(&store, &by_key, by_key.client_ref(), requires_key(&k), T0)
            .await
            .is_none()
    );
}

async fn k_token(store: &DynStore, k: &ApiKeyRecord) -> (TokenRecord, TokenPair) {
    let a = k.authentication();
    derive(store, &a, a.client_ref(), requires_key(k), T0)
        .await
        .expect("a live key may mint")
}

/// Revoking a family in any way revokes every family derived from it.
pub async fn revocation_reaches_descendants(store: DynStore) {
    // Invalidating the access token, the refresh token, by user, or by
    // reuse of the parent's refresh token.
    for way in 0..4 {
        let root = super::issue(&store, &format!("root{way}"), T0).await;
        let kid = child(&store, &root).await;
        let grandkid = child(&store, &kid).await;
        let sibling = super::issue(&store, &format!("root{way}x"), T0).await;
        match way {
            0 => {
                store
                    .invalidate_access(&root.1.access.hash())
                    .await
                    .unwrap();
            }
            1 => {
                let rt = root.1.refresh.as_ref().unwrap().hash();
                store.invalidate_refresh(&rt).await.unwrap();
            }
            2 => {
                let name = format!("root{way}");
                store
                    .invalidate_matching(Some(&name), None, T0)
                    .await
                    .unwrap();
            }
            _ => {
                let rt = root.1.refresh.clone().unwrap();
                let at = |t| request(&rt, &root.0.client, t);
                store.granted(at(T0)).await;
                let reuse = store.denied(at(T0 + POLICY.window_ms + 1)).await;
                assert!(reuse.revoke_family);
            }
        }
        all_dead(&store, &[&kid, &grandkid], &format!("way {way}")).await;
        all_alive(&store, &[&sibling], &format!("way {way}")).await;
    }
    // Deleting an OAuth client reaches what its tokens minted.
    let client = tessera_domain::oauth::mint_client(Default::default(), T0).record;
    store.put_oauth_client(&client).await.unwrap();
    let s = subject("cc");
    let (record, pair) = TokenRecord::issue(&s, client.client_ref(), true, T0, 1_000_000);
    store.insert_token(&record).await.unwrap();
    let kid = child(&store, &(record, pair)).await;
    assert!(store.delete_oauth_client(&client.client_id).await.unwrap());
    all_dead(&store, &[&kid], "client deleted").await;
}

/// Deleting, disabling or re-passwording a user revokes what the user
/// stands for and what it minted (itself, through its API keys, and
/// through its tokens), but only when asked; deleting it also
/// invalidates its API keys.
pub async fn user_changes_reach_tokens(store: DynStore) {
    for change in 0..5 {
        let ann = format!("ann{change}");
        store.put_user(user(&ann, Some("h"))).await.unwrap();
        store.put_user(user("jane", Some("hj"))).await.unwrap();
        let own = super::issue(&store, &ann, T0).await;
        let minted_for_jane = {
            let s = subject("jane");
            derive(
                &store,
                &s,
                subject(&ann).client_ref(),
                Lineage::default(),
                T0,
            )
            .await
            .unwrap()
        };
        let k = stored_key(&store, &ann, "k").await;
        let by_key = k_token(&store, &k).await;
        let kid = child(&store, &own).await;
        let janes_own = super::issue(&store, "jane", T0).await;
        let everything = [&own, &minted_for_jane, &by_key, &kid];
        match change {
            0 => assert!(store.set_password(&ann, "h2", false).await.unwrap()),
            1 => assert!(store.set_password(&ann, "h2", true).await.unwrap()),
            2 => assert!(store.set_enabled(&ann, false, true).await.unwrap()),
            3 => assert!(store.delete_user(&ann, true, T0 + 5).await.unwrap()),
            _ => {
                let mut update = user(&ann, Some("h3"));
                update.revoke_tokens = true;
                assert!(!store.put_user(update).await.unwrap());
            }
        }
        if change == 0 {
            all_alive(&store, &everything, "kept as Elasticsearch keeps them").await;
        } else {
            all_dead(&store, &everything, &format!("change {change}")).await;
        }
        all_alive(&store, &[&janes_own], "another user").await;
        // A deletion invalidates the user's API keys for good (a namesake
        // created later does not get them back); the other changes leave
        // them as they are (a disabled owner's keys are refused while it
        // stays disabled).
        let key_after = store.get_api_key(&k.id).await.unwrap().unwrap();
        let deleted = (change == 3).then_some(T0 + 5);
        assert_eq!(key_after.invalidated_at, deleted, "change {change}");
        // Enabling never revokes.
        store.set_enabled("jane", true, true).await.unwrap();
        all_alive(&store, &[&janes_own], "enabled").await;
    }
}

/// A source that is gone when the token is stored stores nothing.
pub async fn sources_are_checked_when_storing(store: DynStore) {
    store.put_user(user("sam", Some("hs"))).await.unwrap();
    let s = subject("sam");
    let needs = |username: &str, hash: Option<&str>| Lineage {
        parent: None,
        requires: vec![Requirement::User {
            username: username.into(),
            password_hash: hash.map(str::to_owned),
        }],
        ..Default::default()
    };
    let stored = |l: Lineage| {
        let (store, s) = (Arc::clone(&store), s.clone());
        async move { derive(&store, &s, s.client_ref(), l, T0).await.is_some() }
    };
    assert!(stored(needs("sam", Some("hs"))).await);
    assert!(stored(needs("sam", None)).await);
    assert!(!stored(needs("sam", Some("old"))).await, "password changed");
    assert!(!stored(needs("nobody", None)).await, "no such user");
    store.set_enabled("sam", false, false).await.unwrap();
    assert!(!stored(needs("sam", Some("hs"))).await, "disabled");

    let mut expiring = key("sam", "exp", T0 - 10);
    expiring.expires_at = Some(T0);
    store.insert_api_key(&expiring).await.unwrap();
    assert!(
        !stored(requires_key(&expiring)).await,
        "expired at creation"
    );
    assert!(!stored(requires_key(&key("sam", "never-stored", T0))).await);

    let gone = super::issue(&store, "sam", T0).await;
    let unknown = super::issue(&store, "sam", T0).await;
    store
        .invalidate_access(&gone.1.access.hash())
        .await
        .unwrap();
    for parent in [gone.0.access_hash, unknown.0.refresh_hash.unwrap()] {
        let l = Lineage {
            parent: Some(parent),
            requires: vec![],
            ..Default::default()
        };
        assert!(!stored(l).await, "a revoked or unknown parent");
    }

    let client = tessera_domain::oauth::mint_client(Default::default(), T0).record;
    store.put_oauth_client(&client).await.unwrap();
    let registered = || Lineage {
        parent: None,
        requires: vec![Requirement::OAuthClient {
            client_id: client.client_id.clone(),
        }],
        ..Default::default()
    };
    assert!(stored(registered()).await);
    store.delete_oauth_client(&client.client_id).await.unwrap();
    assert!(!stored(registered()).await, "the client was deleted");
}

/// The family's cap is stored and inherited by successors.
pub async fn caps_are_kept(store: DynStore) {
    let s = subject("cap");
    let (record, pair) = TokenRecord::issue(&s, s.client_ref(), true, T0, POLICY.access_ttl_ms);
    let record = record.capped(Some(T0 + 5_000));
    store.insert_token(&record).await.unwrap();
    let found = store.stored(&pair.access).await;
    assert_eq!(found, record);
    let granted = store
        .granted(request(
            pair.refresh.as_ref().unwrap(),
            &record.client,
            T0 + 1_000,
        ))
        .await;
    let successor = store.stored(&granted.pair.access).await;
    assert_eq!(successor.not_after, Some(T0 + 5_000));
    assert_eq!(successor.refresh_expires_at, Some(T0 + 5_000));
}

/// Minting from a key races the key's invalidation: once the invalidation
/// has answered, every token that was stored is dead, and none is stored
/// afterwards.
pub async fn minting_races_key_invalidation(store: DynStore) {
    store.put_user(user("racer", Some("h"))).await.unwrap();
    for trial in 0..30 {
        let k = stored_key(&store, "racer", &format!("k{trial}")).await;
        let parent = k_token(&store, &k).await;
        let minters: Vec<_> = (0..4)
            .map(|i| {
                let (store, k, parent) = (Arc::clone(&store), k.clone(), parent.clone());
                tokio::spawn(async move {
                    if i % 2 == 0 {
                        let a = k.authentication();
                        derive(&store, &a, a.client_ref(), requires_key(&k), T0).await
                    } else {
                        let s = parent.0.subject.clone();
                        let l = Lineage {
                            parent: Some(parent.0.access_hash),
                            requires: vec![],
                            ..Default::default()
                        };
                        derive(&store, &s, s.client_ref(), l, T0).await
                    }
                })
            })
            .collect();
        let filter = ApiKeyFilter {
            ids: Some(vec![k.id.clone()]),
            ..Default::default()
        };
        store.invalidate_api_keys(&filter, T0).await.unwrap();
        let mut minted = vec![parent];
        for m in minters {
            minted.extend(m.await.unwrap());
        }
        let refs: Vec<_> = minted.iter().collect();
        all_dead(&store, &refs, &format!("trial {trial}")).await;
    }
}
