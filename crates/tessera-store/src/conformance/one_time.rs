//! One-time proofs: a login proof (a SAML assertion's id) mints once per
//! realm, on every node, however many requests race with it.

use std::sync::Arc;

use tessera_domain::TokenRecord;

use super::{subject, DynStore, POLICY, T0};
use crate::{Lineage, OneTime};

fn once(realm: &str, id: &str, keep_until: i64) -> Lineage {
    Lineage {
        one_time: Some(OneTime {
            realm: realm.into(),
            id: id.into(),
            keep_until,
        }),
        ..Default::default()
    }
}

/// Stores a fresh pair for `who` with `lineage`; whether it was stored.
async fn mint(store: &DynStore, who: &str, lineage: &Lineage) -> bool {
    let s = subject(who);
    let (record, _) = TokenRecord::issue(&s, s.client_ref(), true, T0, POLICY.access_ttl_ms);
    let stored = store.insert_derived(&record, lineage).await.unwrap();
    let found = store.find_by_access(&record.access_hash).await.unwrap();
    assert_eq!(found.is_some(), stored, "stored exactly when accepted");
    stored
}

pub async fn proofs_mint_once_per_realm(store: DynStore) {
    assert!(mint(&store, "ann", &once("saml1", "_a1", T0 + 60_000)).await);
    assert!(
        !mint(&store, "ann", &once("saml1", "_a1", T0 + 60_000)).await,
        "a replayed assertion mints nothing"
    );
    assert!(
        !mint(&store, "eve", &once("saml1", "_a1", T0 + 90_000)).await,
        "whoever presents it"
    );
    assert!(
        mint(&store, "ann", &once("saml2", "_a1", T0 + 60_000)).await,
        "ids are per realm"
    );
    assert!(mint(&store, "ann", &once("saml1", "_a2", T0 + 60_000)).await);

    // Proofs are kept until they expire, then purged.
    let before = store.count_tokens().await.unwrap();
    let purged = store.purge_expired(T0 + 60_001, 1_000).await.unwrap();
    assert_eq!(purged, 3, "three proofs, no token yet");
    assert_eq!(store.count_tokens().await.unwrap(), before);
    assert_eq!(store.purge_expired(T0 + 60_001, 1_000).await.unwrap(), 0);
}

/// Many requests present the same proof at once: exactly one mints.
pub async fn proofs_race(store: DynStore) {
    for trial in 0..20 {
        let proof = once("saml1", &format!("_race{trial}"), T0 + 60_000);
        let racers: Vec<_> = (0..6)
            .map(|i| {
                let (store, proof) = (Arc::clone(&store), proof.clone());
                tokio::spawn(async move { mint(&store, &format!("u{i}"), &proof).await })
            })
            .collect();
        let mut minted = 0;
        for racer in racers {
            minted += usize::from(racer.await.unwrap());
        }
        assert_eq!(minted, 1, "trial {trial}");
    }
}
