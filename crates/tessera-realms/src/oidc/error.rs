//! The one error an OpenID Connect login is refused with.
//!
//! Every refusal names the rule that refused it ([`Rule`], a short stable
//! label for logs and the `result` label of `tessera_oidc_logins_total`)
//! and carries a detail for the server log. Neither is meant for the
//! caller, who only learns that authentication failed.

use std::fmt;

/// The rule that refused a login: a short, stable, bounded label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The callback URL is not under `rp.redirect_uri`, or not a URL.
    RedirectUri,
    /// The callback carries no state, or not the caller's.
    State,
    /// The provider answered `error=…` instead of a code.
    ProviderError,
    /// The callback's RFC 9207 `iss` differs from `op.issuer`.
    Issuer,
    /// The callback carries no code.
    Code,
    /// The provider could not be reached (the realm's endpoints are not
    /// known yet, or the back channel failed).
    Unavailable,
    /// The token endpoint refused the code or answered something else
    /// than a Bearer token response with an ID token.
    TokenResponse,
    /// The ID token's signature, algorithm, issuer, audience, times or
    /// hashes are wrong.
    IdToken,
    /// The ID token's nonce is not the caller's.
    Nonce,
    /// The userinfo answer is not usable or names another subject.
    Userinfo,
    /// The principal claim is missing or does not match its pattern.
    Principal,
    /// The ID token was already used to log in.
    Replayed,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::RedirectUri => "redirect_uri",
            Rule::State => "state",
            Rule::ProviderError => "provider_error",
            Rule::Issuer => "issuer",
            Rule::Code => "code",
            Rule::Unavailable => "unavailable",
            Rule::TokenResponse => "token_response",
            Rule::IdToken => "id_token",
            Rule::Nonce => "nonce",
            Rule::Userinfo => "userinfo",
            Rule::Principal => "principal",
            Rule::Replayed => "replayed",
        }
    }
}

/// A refused login: the rule and a detail for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcError {
    pub rule: Rule,
    pub detail: String,
}

impl OidcError {
    pub fn new(rule: Rule, detail: impl Into<String>) -> Self {
        Self {
            rule,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for OidcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule.as_str(), self.detail)
    }
}

impl std::error::Error for OidcError {}
