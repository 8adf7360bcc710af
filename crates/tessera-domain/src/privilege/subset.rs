//! Whether a regular expression of a privilege accepts every name a
//! requested `prefix*` pattern stands for (or, for a negated part of the
//! expression, none of them): a walk of the expression's DFA from the state
//! the prefix leads to, over every continuation that is valid UTF-8. Any
//! doubt (a DFA too large to build, too many states to visit) answers no,
//! which may under-report but never grants a name the expression leaves
//! out.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::util::{primitives::StateID, start, syntax};
use regex_automata::Anchored;

/// The most DFA states a walk visits before it gives up.
const MAX_VISITED: usize = 20_000;
/// The most bytes the DFA of one expression may take.
const DFA_SIZE_LIMIT: usize = 1 << 20;
/// Expressions whose DFA is kept (they come from roles, so they are few);
/// past this many the cache starts over.
const CACHED_DFAS: usize = 256;

type Dfa = dense::DFA<Vec<u32>>;

/// The DFAs built so far, by expression (`None`: it could not be built).
static DFAS: LazyLock<Mutex<HashMap<String, Option<Arc<Dfa>>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The DFA of `pattern`, built once.
fn dfa(pattern: &str) -> Option<Arc<Dfa>> {
    let mut cache = DFAS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = cache.get(pattern) {
        return known.clone();
    }
    let built = dense::Builder::new()
        .syntax(syntax::Config::new().dot_matches_new_line(true))
        .configure(
            dense::Config::new()
                .start_kind(StartKind::Anchored)
                .dfa_size_limit(Some(DFA_SIZE_LIMIT))
                .determinize_size_limit(Some(DFA_SIZE_LIMIT)),
        )
        .build(pattern)
        .ok()
        .map(Arc::new);
    if cache.len() >= CACHED_DFAS {
        cache.clear();
    }
    cache.insert(pattern.to_owned(), built.clone());
    built
}

/// Where a UTF-8 sequence is: at a character boundary, or expecting
/// continuation bytes (with the second byte's narrower ranges after `E0`,
/// `ED`, `F0` and `F4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Utf8 {
    Boundary,
    /// `n` more bytes in `80..=BF`.
    More(u8),
    /// One byte in the range, then `n` more.
    Second(u8, u8, u8),
}

impl Utf8 {
    fn next(self, b: u8) -> Option<Utf8> {
        match self {
            Utf8::Boundary => match b {
                0x00..=0x7F => Some(Utf8::Boundary),
                0xC2..=0xDF => Some(Utf8::More(1)),
                0xE0 => Some(Utf8::Second(0xA0, 0xBF, 1)),
                0xED => Some(Utf8::Second(0x80, 0x9F, 1)),
                0xE1..=0xEF => Some(Utf8::More(2)),
                0xF0 => Some(Utf8::Second(0x90, 0xBF, 2)),
                0xF4 => Some(Utf8::Second(0x80, 0x8F, 2)),
                0xF1..=0xF3 => Some(Utf8::More(3)),
                _ => None,
            },
            Utf8::More(n) => (0x80..=0xBF).contains(&b).then(|| match n {
                1 => Utf8::Boundary,
                n => Utf8::More(n - 1),
            }),
            Utf8::Second(lo, hi, n) => (lo..=hi).contains(&b).then_some(Utf8::More(n)),
        }
    }
}

/// Whether the full-match expression `pattern` accepts every string that
/// starts with `prefix` (`all`), or none of them (`!all`).
pub fn prefix_star(pattern: &str, prefix: &str, all: bool) -> bool {
    let Some(dfa) = dfa(pattern) else {
        return false;
    };
    let Ok(mut state) = dfa.start_state(&start::Config::new().anchored(Anchored::Yes)) else {
        return false;
    };
    for &b in prefix.as_bytes() {
        state = dfa.next_state(state, b);
    }
    let accepts = |q: StateID| dfa.is_match_state(dfa.next_eoi_state(q));
    let mut seen: HashSet<(StateID, Utf8)> = HashSet::new();
    let mut queue = VecDeque::from([(state, Utf8::Boundary)]);
    while let Some((q, at)) = queue.pop_front() {
        if !seen.insert((q, at)) {
            continue;
        }
        if seen.len() > MAX_VISITED {
            return false;
        }
        if dfa.is_dead_state(q) {
            // No continuation is accepted from here.
            if all {
                return false;
            }
            continue;
        }
        if at == Utf8::Boundary && accepts(q) != all {
            return false;
        }
        for b in 0..=255u8 {
            if let Some(next) = at.next(b) {
                queue.push_back((dfa.next_state(q, b), next));
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::prefix_star;

    #[test]
    fn prefixes_are_walked_over_every_continuation() {
        let cases: &[(&str, &str, bool, bool)] = &[
            ("^(?:.*)$", "", true, true),
            ("^(?:logs-.*)$", "logs-", true, true),
            ("^(?:logs-.*)$", "log", true, false),
            ("^(?:logs-[0-9]+)$", "logs-", true, false),
            ("^(?:([.]|ilm-history-).*)$", "logs-", false, true),
            ("^(?:([.]|ilm-history-).*)$", "", false, false),
            ("^(?:([.]|ilm-history-).*)$", "i", false, false),
            ("^(?:secret-.*)$", "s", false, false),
            ("^(?:secret-.*)$", "t", false, true),
            ("^(?:a.b)$", "a", true, false),
            ("^(?:é.*)$", "é", true, true),
        ];
        for (pattern, prefix, all, expected) in cases {
            assert_eq!(
                prefix_star(pattern, prefix, *all),
                *expected,
                "{pattern} {prefix}* all={all}"
            );
        }
    }
}
