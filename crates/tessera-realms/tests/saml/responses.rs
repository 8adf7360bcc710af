//! Responses through `process_response`: the positive cases, then one test
//! per way of being refused, each naming the rule that must refuse it.

use tessera_realms::saml::{
    process_response, Rule, SamlError, SamlIdentity, SamlRealm, Validation,
};

use crate::support::*;

fn ids() -> Vec<String> {
    vec!["_another".into(), REQUEST_ID.into()]
}

fn run_at(xml: &str, now_ms: i64) -> Result<SamlIdentity, SamlError> {
    let ids = ids();
    process_response(&realm(), &b64(xml), Validation { ids: &ids, now_ms })
}

/// `realm`'s verdict now on `content` (base64) for a caller that sent `ids`.
fn verdict(realm: &SamlRealm, content: &str, ids: &[String]) -> Result<SamlIdentity, SamlError> {
    process_response(realm, content, Validation { ids, now_ms: now() })
}

/// The default Response, signed, around the default unsigned assertion.
fn signed_response(fx: &Fx) -> String {
    response(fx, &assertion(fx, false), true)
}

fn run(xml: &str) -> Result<SamlIdentity, SamlError> {
    run_at(xml, now())
}

#[track_caller]
fn refused(xml: &str, rule: Rule) -> SamlError {
    match run(xml) {
        Ok(id) => panic!("accepted, expected a refusal by {rule}: {id:?}"),
        Err(e) => {
            assert_eq!(e.rule, rule, "{e}");
            e
        }
    }
}

#[test]
fn a_signed_response_gives_the_identity() {
    let fx = Fx::default();
    let id = run(&signed_response(&fx)).unwrap();
    assert_eq!(id.principal, "alice-persistent-id");
    assert_eq!(id.nameid.as_deref(), Some("alice-persistent-id"));
    assert_eq!(
        id.nameid_format.as_deref(),
        Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent")
    );
    assert_eq!(id.groups, ["admins", "staff"]);
    assert_eq!(id.mail.as_deref(), Some("alice@example.org"));
    assert_eq!(id.name.as_deref(), Some("Alice Liddell"));
    assert_eq!(id.session_index.as_deref(), Some("_session42"));
    assert_eq!(id.assertion_id, "_assert1");
    assert_eq!(id.in_response_to.as_deref(), Some(REQUEST_ID));
    assert_eq!(id.not_on_or_after, now() + 5 * 60_000);
    let meta = id.attribute_metadata();
    assert_eq!(meta["saml(urn:oid:2.5.4.3)"], ["Alice Liddell"]);
    assert_eq!(meta["saml_email"], ["alice@example.org"]);
}

#[test]
fn a_signed_assertion_in_an_unsigned_response_is_accepted() {
    let fx = Fx::default();
    let id = run(&response(&fx, &assertion(&fx, true), false)).unwrap();
    assert_eq!(id.principal, "alice-persistent-id");
}

#[test]
fn both_signed_is_accepted() {
    let fx = Fx::default();
    run(&response(&fx, &assertion(&fx, true), true)).unwrap();
}

#[test]
fn an_encrypted_signed_assertion_is_decrypted_and_accepted() {
    let fx = Fx::default();
    let xml = response(&fx, &encrypted(&assertion(&fx, true)), false);
    assert!(!xml.contains("alice-persistent-id"));
    let id = run(&xml).unwrap();
    assert_eq!(id.principal, "alice-persistent-id");
    assert_eq!(id.groups, ["admins", "staff"]);
}

#[test]
fn an_encrypted_assertion_in_a_signed_response_is_accepted() {
    let fx = Fx::default();
    run(&response(&fx, &encrypted(&assertion(&fx, false)), true)).unwrap();
}

#[test]
fn an_idp_initiated_response_is_accepted_without_ids() {
    let fx = Fx {
        in_response_to: None,
        ..Fx::default()
    };
    let xml = response(&fx, &assertion(&fx, true), true);
    let id = verdict(&realm(), &b64(&xml), &[]).unwrap();
    assert_eq!(id.in_response_to, None);
}

#[test]
fn whitespace_in_the_content_is_ignored() {
    let fx = Fx::default();
    let encoded = b64(&signed_response(&fx));
    let wrapped: String = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
        .collect();
    verdict(&realm(), &wrapped, &ids()).unwrap();
}

// ---- signatures ----

#[test]
fn unsigned_is_refused() {
    let fx = Fx::default();
    refused(
        &response(&fx, &assertion(&fx, false), false),
        Rule::Unsigned,
    );
}

#[test]
fn an_encrypted_unsigned_assertion_in_an_unsigned_response_is_refused() {
    let fx = Fx::default();
    refused(
        &response(&fx, &encrypted(&assertion(&fx, false)), false),
        Rule::Unsigned,
    );
}

#[test]
fn a_changed_nameid_breaks_the_signature() {
    let fx = Fx::default();
    let xml = signed_response(&fx).replace("alice-persistent-id", "admin-persistent-id");
    refused(&xml, Rule::Signature);
}

#[test]
fn an_attacker_certificate_in_keyinfo_is_not_trusted() {
    let fx = Fx::default();
    let forged = assertion_signed_by(&fx, Some((data("attacker.key"), data("attacker.crt"))));
    refused(&response(&fx, &forged, false), Rule::Signature);
}

#[test]
fn a_signed_response_wrapped_in_an_unsigned_one_is_refused() {
    // XSW: the genuine signed Response moved into the Extensions of a forged
    // one whose own (unsigned) assertion would be consumed.
    let fx = Fx::default();
    let genuine = signed_response(&fx);
    let evil_fx = Fx {
        response_id: "_evil".into(),
        assertion_id: "_evil_assert".into(),
        nameid: "mallory".into(),
        ..Fx::default()
    };
    let inner = format!(
        "<samlp:Extensions>{genuine}</samlp:Extensions>{}",
        assertion(&evil_fx, false)
    );
    refused(&response(&evil_fx, &inner, false), Rule::SignatureWrapping);
}

#[test]
fn a_signed_assertion_moved_aside_for_a_forged_one_is_refused() {
    // XSW: the signed assertion hidden in the Extensions, a forged assertion
    // with another ID consumed.
    let fx = Fx::default();
    let genuine = assertion(&fx, true);
    let evil = Fx {
        assertion_id: "_forged".into(),
        nameid: "mallory".into(),
        ..Fx::default()
    };
    let inner = format!(
        "<samlp:Extensions>{genuine}</samlp:Extensions>{}",
        assertion(&evil, false)
    );
    refused(&response(&fx, &inner, false), Rule::SignatureWrapping);
}

#[test]
fn a_forged_assertion_with_the_signed_id_is_refused() {
    // XSW: the forged assertion reuses the signed one's ID.
    let fx = Fx::default();
    let genuine = assertion(&fx, true);
    let evil = Fx {
        nameid: "mallory".into(),
        ..Fx::default()
    };
    let inner = format!(
        "{}<samlp:Extensions>{genuine}</samlp:Extensions>",
        assertion(&evil, false)
    );
    refused(&response(&fx, &inner, false), Rule::SignatureWrapping);
}

#[test]
fn a_duplicated_signed_assertion_is_refused() {
    let fx = Fx::default();
    let genuine = assertion(&fx, true);
    refused(
        &response(&fx, &format!("{genuine}{genuine}"), false),
        Rule::SignatureWrapping,
    );
}

#[test]
fn a_signature_over_the_response_with_another_id_reference_is_refused() {
    // The Response signature's reference rewritten to the assertion: no
    // longer the element it sits in.
    let fx = Fx::default();
    let xml = signed_response(&fx).replace(r##"URI="#_resp1""##, r##"URI="#_assert1""##);
    let e = run(&xml).unwrap_err();
    assert!(
        matches!(e.rule, Rule::SignatureWrapping | Rule::Signature),
        "{e}"
    );
}

// ---- response rules ----

#[test]
fn a_wrong_response_issuer_is_refused() {
    let fx = Fx {
        issuer: "https://idp.example.org".into(),
        ..Fx::default()
    };
    let e = refused(&response(&fx, &assertion(&fx, true), true), Rule::Issuer);
    assert!(e.detail.contains("[#23]"), "{e}");
}

#[test]
fn a_wrong_assertion_issuer_is_refused() {
    let fx = Fx {
        assertion_issuer: "https://evil.example.org/".into(),
        ..Fx::default()
    };
    refused(&signed_response(&fx), Rule::Issuer);
}

#[test]
fn a_wrong_destination_is_refused() {
    let fx = Fx {
        destination: Some("https://dashboard.example.org/other".into()),
        ..Fx::default()
    };
    refused(&signed_response(&fx), Rule::Destination);
}

#[test]
fn a_signed_response_without_destination_is_refused() {
    let fx = Fx {
        destination: None,
        ..Fx::default()
    };
    refused(&signed_response(&fx), Rule::Destination);
}

#[test]
fn a_wrong_audience_is_refused() {
    let fx = Fx {
        audience: "https://dashboard.example.org".into(),
        ..Fx::default()
    };
    refused(&signed_response(&fx), Rule::Audience);
}

#[test]
fn a_wrong_recipient_is_refused() {
    let fx = Fx {
        recipient: "http://dashboard.example.org/api/security/saml/callback".into(),
        ..Fx::default()
    };
    refused(&signed_response(&fx), Rule::Recipient);
}

#[test]
fn an_unknown_in_response_to_is_refused_and_named() {
    let fx = Fx {
        in_response_to: Some("_lost".into()),
        ..Fx::default()
    };
    let e = refused(&signed_response(&fx), Rule::InResponseTo);
    assert_eq!(e.unsolicited_in_response_to.as_deref(), Some("_lost"));
}

#[test]
fn a_non_success_status_is_refused_with_its_codes() {
    let fx = Fx {
        status: "urn:oasis:names:tc:SAML:2.0:status:Requester".into(),
        ..Fx::default()
    };
    let e = refused(&signed_response(&fx), Rule::Status);
    assert!(e.detail.contains("status:Requester"), "{e}");
}

#[test]
fn two_assertions_are_refused() {
    let fx = Fx::default();
    let second = Fx {
        assertion_id: "_assert2".into(),
        ..Fx::default()
    };
    let inner = format!("{}{}", assertion(&fx, false), assertion(&second, false));
    refused(&response(&fx, &inner, true), Rule::AssertionCount);
}

#[test]
fn no_assertion_is_refused() {
    let fx = Fx::default();
    refused(&response(&fx, "", true), Rule::AssertionCount);
}

#[test]
fn a_doctype_is_refused() {
    let fx = Fx::default();
    let xml = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE samlp:Response>{}",
        signed_response(&fx)
    );
    refused(&xml, Rule::Doctype);
}

#[test]
fn an_entity_bomb_is_refused() {
    let bomb = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&d;&d;&d;&d;&d;&d;&d;&d;</samlp:Response>"#;
    refused(bomb, Rule::Doctype);
}

#[test]
fn an_encrypted_assertion_without_a_key_is_refused() {
    let fx = Fx::default();
    let xml = response(&fx, &encrypted(&assertion(&fx, true)), false);
    let e = verdict(&realm_with(SETTINGS, false), &b64(&xml), &ids()).unwrap_err();
    assert_eq!(e.rule, Rule::Decryption, "{e}");
}

#[test]
fn not_base64_is_refused() {
    let e = verdict(&realm(), "%%%", &ids()).unwrap_err();
    assert_eq!(e.rule, Rule::Encoding);
}

#[test]
fn another_root_is_refused() {
    refused(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>"#,
        Rule::Xml,
    );
}

// ---- time, at the skew boundaries (skew 3m; NotBefore 12:59, NotOnOrAfter 13:05) ----

fn timed() -> String {
    signed_response(&Fx::default())
}

const MINUTE: i64 = 60_000;

#[test]
fn not_before_is_accepted_up_to_the_skew_early() {
    // now + skew == NotBefore is still valid.
    run_at(&timed(), now() - 4 * MINUTE).unwrap();
}

#[test]
fn too_early_is_refused() {
    let e = run_at(&timed(), now() - 4 * MINUTE - 1).unwrap_err();
    assert_eq!(e.rule, Rule::NotYetValid, "{e}");
}

#[test]
fn not_on_or_after_is_accepted_until_the_skew_late() {
    run_at(&timed(), now() + 8 * MINUTE - 1).unwrap();
}

#[test]
fn too_late_is_refused() {
    let e = run_at(&timed(), now() + 8 * MINUTE).unwrap_err();
    assert_eq!(e.rule, Rule::Expired, "{e}");
}

#[test]
fn an_expired_bearer_confirmation_is_refused() {
    let fx = Fx {
        confirmation_not_on_or_after: "2026-12-01T12:56:00Z".into(),
        ..Fx::default()
    };
    refused(&signed_response(&fx), Rule::Expired);
}

#[test]
fn a_transient_nameid_gives_no_persistent_principal() {
    let fx = Fx {
        nameid_format: "urn:oasis:names:tc:SAML:2.0:nameid-format:transient".into(),
        ..Fx::default()
    };
    let e = refused(&signed_response(&fx), Rule::Principal);
    assert!(
        e.detail.contains("groups"),
        "the detail names the attributes received: {e}"
    );
}

#[test]
fn a_flood_of_signatures_is_refused_before_verification() {
    let fx = Fx::default();
    let signed = signed_response(&fx);
    let sig_start = signed.find("<ds:Signature").unwrap();
    let sig_end = signed.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let sig = &signed[sig_start..sig_end];
    let flood = signed.replacen(sig, &sig.repeat(10), 1);
    let e = refused(&flood, Rule::SignatureWrapping);
    assert!(e.detail.contains("10 signatures"), "{e}");
}

#[test]
fn an_assertion_encrypted_with_aes_gcm_under_rsa_oaep_is_accepted() {
    let fx = Fx::default();
    let inner = encrypted_with(
        &assertion(&fx, true),
        "http://www.w3.org/2009/xmlenc11#aes128-gcm",
        "http://www.w3.org/2009/xmlenc11#rsa-oaep",
    );
    assert_eq!(
        run(&response(&fx, &inner, false)).unwrap().principal,
        "alice-persistent-id"
    );
}

#[test]
fn rsa_pkcs1_v1_5_key_transport_is_refused() {
    // Legacy key transport (Bleichenbacher's oracle) is not built in.
    let fx = Fx::default();
    let inner = encrypted(&assertion(&fx, true)).replace(
        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
        "http://www.w3.org/2001/04/xmlenc#rsa-1_5",
    );
    refused(&response(&fx, &inner, false), Rule::Decryption);
}

#[test]
fn an_assertion_encrypted_for_another_key_is_refused() {
    // The realm decrypts with its signing pair: not the key it was encrypted for.
    let fx = Fx::default();
    let xml = response(&fx, &encrypted(&assertion(&fx, true)), false);
    let config = tessera_realms::saml::SamlRealmSettings::from_toml(SETTINGS)
        .unwrap()
        .validate("saml1")
        .unwrap();
    let (cert, key) = (data("sp-signing.crt"), data("sp-signing.key"));
    let other = SamlRealm::new(config, &idp_metadata(IDP), None, Some((&cert, &key))).unwrap();
    let e = verdict(&other, &b64(&xml), &ids()).unwrap_err();
    assert_eq!(e.rule, Rule::Decryption, "{e}");
}

#[test]
fn a_comment_inside_the_nameid_does_not_truncate_it() {
    // Exclusive c14n drops comments, so a comment inserted into a signed
    // NameID keeps the signature valid; the value read must still be the
    // whole signed text, never the part before the comment.
    let fx = Fx::default();
    let xml = signed_response(&fx).replace(">alice-persistent-id<", ">alice<!---->-persistent-id<");
    assert_eq!(run(&xml).unwrap().principal, "alice-persistent-id");
}

#[test]
fn character_references_and_cdata_read_as_the_signed_text() {
    // The same text spelled differently: the signature still holds, and the
    // verifier and the reader agree on what it says.
    let fx = Fx::default();
    let xml = signed_response(&fx).replace(
        ">alice-persistent-id<",
        ">alice&#45;persistent<![CDATA[-id]]><",
    );
    assert_eq!(run(&xml).unwrap().principal, "alice-persistent-id");
}

#[test]
fn a_blank_in_response_to_is_unsolicited_as_in_elasticsearch() {
    let fx = Fx {
        in_response_to: Some(String::new()),
        ..Fx::default()
    };
    let xml = response(&fx, &assertion(&fx, true), true);
    let id = process_response(
        &realm(),
        &b64(&xml),
        Validation {
            ids: &[],
            now_ms: now(),
        },
    )
    .expect("a blank InResponseTo is no claim");
    assert_eq!(id.in_response_to, None);
}
