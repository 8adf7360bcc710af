//! Role mappings: which roles users of external realms get.
//!
//! A mapping is Elasticsearch's role-mapping document: `enabled`, `roles`,
//! `rules` (see [`rules`]) and free `metadata`. A user authenticated by a
//! realm that has no roles of its own (SAML, OIDC, …) gets the union of the
//! roles of every enabled mapping whose rules match it ([`mapped_roles`]).
//!
//! `role_templates` (Mustache templates that compute role names) are not
//! supported: a mapping that gives any is refused with a 400 that says so.

mod dn;
pub mod rules;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

pub use rules::{FieldRule, FieldValue, Rule};

/// A role mapping as stored and as `GET /_security/role_mapping` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleMapping {
    pub enabled: bool,
    pub roles: Vec<String>,
    pub rules: Rule,
    pub metadata: Map<String, Value>,
}

/// What a realm knows of a user it authenticated, as the rules see it:
/// Elasticsearch's `UserData`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserData {
    pub username: String,
    /// The user's distinguished name, when the realm has one.
    pub dn: Option<String>,
    pub groups: Vec<String>,
    /// The name of the realm that authenticated the user (`saml1`).
    pub realm_name: String,
    /// The user's metadata (`saml_nameid`, `saml(<attribute>)`, …).
    pub metadata: Map<String, Value>,
}

/// Why a mapping was refused, in Elasticsearch's terms: each variant is one
/// of its exception types (see [`MappingError::kind`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// The document's shape (`x_content_parse_exception`).
    #[error("{0}")]
    Shape(String),
    /// A required field is absent (`parsing_exception`).
    #[error("{0}")]
    Missing(String),
    /// The rules DSL (`parse_exception`).
    #[error("{0}")]
    Rules(String),
    /// A bad value: a pattern, an empty field (`illegal_argument_exception`).
    #[error("{0}")]
    Illegal(String),
    /// Request validation (`action_request_validation_exception`), every
    /// problem found.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl MappingError {
    /// Elasticsearch's exception type for this error.
    pub fn kind(&self) -> &'static str {
        match self {
            MappingError::Shape(_) => "x_content_parse_exception",
            MappingError::Missing(_) => "parsing_exception",
            MappingError::Rules(_) => "parse_exception",
            MappingError::Illegal(_) => "illegal_argument_exception",
            MappingError::Invalid(_) => "action_request_validation_exception",
        }
    }
}

/// The message for a mapping that gives `role_templates`.
pub const ROLE_TEMPLATES_UNSUPPORTED: &str =
    "role_templates are not supported by Tessera; give the role names in [roles]";

fn unsupported_type(field: &str, v: &Value) -> MappingError {
    MappingError::Shape(format!(
        "[role-mapping] {field} doesn't support values of type: {}",
        rules::token(v)
    ))
}

fn strings(field: &str, v: &Value) -> Result<Vec<String>, MappingError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| unsupported_type(field, item))
            })
            .collect(),
        other => Err(unsupported_type(field, other)),
    }
}

impl RoleMapping {
    /// Parses and validates the body of `PUT /_security/role_mapping/{name}`
    /// as Elasticsearch does: the shape first (unknown fields, types), then
    /// the required fields, then the request's validation.
    pub fn parse(name: &str, body: &Value) -> Result<RoleMapping, MappingError> {
        let Some(object) = body.as_object() else {
            return Err(MappingError::Shape(format!(
                "[role-mapping] expected an object but found [{}] instead",
                rules::token(body)
            )));
        };
        let (mut enabled, mut roles, mut templates, mut rules, mut metadata) =
            (None, None, None, None, Map::new());
        for (key, v) in object {
            match key.as_str() {
                "enabled" => {
                    enabled = Some(match v {
                        Value::Bool(b) => *b,
                        Value::String(s) if s == "true" => true,
                        Value::String(s) if s == "false" => false,
                        other => return Err(unsupported_type(key, other)),
                    })
                }
                "roles" => roles = Some(strings(key, v)?),
                "role_templates" => match v {
                    Value::Array(items) if items.is_empty() => templates = Some(()),
                    Value::Array(_) | Value::Object(_) => {
                        return Err(MappingError::Illegal(ROLE_TEMPLATES_UNSUPPORTED.into()))
                    }
                    other => return Err(unsupported_type(key, other)),
                },
                "rules" => match v {
                    Value::Object(_) => rules = Some(Rule::parse_bounded(name, v)?),
                    other => return Err(unsupported_type(key, other)),
                },
                "metadata" => match v {
                    Value::Object(m) => metadata = m.clone(),
                    other => return Err(unsupported_type(key, other)),
                },
                // Written by Elasticsearch into its index; ignored as it does.
                "doc_type" | "type" if v.is_string() => {}
                other => {
                    return Err(MappingError::Shape(format!(
                        "[role-mapping] unknown field [{other}]"
                    )))
                }
            }
        }
        let missing = |field: &str| {
            MappingError::Missing(format!(
                "failed to parse role-mapping [{name}]. missing field [{field}]"
            ))
        };
        if roles.is_none() && templates.is_none() {
            return Err(missing("roles"));
        }
        let rules = rules.ok_or_else(|| missing("rules"))?;
        let enabled = enabled.ok_or_else(|| missing("enabled"))?;
        let roles = roles.unwrap_or_default();
        let mut problems = Vec::new();
        if roles.is_empty() {
            problems.push("role-mapping roles or role-templates are missing".to_owned());
        }
        if metadata.keys().any(|k| k.starts_with('_')) {
            problems.push("metadata keys may not start with [_]".to_owned());
        }
        if !problems.is_empty() {
            return Err(MappingError::Invalid(problems));
        }
        Ok(RoleMapping {
            enabled,
            roles,
            rules,
            metadata,
        })
    }

    /// Whether this mapping gives its roles to `user`.
    pub fn applies_to(&self, user: &UserData) -> bool {
        self.enabled && self.rules.matches(user)
    }
}

impl<'de> Deserialize<'de> for RoleMapping {
    /// The stored form is the one [`Serialize`] writes, parsed again.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        RoleMapping::parse("stored", &v).map_err(serde::de::Error::custom)
    }
}

/// The roles `user` gets from `mappings`: the union of the roles of the
/// enabled mappings whose rules match, sorted, each once.
pub fn mapped_roles<'a>(
    mappings: impl IntoIterator<Item = &'a RoleMapping>,
    user: &UserData,
) -> Vec<String> {
    mappings
        .into_iter()
        .filter(|m| m.applies_to(user))
        .flat_map(|m| m.roles.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}
