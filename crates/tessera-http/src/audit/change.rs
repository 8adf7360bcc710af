//! The security configuration changes the audit log records, each built
//! from names, ids and non-secret attributes only, in the nested shape of
//! Elasticsearch's `security_config_change` events
//! (`"put":{"user":{"name":…}}`).

use serde_json::{json, Value};

/// One change: its `event.action`, the verb and kind it is nested under,
/// and what is said about it.
pub struct ConfigChange {
    pub(super) action: &'static str,
    pub(super) verb: &'static str,
    pub(super) kind: &'static str,
    pub(super) body: Value,
}

fn change(
    action: &'static str,
    verb: &'static str,
    kind: &'static str,
    body: Value,
) -> ConfigChange {
    ConfigChange {
        action,
        verb,
        kind,
        body,
    }
}

impl ConfigChange {
    pub fn put_user(name: &str, enabled: bool, roles: &[String], has_password: bool) -> Self {
        change(
            "put_user",
            "put",
            "user",
            json!({ "name": name, "enabled": enabled, "roles": roles, "has_password": has_password }),
        )
    }

    pub fn delete_user(name: &str) -> Self {
        change("delete_user", "delete", "user", json!({ "name": name }))
    }

    pub fn change_password(name: &str) -> Self {
        change(
            "change_password",
            "change",
            "password",
            json!({ "user": { "name": name } }),
        )
    }

    pub fn set_enabled(name: &str, enabled: bool) -> Self {
        let (action, kind) = if enabled {
            ("change_enable_user", "enable")
        } else {
            ("change_disable_user", "disable")
        };
        change(action, "change", kind, json!({ "user": { "name": name } }))
    }

    /// `descriptor`: the stored role descriptor (privileges and metadata,
    /// nothing secret).
    pub fn put_role(name: &str, descriptor: Value) -> Self {
        change(
            "put_role",
            "put",
            "role",
            json!({ "name": name, "role_descriptor": descriptor }),
        )
    }

    pub fn delete_role(name: &str) -> Self {
        change("delete_role", "delete", "role", json!({ "name": name }))
    }

    pub fn put_role_mapping(name: &str, roles: &[String], enabled: bool) -> Self {
        change(
            "put_role_mapping",
            "put",
            "role_mapping",
            json!({ "name": name, "roles": roles, "enabled": enabled }),
        )
    }

    /// Application privileges put: their applications, names and actions
    /// (not their metadata).
    pub fn put_privileges<'a>(
        privileges: impl IntoIterator<Item = (&'a str, &'a str, &'a [String])>,
    ) -> Self {
        let list: Vec<Value> = privileges
            .into_iter()
            .map(|(application, name, actions)| {
                json!({ "application": application, "name": name, "actions": actions })
            })
            .collect();
        change("put_privileges", "put", "privileges", Value::Array(list))
    }

    pub fn delete_privileges(application: &str, names: &[String]) -> Self {
        change(
            "delete_privileges",
            "delete",
            "privileges",
            json!({ "application": application, "privileges": names }),
        )
    }

    pub fn delete_role_mapping(name: &str) -> Self {
        change(
            "delete_role_mapping",
            "delete",
            "role_mapping",
            json!({ "name": name }),
        )
    }

    pub fn create_apikey(id: &str, name: &str, expiration: Option<i64>) -> Self {
        change(
            "create_apikey",
            "create",
            "apikey",
            json!({ "id": id, "name": name, "expiration": expiration }),
        )
    }

    /// Keys whose descriptors, metadata or expiration an update changed.
    pub fn change_apikeys(ids: &[String]) -> Self {
        change("change_apikeys", "change", "apikeys", json!({ "ids": ids }))
    }

    pub fn invalidate_apikeys(ids: &[String]) -> Self {
        change(
            "invalidate_apikeys",
            "invalidate",
            "apikeys",
            json!({ "ids": ids }),
        )
    }

    /// A registered OAuth client (RFC 7591): its id and name only, never
    /// its secret or redirect URIs.
    pub fn create_oauth_client(client_id: &str, client_name: Option<&str>) -> Self {
        change(
            "create_oauth_client",
            "create",
            "oauth_client",
            json!({ "client_id": client_id, "client_name": client_name }),
        )
    }

    pub fn change_oauth_client(client_id: &str, client_name: Option<&str>) -> Self {
        change(
            "change_oauth_client",
            "change",
            "oauth_client",
            json!({ "client_id": client_id, "client_name": client_name }),
        )
    }

    pub fn change_oauth_client_secret(client_id: &str) -> Self {
        change(
            "change_oauth_client_secret",
            "change",
            "oauth_client_secret",
            json!({ "client_id": client_id }),
        )
    }

    pub fn delete_oauth_client(client_id: &str) -> Self {
        change(
            "delete_oauth_client",
            "delete",
            "oauth_client",
            json!({ "client_id": client_id }),
        )
    }

    /// A service token created or deleted (`principal` is
    /// `namespace/service`; never the token's value).
    pub fn service_token(created: bool, principal: &str, name: &str) -> Self {
        let (namespace, service) = principal.split_once('/').unwrap_or((principal, ""));
        let body = json!({ "namespace": namespace, "service": service, "name": name });
        if created {
            change("create_service_token", "create", "service_token", body)
        } else {
            change("delete_service_token", "delete", "service_token", body)
        }
    }
}
