//! The one error a SAML message is refused with.
//!
//! Every refusal names the rule that refused it ([`Rule`], a short stable
//! label for logs and the `result` label of `tessera_saml_responses_total`)
//! and carries a detail for the server log. Neither is meant for the caller,
//! who only learns that authentication failed.

use std::fmt;

/// The rule that refused a message: a short, stable, bounded label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Not base64, not deflated, or over the size limit.
    Encoding,
    /// Not well-formed XML, or not the expected root element.
    Xml,
    /// A DOCTYPE (and so any entity) was present.
    Doctype,
    /// Neither the Response nor the assertion carries a signature.
    Unsigned,
    /// A signature did not verify against the IdP's metadata keys.
    Signature,
    /// A signature is valid but does not cover the element consumed, or sits
    /// where no signature belongs (signature wrapping).
    SignatureWrapping,
    /// The signature breaks the SAML signature profile (references, transforms).
    SignatureProfile,
    /// `InResponseTo` names none of the caller's request ids.
    InResponseTo,
    /// The status is not `Success`.
    Status,
    /// An `Issuer` differs from `idp.entity_id`.
    Issuer,
    /// `Destination` differs from `sp.acs` (or `sp.logout`).
    Destination,
    /// Not exactly one assertion.
    AssertionCount,
    /// An encrypted assertion could not be decrypted (or no key is configured).
    Decryption,
    /// An `AudienceRestriction` does not name `sp.entity_id`.
    Audience,
    /// `NotBefore` is later than now plus the skew.
    NotYetValid,
    /// `NotOnOrAfter` (of the conditions, the confirmation or the session) has passed.
    Expired,
    /// No single bearer subject confirmation with data.
    SubjectConfirmation,
    /// The confirmation's `Recipient` differs from `sp.acs`.
    Recipient,
    /// Not exactly one `AuthnStatement`, or its context class is not accepted.
    AuthnStatement,
    /// The principal attribute (or NameID) is missing.
    Principal,
    /// A structural element the message needs is missing or malformed.
    Malformed,
    /// A redirect-binding query signature is missing or does not verify.
    QuerySignature,
}

impl Rule {
    /// The label: snake case, bounded, safe for a metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Encoding => "encoding",
            Rule::Xml => "xml",
            Rule::Doctype => "doctype",
            Rule::Unsigned => "unsigned",
            Rule::Signature => "signature",
            Rule::SignatureWrapping => "signature_wrapping",
            Rule::SignatureProfile => "signature_profile",
            Rule::InResponseTo => "in_response_to",
            Rule::Status => "status",
            Rule::Issuer => "issuer",
            Rule::Destination => "destination",
            Rule::AssertionCount => "assertion_count",
            Rule::Decryption => "decryption",
            Rule::Audience => "audience",
            Rule::NotYetValid => "not_yet_valid",
            Rule::Expired => "expired",
            Rule::SubjectConfirmation => "subject_confirmation",
            Rule::Recipient => "recipient",
            Rule::AuthnStatement => "authn_statement",
            Rule::Principal => "principal",
            Rule::Malformed => "malformed",
            Rule::QuerySignature => "query_signature",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused SAML message: the rule, a detail for the log, and (for
/// [`Rule::InResponseTo`]) the id the message answered, which Elasticsearch
/// returns as `security.saml.unsolicited_in_response_to`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SAML message refused by rule [{rule}]: {detail}")]
pub struct SamlError {
    /// The rule that refused the message.
    pub rule: Rule,
    /// What exactly was wrong, for the server log only.
    pub detail: String,
    /// The `InResponseTo` that matched none of the caller's ids.
    pub unsolicited_in_response_to: Option<String>,
}

impl SamlError {
    /// A refusal by `rule` with `detail`.
    pub fn new(rule: Rule, detail: impl Into<String>) -> Self {
        SamlError {
            rule,
            detail: detail.into(),
            unsolicited_in_response_to: None,
        }
    }
}

/// Shorthand for a refusal.
pub(crate) fn refuse<T>(rule: Rule, detail: impl Into<String>) -> Result<T, SamlError> {
    Err(SamlError::new(rule, detail))
}

/// Says where two strings that should be equal differ, the way
/// Elasticsearch does: both values and the first differing character.
pub fn describe_difference(what: &str, expected: &str, actual: &str) -> String {
    let at = expected
        .chars()
        .zip(actual.chars())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| expected.chars().count().min(actual.chars().count()));
    format!(
        "{what} is [{actual}] but expected [{expected}] (difference starts at character [#{at}])"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_difference_names_the_first_differing_character() {
        let d = describe_difference("audience", "https://sp.example/", "https://sp.example");
        assert!(d.contains("[#18]"), "{d}");
        let d = describe_difference("issuer", "abc", "abd");
        assert!(d.contains("[#2]"), "{d}");
    }
}
