//! Cluster privileges, the actions they grant, and role descriptors.
//!
//! `implied.rs`: what a privilege name includes; `patterns.rs`: index,
//! application and resource name patterns; `application.rs`: application
//! privileges and their name rules; `check.rs`: the evaluation of a
//! caller's roles (`_has_privileges`, `_privileges`); `builtin.rs`: the
//! built-in roles.

pub mod application;
mod builtin;
pub mod check;
pub mod implied;
pub mod patterns;
mod subset;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use application::ApplicationPrivilege;
pub use builtin::{built_in_role, BUILT_IN_ROLES, KIBANA_SYSTEM_ROLE, SUPERUSER_ROLE};
pub use check::{Permissions, PrivilegesCheck};

/// Elasticsearch 8's index privilege names, listed by
/// `GET /_security/privilege/_builtin`; Tessera keeps them verbatim in role
/// descriptors.
pub const INDEX_PRIVILEGES: &[&str] = &[
    "all",
    "auto_configure",
    "create",
    "create_doc",
    "create_index",
    "cross_cluster_replication",
    "cross_cluster_replication_internal",
    "delete",
    "delete_index",
    "index",
    "maintenance",
    "manage",
    "manage_data_stream_lifecycle",
    "manage_follow_index",
    "manage_ilm",
    "manage_leader_index",
    "monitor",
    "none",
    "read",
    "read_cross_cluster",
    "view_index_metadata",
    "write",
];

/// The cluster privileges Tessera knows. Names Elasticsearch accepts but that
/// guard nothing here (`monitor`, `manage_ilm`, …) are still accepted in
/// role definitions so that roles copied from a cluster load unchanged,
/// and `_has_privileges` answers for them.
pub const KNOWN_CLUSTER_PRIVILEGES: &[&str] = &[
    "all",
    "cancel_task",
    "create_snapshot",
    "delegate_pki",
    "grant_api_key",
    "manage",
    "manage_api_key",
    "manage_ccr",
    "manage_enrich",
    "manage_ilm",
    "manage_index_templates",
    "manage_inference",
    "manage_ingest_pipelines",
    "manage_ml",
    "manage_oidc",
    "manage_own_api_key",
    "manage_pipeline",
    "manage_rollup",
    "manage_saml",
    "manage_security",
    "manage_service_account",
    "manage_slm",
    "manage_token",
    "manage_transform",
    "manage_user_profile",
    "manage_watcher",
    "monitor",
    "monitor_connector",
    "monitor_enrich",
    "monitor_inference",
    "monitor_ml",
    "monitor_rollup",
    "monitor_snapshot",
    "monitor_text_structure",
    "monitor_transform",
    "monitor_watcher",
    "none",
    "read_ccr",
    "read_ilm",
    "read_pipeline",
    "read_security",
    "read_slm",
    "transport_client",
    "write_fleet_secrets",
];

/// An action guarded by a cluster privilege. The names are Elasticsearch's
/// transport action names, which appear verbatim in 403 messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    TokenCreate,
    TokenRefresh,
    TokenInvalidate,
    UserPut,
    UserGet,
    UserDelete,
    UserChangePassword,
    UserSetEnabled,
    RolePut,
    RoleGet,
    BuiltinPrivilegesGet,
    PrivilegePut,
    PrivilegeGet,
    PrivilegeDelete,
    /// Checking another user's privileges (`/_security/user/{name}/_has_privileges`).
    HasPrivilegesOfOther,
    RoleDelete,
    ApiKeyCreate,
    ApiKeyGet,
    ApiKeyInvalidate,
    /// Managing one's own API keys only (`manage_own_api_key`); the handler
    /// decides whether a request is limited to the caller's keys.
    ApiKeyManageOwn,
    /// Creating a key for another user (`/_security/api_key/grant`).
    ApiKeyGrant,
    /// Updating one's own keys (`PUT /_security/api_key/{id}`).
    ApiKeyUpdate,
    /// Updating several of one's own keys (`_bulk_update`).
    ApiKeyBulkUpdate,
    /// Querying keys (`/_security/_query/api_key`): every key with
    /// `read_security` or `manage_api_key`, one's own with
    /// `manage_own_api_key` (the handler narrows).
    ApiKeyQuery,
    /// Querying native users (`/_security/_query/user`).
    UserQuery,
    /// Registering, reading, updating and deleting OAuth clients
    /// (`/oauth2/register`). Tessera's own action; Elasticsearch has none.
    OAuthClientManage,
    /// Introspecting any token at `/oauth2/introspect` as a native user
    /// (RFC 7662 §4). Tessera's own action.
    TokenIntrospect,
    /// Reading `/_tessera/metrics` on the API port. Tessera's own action,
    /// under Elasticsearch's `cluster:monitor/` prefix.
    MetricsRead,
    RoleMappingPut,
    RoleMappingGet,
    RoleMappingDelete,
    SamlPrepare,
    SamlAuthenticate,
    SamlLogout,
    SamlInvalidate,
    SamlCompleteLogout,
    SamlMetadata,
    OidcPrepare,
    OidcAuthenticate,
    OidcLogout,
    ServiceAccountGet,
    ServiceTokenCreate,
    ServiceTokenDelete,
    ServiceCredentialsGet,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::TokenCreate => "cluster:admin/xpack/security/token/create",
            Action::TokenRefresh => "cluster:admin/xpack/security/token/refresh",
            Action::TokenInvalidate => "cluster:admin/xpack/security/token/invalidate",
            Action::UserPut => "cluster:admin/xpack/security/user/put",
            Action::UserGet => "cluster:admin/xpack/security/user/get",
            Action::UserDelete => "cluster:admin/xpack/security/user/delete",
            Action::UserChangePassword => "cluster:admin/xpack/security/user/change_password",
            Action::UserSetEnabled => "cluster:admin/xpack/security/user/set_enabled",
            Action::RolePut => "cluster:admin/xpack/security/role/put",
            Action::RoleGet => "cluster:admin/xpack/security/role/get",
            Action::BuiltinPrivilegesGet => "cluster:admin/xpack/security/privilege/builtin/get",
            Action::PrivilegePut => "cluster:admin/xpack/security/privilege/put",
            Action::PrivilegeGet => "cluster:admin/xpack/security/privilege/get",
            Action::PrivilegeDelete => "cluster:admin/xpack/security/privilege/delete",
            Action::HasPrivilegesOfOther => "cluster:admin/xpack/security/user/has_privileges",
            Action::RoleDelete => "cluster:admin/xpack/security/role/delete",
            Action::ApiKeyCreate => "cluster:admin/xpack/security/api_key/create",
            Action::ApiKeyGet => "cluster:admin/xpack/security/api_key/get",
            Action::ApiKeyInvalidate => "cluster:admin/xpack/security/api_key/invalidate",
            Action::ApiKeyManageOwn => "cluster:admin/xpack/security/api_key/*",
            Action::ApiKeyGrant => "cluster:admin/xpack/security/api_key/grant",
            Action::ApiKeyUpdate => "cluster:admin/xpack/security/api_key/update",
            Action::ApiKeyBulkUpdate => "cluster:admin/xpack/security/api_key/bulk_update",
            Action::ApiKeyQuery => "cluster:admin/xpack/security/api_key/query",
            Action::UserQuery => "cluster:admin/xpack/security/user/query",
            Action::OAuthClientManage => "cluster:admin/tessera/oauth2/client",
            Action::TokenIntrospect => "cluster:admin/tessera/oauth2/introspect",
            Action::MetricsRead => "cluster:monitor/tessera/metrics",
            Action::RoleMappingPut => "cluster:admin/xpack/security/role_mapping/put",
            Action::RoleMappingGet => "cluster:admin/xpack/security/role_mapping/get",
            Action::RoleMappingDelete => "cluster:admin/xpack/security/role_mapping/delete",
            Action::SamlPrepare => "cluster:admin/xpack/security/saml/prepare",
            Action::SamlAuthenticate => "cluster:admin/xpack/security/saml/authenticate",
            Action::SamlLogout => "cluster:admin/xpack/security/saml/logout",
            Action::SamlInvalidate => "cluster:admin/xpack/security/saml/invalidate",
            Action::SamlCompleteLogout => "cluster:admin/xpack/security/saml/complete_logout",
            Action::SamlMetadata => "cluster:monitor/xpack/security/saml/metadata",
            Action::OidcPrepare => "cluster:admin/xpack/security/oidc/prepare",
            Action::OidcAuthenticate => "cluster:admin/xpack/security/oidc/authenticate",
            Action::OidcLogout => "cluster:admin/xpack/security/oidc/logout",
            Action::ServiceAccountGet => "cluster:admin/xpack/security/service_account/get",
            Action::ServiceTokenCreate => {
                "cluster:admin/xpack/security/service_account/token/create"
            }
            Action::ServiceTokenDelete => {
                "cluster:admin/xpack/security/service_account/token/delete"
            }
            Action::ServiceCredentialsGet => {
                "cluster:admin/xpack/security/service_account/credential/get"
            }
        }
    }

    /// The cluster privileges that grant this action, in the order
    /// Elasticsearch lists them in its 403 message.
    pub fn granted_by(self) -> &'static [&'static str] {
        match self {
            Action::TokenCreate | Action::TokenIntrospect => {
                &["manage_token", "manage_security", "all"]
            }
            // A dashboard refreshes and invalidates the tokens of its SAML
            // and OpenID Connect logins with `manage_saml` or `manage_oidc`
            // alone, as in Elasticsearch.
            Action::TokenRefresh | Action::TokenInvalidate => &[
                "manage_saml",
                "manage_oidc",
                "manage_token",
                "manage_security",
                "all",
            ],
            Action::UserGet
            | Action::RoleGet
            | Action::RoleMappingGet
            | Action::BuiltinPrivilegesGet
            | Action::PrivilegeGet => &["read_security", "manage_security", "all"],
            Action::RoleMappingPut
            | Action::RoleMappingDelete
            | Action::UserPut
            | Action::UserDelete
            | Action::UserChangePassword
            | Action::UserSetEnabled
            | Action::RolePut
            | Action::RoleDelete
            | Action::PrivilegePut
            | Action::PrivilegeDelete
            | Action::HasPrivilegesOfOther
            | Action::OAuthClientManage => &["manage_security", "all"],
            Action::ApiKeyGrant => &["grant_api_key", "manage_api_key", "manage_security", "all"],
            Action::UserQuery => &["read_security", "manage_security", "all"],
            Action::ApiKeyQuery => &["read_security", "manage_api_key", "manage_security", "all"],
            Action::ApiKeyCreate
            | Action::ApiKeyManageOwn
            | Action::ApiKeyUpdate
            | Action::ApiKeyBulkUpdate => &[
                "manage_own_api_key",
                "manage_api_key",
                "manage_security",
                "all",
            ],
            Action::ApiKeyGet | Action::ApiKeyInvalidate => {
                &["manage_api_key", "manage_security", "all"]
            }
            Action::SamlPrepare
            | Action::SamlAuthenticate
            | Action::SamlLogout
            | Action::SamlInvalidate
            | Action::SamlCompleteLogout
            | Action::SamlMetadata => &["manage_saml", "manage_security", "all"],
            Action::OidcPrepare | Action::OidcAuthenticate | Action::OidcLogout => {
                &["manage_oidc", "manage_security", "all"]
            }
            // Reading service accounts and their credentials is also
            // `read_security`'s; tokens are made and deleted only with
            // `manage_service_account` or above.
            Action::ServiceAccountGet | Action::ServiceCredentialsGet => &[
                "manage_service_account",
                "read_security",
                "manage_security",
                "all",
            ],
            Action::ServiceTokenCreate | Action::ServiceTokenDelete => {
                &["manage_service_account", "manage_security", "all"]
            }
            // As in Elasticsearch, `manage` builds on `monitor`.
            Action::MetricsRead => &["monitor", "manage", "all"],
        }
    }
}

/// A role definition as stored and as returned by `GET /_security/role`.
/// Only `cluster` is interpreted; the rest is kept verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDescriptor {
    #[serde(default)]
    pub cluster: Vec<String>,
    /// Elasticsearch also accepts `index` for this field.
    #[serde(default, alias = "index")]
    pub indices: Vec<Value>,
    #[serde(default)]
    pub applications: Vec<Value>,
    #[serde(default)]
    pub run_as: Vec<String>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_indices: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl RoleDescriptor {
    /// Elasticsearch accepts `"names": "one-pattern"` in index privileges and
    /// always answers with a list; store it the way it is answered.
    pub fn normalized(mut self) -> Self {
        for entry in &mut self.indices {
            if let Some(names) = entry.get_mut("names") {
                if names.is_string() {
                    *names = Value::Array(vec![names.take()]);
                }
            }
        }
        self
    }

    /// The first cluster privilege that is neither one Tessera knows nor
    /// a pattern over cluster actions (`cluster:monitor/*`), if any.
    pub fn unknown_cluster_privilege(&self) -> Option<&str> {
        self.cluster
            .iter()
            .map(String::as_str)
            .find(|p| !KNOWN_CLUSTER_PRIVILEGES.contains(p) && !p.starts_with("cluster:"))
    }
}

/// Whether any of the held cluster privileges grants `action`.
pub fn grants<'a>(held: impl IntoIterator<Item = &'a str>, action: Action) -> bool {
    let wanted = action.granted_by();
    held.into_iter().any(|p| {
        wanted.contains(&p)
            || (implied::is_action(p)
                && patterns::glob_covers(p.as_bytes(), action.name().as_bytes()))
    })
}

/// Role names must be 1–507 printable ASCII characters without surrounding
/// whitespace (Elasticsearch's rule); names starting with `_` are reserved.
pub fn validate_role_name(name: &str) -> Result<(), String> {
    if name.starts_with('_') {
        Err(format!("Role [{name}] is reserved and may not be used."))
    } else if crate::user::is_printable_basic_latin(name, 507) {
        Ok(())
    } else {
        Err(format!(
            "Role names must be at least 1 and no more than 507 characters. They can contain alphanumeric characters (a-z, A-Z, 0-9), spaces, punctuation, and printable symbols in the Basic Latin (ASCII) block. Leading or trailing whitespace is not allowed. [{name}]"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileges_grant_actions() {
        assert!(grants(["manage_token"], Action::TokenCreate));
        assert!(grants(["all"], Action::UserPut));
        assert!(!grants(["manage_token"], Action::UserPut));
        assert!(!grants(["monitor"], Action::TokenInvalidate));
        assert!(grants(["read_security"], Action::UserGet));
        assert!(grants(["manage_security"], Action::OAuthClientManage));
        assert!(!grants(["manage_token"], Action::OAuthClientManage));
        assert!(grants(["manage_saml"], Action::TokenRefresh));
        assert!(grants(["manage_saml"], Action::TokenInvalidate));
        assert!(!grants(["manage_saml"], Action::TokenCreate));
        assert!(grants(["manage_oidc"], Action::TokenRefresh));
        assert!(grants(["manage_oidc"], Action::TokenInvalidate));
        assert!(!grants(["manage_oidc"], Action::TokenCreate));
        assert!(grants(["read_security"], Action::RoleMappingGet));
        assert!(!grants(["read_security"], Action::RoleMappingPut));
        assert!(grants(["manage_security"], Action::RoleMappingDelete));
        for saml in [
            Action::SamlPrepare,
            Action::SamlAuthenticate,
            Action::SamlLogout,
            Action::SamlInvalidate,
            Action::SamlCompleteLogout,
            Action::SamlMetadata,
        ] {
            assert!(grants(["manage_saml"], saml), "{saml:?}");
            assert!(grants(["manage_security"], saml), "{saml:?}");
            assert!(!grants(["manage_token", "manage_oidc"], saml), "{saml:?}");
        }
        for oidc in [
            Action::OidcPrepare,
            Action::OidcAuthenticate,
            Action::OidcLogout,
        ] {
            assert!(grants(["manage_oidc"], oidc), "{oidc:?}");
            assert!(grants(["manage_security"], oidc), "{oidc:?}");
            assert!(!grants(["manage_token", "manage_saml"], oidc), "{oidc:?}");
        }
    }

    #[test]
    fn kibana_system_is_built_in() {
        let role = built_in_role(KIBANA_SYSTEM_ROLE).unwrap();
        assert_eq!(role.unknown_cluster_privilege(), None);
        let held = || role.cluster.iter().map(String::as_str);
        assert!(grants(held(), Action::TokenCreate));
        assert!(grants(held(), Action::TokenRefresh));
        assert!(grants(held(), Action::MetricsRead));
        assert!(!grants(held(), Action::UserPut));
        assert!(!grants(held(), Action::RoleMappingPut));
        assert!(
            grants(held(), Action::BuiltinPrivilegesGet),
            "by its action name"
        );
        assert!(!grants(held(), Action::PrivilegePut));
        assert_eq!(built_in_role("other"), None);
    }

    #[test]
    fn descriptors_reject_unknown_fields_and_privileges() {
        assert!(
            serde_json::from_value::<RoleDescriptor>(serde_json::json!({"clusterx": []})).is_err()
        );
        let d: RoleDescriptor =
            serde_json::from_value(serde_json::json!({"cluster": ["manage_tokn"]})).unwrap();
        assert_eq!(d.unknown_cluster_privilege(), Some("manage_tokn"));
    }
}

#[cfg(test)]
mod table_tests;
