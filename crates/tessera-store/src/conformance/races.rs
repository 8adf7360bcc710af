//! The concurrency cases, with real tasks on a multi-threaded runtime:
//! many refreshes of one token, refresh racing invalidation (by token, by
//! user, by client deletion), and reads racing changes.

use std::future::Future;

use super::*;

const RACERS: usize = 12;

pub async fn concurrent_refreshes_agree(store: DynStore) {
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

pub async fn refresh_races_invalidate_refresh(store: DynStore) {
    for _ in 0..40 {
        let (record, pair) = issue(&store, "u", T0).await;
        let rt = pair.refresh.clone().unwrap();
        let refresher = refresh_on_task(&store, request(&rt, &record.client, T0));
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
        let original = store.stored(&pair.access).await;
        assert!(original.access_invalidated);
        assert_eq!(
            store.refusal(request(&rt, &record.client, T0 + 1)).await,
            RefreshError::Invalidated,
            "after the invalidation answered, the refresh token is dead"
        );
    }
}

pub async fn refresh_races_invalidate_by_user(store: DynStore) {
    for _ in 0..40 {
        let (record, pair) = issue(&store, "racer", T0).await;
        let rt = pair.refresh.clone().unwrap();
        let refresher = refresh_on_task(&store, request(&rt, &record.client, T0));
        let invalidator = {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.invalidate_matching(Some("racer"), None, T0).await })
        };
        let refreshed = refresher.await.unwrap().unwrap();
        invalidator.await.unwrap().unwrap();
        assert_dead_after_race(
            &store,
            &refreshed,
            &pair,
            "a successor minted by a racing refresh is invalidated too",
        )
        .await;
    }
}

/// Deleting an OAuth client while one of its refresh tokens is being used:
/// once the deletion has returned, no pair issued to the client works,
/// including a successor the racing refresh minted.
pub async fn refresh_races_client_deletion(store: DynStore) {
    for _ in 0..40 {
        let client = oauth::mint_client(ClientMetadata::default(), T0).record;
        store.put_oauth_client(&client).await.unwrap();
        let s = subject("racer");
        let (record, pair) = issue_to_client(&s, &client, Vec::new(), true);
        store.insert_token(&record).await.unwrap();
        let rt = pair.refresh.clone().unwrap();
        let refresher = refresh_on_task(&store, request(&rt, &record.client, T0));
        let deleter = {
            let (store, id) = (Arc::clone(&store), client.client_id.clone());
            tokio::spawn(async move { store.delete_oauth_client(&id).await })
        };
        let refreshed = refresher.await.unwrap().unwrap();
        assert!(deleter.await.unwrap().unwrap());
        assert_dead_after_race(
            &store,
            &refreshed,
            &pair,
            "a successor minted by a racing refresh dies with its client",
        )
        .await;
    }
}

/// What the authentication path reads (a token by its access hash, a user,
/// roles, an API key), read repeatedly (so a backend that caches has it
/// cached), then changed: the next read shows the change.
pub async fn reads_follow_every_change(store: DynStore) {
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
    store.granted(request(&rt, &record.client, T0)).await;
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
    store.set_password("carl", "h2", false).await.unwrap();
    assert_eq!(read().await.unwrap().password_hash, "h2");
    store.set_enabled("carl", false, false).await.unwrap();
    assert!(!read().await.unwrap().enabled);
    let mut changed = user("carl", None);
    changed.roles = vec!["other".into()];
    store.put_user(changed).await.unwrap();
    assert_eq!(read().await.unwrap().roles, vec!["other".to_string()]);
    store.delete_user("carl", false, 0).await.unwrap();
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
        .invalidate_api_keys(&by_ids(&[&k.id]), T0 + 1)
        .await
        .unwrap();
    assert!(read().await.invalidated_at.is_some());
}

/// Readers hammer one access token while it is invalidated: once the
/// invalidation has returned, no read that starts afterwards sees the token
/// alive, however the reads interleaved with the write.
pub async fn reads_race_invalidation(store: DynStore) {
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

/// After a refresh raced something that takes its pair back: the pair is
/// dead, and so is the successor the refresh minted, if it minted one.
async fn assert_dead_after_race(
    store: &DynStore,
    refreshed: &RefreshOutcome,
    pair: &TokenPair,
    why: &str,
) {
    if let Ok(granted) = refreshed {
        let successor = store.stored(&granted.pair.access).await;
        assert!(
            successor.access_invalidated && successor.refresh_invalidated,
            "{why}"
        );
    }
    let original = store.stored(&pair.access).await;
    assert!(original.access_invalidated && original.refresh_invalidated);
}

/// `request` refreshed on a task of its own, to race something else.
fn refresh_on_task(
    store: &DynStore,
    request: RefreshRequest,
) -> tokio::task::JoinHandle<crate::StoreResult<RefreshOutcome>> {
    let store = Arc::clone(store);
    tokio::spawn(async move { store.refresh(request).await })
}
