//! OAuth clients: registration, metadata updates, secret rotation and
//! deletion.

use super::*;

fn client_metadata(name: &str, scope: &[&str]) -> ClientMetadata {
    ClientMetadata {
        client_name: Some(name.into()),
        grant_types: vec![GrantType::Password, GrantType::RefreshToken],
        scope: scope.iter().map(|s| s.to_string()).collect(),
        token_endpoint_auth_method: AuthMethod::ClientSecretPost,
    }
}

pub async fn oauth_clients(store: DynStore) {
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
    let ids: Vec<_> = store.client_ids().await;
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
    let (mine, mine_pair) = issue_to_client(&user, &a, vec!["x".into()], true);
    store.insert_token(&mine).await.unwrap();
    let (cc, cc_pair) = issue_to_client(&a.authentication(), &a, Vec::new(), false);
    store.insert_token(&cc).await.unwrap();
    let next = store
        .granted(request(
            mine_pair.refresh.as_ref().unwrap(),
            &a.client_ref(),
            T0 + 1,
        ))
        .await
        .pair;
    let (theirs, theirs_pair) = issue_to_client(&user, &b, Vec::new(), true);
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
    let cc_now = store.stored(&cc_pair.access).await;
    assert!(!cc_now.access_usable(T0 + 2));
    for alive in [&theirs_pair, &es_pair] {
        let rec = store.stored(&alive.access).await;
        assert!(
            rec.access_usable(T0 + 2),
            "other clients' tokens are untouched"
        );
        assert!(!rec.refresh_invalidated);
    }
    let left: Vec<_> = store.client_ids().await;
    assert_eq!(left, [b.client_id.clone()]);
}
