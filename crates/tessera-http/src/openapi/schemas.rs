//! Schemas of the OpenAPI document for the answers the handlers build
//! with `json!`, and the error shapes of [`crate::error`]. They are used
//! only by the document: the wire format stays the handlers'.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::openapi::{RefOr, Response};
use utoipa::{IntoResponses, ToSchema};

/// Elasticsearch's error envelope (`{"error":{…},"status"}`).
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorCause,
    /// The HTTP status, repeated.
    pub status: u16,
}

/// One cause in the envelope: `type` and `reason`, plus whatever
/// Elasticsearch adds for this exception (`header`, `root_cause`, …).
#[derive(Serialize, ToSchema)]
pub struct ErrorCause {
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
    #[schema(value_type = Option<Vec<Object>>)]
    pub root_cause: Option<Vec<Value>>,
}

/// RFC 6749 §5.2's flat error (`{"error","error_description"}`).
#[derive(Serialize, ToSchema)]
pub struct OAuthError {
    /// An RFC 6749 error code (`invalid_grant`, `invalid_client`, …).
    pub error: String,
    pub error_description: Option<String>,
}

/// An Elasticsearch-API failure: the envelope, or the flat RFC 6749
/// shape for a failure named by an OAuth code (as Elasticsearch answers
/// the token API's grant failures).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum EsError {
    Envelope(ErrorEnvelope),
    Flat(OAuthError),
}

/// The failures every Elasticsearch-API operation may answer.
#[derive(IntoResponses)]
pub enum EsErrors {
    /// The request is malformed or invalid.
    #[response(status = 400)]
    BadRequest(EsError),
    /// No valid credentials (`WWW-Authenticate` says which schemes).
    #[response(status = 401)]
    Unauthorized(EsError),
    /// The caller lacks the privilege the operation needs.
    #[response(status = 403)]
    Forbidden(EsError),
    /// Other client errors: an unacceptable media type, a body over the
    /// size limit, a body not sent in time.
    #[response(status = "4XX")]
    OtherClientError(EsError),
    /// The source address spent its budget of failed authentications.
    #[response(status = 429)]
    TooManyRequests(EsError),
    /// A bug or a corrupted store; the body says nothing internal.
    #[response(status = 500)]
    Internal(EsError),
    /// The token store is unavailable.
    #[response(status = 503)]
    Unavailable(EsError),
}

/// The failures of the standard OAuth 2.0 endpoints.
#[derive(IntoResponses)]
pub enum OAuthErrors {
    /// An RFC 6749 failure (`invalid_request`, `invalid_grant`, …).
    #[response(status = 400)]
    BadRequest(OAuthError),
    /// The client failed to authenticate (`invalid_client`).
    #[response(status = 401)]
    Unauthorized(OAuthError),
    /// Other client errors (the body is too large, not acceptable, …).
    #[response(status = "4XX")]
    OtherClientError(OAuthError),
    /// The source address spent its budget of failed authentications.
    #[response(status = 429)]
    TooManyRequests(OAuthError),
    /// `server_error`: the body says nothing internal.
    #[response(status = 500)]
    Internal(OAuthError),
    /// `temporarily_unavailable`: the token store is unavailable.
    #[response(status = 503)]
    Unavailable(OAuthError),
}

/// A client that is not registered.
#[derive(IntoResponses)]
pub enum ClientNotFound {
    #[response(status = 404)]
    NotFound(EsError),
}

/// The failures of the client registration endpoints: those of every
/// Elasticsearch-API operation, and a client that is not registered. The
/// administrator's checks answer in Elasticsearch's envelope, the
/// metadata's in RFC 7591's flat shape.
pub struct RegistrationErrors;

impl IntoResponses for RegistrationErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = EsErrors::responses();
        responses.append(&mut ClientNotFound::responses());
        responses
    }
}

/// `{"created": …}`: whether the document was new.
#[derive(ToSchema)]
pub struct Created {
    pub created: bool,
}

/// `{"role": {"created": …}}`.
#[derive(ToSchema)]
pub struct RoleCreated {
    pub role: Created,
}

/// `{"role_mapping": {"created": …}}`.
#[derive(ToSchema)]
pub struct RoleMappingCreated {
    pub role_mapping: Created,
}

/// `{"found": …}`: whether there was something to delete (404 when not).
#[derive(ToSchema)]
pub struct Found {
    pub found: bool,
}

/// An empty object: the answer of an acknowledged change, or of a lookup
/// that found nothing (404).
#[derive(ToSchema)]
pub struct Empty {}

/// Documents by name (users, roles, role mappings).
#[derive(ToSchema)]
pub struct ByName(pub BTreeMap<String, Value>);

/// The realm a caller was authenticated or looked up by.
#[derive(Serialize, ToSchema)]
pub struct RealmRef {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// What `_authenticate` answers: who the caller is.
#[derive(ToSchema)]
pub struct Authentication {
    pub username: String,
    pub roles: Vec<String>,
    pub full_name: Option<String>,
    pub email: Option<String>,
    /// Only for a service account: the service token used (`name`, `type`).
    #[schema(value_type = Option<Object>)]
    pub token: Option<Value>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    pub enabled: bool,
    pub authentication_realm: RealmRef,
    pub lookup_realm: RealmRef,
    /// `realm`, `token`, `api_key`, …
    pub authentication_type: String,
    /// The API key used, when `authentication_type` is `api_key`.
    #[schema(value_type = Option<Object>)]
    pub api_key: Option<Value>,
}

/// An access and refresh token pair, as the token API answers it.
#[derive(Serialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub scope: Option<String>,
    /// Absent for the client credentials grant.
    pub refresh_token: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub authentication: Option<Value>,
    /// Present when the token was obtained with a Kerberos ticket.
    pub kerberos_authentication_response_token: Option<String>,
}

/// What an invalidation by token, user or realm did.
#[derive(ToSchema)]
pub struct InvalidatedTokens {
    pub invalidated_tokens: u64,
    pub previously_invalidated_tokens: u64,
    pub error_count: u64,
    #[schema(value_type = Option<Vec<Object>>)]
    pub error_details: Option<Vec<Value>>,
}

/// A new API key and its encoded credential.
#[derive(ToSchema)]
pub struct CreatedApiKey {
    pub id: String,
    pub name: String,
    pub api_key: String,
    /// `base64(id:api_key)`, what `Authorization: ApiKey …` carries.
    pub encoded: String,
    /// Milliseconds since the epoch, when the key has a lifetime.
    pub expiration: Option<i64>,
}

/// API keys found by `GET /_security/api_key` (404 when none).
#[derive(ToSchema)]
pub struct ApiKeys {
    #[schema(value_type = Vec<Object>)]
    pub api_keys: Vec<Value>,
}

/// What an update of one API key did.
#[derive(ToSchema)]
pub struct UpdatedApiKey {
    /// `false` when the key already was as asked.
    pub updated: bool,
}

/// What a bulk update of API keys did.
#[derive(ToSchema)]
pub struct BulkUpdatedApiKeys {
    pub updated: Vec<String>,
    pub noops: Vec<String>,
    /// `{count, details: {id: {type, reason}}}`, when some keys could not
    /// be updated.
    #[schema(value_type = Option<Object>)]
    pub errors: Option<Value>,
}

/// A page of API keys found by a query.
#[derive(ToSchema)]
pub struct QueriedApiKeys {
    /// How many keys matched in all.
    pub total: u64,
    /// How many are on this page.
    pub count: u64,
    /// The keys, each with `_sort` when the query is sorted.
    #[schema(value_type = Vec<Object>)]
    pub api_keys: Vec<Value>,
}

/// A page of users found by a query.
#[derive(ToSchema)]
pub struct QueriedUsers {
    pub total: u64,
    pub count: u64,
    #[schema(value_type = Vec<Object>)]
    pub users: Vec<Value>,
}

/// What an invalidation of API keys did.
#[derive(ToSchema)]
pub struct InvalidatedApiKeys {
    pub invalidated_api_keys: Vec<String>,
    pub previously_invalidated_api_keys: Vec<String>,
    pub error_count: u64,
}

/// The answer of a clear-cache call, as from a one-node cluster.
#[derive(ToSchema)]
pub struct ClearedCache {
    #[schema(value_type = Object)]
    pub _nodes: Value,
    pub cluster_name: String,
    #[schema(value_type = Object)]
    pub nodes: Value,
}

/// `{"metadata": "<EntityDescriptor …>"}`: a SAML realm's SP metadata.
#[derive(ToSchema)]
pub struct SamlMetadata {
    pub metadata: String,
}

/// A SAML message to send to the IdP.
#[derive(ToSchema)]
pub struct SamlRedirect {
    pub id: Option<String>,
    pub realm: Option<String>,
    pub redirect: Option<String>,
}

/// The form of `POST /oauth2/token` (RFC 6749 §4.4, §6, and the
/// password grant); client credentials in Basic or in the form.
#[derive(ToSchema)]
pub struct TokenForm {
    pub grant_type: String,
    pub scope: Option<String>,
    pub refresh_token: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// The form of `POST /oauth2/revoke` and `/oauth2/introspect`
/// (RFC 7009, RFC 7662).
#[derive(ToSchema)]
pub struct TokenQueryForm {
    pub token: String,
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// A token answer of `POST /oauth2/token` (RFC 6749 §5.1).
#[derive(ToSchema)]
pub struct OAuthToken {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
}

/// An introspection answer (RFC 7662 §2.2): `{"active": false}` or the
/// token's claims.
#[derive(ToSchema)]
pub struct Introspection {
    pub active: bool,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub token_type: Option<String>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub sub: Option<String>,
    pub iss: Option<String>,
}

/// A client's registration metadata (RFC 7591 §3.2.1); the secret only
/// when it was just minted.
#[derive(ToSchema)]
pub struct ClientRegistration {
    pub client_id: String,
    pub client_secret: Option<String>,
    /// Seconds since the epoch.
    pub client_id_issued_at: i64,
    /// Always 0: secrets do not expire.
    pub client_secret_expires_at: i64,
    pub client_name: Option<String>,
    pub grant_types: Vec<String>,
    pub scope: Option<String>,
}

/// Every registered client.
#[derive(ToSchema)]
pub struct ClientList {
    #[schema(value_type = Vec<Object>)]
    pub clients: Vec<Value>,
}

/// The authorization server's metadata (RFC 8414).
#[derive(ToSchema)]
pub struct ServerMetadata {
    pub issuer: String,
    pub token_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub registration_endpoint: String,
    pub scopes_supported: Vec<String>,
    pub response_types_supported: Vec<String>,
    pub grant_types_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

/// `{"status": …}` of the readiness and liveness probes (with `reason`
/// when not ready).
#[derive(ToSchema)]
pub struct Probe {
    pub status: String,
    pub reason: Option<String>,
}
