//! The OpenAPI 3.1 document of every endpoint, generated from the code.
//!
//! [`routes`] is the one route table: each entry registers a handler on
//! the router *and* its `#[utoipa::path]` operation in the document
//! (`utoipa_axum::routes!`), so a route cannot be served undocumented nor
//! documented unserved (the `openapi` tests of `crates/tessera/tests/api`
//! prove it).
//! One `routes!` per path: utoipa-axum registers every handler of one call
//! on every path of that call.
//!
//! The document is built once, when the first router is built, and served
//! at `GET /_tessera/openapi.json` to any authenticated caller.

pub mod schemas;

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes,
    SecurityScheme,
};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::state::AppState;
use crate::{
    api_key_grant, api_key_update, api_keys, has_privileges, node, oauth, oidc, privileges,
    queries, role_mappings, roles, saml, service_accounts, tokens, users,
};

/// The tags operations are grouped by.
pub const SECURITY: &str = "Elasticsearch security API";
pub const OAUTH: &str = "OAuth 2.0";
pub const TESSERA: &str = "Tessera";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera",
        description = "An authentication token service: the Elasticsearch security API and, \
                       beside it, standard OAuth 2.0 (RFC 6749, 7009, 7662, 7591, 8414)."
    ),
    modifiers(&SecuritySchemes),
    security(("basic" = []), ("bearer" = []), ("api_key" = [])),
    components(schemas(schemas::EsError, schemas::ErrorEnvelope, schemas::OAuthError)),
    tags(
        (name = SECURITY, description = "Users, roles, role mappings, tokens, API keys and \
                                         SAML, as Elasticsearch serves them under `/_security`."),
        (name = OAUTH, description = "Token, revocation, introspection, client registration \
                                      and server metadata endpoints."),
        (name = TESSERA, description = "Probes, metrics and this document."),
    )
)]
struct Document;

/// The credentials the API accepts.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An access token from `POST /_security/oauth2/token` or `/oauth2/token`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`ApiKey <encoded>`: the `encoded` value of `POST /_security/api_key`.",
            ))),
        );
        components.add_security_scheme(
            "oauth2_client",
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::ClientCredentials(ClientCredentials::new(
                    "/oauth2/token",
                    Scopes::new(),
                ))],
                "A registered client's credentials: HTTP Basic (`client_secret_basic`) \
                 or `client_id` and `client_secret` in the form (`client_secret_post`).",
            )),
        );
    }
}

/// Every route of the API with its documentation: the one table the
/// router and the document are built from.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(Document::openapi())
        .routes(routes!(tokens::get_token, tokens::invalidate_token))
        .routes(routes!(crate::authenticate))
        .routes(routes!(node::root))
        .routes(routes!(node::builtin_privileges))
        .routes(routes!(
            privileges::put_privileges,
            privileges::get_all_privileges
        ))
        .routes(routes!(privileges::get_application))
        .routes(routes!(
            privileges::get_named,
            privileges::delete_privileges
        ))
        .routes(routes!(users::get_users))
        .routes(routes!(has_privileges::has_privileges))
        .routes(routes!(has_privileges::has_privileges_of))
        .routes(routes!(has_privileges::user_privileges_of_caller))
        .routes(routes!(users::change_own_password))
        .routes(routes!(
            users::put_user,
            users::get_user,
            users::delete_user
        ))
        .routes(routes!(users::change_password))
        .routes(routes!(users::enable_user))
        .routes(routes!(users::disable_user))
        .routes(routes!(roles::get_roles))
        .routes(routes!(
            roles::put_role,
            roles::get_role,
            roles::delete_role
        ))
        .routes(routes!(role_mappings::get_role_mappings))
        .routes(routes!(
            role_mappings::put_role_mapping,
            role_mappings::get_role_mapping,
            role_mappings::delete_role_mapping
        ))
        .routes(routes!(
            api_keys::create,
            api_keys::get,
            api_keys::invalidate
        ))
        .routes(routes!(api_keys::clear_cache))
        .routes(routes!(api_key_grant::grant))
        .routes(routes!(api_key_update::update))
        .routes(routes!(api_key_update::bulk_update))
        .routes(routes!(queries::query_api_keys))
        .routes(routes!(queries::query_users))
        .routes(routes!(service_accounts::get_all))
        .routes(routes!(service_accounts::get_namespace))
        .routes(routes!(service_accounts::get_one))
        .routes(routes!(service_accounts::create_generated))
        .routes(routes!(
            service_accounts::create_named,
            service_accounts::delete
        ))
        .routes(routes!(service_accounts::credentials))
        .routes(routes!(oidc::login::prepare))
        .routes(routes!(oidc::login::authenticate))
        .routes(routes!(oidc::logout::logout))
        .routes(routes!(saml::login::prepare))
        .routes(routes!(saml::login::authenticate))
        .routes(routes!(saml::logout::logout))
        .routes(routes!(saml::logout::invalidate))
        .routes(routes!(saml::logout::complete_logout))
        .routes(routes!(saml::metadata))
        .routes(routes!(oauth::token))
        .routes(routes!(oauth::revoke))
        .routes(routes!(oauth::introspect))
        .routes(routes!(oauth::register, oauth::list_clients))
        .routes(routes!(
            oauth::get_client,
            oauth::update_client,
            oauth::delete_client
        ))
        .routes(routes!(oauth::rotate_secret))
        .routes(routes!(oauth::server_metadata))
        .routes(routes!(crate::ready))
        .routes(routes!(crate::live))
        .routes(routes!(crate::render_metrics))
        .routes(routes!(document))
}

/// The document as JSON, built once.
static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| {
    let (_, doc) = routes().split_for_parts();
    Bytes::from(
        doc.to_pretty_json()
            .expect("the OpenAPI document serializes"),
    )
});

/// Builds the document now rather than on its first request.
pub(crate) fn build() {
    LazyLock::force(&DOCUMENT);
}

/// The OpenAPI document of this API.
#[utoipa::path(
    get,
    path = "/_tessera/openapi.json",
    tag = TESSERA,
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of every endpoint.",
         content_type = "application/json", body = Object),
        schemas::EsErrors,
    )
)]
async fn document(Caller(_caller): Caller) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.clone(),
    )
        .into_response()
}
