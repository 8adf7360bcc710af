//! Table-driven tests of the rules and of the document's validation.

use serde_json::{json, Value};

use super::*;

/// A SAML user as Elasticsearch would see it after a login.
fn saml_user() -> UserData {
    UserData {
        username: "jdoe".into(),
        dn: None,
        groups: vec!["Admins".into(), "staff".into()],
        realm_name: "saml1".into(),
        metadata: serde_json::from_value(json!({
            "saml_nameid": "jdoe@example.org",
            "saml(urn:oid:0.0.7)": ["a", "b"],
            "saml_uid": "jdoe",
            "level": 3,
            "ratio": 0.5,
            "active": true,
            "nothing": null,
            "empty_list": [],
            "nested": {"x": 1},
        }))
        .unwrap(),
    }
}

fn ldap_user() -> UserData {
    UserData {
        username: "jane".into(),
        dn: Some("CN=Jane Doe, OU=People, DC=Example, DC=com".into()),
        groups: vec!["cn=Admins,ou=groups,dc=example,dc=com".into()],
        realm_name: "ldap1".into(),
        metadata: Default::default(),
    }
}

fn no_groups() -> UserData {
    UserData {
        groups: vec![],
        ..saml_user()
    }
}

fn rule(v: Value) -> Rule {
    Rule::parse("test", &v).unwrap_or_else(|e| panic!("{v}: {e:?}"))
}

#[test]
fn rules_match_as_elasticsearch_matches_them() {
    let saml = saml_user();
    let ldap = ldap_user();
    let empty = no_groups();
    #[rustfmt::skip]
    let table: Vec<(&str, Value, &UserData, bool)> = vec![
        // exact values
        ("username exact", json!({"field": {"username": "jdoe"}}), &saml, true),
        ("username is case-sensitive", json!({"field": {"username": "JDOE"}}), &saml, false),
        ("realm", json!({"field": {"realm.name": "saml1"}}), &saml, true),
        ("other realm", json!({"field": {"realm.name": "saml2"}}), &saml, false),
        // wildcards
        ("star", json!({"field": {"username": "*"}}), &saml, true),
        ("prefix", json!({"field": {"username": "jd*"}}), &saml, true),
        ("question mark with a star", json!({"field": {"username": "j?o*"}}), &saml, true),
        ("question mark alone is literal", json!({"field": {"username": "jdo?"}}), &saml, false),
        ("escaped star is literal", json!({"field": {"username": "jd\\*"}}), &saml, false),
        ("wildcard is anchored", json!({"field": {"username": "do*"}}), &saml, false),
        // regular expressions
        ("regex", json!({"field": {"username": "/j[a-z]+e/"}}), &saml, true),
        ("regex is anchored", json!({"field": {"username": "/do/"}}), &saml, false),
        ("regex alternation stays anchored", json!({"field": {"username": "/x|jd/"}}), &saml, false),
        ("slash alone is literal", json!({"field": {"username": "/"}}), &saml, false),
        // arrays of rule values: any of them
        ("any value", json!({"field": {"username": ["es-admin", "jdoe"]}}), &saml, true),
        ("no value", json!({"field": {"username": ["es-admin", "x*"]}}), &saml, false),
        // groups: any member, without regard to case when exact
        ("group", json!({"field": {"groups": "staff"}}), &saml, true),
        ("group ignores case", json!({"field": {"groups": "admins"}}), &saml, true),
        ("group wildcard tries lower and upper case", json!({"field": {"groups": "ADM*"}}), &saml, true),
        ("group wildcard is not case-insensitive", json!({"field": {"groups": "aDm*"}}), &saml, false),
        ("missing group", json!({"field": {"groups": "ops"}}), &saml, false),
        ("null never matches empty groups", json!({"field": {"groups": null}}), &empty, false),
        ("nothing matches empty groups", json!({"field": {"groups": "*"}}), &empty, false),
        // DNs
        ("dn spelled differently", json!({"field": {"dn": "cn=jane doe,ou=people,dc=example,dc=com"}}), &ldap, true),
        ("dn subtree", json!({"field": {"dn": "*,dc=example,dc=com"}}), &ldap, true),
        ("dn subtree spelled differently", json!({"field": {"dn": "*, DC=EXAMPLE, dc=Com"}}), &ldap, true),
        ("dn other subtree", json!({"field": {"dn": "*,dc=other,dc=com"}}), &ldap, false),
        ("dn pattern on the normalized form", json!({"field": {"dn": "cn=jane doe,ou=*"}}), &ldap, true),
        ("dn regex", json!({"field": {"dn": "/.*ou=people.*/"}}), &ldap, true),
        ("group as a dn", json!({"field": {"groups": "CN=admins, OU=groups, DC=example, DC=com"}}), &ldap, true),
        ("group subtree", json!({"field": {"groups": "*,ou=groups,dc=example,dc=com"}}), &ldap, true),
        ("no dn matches null", json!({"field": {"dn": null}}), &saml, true),
        ("no dn matches nothing else", json!({"field": {"dn": "*"}}), &saml, false),
        ("a dn does not match null", json!({"field": {"dn": null}}), &ldap, false),
        // metadata
        ("metadata string", json!({"field": {"metadata.saml_uid": "jdoe"}}), &saml, true),
        ("metadata key with parentheses", json!({"field": {"metadata.saml(urn:oid:0.0.7)": "b"}}), &saml, true),
        ("metadata key escaped", json!({"field": {"metadata.saml\\(urn:oid:0.0.7\\)": "a"}}), &saml, true),
        ("metadata array member by wildcard", json!({"field": {"metadata.saml(urn:oid:0.0.7)": "?*"}}), &saml, true),
        ("metadata number", json!({"field": {"metadata.level": 3}}), &saml, true),
        ("metadata number as float", json!({"field": {"metadata.level": 3.0}}), &saml, true),
        ("metadata fraction is not truncated", json!({"field": {"metadata.level": 3.5}}), &saml, false),
        ("metadata float", json!({"field": {"metadata.ratio": 0.5}}), &saml, true),
        ("string is not a number", json!({"field": {"metadata.level": "3"}}), &saml, false),
        ("metadata boolean", json!({"field": {"metadata.active": true}}), &saml, true),
        ("boolean is not a string", json!({"field": {"metadata.active": "true"}}), &saml, false),
        ("null value matches null", json!({"field": {"metadata.nothing": null}}), &saml, true),
        ("missing key matches null", json!({"field": {"metadata.terminated_date": null}}), &saml, true),
        ("missing key matches nothing else", json!({"field": {"metadata.terminated_date": "*"}}), &saml, false),
        ("present key does not match null", json!({"field": {"metadata.saml_uid": null}}), &saml, false),
        ("empty array matches nothing", json!({"field": {"metadata.empty_list": null}}), &saml, false),
        ("objects match nothing", json!({"field": {"metadata.nested": "*"}}), &saml, false),
        ("dotted key is not a path", json!({"field": {"metadata.nested.x": 1}}), &saml, false),
        // combinations
        ("any", json!({"any": [{"field": {"username": "x"}}, {"field": {"groups": "staff"}}]}), &saml, true),
        ("empty any", json!({"any": []}), &saml, false),
        ("all", json!({"all": [{"field": {"username": "jdoe"}}, {"field": {"realm.name": "saml1"}}]}), &saml, true),
        ("all fails on one", json!({"all": [{"field": {"username": "jdoe"}}, {"field": {"realm.name": "x"}}]}), &saml, false),
        ("empty all matches everyone", json!({"all": []}), &saml, true),
        ("except", json!({"all": [{"field": {"username": "*"}}, {"except": {"field": {"groups": "staff"}}}]}), &saml, false),
        ("except passes", json!({"all": [{"field": {"username": "*"}}, {"except": {"field": {"groups": "ops"}}}]}), &saml, true),
        ("nested", json!({"all": [
            {"any": [{"field": {"dn": "*,ou=admin,dc=example,dc=com"}}, {"field": {"username": ["es-admin", "jdoe"]}}]},
            {"field": {"groups": "staff"}},
            {"field": {"realm.name": "saml1"}},
            {"except": {"field": {"metadata.terminated_date": null}}}]}), &saml, false),
    ];
    for (name, rules, user, expected) in table {
        assert_eq!(
            rule(rules.clone()).matches(user),
            expected,
            "{name}: {rules}"
        );
    }
}

#[test]
fn rules_are_refused_with_elasticsearch_messages() {
    let p = "failed to parse rules expression.";
    #[rustfmt::skip]
    let table: Vec<(Value, &str, String)> = vec![
        (json!([]), "parse_exception", format!("{p} expected [test] to be an object but found [START_ARRAY] instead")),
        (json!({}), "parse_exception", format!("{p} object [test] does not contain any fields")),
        (json!({"some": []}), "parse_exception", format!("{p} field [some] is not recognised in object [test]")),
        (json!({"any": [], "all": []}), "parse_exception", format!("{p} object [test] contains multiple fields")),
        (json!({"any": {}}), "parse_exception", format!("{p} field [any] requires an array")),
        (json!({"except": {"field": {"username": "x"}}}), "parse_exception", format!("{p} field [except] is not allowed within [test]")),
        (json!({"any": [{"except": {"field": {"username": "x"}}}]}), "parse_exception", format!("{p} field [except] is not allowed within [any]")),
        (json!({"all": [{"except": {"except": {"field": {"username": "x"}}}}]}), "parse_exception", format!("{p} field [except] is not allowed within [except]")),
        (json!({"all": [{"except": []}]}), "parse_exception", format!("{p} expected an object but found [START_ARRAY] instead")),
        (json!({"field": "username"}), "parse_exception", format!("{p} expected an object but found [VALUE_STRING] instead")),
        (json!({"field": {}}), "parse_exception", format!("{p} object [field] does not contain any fields")),
        (json!({"field": {"username": "a", "dn": "b"}}), "parse_exception", format!("{p} object [field] contains multiple fields")),
        (json!({"field": {"username": {"a": 1}}}), "parse_exception", format!("{p} expected a field value but found [START_OBJECT] instead")),
        (json!({"field": {"username": [["a"]]}}), "parse_exception", format!("{p} expected a field value but found [START_ARRAY] instead")),
        (json!({"field": {"username": []}}), "illegal_argument_exception", "null or empty values ([])".into()),
        (json!({"field": {"": "a"}}), "illegal_argument_exception", "null or empty field name ()".into()),
        (json!({"field": {"group": "a"}}), "illegal_argument_exception", format!("{p} field [group] is not a user field; use one of [username, dn, groups, realm.name, metadata.<key>]")),
        (json!({"field": {"metadata.": "a"}}), "illegal_argument_exception", format!("{p} field [metadata.] is not a user field; use one of [username, dn, groups, realm.name, metadata.<key>]")),
        (json!({"field": {"username": "/ab*"}}), "illegal_argument_exception", "invalid pattern [/ab*]. patterns starting with '/' indicate regular expression pattern and therefore must also end with '/'. other patterns (those that do not start with '/') will be treated as simple wildcard patterns".into()),
    ];
    for (rules, kind, message) in table {
        let e = Rule::parse("test", &rules).expect_err(&rules.to_string());
        assert_eq!((e.kind(), e.to_string()), (kind, message), "{rules}");
    }
}

#[test]
fn patterns_are_bounded() {
    let e = Rule::parse("t", &json!({"field": {"username": "/a)|(b/"}})).unwrap_err();
    assert_eq!(e.kind(), "illegal_argument_exception");
    assert!(
        e.to_string().starts_with("invalid pattern [/a)|(b/]: "),
        "{e}"
    );
    let huge = format!("/{}/", "\\w{50}".repeat(20));
    let e = Rule::parse("t", &json!({"field": {"username": huge}})).unwrap_err();
    assert!(
        e.to_string().ends_with("the compiled pattern is too large"),
        "{e}"
    );
    let long = format!("{}*", "a".repeat(rules::MAX_PATTERN_CHARS));
    let e = Rule::parse("t", &json!({"field": {"username": long}})).unwrap_err();
    assert!(e.to_string().contains("longer than the limit"), "{e}");
    let nested = format!("/{}a{}/", "(".repeat(100), ")".repeat(100));
    assert!(Rule::parse("t", &json!({"field": {"username": nested}})).is_err());
    assert!(Rule::parse("t", &json!({"field": {"username": "/\\w+/"}})).is_ok());
    let many = |n: usize| json!({"field": {"username": vec!["a*"; n]}});
    assert!(Rule::parse_bounded("t", &many(rules::MAX_PATTERNS)).is_ok());
    let e = Rule::parse_bounded("t", &many(rules::MAX_PATTERNS + 1)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "a role mapping may hold at most [64] patterns (wildcards and regular expressions)"
    );
}

fn doc(v: Value) -> Result<RoleMapping, MappingError> {
    RoleMapping::parse("m1", &v)
}

#[test]
fn documents_are_validated_as_elasticsearch_validates_them() {
    let rules = json!({"field": {"username": "*"}});
    #[rustfmt::skip]
    let table: Vec<(Value, &str, &str)> = vec![
        (json!({"roles": ["r"], "rules": rules, "enabled": true, "extra": 1}), "x_content_parse_exception", "[role-mapping] unknown field [extra]"),
        (json!({"roles": 1, "rules": rules, "enabled": true}), "x_content_parse_exception", "[role-mapping] roles doesn't support values of type: VALUE_NUMBER"),
        (json!({"roles": [1], "rules": rules, "enabled": true}), "x_content_parse_exception", "[role-mapping] roles doesn't support values of type: VALUE_NUMBER"),
        (json!({"roles": ["r"], "rules": rules, "enabled": "yes"}), "x_content_parse_exception", "[role-mapping] enabled doesn't support values of type: VALUE_STRING"),
        (json!({"roles": ["r"], "rules": "x", "enabled": true}), "x_content_parse_exception", "[role-mapping] rules doesn't support values of type: VALUE_STRING"),
        (json!({"roles": ["r"], "rules": rules, "enabled": true, "metadata": []}), "x_content_parse_exception", "[role-mapping] metadata doesn't support values of type: START_ARRAY"),
        (json!({"rules": rules, "enabled": true}), "parsing_exception", "failed to parse role-mapping [m1]. missing field [roles]"),
        (json!({"roles": ["r"], "enabled": true}), "parsing_exception", "failed to parse role-mapping [m1]. missing field [rules]"),
        (json!({"roles": ["r"], "rules": rules}), "parsing_exception", "failed to parse role-mapping [m1]. missing field [enabled]"),
        (json!({"roles": ["r"], "rules": {"except": {"field": {"username": "x"}}}, "enabled": true}), "parse_exception", "failed to parse rules expression. field [except] is not allowed within [m1]"),
        (json!({"roles": ["r"], "role_templates": [{"template": {"source": "x"}}], "rules": rules, "enabled": true}), "illegal_argument_exception", ROLE_TEMPLATES_UNSUPPORTED),
    ];
    for (body, kind, message) in table {
        let e = doc(body.clone()).expect_err(&body.to_string());
        assert_eq!(
            (e.kind(), e.to_string().as_str()),
            (kind, message),
            "{body}"
        );
    }
    let e = doc(json!({"roles": [], "rules": rules, "enabled": true, "metadata": {"_x": 1}}))
        .unwrap_err();
    assert_eq!(
        e,
        MappingError::Invalid(vec![
            "role-mapping roles or role-templates are missing".into(),
            "metadata keys may not start with [_]".into(),
        ])
    );
    let e = doc(json!({"role_templates": [], "rules": rules, "enabled": true})).unwrap_err();
    assert_eq!(
        e,
        MappingError::Invalid(vec![
            "role-mapping roles or role-templates are missing".into()
        ])
    );
}

#[test]
fn documents_round_trip_in_elasticsearch_form() {
    let m = doc(json!({
        "enabled": "true", "roles": "viewer", "type": "role-mapping",
        "rules": {"all": [{"field": {"groups": ["admins"]}}, {"field": {"username": ["a", "b"]}}]},
    }))
    .unwrap();
    let shown = serde_json::to_value(&m).unwrap();
    assert_eq!(
        shown,
        json!({
            "enabled": true, "roles": ["viewer"],
            "rules": {"all": [{"field": {"groups": "admins"}}, {"field": {"username": ["a", "b"]}}]},
            "metadata": {},
        })
    );
    let back: RoleMapping = serde_json::from_value(shown).unwrap();
    assert_eq!(back, m);
}

#[test]
fn mapped_roles_are_the_union_of_enabled_matching_mappings() {
    let mapping = |enabled: bool, roles: &[&str], rules: Value| {
        doc(json!({"enabled": enabled, "roles": roles, "rules": rules})).unwrap()
    };
    let mappings = [
        mapping(
            true,
            &["viewer", "editor"],
            json!({"field": {"realm.name": "saml1"}}),
        ),
        mapping(
            true,
            &["editor", "admin"],
            json!({"field": {"groups": "admins"}}),
        ),
        mapping(false, &["disabled"], json!({"field": {"username": "*"}})),
        mapping(true, &["ops"], json!({"field": {"groups": "ops"}})),
    ];
    assert_eq!(
        mapped_roles(&mappings, &saml_user()),
        ["admin", "editor", "viewer"]
    );
    assert!(mapped_roles(&mappings, &ldap_user()).is_empty());
    assert!(mapped_roles(&[], &saml_user()).is_empty());
}
