//! Against a real third-party IdP: samlify (npm, `tests/idp/saml`), started
//! here on a free port. The test plays the dashboard: prepare, follow the
//! redirect to the IdP, post its login form, take the `SAMLResponse` from
//! the auto-post form, and hand it to the verifier.
//!
//! Needs `node` and `npm ci` in `tests/idp/saml` (`.ci/run` does it). When
//! they are missing the test says so and passes, except under `CI=true`,
//! where it fails.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use tessera_realms::saml::requests::new_request_id;
use tessera_realms::saml::{
    process_response, Rule, SamlError, SamlIdentity, SamlRealm, SamlRealmSettings, Validation,
};
use tessera_realms::testing::samlify::{input, start_or_skip, ENTITY};

use crate::support::{data, SETTINGS};

fn now_ms() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(d.as_millis()).unwrap()
}

/// A login through the IdP: the realm (built from the IdP's own metadata),
/// the `SAMLResponse` it posted, and the id of the request it answers; or
/// `None` when the IdP cannot run here (and CI is not set).
fn login(encrypt: bool) -> Option<(SamlRealm, String, String)> {
    let settings = SETTINGS.replace("https://idp.example.org/", ENTITY);
    let config = SamlRealmSettings::from_toml(&settings)
        .unwrap()
        .validate("saml1")
        .unwrap();
    let (enc_cert, enc_key) = (data("sp-encryption.crt"), data("sp-encryption.key"));
    let encryption = encrypt.then_some((enc_cert.as_str(), enc_key.as_str()));
    // The SP metadata the IdP is configured with is the one Tessera serves.
    let bootstrap = SamlRealm::new(
        config.clone(),
        &crate::support::idp_metadata(ENTITY),
        None,
        encryption,
    )
    .unwrap();
    let sp_metadata = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(sp_metadata.path(), bootstrap.sp_metadata()).unwrap();

    let idp = start_or_skip(sp_metadata.path(), encrypt)?;
    let http = reqwest::blocking::Client::new();
    let metadata = http
        .get(format!("{}/metadata", idp.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let realm =
        SamlRealm::new(config, &metadata, None, encryption).expect("samlify's metadata loads");
    assert_eq!(realm.trusted.fingerprints().len(), 1);

    // prepare → the IdP's login form → the auto-post form.
    let id = new_request_id();
    let prepared = realm
        .authn_request(&id, now_ms(), Some("after-login"))
        .unwrap();
    assert!(prepared
        .redirect
        .starts_with(&format!("{}/sso?SAMLRequest=", idp.base)));
    let form = http.get(&prepared.redirect).send().unwrap();
    assert_eq!(form.status(), 200);
    let form = form.text().unwrap();
    assert_eq!(input(&form, "request_id"), id);
    let posted = http
        .post(format!("{}/login", idp.base))
        .form(&[
            ("username", "alice"),
            ("request_id", &input(&form, "request_id")),
            ("RelayState", &input(&form, "RelayState")),
        ])
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(posted.contains(r#"action="https://dashboard.example.org/api/security/saml/callback""#));
    assert_eq!(input(&posted, "RelayState"), "after-login");
    Some((realm, input(&posted, "SAMLResponse"), id))
}

/// The realm's answer to `content` (a posted `SAMLResponse`) from a caller
/// whose requests in flight are `ids`, now.
fn process(realm: &SamlRealm, content: &str, ids: &[String]) -> Result<SamlIdentity, SamlError> {
    process_response(
        realm,
        content,
        Validation {
            ids,
            now_ms: now_ms(),
        },
    )
}

fn decode(content: &str) -> String {
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(content)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn a_samlify_response_is_accepted_and_a_changed_byte_refused() {
    let Some((realm, content, id)) = login(false) else {
        return;
    };
    let ids = vec![id.clone()];
    let identity = process(&realm, &content, &ids).expect("the samlify Response is accepted");
    assert_eq!(identity.principal, "alice-persistent-id");
    assert_eq!(identity.groups, ["admins"]);
    assert_eq!(identity.mail.as_deref(), Some("alice@example.org"));
    assert_eq!(identity.in_response_to.as_deref(), Some(id.as_str()));
    assert!(identity.session_index.is_some());

    // One byte of the NameID changed: the signature no longer verifies.
    let xml = decode(&content);
    assert_eq!(xml.matches(">alice-persistent-id<").count(), 1, "{xml}");
    let tampered = xml.replace(">alice-persistent-id<", ">alicf-persistent-id<");
    let tampered = base64::engine::general_purpose::STANDARD.encode(tampered);
    let e = process(&realm, &tampered, &ids).unwrap_err();
    assert_eq!(e.rule, Rule::Signature, "{e}");

    // The same Response to a caller that did not send the request.
    let e = process(&realm, &content, &[]).unwrap_err();
    assert_eq!(e.rule, Rule::InResponseTo, "{e}");
    assert_eq!(e.unsolicited_in_response_to.as_deref(), Some(id.as_str()));
}

#[test]
fn a_samlify_encrypted_assertion_is_decrypted_and_accepted() {
    let Some((realm, content, id)) = login(true) else {
        return;
    };
    let xml = decode(&content);
    assert!(
        xml.contains("EncryptedAssertion") && !xml.contains("alice-persistent-id"),
        "{xml}"
    );
    let ids = vec![id];
    let identity =
        process(&realm, &content, &ids).expect("the encrypted samlify Response is accepted");
    assert_eq!(identity.principal, "alice-persistent-id");

    // Without the SP's key it cannot be read.
    let mut keyless = realm.clone();
    keyless.decryption = None;
    let e = process(&keyless, &content, &ids).unwrap_err();
    assert_eq!(e.rule, Rule::Decryption, "{e}");
}
