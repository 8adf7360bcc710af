//! What a named privilege implies: the other privilege names it includes
//! and the action names it grants, after Elasticsearch 8's definitions
//! (`ClusterPrivilegeResolver`, `IndexPrivilege`), for the names Tessera
//! knows.

use super::patterns::glob_covers;

/// Cluster privileges included in a broader one, besides what those
/// include in turn. `all` includes every one and each includes itself;
/// `monitor` and `manage` are rules (see [`cluster_includes`]).
const CLUSTER_IMPLIED: &[(&str, &[&str])] = &[
    (
        "manage_security",
        &[
            "delegate_pki",
            "manage_api_key",
            "manage_oidc",
            "manage_saml",
            "manage_service_account",
            "manage_token",
            "manage_user_profile",
            "read_security",
        ],
    ),
    ("manage_api_key", &["grant_api_key", "manage_own_api_key"]),
    ("manage_ilm", &["read_ilm"]),
    ("manage_slm", &["read_slm"]),
    ("manage_pipeline", &["read_pipeline"]),
    (
        "manage_ingest_pipelines",
        &["manage_pipeline", "read_pipeline"],
    ),
    ("manage_ml", &["monitor_ml"]),
    ("manage_transform", &["monitor_transform"]),
    ("manage_watcher", &["monitor_watcher"]),
    ("manage_ccr", &["read_ccr"]),
];

/// The actions a cluster privilege grants, as patterns.
fn cluster_actions(privilege: &str) -> &'static [&'static str] {
    match privilege {
        "all" => &[
            "cluster:*",
            "indices:admin/template/*",
            "indices:admin/index_template/*",
        ],
        "monitor" => &["cluster:monitor/*"],
        "manage_security" => &["cluster:admin/xpack/security/*"],
        "read_security" => &[
            "cluster:admin/xpack/security/*/get",
            "cluster:admin/xpack/security/*/get/*",
            "cluster:admin/xpack/security/*/query",
            "cluster:admin/xpack/security/user/has_privileges",
        ],
        "manage_token" => &["cluster:admin/xpack/security/token/*"],
        "manage_saml" => &[
            "cluster:admin/xpack/security/saml/*",
            "cluster:monitor/xpack/security/saml/*",
            "cluster:admin/xpack/security/token/invalidate",
            "cluster:admin/xpack/security/token/refresh",
        ],
        "manage_oidc" => &[
            "cluster:admin/xpack/security/oidc/*",
            "cluster:admin/xpack/security/token/invalidate",
            "cluster:admin/xpack/security/token/refresh",
        ],
        "manage_api_key" | "manage_own_api_key" => &["cluster:admin/xpack/security/api_key/*"],
        "grant_api_key" => &["cluster:admin/xpack/security/api_key/grant"],
        "cancel_task" => &["cluster:admin/tasks/cancel"],
        "create_snapshot" => &[
            "cluster:admin/snapshot/create",
            "cluster:admin/snapshot/status*",
        ],
        "manage_index_templates" => &[
            "indices:admin/template/*",
            "indices:admin/index_template/*",
            "cluster:admin/component_template/*",
        ],
        "manage_pipeline" | "manage_ingest_pipelines" => &["cluster:admin/ingest/pipeline/*"],
        "manage_ilm" => &["cluster:admin/ilm/*"],
        "delegate_pki" => &["cluster:admin/xpack/security/delegate_pki"],
        _ => &[],
    }
}

/// Whether the held cluster privilege (a name, or an action pattern such
/// as `cluster:monitor/main`) includes the requested one (a name, or an
/// action name).
pub fn cluster_implies(held: &str, requested: &str) -> bool {
    if held == requested || held == "all" {
        return true;
    }
    if is_action(requested) {
        return if is_action(held) {
            glob_covers(held.as_bytes(), requested.as_bytes())
        } else if held == "manage" {
            // Everything on the cluster except security's administration.
            glob_covers(b"cluster:*", requested.as_bytes())
                && !glob_covers(b"cluster:admin/xpack/security/*", requested.as_bytes())
        } else {
            cluster_actions(held)
                .iter()
                .any(|p| glob_covers(p.as_bytes(), requested.as_bytes()))
        };
    }
    cluster_includes(held, requested)
}

/// Whether the held cluster privilege's name includes the requested one,
/// directly or through the narrower privileges it includes.
fn cluster_includes(held: &str, requested: &str) -> bool {
    let includes = |narrower: &str| narrower == requested || cluster_includes(narrower, requested);
    let known = super::KNOWN_CLUSTER_PRIVILEGES.iter().copied();
    match held {
        // Every `monitor_*` privilege grants only `cluster:monitor/…` actions.
        "monitor" => known.filter(|p| p.starts_with("monitor_")).any(includes),
        // As for actions: everything on the cluster except security's
        // administration.
        "manage" => ["monitor", "cancel_task", "create_snapshot"]
            .into_iter()
            .chain(known.filter(|p| p.starts_with("manage_") && !administers_security(p)))
            .any(includes),
        _ => CLUSTER_IMPLIED
            .iter()
            .filter(|(broad, _)| *broad == held)
            .flat_map(|(_, narrower)| narrower.iter().copied())
            .any(includes),
    }
}

/// Whether a cluster privilege is security's administration:
/// `manage_security` and what it includes.
fn administers_security(privilege: &str) -> bool {
    privilege == "manage_security" || cluster_includes("manage_security", privilege)
}

/// Index privileges included in a broader one.
const INDEX_IMPLIED: &[(&str, &[&str])] = &[
    ("write", &["index", "create", "create_doc", "delete"]),
    ("index", &["create", "create_doc"]),
    ("create", &["create_doc"]),
    (
        "manage",
        &[
            "auto_configure",
            "create_index",
            "delete_index",
            "maintenance",
            "manage_data_stream_lifecycle",
            "manage_follow_index",
            "manage_ilm",
            "manage_leader_index",
            "monitor",
            "view_index_metadata",
        ],
    ),
];

/// The actions an index privilege grants, as patterns.
fn index_actions(privilege: &str) -> &'static [&'static str] {
    match privilege {
        "all" => &["indices:*", "internal:transport/proxy/indices:*"],
        "read" => &["indices:data/read/*", "indices:admin/resolve/index"],
        "read_cross_cluster" => &["internal:transport/proxy/indices:data/read/*"],
        "write" => &["indices:data/write/*", "indices:admin/mapping/auto_put"],
        "index" => &[
            "indices:data/write/index*",
            "indices:data/write/update*",
            "indices:data/write/bulk*",
            "indices:admin/mapping/auto_put",
        ],
        "create" | "create_doc" => &[
            "indices:data/write/index*",
            "indices:data/write/bulk*",
            "indices:admin/mapping/auto_put",
        ],
        "delete" => &["indices:data/write/delete*", "indices:data/write/bulk*"],
        "manage" => &["indices:admin/*", "indices:monitor/*"],
        "monitor" => &["indices:monitor/*"],
        "view_index_metadata" => &[
            "indices:admin/get",
            "indices:admin/aliases/get",
            "indices:admin/mappings/get",
            "indices:admin/mappings/fields/get*",
            "indices:admin/settings/get",
            "indices:admin/resolve/index",
            "indices:admin/validate/query*",
            "indices:monitor/settings/get",
            "indices:admin/data_stream/get",
        ],
        "create_index" => &["indices:admin/create", "indices:admin/data_stream/create"],
        "delete_index" => &["indices:admin/delete", "indices:admin/data_stream/delete"],
        "maintenance" => &[
            "indices:admin/refresh*",
            "indices:admin/flush*",
            "indices:admin/synced_flush",
            "indices:admin/forcemerge*",
        ],
        "manage_ilm" => &["indices:admin/ilm/*"],
        "auto_configure" => &[
            "indices:admin/auto_create",
            "indices:admin/mapping/auto_put",
        ],
        _ => &[],
    }
}

/// Whether the held index privilege (a name, or an action pattern)
/// includes the requested one (a name, or an action name).
pub fn index_implies(held: &str, requested: &str) -> bool {
    if requested == "none" || held == requested || held == "all" {
        return true;
    }
    if held == "none" {
        return false;
    }
    if is_action(requested) {
        return if is_action(held) {
            glob_covers(held.as_bytes(), requested.as_bytes())
        } else {
            index_actions(held)
                .iter()
                .any(|p| glob_covers(p.as_bytes(), requested.as_bytes()))
        };
    }
    INDEX_IMPLIED
        .iter()
        .any(|(broad, narrower)| *broad == held && narrower.contains(&requested))
}

/// Whether a privilege string is an action name or pattern rather than a
/// privilege's name.
pub fn is_action(name: &str) -> bool {
    name.contains([':', '/'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_privileges_imply_narrower_ones_and_actions() {
        let cases: &[(&str, &str, bool)] = &[
            ("all", "manage_security", true),
            ("all", "cluster:admin/xpack/security/user/put", true),
            ("manage", "monitor", true),
            ("manage", "manage_security", false),
            ("manage", "cluster:monitor/health", true),
            ("manage", "cluster:admin/xpack/security/user/put", false),
            ("monitor", "manage", false),
            ("monitor", "cluster:monitor/main", true),
            ("monitor", "cluster:admin/reroute", false),
            ("manage_security", "manage_api_key", true),
            ("manage_security", "read_security", true),
            ("manage_security", "manage_token", true),
            ("manage_security", "monitor", false),
            ("manage_api_key", "manage_own_api_key", true),
            ("manage_own_api_key", "manage_api_key", false),
            ("read_security", "manage_security", false),
            (
                "read_security",
                "cluster:admin/xpack/security/user/get",
                true,
            ),
            (
                "read_security",
                "cluster:admin/xpack/security/user/put",
                false,
            ),
            ("cluster:monitor/main", "cluster:monitor/main", true),
            ("cluster:monitor/*", "cluster:monitor/main", true),
            ("cluster:monitor/main", "monitor", false),
            // Through the narrower privileges a broader one includes.
            ("manage", "monitor_ml", true),
            ("manage", "read_ccr", true),
            ("manage", "manage_pipeline", true),
            ("manage", "read_pipeline", true),
            ("manage_security", "grant_api_key", true),
            ("monitor", "monitor_watcher", true),
            ("monitor", "monitor_unknown", false),
            ("monitor_ml", "monitor", false),
            ("manage_ml", "monitor_ml", true),
            ("manage_ml", "monitor_rollup", false),
            ("manage", "manage_watcher", true),
            ("manage", "manage_api_key", false),
            ("manage", "manage_own_api_key", false),
            ("manage", "manage_unknown", false),
        ];
        for (held, requested, expected) in cases {
            assert_eq!(
                cluster_implies(held, requested),
                *expected,
                "{held} implies {requested}"
            );
        }
    }

    #[test]
    fn index_privileges_imply_narrower_ones_and_actions() {
        let cases: &[(&str, &str, bool)] = &[
            ("all", "read", true),
            ("all", "indices:data/read/search", true),
            ("all", "none", true),
            ("write", "index", true),
            ("write", "create_doc", true),
            ("write", "delete", true),
            ("write", "read", false),
            ("index", "create", true),
            ("index", "delete", false),
            ("create", "create_doc", true),
            ("create_doc", "create", false),
            ("read", "indices:data/read/search", true),
            ("read", "indices:data/write/index", false),
            ("read", "write", false),
            ("manage", "view_index_metadata", true),
            ("manage", "monitor", true),
            ("manage", "read", false),
            ("view_index_metadata", "manage", false),
            ("monitor", "indices:monitor/stats", true),
            ("indices:data/read/*", "indices:data/read/get", true),
            ("read", "none", true),
        ];
        for (held, requested, expected) in cases {
            assert_eq!(
                index_implies(held, requested),
                *expected,
                "{held} implies {requested}"
            );
        }
    }
}
