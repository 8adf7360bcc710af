//! The Elasticsearch security API: its paths, conveniences on
//! [`Api`] (and so on every test server) that assert their own success, and assertions on its
//! answers (the error envelope, the 401 challenges, the 403 wording).

use reqwest::header::WWW_AUTHENTICATE;
use serde_json::{json, Value};

use crate::http::Api;
use crate::http::{keys, Resp};
use crate::server::{ADMIN, ADMIN_PW};

pub const AUTHENTICATE: &str = "/_security/_authenticate";
pub const TOKEN: &str = "/_security/oauth2/token";

/// The challenges of an ordinary 401, in Elasticsearch 8's order.
pub const DEFAULT_CHALLENGES: [&str; 3] = [
    "Bearer realm=\"security\"",
    "ApiKey",
    "Basic realm=\"security\" charset=\"UTF-8\"",
];
pub const EXPIRED_CHALLENGE: &str =
    "Bearer realm=\"security\", error=\"invalid_token\", error_description=\"The access token expired\"";
/// The keys of a token response with a refresh token, in order.
pub const PAIR_KEYS: [&str; 5] = [
    "access_token",
    "type",
    "expires_in",
    "refresh_token",
    "authentication",
];
pub const COMPATIBLE_JSON: &str = "application/vnd.elasticsearch+json;compatible-with=8";

impl Api {
    /// Creates (or replaces) a user as the admin; asserts 200.
    pub fn put_user(&self, name: &str, password: &str, roles: &[&str]) {
        let r = self.request_put_user(name, json!({ "password": password, "roles": roles }));
        assert_eq!(r.status, 200, "put user {name}: {}", r.text);
        assert!(r.body["created"].is_boolean(), "{}", r.text);
    }

    /// `PUT /_security/user/{name}` with `body` as the admin; the raw
    /// response.
    pub fn request_put_user(&self, name: &str, body: Value) -> Resp {
        self.put(&format!("/_security/user/{name}"))
            .admin()
            .json(&body)
            .send()
    }

    /// `PUT /_security/role/{name}` with `body` as the admin; the raw
    /// response.
    pub fn request_put_role(&self, name: &str, body: Value) -> Resp {
        self.put(&format!("/_security/role/{name}"))
            .admin()
            .json(&body)
            .send()
    }

    /// Creates a user from a whole `PUT /_security/user/{name}` body as the
    /// admin; asserts `200 {"created": true}`.
    pub fn create_user(&self, name: &str, body: Value) {
        self.request_put_user(name, body)
            .assert_is(200, &json!({ "created": true }));
    }

    /// Creates `role` with the cluster privileges `cluster`, and `user`
    /// with that role alone.
    pub fn put_user_with_cluster(&self, user: &str, password: &str, role: &str, cluster: &[&str]) {
        self.put_role(role, json!({ "cluster": cluster }));
        self.put_user(user, password, &[role]);
    }

    /// Asserts that `GET path` (a user, a role) answers `404 {}` to the admin.
    pub fn assert_missing(&self, path: &str) {
        self.get(path).admin().send().assert_is(404, &json!({}));
    }

    /// `GET /_security/_authenticate` with this `Authorization` header.
    pub fn auth_header(&self, authorization: &str) -> Resp {
        self.get(AUTHENTICATE)
            .header("authorization", authorization)
            .send()
    }

    pub fn put_role(&self, name: &str, body: Value) {
        let r = self.request_put_role(name, body);
        assert_eq!(r.status, 200, "put role {name}: {}", r.text);
        assert_eq!(r.body, json!({"role": {"created": true}}));
    }

    /// Password grant for `user`, requested by `caller`; the raw response.
    pub fn request_password_grant(&self, caller: (&str, &str), user: &str, password: &str) -> Resp {
        self.post(TOKEN)
            .basic(caller.0, caller.1)
            .json(&json!({ "grant_type": "password", "username": user, "password": password }))
            .send()
    }

    /// Password grant for `user`, requested by `caller`; asserts 200 and
    /// returns the whole body.
    pub fn password_grant_by(&self, caller: (&str, &str), user: &str, password: &str) -> Value {
        let r = self.request_password_grant(caller, user, password);
        assert_eq!(r.status, 200, "password grant for {user}: {}", r.text);
        r.nonempty("access_token");
        r.nonempty("refresh_token");
        r.body
    }

    /// Password grant for `user`, requested by the admin.
    pub fn password_grant(&self, user: &str, password: &str) -> Tokens {
        Tokens::from_body(&self.password_grant_by((ADMIN, ADMIN_PW), user, password))
    }

    /// `POST /_security/oauth2/token` as the admin with `body`.
    pub fn token_request(&self, body: Value) -> Resp {
        self.post(TOKEN).admin().json(&body).send()
    }

    /// A token request whose body is sent as JSON byte for byte, however
    /// malformed.
    pub fn raw_token_request(&self, body: impl Into<Vec<u8>>) -> Resp {
        self.post(TOKEN)
            .admin()
            .body("application/json", body)
            .send()
    }

    /// The role `name` as the admin reads it; asserts 200.
    pub fn role(&self, name: &str) -> Value {
        let r = self.get(&format!("/_security/role/{name}")).admin().send();
        assert_eq!(r.status, 200, "{}", r.text);
        r.body[name].clone()
    }

    /// Client-credentials grant requested by `user`; the raw response.
    pub fn request_client_credentials(&self, user: &str, password: &str) -> Resp {
        self.post(TOKEN)
            .basic(user, password)
            .json(&json!({ "grant_type": "client_credentials" }))
            .send()
    }

    /// Client-credentials grant for the Basic-authenticated caller.
    pub fn client_credentials(&self, user: &str, password: &str) -> String {
        let r = self.request_client_credentials(user, password);
        assert_eq!(r.status, 200, "client_credentials for {user}: {}", r.text);
        assert!(r.body.get("refresh_token").is_none(), "{}", r.text);
        r.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Refresh as `caller`; returns the raw response.
    pub fn refresh_as(&self, caller: (&str, &str), refresh_token: &str) -> Resp {
        self.post(TOKEN)
            .basic(caller.0, caller.1)
            .json(&json!({ "grant_type": "refresh_token", "refresh_token": refresh_token }))
            .send()
    }

    pub fn refresh(&self, refresh_token: &str) -> Resp {
        self.refresh_as((ADMIN, ADMIN_PW), refresh_token)
    }

    /// Refresh as `caller`; asserts a 200 with a new pair for `user` and
    /// returns the pair.
    pub fn assert_refresh_ok(
        &self,
        caller: (&str, &str),
        refresh_token: &str,
        user: &str,
    ) -> Tokens {
        let r = self.refresh_as(caller, refresh_token);
        assert_eq!(r.status, 200, "refresh: {}", r.text);
        assert_eq!(r.keys(), PAIR_KEYS, "{}", r.text);
        assert_eq!(r.body["type"], "Bearer", "{}", r.text);
        assert_eq!(r.body["authentication"]["username"], user, "{}", r.text);
        assert_eq!(
            r.body["authentication"]["authentication_type"], "token",
            "{}",
            r.text
        );
        let pair = Tokens::from_body(&r.body);
        assert_ne!(pair.refresh, refresh_token);
        pair
    }

    pub fn invalidate(&self, body: Value) -> Resp {
        self.delete(TOKEN).admin().json(&body).send()
    }

    pub fn auth_bearer(&self, token: &str) -> Resp {
        self.get(AUTHENTICATE).bearer(token).send()
    }

    pub fn auth_basic(&self, user: &str, password: &str) -> Resp {
        self.get(AUTHENTICATE).basic(user, password).send()
    }

    /// Asserts Basic authentication of `user` succeeds.
    pub fn assert_basic_ok(&self, user: &str, password: &str) {
        let r = self.auth_basic(user, password);
        assert_eq!(r.status, 200, "basic auth of {user}: {}", r.text);
        assert_eq!(r.body["username"], user);
        assert_eq!(r.body["authentication_type"], "realm");
    }

    /// Asserts Basic authentication of `user` fails with Elasticsearch's 401.
    pub fn assert_basic_refused(&self, user: &str, password: &str) {
        let r = self.auth_basic(user, password);
        assert_unauthenticated(
            &r,
            &format!("unable to authenticate user [{user}] for REST request [{AUTHENTICATE}]"),
        );
    }

    pub fn assert_bearer_ok(&self, token: &str, user: &str) {
        let r = self.auth_bearer(token);
        assert_eq!(r.status, 200, "bearer auth as {user}: {}", r.text);
        assert_eq!(r.body["username"], user);
        assert_eq!(r.body["authentication_type"], "token");
    }
}

/// An access/refresh pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl Tokens {
    pub fn from_body(body: &Value) -> Self {
        Tokens {
            access: body["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            refresh: body["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
        }
    }
}

/// Asserts the status and the `error.type` of an Elasticsearch error.
pub fn assert_error_type(r: &Resp, status: u16, kind: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body["error"]["type"], kind, "{}", r.text);
}

/// Asserts an Elasticsearch error envelope: status, type and exact reason,
/// in the error and in its single root cause. No `WWW-Authenticate` unless
/// the status is 401 (checked elsewhere).
pub fn assert_es_error(r: &Resp, status: u16, kind: &str, reason: &str) {
    assert_es_error_matching(r, status, kind, |got| got == reason, reason);
}

/// Like [`assert_es_error`], with a reason that contains `part`.
pub fn assert_es_error_containing(r: &Resp, status: u16, kind: &str, part: &str) {
    assert_es_error_matching(r, status, kind, |got| got.contains(part), part);
}

/// Like [`assert_es_error`], with the reason checked by `ok`.
pub fn assert_es_error_matching(
    r: &Resp,
    status: u16,
    kind: &str,
    ok: impl Fn(&str) -> bool,
    what: &str,
) {
    assert_eq!(r.status, status, "status; body: {}", r.text);
    assert_eq!(r.body["status"], json!(status), "body.status: {}", r.text);
    let error = &r.body["error"];
    assert_eq!(error["type"], kind, "error.type: {}", r.text);
    let reason = error["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.reason in {}", r.text));
    assert!(ok(reason), "error.reason {reason:?} is not {what:?}");
    let causes = error["root_cause"]
        .as_array()
        .unwrap_or_else(|| panic!("no root_cause in {}", r.text));
    assert_eq!(causes.len(), 1, "{}", r.text);
    assert_eq!(causes[0]["type"], kind, "{}", r.text);
    assert_eq!(causes[0]["reason"], reason, "{}", r.text);
    assert_eq!(keys(&r.body), ["error", "status"], "{}", r.text);
    if status != 401 {
        assert!(r.header_all(WWW_AUTHENTICATE).is_empty(), "{:?}", r.headers);
        assert!(error.get("header").is_none(), "{}", r.text);
    }
}

/// Asserts an ordinary 401: `security_exception` with `reason`, the three
/// default challenges as headers (in order) and in the body, both in the
/// error and in its root cause.
pub fn assert_unauthenticated(r: &Resp, reason: &str) {
    assert_es_error(r, 401, "security_exception", reason);
    assert_challenges(r, &DEFAULT_CHALLENGES);
}

/// Asserts the `WWW-Authenticate` challenges of a 401: as headers, in
/// order, and in the body, in the error and in its root cause (one
/// challenge as a string, several as a list).
pub fn assert_challenges(r: &Resp, challenges: &[&str]) {
    assert_eq!(
        r.header_all(WWW_AUTHENTICATE),
        challenges,
        "{:?}",
        r.headers
    );
    let in_body = match challenges {
        [one] => json!({ "WWW-Authenticate": one }),
        many => json!({ "WWW-Authenticate": many }),
    };
    assert_eq!(r.body["error"]["header"], in_body, "{}", r.text);
    assert_eq!(
        r.body["error"]["root_cause"][0]["header"], in_body,
        "{}",
        r.text
    );
}

/// Asserts the 401 of a password grant whose user's password is refused.
pub fn assert_grant_refused(r: &Resp, user: &str) {
    assert_unauthenticated(
        r,
        &format!("unable to authenticate user [{user}] for action [cluster:admin/xpack/security/token/create]"),
    );
}

/// Asserts Elasticsearch 8's 401 for presented credentials that match nothing.
pub fn assert_unsuccessful_credentials(r: &Resp, detail: &str) {
    assert_unauthenticated(
        r,
        "unable to authenticate with provided credentials and anonymous access is not allowed for this request",
    );
    assert_eq!(
        r.body["error"]["additional_unsuccessful_credentials"], detail,
        "{}",
        r.text
    );
    assert_eq!(
        r.body["error"]["root_cause"][0]["additional_unsuccessful_credentials"], detail,
        "{}",
        r.text
    );
}

/// Asserts the 401 for an expired or invalidated bearer token.
pub fn assert_token_expired(r: &Resp) {
    assert_es_error(r, 401, "security_exception", "token expired");
    assert_challenges(r, &[EXPIRED_CHALLENGE]);
}

/// Asserts the token endpoint's flat OAuth error, exactly.
pub fn assert_oauth_error(r: &Resp, error: &str, description: &str) {
    assert_eq!(r.status, 400, "status; body: {}", r.text);
    assert_eq!(
        r.body,
        json!({ "error": error, "error_description": description }),
        "{}",
        r.text
    );
    assert!(r.header_all(WWW_AUTHENTICATE).is_empty(), "{:?}", r.headers);
}

/// Asserts Elasticsearch's 403 for a missing cluster privilege.
pub fn assert_forbidden(r: &Resp, action: &str, user: &str, roles: &str, granted_by: &str) {
    assert_es_error(
        r,
        403,
        "security_exception",
        &format!(
            "action [{action}] is unauthorized for user [{user}] with effective roles [{roles}], this action is granted by the cluster privileges [{granted_by}]"
        ),
    );
}

/// Invalidation counts.
pub fn counts(invalidated: u64, previously: u64) -> Value {
    json!({ "invalidated_tokens": invalidated, "previously_invalidated_tokens": previously, "error_count": 0 })
}

/// The `_authenticate` object of a native user authenticated by `kind`.
pub fn native_authentication(
    user: &str,
    roles: &[&str],
    full_name: Value,
    email: Value,
    kind: &str,
) -> Value {
    json!({
        "username": user,
        "roles": roles,
        "full_name": full_name,
        "email": email,
        "metadata": {},
        "enabled": true,
        "authentication_realm": { "name": "default_native", "type": "native" },
        "lookup_realm": { "name": "default_native", "type": "native" },
        "authentication_type": kind,
    })
}

/// `token` with one character in the middle changed: the same shape,
/// another token.
pub fn tampered(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}
