//! Token strings and the stored token record.
//!
//! A token string is `base64url(kind byte || 32 random bytes)`: 264 bits, of
//! which 256 come from the OS RNG. The store never holds a token string, only
//! its SHA-256 ([`TokenHash`]). Because the strings carry 256 bits of entropy
//! an unsalted hash is enough: there is nothing to guess.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::authn::{Authentication, ClientRef};
use crate::crypto;
use crate::time::Millis;

/// Refresh tokens live this long after their pair was minted (as in Elasticsearch).
pub const REFRESH_TOKEN_LIFETIME_MS: Millis = 24 * 3_600 * 1_000;
/// Length of a token string we mint.
pub const TOKEN_STRING_LEN: usize = 44;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    fn tag(self) -> u8 {
        match self {
            TokenKind::Access => 0xA1,
            TokenKind::Refresh => 0xB2,
        }
    }
}

/// A token string handed to a client. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenString(Zeroizing<String>);

impl TokenString {
    pub fn mint(kind: TokenKind) -> Self {
        let mut raw = [0u8; 33];
        raw[0] = kind.tag();
        raw[1..].copy_from_slice(&crypto::random_bytes::<32>());
        Self(Zeroizing::new(URL_SAFE_NO_PAD.encode(raw)))
    }

    pub fn from_presented(s: &str) -> Self {
        Self(Zeroizing::new(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.expose())
    }

    /// Whether this string has the shape of a token Tessera mints for `kind`.
    /// A cheap check that turns away junk before any storage I/O.
    pub fn is_well_formed(&self, kind: TokenKind) -> bool {
        let s = self.expose();
        s.len() == TOKEN_STRING_LEN
            && URL_SAFE_NO_PAD
                .decode(s)
                .is_ok_and(|raw| raw.len() == 33 && raw[0] == kind.tag())
    }
}

impl std::fmt::Debug for TokenString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenString(<redacted>)")
    }
}

/// Whether `s` decodes as base64 in any common alphabet. Elasticsearch
/// distinguishes token strings that do not decode at all from ones that decode
/// but match nothing; the invalidate API reports the two differently.
pub fn decodes_as_base64(s: &str) -> bool {
    !s.is_empty()
        && (STANDARD.decode(s).is_ok()
            || URL_SAFE.decode(s).is_ok()
            || STANDARD_NO_PAD.decode(s).is_ok()
            || URL_SAFE_NO_PAD.decode(s).is_ok())
}

/// SHA-256 of a token string: the only form in which a token is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        Self(crypto::sha256(token.as_bytes()))
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The first bytes of a hash are enough to correlate log lines and
        // reveal nothing about the token.
        write!(
            f,
            "TokenHash({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// A freshly minted access/refresh pair, as handed to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    pub access: TokenString,
    pub refresh: Option<TokenString>,
}

/// The stored state of one issued pair: what Elasticsearch calls a token
/// document. Token strings appear only as hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    /// Random identifier of this pair (hex).
    pub id: String,
    pub access_hash: TokenHash,
    pub refresh_hash: Option<TokenHash>,
    /// The chain of refreshes this pair belongs to, and its place in it.
    pub family_id: String,
    pub generation: u32,
    /// Who the token stands for (type `token`), frozen at issuance.
    pub subject: Authentication,
    /// Who asked for it; only they may refresh it.
    pub client: ClientRef,
    /// The OAuth scope granted (RFC 6749 §3.3). `None`: unrestricted, as
    /// for every token issued through the Elasticsearch API. Successors
    /// inherit it.
    pub scope: Option<Vec<String>>,
    pub created_at: Millis,
    pub access_expires_at: Millis,
    pub refresh_expires_at: Option<Millis>,
    pub access_invalidated: bool,
    pub refresh_invalidated: bool,
    /// Set once the refresh token has been used.
    pub refreshed: Option<Refreshed>,
}

/// The successor of a refreshed pair: when it happened and the new pair,
/// sealed under a key only the presented refresh token can derive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refreshed {
    pub at: Millis,
    pub successor_id: String,
    pub sealed_successor: Vec<u8>,
}

impl TokenRecord {
    /// Mints a new, unrestricted (scope `None`) pair for `subject` on
    /// behalf of `client`, as the Elasticsearch API does. Returns the record
    /// to store and the strings to hand out once it is stored.
    pub fn issue(
        subject: &Authentication,
        client: ClientRef,
        with_refresh: bool,
        now: Millis,
        access_ttl_ms: Millis,
    ) -> (TokenRecord, TokenPair) {
        Self::issue_scoped(subject, client, None, with_refresh, now, access_ttl_ms)
    }

    /// Mints a new pair carrying `scope` (see [`TokenRecord::scope`]), the
    /// first of a new family.
    pub fn issue_scoped(
        subject: &Authentication,
        client: ClientRef,
        scope: Option<Vec<String>>,
        with_refresh: bool,
        now: Millis,
        access_ttl_ms: Millis,
    ) -> (TokenRecord, TokenPair) {
        let family_id = random_id();
        Self::issue_in_family(
            subject.as_token(),
            client,
            scope,
            with_refresh,
            now,
            access_ttl_ms,
            family_id,
            0,
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn issue_in_family(
        subject: Authentication,
        client: ClientRef,
        scope: Option<Vec<String>>,
        with_refresh: bool,
        now: Millis,
        access_ttl_ms: Millis,
        family_id: String,
        generation: u32,
    ) -> (TokenRecord, TokenPair) {
        let access = TokenString::mint(TokenKind::Access);
        let refresh = with_refresh.then(|| TokenString::mint(TokenKind::Refresh));
        let record = TokenRecord {
            id: random_id(),
            access_hash: access.hash(),
            refresh_hash: refresh.as_ref().map(TokenString::hash),
            family_id,
            generation,
            subject,
            client,
            scope,
            created_at: now,
            access_expires_at: now.saturating_add(access_ttl_ms),
            refresh_expires_at: with_refresh.then(|| now.saturating_add(REFRESH_TOKEN_LIFETIME_MS)),
            access_invalidated: false,
            refresh_invalidated: false,
            refreshed: None,
        };
        (record, TokenPair { access, refresh })
    }

    /// Whether the access token authenticates at `now`.
    pub fn access_usable(&self, now: Millis) -> bool {
        !self.access_invalidated && now < self.access_expires_at
    }

    /// Elasticsearch's notion of an "active" document for invalidation by
    /// user or realm: either half could still be used.
    pub fn is_active(&self, now: Millis) -> bool {
        self.access_usable(now) || self.refresh_usable(now)
    }

    /// Whether the refresh token could still be used for a first refresh
    /// at `now`: issued, neither expired nor invalidated, and not yet used
    /// (a used one only replays its successor inside the window).
    pub fn refresh_unused(&self, now: Millis) -> bool {
        self.refresh_usable(now) && self.refreshed.is_none()
    }

    fn refresh_usable(&self, now: Millis) -> bool {
        self.refresh_expires_at.is_some_and(|exp| now < exp) && !self.refresh_invalidated
    }

    /// When the whole record can be forgotten: neither half can ever be
    /// used again, and a repeat refresh can no longer be answered.
    pub fn purgeable_after(&self) -> Millis {
        self.access_expires_at
            .max(self.refresh_expires_at.unwrap_or(0))
    }
}

/// 128-bit random identifier, hex encoded.
pub fn random_id() -> String {
    let bytes: [u8; 16] = crypto::random_bytes();
    to_hex(&bytes)
}

/// Lowercase hex, the encoding of [`random_id`].
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        let id = random_id();
        assert_eq!(id.len(), 32);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn minted_tokens_are_well_formed_and_distinct() {
        let a = TokenString::mint(TokenKind::Access);
        let b = TokenString::mint(TokenKind::Access);
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), TOKEN_STRING_LEN);
        assert!(a.is_well_formed(TokenKind::Access));
        assert!(!a.is_well_formed(TokenKind::Refresh));
        assert!(TokenString::mint(TokenKind::Refresh).is_well_formed(TokenKind::Refresh));
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn base64_detection_matches_elasticsearch_test_strings() {
        assert!(decodes_as_base64("46ToAxYzNUdPZWdYOFRQcWhjeHR3NWpvTmVB"));
        assert!(!decodes_as_base64(
            "!this_is_not_a_base64_string_and_we_should_fail_decoding_it"
        ));
        assert!(!decodes_as_base64(
            "10we+might+assume+this+is+valid+old+token"
        ));
        assert!(decodes_as_base64(
            TokenString::mint(TokenKind::Access).expose()
        ));
    }
}
