//! `POST` and `DELETE /_security/oauth2/token`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tessera_domain::privilege::Action;
use tessera_domain::token::{self, TokenString};
use tessera_domain::Authentication;
use tessera_store::engine::Half;
use tessera_store::InvalidateOne;
use zeroize::Zeroizing;

use crate::auth::{self, Caller, Minter, PasswordCredentials};
use crate::body::JsonBody;
use crate::error::{validation_text, ApiError, ApiResult};
use crate::service::{self, Granted, Mint, Refresh, SourceRevoked};
use crate::state::{AppState, TokenInvalidation};
use crate::throttle::ClientIp;

/// The grant types Elasticsearch knows, in its message order.
const GRANT_TYPES: &str = "[password, _kerberos, refresh_token, client_credentials]";

/// A token request: a grant and what it needs.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// `password`, `_kerberos`, `refresh_token` or `client_credentials`.
    grant_type: Option<String>,
    username: Option<String>,
    #[schema(value_type = Option<String>)]
    password: Option<Zeroizing<String>>,
    #[schema(value_type = Option<String>)]
    kerberos_ticket: Option<Zeroizing<String>>,
    scope: Option<String>,
    #[schema(value_type = Option<String>)]
    refresh_token: Option<Zeroizing<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Grant {
    Password,
    ClientCredentials,
    RefreshToken,
    Kerberos,
}

/// A token request that passed validation: each grant with what it needs.
pub(crate) enum Valid {
    Password(PasswordCredentials),
    ClientCredentials,
    RefreshToken(TokenString),
    Kerberos,
}

fn present<T: AsRef<str>>(v: &Option<T>) -> bool {
    v.as_ref().is_some_and(|s| !s.as_ref().is_empty())
}

impl TokenRequest {
    /// Elasticsearch's request validation, message for message.
    pub(crate) fn validate(self) -> Result<Valid, ApiError> {
        let grant = match self.grant_type.as_deref() {
            Some("password") => Some(Grant::Password),
            Some("client_credentials") => Some(Grant::ClientCredentials),
            Some("refresh_token") => Some(Grant::RefreshToken),
            Some("_kerberos") => Some(Grant::Kerberos),
            _ => None,
        };
        let mut errors = Vec::new();
        let (fields, name) = (
            [
                ("username", present(&self.username)),
                ("password", present(&self.password)),
                ("kerberos_ticket", present(&self.kerberos_ticket)),
                ("refresh_token", present(&self.refresh_token)),
            ],
            self.grant_type.as_deref().unwrap_or_default(),
        );
        let (required, forbidden): (&[&str], &[&str]) = match grant {
            Some(Grant::Password) => (
                &["username", "password"],
                &["kerberos_ticket", "refresh_token"],
            ),
            Some(Grant::ClientCredentials) => (
                &[],
                &["username", "password", "kerberos_ticket", "refresh_token"],
            ),
            Some(Grant::RefreshToken) => (
                &["refresh_token"],
                &["username", "password", "kerberos_ticket"],
            ),
            Some(Grant::Kerberos) => (
                &["kerberos_ticket"],
                &["username", "password", "refresh_token"],
            ),
            None => {
                errors.push(format!(
                    "grant_type only supports the values: {GRANT_TYPES}"
                ));
                (&[], &[])
            }
        };
        for (field, is_set) in fields {
            if required.contains(&field) && !is_set {
                errors.push(format!("{field} is missing"));
            }
            if forbidden.contains(&field) && is_set {
                errors.push(format!(
                    "{field} is not supported with the {name} grant_type"
                ));
            }
        }
        if let (Some(grant), true) = (grant, errors.is_empty()) {
            return Ok(self.into_valid(grant));
        }
        let code = if errors.iter().any(|e| e.contains("grant_type")) {
            "unsupported_grant_type"
        } else {
            "invalid_request"
        };
        Err(ApiError::oauth(code, validation_text(&errors)))
    }

    /// The validated request (every field `grant` requires is present).
    fn into_valid(self, grant: Grant) -> Valid {
        match grant {
            Grant::Password => Valid::Password(PasswordCredentials {
                username: self.username.unwrap_or_default(),
                password: self.password.unwrap_or_default(),
            }),
            Grant::ClientCredentials => Valid::ClientCredentials,
            Grant::RefreshToken => Valid::RefreshToken(TokenString::from_presented(
                self.refresh_token.as_deref().map_or("", |t| t.as_str()),
            )),
            Grant::Kerberos => Valid::Kerberos,
        }
    }
}

#[utoipa::path(
    post,
    path = "/_security/oauth2/token",
    tag = crate::openapi::SECURITY,
    request_body = TokenRequest,
    responses(
        (status = 200, description = "A new token pair.", body = crate::openapi::schemas::TokenPair),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn get_token(
    State(state): State<AppState>,
    ClientIp(source): ClientIp,
    Minter(caller, provenance): Minter,
    JsonBody(req): JsonBody<TokenRequest>,
) -> ApiResult<Json<TokenAnswer>> {
    let scope = req.scope.is_some();
    let grant = req.validate()?;
    let action = if matches!(grant, Valid::RefreshToken(_)) {
        Action::TokenRefresh
    } else {
        Action::TokenCreate
    };
    auth::require(&state, &caller, action).await?;
    let granted = match grant {
        Valid::Kerberos => {
            return Err(ApiError::oauth(
                "unsupported_grant_type",
                "the _kerberos grant_type is not supported: Tessera has no Kerberos realm",
            ))
        }
        Valid::RefreshToken(presented) => service::refresh(
            &state,
            Refresh {
                presented,
                caller: provenance.client_of(&caller),
                presenter: &caller.username,
                scope: None,
                registered: None,
            },
        )
        .await?
        .map_err(|refused| ApiError::oauth("invalid_grant", refused.to_string()))?,
        Valid::Password(_) | Valid::ClientCredentials => {
            let mut provenance = provenance;
            let subject = if let Valid::Password(creds) = &grant {
                let (subject, hash) = auth::verify_password(
                    &state,
                    creds,
                    &format!("action [{}]", Action::TokenCreate.name()),
                    source,
                )
                .await?;
                provenance.add_login(&state, &subject.username, &hash);
                subject
            } else if tessera_domain::service_account::of_authentication(&caller).is_some() {
                // A token for the account itself would outlive the
                // deletion of the service token that minted it.
                return Err(ApiError::illegal_argument(
                    "OAuth2 token creation is not supported for service accounts",
                ));
            } else {
                caller.clone()
            };
            let granted = service::issue(
                &state,
                Mint {
                    subject: &subject,
                    client: provenance.client_of(&caller),
                    oauth_client: None,
                    scope: None,
                    with_refresh: matches!(grant, Valid::Password(_)),
                    provenance: &provenance,
                    // A token of a caller that runs as another user keeps
                    // who ran it: it cannot run as anyone else.
                    metadata: match grant {
                        Valid::ClientCredentials => provenance
                            .run_by
                            .as_ref()
                            .map(tessera_domain::run_as::RunBy::token_metadata),
                        _ => None,
                    },
                },
            )
            .await?
            .map_err(|SourceRevoked| {
                ApiError::unsuccessful_credentials(
                    "the credentials that authorised this request were revoked",
                )
            })?;
            // On creation Elasticsearch describes the subject as its realm
            // authenticated it; the stored copy says `token`.
            Granted {
                subject: Authentication {
                    authentication_type: tessera_domain::AuthenticationType::Realm,
                    ..granted.subject
                },
                ..granted
            }
        }
    };
    Ok(Json(TokenAnswer { granted, scope }))
}

/// The answer to a token request: the pair, its lifetime, `scope` when
/// the request had one, and who the pair stands for. Written straight
/// into the response (no intermediate JSON tree), with the token strings
/// read from where they are kept.
pub struct TokenAnswer {
    granted: Granted,
    scope: bool,
}

impl Serialize for TokenAnswer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Granted {
            pair,
            subject,
            expires_in,
            ..
        } = &self.granted;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("access_token", pair.access.expose())?;
        map.serialize_entry("type", "Bearer")?;
        map.serialize_entry("expires_in", expires_in)?;
        if let Some(refresh) = &pair.refresh {
            map.serialize_entry("refresh_token", refresh.expose())?;
        }
        if self.scope {
            map.serialize_entry("scope", "full")?;
        }
        map.serialize_entry("authentication", subject)?;
        map.end()
    }
}

/// Which tokens to invalidate: one token, or a user's or realm's.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = InvalidateTokenRequest)]
pub struct InvalidateRequest {
    #[schema(value_type = Option<String>)]
    token: Option<Zeroizing<String>>,
    #[schema(value_type = Option<String>)]
    refresh_token: Option<Zeroizing<String>>,
    realm_name: Option<String>,
    username: Option<String>,
}

pub(crate) enum Target {
    Access(TokenString),
    Refresh(TokenString),
    Matching {
        username: Option<String>,
        realm: Option<String>,
    },
}

impl InvalidateRequest {
    pub(crate) fn validate(self) -> ApiResult<Target> {
        if self.token.is_some() && self.refresh_token.is_some() {
            return Err(ApiError::illegal_argument(
                "only one of [token, refresh_token] may be sent per request",
            ));
        }
        let token_type_given = self.token.is_some() || self.refresh_token.is_some();
        let token_string = self
            .token
            .as_ref()
            .or(self.refresh_token.as_ref())
            .map(|s| s.as_str().to_owned());
        let has_text = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.trim().is_empty());
        let mut errors = Vec::new();
        if has_text(&self.realm_name) || has_text(&self.username) {
            if has_text(&token_string) {
                errors.push(
                    "token string must not be provided when realm name or username is specified"
                        .to_string(),
                );
            }
            if token_type_given {
                errors.push(
                    "token type must not be provided when realm name or username is specified"
                        .to_string(),
                );
            }
        } else if token_string.as_deref().is_none_or(str::is_empty) {
            errors.push(
                "token string must be provided when not specifying a realm name or a username"
                    .to_string(),
            );
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(&errors));
        }
        Ok(match (self.token, self.refresh_token) {
            (Some(t), _) => Target::Access(TokenString::from_presented(&t)),
            (_, Some(t)) => Target::Refresh(TokenString::from_presented(&t)),
            _ => Target::Matching {
                username: self.username.filter(|s| !s.trim().is_empty()),
                realm: self.realm_name.filter(|s| !s.trim().is_empty()),
            },
        })
    }
}

fn counts(invalidated: u64, previously: u64) -> Value {
    json!({
        "invalidated_tokens": invalidated,
        "previously_invalidated_tokens": previously,
        "error_count": 0,
    })
}

#[utoipa::path(
    delete,
    path = "/_security/oauth2/token",
    tag = crate::openapi::SECURITY,
    request_body = InvalidateRequest,
    responses(
        (status = 200, description = "What was invalidated.", body = crate::openapi::schemas::InvalidatedTokens),
        (status = 404, description = "Nothing matched.", body = crate::openapi::schemas::InvalidatedTokens),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn invalidate_token(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(req): JsonBody<InvalidateRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let target = req.validate()?;
    auth::require(&state, &caller, Action::TokenInvalidate).await?;
    let (token, is_access) = match target {
        Target::Matching { username, realm } => {
            let c = state
                .store
                .invalidate_matching(username.as_deref(), realm.as_deref(), state.now())
                .await?;
            return Ok((
                StatusCode::OK,
                Json(counts(c.invalidated, c.previously_invalidated)),
            ));
        }
        Target::Access(t) => (t, true),
        Target::Refresh(t) => (t, false),
    };
    let not_found = || ApiError::body(StatusCode::NOT_FOUND, counts(0, 0));
    if !token::decodes_as_base64(token.expose()) {
        return Err(not_found());
    }
    if !state.store.tokens_ever_issued().await? {
        // Elasticsearch: the tokens index does not exist yet.
        return Err(ApiError::bad_request(
            "security_exception",
            "failed to invalidate token",
        ));
    }
    let hash = token.hash();
    let half = if is_access {
        Half::Access
    } else {
        Half::Refresh
    };
    let outcome = match (state.settings.token_invalidation, half) {
        (TokenInvalidation::Token, half) => state.store.invalidate_token(half, &hash).await?,
        (TokenInvalidation::Family, Half::Access) => state.store.invalidate_access(&hash).await?,
        (TokenInvalidation::Family, Half::Refresh) => state.store.invalidate_refresh(&hash).await?,
    };
    match outcome {
        InvalidateOne::NotFound => Err(not_found()),
        InvalidateOne::Invalidated => Ok((StatusCode::OK, Json(counts(1, 0)))),
        InvalidateOne::AlreadyInvalidated => Ok((StatusCode::OK, Json(counts(0, 1)))),
    }
}
