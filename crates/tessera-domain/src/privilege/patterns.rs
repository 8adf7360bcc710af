//! Name patterns of role descriptors: index names, application names,
//! resources and action names.
//!
//! A pattern is an exact name, a wildcard (`*` any run of characters, `?`
//! one character) or, for index names, a `/…/` regular expression in
//! Elasticsearch's (Lucene's) syntax, of which Tessera understands the
//! common subset: ordinary regular expressions, a whole-pattern complement
//! `~(…)` and intersections `a&b` at the top level.
//!
//! A *requested* name may itself be a wildcard (`logs-*`): it is covered
//! when every name it stands for is, which [`Pattern::covers`] decides
//! exactly for exact and wildcard patterns (a `*` of the request is matched
//! only by a `*` of the pattern) and approximately for regular expressions
//! (the request's text is matched as a name).

use regex::{Regex, RegexBuilder};

/// Compiled size limit of one regular expression, in bytes.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Longest regular expression a pattern may hold.
const MAX_REGEX_CHARS: usize = 4096;

/// One compiled pattern.
#[derive(Debug, Clone)]
pub enum Pattern {
    Exact(String),
    Wildcard(String),
    /// Every part must match (`a&b`); a part is negated by `~(…)`.
    Regex(Vec<(bool, Regex)>),
    /// A regular expression Tessera cannot read: it matches nothing.
    Nothing,
}

impl Pattern {
    /// A pattern of names that may be a regular expression (`/…/`).
    pub fn index(text: &str) -> Self {
        match text
            .strip_prefix('/')
            .and_then(|t| t.strip_suffix('/'))
            .filter(|_| text.len() >= 2)
        {
            Some(body) => compile_lucene(body).map_or(Pattern::Nothing, Pattern::Regex),
            None => Self::wildcard(text),
        }
    }

    /// A pattern that is an exact name or a wildcard.
    pub fn wildcard(text: &str) -> Self {
        if has_wildcard(text) {
            Pattern::Wildcard(text.to_owned())
        } else {
            Pattern::Exact(text.to_owned())
        }
    }

    /// Whether the pattern matches every name `requested` stands for. A
    /// regular expression covers a requested `prefix*` when it accepts
    /// every name with that prefix ([`super::subset`]); any other requested
    /// wildcard or expression it does not cover, which may under-report
    /// but never grants what the expression leaves out (`/~(secret-.*)/`
    /// does not cover `*`).
    pub fn covers(&self, requested: &str) -> bool {
        match self {
            Pattern::Exact(name) => name == requested,
            Pattern::Wildcard(pattern) => glob_covers(pattern.as_bytes(), requested.as_bytes()),
            Pattern::Regex(parts) if has_wildcard(requested) || requested.starts_with('/') => {
                // Only `prefix*` is compared, part by part; any other
                // requested pattern is not covered.
                let Some(prefix) = requested
                    .strip_suffix('*')
                    .filter(|p| !has_wildcard(p) && !requested.starts_with('/'))
                else {
                    return false;
                };
                parts
                    .iter()
                    .all(|(negated, re)| super::subset::prefix_star(re.as_str(), prefix, !negated))
            }
            Pattern::Regex(parts) => parts
                .iter()
                .all(|(negated, re)| re.is_match(requested) != *negated),
            Pattern::Nothing => false,
        }
    }
}

/// Whether `text` has a wildcard character.
pub fn has_wildcard(text: &str) -> bool {
    text.contains(['*', '?'])
}

/// Whether `pattern` (a wildcard) matches `text` (a wildcard itself, or a
/// name): its `*` matches any run of `text`, its `?` one character of
/// `text` that is not a wildcard, anything else itself. A `*` or `?` of
/// `text` is matched only by a `*` of the pattern (or a `?` by a `?`).
pub fn glob_covers(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative matching with one backtrack point, linear in practice.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len()
            && text[t] != b'*'
            && (pattern[p] == text[t] || pattern[p] == b'?')
        {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// A Lucene regular expression (the subset above) as its parts.
fn compile_lucene(body: &str) -> Option<Vec<(bool, Regex)>> {
    if body.len() > MAX_REGEX_CHARS {
        return None;
    }
    split_top_level(body, '&')
        .into_iter()
        .map(|part| {
            let (negated, inner) = match part.strip_prefix("~(").and_then(|p| p.strip_suffix(')')) {
                Some(inner) if balanced(inner) => (true, inner),
                _ => (false, part),
            };
            RegexBuilder::new(&format!("^(?:{inner})$"))
                .dot_matches_new_line(true)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
                .ok()
                .map(|re| (negated, re))
        })
        .collect()
}

/// `text` split at each `sep` outside brackets, parentheses and escapes.
fn split_top_level(text: &str, sep: char) -> Vec<&str> {
    let (mut depth, mut in_class, mut escaped, mut start) = (0i32, false, false, 0);
    let mut parts = Vec::new();
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '[' => in_class = true,
            ']' => in_class = false,
            '(' if !in_class => depth += 1,
            ')' if !in_class => depth -= 1,
            c if c == sep && depth == 0 && !in_class => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Whether the parentheses of `text` balance (so that `~(a)|(b)` is not
/// read as the complement of `a)|(b`).
fn balanced(text: &str) -> bool {
    let mut depth = 0i32;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_cover_names_and_narrower_patterns() {
        let cases: &[(&str, &str, bool)] = &[
            ("logs", "logs", true),
            ("logs", "logs-1", false),
            ("logs-*", "logs-1", true),
            ("logs-*", "logs-", true),
            ("logs-*", "logs-app-*", true),
            ("logs-*", "log*", false),
            ("*", "anything*", true),
            ("logs-?", "logs-1", true),
            ("logs-?", "logs-*", false),
            ("logs-?", "logs-12", false),
            ("*-prod", "eu-prod", true),
            ("*-prod", "logs-*", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("/logs-[0-9]+/", "logs-12", true),
            ("/logs-[0-9]+/", "logs-x", false),
            ("/~(([.]|ilm-history-).*)/", "logs", true),
            ("/~(([.]|ilm-history-).*)/", ".kibana", false),
            ("/~(([.]|ilm-history-).*)/", "ilm-history-1", false),
            ("/metrics-.*&~(metrics-endpoint.*)/", "metrics-apm", true),
            (
                "/metrics-.*&~(metrics-endpoint.*)/",
                "metrics-endpoint.x",
                false,
            ),
            ("/(/", "(", false),
            // A requested pattern is never read as a name by an expression.
            ("/~(secret-.*)/", "*", false),
            ("/~(secret-.*)/", "s*", false),
            ("/logs-[a-z*]+/", "logs-*", false),
            ("/secret\\*/", "secret*", false),
            ("/logs-.*/", "/logs-.*/", false),
            ("/logs-.*/", "logs-app", true),
            ("/logs-.*/", "logs-app-*", true),
            ("/logs-.*/", "logs-*-x", false),
            ("/~(([.]|ilm-history-).*)/", "logs-*", true),
            ("/~(([.]|ilm-history-).*)/", "*", false),
            ("/metrics-.*&~(metrics-endpoint.*)/", "metrics-apm-*", true),
            ("/metrics-.*&~(metrics-endpoint.*)/", "metrics-*", false),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(
                Pattern::index(pattern).covers(name),
                *expected,
                "{pattern} covers {name}"
            );
        }
    }
}
