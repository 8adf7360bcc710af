//! `POST /_security/saml/authenticate`'s protocol half: a base64 SAML
//! Response in, an authenticated [`SamlIdentity`] out, or a refusal naming
//! the rule. Elasticsearch's checks in its order (reference §1.4).

use roxmltree::{Document, Node};

use super::assertion::{check_assertion, SamlIdentity};
use super::error::{describe_difference, refuse, Rule, SamlError};
use super::realm::SamlRealm;
use super::verify::{check_signatures, CheckedSignature};
use super::xml::{self, is, NS_ASSERTION, NS_PROTOCOL};

/// The status a successful Response carries.
pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

/// What the rules need besides the message: the caller's outstanding
/// request ids and the current time (ms since the epoch).
#[derive(Debug, Clone, Copy)]
pub struct Validation<'a> {
    pub ids: &'a [String],
    pub now_ms: i64,
}

/// Decodes, verifies and validates a Response as POSTed to the ACS
/// (`content` is the base64 `SAMLResponse`; whitespace is ignored).
pub fn process_response(
    realm: &SamlRealm,
    content: &str,
    validation: Validation<'_>,
) -> Result<SamlIdentity, SamlError> {
    let text = xml::decode_base64_text(content)?;
    process_response_xml(realm, &text, validation)
}

/// As [`process_response`], for the decoded XML text.
pub fn process_response_xml(
    realm: &SamlRealm,
    text: &str,
    validation: Validation<'_>,
) -> Result<SamlIdentity, SamlError> {
    let config = &realm.config;
    let doc = xml::parse(text)?;
    let root = doc.root_element();
    if !is(root, NS_PROTOCOL, "Response") {
        return refuse(
            Rule::Xml,
            format!(
                "the root element is <{}>, not a samlp:Response",
                root.tag_name().name()
            ),
        );
    }
    let signatures = check_signatures(text, &doc, &realm.trusted)?;
    let plain_assertions: Vec<Node<'_, '_>> =
        xml::children(root, NS_ASSERTION, "Assertion").collect();
    let encrypted: Vec<Node<'_, '_>> =
        xml::children(root, NS_ASSERTION, "EncryptedAssertion").collect();
    // Every signature present must verify and sit on the Response or on its
    // direct assertion; nothing else is ever signed in a Response.
    let mut response_signed = false;
    let mut assertion_signed = false;
    for sig in &signatures {
        sig.outcome.clone()?;
        if sig.parent_at == root.range().start {
            response_signed = true;
        } else if plain_assertions
            .iter()
            .any(|a| a.range().start == sig.parent_at)
        {
            assertion_signed = true;
        } else {
            return refuse(
                Rule::SignatureWrapping,
                "a signature on an element that is neither the Response nor its assertion",
            );
        }
    }

    // 3. InResponseTo of the Response.
    if let Some(irt) = root.attribute("InResponseTo") {
        check_in_response_to(irt, validation.ids, "the Response")?;
    }
    // 4. Status.
    check_status(root)?;
    // 5. Issuer of the Response (optional there; must match when present).
    if let Some(issuer) = xml::only_child(root, NS_ASSERTION, "Issuer")? {
        check_issuer(&xml::text(issuer), &config.idp_entity_id)?;
    }
    // 6. Destination, required when the Response is signed.
    match root.attribute("Destination") {
        Some(d) if d != config.sp_acs => {
            return refuse(
                Rule::Destination,
                describe_difference("the Destination", &config.sp_acs, d),
            );
        }
        None if response_signed => {
            return refuse(Rule::Destination, "a signed Response without a Destination");
        }
        _ => {}
    }
    // 7. Exactly one assertion, plain or encrypted, and none anywhere else.
    let count = plain_assertions.len() + encrypted.len();
    let everywhere = doc
        .descendants()
        .filter(|n| is(*n, NS_ASSERTION, "Assertion") || is(*n, NS_ASSERTION, "EncryptedAssertion"))
        .count();
    if count != 1 || everywhere != 1 {
        return refuse(
            Rule::AssertionCount,
            format!("{count} assertions in the Response ({everywhere} in the document); exactly one is required"),
        );
    }
    if let Some(assertion) = plain_assertions.first() {
        if !response_signed && !assertion_signed {
            return refuse(
                Rule::Unsigned,
                "neither the Response nor its assertion is signed",
            );
        }
        return check_assertion(realm, *assertion, validation);
    }

    // An encrypted assertion: decrypt the document in place, read it again
    // (as hostile as before), and verify the assertion's own signature there.
    let Some(key) = &realm.decryption else {
        return refuse(
            Rule::Decryption,
            "an encrypted assertion, but no encryption key is configured",
        );
    };
    let decrypted = key.decrypt_document(text)?;
    let doc2 = xml::parse(&decrypted)?;
    let root2 = doc2.root_element();
    let assertion = decrypted_assertion(&doc2)?;
    let signatures2 = check_signatures(&decrypted, &doc2, &realm.trusted)?;
    let assertion_signed = assertion_signature(&signatures2, root2, assertion)?;
    if !response_signed && !assertion_signed {
        return refuse(
            Rule::Unsigned,
            "neither the Response nor its decrypted assertion is signed",
        );
    }
    check_assertion(realm, assertion, validation)
}

/// The one assertion inside the one `EncryptedAssertion`, after decryption.
fn decrypted_assertion<'a, 'i>(doc: &'a Document<'i>) -> Result<Node<'a, 'i>, SamlError> {
    let root = doc.root_element();
    if !is(root, NS_PROTOCOL, "Response") {
        return refuse(Rule::Decryption, "decryption changed the document's root");
    }
    let holders: Vec<_> = xml::children(root, NS_ASSERTION, "EncryptedAssertion").collect();
    let found: Vec<_> = holders
        .iter()
        .flat_map(|h| xml::children(*h, NS_ASSERTION, "Assertion"))
        .collect();
    let everywhere = doc
        .descendants()
        .filter(|n| is(*n, NS_ASSERTION, "Assertion"))
        .count();
    match found.as_slice() {
        [a] if holders.len() == 1 && everywhere == 1 => Ok(*a),
        _ => refuse(
            Rule::AssertionCount,
            format!(
                "{} assertions after decryption ({everywhere} in the document)",
                found.len()
            ),
        ),
    }
}

/// After decryption only the assertion's own signature counts (the
/// Response's was checked over the encrypted form); it must verify, and no
/// other signature may sit inside the assertion.
fn assertion_signature(
    signatures: &[CheckedSignature],
    root: Node<'_, '_>,
    assertion: Node<'_, '_>,
) -> Result<bool, SamlError> {
    let mut signed = false;
    for sig in signatures {
        if sig.parent_at == root.range().start {
            continue;
        }
        if sig.parent_at == assertion.range().start {
            sig.outcome.clone()?;
            signed = true;
        } else {
            return refuse(
                Rule::SignatureWrapping,
                "a signature inside the decrypted assertion on another element",
            );
        }
    }
    Ok(signed)
}

/// `InResponseTo` must be one of the caller's ids; otherwise the refusal
/// carries the id (Elasticsearch's `security.saml.unsolicited_in_response_to`).
/// A blank one is no claim at all, as in Elasticsearch (`Strings.hasText`):
/// some IdPs write `InResponseTo=""` into unsolicited Responses.
pub(crate) fn check_in_response_to(irt: &str, ids: &[String], what: &str) -> Result<(), SamlError> {
    if irt.trim().is_empty() || ids.iter().any(|id| id == irt) {
        return Ok(());
    }
    let mut e = SamlError::new(
        Rule::InResponseTo,
        format!("{what} is in-response-to [{irt}] but expected one of {ids:?}"),
    );
    e.unsolicited_in_response_to = Some(irt.to_owned());
    Err(e)
}

pub(crate) fn check_issuer(actual: &str, expected: &str) -> Result<(), SamlError> {
    if actual == expected {
        Ok(())
    } else {
        refuse(
            Rule::Issuer,
            describe_difference("the Issuer", expected, actual),
        )
    }
}

/// The status must be Success; otherwise the nested codes and message go to the log.
pub(crate) fn check_status(root: Node<'_, '_>) -> Result<(), SamlError> {
    let Some(status) = xml::only_child(root, NS_PROTOCOL, "Status")? else {
        return refuse(Rule::Status, "no Status");
    };
    let mut codes = Vec::new();
    let mut code = xml::only_child(status, NS_PROTOCOL, "StatusCode")?;
    while let Some(c) = code {
        codes.push(c.attribute("Value").unwrap_or("").to_owned());
        code = xml::only_child(c, NS_PROTOCOL, "StatusCode")?;
    }
    if codes.first().map(String::as_str) == Some(STATUS_SUCCESS) {
        return Ok(());
    }
    let message = xml::only_child(status, NS_PROTOCOL, "StatusMessage")?
        .map(xml::text)
        .unwrap_or_default();
    refuse(
        Rule::Status,
        format!("the status is not success: codes {codes:?}, message [{message}]"),
    )
}
