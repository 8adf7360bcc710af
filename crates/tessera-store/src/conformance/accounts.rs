//! Users, the bootstrap user and roles.

use super::*;

pub async fn users(store: DynStore) {
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
    let names: Vec<_> = store.usernames().await;
    assert_eq!(names, ["amy", "joe"]);
    assert!(store.set_password("joe", "h3", false).await.unwrap());
    assert!(!store.set_password("nobody", "h3", false).await.unwrap());
    assert_eq!(
        store.get_user("joe").await.unwrap().unwrap().password_hash,
        "h3"
    );
    assert!(store.set_enabled("joe", false, false).await.unwrap());
    assert!(!store.get_user("joe").await.unwrap().unwrap().enabled);
    assert!(!store.set_enabled("nobody", false, false).await.unwrap());
    assert!(store.delete_user("joe", false, 0).await.unwrap());
    assert!(!store.delete_user("joe", false, 0).await.unwrap());
    assert!(store.get_user("joe").await.unwrap().is_none());
}

pub async fn bootstrap(store: DynStore) {
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

pub async fn roles(store: DynStore) {
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

/// A writable store is ready, again and again, and the check leaves
/// nothing a caller can see.
pub async fn ready(store: DynStore) {
    store.ready().await.unwrap();
    store.ready().await.unwrap();
    assert!(store.list_users().await.unwrap().is_empty());
    store.put_user(user("joe", Some("h1"))).await.unwrap();
    store.ready().await.unwrap();
    assert_eq!(store.list_users().await.unwrap().len(), 1);
}

pub async fn cluster_uuid_is_kept(store: DynStore) {
    let first = store.cluster_uuid("uuid-one").await.unwrap();
    assert_eq!(first, "uuid-one", "the first candidate is kept");
    assert_eq!(
        store.cluster_uuid("uuid-two").await.unwrap(),
        "uuid-one",
        "later candidates are ignored"
    );
}
