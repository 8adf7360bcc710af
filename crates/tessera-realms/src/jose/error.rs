//! The one error a token is refused with.

use std::fmt;

/// Why a token was refused: a short, stable, bounded label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JoseErrorKind {
    /// Not three base64url segments, not JSON, or a claim of the wrong type.
    Malformed,
    /// The header's `alg` is `none`, not in the allow-list, or has no key of
    /// its kind configured.
    AlgorithmNotAllowed,
    /// No key of the key set matches the header's `kid` (and algorithm).
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `iss` missing or not the expected issuer.
    WrongIssuer,
    /// `aud` missing or naming none of the allowed audiences.
    WrongAudience,
    /// `sub` missing, or not in the subject allow-list.
    SubjectNotAllowed,
    /// `exp` missing or passed (beyond the skew).
    Expired,
    /// `nbf` later than now plus the skew.
    NotYetValid,
    /// `iat` missing or later than now plus the skew.
    IssuedInFuture,
    /// ID token: `azp` missing (several audiences) or not the client id.
    WrongAuthorizedParty,
    /// ID token: `nonce` missing or not the one sent.
    WrongNonce,
    /// ID token: `at_hash` does not match the access token.
    WrongAccessTokenHash,
}

impl JoseErrorKind {
    /// The label: snake case, bounded, safe for a metric.
    pub fn as_str(self) -> &'static str {
        match self {
            JoseErrorKind::Malformed => "malformed",
            JoseErrorKind::AlgorithmNotAllowed => "algorithm_not_allowed",
            JoseErrorKind::UnknownKey => "unknown_key",
            JoseErrorKind::BadSignature => "bad_signature",
            JoseErrorKind::WrongIssuer => "wrong_issuer",
            JoseErrorKind::WrongAudience => "wrong_audience",
            JoseErrorKind::SubjectNotAllowed => "subject_not_allowed",
            JoseErrorKind::Expired => "expired",
            JoseErrorKind::NotYetValid => "not_yet_valid",
            JoseErrorKind::IssuedInFuture => "issued_in_future",
            JoseErrorKind::WrongAuthorizedParty => "wrong_authorized_party",
            JoseErrorKind::WrongNonce => "wrong_nonce",
            JoseErrorKind::WrongAccessTokenHash => "wrong_at_hash",
        }
    }
}

impl fmt::Display for JoseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused token: the rule ([`JoseErrorKind`], for metrics) and a detail
/// for the server log. Neither is for the caller, who only learns that
/// authentication failed. The detail never contains the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoseError {
    pub kind: JoseErrorKind,
    pub detail: String,
}

impl JoseError {
    pub fn new(kind: JoseErrorKind, detail: impl Into<String>) -> Self {
        JoseError {
            kind,
            detail: detail.into(),
        }
    }

    /// The stable label of the rule.
    pub fn label(&self) -> &'static str {
        self.kind.as_str()
    }

    /// True when a fresh copy of a remote or rotated key set could change the
    /// outcome: the key id is unknown or the signature failed (the provider
    /// may have rotated its keys). The caller refreshes at most once per
    /// validation, through the rate limit of [`super::JwksSource`].
    pub fn warrants_refresh(&self) -> bool {
        matches!(
            self.kind,
            JoseErrorKind::UnknownKey | JoseErrorKind::BadSignature
        )
    }
}

impl fmt::Display for JoseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

impl std::error::Error for JoseError {}
