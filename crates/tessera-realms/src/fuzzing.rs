//! The SAML surface the fuzz target `saml_response` (in `fuzz/`) drives:
//! arbitrary bytes as a Response (XML and base64), as a redirect-binding
//! query and as IdP metadata, against a fixed realm at a fixed time. A
//! refusal is always a typed [`SamlError`](crate::saml::SamlError); the
//! only way to fail is a panic. The corpus is replayed on stable by
//! `tests/saml/fuzz_replay.rs`.
//!
//! Not an API: hidden from the documentation and free to change. The keys
//! in `fuzz_data/` are test keys, trusted by nothing but this realm.

use std::sync::OnceLock;

use crate::saml::metadata::IdpMetadata;
use crate::saml::redirect::RedirectMessage;
use crate::saml::{
    process_response, process_response_xml, SamlRealm, SamlRealmSettings, Validation,
};

const IDP_CERT: &str = include_str!("fuzz_data/idp.crt");
const ENC_CERT: &str = include_str!("fuzz_data/sp-encryption.crt");
const ENC_KEY: &str = include_str!("fuzz_data/sp-encryption.key");

/// The entity, SP and time the seeds in `fuzz/corpus/saml_response` were made for.
pub const NOW_MS: i64 = 1_796_130_000_000; // 2026-12-01T13:00:00Z

/// The realm's settings: the IdP `https://idp.example.org/` and the SP
/// `https://dashboard.example.org/`, as the tests' fixtures (`testing`)
/// have them too.
pub const SETTINGS: &str = r#"
order = 2
idp.metadata.path = "idp-metadata.xml"
idp.entity_id = "https://idp.example.org/"
sp.entity_id = "https://dashboard.example.org/"
sp.acs = "https://dashboard.example.org/api/security/saml/callback"
sp.logout = "https://dashboard.example.org/logout"
attributes.principal = "nameid:persistent"
attributes.groups = "groups"
attributes.mail = "mail"
attributes.name = "urn:oid:2.5.4.3"
allowed_clock_skew = "3m"
"#;

const REQUEST_ID: &str = "_0123456789abcdef0123456789abcdef01234567";

fn realm() -> &'static SamlRealm {
    static REALM: OnceLock<SamlRealm> = OnceLock::new();
    REALM.get_or_init(|| {
        let config = SamlRealmSettings::from_toml(SETTINGS)
            .expect("fixed settings parse")
            .validate("fuzz")
            .expect("fixed settings are valid");
        let der = crate::saml::keys::certificate_der(IDP_CERT).expect("the fuzz IdP certificate");
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der);
        let metadata = format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example.org/"><md:IDPSSODescriptor><md:KeyDescriptor><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.org/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>"#
        );
        SamlRealm::new(config, &metadata, None, Some((ENC_CERT, ENC_KEY))).expect("the fuzz realm loads")
    })
}

/// One fuzz input through every SAML decoder and the validation rules.
pub fn saml_response(data: &[u8]) {
    let realm = realm();
    let ids = [REQUEST_ID.to_owned()];
    let v = Validation {
        ids: &ids,
        now_ms: NOW_MS,
    };
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(identity) = process_response_xml(realm, text, v) {
        assert!(
            !identity.principal.is_empty(),
            "an accepted Response has a principal"
        );
        assert!(
            !identity.assertion_id.is_empty(),
            "an accepted Response has an assertion id"
        );
        assert!(
            identity.not_on_or_after > NOW_MS - 180_000,
            "an accepted Response is in time"
        );
    }
    let _ = process_response(realm, text, v);
    if let Ok(message) = RedirectMessage::parse(text) {
        let _ = message.verify(&realm.trusted);
    }
    let _ = realm.parse_logout_request(text, NOW_MS);
    let _ = IdpMetadata::parse(text, "https://idp.example.org/");
}
