//! Outgoing messages (prepare, logout, the answer to an IdP's logout), the
//! incoming logout messages, SP metadata, and settings validation.

use tessera_realms::saml::keys::SigningKey;
use tessera_realms::saml::metadata::IdpMetadata;
use tessera_realms::saml::redirect::{redirect_url, RedirectMessage};
use tessera_realms::saml::requests::{new_request_id, request_id_from, SessionNameId};
use tessera_realms::saml::verify::TrustedKeys;
use tessera_realms::saml::{keys::certificate_der, Rule, SamlRealmSettings};

use crate::support::*;

const SIGNED: &str = "signing.certificate = \"sp-signing.crt\"\nsigning.key = \"sp-signing.key\"\n";

fn sp_keys() -> TrustedKeys {
    TrustedKeys::from_certificates(&[certificate_der(&data("sp-signing.crt")).unwrap()]).unwrap()
}

fn query(url: &str) -> &str {
    url.split_once('?').unwrap().1
}

#[test]
fn request_ids_are_an_underscore_and_40_hex_digits() {
    let id = new_request_id();
    assert_eq!(id.len(), 41);
    assert!(id.starts_with('_') && id[1..].chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(id, new_request_id());
    assert_eq!(request_id_from([0xab; 20]), format!("_{}", "ab".repeat(20)));
}

#[test]
fn prepare_redirects_to_the_idp_with_a_deflated_authn_request() {
    let prepared = realm()
        .authn_request(REQUEST_ID, now(), Some("state 1"))
        .unwrap();
    assert_eq!(prepared.id, REQUEST_ID);
    assert!(
        prepared
            .redirect
            .starts_with("https://idp.example.org/sso?tenant=1&SAMLRequest="),
        "{}",
        prepared.redirect
    );
    assert!(!prepared.redirect.contains("Signature="));
    let message = RedirectMessage::parse(query(&prepared.redirect)).unwrap();
    assert_eq!(message.relay_state.as_deref(), Some("state 1"));
    let xml = message.xml;
    for part in [
        format!(r#"ID="{REQUEST_ID}""#),
        format!(r#"AssertionConsumerServiceURL="{ACS}""#),
        r#"Destination="https://idp.example.org/sso?tenant=1""#.into(),
        format!("<saml:Issuer>{SP}</saml:Issuer>"),
        r#"IssueInstant="2026-12-01T13:00:00.000Z""#.into(),
        r#"Format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient" AllowCreate="false""#
            .into(),
    ] {
        assert!(xml.contains(&part), "{part} not in {xml}");
    }
    assert!(!xml.contains("ForceAuthn"));
    roxmltree::Document::parse(&xml).unwrap();
}

#[test]
fn a_signing_realm_signs_the_query_and_the_signature_covers_it() {
    let realm = realm_with(&format!("{SETTINGS}{SIGNED}force_authn = true\n"), false);
    let prepared = realm.authn_request(REQUEST_ID, now(), Some("rs")).unwrap();
    let q = query(&prepared.redirect).replace("tenant=1&", "");
    assert!(q.contains("&RelayState=rs&SigAlg="), "{q}");
    let message = RedirectMessage::parse(&q).unwrap();
    assert!(message.xml.contains(r#"ForceAuthn="true""#));
    message.verify(&sp_keys()).unwrap();
    let tampered = q.replace("RelayState=rs", "RelayState=rt");
    let e = RedirectMessage::parse(&tampered)
        .unwrap()
        .verify(&sp_keys())
        .unwrap_err();
    assert_eq!(e.rule, Rule::QuerySignature);
}

#[test]
fn prepare_needs_a_redirect_sso_endpoint() {
    let mut realm = realm();
    realm
        .idp
        .sso
        .retain(|e| !e.binding.ends_with("HTTP-Redirect"));
    let e = realm.authn_request(REQUEST_ID, now(), None).unwrap_err();
    assert!(e.detail.contains("HTTP-Redirect"), "{e}");
}

fn session() -> SessionNameId {
    SessionNameId {
        value: "alice-persistent-id".into(),
        format: Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into()),
        ..SessionNameId::default()
    }
}

#[test]
fn logout_builds_a_logout_request_for_the_session() {
    let p = realm()
        .logout_request("_logout1", now(), &session(), Some("_session42"))
        .unwrap();
    assert!(p
        .redirect
        .starts_with("https://idp.example.org/slo?SAMLRequest="));
    let xml = RedirectMessage::parse(query(&p.redirect)).unwrap().xml;
    assert!(xml.contains(r#"<saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">alice-persistent-id</saml:NameID>"#), "{xml}");
    assert!(xml.contains("<samlp:SessionIndex>_session42</samlp:SessionIndex>"));
    let off = realm_with(&format!("{SETTINGS}idp.use_single_logout = false\n"), false);
    assert_eq!(off.logout_request("_l", now(), &session(), None), None);
}

/// A LogoutRequest as the IdP sends it, signed with `key`/`cert` when
/// given, issued at the tests' "now".
fn idp_logout_request(signer: Option<(&str, &str)>, issuer: &str) -> String {
    idp_logout_query(signer, issuer, "2026-12-01T13:00:00Z")
}

#[test]
fn invalidate_reads_a_signed_idp_logout_request() {
    let q = idp_logout_request(Some(("idp.crt", "idp.key")), IDP);
    let request = realm().parse_logout_request(&q, now()).unwrap();
    assert_eq!(request.id, "_idplogout");
    assert_eq!(request.nameid, Some(session()));
    assert_eq!(request.session_index.as_deref(), Some("_session42"));
    assert_eq!(request.relay_state.as_deref(), Some("back"));
    let answer = realm()
        .logout_response(
            "_answer",
            now(),
            &request.id,
            request.relay_state.as_deref(),
        )
        .unwrap();
    let xml = RedirectMessage::parse(query(&answer)).unwrap().xml;
    assert!(
        xml.contains(r#"InResponseTo="_idplogout""#) && xml.contains("status:Success"),
        "{xml}"
    );
}

#[test]
fn invalidate_refuses_an_unsigned_logout_request() {
    let q = idp_logout_request(None, IDP);
    assert_eq!(
        realm().parse_logout_request(&q, now()).unwrap_err().rule,
        Rule::Unsigned
    );
}

#[test]
fn invalidate_refuses_a_logout_request_signed_by_another_key() {
    let q = idp_logout_request(Some(("attacker.crt", "attacker.key")), IDP);
    assert_eq!(
        realm().parse_logout_request(&q, now()).unwrap_err().rule,
        Rule::QuerySignature
    );
}

#[test]
fn invalidate_refuses_a_tampered_query() {
    let q = idp_logout_request(Some(("idp.crt", "idp.key")), IDP)
        .replace("RelayState=back", "RelayState=evil");
    assert_eq!(
        realm().parse_logout_request(&q, now()).unwrap_err().rule,
        Rule::QuerySignature
    );
}

#[test]
fn invalidate_refuses_another_issuer_and_a_late_request() {
    let q = idp_logout_request(Some(("idp.crt", "idp.key")), "https://evil.example.org/");
    assert_eq!(
        realm().parse_logout_request(&q, now()).unwrap_err().rule,
        Rule::Issuer
    );
    let q = idp_logout_request(Some(("idp.crt", "idp.key")), IDP);
    let late = now() + 8 * 60_000;
    assert_eq!(
        realm().parse_logout_request(&q, late).unwrap_err().rule,
        Rule::Expired
    );
}

#[test]
fn invalidate_refuses_a_logout_request_without_a_destination_or_for_another() {
    let signer = Some(("idp.crt", "idp.key"));
    for destination in [None, Some("https://dashboard.example.org/logout/other")] {
        let q = idp_logout_query_to(destination, signer, IDP, "2026-12-01T13:00:00Z");
        assert_eq!(
            realm().parse_logout_request(&q, now()).unwrap_err().rule,
            Rule::Destination,
            "{destination:?}"
        );
    }
}

#[test]
fn invalidate_refuses_a_logout_request_when_the_realm_has_no_sp_logout() {
    let settings: String = SETTINGS
        .lines()
        .filter(|l| !l.starts_with("sp.logout"))
        .map(|l| format!("{l}\n"))
        .collect();
    let realm = realm_with(&settings, false);
    assert_eq!(realm.config.sp_logout, None);
    let signer = Some(("idp.crt", "idp.key"));
    for destination in [None, Some("https://dashboard.example.org/logout")] {
        let q = idp_logout_query_to(destination, signer, IDP, "2026-12-01T13:00:00Z");
        assert_eq!(
            realm.parse_logout_request(&q, now()).unwrap_err().rule,
            Rule::Destination,
            "{destination:?}"
        );
    }
}

#[test]
fn a_decompression_bomb_in_a_query_is_refused() {
    let huge = "<a>".to_owned() + &"x".repeat(4 * 1024 * 1024) + "</a>";
    let url = redirect_url("https://x.example/", "SAMLRequest", &huge, None, None);
    assert_eq!(
        RedirectMessage::parse(query(&url)).unwrap_err().rule,
        Rule::Encoding
    );
}

#[test]
fn sp_metadata_describes_the_sp() {
    let plain = realm_with(SETTINGS, false).sp_metadata();
    let doc = roxmltree::Document::parse(&plain).unwrap();
    assert_eq!(doc.root_element().attribute("entityID"), Some(SP));
    assert!(plain.contains(&format!(r#"Location="{ACS}" index="1" isDefault="true""#)));
    assert!(plain.contains(r#"Location="https://dashboard.example.org/logout""#));
    assert!(plain.contains(r#"AuthnRequestsSigned="false""#));
    assert!(!plain.contains("KeyDescriptor"));
    let keyed = realm_with(&format!("{SETTINGS}{SIGNED}"), true).sp_metadata();
    assert!(keyed.contains(r#"AuthnRequestsSigned="true""#));
    assert!(keyed.contains(r#"<md:KeyDescriptor use="signing">"#));
    assert!(keyed.contains(r#"<md:KeyDescriptor use="encryption">"#));
}

#[test]
fn idp_metadata_must_describe_the_configured_entity() {
    let e = IdpMetadata::parse(&idp_metadata(IDP), "https://idp.example.org").unwrap_err();
    assert!(e.detail.contains("https://idp.example.org/"), "{e}");
    let m = IdpMetadata::parse(&idp_metadata(IDP), IDP).unwrap();
    assert_eq!(m.signing_certificates.len(), 1);
    assert_eq!(m.sso.len(), 2);
    assert_eq!(
        m.slo_redirect().unwrap().location,
        "https://idp.example.org/slo"
    );
    let dtd = format!("<!DOCTYPE x>{}", idp_metadata(IDP));
    assert_eq!(
        IdpMetadata::parse(&dtd, IDP).unwrap_err().rule,
        Rule::Doctype
    );
}

fn settings_error(extra_or_replace: &str, remove: &str) -> String {
    let text: String = SETTINGS
        .lines()
        .filter(|l| remove.is_empty() || !l.starts_with(remove))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + extra_or_replace;
    match SamlRealmSettings::from_toml(&text) {
        Err(e) => e,
        Ok(s) => s.validate("saml1").unwrap_err().to_string(),
    }
}

#[test]
fn settings_have_elasticsearch_defaults() {
    let c = SamlRealmSettings::from_toml(SETTINGS)
        .unwrap()
        .validate("saml1")
        .unwrap();
    assert_eq!(c.allowed_clock_skew.as_secs(), 180);
    assert_eq!(
        c.nameid_format,
        "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
    );
    assert!(c.populate_user_metadata && c.idp_use_single_logout && !c.force_authn);
    assert_eq!(c.idp_metadata_path.to_str(), Some("idp-metadata.xml"));
}

#[test]
fn settings_errors_name_the_key() {
    let cases = [
        ("", "sp.acs", "[sp.acs] is required"),
        ("", "idp.entity_id", "[idp.entity_id] is required"),
        (
            "",
            "attributes.principal",
            "[attributes.principal] is required",
        ),
        ("sp.acs = \"not a url\"\n", "sp.acs", "[sp.acs]"),
        ("sp.acs = \"ftp://x.example/\"\n", "sp.acs", "[sp.acs]"),
        (
            "idp.metadata.path = \"http://idp/metadata\"\n",
            "idp.metadata",
            "[idp.metadata.path]",
        ),
        (
            "attribute_patterns.groups = \"(a)(b)\"\n",
            "",
            "exactly one capture group",
        ),
        (
            "attribute_patterns.groups = \"(\"\n",
            "",
            "[attribute_patterns.groups]",
        ),
        ("signing.certificate = \"c.crt\"\n", "", "[signing.key]"),
        (
            "signing.saml_messages = [\"Assertion\"]\n",
            "",
            "[signing.saml_messages]",
        ),
        (
            "allowed_clock_skew = \"3\"\n",
            "allowed_clock_skew",
            "[allowed_clock_skew]",
        ),
        ("sp.unknown = \"x\"\n", "", "unknown field"),
    ];
    for (extra, remove, expected) in cases {
        let e = settings_error(extra, remove);
        assert!(e.contains(expected), "{extra:?}: {e}");
    }
}

#[test]
fn an_attribute_pattern_picks_its_group() {
    let realm = realm_with(
        &format!("{SETTINGS}attribute_patterns.mail = \"^([^@]+)@example\\\\.org$\"\n"),
        false,
    );
    let fx = Fx::default();
    let xml = response(&fx, &assertion(&fx, false), true);
    let ids = vec![REQUEST_ID.to_owned()];
    let id = tessera_realms::saml::process_response(
        &realm,
        &b64(&xml),
        tessera_realms::saml::Validation {
            ids: &ids,
            now_ms: now(),
        },
    )
    .unwrap();
    assert_eq!(id.mail.as_deref(), Some("alice"));
}

#[test]
fn a_realm_loads_its_files_relative_to_the_config_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("idp-metadata.xml"), idp_metadata(IDP)).unwrap();
    std::fs::write(dir.path().join("sp-signing.crt"), data("sp-signing.crt")).unwrap();
    std::fs::write(dir.path().join("sp-signing.key"), data("sp-signing.key")).unwrap();
    let config = SamlRealmSettings::from_toml(&format!("{SETTINGS}{SIGNED}"))
        .unwrap()
        .validate("saml1")
        .unwrap();
    let realm = tessera_realms::saml::SamlRealm::load(config.clone(), dir.path()).unwrap();
    assert!(realm.signing.is_some() && realm.decryption.is_none());
    assert!(
        !format!("{realm:?}").contains("PRIVATE"),
        "Debug shows no key material"
    );
    std::fs::remove_file(dir.path().join("idp-metadata.xml")).unwrap();
    let e = tessera_realms::saml::SamlRealm::load(config, dir.path()).unwrap_err();
    assert_eq!(e.key, "idp.metadata.path");
    assert!(e.to_string().contains("idp-metadata.xml"), "{e}");
}

#[test]
fn complete_logout_accepts_a_signed_logout_response_for_one_of_the_ids() {
    let ids = vec!["_logout1".to_owned()];
    let realm = realm();
    realm
        .check_logout_response_post(&b64(&idp_logout_response("_logout1", true)), &ids)
        .unwrap();
    let e = realm
        .check_logout_response_post(&b64(&idp_logout_response("_other", true)), &ids)
        .unwrap_err();
    assert_eq!(e.rule, Rule::InResponseTo);
    let e = realm
        .check_logout_response_post(&b64(&idp_logout_response("_logout1", false)), &ids)
        .unwrap_err();
    assert_eq!(e.rule, Rule::Unsigned);
    let idp_key = SigningKey::from_pem(&data("idp.crt"), &data("idp.key")).unwrap();
    let url = redirect_url(
        "https://x.example/",
        "SAMLResponse",
        &idp_logout_response("_logout1", false),
        None,
        Some(&idp_key),
    );
    realm.check_logout_response(query(&url), &ids).unwrap();
}
