//! The request bodies of the OAuth 2.0 endpoints: RFC 6749's
//! `application/x-www-form-urlencoded` parameters, with the body limit.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::state::AppState;

const FORM_MEDIA_TYPE: &str = "application/x-www-form-urlencoded";

pub(super) async fn read_body(state: &AppState, body: Body) -> Result<Bytes, ApiError> {
    let limit = state.settings.max_body_bytes;
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))
}

/// The media type of the request body, lower-cased, without parameters.
pub(super) fn media_type(headers: &HeaderMap) -> Option<String> {
    headers.get(header::CONTENT_TYPE).map(|v| {
        v.to_str()
            .unwrap_or("<not ASCII>")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
}

/// The parameters of an `application/x-www-form-urlencoded` body.
pub(crate) struct Form(HashMap<String, Zeroizing<String>>);

impl Form {
    /// RFC 6749 §3.1/§3.2: parameters without a value count as omitted,
    /// and none may appear twice.
    pub(crate) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Form, ApiError> {
        match media_type(headers).as_deref() {
            Some(FORM_MEDIA_TYPE) => {}
            Some(other) => {
                return Err(ApiError::invalid_request(format!(
                    "Content-Type [{other}] is not supported; send {FORM_MEDIA_TYPE}"
                )))
            }
            None => {
                return Err(ApiError::invalid_request(format!(
                    "the request needs Content-Type {FORM_MEDIA_TYPE}"
                )))
            }
        }
        let mut params = HashMap::new();
        for (name, value) in form_urlencoded::parse(body) {
            if value.is_empty() {
                continue;
            }
            let value = Zeroizing::new(value.into_owned());
            if params.insert(name.to_string(), value).is_some() {
                return Err(ApiError::invalid_request(format!(
                    "parameter [{name}] is included more than once"
                )));
            }
        }
        Ok(Form(params))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.as_str())
    }

    pub(super) fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::invalid_request(format!("missing parameter [{name}]")))
    }
}
