//! The built-in (reserved) roles: defined here, never stored, listed by
//! `GET /_security/role` with `metadata._reserved: true`, and refused by
//! the role API's writes. Their definitions are Elasticsearch 8's, with
//! `kibana_system`'s long list of index privileges cut to the indices a
//! dashboard's own features use.

use serde_json::{json, Map, Value};

use super::RoleDescriptor;

/// The role every installation has: everything is allowed.
pub const SUPERUSER_ROLE: &str = "superuser";

/// The built-in role of a dashboard's service user (Kibana's
/// `kibana_system`): SAML and OIDC logins, tokens, monitoring, and the
/// management of the `kibana-*` application privileges.
pub const KIBANA_SYSTEM_ROLE: &str = "kibana_system";

/// The built-in roles, in the order `GET /_security/role` lists them.
pub const BUILT_IN_ROLES: &[&str] = &[
    SUPERUSER_ROLE,
    KIBANA_SYSTEM_ROLE,
    "kibana_admin",
    "viewer",
    "editor",
    "monitoring_user",
];

/// The descriptor of a built-in role.
pub fn built_in_role(name: &str) -> Option<RoleDescriptor> {
    match name {
        SUPERUSER_ROLE => Some(RoleDescriptor::superuser()),
        KIBANA_SYSTEM_ROLE => Some(RoleDescriptor::kibana_system()),
        "kibana_admin" => Some(kibana_admin()),
        "viewer" => Some(viewer()),
        "editor" => Some(editor()),
        "monitoring_user" => Some(monitoring_user()),
        _ => None,
    }
}

fn reserved() -> Map<String, Value> {
    let mut metadata = Map::new();
    metadata.insert("_reserved".into(), Value::Bool(true));
    metadata
}

fn indices(names: &[&str], privileges: &[&str], allow_restricted: bool) -> Value {
    json!({
        "names": names,
        "privileges": privileges,
        "allow_restricted_indices": allow_restricted,
    })
}

fn kibana(privilege: &str) -> Value {
    json!({"application": "kibana-.kibana", "privileges": [privilege], "resources": ["*"]})
}

fn role(
    cluster: &[&str],
    index_entries: Vec<Value>,
    applications: Vec<Value>,
    description: &str,
) -> RoleDescriptor {
    RoleDescriptor {
        cluster: cluster.iter().map(|s| (*s).to_owned()).collect(),
        indices: index_entries,
        applications,
        run_as: Vec::new(),
        metadata: reserved(),
        global: None,
        remote_indices: None,
        description: Some(description.to_owned()),
    }
}

impl RoleDescriptor {
    pub fn superuser() -> Self {
        Self {
            cluster: vec!["all".into()],
            indices: vec![indices(&["*"], &["all"], true)],
            applications: vec![
                json!({"application": "*", "privileges": ["*"], "resources": ["*"]}),
            ],
            run_as: vec!["*".into()],
            metadata: reserved(),
            global: None,
            remote_indices: None,
            description: None,
        }
    }

    /// Elasticsearch 8's `kibana_system`: its cluster privileges (those
    /// that guard nothing here are kept for what `_has_privileges`
    /// answers), the management of `kibana-*` application privileges, and
    /// the index privileges of the dashboard's own indices.
    pub fn kibana_system() -> Self {
        let mut d = role(
            &[
                "monitor",
                "manage_index_templates",
                "cluster:admin/xpack/monitoring/bulk",
                "manage_saml",
                "manage_token",
                "manage_oidc",
                "manage_enrich",
                "manage_pipeline",
                "manage_ilm",
                "manage_transform",
                "cluster:admin/xpack/security/api_key/invalidate",
                "grant_api_key",
                "manage_own_api_key",
                "cluster:admin/xpack/security/privilege/builtin/get",
                "delegate_pki",
                "cluster:admin/xpack/security/profile/get",
                "cluster:admin/xpack/security/profile/activate",
                "cluster:admin/xpack/security/profile/suggest",
                "cluster:admin/xpack/security/profile/has_privileges",
                "write_fleet_secrets",
                "manage_ml",
                "cluster:admin/analyze",
                "monitor_text_structure",
                "cancel_task",
            ],
            vec![
                indices(&[".kibana*", ".reporting-*"], &["all"], true),
                indices(&[".monitoring-*"], &["read", "read_cross_cluster"], false),
                indices(
                    &[".management-beats"],
                    &["create_index", "read", "write"],
                    false,
                ),
                indices(&[".ml-anomalies*", ".ml-stats-*"], &["read"], false),
                indices(
                    &[".ml-annotations*", ".ml-notifications*"],
                    &["read", "write"],
                    false,
                ),
                indices(
                    &[".apm-agent-configuration", ".apm-custom-link", ".apm-source-map"],
                    &["all"],
                    true,
                ),
                indices(
                    &["apm-*", "logs-apm.*", "metrics-apm.*", "traces-apm.*", "traces-apm-*"],
                    &["read", "read_cross_cluster"],
                    false,
                ),
                indices(&["*"], &["view_index_metadata", "monitor"], false),
                indices(
                    &[".fleet-actions*", ".fleet-agents*", ".fleet-artifacts*", ".fleet-enrollment-api-keys*", ".fleet-policies*", ".fleet-servers*"],
                    &["all"],
                    true,
                ),
                indices(&[".siem-signals*", ".lists-*", ".items-*"], &["all"], false),
                indices(&[".internal.alerts*", ".alerts*", ".preview.alerts*", ".internal.preview.alerts*"], &["all"], false),
            ],
            Vec::new(),
            "Grants access necessary for the Kibana system user to read from and write to the Kibana indices, manage index templates and tokens, and check the availability of the Elasticsearch cluster. It also permits activating, searching, and retrieving user profiles, as well as updating user profile data for the kibana-* namespace. Additionally, this role grants read access to the .monitoring-* indices and read and write access to the .reporting-* indices. Note: This role should not be assigned to users as the granted permissions may change between releases.",
        );
        d.global = Some(json!({
            "application": {"manage": {"applications": ["kibana-*"]}},
            "profile": {"write": {"applications": ["kibana*"]}},
        }));
        d
    }
}

fn kibana_admin() -> RoleDescriptor {
    role(
        &[],
        Vec::new(),
        vec![kibana("all")],
        "Grants access to all features in Kibana.",
    )
}

/// The indices `viewer` reads, which `editor` reads too.
fn data_indices() -> Value {
    indices(
        &["/~(([.]|ilm-history-).*)/"],
        &["read", "view_index_metadata"],
        false,
    )
}

fn viewer() -> RoleDescriptor {
    let read = &["read", "view_index_metadata"][..];
    role(
        &[],
        vec![
            data_indices(),
            indices(&[".slo-observability.*"], read, false),
            indices(&[".siem-signals*", ".lists-*", ".items-*"], read, false),
            indices(&[".alerts*", ".preview.alerts*"], read, false),
            indices(&["profiling-*", ".profiling-*"], read, false),
        ],
        vec![kibana("read")],
        "Grants read-only access to all features in Kibana (including Solutions) and to data indices.",
    )
}

fn editor() -> RoleDescriptor {
    let write = &["read", "view_index_metadata", "write", "maintenance"][..];
    role(
        &[],
        vec![
            data_indices(),
            indices(
                &["observability-annotations"],
                &["read", "view_index_metadata", "write"],
                false,
            ),
            indices(
                &[".slo-observability.*"],
                &["read", "view_index_metadata", "write", "manage"],
                false,
            ),
            indices(&[".siem-signals*", ".lists-*", ".items-*"], write, false),
            indices(
                &[".internal.alerts*", ".alerts*", ".internal.preview.alerts*", ".preview.alerts*"],
                write,
                false,
            ),
            indices(
                &["profiling-*", ".profiling-*"],
                &["read", "view_index_metadata"],
                false,
            ),
        ],
        vec![kibana("all")],
        "Grants full access to all features in Kibana (including Solutions) and read-only access to data indices.",
    )
}

fn monitoring_user() -> RoleDescriptor {
    let read = &["read", "read_cross_cluster"][..];
    role(
        &[
            "cluster:monitor/main",
            "cluster:monitor/xpack/info",
            "cluster:monitor/remote/info",
        ],
        vec![
            indices(&[".monitoring-*"], read, false),
            indices(
                &["/metrics-(beats|elasticsearch|enterprisesearch|kibana|logstash).*/"],
                read,
                false,
            ),
            indices(&["metricbeat-*"], read, false),
        ],
        vec![json!({
            "application": "kibana-*",
            "privileges": ["reserved_monitoring"],
            "resources": ["*"],
        })],
        "Grants the minimum privileges required for any user of X-Pack monitoring other than those required to use Kibana. This role grants access to the monitoring indices and grants privileges necessary for reading basic cluster information. This role also includes all Kibana privileges for the Elastic Stack monitoring features. Monitoring users should also be assigned the kibana_admin role, or another role with access to the Kibana instance.",
    )
}
