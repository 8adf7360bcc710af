//! API keys: storing, finding, filtering and invalidating them.

use super::*;

pub async fn api_keys(store: DynStore) {
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
    let filters = [
        (
            ApiKeyFilter {
                username: Some("alice".into()),
                ..Default::default()
            },
            vec![a.id.clone(), b.id.clone()],
        ),
        (
            ApiKeyFilter {
                name: Some(NameMatch::Prefix("deploy".into())),
                ..Default::default()
            },
            vec![a.id.clone(), b.id.clone()],
        ),
        (
            ApiKeyFilter {
                name: Some(NameMatch::Exact("deploy".into())),
                ..Default::default()
            },
            vec![],
        ),
        (by_ids(&[&c.id, "missing"]), vec![c.id.clone()]),
    ];
    for (filter, expected) in filters {
        assert_eq!(by(filter.clone()).await, expected, "{filter:?}");
    }
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
        .invalidate_api_keys(&by_ids(&[&a.id]), T0 + 10)
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
            .invalidate_api_keys(&by_ids(&["missing"]), T0)
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
