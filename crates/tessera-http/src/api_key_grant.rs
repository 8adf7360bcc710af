//! `POST /_security/api_key/grant`: a key created for another user, who
//! proves themselves with a password or an access token.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use tessera_domain::oauth::ADMIN_SCOPE;
use tessera_domain::privilege::{self, Action, SUPERUSER_ROLE};
use tessera_domain::Authentication;
use zeroize::Zeroizing;

use crate::api_keys::{store_new_key, CreateRequest};
use crate::auth::{self, Caller, PasswordCredentials};
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::throttle::ClientIp;

/// A grant: whose key it is (by password or access token) and the key.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = GrantApiKeyRequest)]
pub struct GrantRequest {
    /// `password` or `access_token`.
    grant_type: Option<String>,
    username: Option<String>,
    #[schema(value_type = Option<String>)]
    password: Option<Zeroizing<String>>,
    #[schema(value_type = Option<String>)]
    access_token: Option<Zeroizing<String>>,
    /// A user the granted user may run as, who then owns the key.
    run_as: Option<String>,
    api_key: CreateRequest,
}

/// How the granted user proves themselves.
enum Proof {
    Password(PasswordCredentials),
    AccessToken(Zeroizing<String>),
}

impl GrantRequest {
    /// Elasticsearch's validation of the grant.
    fn proof(&mut self) -> ApiResult<Proof> {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        let secret = |v: &Option<Zeroizing<String>>| v.as_ref().is_some_and(|s| !s.is_empty());
        let grant = self.grant_type.clone().unwrap_or_default();
        let fields = [
            ("username", set(&self.username)),
            ("password", secret(&self.password)),
            ("access_token", secret(&self.access_token)),
        ];
        let (required, unsupported): (&[&str], &[&str]) = match grant.as_str() {
            "password" => (&["username", "password"], &["access_token"]),
            "access_token" => (&["access_token"], &["username", "password"]),
            "" => {
                return Err(ApiError::validation(&["[grant_type] is required".into()]));
            }
            other => {
                return Err(ApiError::validation(&[format!(
                    "grant_type [{other}] is not supported"
                )]));
            }
        };
        let mut errors = Vec::new();
        let is_set = |name: &str| fields.iter().any(|(f, set)| *f == name && *set);
        for field in required.iter().filter(|f| !is_set(f)) {
            errors.push(format!("[{field}] is required"));
        }
        for field in unsupported.iter().filter(|f| is_set(f)) {
            errors.push(format!(
                "[{field}] is not supported for grant_type [{grant}]"
            ));
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(&errors));
        }
        Ok(if grant == "password" {
            Proof::Password(PasswordCredentials {
                username: self.username.take().unwrap_or_default(),
                password: self.password.take().unwrap_or_default(),
            })
        } else {
            Proof::AccessToken(self.access_token.take().unwrap_or_default())
        })
    }
}

#[utoipa::path(
    post,
    path = "/_security/api_key/grant",
    tag = crate::openapi::SECURITY,
    request_body = GrantRequest,
    responses(
        (status = 200, description = "The new key, owned by the granted user.", body = crate::openapi::schemas::CreatedApiKey),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn grant(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ClientIp(source): ClientIp,
    JsonBody(mut req): JsonBody<GrantRequest>,
) -> ApiResult<Json<Value>> {
    let proof = req.proof()?;
    let lifetime = req.api_key.validate()?;
    auth::require(&state, &caller, Action::ApiKeyGrant).await?;
    let granted = match proof {
        // The password is verified off the async threads and counts
        // toward the guessing throttle, as every password does.
        Proof::Password(creds) => {
            let what = format!("action [{}]", Action::ApiKeyGrant.name());
            auth::verify_password(&state, &creds, &what, source)
                .await?
                .0
        }
        // The token grants no more than it could create itself: a key
        // outlives it, so neither a scope without `tessera:admin` nor
        // authority borrowed from a key or another token may become one.
        Proof::AccessToken(token) => {
            let record = auth::authenticate_bearer(&state, &token).await?;
            if !auth::scope_allows_admin(&record) {
                return Err(ApiError::illegal_argument(format!(
                    "the access token's scope does not include [{ADMIN_SCOPE}], which creating an API key needs"
                )));
            }
            if auth::is_borrowed(&record) {
                return Err(borrowed());
            }
            record.subject
        }
    };
    if granted.api_key.is_some() {
        return Err(borrowed());
    }
    let owner = match req.run_as.filter(|r| !r.is_empty()) {
        None => granted,
        Some(target) => run_as(&state, &granted, &target).await?,
    };
    store_new_key(&state, &owner, req.api_key, lifetime).await
}

fn borrowed() -> ApiError {
    ApiError::illegal_argument(
        "an API key, or a token minted by an API key or by another token, cannot create API keys; authenticate as a user",
    )
}

/// The user `granted` runs as: only a native user its roles' `run_as`
/// names (a pattern may match), and only if that user exists and is enabled.
async fn run_as(
    state: &AppState,
    granted: &Authentication,
    target: &str,
) -> ApiResult<Authentication> {
    let mut patterns: Vec<String> = granted
        .roles
        .iter()
        .filter_map(|r| privilege::built_in_role(r))
        .flat_map(|d| d.run_as)
        .collect();
    if !granted.roles.iter().any(|r| r == SUPERUSER_ROLE) {
        for (_, d) in state.store.get_roles(&granted.roles).await? {
            patterns.extend(d.run_as);
        }
    }
    let allowed = patterns
        .iter()
        .any(|p| tessera_domain::query::wildcard(p, target));
    let user = if allowed {
        state.store.get_user(target).await?.filter(|u| u.enabled)
    } else {
        None
    };
    let Some(user) = user else {
        state.audit.access_denied(granted, Action::ApiKeyGrant);
        return Err(ApiError::es(
            axum::http::StatusCode::FORBIDDEN,
            "security_exception",
            format!(
                "action [{}] is unauthorized for user [{}] with effective roles [{}], because user [{}] is unauthorized to run as [{target}]",
                Action::ApiKeyGrant.name(),
                granted.username,
                granted.roles.join(","),
                granted.username,
            ),
        ));
    };
    Ok(auth::realm_authentication(user))
}
