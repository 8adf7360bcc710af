//! Application privileges: put (created or replaced, several in one
//! transaction), list, get by application, delete by name.

use serde_json::json;
use tessera_domain::privilege::ApplicationPrivilege;

use super::*;

fn privilege(application: &str, name: &str, actions: &[&str]) -> ApplicationPrivilege {
    ApplicationPrivilege {
        application: application.into(),
        name: name.into(),
        actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        metadata: serde_json::from_value(json!({"description": name, "n": 1})).unwrap(),
    }
}

fn names(found: &[ApplicationPrivilege]) -> Vec<(&str, &str)> {
    found
        .iter()
        .map(|p| (p.application.as_str(), p.name.as_str()))
        .collect()
}

pub async fn application_privileges(store: DynStore) {
    assert!(store
        .list_application_privileges()
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .get_application_privileges("myapp")
        .await
        .unwrap()
        .is_empty());
    let read = privilege("myapp", "read", &["data:read/*", "action:login"]);
    let write = privilege("myapp", "write", &["data:write/*"]);
    let other = privilege("otherapp", "read", &["data:read/*"]);
    assert_eq!(
        store
            .put_application_privileges(&[write.clone(), read.clone(), other.clone()])
            .await
            .unwrap(),
        [true, true, true]
    );
    let mut changed = read.clone();
    changed.actions = vec!["data:read/docs".into()];
    let admin = privilege("myapp", "admin", &["*"]);
    assert_eq!(
        store
            .put_application_privileges(&[changed.clone(), admin.clone()])
            .await
            .unwrap(),
        [false, true],
        "replaced, then created"
    );
    assert!(store
        .put_application_privileges(&[])
        .await
        .unwrap()
        .is_empty());

    let all = store.list_application_privileges().await.unwrap();
    assert_eq!(
        names(&all),
        [
            ("myapp", "admin"),
            ("myapp", "read"),
            ("myapp", "write"),
            ("otherapp", "read")
        ]
    );
    assert_eq!(all[1], changed, "kept as written, metadata included");
    let mine = store.get_application_privileges("myapp").await.unwrap();
    assert_eq!(
        names(&mine),
        [("myapp", "admin"), ("myapp", "read"), ("myapp", "write")]
    );
    assert!(store
        .get_application_privileges("myap")
        .await
        .unwrap()
        .is_empty());

    let deleted = store
        .delete_application_privileges(
            "myapp",
            &["write".into(), "nope".into(), "read".into(), "write".into()],
        )
        .await
        .unwrap();
    assert_eq!(deleted, ["write", "read"], "those that existed, each once");
    assert!(store
        .delete_application_privileges("myapp", &["write".into()])
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        names(&store.list_application_privileges().await.unwrap()),
        [("myapp", "admin"), ("otherapp", "read")]
    );
}
