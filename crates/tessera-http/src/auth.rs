//! Who is calling: authentication of the `Authorization` header, and the
//! privilege check that follows it.

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tessera_domain::authn::{AuthenticationType, NATIVE_REALM};
use tessera_domain::oauth::{self, ADMIN_SCOPE};
use tessera_domain::privilege::{self, Action, SUPERUSER_ROLE};
use tessera_domain::token::{TokenKind, TokenString};
use tessera_domain::user::{self, UserRecord};
use tessera_domain::{Authentication, TokenRecord};
use zeroize::Zeroizing;

use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// The authenticated caller. As an extractor it runs before the body is
/// read, so an unauthenticated request gets its 401 whatever its body.
pub struct Caller(pub Authentication);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(&parts.uri, |u| &u.0);
        authenticate(state, &parts.headers, uri).await.map(Caller)
    }
}

/// A username and password, from a Basic header or a password grant.
pub struct PasswordCredentials {
    pub username: String,
    pub password: Zeroizing<String>,
}

/// The one administrative-API endpoint a scope-restricted bearer token may
/// call without [`ADMIN_SCOPE`].
const SCOPE_EXEMPT_PATH: &str = "/_security/_authenticate";

/// Authenticates the request's `Authorization` header. `uri` is the
/// request target, quoted in Elasticsearch's 401 messages.
///
/// Every caller is an administrative endpoint (`/_security/*`,
/// `/oauth2/register`), so a bearer token whose OAuth scope is restricted
/// must hold [`ADMIN_SCOPE`] unless the path is `/_security/_authenticate`
/// (RFC 6750 §3.1 `insufficient_scope`).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
) -> ApiResult<Authentication> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(missing_credentials(uri));
    };
    match parse_authorization(value)? {
        Presented::Basic(creds) => {
            let what = format!("REST request [{uri}]");
            authenticate_password(state, &creds, &what).await
        }
        Presented::Bearer(token) => {
            let record = authenticate_bearer(state, token).await?;
            if uri.path() != SCOPE_EXEMPT_PATH
                && !oauth::scope_allows_admin(record.scope.as_deref())
            {
                return Err(ApiError::insufficient_scope(ADMIN_SCOPE));
            }
            Ok(record.subject)
        }
        Presented::ApiKey(credentials) => crate::api_keys::authenticate(state, credentials).await,
        Presented::Other => Err(missing_credentials(uri)),
    }
}

/// What an `Authorization` header presents, before any lookup.
pub enum Presented<'a> {
    /// `Basic`: the decoded username and password.
    Basic(PasswordCredentials),
    /// `Bearer`: the token string as sent.
    Bearer(&'a str),
    /// `ApiKey`: the encoded `id:secret` as sent.
    ApiKey(&'a str),
    /// Any other scheme: treated as no credentials at all.
    Other,
}

/// Parses an `Authorization` header value (scheme names are
/// case-insensitive). Pure: no lookup happens here. A header that is not
/// ASCII, or a `Basic` value that does not decode to `user:password`, is a
/// 401.
pub fn parse_authorization(value: &HeaderValue) -> ApiResult<Presented<'_>> {
    let Ok(value) = value.to_str() else {
        return Err(ApiError::unauthenticated(
            "invalid authorization header: it is not ASCII",
        ));
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let rest = rest.trim();
    Ok(if scheme.eq_ignore_ascii_case("basic") {
        Presented::Basic(decode_basic(rest)?)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Presented::Bearer(rest)
    } else if scheme.eq_ignore_ascii_case("apikey") {
        Presented::ApiKey(rest)
    } else {
        Presented::Other
    })
}

fn missing_credentials(uri: &Uri) -> ApiError {
    ApiError::unauthenticated(format!(
        "missing authentication credentials for REST request [{uri}]"
    ))
}

pub(crate) fn decode_basic(encoded: &str) -> ApiResult<PasswordCredentials> {
    let raw = STANDARD
        .decode(encoded)
        .map_err(|_| ApiError::unauthenticated("invalid basic authentication header encoding"))?;
    let text =
        Zeroizing::new(String::from_utf8(raw).map_err(|_| {
            ApiError::unauthenticated("invalid basic authentication header encoding")
        })?);
    let (username, password) = text
        .split_once(':')
        .ok_or_else(|| ApiError::unauthenticated("invalid basic authentication header value"))?;
    Ok(PasswordCredentials {
        username: username.to_owned(),
        password: Zeroizing::new(password.to_owned()),
    })
}

/// Verifies a username and password against the native realm. `what` ends
/// the failure message: "REST request [/x]" or "action [name]".
pub async fn authenticate_password(
    state: &AppState,
    creds: &PasswordCredentials,
    what: &str,
) -> ApiResult<Authentication> {
    let refuse = || {
        ApiError::unauthenticated(format!(
            "unable to authenticate user [{}] for {what}",
            creds.username
        ))
    };
    let Some(user) = state.store.get_user(&creds.username).await? else {
        return Err(refuse());
    };
    if !user.enabled {
        return Err(refuse());
    }
    if !verify_cached(state, &user, &creds.password).await {
        return Err(refuse());
    }
    Ok(realm_authentication(user))
}

async fn verify_cached(state: &AppState, user: &UserRecord, password: &str) -> bool {
    if state
        .credentials
        .hit(&user.username, password, &user.password_hash)
    {
        return true;
    }
    let (owned, hash) = (
        Zeroizing::new(password.to_owned()),
        user.password_hash.clone(),
    );
    let verified = state
        .hash_blocking(move || user::verify_password(&owned, &hash))
        .await
        .unwrap_or(false);
    if verified {
        state
            .credentials
            .remember(&user.username, password, &user.password_hash);
    }
    verified
}

pub fn realm_authentication(user: UserRecord) -> Authentication {
    Authentication {
        username: user.username,
        roles: user.roles,
        full_name: user.full_name,
        email: user.email,
        metadata: user.metadata,
        enabled: user.enabled,
        authentication_realm: NATIVE_REALM,
        lookup_realm: NATIVE_REALM,
        authentication_type: AuthenticationType::Realm,
        api_key: None,
    }
}

/// The stored pair whose access token `presented` is, if it authenticates.
pub async fn authenticate_bearer(state: &AppState, presented: &str) -> ApiResult<TokenRecord> {
    let token = TokenString::from_presented(presented);
    let invalid = || ApiError::unsuccessful_credentials("oauth2 token: invalid token");
    let Some(hash) = token.hash_as(TokenKind::Access) else {
        return Err(invalid());
    };
    let found = match state.store.find_by_access_now(&hash) {
        Some(hit) => Some(hit),
        None => state.store.find_by_access(&hash).await?,
    };
    let Some(record) = found else {
        return Err(invalid());
    };
    if !record.access_usable(state.now()) {
        return Err(ApiError::token_expired());
    }
    Ok(record)
}

/// Refuses with Elasticsearch's 403 unless `auth`'s roles grant `action`.
pub async fn require(state: &AppState, auth: &Authentication, action: Action) -> ApiResult<()> {
    if holds(state, auth, action).await? {
        Ok(())
    } else {
        Err(ApiError::forbidden(action, &auth.username, &auth.roles))
    }
}

/// Whether `auth` may perform `action`. For an API key that is the
/// intersection of what the key's own descriptors and its owner's roles
/// grant.
pub async fn holds(state: &AppState, auth: &Authentication, action: Action) -> ApiResult<bool> {
    match &auth.api_key {
        None => roles_grant(state, &auth.roles, action).await,
        Some(key_ref) => {
            let Some(key) = state.store.get_api_key(&key_ref.id).await? else {
                return Ok(false);
            };
            Ok(key.own_descriptors_grant(action)
                && roles_grant(state, &key.owner.roles, action).await?)
        }
    }
}

async fn roles_grant(state: &AppState, role_names: &[String], action: Action) -> ApiResult<bool> {
    if role_names.iter().any(|r| r == SUPERUSER_ROLE) {
        return Ok(true);
    }
    if role_names.is_empty() {
        return Ok(false);
    }
    let roles = state.store.get_roles(role_names).await?;
    Ok(privilege::grants(
        roles
            .iter()
            .flat_map(|(_, d)| d.cluster.iter().map(String::as_str)),
        action,
    ))
}
