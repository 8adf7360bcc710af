//! SAML single logout: the pairs of one NameID in one realm are found and
//! invalidated together, with what they minted, and nobody else's.

use tessera_domain::authn::RealmRef;
use tessera_domain::{Authentication, TokenRecord};

use super::{subject, DynStore, POLICY, T0};
use crate::Lineage;

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
/// with the token metadata of a session named after the user.
async fn login(store: &DynStore, who: &Authentication) -> TokenRecord {
    login_in(store, who, &who.username).await
}

/// A pair for `who` in the SAML session `session`.
async fn login_in(store: &DynStore, who: &Authentication, session: &str) -> TokenRecord {
    let client = subject("kibana").client_ref();
    let (mut record, _) = TokenRecord::issue(who, client, true, T0, POLICY.access_ttl_ms);
    record.metadata = Some(session_metadata(session));
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
    let [first, second] = [
        login_in(&store, &ann, "_s1").await,
        login_in(&store, &ann, "_s2").await,
    ];
    // The same NameID in another realm, another NameID with the same
    // username, and a native user of the same name stay.
    let elsewhere = login(&store, &saml_user("ann", "saml2", "n-ann")).await;
    let other = login(&store, &saml_user("ann", "saml1", "n-other")).await;
    let native = login(&store, &subject("ann")).await;
    // A pair minted with ann's first session's token (for the dashboard's
    // own user) dies with it.
    let kibana = subject("kibana");
    let (child, _) = TokenRecord::issue(&kibana, ann.client_ref(), true, T0, POLICY.access_ttl_ms);
    let lineage = Lineage {
        parent: Some(first.access_hash),
        ..Default::default()
    };
    assert!(store.insert_derived(&child, &lineage).await.unwrap());

    // The IdP names one session: only that one ends.
    let ended = store
        .invalidate_by_nameid("saml1", "n-ann", Some("_s1"), T0 + 1)
        .await
        .unwrap();
    assert_eq!(ended, 1, "one pair");
    assert!(!alive(&store, &first).await);
    assert!(!alive(&store, &child).await, "what it minted died with it");
    assert!(alive(&store, &second).await, "the other session stays");
    // Without a session, every session of the NameID ends.
    let ended = store
        .invalidate_by_nameid("saml1", "n-ann", None, T0 + 1)
        .await
        .unwrap();
    assert_eq!(ended, 1, "the one live pair left");
    assert!(!alive(&store, &second).await);
    for r in [&elsewhere, &other, &native] {
        assert!(alive(&store, r).await, "{} lives", r.id);
    }
    for (nameid, session) in [("n-ann", None), ("n-ann", Some("_s1")), ("nobody", None)] {
        let ended = store
            .invalidate_by_nameid("saml1", nameid, session, T0 + 2)
            .await
            .unwrap();
        assert_eq!(ended, 0, "nothing live is left for {nameid} {session:?}");
    }
}
