//! The token service: the one way every API issues and refreshes tokens.
//!
//! The Elasticsearch token API, OAuth 2.0 and the logins of the realms to
//! come all mint through [`issue`] and rotate through [`refresh`]. Each
//! gathers its own inputs (who the subject is, which client asks, what
//! the caller's authority rests on) and renders the answer in its own
//! wire shape; what happens in between is written here once:
//!
//! - the pair is minted from fresh randomness drawn here, at the edge,
//!   and the store's engine (`tessera_store::engine`) applies the
//!   domain's decision in one transaction;
//! - every source of the caller's authority (the verified password, the
//!   API key, the minting token's family, the OAuth client's registration)
//!   is checked in the storing transaction, so a pair is handed out only
//!   if it is stored and every source still stood;
//! - a family never outlives the credential that minted it;
//! - reuse of a refresh token is logged as a security event and counted,
//!   and the issue and refresh metrics move.

use serde_json::{Map, Value};
use tessera_domain::refresh::{Denied, RefreshError};
use tessera_domain::token::{Fresh, TokenPair, TokenString};
use tessera_domain::{Authentication, ClientRef, Millis, TokenRecord};
use tessera_store::{RefreshRequest, Requirement, StoreResult};

use crate::auth::Provenance;
use crate::state::AppState;

/// Who a new pair is for and on whose behalf it is minted.
pub struct Mint<'a> {
    /// The subject, as the realm authenticated it.
    pub subject: &'a Authentication,
    /// The client that obtains the pair, and alone may refresh it.
    pub client: ClientRef,
    /// When the client is a registered OAuth client: its id. The pair is
    /// stored only while the client is still registered.
    pub oauth_client: Option<&'a str>,
    /// The granted OAuth scope (`None`: unrestricted).
    pub scope: Option<Vec<String>>,
    pub with_refresh: bool,
    /// What the caller's authority rests on.
    pub provenance: &'a Provenance,
    /// What the realm keeps with the pair (a SAML session's NameID and
    /// session index); never shown, inherited by successors.
    pub metadata: Option<Map<String, Value>>,
}

/// A pair handed out, with what the responses say about it.
pub struct Granted {
    pub pair: TokenPair,
    /// Who the pair stands for.
    pub subject: Authentication,
    pub scope: Option<Vec<String>>,
    /// Seconds the access token lives.
    pub expires_in: Millis,
}

/// A pair was not stored: a source of the caller's authority was taken
/// back while it was being minted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceRevoked;

/// Mints and stores the first pair of a new family. `Ok(Err(_))`: a
/// source was taken back and nothing was stored.
pub async fn issue(
    state: &AppState,
    mint: Mint<'_>,
) -> StoreResult<Result<Granted, SourceRevoked>> {
    let now = state.now();
    let (record, pair) = TokenRecord::first_of_family(
        Fresh::draw(now),
        mint.subject,
        mint.client,
        mint.scope,
        mint.with_refresh,
        now,
        state.settings.access_ttl_ms(),
    );
    // A token never outlives the credential that minted it.
    let mut record = record.capped(mint.provenance.not_after);
    record.metadata = mint.metadata;
    let mut lineage = mint.provenance.lineage.clone();
    if let Some(client_id) = mint.oauth_client {
        lineage.requires.push(Requirement::OAuthClient {
            client_id: client_id.to_owned(),
        });
    }
    // The invariant: a token is handed out only after this returns, i.e.
    // after it is durably committed, and only if every source of its
    // authority still stood when it was stored.
    if !state.store.insert_derived(&record, &lineage).await? {
        return Ok(Err(SourceRevoked));
    }
    state.metrics.issued();
    Ok(Ok(Granted {
        pair,
        subject: mint.subject.clone(),
        expires_in: (record.access_expires_at - now).max(0) / 1000,
        scope: record.scope,
    }))
}

/// A refresh as an API asks for it.
pub struct Refresh<'a> {
    pub presented: TokenString,
    /// The client refreshing; only the one that obtained the pair may.
    pub caller: ClientRef,
    /// How the security log names the presenter.
    pub presenter: &'a str,
    /// An OAuth client's requested scope (RFC 6749 §6).
    pub scope: Option<Vec<String>>,
    /// The OAuth client's registered scope as it is now.
    pub registered: Option<Vec<String>>,
}

/// Rotates (or, within the window, replays) a pair in one transaction.
/// `Ok(Err(_))`: refused, and the family revoked when the refusal says so.
pub async fn refresh(
    state: &AppState,
    ask: Refresh<'_>,
) -> StoreResult<Result<Granted, RefreshError>> {
    let now = state.now();
    let policy = state.settings.refresh_policy();
    let request = RefreshRequest {
        scope: ask.scope,
        registered: ask.registered,
        ..RefreshRequest::new(ask.presented, ask.caller, now, policy)
    };
    let granted = match state.store.refresh(request).await? {
        Ok(granted) => granted,
        Err(denied) => {
            report_denial(state, &denied, ask.presenter);
            return Ok(Err(denied.error));
        }
    };
    state.metrics.refresh(granted.rotated);
    Ok(Ok(Granted {
        expires_in: granted.expires_in(policy.access_ttl_ms, now),
        pair: granted.pair,
        subject: granted.subject,
        scope: granted.scope,
    }))
}

/// Logs and counts a refused refresh that looks like reuse (a security
/// event: logged without any token, with who presented it).
fn report_denial(state: &AppState, denied: &Denied, presenter: &str) {
    if denied.revoke_family
        || matches!(
            denied.error,
            RefreshError::RefreshedTooLongAgo { .. } | RefreshError::AlreadyRefreshed
        )
    {
        tracing::warn!(
            target: "tessera::security",
            event = "refresh_token_reuse",
            reason = %denied.error,
            family_revoked = denied.revoke_family,
            client = %presenter,
            "a refresh token was presented again outside its window"
        );
        state.metrics.reuse_detected(denied.revoke_family);
    }
}
