//! Updates of API keys by their owner, and an update racing an
//! invalidation of the same key.

use std::collections::BTreeMap;

use tessera_domain::api_key::{ApiKeyRecord, KeyUpdate, UpdateRefusal};

use super::*;
use crate::api_key_updates::{KeyOwner, KeyUpdated};

fn owner(name: &str) -> KeyOwner {
    KeyOwner {
        username: name.into(),
        realm: NATIVE_REALM.name.to_string(),
    }
}

fn metadata_change(key: &ApiKeyRecord, env: &str) -> KeyUpdate {
    KeyUpdate {
        role_descriptors: None,
        metadata: Some(serde_json::from_value(serde_json::json!({ "env": env })).unwrap()),
        expires_at: None,
        owner: key.owner.clone(),
    }
}

fn descriptors(privilege: &str) -> BTreeMap<String, RoleDescriptor> {
    let mut d = BTreeMap::new();
    d.insert(
        "r".to_string(),
        serde_json::from_value(serde_json::json!({ "cluster": [privilege] })).unwrap(),
    );
    d
}

pub async fn api_key_updates(store: DynStore) {
    let a1 = key("alice", "one", T0);
    let a2 = key("alice", "two", T0 + 1);
    let b1 = key("bob", "three", T0 + 2);
    for k in [&a1, &a2, &b1] {
        store.insert_api_key(k).await.unwrap();
    }
    let now = T0 + 10;
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let asked = ids(&[&a1.id, &b1.id, "missing", &a2.id, &a1.id]);
    let change = KeyUpdate {
        expires_at: Some(T0 + 5_000),
        role_descriptors: Some(descriptors("manage_own_api_key")),
        ..metadata_change(&a1, "prod")
    };
    let outcome = store
        .update_api_keys(&owner("alice"), &asked, &change, now)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        [
            (a1.id.clone(), KeyUpdated::Updated),
            (b1.id.clone(), KeyUpdated::NotFound),
            ("missing".to_string(), KeyUpdated::NotFound),
            (a2.id.clone(), KeyUpdated::Updated),
        ],
        "each id once, in the order asked; another owner's key is not found"
    );
    let stored = store.get_api_key(&a1.id).await.unwrap().unwrap();
    assert_eq!(stored.metadata["env"], "prod");
    assert_eq!(stored.expires_at, Some(T0 + 5_000));
    assert_eq!(stored.role_descriptors, descriptors("manage_own_api_key"));
    assert_eq!(
        (stored.secret_hash, &stored.name, stored.created_at),
        (a1.secret_hash, &a1.name, a1.created_at),
        "the secret, name and creation stay"
    );
    assert_eq!(store.get_api_key(&b1.id).await.unwrap().unwrap(), b1);
    let listed = store.find_api_keys(&by_ids(&[&a2.id])).await.unwrap();
    assert_eq!(listed[0].metadata["env"], "prod", "listings see the update");

    let again = store
        .update_api_keys(&owner("alice"), &ids(&[&a1.id]), &change, now)
        .await
        .unwrap();
    assert_eq!(again, [(a1.id.clone(), KeyUpdated::Noop)]);

    store
        .invalidate_api_keys(&by_ids(&[&a2.id]), now)
        .await
        .unwrap();
    let refused = store
        .update_api_keys(
            &owner("alice"),
            &ids(&[&a2.id]),
            &metadata_change(&a2, "x"),
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        refused,
        [(
            a2.id.clone(),
            KeyUpdated::Refused(UpdateRefusal::Invalidated)
        )]
    );
    let gone = store.get_api_key(&a2.id).await.unwrap().unwrap();
    assert!(gone.invalidated_at.is_some());
    assert_eq!(gone.metadata["env"], "prod");

    let expired = store
        .update_api_keys(
            &owner("bob"),
            &ids(&[&b1.id]),
            &metadata_change(&b1, "x"),
            b1.expires_at.unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        expired,
        [(b1.id.clone(), KeyUpdated::Refused(UpdateRefusal::Expired))]
    );
    let other_realm = KeyOwner {
        username: "alice".into(),
        realm: "saml1".into(),
    };
    let elsewhere = store
        .update_api_keys(&other_realm, &ids(&[&a1.id]), &change, now)
        .await
        .unwrap();
    assert_eq!(elsewhere, [(a1.id.clone(), KeyUpdated::NotFound)]);
}

/// An update racing an invalidation of the same key: whichever wins, the
/// key ends invalidated, and its descriptors are the new ones exactly when
/// the update says it updated.
pub async fn update_races_invalidation(store: DynStore) {
    for round in 0..12 {
        let k = key("alice", &format!("race-{round}"), T0 + round);
        store.insert_api_key(&k).await.unwrap();
        let change = KeyUpdate {
            role_descriptors: Some(descriptors("manage_own_api_key")),
            ..metadata_change(&k, "raced")
        };
        let (s1, s2) = (Arc::clone(&store), Arc::clone(&store));
        let id = k.id.clone();
        let update = tokio::spawn(async move {
            s1.update_api_keys(&owner("alice"), &[id], &change, T0 + 100)
                .await
                .unwrap()
        });
        let filter = by_ids(&[&k.id]);
        let invalidate =
            tokio::spawn(async move { s2.invalidate_api_keys(&filter, T0 + 100).await.unwrap() });
        let (updated, invalidated) = (update.await.unwrap(), invalidate.await.unwrap());
        assert_eq!(invalidated.invalidated, std::slice::from_ref(&k.id));
        let stored = store.get_api_key(&k.id).await.unwrap().unwrap();
        assert!(
            stored.invalidated_at.is_some(),
            "an update never revives a key"
        );
        match updated[0].1 {
            KeyUpdated::Updated => {
                assert_eq!(stored.role_descriptors, descriptors("manage_own_api_key"))
            }
            KeyUpdated::Refused(UpdateRefusal::Invalidated) => {
                assert_eq!(stored.role_descriptors, k.role_descriptors)
            }
            other => panic!("unexpected outcome {other:?}"),
        }
    }
}
