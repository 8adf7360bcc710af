//! End to end with a real third-party IdP (samlify, `tests/idp/saml`):
//! the test plays the dashboard and the browser against a real `tessera`
//! process (the binary Cargo built) configured by its config file.
//! prepare → the IdP's login form → its auto-post form → authenticate →
//! `_authenticate`; the refresh race of elastic/elasticsearch#54289 on the
//! SAML pair; logout. Skipped (and said so) where node or `npm ci` is
//! missing, except under `CI=true`.

use serde_json::json;
use tessera_realms::saml::{SamlRealm, SamlRealmSettings};
use tessera_realms::testing::samlify::{input, start_or_skip, Idp, ENTITY};
use tessera_realms::testing::{self as fx};

use tessera_testkit::process::Process;

use crate::support::*;

const TRIALS: usize = 5;

struct Setup {
    srv: Api,
    _node: Process,
    idp: Idp,
    http: reqwest::blocking::Client,
    _dir: tempfile::TempDir,
}

fn settings() -> String {
    fx::SETTINGS.replace(fx::IDP, ENTITY)
}

/// The IdP (configured with the SP metadata the realm describes) and a
/// server whose realm `saml1` trusts the IdP's metadata.
fn setup() -> Option<Setup> {
    let dir = tempfile::tempdir().unwrap();
    let config = SamlRealmSettings::from_toml(&settings())
        .unwrap()
        .validate("saml1")
        .unwrap();
    let sp_metadata = SamlRealm::new(config, &fx::idp_metadata(ENTITY), None, None)
        .unwrap()
        .sp_metadata();
    let sp_path = dir.path().join("sp-metadata.xml");
    std::fs::write(&sp_path, &sp_metadata).unwrap();
    let idp = start_or_skip(&sp_path, false)?;
    let http = reqwest::blocking::Client::new();
    let idp_metadata = http
        .get(format!("{}/metadata", idp.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    std::fs::write(dir.path().join("idp-metadata.xml"), idp_metadata).unwrap();
    let config_path = dir.path().join("tessera.toml");
    std::fs::write(&config_path, format!("[realms.saml.saml1]\n{}", settings())).unwrap();
    let (srv, node) = serve_for_dashboard(
        "saml",
        &config_path,
        &[],
        (
            "saml_admins",
            json!({"roles": ["saml_admins"], "enabled": true,
                "rules": {"field": {"groups": "admins"}}}),
        ),
    );
    // The IdP was configured with the metadata the server serves.
    let r = srv
        .get("/_security/saml/metadata/saml1")
        .basic(DASHBOARD, DASHBOARD_PW)
        .send();
    assert_eq!(r.str("metadata"), sp_metadata);
    Some(Setup {
        srv,
        _node: node,
        idp,
        http,
        _dir: dir,
    })
}

impl Setup {
    /// The browser at the IdP: its login form for `redirect`, then the
    /// auto-post form; the `SAMLResponse` it posts.
    fn idp_login(&self, redirect: &str, request_id: Option<&str>) -> String {
        let (id, relay) = match request_id {
            Some(_) => {
                let form = self.http.get(redirect).send().unwrap();
                assert_eq!(form.status(), 200);
                let form = form.text().unwrap();
                (input(&form, "request_id"), input(&form, "RelayState"))
            }
            None => (String::new(), String::new()),
        };
        if let Some(expected) = request_id {
            assert_eq!(id, expected);
        }
        let posted = self
            .http
            .post(format!("{}/login", self.idp.base))
            .form(&[
                ("username", "alice"),
                ("request_id", id.as_str()),
                ("RelayState", relay.as_str()),
            ])
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(
            posted.contains(&format!(r#"action="{}""#, fx::ACS)),
            "{posted}"
        );
        input(&posted, "SAMLResponse")
    }

    fn authenticate(&self, content: &str, ids: &[&str]) -> Resp {
        dashboard_post(
            &self.srv,
            "/_security/saml/authenticate",
            &json!({"content": content, "ids": ids}),
        )
    }
}

/// Two refreshes of `refresh` by the dashboard at the same instant, each
/// followed at once by `_authenticate` with what it got.
fn race(s: &Setup, refresh: &str) -> Vec<RefreshSeen> {
    refresh_race(s.srv.base_url(), (DASHBOARD, DASHBOARD_PW), refresh, 2)
}

#[test]
fn a_samlify_login_refreshes_without_a_gap_and_logs_out() {
    let Some(s) = setup() else {
        return;
    };
    let r = dashboard_post(
        &s.srv,
        "/_security/saml/prepare",
        &json!({"realm": "saml1", "relay_state": "/app/home"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.str("id");
    assert!(r
        .str("redirect")
        .starts_with(&format!("{}/sso?SAMLRequest=", s.idp.base)));
    let content = s.idp_login(&r.str("redirect"), Some(&id));
    let login = s.authenticate(&content, &[&id]);
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!(login.body["username"], "alice-persistent-id");
    let access = login.str("access_token");
    let a = s.srv.get(AUTHENTICATE).bearer(&access).send();
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.body["authentication_realm"],
        json!({"name": "saml1", "type": "saml"})
    );
    assert_eq!(a.body["roles"], json!(["saml_admins"]));
    // The same Response again: refused.
    assert_eq!(s.authenticate(&content, &[&id]).status, 401);

    let mut refresh = login.str("refresh_token");
    let mut last_access = access;
    for trial in 0..TRIALS {
        let seen = race(&s, &refresh);
        for (status, body, auth_status, auth) in &seen {
            assert_eq!(*status, 200, "trial {trial}: {body}");
            assert_eq!(*auth_status, 200, "trial {trial}: {auth}");
            assert_eq!(
                auth["authentication_realm"]["name"], "saml1",
                "trial {trial}"
            );
        }
        assert_eq!(
            seen[0].1["access_token"], seen[1].1["access_token"],
            "trial {trial}"
        );
        assert_eq!(
            seen[0].1["refresh_token"], seen[1].1["refresh_token"],
            "trial {trial}"
        );
        refresh = seen[0].1["refresh_token"].as_str().unwrap().to_owned();
        last_access = seen[0].1["access_token"].as_str().unwrap().to_owned();
    }

    let r = dashboard_post(
        &s.srv,
        "/_security/saml/logout",
        &json!({"token": last_access, "refresh_token": refresh}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r
        .str("redirect")
        .starts_with(&format!("{}/slo?SAMLRequest=", s.idp.base)));
    assert_eq!(
        s.srv.get(AUTHENTICATE).bearer(&last_access).send().status,
        401
    );
    let r = s.srv.refresh_as((DASHBOARD, DASHBOARD_PW), &refresh);
    assert_eq!(r.status, 400, "{}", r.text);
}

/// IdP-initiated: the IdP posts a Response nobody asked for (samlify
/// writes an empty `InResponseTo`), which the dashboard hands over with no
/// request ids.
#[test]
fn an_idp_initiated_samlify_login_is_accepted() {
    let Some(s) = setup() else {
        return;
    };
    let content = s.idp_login("", None);
    let r = s.authenticate(&content, &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    let a = s
        .srv
        .get(AUTHENTICATE)
        .bearer(&r.str("access_token"))
        .send();
    assert_eq!(
        a.body["lookup_realm"],
        json!({"name": "saml1", "type": "saml"})
    );
}
