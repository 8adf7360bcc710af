//! Who calls the token, revocation and introspection endpoints: a
//! registered OAuth client (RFC 6749 §2.3.1, `client_secret_basic` or
//! `client_secret_post`) or, at revocation and introspection, a native
//! user with HTTP Basic.

use std::net::IpAddr;

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tessera_domain::oauth::{self, AuthMethod, OAuthClientRecord};
use tessera_domain::{Authentication, ClientRef};
use zeroize::Zeroizing;

use super::Form;
use crate::auth::{self, PasswordCredentials};
use crate::error::ApiError;
use crate::state::AppState;
use crate::throttle::{Outcome, Realm};

/// Credentials as presented, before any lookup.
pub(crate) enum Presented {
    /// The decoded `id:secret` text of `Authorization: Basic`.
    Basic(Zeroizing<String>),
    /// `client_id` and `client_secret` in the body.
    Post {
        id: String,
        secret: Zeroizing<String>,
    },
}

/// Finds the one client authentication method the request used.
pub(crate) fn presented(headers: &HeaderMap, form: &Form) -> Result<Option<Presented>, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| ApiError::invalid_client("the Authorization header is not ASCII", true))?;
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(ApiError::invalid_client(
                format!(
                    "authentication scheme [{scheme}] is not accepted here; use HTTP Basic (client_secret_basic) or client_secret_post"
                ),
                true,
            ));
        }
        if form.get("client_secret").is_some() {
            return Err(ApiError::invalid_request(
                "the client used more than one authentication method (HTTP Basic and client_secret in the body)",
            ));
        }
        let text = STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .map(Zeroizing::new)
            .filter(|t| t.contains(':'))
            .ok_or_else(|| ApiError::invalid_client("malformed HTTP Basic credentials", true))?;
        return Ok(Some(Presented::Basic(text)));
    }
    match (form.get("client_id"), form.get("client_secret")) {
        (Some(id), Some(secret)) => Ok(Some(Presented::Post {
            id: id.to_owned(),
            secret: Zeroizing::new(secret.to_owned()),
        })),
        (Some(_), None) => Err(ApiError::invalid_client(
            "client authentication failed: no client_secret (public clients are not supported)",
            false,
        )),
        (None, Some(_)) => Err(ApiError::invalid_request(
            "client_secret was sent without client_id",
        )),
        (None, None) => Ok(None),
    }
}

pub(super) fn authentication_failed(tried_header: bool) -> ApiError {
    ApiError::invalid_client("client authentication failed", tried_header)
}

/// A `client_id` in the body next to HTTP Basic must name the same client.
fn check_body_client_id(form: &Form, id: &str) -> Result<(), ApiError> {
    match form.get("client_id") {
        Some(body_id) if body_id != id => Err(ApiError::invalid_request(
            "client_id in the body does not match the HTTP Basic credentials",
        )),
        _ => Ok(()),
    }
}

/// What a client presents: its id and secret, and the method it sent
/// them by.
struct Claim<'a> {
    id: &'a str,
    secret: &'a str,
    method: AuthMethod,
}

impl<'a> Claim<'a> {
    fn basic(id: &'a str, secret: &'a str) -> Self {
        let method = AuthMethod::ClientSecretBasic;
        Claim { id, secret, method }
    }

    fn post(id: &'a str, secret: &'a str) -> Self {
        let method = AuthMethod::ClientSecretPost;
        Claim { id, secret, method }
    }
}

/// [`check`], audited: the client's authentication succeeded or failed
/// (the client id claimed, never the secret).
fn verify(
    state: &AppState,
    source: IpAddr,
    claim: &Claim,
    found: Option<OAuthClientRecord>,
) -> Result<OAuthClientRecord, ApiError> {
    let result = check(state, source, claim, found);
    match &result {
        Ok(client) => state.audit.authentication_success(&client.authentication()),
        Err(_) => state.audit.authentication_failed(Some(claim.id), None),
    }
    result
}

/// Checks the secret presented for client `id` (`found` if registered)
/// and the client's registered method. Unknown clients and wrong secrets
/// get the same answer; so does a client soft-locked after repeated wrong
/// secrets, without a check. A source past its failure budget gets 429.
fn check(
    state: &AppState,
    source: IpAddr,
    claim: &Claim,
    found: Option<OAuthClientRecord>,
) -> Result<OAuthClientRecord, ApiError> {
    let Claim { id, secret, method } = *claim;
    let tried_header = method == AuthMethod::ClientSecretBasic;
    let attempt = state.throttle.attempt(Realm::OAuthClient, id, source);
    let now = state.now();
    attempt
        .check_source(now)
        .map_err(|t| ApiError::too_many_failures(t.retry_after_secs))?;
    if attempt.account_locked(now) {
        attempt.finish(Outcome::Locked, now);
        return Err(authentication_failed(tried_header));
    }
    let client = match found {
        Some(client) if client.verify_secret(secret) => client,
        found => {
            let outcome = if found.is_some() {
                Outcome::InvalidCredentials
            } else {
                Outcome::UnknownPrincipal
            };
            attempt.finish(outcome, now);
            return Err(authentication_failed(tried_header));
        }
    };
    attempt.finish(Outcome::Success, now);
    let registered = client.metadata.token_endpoint_auth_method;
    if registered != method {
        return Err(ApiError::invalid_client(
            format!(
                "this client is registered to authenticate with [{}], not [{}]",
                registered.as_str(),
                method.as_str()
            ),
            tried_header,
        ));
    }
    Ok(client)
}

async fn verify_client(
    state: &AppState,
    source: IpAddr,
    claim: Claim<'_>,
) -> Result<OAuthClientRecord, ApiError> {
    let found = state.store.get_oauth_client(claim.id).await?;
    verify(state, source, &claim, found)
}

/// The token endpoint's caller: a registered OAuth client.
pub(super) async fn authenticate_client(
    state: &AppState,
    source: IpAddr,
    headers: &HeaderMap,
    form: &Form,
) -> Result<OAuthClientRecord, ApiError> {
    match presented(headers, form)? {
        None => Err(ApiError::invalid_client(
            "client authentication is required",
            false,
        )),
        Some(Presented::Post { id, secret }) => {
            verify_client(state, source, Claim::post(&id, &secret)).await
        }
        Some(Presented::Basic(text)) => {
            let (id, secret) = oauth::decode_basic_client(&text).ok_or_else(|| {
                ApiError::invalid_client("malformed HTTP Basic credentials", true)
            })?;
            check_body_client_id(form, &id)?;
            verify_client(state, source, Claim::basic(&id, &secret)).await
        }
    }
}

/// Who calls the revocation or introspection endpoint.
pub(super) enum Requester {
    Client(OAuthClientRecord),
    /// A native user with HTTP Basic: the client of the tokens it created
    /// through the Elasticsearch API.
    User(Authentication),
}

impl Requester {
    pub(super) fn client_ref(&self) -> ClientRef {
        match self {
            Requester::Client(c) => c.client_ref(),
            Requester::User(u) => u.client_ref(),
        }
    }

    pub(super) fn name(&self) -> &str {
        match self {
            Requester::Client(c) => &c.client_id,
            Requester::User(u) => &u.username,
        }
    }
}

/// An OAuth client (either method), or else, with HTTP Basic naming no
/// registered client, a native user.
pub(super) async fn authenticate_requester(
    state: &AppState,
    source: IpAddr,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Requester, ApiError> {
    let text = match presented(headers, form)? {
        None => {
            return Err(ApiError::invalid_client(
                "client authentication is required",
                false,
            ))
        }
        Some(Presented::Post { id, secret }) => {
            return verify_client(state, source, Claim::post(&id, &secret))
                .await
                .map(Requester::Client)
        }
        Some(Presented::Basic(text)) => text,
    };
    if let Some((id, secret)) = oauth::decode_basic_client(&text) {
        if let Some(client) = state.store.get_oauth_client(&id).await? {
            check_body_client_id(form, &id)?;
            let claim = Claim::basic(&id, &secret);
            return verify(state, source, &claim, Some(client)).map(Requester::Client);
        }
    }
    // Plain HTTP Basic of a native user: no form-decoding.
    let (username, password) = text.split_once(':').expect("checked by presented()");
    let creds = PasswordCredentials {
        username: username.to_owned(),
        password: Zeroizing::new(password.to_owned()),
    };
    auth::check_password(state, &creds, source)
        .await?
        .map(|(user, _)| Requester::User(user))
        .ok_or_else(|| authentication_failed(true))
}
