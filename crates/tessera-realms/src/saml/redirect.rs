//! The HTTP-Redirect binding (SAML Bindings §3.4): DEFLATE, base64, URL
//! encoding, and the query-string signature over
//! `SAMLRequest|SAMLResponse=…[&RelayState=…]&SigAlg=…` exactly as sent.

use std::io::{Read, Write};

use base64::Engine;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use rsa::pkcs1v15;
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use sha2::Sha256;

use super::error::{refuse, Rule, SamlError};
use super::keys::SigningKey;
use super::verify::TrustedKeys;
use super::xml::MAX_MESSAGE_BYTES;

/// The only query-signature algorithm sent and accepted.
pub const SIG_ALG_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

fn enc(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The URL that carries `xml` to `endpoint` as `param` (`SAMLRequest` or
/// `SAMLResponse`), signed with `signing` when given.
pub fn redirect_url(
    endpoint: &str,
    param: &str,
    xml: &str,
    relay_state: Option<&str>,
    signing: Option<&SigningKey>,
) -> String {
    let mut deflater = DeflateEncoder::new(Vec::new(), Compression::default());
    deflater
        .write_all(xml.as_bytes())
        .and_then(|()| deflater.flush())
        .expect("deflating into memory cannot fail");
    let deflated = deflater
        .finish()
        .expect("deflating into memory cannot fail");
    let encoded = base64::engine::general_purpose::STANDARD.encode(deflated);
    let mut query = format!("{param}={}", enc(&encoded));
    if let Some(rs) = relay_state {
        query.push_str(&format!("&RelayState={}", enc(rs)));
    }
    if let Some(key) = signing {
        query.push_str(&format!("&SigAlg={}", enc(SIG_ALG_RSA_SHA256)));
        let signer = pkcs1v15::SigningKey::<Sha256>::new(key.key.clone());
        let signature = signer.sign(query.as_bytes()).to_vec();
        let sig = base64::engine::general_purpose::STANDARD.encode(signature);
        query.push_str(&format!("&Signature={}", enc(&sig)));
    }
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{sep}{query}")
}

/// A message received with the HTTP-Redirect binding. Its `Debug` shows
/// neither the XML nor the signature, only their sizes.
#[derive(Clone)]
pub struct RedirectMessage {
    /// `SAMLRequest` or `SAMLResponse`.
    pub param: String,
    /// The inflated XML.
    pub xml: String,
    pub relay_state: Option<String>,
    signature: Option<QuerySignature>,
}

#[derive(Clone)]
struct QuerySignature {
    alg: String,
    value: Vec<u8>,
    signed: String,
}

impl std::fmt::Debug for RedirectMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedirectMessage")
            .field("param", &self.param)
            .field("xml_bytes", &self.xml.len())
            .field(
                "relay_state",
                &self.relay_state.as_ref().map(|_| "<redacted>"),
            )
            .field("signature_alg", &self.signature.as_ref().map(|s| &s.alg))
            .finish()
    }
}

impl RedirectMessage {
    /// Parses a raw query string (as received, still URL-encoded).
    pub fn parse(query: &str) -> Result<RedirectMessage, SamlError> {
        let query = query.strip_prefix('?').unwrap_or(query);
        if query.len() > MAX_MESSAGE_BYTES {
            return refuse(Rule::Encoding, "the query string is too large");
        }
        let mut message: Option<(&str, &str)> = None;
        let (mut relay, mut alg, mut sig) = (None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match k {
                "SAMLRequest" | "SAMLResponse" => {
                    if message.is_some() {
                        return refuse(Rule::Encoding, "more than one SAML message in the query");
                    }
                    message = Some((k, v));
                    continue;
                }
                "RelayState" => &mut relay,
                "SigAlg" => &mut alg,
                "Signature" => &mut sig,
                _ => continue,
            };
            if slot.replace(v).is_some() {
                return refuse(Rule::Encoding, format!("[{k}] is repeated in the query"));
            }
        }
        let Some((param, raw)) = message else {
            return refuse(
                Rule::Encoding,
                "no SAMLRequest or SAMLResponse in the query",
            );
        };
        let decoded = url_decode(raw);
        let compact: String = decoded.chars().filter(|c| !c.is_whitespace()).collect();
        let deflated = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|e| SamlError::new(Rule::Encoding, format!("not base64: {e}")))?;
        let mut xml = String::new();
        let read = DeflateDecoder::new(deflated.as_slice())
            .take(MAX_MESSAGE_BYTES as u64 + 1)
            .read_to_string(&mut xml);
        if read.is_err() {
            return refuse(Rule::Encoding, "not a DEFLATE stream of UTF-8 text");
        }
        if xml.len() > MAX_MESSAGE_BYTES {
            return refuse(Rule::Encoding, "the inflated message is too large");
        }
        let signature = match (alg, sig) {
            (None, None) => None,
            (Some(a), Some(s)) => {
                let mut signed = format!("{param}={raw}");
                if let Some(r) = relay {
                    signed.push_str(&format!("&RelayState={r}"));
                }
                signed.push_str(&format!("&SigAlg={a}"));
                let value: String = url_decode(s)
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                let value = base64::engine::general_purpose::STANDARD
                    .decode(value)
                    .map_err(|e| {
                        SamlError::new(
                            Rule::QuerySignature,
                            format!("the Signature is not base64: {e}"),
                        )
                    })?;
                Some(QuerySignature {
                    alg: url_decode(a),
                    value,
                    signed,
                })
            }
            _ => {
                return refuse(
                    Rule::QuerySignature,
                    "SigAlg and Signature must come together",
                )
            }
        };
        Ok(RedirectMessage {
            param: param.to_owned(),
            xml,
            relay_state: relay.map(url_decode),
            signature,
        })
    }

    /// Is the query signed at all?
    pub fn is_signed(&self) -> bool {
        self.signature.is_some()
    }

    /// Verifies the query signature with one of the IdP's metadata keys.
    pub fn verify(&self, keys: &TrustedKeys) -> Result<(), SamlError> {
        let Some(sig) = &self.signature else {
            return refuse(Rule::Unsigned, "the redirect-binding message is not signed");
        };
        if sig.alg != SIG_ALG_RSA_SHA256 {
            return refuse(
                Rule::QuerySignature,
                format!("signature algorithm [{}] is not accepted", sig.alg),
            );
        }
        let Ok(signature) = pkcs1v15::Signature::try_from(sig.value.as_slice()) else {
            return refuse(Rule::QuerySignature, "the signature is malformed");
        };
        let ok = keys.rsa_keys().iter().any(|k| {
            pkcs1v15::VerifyingKey::<Sha256>::new(k.clone())
                .verify(sig.signed.as_bytes(), &signature)
                .is_ok()
        });
        if ok {
            Ok(())
        } else {
            refuse(
                Rule::QuerySignature,
                format!(
                    "the query signature does not verify with the IdP keys {:?}",
                    keys.fingerprints()
                ),
            )
        }
    }
}

fn url_decode(v: &str) -> String {
    form_urlencoded::parse(format!("v={v}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
