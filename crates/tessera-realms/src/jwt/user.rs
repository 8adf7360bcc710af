//! What a valid token's claims make of a user, by the realm's `claims.*`
//! settings.

use serde_json::{Map, Value};

use super::settings::{JwtRealmConfig, TokenType};
use crate::identity::Identity;
use crate::jose::Claims;

/// The prefix of the claims in the user's metadata (`jwt_claim_sub`, …),
/// as Elasticsearch's JWT realm names them.
pub const METADATA_PREFIX: &str = "jwt_claim_";

/// The user a token names, and until when.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtUser {
    /// The user, whose metadata is `jwt_token_type` and every claim of a
    /// simple type (string, number, boolean, or an array of those) as
    /// `jwt_claim_<name>`.
    pub identity: Identity,
    /// The token's `exp`, in seconds since the epoch.
    pub exp: u64,
}

/// Why claims that passed validation name no user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MissingPrincipal(pub String);

impl JwtUser {
    /// The user of validated claims. The principal is the `claims.principal`
    /// claim (default `sub`); when that is `sub` and the token has none,
    /// the `fallback_claims.sub` claim.
    pub fn from_claims(
        config: &JwtRealmConfig,
        claims: &Claims,
    ) -> Result<JwtUser, MissingPrincipal> {
        let mut principal = first_string(claims.get(&config.principal_claim));
        if principal.is_none() && config.principal_claim == "sub" {
            if let Some(fallback) = &config.fallback_sub {
                principal = first_string(claims.get(fallback));
            }
        }
        let principal = principal.filter(|p| !p.is_empty()).ok_or_else(|| {
            MissingPrincipal(format!(
                "the token has no string claim [{}] for the principal",
                config.principal_claim
            ))
        })?;
        let groups = match config.groups_claim.as_ref().and_then(|g| claims.get(g)) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let claim = |name: &Option<String>| name.as_ref().and_then(|n| first_string(claims.get(n)));
        let mut metadata = Map::new();
        let token_type = match config.token_type {
            TokenType::IdToken => "id_token",
            TokenType::AccessToken => "access_token",
        };
        metadata.insert("jwt_token_type".into(), Value::from(token_type));
        for (name, value) in claims {
            if is_simple(value) {
                metadata.insert(format!("{METADATA_PREFIX}{name}"), value.clone());
            }
        }
        let exp = crate::jose::validate::numeric_date(claims, "exp")
            .ok()
            .flatten()
            .unwrap_or(0);
        Ok(JwtUser {
            identity: Identity {
                principal,
                groups,
                name: claim(&config.name_claim),
                mail: claim(&config.mail_claim),
                dn: claim(&config.dn_claim),
                metadata,
            },
            exp,
        })
    }
}

fn first_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => items.first()?.as_str().map(str::to_owned),
        _ => None,
    }
}

fn is_simple(v: &Value) -> bool {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => true,
        Value::Array(items) => items
            .iter()
            .all(|i| matches!(i, Value::String(_) | Value::Number(_) | Value::Bool(_))),
        _ => false,
    }
}
