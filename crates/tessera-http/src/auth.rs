//! Who is calling: authentication of the `Authorization` header, and the
//! privilege check that follows it.

use std::net::IpAddr;

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tessera_domain::authn::{AuthenticationType, ClientRef, NATIVE_REALM};
use tessera_domain::oauth::{self, ADMIN_SCOPE};
use tessera_domain::privilege::{self, Action, SUPERUSER_ROLE};
use tessera_domain::run_as::RunBy;
use tessera_domain::service_account;
use tessera_domain::token::{TokenKind, TokenString};
use tessera_domain::user::{self, UserRecord};
use tessera_domain::{Authentication, Millis, TokenRecord};
use tessera_store::{ApiKeyRecord, Lineage, Requirement};
use zeroize::Zeroizing;

use crate::error::{ApiError, ApiResult};
use crate::run_as;
use crate::state::AppState;
use crate::throttle::{ClientIp, Outcome, Realm};

/// The authenticated caller. As an extractor it runs before the body is
/// read, so an unauthenticated request gets its 401 whatever its body.
pub struct Caller(pub Authentication);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let Minter(who, _) = Minter::from_request_parts(parts, state).await?;
        Ok(Caller(who))
    }
}

/// The authenticated caller and where its authority comes from: what a
/// token it mints must keep depending on. As an extractor it is [`Caller`]
/// for the endpoints that mint tokens.
pub struct Minter(pub Authentication, pub Provenance);

impl FromRequestParts<AppState> for Minter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(&parts.uri, |u| &u.0);
        let source = ClientIp::of(parts, state);
        let (who, provenance) =
            authenticate_with_provenance(state, &parts.headers, uri, source).await?;
        Ok(Minter(who, provenance))
    }
}

/// What a credential's authority rests on (see [`Minter`]).
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    /// What the store checks when it stores a token the caller minted, and
    /// the token whose family the new one becomes a child of.
    pub lineage: Lineage,
    /// The latest moment a token the caller mints may live to: an API
    /// key's expiration, or the end of the caller's own token.
    pub not_after: Option<Millis>,
    /// The caller's authority is borrowed from a credential that can be
    /// taken back on its own (an API key, or the token that minted the
    /// caller's token): it ends when that one does, so it may not create a
    /// credential that would outlive it (an API key, which belongs to its
    /// owner and outlives the session that created it).
    pub borrowed: bool,
    /// The caller who runs this request as another user (the header
    /// `es-security-runas-user`, or a token minted while running as).
    pub run_by: Option<RunBy>,
    /// Who asks, when it is not the caller: the runner of a run-as request
    /// (its own client reference, an API key's id included). What the
    /// request mints records it as the token's client, so that taking the
    /// runner back (its user, its key) takes the token too, and only the
    /// runner may refresh it.
    pub client: Option<ClientRef>,
}

impl Provenance {
    /// The client recorded on what `caller` mints (see [`Self::client`]).
    pub fn client_of(&self, caller: &Authentication) -> ClientRef {
        self.client.clone().unwrap_or_else(|| caller.client_ref())
    }

    /// A password login of `username` whose stored hash is `password_hash`:
    /// when user changes revoke tokens, the user must still be enabled and
    /// have that hash when the token is stored.
    pub fn add_login(&mut self, state: &AppState, username: &str, password_hash: &str) {
        if state.settings.revoke_on_user_change {
            self.lineage.requires.push(Requirement::User {
                username: username.to_owned(),
                password_hash: Some(password_hash.to_owned()),
            });
        }
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
    source: IpAddr,
) -> ApiResult<Authentication> {
    authenticate_with_provenance(state, headers, uri, source)
        .await
        .map(|(who, _)| who)
}

/// [`authenticate`], also saying what the caller's authority rests on.
/// The outcome goes to the audit log, and the user's name to the
/// request's context (for the access log).
pub async fn authenticate_with_provenance(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    source: IpAddr,
) -> ApiResult<(Authentication, Provenance)> {
    let mut result = authenticate_presented(state, headers, uri, source).await;
    if let Some(value) = headers.get(&run_as::HEADER) {
        result = match result {
            Ok((who, provenance)) => run_as(state, uri, value, who, provenance).await,
            refused => refused,
        };
    }
    match &result {
        Ok((who, provenance)) => {
            if let Some(run_by) = &provenance.run_by {
                crate::request_context::with_current(|c| c.set_run_by(run_by.clone()));
            }
            if state.settings.access_log {
                crate::request_context::with_current(|c| c.set_user(&who.username));
            }
            state.audit.authentication_success(who);
        }
        // A scope refusal (403) authenticated first: it is audited where
        // it is decided, as access denied.
        Err(e) if state.audit.enabled() && e.status() != StatusCode::FORBIDDEN => {
            audit_failure(state, headers)
        }
        Err(_) => {}
    }
    result
}

/// The request as the user the run-as header names (see
/// [`crate::run_as`]): the target's roles, the caller's realm and
/// authentication type, the caller recorded as `run_by`. A caller that
/// already runs as someone (a token minted while running as) keeps its
/// identity: the header is ignored, as Elasticsearch does.
async fn run_as(
    state: &AppState,
    uri: &Uri,
    value: &HeaderValue,
    who: Authentication,
    mut provenance: Provenance,
) -> ApiResult<(Authentication, Provenance)> {
    if provenance.run_by.is_some() {
        tracing::info!(
            user = %who.username,
            "ignoring the run-as header: a token minted while running as cannot run as another user"
        );
        return Ok((who, provenance));
    }
    let target = run_as::target(state, uri, value, &who).await?;
    let mut effective = realm_authentication(target);
    effective.authentication_realm = who.authentication_realm.clone();
    effective.authentication_type = who.authentication_type;
    if state.settings.revoke_on_user_change {
        // What the request mints for the target ends with the target.
        provenance.lineage.requires.push(Requirement::User {
            username: effective.username.clone(),
            password_hash: None,
        });
    }
    provenance.client = Some(who.client_ref());
    provenance.run_by = Some(RunBy {
        username: who.username,
        realm: who.authentication_realm,
    });
    Ok((effective, provenance))
}

/// The audit event of a request that did not authenticate, by what its
/// `Authorization` header presented (never the secret part of it).
fn audit_failure(state: &AppState, headers: &HeaderMap) {
    let audit = &state.audit;
    match headers.get(header::AUTHORIZATION).map(parse_authorization) {
        None | Some(Ok(Presented::Other)) => audit.anonymous_access_denied(),
        Some(Err(_)) => audit.tampered_request(),
        Some(Ok(Presented::Basic(creds))) => {
            audit.authentication_failed(Some(&creds.username), None);
        }
        Some(Ok(Presented::Bearer(token))) => {
            let account = service_account::parse(token).map(|p| p.account);
            audit.authentication_failed(account.as_deref(), None);
        }
        Some(Ok(Presented::ApiKey(encoded))) => {
            let id = tessera_domain::api_key::decode_credentials(encoded).map(|(id, _)| id);
            audit.authentication_failed(None, id.as_deref());
        }
    }
}

async fn authenticate_presented(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    source: IpAddr,
) -> ApiResult<(Authentication, Provenance)> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(missing_credentials(uri));
    };
    match parse_authorization(value)? {
        Presented::Basic(creds) => {
            let what = format!("REST request [{uri}]");
            let (who, password_hash) = verify_password(state, &creds, &what, source).await?;
            let mut provenance = Provenance::default();
            provenance.add_login(state, &who.username, &password_hash);
            Ok((who, provenance))
        }
        // Recognised by its prefix before anything is decoded or read.
        Presented::Bearer(token) if service_account::looks_like_service_token(token) => {
            match service_account::parse(token) {
                Some(presented) => crate::service_accounts::authenticate(state, presented).await,
                None => Err(ApiError::unsuccessful_credentials(
                    "oauth2 token: invalid token",
                )),
            }
        }
        Presented::Bearer(token)
            if !state.settings.jwt.is_empty() && tessera_realms::jose::looks_like_jwt(token) =>
        {
            crate::jwt::authenticate(state, headers, token).await
        }
        Presented::Bearer(token) => {
            let record = authenticate_bearer(state, token).await?;
            if uri.path() != SCOPE_EXEMPT_PATH && !scope_allows_admin(&record) {
                state.audit.access_denied_by_scope(&record.subject);
                return Err(ApiError::insufficient_scope(ADMIN_SCOPE));
            }
            // What this token mints is its family's child, and ends no
            // later than this pair can be used.
            let provenance = Provenance {
                lineage: Lineage {
                    parent: Some(record.access_hash),
                    requires: Vec::new(),
                    ..Default::default()
                },
                not_after: Some(record.last_usable()),
                borrowed: is_borrowed(&record),
                run_by: record.metadata.as_ref().and_then(RunBy::of_token_metadata),
                client: None,
            };
            Ok((record.subject, provenance))
        }
        Presented::ApiKey(credentials) => {
            let key = authenticate_api_key(state, credentials).await?;
            let mut requires = vec![Requirement::ApiKey { id: key.id.clone() }];
            if state.settings.revoke_on_user_change {
                requires.push(Requirement::User {
                    username: key.owner.username.clone(),
                    password_hash: None,
                });
            }
            let provenance = Provenance {
                lineage: Lineage {
                    parent: None,
                    requires,
                    ..Default::default()
                },
                not_after: key.expires_at,
                borrowed: true,
                run_by: None,
                client: None,
            };
            Ok((key.authentication(), provenance))
        }
        Presented::Other => Err(missing_credentials(uri)),
    }
}

/// Whether the authority of the pair `record` is borrowed: a family minted
/// from a key, or by a token caller, carries a cap or the key; one minted
/// by a password login carries neither.
pub(crate) fn is_borrowed(record: &TokenRecord) -> bool {
    record.not_after.is_some()
        || record.client.api_key_id.is_some()
        || record.subject.api_key.is_some()
}

/// Whether an access token's OAuth scope lets it act on `/_security/*`
/// (tokens without a scope may).
pub(crate) fn scope_allows_admin(record: &TokenRecord) -> bool {
    oauth::scope_allows_admin(record.scope.as_deref())
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

/// Verifies a username and password against the native realm, from
/// `source`, and returns the user's authentication with the stored password
/// hash it verified against (see [`Provenance::add_login`]). A refusal is
/// Elasticsearch's 401, whose message ends with `what`: `"REST request
/// [/x]"` or `"action [name]"`.
pub async fn verify_password(
    state: &AppState,
    creds: &PasswordCredentials,
    what: &str,
    source: IpAddr,
) -> ApiResult<(Authentication, String)> {
    check_password(state, creds, source).await?.ok_or_else(|| {
        ApiError::unauthenticated(format!(
            "unable to authenticate user [{}] for {what}",
            creds.username
        ))
    })
}

/// [`verify_password`], with `None` for a refused password, which each API
/// answers in its own words.
///
/// Guessing is throttled (see [`crate::throttle`]): a source past its
/// failure budget gets 429; a soft-locked account is refused unverified
/// like a wrong password. Unknown and disabled users are verified against
/// a dummy hash of the same parameters, so that every refusal costs what a
/// wrong password costs.
pub async fn check_password(
    state: &AppState,
    creds: &PasswordCredentials,
    source: IpAddr,
) -> ApiResult<Option<(Authentication, String)>> {
    let checked = check_native_password(state, creds, source).await;
    match &checked {
        Ok(Some(_)) => state.metrics.native_authentication(true),
        Ok(None) => {
            state.metrics.native_authentication(false);
            state
                .audit
                .realm_authentication_failed(&NATIVE_REALM, &creds.username);
        }
        Err(_) => {}
    }
    checked
}

async fn check_native_password(
    state: &AppState,
    creds: &PasswordCredentials,
    source: IpAddr,
) -> ApiResult<Option<(Authentication, String)>> {
    let attempt = state
        .throttle
        .attempt(Realm::Native, &creds.username, source);
    attempt
        .check_source(state.now())
        .map_err(|t| ApiError::too_many_failures(t.retry_after_secs))?;
    let user = state.store.get_user(&creds.username).await?;
    let enabled = user.as_ref().map(|u| u.enabled);
    // Disabled users are refused whatever the password and do not count
    // toward the lock; everyone else takes the account's turn.
    let _turn = match enabled {
        Some(false) => None,
        _ => {
            // A password already verified needs no turn.
            let cached = user
                .as_ref()
                .filter(|_| !attempt.account_locked(state.now()))
                .is_some_and(|u| {
                    state
                        .credentials
                        .hit(&u.username, &creds.password, &u.password_hash)
                });
            if cached {
                if let Some(user) = user {
                    attempt.finish(Outcome::Success, state.now());
                    return Ok(Some(login_of(user)));
                }
            }
            Some(attempt.turn().await)
        }
    };
    let now = state.now();
    if enabled != Some(false) && attempt.account_locked(now) {
        attempt.finish(Outcome::Locked, now);
        return Ok(None);
    }
    let outcome = match user {
        Some(user) if user.enabled => {
            let suspect = || attempt.suspect(now);
            if verify_cached(state, &user, &creds.password, suspect).await {
                attempt.finish(Outcome::Success, state.now());
                return Ok(Some(login_of(user)));
            }
            Outcome::InvalidCredentials
        }
        found => {
            let password = Zeroizing::new(creds.password.to_string());
            state
                .verify_blocking(attempt.suspect(now), move || user::verify_dummy(&password))
                .await;
            if found.is_some() {
                Outcome::Disabled
            } else {
                Outcome::UnknownPrincipal
            }
        }
    };
    attempt.finish(outcome, state.now());
    Ok(None)
}

/// Whether `password` is `user`'s: from the verified-credentials cache,
/// or else verified on the hashing lane `suspect()` chooses.
/// The authentication of a verified user, and the stored hash it was
/// verified against (moved out, not copied).
fn login_of(mut user: UserRecord) -> (Authentication, String) {
    let hash = std::mem::take(&mut user.password_hash);
    (realm_authentication(user), hash)
}

async fn verify_cached(
    state: &AppState,
    user: &UserRecord,
    password: &str,
    suspect: impl FnOnce() -> bool,
) -> bool {
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
        .verify_blocking(suspect(), move || user::verify_password(&owned, &hash))
        .await;
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
        token: None,
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

/// Authenticates `ApiKey base64(id:secret)` and returns the key. Every
/// failure is Elasticsearch's "unable to authenticate with provided
/// credentials" 401. When user changes revoke tokens, a key whose owner is
/// disabled or deleted does not authenticate.
pub async fn authenticate_api_key(state: &AppState, presented: &str) -> ApiResult<ApiKeyRecord> {
    let refuse = |why: &str| ApiError::unsuccessful_credentials(&format!("API key: {why}"));
    let Some((id, secret)) = tessera_domain::api_key::decode_credentials(presented) else {
        return Err(refuse("invalid ApiKey value"));
    };
    let Some(key) = state.store.get_api_key(&id).await? else {
        return Err(refuse(&format!("unable to find apikey with id {id}")));
    };
    key.verify(&secret, state.now())
        .map_err(|e| refuse(&e.to_string()))?;
    if state.settings.revoke_on_user_change && !owner_enabled(state, &key).await? {
        return Err(refuse(&format!(
            "the owner of apikey with id {id} is disabled or deleted"
        )));
    }
    Ok(key)
}

async fn owner_enabled(state: &AppState, key: &ApiKeyRecord) -> ApiResult<bool> {
    if key.owner.authentication_realm != tessera_domain::authn::NATIVE_REALM {
        // Only native users can be changed here.
        return Ok(true);
    }
    let owner = state.store.get_user(&key.owner.username).await?;
    Ok(owner.is_some_and(|u| u.enabled))
}

/// Refuses with Elasticsearch's 403 unless `auth`'s roles grant `action`.
pub async fn require(state: &AppState, auth: &Authentication, action: Action) -> ApiResult<()> {
    if holds(state, auth, action).await? {
        state.audit.access_granted(auth, action);
        Ok(())
    } else {
        state.audit.access_denied(auth, action);
        match service_account::of_authentication(auth) {
            Some(account) => Err(crate::service_accounts::forbidden(
                action,
                account.principal,
            )),
            None => Err(ApiError::forbidden(action, &auth.username, &auth.roles)),
        }
    }
}

/// Whether `auth` may perform `action`. For an API key that is the
/// intersection of what the key's own descriptors and its owner's roles
/// grant; for a service account, what its built-in descriptor grants.
pub async fn holds(state: &AppState, auth: &Authentication, action: Action) -> ApiResult<bool> {
    match &auth.api_key {
        None => subject_grants(state, auth, action).await,
        Some(key_ref) => {
            let Some(key) = state.store.get_api_key(&key_ref.id).await? else {
                return Ok(false);
            };
            Ok(key.own_descriptors_grant(action)
                && subject_grants(state, &key.owner, action).await?)
        }
    }
}

/// What a user's roles, or a service account's descriptor, grant.
async fn subject_grants(state: &AppState, who: &Authentication, action: Action) -> ApiResult<bool> {
    match service_account::of_authentication(who) {
        Some(account) => Ok(privilege::grants(account.cluster.iter().copied(), action)),
        None => roles_grant(state, &who.roles, action).await,
    }
}

async fn roles_grant(state: &AppState, role_names: &[String], action: Action) -> ApiResult<bool> {
    if role_names.iter().any(|r| r == SUPERUSER_ROLE) {
        return Ok(true);
    }
    if role_names.is_empty() {
        return Ok(false);
    }
    let built_in = |r: &&String| privilege::BUILT_IN_ROLES.contains(&r.as_str());
    if !role_names.iter().any(|r| built_in(&r)) {
        let roles = state.store.get_roles(role_names).await?;
        return Ok(privilege::grants(
            roles
                .iter()
                .flat_map(|(_, d)| d.cluster.iter().map(String::as_str)),
            action,
        ));
    }
    // A built-in role among them (`kibana_system`): its definition, and
    // the stored roles beside it.
    let mut held: Vec<String> = role_names
        .iter()
        .filter_map(|r| privilege::built_in_role(r))
        .flat_map(|d| d.cluster)
        .collect();
    let stored: Vec<String> = role_names
        .iter()
        .filter(|r| !built_in(r))
        .cloned()
        .collect();
    if !stored.is_empty() {
        for (_, d) in state.store.get_roles(&stored).await? {
            held.extend(d.cluster);
        }
    }
    Ok(privilege::grants(held.iter().map(String::as_str), action))
}
