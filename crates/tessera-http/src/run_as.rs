//! Run-as: a caller whose roles' `run_as` patterns cover a native user's
//! name submits a request as that user by naming it in the
//! `es-security-runas-user` header (Elasticsearch's "submitting requests on
//! behalf of other users"). The request then has the target's roles;
//! `_authenticate` shows the target, the caller's `authentication_realm`
//! and `authentication_type`, and the target's realm as `lookup_realm`.
//!
//! Resolved once, where the caller is authenticated
//! ([`crate::auth::authenticate_with_provenance`], which asks [`target`]
//! and makes the request the target's), so it applies to every endpoint;
//! a request without the header costs one header lookup.
//!
//! As in Elasticsearch:
//! - users, tokens and API keys may run as (an API key only for names that
//!   both its own descriptors, when it has any, and its owner's roles
//!   cover); a token minted while running as may not run as anyone else:
//!   the header is then ignored;
//! - an empty header is a 401 for the caller;
//! - a target the caller may not run as, or that does not exist, is the
//!   same 403 (`… because user [caller] is unauthorized to run as
//!   [target]`), so that existence does not leak; a disabled target the
//!   caller may run as is a 401 for the caller, as Elasticsearch answers.
//!   Elasticsearch looks the target up before it checks the privilege;
//!   here the privilege is checked first, so that a caller without it
//!   cannot tell a disabled user from any other.

use axum::http::{HeaderName, HeaderValue, Method, Uri};
use tessera_domain::privilege::{self, SUPERUSER_ROLE};
use tessera_domain::run_as;
use tessera_domain::user::UserRecord;
use tessera_domain::Authentication;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The run-as request header.
pub static HEADER: HeaderName = HeaderName::from_static(run_as::HEADER);

/// The user the header names, if `who` may run as it: the refusals are
/// audited and answered here; the caller (`crate::auth`) makes the
/// request the target's.
pub async fn target(
    state: &AppState,
    uri: &Uri,
    value: &HeaderValue,
    who: &Authentication,
) -> ApiResult<UserRecord> {
    let method = crate::request_context::with_current(|c| c.method.clone()).unwrap_or_default();
    let action = action_name(&method, uri.path());
    let Some(target) = value.to_str().ok().filter(|t| !t.is_empty()) else {
        state.audit.run_as_denied(who, "", &action);
        return Err(unable_to_authenticate(who, uri));
    };
    let user = if may_run_as(state, who, target).await? {
        state.store.get_user(target).await?
    } else {
        None
    };
    match user {
        None => {
            state.audit.run_as_denied(who, target, &action);
            Err(denied(&action, who, target))
        }
        Some(user) if !user.enabled => Err(unable_to_authenticate(who, uri)),
        Some(user) => {
            state.audit.run_as_granted(who, &user.username, &action);
            Ok(user)
        }
    }
}

/// The 401 Elasticsearch answers for the caller when the run-as fails
/// during authentication (an empty header, a disabled target).
fn unable_to_authenticate(who: &Authentication, uri: &Uri) -> ApiError {
    ApiError::unauthenticated(format!(
        "unable to authenticate user [{}] for REST request [{uri}]",
        who.username
    ))
}

/// Elasticsearch's 403 of a refused run-as.
fn denied(action: &str, who: &Authentication, target: &str) -> ApiError {
    let user = match &who.api_key {
        Some(key) => format!("API key id [{}] of user [{}]", key.id, who.username),
        None => format!("user [{}]", who.username),
    };
    ApiError::es(
        axum::http::StatusCode::FORBIDDEN,
        "security_exception",
        format!(
            "action [{action}] is unauthorized for {user} with effective roles [{}], because {user} is unauthorized to run as [{target}]",
            who.roles.join(",")
        ),
    )
}

/// Whether `who`'s roles let it run as `target`. For an API key: what its
/// own descriptors (when it has any) and its owner's roles both cover.
pub async fn may_run_as(state: &AppState, who: &Authentication, target: &str) -> ApiResult<bool> {
    let Some(key_ref) = &who.api_key else {
        return roles_run_as(state, &who.roles, target).await;
    };
    let Some(key) = state.store.get_api_key(&key_ref.id).await? else {
        return Ok(false);
    };
    let own = key.role_descriptors.is_empty()
        || run_as::allows(
            key.role_descriptors
                .values()
                .flat_map(|d| d.run_as.iter().map(String::as_str)),
            target,
        );
    Ok(own && roles_run_as(state, &key.owner.roles, target).await?)
}

async fn roles_run_as(state: &AppState, role_names: &[String], target: &str) -> ApiResult<bool> {
    if role_names.iter().any(|r| r == SUPERUSER_ROLE) {
        return Ok(true);
    }
    let mut patterns: Vec<String> = role_names
        .iter()
        .filter_map(|r| privilege::built_in_role(r))
        .flat_map(|d| d.run_as)
        .collect();
    let stored: Vec<String> = role_names
        .iter()
        .filter(|r| !privilege::BUILT_IN_ROLES.contains(&r.as_str()))
        .cloned()
        .collect();
    if !stored.is_empty() {
        for (_, d) in state.store.get_roles(&stored).await? {
            patterns.extend(d.run_as);
        }
    }
    Ok(run_as::allows(patterns.iter().map(String::as_str), target))
}

/// The name of the Elasticsearch action a request is, for the words of a
/// refused run-as (which Elasticsearch decides when it authorizes that
/// action). Requests outside the security API are named by method and
/// path.
pub fn action_name(method: &Method, path: &str) -> String {
    let security = |name: &str| format!("cluster:admin/xpack/security/{name}");
    let (get, delete) = (method == Method::GET, method == Method::DELETE);
    let crud = |what: &str| {
        security(&format!(
            "{what}/{}",
            if get {
                "get"
            } else if delete {
                "delete"
            } else {
                "put"
            }
        ))
    };
    if path == "/" {
        return "cluster:monitor/main".into();
    }
    let Some(rest) = path.strip_prefix("/_security/") else {
        return format!("{method} {path}");
    };
    let mut segments = rest.split('/');
    let first = segments.next().unwrap_or_default();
    let last = rest.rsplit('/').next().unwrap_or_default();
    match first {
        "_authenticate" => security("user/authenticate"),
        "oauth2" if delete => security("token/invalidate"),
        "oauth2" => security("token/create"),
        "user" if last == "_password" => security("user/change_password"),
        "user" if last == "_enable" || last == "_disable" => security("user/set_enabled"),
        "user" => crud("user"),
        "role_mapping" => crud("role_mapping"),
        "role" => crud("role"),
        "privilege" => security("privilege/builtin/get"),
        "api_key" if last == "grant" => security("api_key/grant"),
        "api_key" if get => security("api_key/get"),
        "api_key" if delete => security("api_key/invalidate"),
        "api_key" => security("api_key/create"),
        "saml" | "oidc" => security(&format!("{first}/{last}")),
        _ => format!("{method} {path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_named_by_their_elasticsearch_action() {
        let cases = [
            (
                Method::GET,
                "/_security/_authenticate",
                "cluster:admin/xpack/security/user/authenticate",
            ),
            (Method::GET, "/", "cluster:monitor/main"),
            (
                Method::POST,
                "/_security/oauth2/token",
                "cluster:admin/xpack/security/token/create",
            ),
            (
                Method::DELETE,
                "/_security/oauth2/token",
                "cluster:admin/xpack/security/token/invalidate",
            ),
            (
                Method::PUT,
                "/_security/user/bob/_password",
                "cluster:admin/xpack/security/user/change_password",
            ),
            (
                Method::GET,
                "/_security/role_mapping/m",
                "cluster:admin/xpack/security/role_mapping/get",
            ),
            (
                Method::DELETE,
                "/_security/role/r",
                "cluster:admin/xpack/security/role/delete",
            ),
            (
                Method::POST,
                "/_security/api_key",
                "cluster:admin/xpack/security/api_key/create",
            ),
            (Method::GET, "/oauth2/register/x", "GET /oauth2/register/x"),
        ];
        for (method, path, expected) in cases {
            assert_eq!(action_name(&method, path), expected, "{method} {path}");
        }
    }
}
