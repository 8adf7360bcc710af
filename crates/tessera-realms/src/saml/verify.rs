//! XML signatures: verified by bergshamra against the IdP's metadata keys
//! only, then bound to the element they sign.
//!
//! bergshamra runs with `trusted_keys_only` (a key or certificate in
//! `KeyInfo` is never used) and `strict_verification` (a reference must
//! point at the root, an ancestor or a sibling of its signature), and
//! rejects duplicate IDs. On top of that every signature must follow the
//! SAML signature profile (one reference, to its parent's own ID, with only
//! the enveloped-signature and exclusive canonicalization transforms and a
//! SHA-2 algorithm), and the verified reference must resolve to the very
//! byte offset where the other parser (roxmltree, which the rules read) sees
//! the signature's parent. Which parent may be signed is the caller's rule.

use std::fmt;

use bergshamra::{DsigContext, Key, KeysManager, VerifyResult};
use roxmltree::{Document, Node};
use rsa::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};

use super::error::{refuse, Rule, SamlError};
use super::xml::{self, is, NS_DSIG};

/// The most signatures a message may carry.
const MAX_SIGNATURES: usize = 4;

const ALLOWED_TRANSFORMS: &[&str] = &[
    "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
];
const ALLOWED_SIGNATURE_METHODS: &[&str] = &[
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
];
const ALLOWED_DIGESTS: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];

/// The IdP's signing keys, from its metadata (never from a message).
#[derive(Clone)]
pub struct TrustedKeys {
    keys: Vec<Key>,
    rsa: Vec<rsa::RsaPublicKey>,
    fingerprints: Vec<String>,
}

impl fmt::Debug for TrustedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedKeys")
            .field("sha256_fingerprints", &self.fingerprints)
            .finish()
    }
}

impl TrustedKeys {
    /// Keys from DER certificates (as listed in the IdP metadata).
    pub fn from_certificates(ders: &[Vec<u8>]) -> Result<TrustedKeys, SamlError> {
        let mut keys = Vec::new();
        let mut rsa = Vec::new();
        let mut fingerprints = Vec::new();
        for der in ders {
            let key = bergshamra::keys::loader::load_x509_cert_der(der).map_err(|e| {
                SamlError::new(
                    Rule::Malformed,
                    format!("an IdP certificate does not load: {e}"),
                )
            })?;
            let spki = key.to_spki_der().unwrap_or_default();
            if let Ok(public) = rsa::RsaPublicKey::from_public_key_der(&spki) {
                rsa.push(public);
            }
            keys.push(key);
            fingerprints.push(fingerprint(der));
        }
        if keys.is_empty() {
            return refuse(Rule::Malformed, "no IdP signing certificate");
        }
        Ok(TrustedKeys {
            keys,
            rsa,
            fingerprints,
        })
    }

    /// SHA-256 fingerprints of the certificates, for logs.
    pub fn fingerprints(&self) -> &[String] {
        &self.fingerprints
    }

    /// The RSA public keys among them (for redirect-binding signatures).
    pub(crate) fn rsa_keys(&self) -> &[rsa::RsaPublicKey] {
        &self.rsa
    }

    fn context(&self) -> DsigContext {
        let mut manager = KeysManager::new();
        manager.add_keys(self.keys.iter().cloned());
        // `ID` (SAML's ID attribute) is among bergshamra's default ID names.
        DsigContext::new(manager)
            .with_trusted_keys_only(true)
            .with_strict_verification(true)
            .with_require_reference_digests(true)
            .with_insecure(false)
    }
}

/// The SHA-256 fingerprint of a DER certificate, as colon-free hex.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One `<ds:Signature>` of a document and what became of it.
#[derive(Debug)]
pub struct CheckedSignature {
    /// Byte offset of the `<ds:Signature>` element.
    pub signature_at: usize,
    /// Byte offset of the element it sits in (its parent).
    pub parent_at: usize,
    /// `Ok` when it verified and signs exactly its parent; else why not.
    pub outcome: Result<(), SamlError>,
}

/// Verifies every signature in `text` (already parsed as `doc`). The
/// returned list has one entry per `<ds:Signature>` element, in document order.
pub fn check_signatures(
    text: &str,
    doc: &Document<'_>,
    keys: &TrustedKeys,
) -> Result<Vec<CheckedSignature>, SamlError> {
    let signatures: Vec<Node<'_, '_>> = doc
        .descendants()
        .filter(|n| is(*n, NS_DSIG, "Signature"))
        .collect();
    if signatures.is_empty() {
        return Ok(Vec::new());
    }
    // A Response signs at most itself and its assertion; refuse a flood of
    // signatures before any of them costs a canonicalization and an RSA check.
    if signatures.len() > MAX_SIGNATURES {
        return refuse(
            Rule::SignatureWrapping,
            format!(
                "{} signatures; at most {MAX_SIGNATURES} are read",
                signatures.len()
            ),
        );
    }
    let ctx = keys.context();
    let udoc = bergshamra::xml::uppsala::parse(text)
        .map_err(|e| SamlError::new(Rule::Xml, format!("signature parser refused the XML: {e}")))?;
    let results =
        bergshamra::dsig::verify::verify_all_document_with_source(&ctx, &udoc, Some(text))
            .map_err(|e| {
                let detail = format!("signature verification failed: {e}");
                if detail.contains("duplicate ID") {
                    SamlError::new(Rule::SignatureWrapping, detail)
                } else {
                    SamlError::new(Rule::Signature, detail)
                }
            })?;
    if results.len() != signatures.len() {
        return refuse(
            Rule::SignatureWrapping,
            format!(
                "the parsers disagree on the signatures ({} against {})",
                results.len(),
                signatures.len()
            ),
        );
    }
    let mut out = Vec::new();
    for (sig, result) in signatures.into_iter().zip(results) {
        let parent = sig.parent_element();
        let parent_at = parent.map_or(usize::MAX, |p| p.range().start);
        let outcome = profile(sig).and_then(|()| match result {
            VerifyResult::Invalid { reason } => refuse(
                Rule::Signature,
                format!(
                    "the XML signature does not verify with the IdP keys {:?}: {reason}",
                    keys.fingerprints
                ),
            ),
            VerifyResult::Valid {
                signature_node,
                references,
                ..
            } => {
                if udoc.node_range(signature_node).map(|r| r.start) != Some(sig.range().start) {
                    return refuse(
                        Rule::SignatureWrapping,
                        "the verified signature is not the one read",
                    );
                }
                let [reference] = references.as_slice() else {
                    return refuse(
                        Rule::SignatureProfile,
                        "a signature must have exactly one reference",
                    );
                };
                let target = reference.resolved_node.and_then(|n| udoc.node_range(n));
                if !reference.digest_verified || target.map(|r| r.start) != Some(parent_at) {
                    return refuse(
                        Rule::SignatureWrapping,
                        format!(
                            "the signature's reference [{}] is not the element it sits in",
                            reference.uri
                        ),
                    );
                }
                // What was verified is what the rules read: both parsers must
                // see the same text in the signed element.
                let verified_text = reference
                    .resolved_node
                    .map(|n| udoc.text_content_deep(n))
                    .unwrap_or_default();
                let read_text: String = parent
                    .into_iter()
                    .flat_map(|p| p.descendants())
                    .filter(|n| n.is_text())
                    .map(|n| n.text().unwrap_or(""))
                    .collect();
                let verified_attrs = reference
                    .resolved_node
                    .map(|n| uppsala_attributes(&udoc, n))
                    .unwrap_or_default();
                let read_attrs = parent.map(roxmltree_attributes).unwrap_or_default();
                if verified_text != read_text || verified_attrs != read_attrs {
                    return refuse(
                        Rule::SignatureWrapping,
                        "the signature verifier and the reader see different text or attributes in the signed element",
                    );
                }
                Ok(())
            }
        });
        out.push(CheckedSignature {
            signature_at: sig.range().start,
            parent_at,
            outcome,
        });
    }
    Ok(out)
}

/// The SAML signature profile: one reference to the parent's own ID, only
/// the allowed transforms, SHA-2 algorithms.
fn profile(sig: Node<'_, '_>) -> Result<(), SamlError> {
    let Some(parent) = sig.parent_element() else {
        return refuse(Rule::SignatureProfile, "a signature outside any element");
    };
    let id = parent.attribute("ID").unwrap_or("");
    if id.is_empty() {
        return refuse(Rule::SignatureProfile, "the signed element has no ID");
    }
    let Some(signed_info) = xml::only_child(sig, NS_DSIG, "SignedInfo")? else {
        return refuse(Rule::SignatureProfile, "no SignedInfo");
    };
    let method = xml::only_child(signed_info, NS_DSIG, "SignatureMethod")?
        .and_then(|m| m.attribute("Algorithm"))
        .unwrap_or("");
    if !ALLOWED_SIGNATURE_METHODS.contains(&method) {
        return refuse(
            Rule::SignatureProfile,
            format!("signature algorithm [{method}] is not accepted"),
        );
    }
    let references: Vec<_> = xml::children(signed_info, NS_DSIG, "Reference").collect();
    let [reference] = references.as_slice() else {
        return refuse(
            Rule::SignatureProfile,
            format!("{} references instead of one", references.len()),
        );
    };
    let uri = reference.attribute("URI").unwrap_or("");
    if uri.strip_prefix('#') != Some(id) {
        return refuse(
            Rule::SignatureWrapping,
            format!("the reference [{uri}] does not name the signed element's ID [{id}]"),
        );
    }
    if let Some(transforms) = xml::only_child(*reference, NS_DSIG, "Transforms")? {
        for t in xml::children(transforms, NS_DSIG, "Transform") {
            let alg = t.attribute("Algorithm").unwrap_or("");
            if !ALLOWED_TRANSFORMS.contains(&alg) {
                return refuse(
                    Rule::SignatureProfile,
                    format!("transform [{alg}] is not allowed"),
                );
            }
        }
    }
    let digest = xml::only_child(*reference, NS_DSIG, "DigestMethod")?
        .and_then(|m| m.attribute("Algorithm"))
        .unwrap_or("");
    if !ALLOWED_DIGESTS.contains(&digest) {
        return refuse(
            Rule::SignatureProfile,
            format!("digest algorithm [{digest}] is not accepted"),
        );
    }
    Ok(())
}

/// Every element's local name and non-namespace attributes under `id`, in
/// document order, as the signature verifier's parser sees them.
fn uppsala_attributes(
    doc: &bergshamra::xml::Document<'_>,
    id: bergshamra::xml::NodeId,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![id];
    while let Some(n) = stack.pop() {
        if let Some(e) = doc.element(n) {
            out.push(format!("<{}", e.name.local_name));
            for a in &e.attributes {
                out.push(format!("{}={}", a.name.local_name, a.value));
            }
            let children = doc.children(n);
            stack.extend(children.into_iter().rev());
        }
    }
    out
}

/// The same as the rules' parser sees it.
fn roxmltree_attributes(node: Node<'_, '_>) -> Vec<String> {
    let mut out = Vec::new();
    for e in node.descendants().filter(Node::is_element) {
        out.push(format!("<{}", e.tag_name().name()));
        for a in e.attributes() {
            out.push(format!("{}={}", a.name(), a.value()));
        }
    }
    out
}
