//! The back channel to an OpenID provider: the token request, userinfo
//! and discovery, with the realm's timeouts and a pool whose idle
//! connections are dropped before providers drop them (three minutes).
//!
//! A request is retried once, and only when the connection could not be
//! made: the request cannot have reached the provider, and an
//! authorization code is single-use, so nothing that may have been sent
//! is ever sent again.

use std::time::Duration;

use base64::Engine;
use serde_json::{Map, Value};
use tessera_realms::oidc::flow::{token_response, TokenResponse};
use tessera_realms::oidc::provider::{discovery_url, Discovered};
use tessera_realms::oidc::settings::{ClientAuthMethod, HttpLimits};
use tessera_realms::oidc::{OidcError, OidcRealmConfig, Rule};

/// The most a provider's answer may weigh.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// A realm's HTTP client. Cheap to clone.
#[derive(Clone)]
pub struct BackChannel {
    client: reqwest::Client,
}

impl std::fmt::Debug for BackChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackChannel")
    }
}

impl BackChannel {
    pub fn new(limits: &HttpLimits) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(limits.connect_timeout)
            .read_timeout(limits.read_timeout)
            // The whole exchange, too: a provider that trickles bytes does
            // not hold a login for longer than this.
            .timeout(limits.read_timeout.saturating_mul(2) + limits.connect_timeout)
            .pool_idle_timeout(limits.pool_idle)
            // An OpenID provider's endpoints answer; they do not redirect.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { client })
    }

    /// Sends the request `make` builds; once more only if the first
    /// could not connect.
    async fn send(
        &self,
        make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, reqwest::Error> {
        match make(&self.client).send().await {
            Err(e) if e.is_connect() => {
                tracing::debug!(error = %e, "OpenID provider: connection failed; trying once more");
                make(&self.client).send().await
            }
            other => other,
        }
    }

    /// Exchanges the code at the token endpoint (RFC 6749 §4.1.3) with the
    /// client's credentials, and checks the answer.
    pub async fn exchange_code(
        &self,
        config: &OidcRealmConfig,
        token_endpoint: &str,
        code: &str,
    ) -> Result<TokenResponse, OidcError> {
        let unavailable = |what: String| OidcError::new(Rule::Unavailable, what);
        let secret = config
            .client_secret
            .as_ref()
            .map(|s| s.expose())
            .unwrap_or_default();
        let response = self
            .send(|client| {
                let mut form = form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "authorization_code")
                    .append_pair("code", code)
                    .append_pair("redirect_uri", &config.redirect_uri);
                let request = client
                    .post(token_endpoint)
                    .header(reqwest::header::ACCEPT, "application/json");
                let request = match config.client_auth_method {
                    ClientAuthMethod::Basic => request.header(
                        reqwest::header::AUTHORIZATION,
                        basic(&config.client_id, secret),
                    ),
                    ClientAuthMethod::Post => {
                        form.append_pair("client_id", &config.client_id)
                            .append_pair("client_secret", secret);
                        request
                    }
                };
                request
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form.finish())
            })
            .await
            .map_err(|e| unavailable(format!("token endpoint: {e}")))?;
        let status = response.status();
        let body = read_json(response).await.map_err(|e| {
            OidcError::new(
                Rule::TokenResponse,
                format!("token endpoint ({status}): {e}"),
            )
        })?;
        if !status.is_success() && body.get("error").is_none() {
            return Err(OidcError::new(
                Rule::TokenResponse,
                format!("token endpoint answered {status}"),
            ));
        }
        token_response(&body)
    }

    /// The userinfo claims, asked with the access token.
    pub async fn userinfo(
        &self,
        endpoint: &str,
        access_token: &str,
    ) -> Result<Map<String, Value>, OidcError> {
        let response = self
            .send(|client| {
                client
                    .get(endpoint)
                    .bearer_auth(access_token)
                    .header(reqwest::header::ACCEPT, "application/json")
            })
            .await
            .map_err(|e| OidcError::new(Rule::Unavailable, format!("userinfo endpoint: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(OidcError::new(
                Rule::Userinfo,
                format!("userinfo endpoint answered {status}"),
            ));
        }
        // A signed (JWT) userinfo answer is not supported: JSON only.
        match read_json(response).await {
            Ok(Value::Object(claims)) => Ok(claims),
            Ok(_) => Err(OidcError::new(
                Rule::Userinfo,
                "userinfo is not a JSON object",
            )),
            Err(e) => Err(OidcError::new(Rule::Userinfo, format!("userinfo: {e}"))),
        }
    }

    /// The provider's discovery document, checked.
    pub async fn discover(&self, issuer: &str) -> Result<Discovered, String> {
        let url = discovery_url(issuer);
        let response = self
            .send(|client| client.get(&url))
            .await
            .map_err(|e| format!("[{url}]: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("[{url}] answered {status}"));
        }
        let body = read_bytes(response)
            .await
            .map_err(|e| format!("[{url}]: {e}"))?;
        Discovered::parse(issuer, &body)
    }

    /// A document by URL (a JWKS), at most 256 KiB.
    pub async fn get_bytes(&self, url: &str) -> Result<Vec<u8>, String> {
        let response = self
            .send(|client| client.get(url))
            .await
            .map_err(|e| format!("[{url}]: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("[{url}] answered {status}"));
        }
        read_bytes(response)
            .await
            .map_err(|e| format!("[{url}]: {e}"))
    }
}

/// HTTP Basic credentials as RFC 6749 §2.3.1 has them: each part
/// form-urlencoded first.
fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", enc(id), enc(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

async fn read_bytes(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(format!("the answer is over {MAX_ANSWER_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!("the answer is over {MAX_ANSWER_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn read_json(response: reqwest::Response) -> Result<Value, String> {
    let body = read_bytes(response).await?;
    serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
}

/// How long a realm whose provider could not be discovered waits before
/// trying again.
pub const DISCOVERY_RETRY: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    #[test]
    fn basic_credentials_are_form_encoded_first() {
        // "a b:c" → "a+b" and "c%3A" (RFC 6749 §2.3.1, Appendix B).
        assert_eq!(super::basic("a b", "c:"), "Basic YStiOmMlM0E=");
    }
}
