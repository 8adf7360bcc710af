//! The parsing surface the fuzz targets in `fuzz/` drive, one function per
//! target. Each takes arbitrary bytes, runs the same code a request runs
//! before any lookup, and panics only if an invariant breaks: every
//! failure must be a 4xx in the API's own shape, and the token checks must
//! agree with each other. The corpus replay test
//! (`crates/tessera/tests/fuzz_replay.rs`) calls the same functions on the
//! stable toolchain.
//!
//! Not an API: hidden from the documentation and free to change.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Map, Value};
use tessera_domain::privilege::RoleDescriptor;
use tessera_domain::role_mapping::{RoleMapping, UserData};
use tessera_domain::token::{self, TokenKey, TokenKind, TokenString};
use tessera_domain::{api_key, oauth as domain_oauth, time};

use crate::auth::{self, Presented};
use crate::body::parse_json;
use crate::oauth::{self, Form};
use crate::{api_keys, role_mappings, roles, tokens, users};

/// A refusal must be a client error, never a 5xx.
fn assert_client_error(response: impl IntoResponse, what: &str) {
    let status = response.into_response().status();
    assert!(
        status.is_client_error(),
        "{what} was refused with {status}, not a 4xx"
    );
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// Token string decoding: `TokenString::hash_as` for both kinds,
/// `is_well_formed`, `TokenKey::of` and `decodes_as_base64`.
pub fn token_string(data: &[u8]) {
    let s = text(data);
    let token = TokenString::from_presented(&s);
    let mut kinds = 0;
    for kind in [TokenKind::Access, TokenKind::Refresh] {
        let hash = token.hash_as(kind);
        assert_eq!(hash.is_some(), token.is_well_formed(kind));
        if let Some(hash) = hash {
            kinds += 1;
            // The stored form does not depend on which question found it.
            assert!(hash == TokenKey::of(&s), "hash_as disagrees with of");
            assert!(hash == token.hash());
            assert!(token::decodes_as_base64(&s), "a token that is not base64");
            assert!(
                s.len() == 55 || s.len() == 44,
                "a token of {} bytes",
                s.len()
            );
        }
    }
    assert!(kinds <= 1, "a string is a token of both kinds");
    let _ = token::decodes_as_base64(&s);
}

/// `Authorization` header parsing, as the administrative API does it
/// (`Basic`, `Bearer`, `ApiKey` with its credential decoding) and as the
/// OAuth endpoints do it (HTTP Basic client authentication).
pub fn authorization_header(data: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    match auth::parse_authorization(&value) {
        Ok(Presented::Basic(creds)) => {
            assert!(!creds.username.contains(':'), "a username with a colon");
        }
        Ok(Presented::Bearer(t)) => {
            let _ = TokenString::from_presented(t).hash_as(TokenKind::Access);
        }
        Ok(Presented::ApiKey(encoded)) => {
            if let Some((id, _secret)) = api_key::decode_credentials(encoded) {
                assert!(!id.contains(':'), "an API key id with a colon");
            }
        }
        Ok(Presented::Other) => {}
        Err(e) => {
            assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
            assert_client_error(e, "an Authorization header");
        }
    }
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, value);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let form = Form::parse(&headers, b"").expect("an empty form parses");
    match oauth::presented(&headers, &form) {
        Ok(Some(oauth::Presented::Basic(text))) => {
            let _ = domain_oauth::decode_basic_client(&text);
        }
        Ok(_) => {}
        Err(e) => assert_client_error(e, "an OAuth Authorization header"),
    }
}

/// Every JSON request body: the first byte picks the request type, the
/// rest is the body. It is parsed as `body::JsonBody` parses it and then
/// validated as its handler validates it before any lookup.
pub fn json_body(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let outcome = match which % 8 {
        0 => parse_json::<tokens::TokenRequest>(body).and_then(|r| r.validate().map(drop)),
        1 => parse_json::<tokens::InvalidateRequest>(body).and_then(|r| r.validate().map(drop)),
        2 => parse_json::<users::PutUserRequest>(body).and_then(|r| {
            r.validate("jane")?;
            let (password, hash) = r.new_password();
            users::check_new_password(password, hash)
        }),
        3 => parse_json::<users::ChangePasswordRequest>(body).and_then(|r| {
            r.validate()?;
            let (password, hash) = r.new_password();
            users::check_new_password(password, hash)
        }),
        4 => parse_json::<RoleDescriptor>(body).and_then(|role| {
            roles::check_cluster_privileges(&role)?;
            // What is stored reads back as the same descriptor.
            let role = role.normalized();
            let stored = serde_json::to_value(&role).expect("a descriptor serialises");
            let again: RoleDescriptor =
                serde_json::from_value(stored).expect("a stored descriptor reads back");
            assert!(again == role, "a descriptor changes when stored");
            Ok(())
        }),
        5 => parse_json::<api_keys::CreateRequest>(body).and_then(|r| r.validate().map(drop)),
        6 => {
            parse_json::<api_keys::InvalidateRequest>(body).and_then(|mut r| r.validate().map(drop))
        }
        _ => {
            // /oauth2/register and PUT /oauth2/register/{id}: RFC 7591
            // metadata, ignoring members it does not know.
            if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
                register_metadata(&map);
            }
            Ok(())
        }
    };
    if let Err(e) = outcome {
        assert_client_error(e, "a JSON body");
    }
}

/// `PUT /_security/role_mapping/{name}` bodies: the document and its
/// rules (patterns, regular expressions, DNs). What is accepted reads back
/// as the same mapping and can be evaluated against users made of its own
/// strings without a panic.
pub fn role_mapping(data: &[u8]) {
    let mapping = match parse_json::<Value>(data)
        .and_then(|v| RoleMapping::parse("m", &v).map_err(role_mappings::refused))
    {
        Ok(mapping) => mapping,
        Err(e) => return assert_client_error(e, "a role mapping"),
    };
    let stored = serde_json::to_value(&mapping).expect("a mapping serialises");
    let again: RoleMapping = serde_json::from_value(stored).expect("a stored mapping reads back");
    assert!(again == mapping, "a mapping changes when stored");
    let mut strings = Vec::new();
    collect_strings(
        &serde_json::to_value(&mapping.rules).unwrap_or_default(),
        &mut strings,
    );
    for s in strings.iter().take(16) {
        let user = UserData {
            username: s.clone(),
            dn: Some(s.clone()),
            groups: strings.iter().take(4).cloned().collect(),
            realm_name: s.clone(),
            metadata: strings
                .iter()
                .take(4)
                .map(|k| (k.clone(), Value::String(s.clone())))
                .collect(),
        };
        mapping.applies_to(&user);
    }
}

fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k.trim_start_matches("metadata.").to_owned());
            collect_strings(v, out);
        }),
        _ => {}
    }
}

fn register_metadata(map: &Map<String, Value>) {
    match oauth::metadata_from(map) {
        Ok(metadata) if !metadata.scope.is_empty() => {
            // What was accepted reads back as valid.
            let again = domain_oauth::parse_scope(&metadata.scope_text());
            assert!(again.is_ok(), "an accepted scope does not parse again");
        }
        Ok(_) => {}
        Err(e) => assert_client_error(e, "client metadata"),
    }
}

/// The OAuth endpoints' form bodies: RFC 6749's parameter rules, client
/// authentication in the body, `grant_type` and `scope`.
pub fn form_body(data: &[u8]) {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let form = match Form::parse(&headers, data) {
        Ok(form) => form,
        Err(e) => return assert_client_error(e, "a form body"),
    };
    if let Err(e) = oauth::presented(&headers, &form) {
        assert_client_error(e, "client credentials in a form body");
    }
    if let Some(grant) = form.get("grant_type") {
        if let Some(g) = domain_oauth::GrantType::parse(grant) {
            assert_eq!(g.as_str(), grant);
        }
    }
    if let Some(scope) = form.get("scope") {
        if let Ok(tokens) = domain_oauth::parse_scope(scope) {
            assert!(tokens.iter().all(|t| !t.is_empty() && !t.contains(' ')));
        }
    }
    if let Some(t) = form.get("token") {
        token_string(t.as_bytes());
    }
}

/// Elasticsearch time units.
pub fn time_unit(data: &[u8]) {
    let s = text(data);
    if let Ok(d) = time::parse_time_value(&s) {
        assert!(time::millis(d) >= 0);
        let trimmed = s.trim();
        assert!(
            trimmed.starts_with(|c: char| c.is_ascii_digit()),
            "[{s}] parsed without a leading number"
        );
    }
}
