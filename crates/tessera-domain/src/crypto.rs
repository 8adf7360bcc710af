//! Small, boring cryptography: random secrets, hashing, constant-time
//! comparison and the sealing of a successor token pair.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// `n` bytes from the operating system's random number generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    OsRng.fill_bytes(&mut out);
    out
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Compares two byte strings without leaking where they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

const SEAL_INFO: &[u8] = b"tessera/successor-pair/v1";
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// The randomness one sealing needs: a salt for the key derivation and a
/// nonce. Drawn from the OS RNG by [`SealRandom::draw`] at the edge, and
/// handed in, so that what seals stays a pure function.
#[derive(Clone, PartialEq, Eq)]
pub struct SealRandom {
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
}

impl SealRandom {
    /// Bytes of randomness one sealing takes.
    pub const BYTES: usize = SALT_LEN + NONCE_LEN;

    pub fn draw() -> Self {
        Self::from_bytes(&*Zeroizing::new(random_bytes::<{ Self::BYTES }>()))
    }

    /// The salt and nonce from `bytes`, [`SealRandom::BYTES`] fresh bytes
    /// of the OS RNG used for nothing else.
    ///
    /// # Panics
    /// If `bytes` is not [`SealRandom::BYTES`] long.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        assert_eq!(bytes.len(), Self::BYTES, "a sealing's randomness");
        let (salt, nonce) = bytes.split_at(SALT_LEN);
        Self {
            salt: salt.try_into().expect("the salt's length"),
            nonce: nonce.try_into().expect("the nonce's length"),
        }
    }
}

impl std::fmt::Debug for SealRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealRandom(…)")
    }
}

/// Encrypts `plaintext` under a key derived (HKDF-SHA256, with the salt
/// of `random`) from `secret`. Only someone holding `secret` can open the
/// result; the store keeps the sealed bytes, never the secret. Each
/// `random` is for one sealing.
///
/// Layout: `salt (32) || nonce (12) || AES-256-GCM ciphertext+tag`.
/// `context` is bound as associated data.
pub fn seal(secret: &[u8], context: &[u8], plaintext: &[u8], random: &SealRandom) -> Vec<u8> {
    let SealRandom { salt, nonce } = random;
    let cipher = cipher_for(secret, salt);
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: plaintext,
                aad: context,
            },
        )
        .expect("AES-GCM encryption of a bounded message cannot fail");
    let mut out = Vec::with_capacity(SALT_LEN + NONCE_LEN + ciphertext.len());
    out.extend_from_slice(salt);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&ciphertext);
    out
}

/// Opens what [`seal`] produced. `None` when the secret or context is wrong
/// or the bytes were tampered with.
pub fn open(secret: &[u8], context: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < SALT_LEN + NONCE_LEN + 16 {
        return None;
    }
    let (salt, rest) = sealed.split_at(SALT_LEN);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let cipher = cipher_for(secret, salt);
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: context,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

fn cipher_for(secret: &[u8], salt: &[u8]) -> Aes256Gcm {
    let hk = Hkdf::<Sha256>::new(Some(salt), secret);
    let mut key = Zeroizing::new([0u8; 32]);
    hk.expand(SEAL_INFO, key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    Aes256Gcm::new_from_slice(key.as_ref()).expect("the key is 32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_rejects_wrong_secret() {
        let sealed = seal(b"secret-a", b"ctx", b"hello", &SealRandom::draw());
        assert_eq!(
            open(b"secret-a", b"ctx", &sealed).unwrap().as_slice(),
            b"hello"
        );
        assert!(open(b"secret-b", b"ctx", &sealed).is_none());
        assert!(open(b"secret-a", b"other", &sealed).is_none());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(open(b"secret-a", b"ctx", &tampered).is_none());
        assert!(open(b"secret-a", b"ctx", &sealed[..10]).is_none());
    }

    #[test]
    fn ct_eq_compares() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}

/// A secret held in memory (a password from the configuration, say): its
/// `Debug` never shows it, and its memory is wiped when it is dropped.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(zeroize::Zeroizing<String>);

impl Secret {
    pub fn new(text: impl Into<String>) -> Self {
        Self(zeroize::Zeroizing::new(text.into()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod secret_tests {
    use super::Secret;

    #[test]
    fn a_secret_never_shows_in_debug() {
        let s = Secret::new("hunter2-hunter2");
        assert_eq!(s.expose(), "hunter2-hunter2");
        assert!(!format!("{s:?} {:?}", Some(&s)).contains("hunter2"));
        let parsed: Secret = serde_json::from_str("\"from-a-file\"").unwrap();
        assert_eq!(parsed.expose(), "from-a-file");
    }
}
