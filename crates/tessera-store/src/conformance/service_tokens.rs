//! Service tokens: created once per name, listed per account, found by
//! account and name, deleted for every reader at once.

use tessera_domain::service_account::{self, ServiceTokenRecord};

use super::*;

fn minted(account: &str, name: &str, at: Millis) -> ServiceTokenRecord {
    let account = service_account::find(account).expect("a built-in account");
    service_account::mint(account, name, at).record
}

fn names(found: &[ServiceTokenRecord]) -> Vec<&str> {
    found.iter().map(|t| t.name.as_str()).collect()
}

pub async fn service_token_crud(store: DynStore) {
    let kibana = "elastic/kibana";
    let fleet = "elastic/fleet-server";
    assert!(store.list_service_tokens(kibana).await.unwrap().is_empty());
    assert_eq!(store.find_service_token(kibana, "t").await.unwrap(), None);

    let t = minted(kibana, "t", T0);
    assert!(store.create_service_token(&t).await.unwrap());
    let again = minted(kibana, "t", T0 + 1);
    assert!(
        !store.create_service_token(&again).await.unwrap(),
        "a name is taken once per account"
    );
    assert_eq!(
        store.find_service_token(kibana, "t").await.unwrap(),
        Some(t.secret_hash),
        "the first token's hash is kept"
    );
    // The same name in another account is another token.
    let other = minted(fleet, "t", T0);
    assert!(store.create_service_token(&other).await.unwrap());
    let b = minted(kibana, "b-2", T0 + 2);
    assert!(store.create_service_token(&b).await.unwrap());

    let listed = store.list_service_tokens(kibana).await.unwrap();
    assert_eq!(names(&listed), ["b-2", "t"]);
    assert_eq!(listed[1], t, "read back as stored");
    assert_eq!(
        names(&store.list_service_tokens(fleet).await.unwrap()),
        ["t"]
    );

    assert!(store.delete_service_token(kibana, "t").await.unwrap());
    assert!(!store.delete_service_token(kibana, "t").await.unwrap());
    assert_eq!(store.find_service_token(kibana, "t").await.unwrap(), None);
    assert_eq!(
        store.find_service_token(fleet, "t").await.unwrap(),
        Some(other.secret_hash),
        "the other account's token of that name stays"
    );
    // A deleted name can be taken again, with a new secret.
    let renewed = minted(kibana, "t", T0 + 3);
    assert!(store.create_service_token(&renewed).await.unwrap());
    assert_eq!(
        store.find_service_token(kibana, "t").await.unwrap(),
        Some(renewed.secret_hash)
    );
}

/// Racing creations of one name: exactly one is stored.
pub async fn service_token_creation_races(store: DynStore) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let t = minted("elastic/kibana", "race", T0 + i);
                store.create_service_token(&t).await.unwrap().then_some(t)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        winners.extend(task.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "one creation wins");
    assert_eq!(
        store
            .find_service_token("elastic/kibana", "race")
            .await
            .unwrap(),
        Some(winners[0].secret_hash)
    );
}
