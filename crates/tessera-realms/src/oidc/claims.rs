//! From claims to a user: the userinfo answer merged into the ID token's
//! claims, the user's properties read through the realm's `claims.*` and
//! `claim_patterns.*`, and Elasticsearch's `oidc(<claim>)` metadata.

use serde_json::{Map, Value};

use super::error::{OidcError, Rule};
use super::settings::{ClaimRule, OidcRealmConfig};
use crate::identity::Identity;

/// Merges the userinfo answer into the ID token's claims, as
/// Elasticsearch does: its `sub` must be the ID token's; a claim only in
/// userinfo is added; objects present in both are merged the same way;
/// lists present in both get the userinfo values they lack; for any
/// other clash the ID token (signed) wins.
pub fn merge_userinfo(
    id_claims: &mut Map<String, Value>,
    userinfo: Map<String, Value>,
) -> Result<(), OidcError> {
    let id_sub = id_claims.get("sub").and_then(Value::as_str);
    let info_sub = userinfo.get("sub").and_then(Value::as_str);
    match (id_sub, info_sub) {
        (Some(a), Some(b)) if a == b => {}
        (_, None) => {
            return Err(OidcError::new(
                Rule::Userinfo,
                "the userinfo answer has no sub",
            ))
        }
        (a, Some(b)) => {
            return Err(OidcError::new(
                Rule::Userinfo,
                format!(
                    "the userinfo sub [{b}] is not the ID token's sub [{}]",
                    a.unwrap_or("")
                ),
            ))
        }
    }
    merge(id_claims, userinfo);
    Ok(())
}

fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (None, value) => {
                into.insert(key, value);
            }
            (Some(Value::Object(a)), Value::Object(b)) => merge(a, b),
            (Some(Value::Array(a)), Value::Array(b)) => {
                for v in b {
                    if !a.contains(&v) {
                        a.push(v);
                    }
                }
            }
            (Some(_), _) => {}
        }
    }
}

/// The string values of a claim: a string, a number or a boolean as
/// text, or each such member of a list.
fn values(claims: &Map<String, Value>, claim: &str) -> Vec<String> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match claims.get(claim) {
        Some(Value::Array(list)) => list.iter().filter_map(one).collect(),
        Some(v) => one(v).into_iter().collect(),
        None => Vec::new(),
    }
}

/// The values of a property: the claim's values, each through the
/// pattern when there is one (values it does not match are dropped).
fn apply(rule: &ClaimRule, claims: &Map<String, Value>) -> Vec<String> {
    values(claims, &rule.claim)
        .into_iter()
        .filter_map(|v| match &rule.pattern {
            None => Some(v),
            Some(re) => re
                .captures(&v)
                .and_then(|c| c.get(1))
                .map(|m| m.as_str().to_owned()),
        })
        .filter(|v| !v.is_empty())
        .collect()
}

fn first(rule: Option<&ClaimRule>, claims: &Map<String, Value>) -> Option<String> {
    rule.and_then(|r| apply(r, claims).into_iter().next())
}

/// The user the (validated, merged) claims name.
pub fn identity(
    config: &OidcRealmConfig,
    claims: &Map<String, Value>,
) -> Result<Identity, OidcError> {
    let principal = first(Some(&config.principal), claims).ok_or_else(|| {
        OidcError::new(
            Rule::Principal,
            format!(
                "the principal claim [{}] is missing or does not match claim_patterns.principal",
                config.principal.claim
            ),
        )
    })?;
    let metadata = if config.populate_user_metadata {
        claim_metadata(claims)
    } else {
        Map::new()
    };
    Ok(Identity {
        principal,
        groups: config
            .groups
            .as_ref()
            .map(|r| apply(r, claims))
            .unwrap_or_default(),
        name: first(config.name_claim.as_ref(), claims),
        mail: first(config.mail.as_ref(), claims),
        dn: first(config.dn.as_ref(), claims),
        metadata,
    })
}

/// Elasticsearch's user metadata of an OIDC login: `oidc(<claim>)` for
/// each claim that is a string, a boolean, a number, or a list of those.
pub fn claim_metadata(claims: &Map<String, Value>) -> Map<String, Value> {
    let simple = |v: &Value| matches!(v, Value::String(_) | Value::Bool(_) | Value::Number(_));
    claims
        .iter()
        .filter(|(_, v)| match v {
            Value::Array(list) => list.iter().all(simple),
            v => simple(v),
        })
        .map(|(k, v)| (format!("oidc({k})"), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::settings::OidcRealmSettings;
    use crate::testing::oidc::settings;
    use serde_json::json;

    /// A realm whose principal is the claim `principal`, with `extra`.
    fn config(principal: &str, extra: &str) -> OidcRealmConfig {
        let base = settings(
            "https://op.example.org",
            "dashboard",
            "https://dashboard.example.org/cb",
        )
        .replace(
            "claims.principal = \"sub\"",
            &format!("claims.principal = \"{principal}\""),
        );
        OidcRealmSettings::from_toml(&format!("{base}{extra}"))
            .unwrap()
            .validate("oidc1")
            .unwrap()
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn userinfo_is_merged_and_the_id_token_wins() {
        let mut id =
            obj(json!({"sub": "alice", "email": "a@id", "groups": ["a"], "addr": {"c": "FR"}}));
        merge_userinfo(
            &mut id,
            obj(json!({"sub": "alice", "email": "a@info", "name": "Alice", "groups": ["a", "b"], "addr": {"c": "DE", "z": "1"}})),
        )
        .unwrap();
        assert_eq!(
            Value::Object(id),
            json!({"sub": "alice", "email": "a@id", "groups": ["a", "b"], "addr": {"c": "FR", "z": "1"}, "name": "Alice"})
        );
    }

    #[test]
    fn userinfo_of_another_subject_is_refused() {
        for info in [
            json!({"sub": "mallory"}),
            json!({"email": "x"}),
            json!({"sub": 1}),
        ] {
            let mut id = obj(json!({"sub": "alice"}));
            let e = merge_userinfo(&mut id, obj(info)).unwrap_err();
            assert_eq!(e.rule, Rule::Userinfo);
        }
    }

    #[test]
    fn claims_make_the_user() {
        let c = config(
            "email",
            r#"claims.groups = "groups"
claims.name = "name"
claims.mail = "email"
claim_patterns.principal = "^([^@]+)@example\\.org$"
claim_patterns.groups = "^team-(.+)$""#,
        );
        let claims = obj(
            json!({"sub": "42", "email": "alice@example.org", "name": "Alice",
            "groups": ["team-a", "other", "team-b"], "email_verified": true, "n": 3, "addr": {"x": 1}, "mixed": [1, {}]}),
        );
        let id = identity(&c, &claims).unwrap();
        assert_eq!(id.principal, "alice");
        assert_eq!(id.groups, ["a", "b"]);
        assert_eq!(id.name.as_deref(), Some("Alice"));
        assert_eq!(id.mail.as_deref(), Some("alice@example.org"));
        assert_eq!(id.metadata.get("oidc(email_verified)"), Some(&json!(true)));
        assert_eq!(id.metadata.get("oidc(n)"), Some(&json!(3)));
        assert_eq!(
            id.metadata.get("oidc(groups)"),
            Some(&json!(["team-a", "other", "team-b"]))
        );
        assert!(!id.metadata.contains_key("oidc(addr)"));
        assert!(!id.metadata.contains_key("oidc(mixed)"));

        let other = obj(json!({"sub": "42", "email": "alice@elsewhere.org"}));
        assert_eq!(identity(&c, &other).unwrap_err().rule, Rule::Principal);
        let plain = config("sub", "populate_user_metadata = false");
        let id = identity(&plain, &other).unwrap();
        assert_eq!(id.principal, "42");
        assert!(id.metadata.is_empty());
        assert_eq!(
            identity(&plain, &obj(json!({"email": "x"})))
                .unwrap_err()
                .rule,
            Rule::Principal
        );
    }
}
