//! The SP's own keys: signing (redirect-binding query signatures) and
//! decryption (encrypted assertions). Their `Debug` never shows key material.

use std::fmt;

use base64::Engine;
use bergshamra::{EncContext, Key, KeysManager};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::RsaPrivateKey;

use super::error::{refuse, Rule, SamlError};

/// The DER blocks labelled `label` in PEM text.
pub fn pem_blocks(pem: &str, label: &str) -> Vec<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start + begin.len()..];
        let Some(stop) = after.find(&end) else { break };
        let b64: String = after[..stop].split_whitespace().collect();
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b64) {
            out.push(der);
        }
        rest = &after[stop + end.len()..];
    }
    out
}

/// A PEM certificate's DER, or a message saying why not.
pub fn certificate_der(pem: &str) -> Result<Vec<u8>, String> {
    pem_blocks(pem, "CERTIFICATE")
        .into_iter()
        .next()
        .ok_or_else(|| "no PEM CERTIFICATE block".to_owned())
}

/// An RSA private key from PEM (PKCS#8 or PKCS#1).
fn rsa_private(pem: &str) -> Result<RsaPrivateKey, String> {
    RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|_| "not an unencrypted RSA private key in PEM (PKCS#8 or PKCS#1)".to_owned())
}

/// The SP's signing key and certificate (`signing.key`, `signing.certificate`).
#[derive(Clone)]
pub struct SigningKey {
    pub(crate) key: RsaPrivateKey,
    /// The certificate (DER), published in the SP metadata.
    pub certificate: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// From PEM texts; RSA only, as in Elasticsearch.
    pub fn from_pem(certificate_pem: &str, key_pem: &str) -> Result<SigningKey, String> {
        Ok(SigningKey {
            key: rsa_private(key_pem)?,
            certificate: certificate_der(certificate_pem)?,
        })
    }
}

/// The SP's decryption key and certificate (`encryption.key`, `encryption.certificate`).
#[derive(Clone)]
pub struct DecryptionKey {
    key: Key,
    /// The certificate (DER), published in the SP metadata.
    pub certificate: Vec<u8>,
}

impl fmt::Debug for DecryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DecryptionKey(<redacted>)")
    }
}

impl DecryptionKey {
    /// From PEM texts; RSA only.
    pub fn from_pem(certificate_pem: &str, key_pem: &str) -> Result<DecryptionKey, String> {
        rsa_private(key_pem)?;
        let key = bergshamra::keys::loader::load_rsa_private_pem(key_pem.as_bytes())
            .map_err(|e| format!("the key does not load: {e}"))?;
        Ok(DecryptionKey {
            key,
            certificate: certificate_der(certificate_pem)?,
        })
    }

    /// Decrypts the first `<xenc:EncryptedData>` of `text` in place and
    /// returns the whole document. No `CipherReference` is ever followed.
    pub(crate) fn decrypt_document(&self, text: &str) -> Result<String, SamlError> {
        let mut manager = KeysManager::new();
        manager.add_key(self.key.clone());
        let mut ctx = EncContext::new(manager);
        ctx.disable_cipher_reference = true;
        match bergshamra::decrypt(&ctx, text) {
            Ok(plain) => Ok(plain),
            Err(e) => refuse(
                Rule::Decryption,
                format!("the encrypted assertion does not decrypt: {e}"),
            ),
        }
    }
}
