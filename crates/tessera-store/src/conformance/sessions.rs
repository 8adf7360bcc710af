//! SAML single logout: the pairs of one NameID in one realm are found and
//! invalidated together, with what they minted, and nobody else's.

use tessera_domain::authn::RealmRef;
use tessera_domain::{Authentication, TokenRecord};

use super::{subject, DynStore, POLICY, T0};
use crate::{InvalidateCounts, Lineage};

fn saml_user(username: &str, realm: &str, nameid: &str) -> Authentication {
    let realm = RealmRef {
        name: realm.to_owned().into(),
        kind: "saml".into(),
    };
    let mut s = subject(username);
    s.metadata
        .insert("saml_nameid".into(), serde_json::Value::from(nameid));
    s.metadata.insert(
        "saml_nameid_format".into(),
        "urn:oasis:names:tc:SAML:2.0:nameid-format:transient".into(),
    );
    s.authentication_realm = realm.clone();
    s.lookup_realm = realm;
    s
}

/// A pair for `who`, minted by the dashboard user `kibana` (the client),
/// with the session's token metadata.
async fn login(store: &DynStore, who: &Authentication) -> TokenRecord {
    let client = subject("kibana").client_ref();
    let (mut record, _) = TokenRecord::issue(who, client, true, T0, POLICY.access_ttl_ms);
    record.metadata = Some(session_metadata(&who.username));
    store.insert_token(&record).await.unwrap();
    record
}

fn session_metadata(session: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::json!({ "saml_session": session, "saml_nameid_val": "n" })
        .as_object()
        .unwrap()
        .clone()
}

/// Token metadata is stored with the pair, never with its subject, and a
/// successor inherits it.
pub async fn token_metadata_is_kept(store: DynStore) {
    let ann = saml_user("ann", "saml1", "n-ann");
    let client = subject("kibana").client_ref();
    let (mut record, pair) =
        TokenRecord::issue(&ann, client.clone(), true, T0, POLICY.access_ttl_ms);
    record.metadata = Some(session_metadata("_s1"));
    store.insert_token(&record).await.unwrap();
    // The same subject and client without metadata, and with other metadata.
    let (plain, _) = TokenRecord::issue(&ann, client.clone(), true, T0, POLICY.access_ttl_ms);
    store.insert_token(&plain).await.unwrap();
    let (mut other, _) = TokenRecord::issue(&ann, client.clone(), true, T0, POLICY.access_ttl_ms);
    other.metadata = Some(session_metadata("_s2"));
    store.insert_token(&other).await.unwrap();
    for r in [&record, &plain, &other] {
        let found = store.find_by_access(&r.access_hash).await.unwrap().unwrap();
        assert_eq!(found.metadata, r.metadata);
        assert_eq!(
            found.subject.metadata, ann.metadata,
            "the subject is untouched"
        );
    }
    let granted = store
        .refresh(super::request(
            pair.refresh.as_ref().unwrap(),
            &client,
            T0 + 1,
        ))
        .await
        .unwrap()
        .unwrap();
    let successor = store
        .find_by_access(&granted.pair.access.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(successor.metadata, record.metadata, "inherited");
}

async fn alive(store: &DynStore, record: &TokenRecord) -> bool {
    let found = store.find_by_access(&record.access_hash).await.unwrap();
    found.is_some_and(|r| !r.access_invalidated)
}

pub async fn logout_by_nameid(store: DynStore) {
    let ann = saml_user("ann", "saml1", "n-ann");
    let ann_twice = [login(&store, &ann).await, login(&store, &ann).await];
    // The same NameID in another realm, another NameID with the same
    // username, and a native user of the same name stay.
    let elsewhere = login(&store, &saml_user("ann", "saml2", "n-ann")).await;
    let other = login(&store, &saml_user("ann", "saml1", "n-other")).await;
    let native = login(&store, &subject("ann")).await;
    // A pair minted with one of ann's tokens (for the dashboard's own
    // user) dies with it.
    let kibana = subject("kibana");
    let (child, _) = TokenRecord::issue(&kibana, ann.client_ref(), true, T0, POLICY.access_ttl_ms);
    let lineage = Lineage {
        parent: Some(ann_twice[0].access_hash),
        ..Default::default()
    };
    assert!(store.insert_derived(&child, &lineage).await.unwrap());

    let counts = store
        .invalidate_by_nameid("saml1", "n-ann", T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        counts,
        InvalidateCounts {
            invalidated: 4,
            previously_invalidated: 0
        },
        "both halves of both pairs"
    );
    for r in ann_twice.iter().chain([&child]) {
        assert!(!alive(&store, r).await, "{} is dead", r.id);
    }
    for r in [&elsewhere, &other, &native] {
        assert!(alive(&store, r).await, "{} lives", r.id);
    }
    let again = store
        .invalidate_by_nameid("saml1", "n-ann", T0 + 2)
        .await
        .unwrap();
    assert_eq!(again, InvalidateCounts::default(), "nothing live is left");
    let unknown = store
        .invalidate_by_nameid("saml1", "nobody", T0 + 2)
        .await
        .unwrap();
    assert_eq!(unknown, InvalidateCounts::default());
}
