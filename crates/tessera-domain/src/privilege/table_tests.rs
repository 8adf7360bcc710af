//! The evaluation of privileges, as a table of role descriptors and the
//! privileges asked of them.

use serde_json::{json, Value};

use super::check::{user_privileges, Permissions, PrivilegesCheck};
use super::{built_in_role, ApplicationPrivilege, RoleDescriptor};

fn role(v: Value) -> RoleDescriptor {
    serde_json::from_value(v).expect("a role descriptor")
}

fn defined() -> Vec<ApplicationPrivilege> {
    let p = |app: &str, name: &str, actions: &[&str]| ApplicationPrivilege {
        application: app.into(),
        name: name.into(),
        actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        metadata: Default::default(),
    };
    vec![
        p("myapp", "read", &["data:read/*", "action:login"]),
        p("myapp", "write", &["data:write/*", "action:login"]),
        p("myapp", "admin", &["data:*", "action:*"]),
        p("otherapp", "read", &["data:read/*"]),
    ]
}

fn check(roles: &[RoleDescriptor], request: Value) -> Value {
    let request: PrivilegesCheck = serde_json::from_value(request).expect("a check");
    assert_eq!(request.problem(), None);
    assert_eq!(request.invalid(), None);
    let layers = [Permissions::of(roles)];
    serde_json::to_value(request.evaluate(&layers, &defined())).unwrap()
}

/// `(what, roles, request, the answer's parts that must hold)`.
#[test]
fn the_table() {
    let reader = role(json!({
        "cluster": ["monitor", "manage_own_api_key"],
        "indices": [
            {"names": ["logs-*", "metrics"], "privileges": ["read", "view_index_metadata"]},
            {"names": "single", "privileges": ["write"]},
            {"names": ["/events-[0-9]+/"], "privileges": ["manage"]},
        ],
        "applications": [
            {"application": "myapp", "privileges": ["read"], "resources": ["space/*", "doc/1"]},
            {"application": "other*", "privileges": ["data:read/*"], "resources": ["*"]},
        ],
    }));
    let admin = role(json!({
        "cluster": ["manage_security", "manage"],
        "indices": [{"names": ["*"], "privileges": ["all"], "allow_restricted_indices": false}],
        "applications": [{"application": "myapp", "privileges": ["admin"], "resources": ["*"]}],
    }));
    let superuser = built_in_role("superuser").unwrap();
    let cases: Vec<(&str, Vec<RoleDescriptor>, Value, Value)> = vec![
        (
            "implied cluster privileges and actions",
            vec![reader.clone()],
            json!({"cluster": ["monitor", "cluster:monitor/health", "manage", "manage_own_api_key", "manage_api_key"]}),
            json!({"has_all_requested": false, "cluster": {
                "monitor": true, "cluster:monitor/health": true, "manage": false,
                "manage_own_api_key": true, "manage_api_key": false}}),
        ),
        (
            "manage_security holds what it includes",
            vec![admin.clone()],
            json!({"cluster": ["manage_api_key", "read_security", "manage_token", "monitor"]}),
            json!({"has_all_requested": true}),
        ),
        (
            "index wildcards and implied index privileges",
            vec![reader.clone()],
            json!({"index": [
                {"names": ["logs-2024", "logs-*", "logs-app-*", "log*"], "privileges": ["read", "indices:data/read/search", "write"]},
                {"names": "single", "privileges": ["index", "create_doc", "delete", "read"]},
                {"names": ["events-12"], "privileges": ["monitor", "view_index_metadata", "delete_index"]},
                {"names": ["events-x"], "privileges": ["monitor"]},
            ]}),
            json!({"has_all_requested": false, "index": {
                "logs-2024": {"read": true, "indices:data/read/search": true, "write": false},
                "logs-*": {"read": true, "indices:data/read/search": true, "write": false},
                "logs-app-*": {"read": true, "indices:data/read/search": true, "write": false},
                "log*": {"read": false, "indices:data/read/search": false, "write": false},
                "single": {"index": true, "create_doc": true, "delete": true, "read": false},
                "events-12": {"monitor": true, "view_index_metadata": true, "delete_index": true},
                "events-x": {"monitor": false},
            }}),
        ),
        (
            "restricted indices need allow_restricted_indices",
            vec![admin.clone()],
            json!({"index": [
                {"names": [".security-7", "logs"], "privileges": ["read"]},
                {"names": ["*"], "privileges": ["read"], "allow_restricted_indices": true},
                {"names": ["other-*"], "privileges": ["all"], "allow_restricted_indices": true},
            ]}),
            json!({"index": {
                ".security-7": {"read": false}, "logs": {"read": true},
                "*": {"read": false}, "other-*": {"all": true},
            }}),
        ),
        (
            "application privileges by name, action and resource",
            vec![reader.clone()],
            json!({"application": [
                {"application": "myapp", "privileges": ["read", "data:read/x", "action:login", "write", "data:write/x"],
                 "resources": ["space/a", "doc/1", "doc/2", "space/*"]},
                {"application": "otherapp", "privileges": ["read", "data:read/y", "data:write/y"], "resources": ["r"]},
            ]}),
            json!({"has_all_requested": false, "application": {
                "myapp": {
                    "space/a": {"read": true, "data:read/x": true, "action:login": true, "write": false, "data:write/x": false},
                    "doc/1": {"read": true, "data:read/x": true, "action:login": true, "write": false, "data:write/x": false},
                    "doc/2": {"read": false, "data:read/x": false, "action:login": false, "write": false, "data:write/x": false},
                    "space/*": {"read": true, "data:read/x": true, "action:login": true, "write": false, "data:write/x": false},
                },
                "otherapp": {"r": {"read": true, "data:read/y": true, "data:write/y": false}},
            }}),
        ),
        (
            "a privilege whose actions are covered is held; undefined names are not",
            vec![admin.clone()],
            json!({"application": [{"application": "myapp", "privileges": ["read", "write", "admin", "undefined"], "resources": ["x"]}]}),
            json!({"application": {"myapp": {"x": {"read": true, "write": true, "admin": true, "undefined": false}}}}),
        ),
        (
            "superuser holds everything, defined or not",
            vec![superuser.clone()],
            json!({"cluster": ["all", "manage_security"],
                   "index": [{"names": [".security", "x-*"], "privileges": ["all"], "allow_restricted_indices": true}],
                   "application": [{"application": "anyapp", "privileges": ["undefined", "some:action"], "resources": ["*"]}]}),
            json!({"has_all_requested": true}),
        ),
        (
            "the union of several roles",
            vec![reader.clone(), admin.clone()],
            json!({"cluster": ["manage", "monitor"], "index": [{"names": ["anything"], "privileges": ["write"]}]}),
            json!({"has_all_requested": true}),
        ),
        (
            "no roles, nothing",
            vec![],
            json!({"cluster": ["monitor"], "application": [{"application": "myapp", "privileges": ["read"], "resources": ["*"]}]}),
            json!({"has_all_requested": false, "cluster": {"monitor": false},
                   "application": {"myapp": {"*": {"read": false}}}}),
        ),
        (
            "viewer reads data indices but not dot-indices, and reads kibana",
            vec![built_in_role("viewer").unwrap()],
            json!({"index": [{"names": ["logs", "logs-*", ".kibana", "ilm-history-1"], "privileges": ["read"]}],
                   "application": [{"application": "kibana-.kibana", "privileges": ["read", "all"], "resources": ["space:default"]}]}),
            json!({"index": {"logs": {"read": true}, "logs-*": {"read": true}, ".kibana": {"read": false}, "ilm-history-1": {"read": false}},
                   "application": {"kibana-.kibana": {"space:default": {"read": true, "all": false}}}}),
        ),
        (
            "monitoring_user's cluster actions and metrics indices",
            vec![built_in_role("monitoring_user").unwrap()],
            json!({"cluster": ["cluster:monitor/main", "monitor"],
                   "index": [{"names": ["metrics-kibana.x", "metrics-apm.x", ".monitoring-es-8"], "privileges": ["read"]}]}),
            json!({"cluster": {"cluster:monitor/main": true, "monitor": false},
                   "index": {"metrics-kibana.x": {"read": true}, "metrics-apm.x": {"read": false}, ".monitoring-es-8": {"read": true}}}),
        ),
    ];
    for (what, roles, request, expected) in cases {
        let got = check(&roles, request);
        for (key, want) in expected.as_object().unwrap() {
            assert_eq!(&got[key], want, "{what}: {key} in {got}");
        }
    }
}

#[test]
fn an_api_key_holds_the_intersection_of_its_layers() {
    let owner = role(
        json!({"cluster": ["manage_security"], "indices": [{"names": ["*"], "privileges": ["all"]}]}),
    );
    let key = role(
        json!({"cluster": ["manage_api_key", "monitor"], "indices": [{"names": ["logs-*"], "privileges": ["read"]}]}),
    );
    let request: PrivilegesCheck = serde_json::from_value(json!({
        "cluster": ["manage_api_key", "monitor", "manage_security"],
        "index": [{"names": ["logs-1", "other"], "privileges": ["read"]}],
    }))
    .unwrap();
    let got = request.evaluate(&[Permissions::of([&key]), Permissions::of([&owner])], &[]);
    let got = serde_json::to_value(got).unwrap();
    assert_eq!(
        got["cluster"],
        json!({"manage_api_key": true, "monitor": false, "manage_security": false})
    );
    assert_eq!(
        got["index"],
        json!({"logs-1": {"read": true}, "other": {"read": false}})
    );
}

#[test]
fn bad_checks_are_named() {
    for (request, wording) in [
        (
            json!({"cluster": ["manage_everything"]}),
            "unknown cluster privilege [manage_everything]",
        ),
        (
            json!({"index": [{"names": ["x"], "privileges": ["reed"]}]}),
            "unknown index privilege [reed]",
        ),
        (
            json!({"application": [{"application": "_x", "privileges": ["a"], "resources": ["*"]}]}),
            "application name prefix",
        ),
        (
            json!({"application": [{"application": "myapp", "privileges": [], "resources": ["*"]}]}),
            "privileges must not be empty",
        ),
    ] {
        let check: PrivilegesCheck = serde_json::from_value(request.clone()).unwrap();
        let problem = check.problem().unwrap_or_default();
        assert!(problem.contains(wording), "{request}: {problem}");
    }
    assert!(serde_json::from_value::<PrivilegesCheck>(json!({"clusterx": []})).is_err());
    let empty: PrivilegesCheck = serde_json::from_value(json!({})).unwrap();
    assert_eq!(
        empty.invalid().as_deref(),
        Some("must specify at least one privilege")
    );
}

#[test]
fn kibana_system_manages_the_kibana_applications_only() {
    let p = Permissions::of([&built_in_role("kibana_system").unwrap()]);
    assert!(p.manages_application("kibana-.kibana"));
    assert!(!p.manages_application("myapp"));
    assert!(p.index(".kibana_8.0.0", "all", false));
    assert!(p.cluster("manage_token"));
    assert!(!p.cluster("manage_security"));
}

#[test]
fn user_privileges_are_the_union() {
    let a = role(
        json!({"cluster": ["monitor", "manage_token"], "run_as": ["x"],
                        "indices": [{"names": "logs", "privileges": ["read"]}]}),
    );
    let b = role(json!({"cluster": ["monitor"], "run_as": ["a"],
                        "indices": [{"names": ["logs"], "privileges": ["read"]}],
                        "applications": [{"application": "myapp", "privileges": ["read"], "resources": ["*"]}]}));
    assert_eq!(
        user_privileges([&a, &b]),
        json!({
            "cluster": ["manage_token", "monitor"],
            "global": [],
            "indices": [{"names": ["logs"], "privileges": ["read"], "allow_restricted_indices": false}],
            "applications": [{"application": "myapp", "privileges": ["read"], "resources": ["*"]}],
            "run_as": ["a", "x"],
        })
    );
}

#[test]
fn roles_with_bad_application_entries_are_refused() {
    let good = role(json!({"applications": [
        {"application": "kibana-*", "privileges": ["read", "data:read/*"], "resources": ["*"]},
        {"application": "*", "privileges": ["*"], "resources": ["*"]},
    ]}));
    assert!(good.application_problems().is_empty());
    let bad = role(json!({"applications": [
        {"application": "000", "privileges": ["all"], "resources": ["*"]},
        {"application": "myapp", "privileges": ["in valid"], "resources": ["*"]},
        {"application": "myapp"},
    ]}));
    let problems = bad.application_problems();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].contains("An application name prefix must match the pattern"));
    assert!(problems[1].contains("privilege names and actions must match the pattern"));
}
