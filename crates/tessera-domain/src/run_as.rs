//! Run-as: which names a role's `run_as` patterns let its holder submit
//! requests for (Elasticsearch's "submitting requests on behalf of other
//! users"). Pure: the request layer finds the patterns and the target.
//!
//! A pattern is Elasticsearch's: `/…/` is a regular expression that must
//! match the whole name (Rust `regex` syntax, bounded as role-mapping
//! patterns are); anything else is a wildcard, `*` any run of characters,
//! `?` one character, `\` escaping the next one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::authn::RealmRef;
use crate::role_mapping::rules;

/// The request header that names the user to run as.
pub const HEADER: &str = "es-security-runas-user";

/// The key of the token metadata that marks a token minted while running
/// as another user: who ran it (such a token cannot run as anyone else).
pub const RUN_BY_KEY: &str = "run_by";

/// The authenticated caller of a request that runs as another user (what
/// the audit log writes as `user.run_by.*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunBy {
    pub username: String,
    pub realm: RealmRef,
}

impl RunBy {
    /// The token metadata that records `self` (see [`RUN_BY_KEY`]).
    pub fn token_metadata(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            RUN_BY_KEY.into(),
            serde_json::to_value(self).expect("serialisable"),
        );
        m
    }

    /// The caller a token's metadata records, if it was minted while
    /// running as another user.
    pub fn of_token_metadata(metadata: &Map<String, Value>) -> Option<Self> {
        serde_json::from_value(metadata.get(RUN_BY_KEY)?.clone()).ok()
    }
}

/// Whether any of `patterns` covers `target`.
pub fn allows<'a>(patterns: impl IntoIterator<Item = &'a str>, target: &str) -> bool {
    patterns.into_iter().any(|p| matches(p, target))
}

/// Whether one `run_as` pattern covers `name`.
pub fn matches(pattern: &str, name: &str) -> bool {
    if pattern.len() > 1 && pattern.starts_with('/') && pattern.ends_with('/') {
        let inner = &pattern[1..pattern.len() - 1];
        // An invalid or oversized expression covers nobody.
        return rules::build(inner).is_ok()
            && rules::build(&format!("^(?s:{inner})$")).is_ok_and(|r| r.is_match(name));
    }
    wildcard(pattern, name)
}

/// Lucene's wildcard match, iterative with one backtracking point (the
/// last `*`), so it is linear in practice and never recursive.
fn wildcard(pattern: &str, name: &str) -> bool {
    // On characters, so that `?` is one character, not one byte.
    let pattern = tokens(pattern);
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(Token::Any) => {
                p += 1;
                n += 1;
            }
            Some(Token::Char(c)) if *c == name[n] => {
                p += 1;
                n += 1;
            }
            Some(Token::Star) => {
                star = Some((p, n));
                p += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|t| matches!(t, Token::Star))
}

enum Token {
    Star,
    Any,
    Char(char),
}

fn tokens(pattern: &str) -> Vec<Token> {
    let mut out = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '*' => Token::Star,
            '?' => Token::Any,
            '\\' => Token::Char(chars.next().unwrap_or('\\')),
            c => Token::Char(c),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_wildcards_and_expressions() {
        let cases = [
            ("jacknich", "jacknich", true),
            ("jacknich", "jacknic", false),
            ("*", "anyone", true),
            ("*", "", true),
            ("jack*", "jacknich", true),
            ("jack*", "rdeniro", false),
            ("*nich", "jacknich", true),
            ("j?ck*", "jacknich", true),
            ("j?ck", "jck", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("\\*", "*", true),
            ("\\*", "x", false),
            ("/run_.*/", "run_as_user", true),
            ("/run_.*/", "xrun_as", false),
            ("/(/", "(", false),
            ("ü?", "üx", true),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(matches(pattern, name), expected, "{pattern} ~ {name}");
        }
        assert!(allows(["a", "b*"], "bob"));
        assert!(!allows([], "bob"));
    }
}
