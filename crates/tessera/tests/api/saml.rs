//! The SAML realm over HTTP: `/_security/saml/*` as a dashboard calls it,
//! with Responses signed in the test by the test IdP's key
//! (`tessera_realms::testing`), a realm `saml1` from a config file, and
//! the server's manual clock.

use std::path::Path;

use serde_json::{json, Value};
use tessera_realms::testing::{self as fx, Fx};

use crate::support::*;

/// A server with the realm `saml1` (the realms tests' settings) in its
/// config file, a dashboard user holding `kibana_system`, and a role
/// mapping that gives the group `admins` of `saml1` the role `saml_admins`.
struct Saml {
    srv: TestServer,
    _dir: tempfile::TempDir,
}

fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("idp-metadata.xml"), fx::idp_metadata(fx::IDP)).unwrap();
    let config = dir.join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            "[realms.native.default_native]\norder = 0\n\n[realms.saml.saml1]\n{}{extra}",
            fx::SETTINGS
        ),
    )
    .unwrap();
    config
}

impl Saml {
    fn start() -> Saml {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), "");
        let srv = TestServer::start_with(Options {
            config: Some(config),
            ..Options::default().manual_clock()
        });
        srv.put_user(DASHBOARD, DASHBOARD_PW, &["kibana_system"]);
        let r = srv
            .put("/_security/role_mapping/saml_admins")
            .admin()
            .json(&json!({"roles": ["saml_admins"], "enabled": true,
                "rules": {"all": [{"field": {"realm.name": "saml1"}},
                                  {"field": {"groups": "admins"}}]}}))
            .send();
        assert_eq!(r.status, 200, "{}", r.text);
        Saml { srv, _dir: dir }
    }

    /// A valid Response for the current server time, as the IdP posts it.
    fn response(&self, fx: &Fx) -> String {
        fx::b64(&fx::response(fx, &fx::assertion(fx, true), true))
    }

    fn fx(&self) -> Fx {
        Fx::at(self.srv.now())
    }

    fn authenticate(&self, content: &str) -> Resp {
        dashboard_post(
            &self.srv,
            "/_security/saml/authenticate",
            &json!({"content": content, "ids": [fx::REQUEST_ID], "realm": "saml1"}),
        )
    }

    fn tokens_stored(&self) -> i64 {
        count_tokens(&open_db_read_only(&self.srv.db_path()))
    }

    fn login(&self) -> Value {
        let r = self.authenticate(&self.response(&self.fx()));
        assert_eq!(r.status, 200, "{}", r.text);
        r.body
    }
}

#[test]
fn a_login_gives_a_pair_whose_user_is_of_the_saml_realm() {
    let s = Saml::start();
    let body = s.login();
    assert_eq!(body["username"], "alice-persistent-id");
    assert_eq!(body["realm"], "saml1");
    assert!(body["expires_in"].as_i64().unwrap() > 0);
    let access = body["access_token"].as_str().unwrap();
    let r = s.srv.get(AUTHENTICATE).bearer(access).send();
    assert_eq!(r.status, 200, "{}", r.text);
    let saml1 = json!({"name": "saml1", "type": "saml"});
    assert_eq!(r.body["authentication_realm"], saml1);
    assert_eq!(r.body["lookup_realm"], saml1);
    assert_eq!(r.body["authentication_type"], "token");
    assert_eq!(r.body["roles"], json!(["saml_admins"]));
    assert_eq!(r.body["full_name"], "Alice Liddell");
    assert_eq!(r.body["email"], "alice@example.org");
    let meta = &r.body["metadata"];
    assert_eq!(meta["saml_nameid"], "alice-persistent-id");
    assert_eq!(
        meta["saml_nameid_format"],
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    );
    assert_eq!(meta["saml(urn:oid:2.5.4.3)"], json!(["Alice Liddell"]));
    assert_eq!(meta["saml_email"], json!(["alice@example.org"]));
    // The token metadata is never shown.
    assert!(!r.text.contains("saml_session"), "{}", r.text);
    assert!(!r.text.contains("_session42"), "{}", r.text);
}

#[test]
fn only_the_dashboard_that_obtained_the_pair_may_refresh_it() {
    let s = Saml::start();
    s.srv.put_user("other", DASHBOARD_PW, &["kibana_system"]);
    let body = s.login();
    let refresh = body["refresh_token"].as_str().unwrap();
    let grant = json!({"grant_type": "refresh_token", "refresh_token": refresh});
    let r = s
        .srv
        .post(TOKEN)
        .basic("other", DASHBOARD_PW)
        .json(&grant)
        .send();
    assert_eq!(r.status, 400, "{}", r.text);
    let r = dashboard_post(&s.srv, TOKEN, &grant);
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s
        .srv
        .get(AUTHENTICATE)
        .bearer(&r.str("access_token"))
        .send();
    assert_eq!(
        r.body["authentication_realm"]["name"], "saml1",
        "{}",
        r.text
    );
}

/// The one 401 every refusal gets.
#[track_caller]
fn assert_refused(r: &Resp) {
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.body["error"]["type"], "security_exception", "{}", r.text);
    assert_eq!(
        r.body["error"]["reason"],
        "unable to authenticate user [<unauthenticated-saml-user>] for action [cluster:admin/xpack/security/saml/authenticate]"
    );
}

#[test]
fn refused_responses_get_one_401_and_store_nothing() {
    let s = Saml::start();
    let base = s.fx();
    let signed = |fx: &Fx| fx::b64(&fx::response(fx, &fx::assertion(fx, true), true));
    // Two assertions, each signed or not, in a Response signed or not.
    let two = |(a, a_signed): (&Fx, bool), (b, b_signed): (&Fx, bool), signed: bool| {
        let assertions = fx::assertion(a, a_signed) + &fx::assertion(b, b_signed);
        fx::b64(&fx::response(&base, &assertions, signed))
    };
    let mut cases: Vec<(&str, String)> = vec![
        (
            "unsigned",
            fx::b64(&fx::response(&base, &fx::assertion(&base, false), false)),
        ),
        (
            "wrong audience",
            signed(&Fx {
                audience: "https://elsewhere.example.org/".into(),
                ..base.clone()
            }),
        ),
        ("DOCTYPE", {
            let xml = fx::response(&base, &fx::assertion(&base, true), true);
            fx::b64(&format!("<!DOCTYPE x [<!ENTITY e \"e\">]>{xml}"))
        }),
    ];
    // Wrapping: a signed assertion for alice, and beside it an unsigned
    // one for mallory in an unsigned Response.
    let evil = Fx {
        assertion_id: "_evil".into(),
        nameid: "mallory".into(),
        ..base.clone()
    };
    cases.push(("wrapped", two((&evil, false), (&base, true), false)));
    cases.push(("not base64", "%%%".into()));
    for (what, fx) in [
        (
            "wrong issuer",
            Fx {
                issuer: "https://evil.example.org/".into(),
                assertion_issuer: "https://evil.example.org/".into(),
                ..base.clone()
            },
        ),
        (
            "wrong recipient",
            Fx {
                recipient: "https://evil.example.org/acs".into(),
                ..base.clone()
            },
        ),
        (
            "wrong destination",
            Fx {
                destination: Some("https://evil.example.org/acs".into()),
                ..base.clone()
            },
        ),
        (
            "not yet valid",
            Fx {
                response_id: base.response_id.clone(),
                assertion_id: base.assertion_id.clone(),
                ..Fx::at(s.srv.now() + 10 * 60_000)
            },
        ),
        (
            "not a success",
            Fx {
                status: "urn:oasis:names:tc:SAML:2.0:status:Requester".into(),
                ..base.clone()
            },
        ),
    ] {
        cases.push((what, signed(&fx)));
    }
    // Signed by a key the IdP's metadata does not hold, with its
    // certificate in KeyInfo.
    let attacker = Some((fx::data("attacker.key"), fx::data("attacker.crt")));
    cases.push((
        "attacker certificate",
        fx::b64(&fx::response(
            &base,
            &fx::assertion_signed_by(&base, attacker),
            false,
        )),
    ));
    let second = Fx {
        assertion_id: "_second".into(),
        ..base.clone()
    };
    cases.push(("two assertions", two((&base, true), (&second, true), true)));
    cases.push(("entity bomb", {
        let xml = fx::response(&base, &fx::assertion(&base, true), true);
        let mut dtd = String::from("<!DOCTYPE x [<!ENTITY a0 \"lol\">");
        for i in 1..10 {
            let j = i - 1;
            dtd.push_str(&format!(
                "<!ENTITY a{i} \"&a{j};&a{j};&a{j};&a{j};&a{j};&a{j};\">"
            ));
        }
        dtd.push_str("]>");
        fx::b64(&format!("{dtd}{}", xml.replace(">alice", ">&a9;alice")))
    }));
    // The realm has no decryption key configured.
    cases.push((
        "encrypted without a key",
        fx::b64(&fx::response(
            &base,
            &fx::encrypted(&fx::assertion(&base, true)),
            true,
        )),
    ));
    let before = s.tokens_stored();
    for (what, content) in &cases {
        let r = s.authenticate(content);
        assert_refused(&r);
        assert!(
            r.body["error"]
                .get("security.saml.unsolicited_in_response_to")
                .is_none(),
            "{what}: {}",
            r.text
        );
    }
    // Expired: the server's clock passes the assertion's end and the skew.
    let late = signed(&base);
    s.srv.advance(5 * 60_000 + 3 * 60_000 + 1_000);
    assert_refused(&s.authenticate(&late));
    assert_eq!(s.tokens_stored(), before);
    // Each was refused by the rule it breaks (the metric's label).
    let metrics = s.srv.get("/_tessera/metrics").admin().send().text;
    for rule in [
        "unsigned",
        "audience",
        "doctype",
        "encoding",
        "issuer",
        "recipient",
        "destination",
        "not_yet_valid",
        "status",
        "signature",
        "assertion_count",
        "decryption",
        "expired",
    ] {
        let line = format!("tessera_saml_responses_total{{realm=\"saml1\",result=\"{rule}\"}}");
        assert!(metrics.contains(&line), "no {line} in\n{metrics}");
    }
}

#[test]
fn an_unknown_in_response_to_names_the_request_id() {
    let s = Saml::start();
    let fx = Fx {
        in_response_to: Some("_lost".into()),
        ..s.fx()
    };
    let r = s.authenticate(&s.response(&fx));
    assert_refused(&r);
    assert_eq!(
        r.body["error"]["security.saml.unsolicited_in_response_to"], "_lost",
        "{}",
        r.text
    );
    assert_eq!(s.tokens_stored(), 0);
}

#[test]
fn a_replayed_response_is_refused() {
    let s = Saml::start();
    let content = s.response(&s.fx());
    assert_eq!(s.authenticate(&content).status, 200);
    let stored = s.tokens_stored();
    assert_refused(&s.authenticate(&content));
    assert_eq!(s.tokens_stored(), stored);
}

#[test]
fn unknown_fields_and_missing_privileges_are_refused() {
    let s = Saml::start();
    let r = dashboard_post(
        &s.srv,
        "/_security/saml/authenticate",
        &json!({"content": "x", "ids": [], "surprise": 1}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    s.srv.put_user("nobody", DASHBOARD_PW, &[]);
    let r = s
        .srv
        .post("/_security/saml/prepare")
        .basic("nobody", DASHBOARD_PW)
        .json(&json!({"realm": "saml1"}))
        .send();
    assert_eq!(r.status, 403, "{}", r.text);
}

#[test]
fn prepare_and_metadata() {
    let s = Saml::start();
    let r = dashboard_post(
        &s.srv,
        "/_security/saml/prepare",
        &json!({"acs": fx::ACS, "relay_state": "here"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["realm"], "saml1");
    assert!(r.str("id").starts_with('_'));
    assert!(r
        .str("redirect")
        .starts_with("https://idp.example.org/sso?tenant=1&SAMLRequest="));
    let r = dashboard_post(
        &s.srv,
        "/_security/saml/prepare",
        &json!({"realm": "saml9"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = s
        .srv
        .get("/_security/saml/metadata/saml1")
        .basic(DASHBOARD, DASHBOARD_PW)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.str("metadata").contains(fx::ACS), "{}", r.text);
}

#[test]
fn logout_takes_the_pair_back_and_sends_the_user_to_the_idp() {
    let s = Saml::start();
    let body = s.login();
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();
    let r = dashboard_post(
        &s.srv,
        "/_security/saml/logout",
        &json!({"token": access, "refresh_token": refresh}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.str("id").starts_with('_'));
    assert!(r
        .str("redirect")
        .starts_with("https://idp.example.org/slo?SAMLRequest="));
    assert_eq!(s.srv.get(AUTHENTICATE).bearer(access).send().status, 401);
    let grant = json!({"grant_type": "refresh_token", "refresh_token": refresh});
    let r = dashboard_post(&s.srv, TOKEN, &grant);
    assert_eq!(r.status, 400, "{}", r.text);
}

#[test]
fn an_idp_logout_request_invalidates_the_sessions_of_its_nameid() {
    let s = Saml::start();
    let first = s.login();
    let second = s.authenticate(&s.response(&Fx {
        assertion_id: "_assert2".into(),
        ..s.fx()
    }));
    assert_eq!(second.status, 200, "{}", second.text);
    let instant = tessera_realms::saml::time::format_instant(s.srv.now());
    let unsigned = fx::idp_logout_query(None, fx::IDP, &instant);
    let r = dashboard_post(
        &s.srv,
        "/_security/saml/invalidate",
        &json!({"query_string": unsigned, "realm": "saml1"}),
    );
    assert_eq!(r.status, 401, "{}", r.text);
    let signed = fx::idp_logout_query(Some(("idp.crt", "idp.key")), fx::IDP, &instant);
    let r = dashboard_post(
        &s.srv,
        "/_security/saml/invalidate",
        &json!({"query_string": signed, "acs": fx::ACS}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["realm"], "saml1");
    assert_eq!(r.body["invalidated"], 2, "{}", r.text);
    assert!(r
        .str("redirect")
        .starts_with("https://idp.example.org/slo?SAMLResponse="));
    for access in [&first["access_token"], &second.body["access_token"]] {
        let r = s
            .srv
            .get(AUTHENTICATE)
            .bearer(access.as_str().unwrap())
            .send();
        assert_eq!(r.status, 401, "{}", r.text);
    }
}

#[test]
fn a_broken_metadata_file_is_ignored_and_a_changed_one_reloaded() {
    let s = Saml::start();
    let path = s._dir.path().join("idp-metadata.xml");
    std::fs::write(&path, "<broken").unwrap();
    s.srv.advance(6_000);
    // The broken file is logged and the previous metadata kept.
    s.login();
    // Metadata for another entity id: the realm's idp.entity_id no longer
    // matches it, so the load fails too and logins keep working.
    std::fs::write(&path, fx::idp_metadata("https://other.example.org/")).unwrap();
    s.srv.advance(6_000);
    let r = s.authenticate(&s.response(&Fx {
        assertion_id: "_assert3".into(),
        ..s.fx()
    }));
    assert_eq!(r.status, 200, "{}", r.text);
    // The IdP's key rotated: once the file is looked at again, Responses
    // signed with the old key are refused.
    let der = |pem: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .encode(tessera_realms::saml::keys::certificate_der(pem).unwrap())
    };
    let rotated = fx::idp_metadata(fx::IDP)
        .replace(&der(&fx::data("idp.crt")), &der(&fx::data("attacker.crt")));
    std::fs::write(&path, rotated).unwrap();
    let old_key = s.response(&Fx {
        assertion_id: "_assert4".into(),
        ..s.fx()
    });
    s.srv.advance(6_000);
    assert_refused(&s.authenticate(&old_key));
}

#[test]
fn complete_logout_checks_the_idps_logout_response() {
    let s = Saml::start();
    let post = |body: Value| dashboard_post(&s.srv, "/_security/saml/complete_logout", &body);
    let signed = fx::b64(&fx::idp_logout_response("_logout1", true));
    let r = post(json!({"realm": "saml1", "ids": ["_logout1"], "content": signed}));
    r.assert_is(200, &json!({}));
    let r = post(json!({"realm": "saml1", "ids": ["_other"], "content": signed}));
    assert_eq!(r.status, 401, "{}", r.text);
    let unsigned = fx::b64(&fx::idp_logout_response("_logout1", false));
    let r = post(json!({"realm": "saml1", "ids": ["_logout1"], "content": unsigned}));
    assert_eq!(r.status, 401, "{}", r.text);
    let r = post(json!({"realm": "saml1", "ids": ["_logout1"]}));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.body["error"]["type"], "action_request_validation_exception",
        "{}",
        r.text
    );
}

#[test]
fn every_endpoint_refuses_unknown_fields_in_the_elasticsearch_shape() {
    let s = Saml::start();
    for path in [
        "prepare",
        "authenticate",
        "logout",
        "invalidate",
        "complete_logout",
    ] {
        let r = s
            .srv
            .post(&format!("/_security/saml/{path}"))
            .basic(DASHBOARD, DASHBOARD_PW)
            .json(&json!({"realm": "saml1", "unexpected": true}))
            .send();
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert!(r.body["error"]["type"].is_string(), "{path}: {}", r.text);
        assert_eq!(r.body["status"], 400, "{path}: {}", r.text);
    }
}

#[test]
fn responses_are_counted_by_realm_and_result() {
    let s = Saml::start();
    let content = s.response(&s.fx());
    assert_eq!(s.authenticate(&content).status, 200);
    assert_eq!(s.authenticate(&content).status, 401);
    let unsigned = {
        let f = s.fx();
        fx::b64(&fx::response(&f, &fx::assertion(&f, false), false))
    };
    assert_eq!(s.authenticate(&unsigned).status, 401);
    let r = s.srv.get("/_tessera/metrics").admin().send();
    assert_eq!(r.status, 200);
    for result in ["success", "assertion_replayed", "unsigned"] {
        let line = format!("tessera_saml_responses_total{{realm=\"saml1\",result=\"{result}\"}}");
        assert!(r.text.contains(&line), "no {line} in\n{}", r.text);
    }
}
