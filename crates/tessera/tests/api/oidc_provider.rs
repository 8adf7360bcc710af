//! End to end with a real third-party OpenID provider (npm
//! `oidc-provider`, `tests/idp/oidc`): the test plays the dashboard and
//! the browser (a blocking client and a cookie map) against a real
//! `tessera` process configured by its config file. prepare → the
//! provider's login and consent forms → the callback URL → authenticate
//! → `_authenticate`; sixteen concurrent refreshes; logout. Skipped (and
//! said so) where node or `npm ci` is missing, except under `CI=true`.

use std::collections::BTreeMap;

use serde_json::json;
use tessera_realms::testing::oidc::settings;
use tessera_realms::testing::oidc_provider::{form, start_or_skip, Client, Op};
use tessera_testkit::process::Process;

use crate::support::*;

const CALLBACK: &str = "http://127.0.0.1:5601/api/security/oidc/callback";
const LOGGED_OUT: &str = "http://127.0.0.1:5601/security/logged_out";
const CLIENT_ID: &str = "tessera-dashboard";
const CLIENT_SECRET: &str = "a client secret for the test provider";
const REFRESHERS: usize = 16;

struct Setup {
    srv: Api,
    _node: Process,
    op: Op,
    _dir: tempfile::TempDir,
}

fn setup() -> Option<Setup> {
    let op = start_or_skip(&Client {
        id: CLIENT_ID,
        secret: CLIENT_SECRET,
        redirect_uri: CALLBACK,
        post_logout_redirect_uri: LOGGED_OUT,
    })?;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("tessera.toml");
    // Discovery gives the endpoints; userinfo is named, as the provider's
    // ID tokens carry only the protocol claims.
    let realm = format!(
        r#"[realms.oidc.oidc1]
{}op.userinfo_endpoint = "{iss}/me"
rp.requested_scopes = ["email", "profile", "groups"]
rp.post_logout_redirect_uri = "{LOGGED_OUT}"
claims.groups = "groups"
claims.mail = "email"
claims.name = "name"
"#,
        settings(&op.issuer, CLIENT_ID, CALLBACK),
        iss = op.issuer
    );
    std::fs::write(&config_path, realm).unwrap();
    let (srv, node) = serve_for_dashboard(
        "oidc",
        &config_path,
        &[("TESSERA_REALMS_OIDC_OIDC1_RP_CLIENT_SECRET", CLIENT_SECRET)],
        (
            "oidc_admins",
            json!({"roles": ["oidc_admins"], "enabled": true,
                "rules": {"all": [{"field": {"groups": "oidc-admins"}}, {"field": {"realm.name": "oidc1"}}]}}),
        ),
    );
    Some(Setup {
        srv,
        _node: node,
        op,
        _dir: dir,
    })
}

/// A browser: no redirects followed by itself, cookies kept by name.
struct Browser {
    http: reqwest::blocking::Client,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    fn send(&mut self, req: reqwest::blocking::RequestBuilder) -> reqwest::blocking::Response {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let r = req.header("cookie", cookie).send().unwrap();
        for c in r.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let pair = c.split(';').next().unwrap();
            if let Some((k, v)) = pair.split_once('=') {
                self.cookies.insert(k.trim().to_owned(), v.to_owned());
            }
        }
        r
    }

    /// Follows redirects from `url` until a page is shown (its URL and
    /// text) or the browser is sent to the dashboard's callback (its URL).
    fn follow(&mut self, base: &str, mut url: String) -> (String, Option<String>) {
        for _ in 0..10 {
            if url.starts_with(CALLBACK) {
                return (url, None);
            }
            let r = self.send(self.http.get(&url));
            if r.status().is_redirection() {
                url = absolute(base, r.headers()["location"].to_str().unwrap());
                continue;
            }
            assert_eq!(r.status(), 200, "{url}");
            return (url, Some(r.text().unwrap()));
        }
        panic!("too many redirects from {url}");
    }

    /// Posts the page's form with `fields` set, then follows redirects.
    fn submit(
        &mut self,
        base: &str,
        page: &str,
        fields: &[(&str, &str)],
    ) -> (String, Option<String>) {
        let (action, mut inputs) = form(page);
        for (k, v) in fields {
            match inputs.iter_mut().find(|(n, _)| n == k) {
                Some(slot) => slot.1 = (*v).to_owned(),
                None => inputs.push(((*k).to_owned(), (*v).to_owned())),
            }
        }
        let url = absolute(base, &action);
        let r = self.send(self.http.post(&url).form(&inputs));
        assert!(r.status().is_redirection(), "{url}: {}", r.status());
        let next = absolute(base, r.headers()["location"].to_str().unwrap());
        self.follow(base, next)
    }
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http") {
        location.to_owned()
    } else {
        format!("{base}{location}")
    }
}

impl Setup {
    fn prepare(&self) -> Resp {
        dashboard_post(
            &self.srv,
            "/_security/oidc/prepare",
            &json!({"realm": "oidc1"}),
        )
    }

    /// The browser's login at the provider: the callback URL it ends at.
    fn browser_login(&self, redirect: &str) -> String {
        let mut browser = Browser::new();
        let base = &self.op.issuer;
        let (_, page) = browser.follow(base, redirect.to_owned());
        let page = page.expect("the login form");
        let (_, page) = browser.submit(base, &page, &[("login", "alice"), ("password", "x")]);
        let (url, page) = match page {
            Some(consent) => browser.submit(base, &consent, &[]),
            None => (String::new(), None),
        };
        assert!(page.is_none(), "{page:?}");
        assert!(url.starts_with(CALLBACK), "{url}");
        url
    }

    fn authenticate(&self, callback: &str, state: &str, nonce: &str) -> Resp {
        dashboard_post(
            &self.srv,
            "/_security/oidc/authenticate",
            &json!({"redirect_uri": callback, "state": state, "nonce": nonce, "realm": "oidc1"}),
        )
    }
}

#[test]
fn an_oidc_provider_login_refreshes_as_one_and_logs_out() {
    let Some(s) = setup() else {
        return;
    };
    let p = s.prepare();
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(p.str("realm"), "oidc1");
    let redirect = p.str("redirect");
    assert!(
        redirect.starts_with(&format!(
            "{}/auth?scope=openid+email+profile+groups&response_type=code",
            s.op.issuer
        )),
        "{redirect}"
    );
    let (state, nonce) = (p.str("state"), p.str("nonce"));
    assert!(state.len() >= 43 && nonce.len() >= 43);

    let callback = s.browser_login(&redirect);
    assert!(callback.contains("iss="), "RFC 9207: {callback}");
    let login = s.authenticate(&callback, &state, &nonce);
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!(login.body["username"], "alice");
    assert_eq!(
        login.body["authentication"]["roles"],
        json!(["oidc_admins"])
    );
    let access = login.str("access_token");
    let a = s.srv.get(AUTHENTICATE).bearer(&access).send();
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.body["authentication_realm"],
        json!({"name": "oidc1", "type": "oidc"})
    );
    assert_eq!(a.body["roles"], json!(["oidc_admins"]));
    assert_eq!(a.body["email"], "alice@example.org");
    assert_eq!(a.body["full_name"], "Alice Liddell");
    assert_eq!(
        a.body["metadata"]["oidc(groups)"],
        json!(["oidc-admins", "staff"])
    );

    // The same callback again: the code is spent and the ID token used.
    let again = s.authenticate(&callback, &state, &nonce);
    assert_eq!(again.status, 401, "{}", again.text);

    // Sixteen refreshes of one refresh token at the same instant: one new
    // pair, which authenticates at once.
    let refresh = login.str("refresh_token");
    let seen = refresh_race(
        s.srv.base_url(),
        (DASHBOARD, DASHBOARD_PW),
        &refresh,
        REFRESHERS,
    );
    for (status, body, auth, _) in &seen {
        assert_eq!((*status, *auth), (200, 200), "{body}");
        assert_eq!(body["access_token"], seen[0].1["access_token"]);
        assert_eq!(body["refresh_token"], seen[0].1["refresh_token"]);
    }
    let (access, refresh) = (
        seen[0].1["access_token"].as_str().unwrap().to_owned(),
        seen[0].1["refresh_token"].as_str().unwrap().to_owned(),
    );

    let r = dashboard_post(
        &s.srv,
        "/_security/oidc/logout",
        &json!({"token": access, "refresh_token": refresh}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let end = r.str("redirect");
    assert!(
        end.starts_with(&format!("{}/session/end?id_token_hint=", s.op.issuer)),
        "{end}"
    );
    assert!(
        end.contains(
            "post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A5601%2Fsecurity%2Flogged_out"
        ),
        "{end}"
    );
    assert_eq!(s.srv.get(AUTHENTICATE).bearer(&access).send().status, 401);
    let r = s.srv.refresh_as((DASHBOARD, DASHBOARD_PW), &refresh);
    assert_eq!(r.status, 400, "{}", r.text);
}

#[test]
fn a_callback_with_another_state_or_an_error_is_refused() {
    let Some(s) = setup() else {
        return;
    };
    let p = s.prepare();
    let (state, nonce) = (p.str("state"), p.str("nonce"));
    let callback = s.browser_login(&p.str("redirect"));
    let r = s.authenticate(&callback, "another-state", &nonce);
    assert_refused(&r);
    let denied = format!("{CALLBACK}?error=access_denied&error_description=no&state={state}");
    assert_refused(&s.authenticate(&denied, &state, &nonce));
    // The code was never exchanged: the right state still logs in.
    let ok = s.authenticate(&callback, &state, &nonce);
    assert_eq!(ok.status, 200, "{}", ok.text);
}

/// The one 401 every refused login gets.
pub fn assert_refused(r: &Resp) {
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.body["error"]["type"], "security_exception", "{}", r.text);
    assert_eq!(
        r.body["error"]["reason"],
        "unable to authenticate user [<OIDC Token>] for action [cluster:admin/xpack/security/oidc/authenticate]"
    );
}
