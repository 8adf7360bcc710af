//! Issuing, finding, refreshing, invalidating and purging token pairs,
//! refresh families, and OAuth scopes on tokens.

use super::*;

pub async fn issue_and_find(store: DynStore) {
    assert!(!store.tokens_ever_issued().await.unwrap());
    let (record, pair) = issue(&store, "u", T0).await;
    assert!(store.tokens_ever_issued().await.unwrap());
    let found = store.stored(&pair.access).await;
    assert_eq!(found, record);
    let missing = TokenString::mint(TokenKind::Access, 0);
    assert!(store.find(TokenKind::Access, &missing).await.is_none());
    assert_eq!(store.count_tokens().await.unwrap(), 1);

    // A pair without a refresh token (client_credentials).
    let s = subject("svc");
    let (cc, cc_pair) = TokenRecord::issue(&s, s.client_ref(), false, T0, 1000);
    store.insert_token(&cc).await.unwrap();
    assert_eq!(store.stored(&cc_pair.access).await, cc);
}

pub async fn refresh_rules(store: DynStore) {
    let (record, pair) = issue(&store, "u", T0).await;
    let rt = pair.refresh.clone().unwrap();
    let me = record.client.clone();
    let stranger = subject("stranger").client_ref();

    let unknown = TokenString::mint(tessera_domain::TokenKind::Refresh, 0);
    assert_eq!(
        store.refusal(request(&unknown, &me, T0)).await,
        RefreshError::NotFound
    );
    assert_eq!(
        store.refusal(request(&rt, &stranger, T0 + 1)).await,
        RefreshError::WrongClient
    );
    let first = store.granted(request(&rt, &me, T0 + 10)).await;
    assert!(first.rotated);
    assert_eq!(first.subject.authentication_type, AuthenticationType::Token);
    let successor = store.stored(&first.pair.access).await;
    assert_eq!(successor.generation, 1);
    assert_eq!(successor.family_id, record.family_id);
    assert_eq!(successor.client, me);
    // the old access token stays valid
    assert!(store.stored(&pair.access).await.access_usable(T0 + 10));

    let again = store.granted(request(&rt, &me, T0 + 20_000)).await;
    assert!(!again.rotated);
    assert_eq!(
        again.pair, first.pair,
        "a repeat in the window returns the identical pair"
    );
    // the successor refreshes normally, once
    let next_rt = first.pair.refresh.clone().unwrap();
    let second = store.granted(request(&next_rt, &me, T0 + 40_000)).await;
    assert!(second.rotated);
    assert_eq!(second.pair.access.hash(), {
        let s = store.stored(&second.pair.access).await;
        assert_eq!(s.generation, 2);
        s.access_hash
    });
    // reuse of the first refresh token after its window revokes the family
    let late = store.denied(request(&rt, &me, T0 + 10 + 30_001)).await;
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
        store.refusal(request(&rt2, &me, T0 + 1)).await,
        RefreshError::Invalidated
    );
    let (_, p3) = issue(&store, "u", T0).await;
    assert_eq!(
        store
            .refusal(request(
                p3.refresh.as_ref().unwrap(),
                &me,
                T0 + 24 * 3_600_000
            ))
            .await,
        RefreshError::Expired
    );
}

pub async fn families(store: DynStore) {
    // gen0 -> gen1 -> gen2, then a repeat of gen0 inside its window: an
    // older generation than the head's predecessor is reuse.
    let (record, g0) = issue(&store, "fam", T0).await;
    let me = record.client.clone();
    let g1 = store
        .granted(request(g0.refresh.as_ref().unwrap(), &me, T0))
        .await
        .pair;
    let g2 = store
        .granted(request(g1.refresh.as_ref().unwrap(), &me, T0 + 1))
        .await
        .pair;
    // the immediate predecessor still enjoys the window
    let replay = store
        .granted(request(g1.refresh.as_ref().unwrap(), &me, T0 + 2))
        .await;
    assert_eq!(replay.pair, g2);
    let reuse = store
        .denied(request(g0.refresh.as_ref().unwrap(), &me, T0 + 3))
        .await;
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
        .granted(strict(h0.refresh.as_ref().unwrap(), T0))
        .await
        .pair;
    let h2 = store
        .granted(strict(h1.refresh.as_ref().unwrap(), T0 + 1))
        .await
        .pair;
    let again = store
        .granted(strict(h0.refresh.as_ref().unwrap(), T0 + 2))
        .await;
    assert_eq!(again.pair, h1);
    let late = store
        .denied(strict(h0.refresh.as_ref().unwrap(), T0 + 31_000))
        .await;
    assert!(matches!(
        late.error,
        RefreshError::RefreshedTooLongAgo { .. }
    ));
    assert!(!late.revoke_family);
    let head = store.stored(&h2.access).await;
    assert!(head.access_usable(T0 + 31_000), "nothing was revoked");

    // Invalidating any member's token is final for the whole family.
    assert_eq!(
        store.invalidate_access(&h0.access.hash()).await.unwrap(),
        InvalidateOne::Invalidated
    );
    assert_family_dead(&store, &[&h0, &h1, &h2], T0 + 5).await;
}

pub async fn replay_of_invalidated_successor(store: DynStore) {
    let (record, pair) = issue(&store, "u", T0).await;
    let rt = pair.refresh.unwrap();
    let first = store.granted(request(&rt, &record.client, T0)).await;
    store
        .invalidate_access(&first.pair.access.hash())
        .await
        .unwrap();
    assert_eq!(
        store.refusal(request(&rt, &record.client, T0 + 1)).await,
        RefreshError::Invalidated,
        "a replay never hands out a token that was taken back"
    );
}

pub async fn invalidate_single(store: DynStore) {
    use InvalidateOne::{AlreadyInvalidated, Invalidated, NotFound};
    use TokenKind::{Access, Refresh};
    let (_, pair) = issue(&store, "u", T0).await;
    let access = pair.access.hash();
    let refresh = pair.refresh.unwrap().hash();
    let unknown = TokenString::mint(Access, 0).hash();
    // In order: which half is revoked, by which token, and the answer.
    let steps = [
        (Access, &unknown, NotFound),
        (Refresh, &unknown, NotFound),
        (Access, &access, Invalidated),
        (Access, &access, AlreadyInvalidated),
    ];
    for (i, (half, hash, answer)) in steps.into_iter().enumerate() {
        assert_eq!(store.invalidate(half, hash).await, answer, "step {i}");
    }
    let rec = store.find_by_access(&access).await.unwrap().unwrap();
    assert!(
        rec.access_invalidated && rec.refresh_invalidated,
        "invalidating one half is final for the pair"
    );
    let (_, other) = issue(&store, "u", T0).await;
    let other = other.refresh.unwrap().hash();
    let steps = [
        (Refresh, &refresh, AlreadyInvalidated),
        (Refresh, &other, Invalidated),
        (Refresh, &refresh, AlreadyInvalidated),
    ];
    for (i, (half, hash, answer)) in steps.into_iter().enumerate() {
        assert_eq!(store.invalidate(half, hash).await, answer, "step {i} after");
    }
}

pub async fn invalidate_matching(store: DynStore) {
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
        let rec = store.stored(&p.access).await;
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

pub async fn purge(store: DynStore) {
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

/// A refresh's record stays readable for as long as the refreshed pair's
/// refresh token could be presented, however long its successor lives:
/// here the first refresh token lives ten days and its successor one.
/// Long after the successor's own expiry, and a purge, the first refresh
/// token is still known as used: presenting it is reuse, never a second
/// rotation (which would fork the family).
pub async fn a_refresh_record_outlives_the_successor(store: DynStore) {
    let day = 24 * 3_600_000;
    let s = subject("long");
    let (mut record, pair) = TokenRecord::issue(&s, s.client_ref(), true, T0, POLICY.access_ttl_ms);
    record.refresh_expires_at = Some(T0 + 10 * day);
    store.insert_token(&record).await.unwrap();
    let rt = pair.refresh.clone().unwrap();
    let first = store.granted(request(&rt, &record.client, T0 + 1)).await;
    assert!(first.rotated);
    let successor = store.stored(&first.pair.access).await;
    assert!(
        successor.last_usable() <= T0 + 1 + day,
        "the successor's own lifetime is a day"
    );
    let later = T0 + 3 * day;
    store.purge_expired(later, 100).await.unwrap();
    let spent = store.find_by_refresh(&rt.hash()).await.unwrap().unwrap();
    assert_eq!(
        spent.refreshed.as_ref().map(|r| &r.successor_id),
        Some(&successor.id),
        "still recorded as refreshed, by the same successor"
    );
    let reuse = store.denied(request(&rt, &record.client, later)).await;
    assert!(
        matches!(reuse.error, RefreshError::RefreshedTooLongAgo { .. }),
        "{:?}",
        reuse.error
    );
}

fn scoped(username: &str, scope: Option<Vec<String>>, now: Millis) -> (TokenRecord, TokenPair) {
    let s = subject(username);
    TokenRecord::first_of_family(
        Fresh::draw(now),
        &s,
        s.client_ref(),
        scope,
        true,
        now,
        POLICY.access_ttl_ms,
    )
}

pub async fn token_scope_and_find_by_refresh(store: DynStore) {
    let ab = Some(vec!["a".to_string(), "tessera:admin".to_string()]);
    let cases = [
        scoped("u", ab.clone(), T0),
        scoped("u", Some(Vec::new()), T0),
        scoped("u", None, T0),
    ];
    for (record, pair) in &cases {
        store.insert_token(record).await.unwrap();
        let by_access = store.stored(&pair.access).await;
        assert_eq!(
            &by_access, record,
            "the scope round-trips, None and empty apart"
        );
        let refresh = pair.refresh.as_ref().unwrap();
        let by_refresh = store.find(TokenKind::Refresh, refresh).await;
        assert_eq!(by_refresh.as_ref(), Some(record));
    }
    let unknown = TokenString::mint(TokenKind::Refresh, 0);
    assert!(store.find(TokenKind::Refresh, &unknown).await.is_none());
    assert!(
        store
            .find(TokenKind::Refresh, &cases[0].1.access)
            .await
            .is_none(),
        "an access token is not a refresh token"
    );
    let s = subject("svc");
    let (cc, cc_pair) = TokenRecord::first_of_family(
        Fresh::draw(T0),
        &s,
        s.client_ref(),
        ab.clone(),
        false,
        T0,
        1000,
    );
    store.insert_token(&cc).await.unwrap();
    assert_eq!(store.stored(&cc_pair.access).await.scope, ab);

    // Successors inherit the scope; a replay reports it too.
    let (record, pair) = &cases[0];
    let rt = pair.refresh.clone().unwrap();
    let first = store.granted(request(&rt, &record.client, T0 + 1)).await;
    assert_eq!(first.scope, ab);
    let successor = store.stored(&first.pair.access).await;
    assert_eq!(successor.scope, ab);
    let replay = store.granted(request(&rt, &record.client, T0 + 2)).await;
    assert!(!replay.rotated);
    assert_eq!(replay.scope, ab);
    let unrestricted = store
        .granted(request(
            cases[2].1.refresh.as_ref().unwrap(),
            &cases[2].0.client,
            T0 + 1,
        ))
        .await;
    assert_eq!(unrestricted.scope, None);
    let spent = store.find_by_refresh(&rt.hash()).await.unwrap().unwrap();
    assert!(spent.refreshed.is_some() && !spent.refresh_unused(T0 + 2));
}

/// Elasticsearch's invalidation: the named half alone, nothing else of
/// the pair or its family.
pub async fn invalidate_token_alone(store: DynStore) {
    use crate::engine::Half;
    use InvalidateOne::{AlreadyInvalidated, Invalidated, NotFound};
    let (_, pair) = issue(&store, "u", T0).await;
    let access = pair.access.hash();
    let refresh = pair.refresh.unwrap().hash();
    let unknown = TokenString::mint(TokenKind::Access, 0).hash();
    let alone = |half, hash| {
        let store = Arc::clone(&store);
        async move { store.invalidate_token(half, &hash).await.unwrap() }
    };
    assert_eq!(alone(Half::Access, unknown).await, NotFound);
    assert_eq!(alone(Half::Access, access).await, Invalidated);
    assert_eq!(alone(Half::Access, access).await, AlreadyInvalidated);
    let rec = store.find_by_access(&access).await.unwrap().unwrap();
    assert!(rec.access_invalidated, "the access token is invalidated");
    assert!(!rec.refresh_invalidated, "its refresh token is not");

    let (_, other) = issue(&store, "u", T0).await;
    let other_access = other.access.hash();
    let other_refresh = other.refresh.unwrap().hash();
    assert_eq!(alone(Half::Refresh, other_refresh).await, Invalidated);
    let rec = store.find_by_access(&other_access).await.unwrap().unwrap();
    assert!(rec.refresh_invalidated && !rec.access_invalidated);
    // The family-wide invalidation still takes the rest.
    assert_eq!(
        store.invalidate_refresh(&refresh).await.unwrap(),
        Invalidated
    );
    let rec = store.find_by_access(&access).await.unwrap().unwrap();
    assert!(rec.access_invalidated && rec.refresh_invalidated);
}
