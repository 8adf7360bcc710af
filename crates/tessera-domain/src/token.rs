//! Token strings and the stored token record.
//!
//! A token string is `base64url(tag || locator || secret)`:
//!
//! - `tag` (1 byte) says whether it is an access or a refresh token;
//! - `locator` (8 bytes) is where the store files it: the milliseconds since
//!   the epoch at which it was minted (48 bits), then 16 random bits. It is
//!   not secret; it only makes tokens minted together sort together, so the
//!   store's index entries for a batch of new tokens land on one page
//!   instead of one random page each;
//! - `secret` (32 bytes, 256 bits) comes from the OS RNG.
//!
//! The store never holds a token string, only its [`TokenKey`]: the locator
//! followed by the first 24 bytes of the string's SHA-256. Because the secret
//! carries 256 bits of entropy an unsalted (truncated) hash is enough: there
//! is nothing to guess. Strings minted by earlier versions (`tag || secret`,
//! no locator) are still accepted; their stored form is the plain SHA-256.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::authn::{Authentication, ClientRef};
use crate::crypto;
use crate::time::Millis;

/// Refresh tokens live this long after their pair was minted (as in Elasticsearch).
pub const REFRESH_TOKEN_LIFETIME_MS: Millis = 24 * 3_600 * 1_000;
/// Bytes behind a token string we mint: tag, locator, secret.
const TOKEN_BYTES: usize = 1 + 8 + 32;
/// Length of a token string we mint.
pub const TOKEN_STRING_LEN: usize = 55;
/// Bytes behind, and length of, a token string minted before locators.
const LEGACY_TOKEN_BYTES: usize = 1 + 32;
const LEGACY_TOKEN_STRING_LEN: usize = 44;
/// Random bytes behind one token string: the secret, then the locator's
/// low 16 bits.
const MINT_RANDOM_BYTES: usize = 32 + 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    /// The first byte of the strings minted now.
    fn tag(self) -> u8 {
        match self {
            TokenKind::Access => 0xA3,
            TokenKind::Refresh => 0xB4,
        }
    }

    /// The first byte of the strings minted before locators.
    fn legacy_tag(self) -> u8 {
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
    /// A new token string of `kind`, minted at `now`.
    pub fn mint(kind: TokenKind, now: Millis) -> Self {
        // One read of the OS RNG: the secret, then the locator's low 16 bits.
        let random = Zeroizing::new(crypto::random_bytes::<MINT_RANDOM_BYTES>());
        Self::from_random(kind, now, &random)
    }

    /// The token string of `kind` minted at `now` from `random` (fresh
    /// bytes of the OS RNG, used for nothing else): the secret, then the
    /// locator's low 16 bits.
    fn from_random(kind: TokenKind, now: Millis, random: &[u8; MINT_RANDOM_BYTES]) -> Self {
        let mut raw = Zeroizing::new([0u8; TOKEN_BYTES]);
        raw[0] = kind.tag();
        let millis = u64::try_from(now).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
        let spread = u64::from(u16::from_be_bytes([random[32], random[33]]));
        raw[1..9].copy_from_slice(&(millis << 16 | spread).to_be_bytes());
        raw[9..].copy_from_slice(&random[..32]);
        Self(Zeroizing::new(URL_SAFE_NO_PAD.encode(*raw)))
    }

    pub fn from_presented(s: &str) -> Self {
        Self(Zeroizing::new(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenKey {
        TokenKey::of(self.expose())
    }

    /// Whether this string has the shape of a token Tessera mints (or
    /// minted before locators) for `kind`. A cheap check that turns away
    /// junk before any storage I/O.
    pub fn is_well_formed(&self, kind: TokenKind) -> bool {
        self.shape_as(kind).is_some()
    }

    /// The stored form of this string if it is a well-formed `kind` token
    /// (one decoding for both questions).
    pub fn hash_as(&self, kind: TokenKind) -> Option<TokenKey> {
        let shape = self.shape_as(kind)?;
        Some(TokenKey::from_shape(self.expose(), Some(shape)))
    }

    fn shape_as(&self, kind: TokenKind) -> Option<Shape> {
        decode(self.expose()).filter(|shape| match shape {
            Shape::Located(tag, _) => *tag == kind.tag(),
            Shape::Legacy(tag) => *tag == kind.legacy_tag(),
        })
    }
}

/// What a presented string decodes to, if it has a minted token's shape.
enum Shape {
    /// Tag and locator.
    Located(u8, [u8; 8]),
    /// Tag only (minted before locators).
    Legacy(u8),
}

fn decode(s: &str) -> Option<Shape> {
    let expected = match s.len() {
        TOKEN_STRING_LEN => TOKEN_BYTES,
        LEGACY_TOKEN_STRING_LEN => LEGACY_TOKEN_BYTES,
        _ => return None,
    };
    // Decoded on the stack (this runs for every bearer request), and wiped.
    let mut raw = Zeroizing::new([0u8; 48]);
    let len = URL_SAFE_NO_PAD.decode_slice(s, &mut raw[..]).ok()?;
    if len != expected {
        return None;
    }
    Some(if expected == TOKEN_BYTES {
        let mut locator = [0u8; 8];
        locator.copy_from_slice(&raw[1..9]);
        Shape::Located(raw[0], locator)
    } else {
        Shape::Legacy(raw[0])
    })
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

/// The key a token is stored and found under, and the only form in which
/// it is stored: its locator followed by the first 24 bytes of its SHA-256
/// (for a string minted before locators, or any other string, the plain
/// SHA-256). Not a hash of the whole string, hence not called one. See
/// the module's documentation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenKey(pub [u8; 32]);

impl TokenKey {
    pub fn of(token: &str) -> Self {
        Self::from_shape(token, decode(token))
    }

    fn from_shape(token: &str, shape: Option<Shape>) -> Self {
        let mut digest = crypto::sha256(token.as_bytes());
        if let Some(Shape::Located(_, locator)) = shape {
            digest.copy_within(..24, 8);
            digest[..8].copy_from_slice(&locator);
        }
        Self(digest)
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A few bytes of the digest (not of the locator, which only tells
        // the time) are enough to correlate log lines and reveal nothing
        // about the token.
        write!(f, "TokenKey(…{})", to_hex(&self.0[28..]))
    }
}

/// A freshly minted access/refresh pair, as handed to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    pub access: TokenString,
    pub refresh: Option<TokenString>,
}

/// The stored state of one issued pair: what Elasticsearch calls a token
/// document. Token strings appear only as hashes. Its `Debug` shows the
/// metadata's keys only: a value may be a secret (an OpenID Connect ID
/// token, kept for logout).
#[derive(Clone, PartialEq)]
pub struct TokenRecord {
    /// Random identifier of this pair (hex).
    pub id: String,
    pub access_hash: TokenKey,
    pub refresh_hash: Option<TokenKey>,
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
    /// The last moment any pair of this family may be used, inherited from
    /// the credential that minted it (an API key's expiration, the minting
    /// token's own end). `None`: no cap beyond the pair's own lifetimes.
    /// Successors inherit it.
    pub not_after: Option<Millis>,
    /// What the realm that authenticated the subject keeps with the token
    /// (a SAML login's NameID and session index, for logout). Never shown
    /// by `_authenticate`; successors inherit it.
    pub metadata: Option<Map<String, Value>>,
}

impl std::fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let metadata_keys = self.metadata.as_ref().map(|m| m.keys().collect::<Vec<_>>());
        f.debug_struct("TokenRecord")
            .field("id", &self.id)
            .field("access_hash", &self.access_hash)
            .field("refresh_hash", &self.refresh_hash)
            .field("family_id", &self.family_id)
            .field("generation", &self.generation)
            .field("subject", &self.subject)
            .field("client", &self.client)
            .field("scope", &self.scope)
            .field("created_at", &self.created_at)
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .field("access_invalidated", &self.access_invalidated)
            .field("refresh_invalidated", &self.refresh_invalidated)
            .field("refreshed", &self.refreshed)
            .field("not_after", &self.not_after)
            .field("metadata_keys", &metadata_keys)
            .finish()
    }
}

/// The successor of a refreshed pair: when it happened and the new pair,
/// sealed under a key only the presented refresh token can derive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refreshed {
    pub at: Millis,
    pub successor_id: String,
    pub sealed_successor: Vec<u8>,
}

/// The randomness one new pair needs: its id, a family id (used when it
/// starts a family), both token strings and the sealing of a successor.
/// [`Fresh::draw`] reads the OS RNG; the rules that mint take a `Fresh`,
/// so they stay pure functions of their inputs.
#[derive(Debug, Clone)]
pub struct Fresh {
    pub id: String,
    pub family_id: String,
    pub access: TokenString,
    pub refresh: TokenString,
    pub seal: crypto::SealRandom,
}

impl Fresh {
    /// Everything one pair minted at `now` needs, from one read of the OS
    /// RNG (a system call each would cost more than the rest of the
    /// minting), cut into disjoint parts: no byte serves two purposes.
    pub fn draw(now: Millis) -> Self {
        const ID: usize = 16;
        const TOKEN: usize = MINT_RANDOM_BYTES;
        const SEAL: usize = crypto::SealRandom::BYTES;
        let random = Zeroizing::new(crypto::random_bytes::<{ 2 * ID + 2 * TOKEN + SEAL }>());
        let (ids, rest) = random.split_at(2 * ID);
        let (tokens, seal) = rest.split_at(2 * TOKEN);
        let part = |bytes: &[u8]| -> [u8; TOKEN] { bytes.try_into().expect("a token's share") };
        Self {
            id: to_hex(&ids[..ID]),
            family_id: to_hex(&ids[ID..]),
            access: TokenString::from_random(
                TokenKind::Access,
                now,
                &Zeroizing::new(part(&tokens[..TOKEN])),
            ),
            refresh: TokenString::from_random(
                TokenKind::Refresh,
                now,
                &Zeroizing::new(part(&tokens[TOKEN..])),
            ),
            seal: crypto::SealRandom::from_bytes(seal),
        }
    }
}

impl TokenRecord {
    /// Mints a new, unrestricted (scope `None`) pair for `subject` on
    /// behalf of `client`, as the Elasticsearch API does, with randomness
    /// from the OS RNG. Returns the record to store and the strings to
    /// hand out once it is stored.
    pub fn issue(
        subject: &Authentication,
        client: ClientRef,
        with_refresh: bool,
        now: Millis,
        access_ttl_ms: Millis,
    ) -> (TokenRecord, TokenPair) {
        Self::first_of_family(
            Fresh::draw(now),
            subject,
            client,
            None,
            with_refresh,
            now,
            access_ttl_ms,
        )
    }

    /// The first pair of a new family, minted from `fresh`, carrying
    /// `scope` (see [`TokenRecord::scope`]).
    pub fn first_of_family(
        fresh: Fresh,
        subject: &Authentication,
        client: ClientRef,
        scope: Option<Vec<String>>,
        with_refresh: bool,
        now: Millis,
        access_ttl_ms: Millis,
    ) -> (TokenRecord, TokenPair) {
        let family_id = fresh.family_id.clone();
        Self::in_family(
            fresh,
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

    #[expect(clippy::too_many_arguments)]
    pub(crate) fn in_family(
        fresh: Fresh,
        subject: Authentication,
        client: ClientRef,
        scope: Option<Vec<String>>,
        with_refresh: bool,
        now: Millis,
        access_ttl_ms: Millis,
        family_id: String,
        generation: u32,
    ) -> (TokenRecord, TokenPair) {
        let Fresh {
            id,
            access,
            refresh,
            ..
        } = fresh;
        let refresh = with_refresh.then_some(refresh);
        let record = TokenRecord {
            id,
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
            not_after: None,
            metadata: None,
        };
        (record, TokenPair { access, refresh })
    }

    /// This record with its family capped at `not_after` (the earlier of
    /// it and any cap it had): neither half outlives the cap.
    pub fn capped(mut self, not_after: Option<Millis>) -> Self {
        let cap = match (self.not_after, not_after) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(cap) = cap {
            self.access_expires_at = self.access_expires_at.min(cap);
            self.refresh_expires_at = self.refresh_expires_at.map(|r| r.min(cap));
        }
        self.not_after = cap;
        self
    }

    /// The last moment this pair can be used at all (either half): what a
    /// token minted by this pair's access token may not outlive.
    pub fn last_usable(&self) -> Millis {
        self.access_expires_at
            .max(self.refresh_expires_at.unwrap_or(0))
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
        self.last_usable()
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

    const NOW: Millis = 1_795_000_000_000;

    #[test]
    fn minted_tokens_are_well_formed_and_distinct() {
        let a = TokenString::mint(TokenKind::Access, NOW);
        let b = TokenString::mint(TokenKind::Access, NOW);
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), TOKEN_STRING_LEN);
        assert!(a.is_well_formed(TokenKind::Access));
        assert!(!a.is_well_formed(TokenKind::Refresh));
        assert!(TokenString::mint(TokenKind::Refresh, NOW).is_well_formed(TokenKind::Refresh));
        assert_eq!(a.hash_as(TokenKind::Access), Some(a.hash()));
        assert_eq!(a.hash_as(TokenKind::Refresh), None);
        assert!(!format!("{a:?}").contains(a.expose()));
        for junk in ["", "abc", &a.expose()[1..], &format!("{}A", a.expose())] {
            assert!(!TokenString::from_presented(junk).is_well_formed(TokenKind::Access));
        }
    }

    #[test]
    fn one_draw_gives_a_pair_whose_parts_are_distinct() {
        let fresh = Fresh::draw(NOW);
        let again = Fresh::draw(NOW);
        for id in [&fresh.id, &fresh.family_id] {
            assert_eq!(id.len(), 32);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(fresh.id, fresh.family_id);
        assert!(fresh.access.is_well_formed(TokenKind::Access));
        assert!(fresh.refresh.is_well_formed(TokenKind::Refresh));
        // No byte of the draw serves twice: the two secrets differ.
        let secret = |t: &TokenString| URL_SAFE_NO_PAD.decode(t.expose()).unwrap()[9..].to_vec();
        assert_ne!(secret(&fresh.access), secret(&fresh.refresh));
        assert_eq!(fresh.access.hash().0[..6], fresh.refresh.hash().0[..6]);
        assert_ne!(fresh.id, again.id);
        assert_ne!(fresh.access, again.access);
        assert_ne!(fresh.seal, again.seal);
    }

    #[test]
    fn stored_form_is_the_locator_then_a_truncated_digest() {
        let t = TokenString::mint(TokenKind::Access, NOW);
        let raw = URL_SAFE_NO_PAD.decode(t.expose()).unwrap();
        assert_eq!(raw.len(), TOKEN_BYTES);
        let h = t.hash();
        assert_eq!(h.0[..8], raw[1..9]);
        assert_eq!(h.0[8..], crypto::sha256(t.expose().as_bytes())[..24]);
        // The locator is the minting time in milliseconds, then 16 bits.
        let locator = u64::from_be_bytes(h.0[..8].try_into().unwrap());
        assert_eq!(locator >> 16, NOW as u64);
        assert!(!format!("{h:?}").contains(&to_hex(&h.0[..8])));
    }

    #[test]
    fn later_tokens_sort_after_earlier_ones() {
        let key = |now| TokenString::mint(TokenKind::Refresh, now).hash().0[..8].to_vec();
        for step in [1, 2, 1_000] {
            assert!(key(NOW) < key(NOW + step));
        }
    }

    #[test]
    fn a_cap_bounds_both_halves_and_only_ever_shrinks() {
        let s = Authentication {
            username: "u".into(),
            roles: vec![],
            full_name: None,
            email: None,
            metadata: Default::default(),
            enabled: true,
            authentication_realm: crate::authn::NATIVE_REALM,
            lookup_realm: crate::authn::NATIVE_REALM,
            authentication_type: crate::authn::AuthenticationType::Realm,
            token: None,
            api_key: None,
        };
        let (record, _) = TokenRecord::issue(&s, s.client_ref(), true, NOW, 60_000);
        assert_eq!(record.clone().capped(None), record);
        let capped = record.clone().capped(Some(NOW + 1_000));
        assert_eq!(capped.access_expires_at, NOW + 1_000);
        assert_eq!(capped.refresh_expires_at, Some(NOW + 1_000));
        assert_eq!(capped.not_after, Some(NOW + 1_000));
        assert!(!capped.access_usable(NOW + 1_000));
        // A later cap never lengthens an earlier one.
        let again = capped.clone().capped(Some(NOW + 50_000));
        assert_eq!(again, capped);
        // A cap beyond both lifetimes changes no expiry, but is kept.
        let loose = record
            .clone()
            .capped(Some(NOW + REFRESH_TOKEN_LIFETIME_MS * 2));
        assert_eq!(loose.access_expires_at, record.access_expires_at);
        assert_eq!(loose.refresh_expires_at, record.refresh_expires_at);
        assert_eq!(loose.last_usable(), NOW + REFRESH_TOKEN_LIFETIME_MS);
    }

    #[test]
    fn tokens_minted_before_locators_are_still_recognised() {
        let mut raw = [7u8; LEGACY_TOKEN_BYTES];
        raw[0] = TokenKind::Refresh.legacy_tag();
        let old = TokenString::from_presented(&URL_SAFE_NO_PAD.encode(raw));
        assert_eq!(old.expose().len(), LEGACY_TOKEN_STRING_LEN);
        assert!(old.is_well_formed(TokenKind::Refresh));
        assert!(!old.is_well_formed(TokenKind::Access));
        // Stored as the plain SHA-256, as those versions stored it.
        assert_eq!(old.hash().0, crypto::sha256(old.expose().as_bytes()));
        // A legacy tag in the new length (or the reverse) is junk.
        let mut mixed = [7u8; TOKEN_BYTES];
        mixed[0] = TokenKind::Refresh.legacy_tag();
        let mixed = TokenString::from_presented(&URL_SAFE_NO_PAD.encode(mixed));
        assert!(!mixed.is_well_formed(TokenKind::Refresh));
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
            TokenString::mint(TokenKind::Access, NOW).expose()
        ));
    }
}
