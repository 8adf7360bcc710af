//! Role mappings: storing them, and resolving a user's roles from them.

use serde_json::json;
use tessera_domain::role_mapping::{RoleMapping, UserData};

use super::*;
use crate::role_mappings::resolve_roles;

fn mapping(body: serde_json::Value) -> RoleMapping {
    RoleMapping::parse("m", &body).expect("a valid mapping")
}

fn names(found: &[(String, RoleMapping)]) -> Vec<&str> {
    found.iter().map(|(n, _)| n.as_str()).collect()
}

pub async fn role_mapping_crud(store: DynStore) {
    assert!(store.list_role_mappings().await.unwrap().is_empty());
    assert!(store
        .get_role_mappings(&["nope".into()])
        .await
        .unwrap()
        .is_empty());
    let admins = mapping(json!({
        "enabled": true, "roles": ["superuser", "viewer"],
        "rules": {"all": [
            {"any": [{"field": {"dn": "*,ou=admin,dc=example,dc=com"}},
                     {"field": {"username": ["es-admin", "es-system"]}}]},
            {"field": {"groups": "/adm.*/"}},
            {"except": {"field": {"metadata.terminated_date": null}}}]},
        "metadata": {"version": 1, "note": "kept verbatim"},
    }));
    assert!(store.put_role_mapping("admins", &admins).await.unwrap());
    let mut disabled = admins.clone();
    disabled.enabled = false;
    disabled.roles = vec!["other".into()];
    assert!(
        !store.put_role_mapping("admins", &disabled).await.unwrap(),
        "replaced, not created"
    );
    let basic =
        mapping(json!({"enabled": true, "roles": ["r"], "rules": {"field": {"username": "*"}}}));
    assert!(store.put_role_mapping("basic", &basic).await.unwrap());
    assert!(store.put_role_mapping("a-first", &basic).await.unwrap());

    let got = store
        .get_role_mappings(&[
            "basic".into(),
            "missing".into(),
            "admins".into(),
            "basic".into(),
        ])
        .await
        .unwrap();
    assert_eq!(
        names(&got),
        ["basic", "admins"],
        "in the order asked, each once"
    );
    assert_eq!(got[0].1, basic);
    assert_eq!(got[1].1, disabled, "the replacement, exactly as put");
    assert_eq!(
        serde_json::to_value(&got[1].1).unwrap()["metadata"],
        json!({"version": 1, "note": "kept verbatim"})
    );
    let all = store.list_role_mappings().await.unwrap();
    assert_eq!(
        names(&all),
        ["a-first", "admins", "basic"],
        "sorted by name"
    );

    assert!(store.delete_role_mapping("admins").await.unwrap());
    assert!(!store.delete_role_mapping("admins").await.unwrap());
    assert!(store
        .get_role_mappings(&["admins".into()])
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        names(&store.list_role_mappings().await.unwrap()),
        ["a-first", "basic"]
    );
}

pub async fn role_mappings_resolve_roles(store: DynStore) {
    let user = UserData {
        username: "jdoe".into(),
        dn: None,
        groups: vec!["staff".into()],
        realm_name: "saml1".into(),
        metadata: serde_json::from_value(json!({"saml_nameid": "jdoe@example.org"})).unwrap(),
    };
    assert!(resolve_roles(store.as_ref(), &user)
        .await
        .unwrap()
        .is_empty());
    let realm = mapping(json!({"enabled": true, "roles": ["viewer", "editor"],
        "rules": {"field": {"realm.name": "saml1"}}}));
    let staff = mapping(json!({"enabled": true, "roles": ["editor", "staff"],
        "rules": {"field": {"groups": "STAFF"}}}));
    let others = mapping(json!({"enabled": true, "roles": ["admin"],
        "rules": {"field": {"realm.name": "saml2"}}}));
    store.put_role_mapping("realm", &realm).await.unwrap();
    store.put_role_mapping("staff", &staff).await.unwrap();
    store.put_role_mapping("others", &others).await.unwrap();
    assert_eq!(
        resolve_roles(store.as_ref(), &user).await.unwrap(),
        ["editor", "staff", "viewer"]
    );
    let mut off = staff.clone();
    off.enabled = false;
    store.put_role_mapping("staff", &off).await.unwrap();
    assert_eq!(
        resolve_roles(store.as_ref(), &user).await.unwrap(),
        ["editor", "viewer"],
        "a disabled mapping gives nothing, at once"
    );
    store.delete_role_mapping("realm").await.unwrap();
    assert!(resolve_roles(store.as_ref(), &user)
        .await
        .unwrap()
        .is_empty());
}
