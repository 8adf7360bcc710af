//! Blocking HTTP requests to a server under test, read completely.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Method;
use serde_json::Value;

use crate::server::{ADMIN, ADMIN_PW};

/// A blocking client with a generous timeout (a loaded 2-core machine
/// hashes passwords slowly).
pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("building an HTTP client")
}

/// `Basic base64(user:password)`, nothing encoded.
pub fn basic_header(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// `k=v&…`, percent-encoded as forms are.
pub fn form_urlencoded(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The keys of a JSON object, in order.
pub fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// A client of one server: requests to `base` (`http://` and an address),
/// with the conveniences of [`crate::es`] and [`crate::oauth`].
pub struct Api {
    client: Client,
    base: String,
}

impl Api {
    /// A new client of the server at `base`.
    pub fn new(base: &str) -> Self {
        Self::with_client(client(), base)
    }

    /// `client` (and its pool of connections) for the server at `base`.
    pub fn with_client(client: Client, base: &str) -> Self {
        Api {
            client,
            base: base.to_owned(),
        }
    }

    /// `http://` and the address of the server.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The absolute URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn req(&self, method: Method, path: &str) -> Req {
        Req::new(&self.client, &self.base, method, path)
    }

    pub fn get(&self, path: &str) -> Req {
        self.req(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Req {
        self.req(Method::POST, path)
    }

    pub fn put(&self, path: &str) -> Req {
        self.req(Method::PUT, path)
    }

    pub fn delete(&self, path: &str) -> Req {
        self.req(Method::DELETE, path)
    }
}

/// A request being built.
pub struct Req {
    rb: RequestBuilder,
    compatible: bool,
    path: String,
}

impl Req {
    pub fn new(client: &Client, base: &str, method: Method, path: &str) -> Self {
        Req {
            rb: client.request(method, format!("{base}{path}")),
            compatible: false,
            path: path.to_owned(),
        }
    }

    pub fn basic(self, user: &str, password: &str) -> Self {
        self.header("authorization", &basic_header(user, password))
    }

    /// Basic authentication as the bootstrap superuser.
    pub fn admin(self) -> Self {
        self.basic(ADMIN, ADMIN_PW)
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// client_secret_basic (the ids and secrets Tessera mints need no
    /// form-urlencoding).
    pub fn client(self, client: &crate::oauth::TestClient) -> Self {
        self.basic(&client.id, &client.secret)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        if value
            .to_ascii_lowercase()
            .contains("vnd.elasticsearch+json")
        {
            self.compatible = true;
        }
        self.rb = self.rb.header(name, value);
        self
    }

    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        self.rb = self.rb.header(
            name,
            HeaderValue::from_bytes(value).expect("a header value"),
        );
        self
    }

    pub fn json(mut self, body: &Value) -> Self {
        self.rb = self.rb.json(body);
        self
    }

    /// An `application/x-www-form-urlencoded` body.
    pub fn form(self, params: &[(&str, &str)]) -> Self {
        self.body(crate::oauth::FORM, form_urlencoded(params))
    }

    /// A raw body with the given Content-Type.
    pub fn body(self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        let mut this = self.header("content-type", content_type);
        this.rb = this.rb.body(body.into());
        this
    }

    /// Sends the request. On the Elasticsearch API (every path but the
    /// standard OAuth endpoints) it checks what every response must carry:
    /// the `x-elastic-product` header and, unless the request asked for
    /// the compatible media type or the metrics, a JSON body.
    pub fn send(self) -> Resp {
        let response = self.rb.send().expect("the request reaches the server");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().expect("reading the response body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let resp = Resp {
            status,
            headers,
            text,
            body,
        };
        if !is_oauth_path(&self.path) {
            assert_es_response(&resp, &self.path, self.compatible);
        }
        resp
    }
}

/// The standard OAuth 2.0 endpoints, which answer as RFC 6749 says rather
/// than as Elasticsearch does.
fn is_oauth_path(path: &str) -> bool {
    path.starts_with("/oauth2/") || path.starts_with("/.well-known/")
}

fn assert_es_response(resp: &Resp, path: &str, compatible: bool) {
    let status = resp.status;
    assert_eq!(
        resp.header("x-elastic-product"),
        Some("Elasticsearch"),
        "x-elastic-product on {path} ({status})"
    );
    if !compatible && !path.starts_with("/_tessera/metrics") {
        assert_eq!(
            resp.header("content-type"),
            Some("application/json"),
            "content type of {path} ({status}): {}",
            resp.text
        );
        assert!(
            !resp.body.is_null(),
            "{path} ({status}) answered with non-JSON: {:?}",
            resp.text
        );
    }
}

/// A response, read completely.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("an ASCII header"))
    }

    pub fn header_all(&self, name: impl reqwest::header::AsHeaderName) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("an ASCII header").to_owned())
            .collect()
    }

    /// The body's top-level keys, in order.
    pub fn keys(&self) -> Vec<&str> {
        keys(&self.body)
    }

    /// Asserts the status and the whole body.
    pub fn assert_is(&self, status: u16, body: &Value) {
        assert_eq!((self.status, &self.body), (status, body), "{}", self.text);
    }

    /// The body's string `field`, which must not be empty.
    pub fn nonempty(&self, field: &str) -> String {
        let value = self.str(field);
        assert!(!value.is_empty(), "{field} is empty in {}", self.text);
        value
    }

    pub fn str(&self, field: &str) -> String {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is not a string in {}", self.text))
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_encoded_as_browsers_do() {
        assert_eq!(
            form_urlencoded(&[("a b", "c&d=é"), ("x", "-_.*")]),
            "a+b=c%26d%3D%C3%A9&x=-_.*"
        );
        assert_eq!(basic_header("u", "p"), "Basic dTpw");
    }
}
