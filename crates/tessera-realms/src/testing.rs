//! Test fixtures (feature `testing`): the test IdP's metadata, a realm,
//! Responses built from a template and signed (and encrypted) with
//! bergshamra, and IdP logout requests, using the test keys committed
//! under this crate's `tests/data`. For this crate's tests and the
//! server's SAML tests; never in a release build.

use crate::saml::keys::{certificate_der, SigningKey};
use crate::saml::redirect::redirect_url;
use crate::saml::{time::parse_instant, SamlRealm, SamlRealmSettings};
pub mod jwt;
pub mod node;
pub mod oidc;
pub mod oidc_provider;
pub mod samlify;

use base64::Engine;
use bergshamra::{DsigContext, EncContext, KeysManager};

pub const IDP: &str = "https://idp.example.org/";
pub const SP: &str = "https://dashboard.example.org/";
pub const ACS: &str = "https://dashboard.example.org/api/security/saml/callback";
pub const REQUEST_ID: &str = "_0123456789abcdef0123456789abcdef01234567";

/// The folder of the test keys (`idp.crt`, `idp.key`, `sp-*.{crt,key}`,
/// `attacker.*`).
pub fn data_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

pub fn data(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// 2026-12-01T13:00:00Z, the tests' "now".
pub fn now() -> i64 {
    parse_instant("2026-12-01T13:00:00Z").unwrap()
}

pub fn idp_metadata(entity_id: &str) -> String {
    let cert = base64::engine::general_purpose::STANDARD
        .encode(certificate_der(&data("idp.crt")).unwrap());
    format!(
        r#"<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity_id}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>
{cert}
</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.org/slo"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.example.org/sso-post"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.org/sso?tenant=1"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#
    )
}

/// The realm's settings (the fuzz target's realm has the same).
pub use crate::fuzzing::SETTINGS;

/// The realm `saml1` as the tests configure it, with the SP's encryption key.
pub fn realm() -> SamlRealm {
    realm_with(SETTINGS, true)
}

pub fn realm_with(settings: &str, encryption: bool) -> SamlRealm {
    let config = SamlRealmSettings::from_toml(settings)
        .unwrap()
        .validate("saml1")
        .unwrap();
    let enc = (data("sp-encryption.crt"), data("sp-encryption.key"));
    let sig = (data("sp-signing.crt"), data("sp-signing.key"));
    let signing = config.signing.is_some();
    SamlRealm::new(
        config,
        &idp_metadata(IDP),
        signing.then_some((sig.0.as_str(), sig.1.as_str())),
        encryption.then_some((enc.0.as_str(), enc.1.as_str())),
    )
    .unwrap()
}

/// What a fixture Response says; every field defaults to a valid login.
#[derive(Clone)]
pub struct Fx {
    pub response_id: String,
    pub assertion_id: String,
    pub issuer: String,
    pub assertion_issuer: String,
    pub destination: Option<String>,
    pub audience: String,
    pub recipient: String,
    pub in_response_to: Option<String>,
    pub status: String,
    pub not_before: String,
    pub not_on_or_after: String,
    pub confirmation_not_on_or_after: String,
    pub nameid: String,
    pub nameid_format: String,
    pub session_index: String,
}

impl Default for Fx {
    fn default() -> Self {
        Fx {
            response_id: "_resp1".into(),
            assertion_id: "_assert1".into(),
            issuer: IDP.into(),
            assertion_issuer: IDP.into(),
            destination: Some(ACS.into()),
            audience: SP.into(),
            recipient: ACS.into(),
            in_response_to: Some(REQUEST_ID.into()),
            status: "urn:oasis:names:tc:SAML:2.0:status:Success".into(),
            not_before: "2026-12-01T12:59:00Z".into(),
            not_on_or_after: "2026-12-01T13:05:00Z".into(),
            confirmation_not_on_or_after: "2026-12-01T13:05:00Z".into(),
            nameid: "alice-persistent-id".into(),
            nameid_format: "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into(),
            session_index: "_session42".into(),
        }
    }
}

impl Fx {
    /// A valid login at `now_ms`: valid from a minute before, for five
    /// minutes after.
    pub fn at(now_ms: i64) -> Fx {
        let t = crate::saml::time::format_instant;
        Fx {
            not_before: t(now_ms - 60_000),
            not_on_or_after: t(now_ms + 5 * 60_000),
            confirmation_not_on_or_after: t(now_ms + 5 * 60_000),
            ..Fx::default()
        }
    }
}

const SIG_ALG: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

/// An empty enveloped-signature template for the element with `id`,
/// carrying `cert_pem` in KeyInfo (which the verifier must ignore).
pub fn signature_template(id: &str, cert_pem: &str) -> String {
    let cert = base64::engine::general_purpose::STANDARD.encode(certificate_der(cert_pem).unwrap());
    format!(
        r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="{SIG_ALG}"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"##
    )
}

/// Signs the first empty signature template in `xml` with `key_pem`.
pub fn sign_with(xml: &str, key_pem: &str) -> String {
    let key = bergshamra::keys::loader::load_rsa_private_pem(key_pem.as_bytes()).unwrap();
    let mut manager = KeysManager::new();
    manager.add_key(key);
    let ctx = DsigContext::new(manager);
    bergshamra::sign(&ctx, xml).unwrap()
}

/// ` name="value"` to write inside a start tag, or nothing without a value.
fn xml_attribute(name: &str, value: Option<&str>) -> String {
    value
        .map(|v| format!(r#" {name}="{v}""#))
        .unwrap_or_default()
}

/// The assertion, signed by the IdP when `signed`.
pub fn assertion(fx: &Fx, signed: bool) -> String {
    assertion_signed_by(fx, signed.then(|| (data("idp.key"), data("idp.crt"))))
}

pub fn assertion_signed_by(fx: &Fx, signer: Option<(String, String)>) -> String {
    let sig = signer
        .as_ref()
        .map(|(_, cert)| signature_template(&fx.assertion_id, cert))
        .unwrap_or_default();
    let irt = xml_attribute("InResponseTo", fx.in_response_to.as_deref());
    let xml = format!(
        r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" IssueInstant="2026-12-01T12:59:58Z" Version="2.0"><saml:Issuer>{issuer}</saml:Issuer>{sig}<saml:Subject><saml:NameID Format="{fmt}">{nameid}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="{cnoa}" Recipient="{recipient}"{irt}/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{nb}" NotOnOrAfter="{noa}"><saml:AudienceRestriction><saml:Audience>{aud}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="2026-12-01T12:59:58Z" SessionIndex="{si}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement><saml:Attribute Name="groups"><saml:AttributeValue>admins</saml:AttributeValue><saml:AttributeValue>staff</saml:AttributeValue></saml:Attribute><saml:Attribute Name="mail" FriendlyName="email"><saml:AttributeValue>alice@example.org</saml:AttributeValue></saml:Attribute><saml:Attribute Name="urn:oid:2.5.4.3" FriendlyName="cn"><saml:AttributeValue>Alice Liddell</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion>"#,
        id = fx.assertion_id,
        issuer = fx.assertion_issuer,
        fmt = fx.nameid_format,
        nameid = fx.nameid,
        cnoa = fx.confirmation_not_on_or_after,
        recipient = fx.recipient,
        nb = fx.not_before,
        noa = fx.not_on_or_after,
        aud = fx.audience,
        si = fx.session_index,
    );
    match signer {
        Some((key, _)) => sign_with(&xml, &key),
        None => xml,
    }
}

/// A Response around `inner` (assertions, encrypted or not, already built),
/// signed by the IdP when `signed`.
pub fn response(fx: &Fx, inner: &str, signed: bool) -> String {
    let dest = xml_attribute("Destination", fx.destination.as_deref());
    let irt = xml_attribute("InResponseTo", fx.in_response_to.as_deref());
    let sig = if signed {
        signature_template(&fx.response_id, &data("idp.crt"))
    } else {
        String::new()
    };
    let xml = format!(
        r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="2026-12-01T12:59:58Z"{dest}{irt}><saml:Issuer>{issuer}</saml:Issuer>{sig}<samlp:Status><samlp:StatusCode Value="{status}"/></samlp:Status>{inner}</samlp:Response>"#,
        id = fx.response_id,
        issuer = fx.issuer,
        status = fx.status,
    );
    if signed {
        sign_with(&xml, &data("idp.key"))
    } else {
        xml
    }
}

/// `assertion_xml` encrypted for the SP (AES-256-CBC under RSA-OAEP), as
/// an `EncryptedAssertion` element.
pub fn encrypted(assertion_xml: &str) -> String {
    encrypted_with(
        assertion_xml,
        "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    )
}

/// `assertion_xml` encrypted with the data and key-transport algorithms given.
pub fn encrypted_with(assertion_xml: &str, data_alg: &str, key_alg: &str) -> String {
    let template = r#"<saml:EncryptedAssertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"><xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Type="http://www.w3.org/2001/04/xmlenc#Element"><xenc:EncryptionMethod Algorithm="DATA_ALG"/><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="KEY_ALG"/><xenc:CipherData><xenc:CipherValue></xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue></xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></saml:EncryptedAssertion>"#
        .replace("DATA_ALG", data_alg)
        .replace("KEY_ALG", key_alg);
    let cert =
        bergshamra::keys::loader::load_x509_cert_pem(data("sp-encryption.crt").as_bytes()).unwrap();
    let mut manager = KeysManager::new();
    manager.add_key(cert);
    let ctx = EncContext::new(manager);
    bergshamra::encrypt(&ctx, &template, assertion_xml.as_bytes()).unwrap()
}

pub fn b64(xml: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(xml)
}

/// The query string of a LogoutRequest for `alice-persistent-id` (session
/// `_session42`) as the IdP sends it with the HTTP-Redirect binding,
/// signed with the `signer` files of [`data_dir`] (`("idp.crt",
/// "idp.key")`) when given; issued at `instant` (an `xs:dateTime`) and
/// valid five minutes; addressed to the realm's `sp.logout`.
pub fn idp_logout_query(signer: Option<(&str, &str)>, issuer: &str, instant: &str) -> String {
    idp_logout_query_to(
        Some("https://dashboard.example.org/logout"),
        signer,
        issuer,
        instant,
    )
}

/// As [`idp_logout_query`], with `destination` as the `Destination`
/// attribute (none when `None`).
pub fn idp_logout_query_to(
    destination: Option<&str>,
    signer: Option<(&str, &str)>,
    issuer: &str,
    instant: &str,
) -> String {
    let until = parse_instant(instant).expect("an xs:dateTime") + 5 * 60_000;
    let until = crate::saml::time::format_instant(until);
    let destination = destination
        .map(|d| format!(r#" Destination="{d}""#))
        .unwrap_or_default();
    let xml = format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_idplogout" Version="2.0" IssueInstant="{instant}"{destination} NotOnOrAfter="{until}"><saml:Issuer>{issuer}</saml:Issuer><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">alice-persistent-id</saml:NameID><samlp:SessionIndex>_session42</samlp:SessionIndex></samlp:LogoutRequest>"#
    );
    let key = signer.map(|(c, k)| SigningKey::from_pem(&data(c), &data(k)).unwrap());
    let url = redirect_url(
        "https://dashboard.example.org/logout",
        "SAMLRequest",
        &xml,
        Some("back"),
        key.as_ref(),
    );
    url.split_once('?').unwrap().1.to_owned()
}

/// A LogoutResponse from the IdP answering `in_response_to`, as posted
/// (the XML; base64 it with [`b64`]), signed by the IdP when `signed`.
pub fn idp_logout_response(in_response_to: &str, signed: bool) -> String {
    let sig = if signed {
        signature_template("_lr1", &data("idp.crt"))
    } else {
        String::new()
    };
    let xml = format!(
        r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_lr1" Version="2.0" IssueInstant="2026-12-01T13:00:00Z" InResponseTo="{in_response_to}"><saml:Issuer>{IDP}</saml:Issuer>{sig}<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:LogoutResponse>"#
    );
    if signed {
        sign_with(&xml, &data("idp.key"))
    } else {
        xml
    }
}
