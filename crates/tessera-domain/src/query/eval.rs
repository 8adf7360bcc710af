//! Evaluating a [`Search`] over documents.

use std::cmp::Ordering;

use serde_json::Value;

use crate::time::days_from_civil;

use super::*;

pub(super) fn run(search: &Search, docs: Vec<Doc>, now: Millis) -> Page {
    let mut hits: Vec<Doc> = docs
        .into_iter()
        .filter(|d| matches(&search.query, d, now))
        .collect();
    let total = hits.len();
    if search.sort.is_empty() {
        let hits = hits
            .into_iter()
            .skip(search.from)
            .take(search.size)
            .map(|d| (d.body, None))
            .collect();
        return Page { total, hits };
    }
    let keys = |d: &Doc| -> Vec<Value> {
        search
            .sort
            .iter()
            .map(|s| {
                first(&d.body, &s.field.path)
                    .cloned()
                    .unwrap_or(Value::Null)
            })
            .collect()
    };
    // A stable sort: ties keep the default order.
    hits.sort_by(|a, b| compare_keys(&search.sort, &keys(a), &keys(b)));
    let after = search.search_after.as_ref();
    let hits = hits
        .into_iter()
        .map(|d| {
            let k = keys(&d);
            (d.body, k)
        })
        .filter(|(_, k)| {
            after.is_none_or(|a| compare_keys(&search.sort, k, a) == Ordering::Greater)
        })
        .skip(search.from)
        .take(search.size)
        .map(|(body, k)| (body, Some(k)))
        .collect();
    Page { total, hits }
}

/// Orders two documents' sort values; a missing value sorts last in
/// either order, as in Elasticsearch.
fn compare_keys(sort: &[Sort], a: &[Value], b: &[Value]) -> Ordering {
    for ((s, x), y) in sort.iter().zip(a).zip(b) {
        let o = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                let o = compare_values(x, y, s.field.kind);
                if s.order == Order::Desc {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

fn compare_values(a: &Value, b: &Value, kind: Kind) -> Ordering {
    match (number(a, kind), number(b, kind)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => as_text(a).cmp(&as_text(b)),
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value as a number, for dates and numbers (dates may be ISO strings).
fn number(v: &Value, kind: Kind) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if kind == Kind::Date => parse_date(s).map(|m| m as f64),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The values at `path` (an array's elements are each a value).
fn values<'a>(doc: &'a Value, path: &[String]) -> Vec<&'a Value> {
    let mut at = doc;
    for key in path {
        match at.get(key) {
            Some(next) => at = next,
            None => return Vec::new(),
        }
    }
    match at {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().filter(|v| !v.is_null()).collect(),
        one => vec![one],
    }
}

fn first<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    values(doc, path).into_iter().next()
}

/// Whether a stored value equals a query value, as a term query compares.
fn equals(stored: &Value, asked: &Value, kind: Kind, ci: bool) -> bool {
    match kind {
        Kind::Boolean => {
            let b = |v: &Value| match v {
                Value::Bool(b) => Some(*b),
                Value::String(s) => s.parse().ok(),
                _ => None,
            };
            b(stored).is_some() && b(stored) == b(asked)
        }
        Kind::Date => match (number(stored, kind), number(asked, kind)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        Kind::Keyword => {
            let (s, a) = (as_text(stored), as_text(asked));
            if ci {
                s.to_lowercase() == a.to_lowercase()
            } else {
                s == a
            }
        }
    }
}

fn any(doc: &Doc, field: &Target, test: impl Fn(&Value) -> bool) -> bool {
    values(&doc.body, &field.path).into_iter().any(test)
}

fn matches(query: &Query, doc: &Doc, now: Millis) -> bool {
    match query {
        Query::MatchAll => true,
        Query::Bool {
            must,
            filter,
            should,
            must_not,
            minimum_should_match,
        } => {
            must.iter().chain(filter).all(|q| matches(q, doc, now))
                && !must_not.iter().any(|q| matches(q, doc, now))
                && should.iter().filter(|q| matches(q, doc, now)).count() >= *minimum_should_match
        }
        Query::Term {
            field,
            value,
            case_insensitive,
        } => any(doc, field, |v| {
            equals(v, value, field.kind, *case_insensitive)
        }),
        Query::Terms { field, values } => any(doc, field, |v| {
            values.iter().any(|a| equals(v, a, field.kind, false))
        }),
        Query::Prefix {
            field,
            value,
            case_insensitive,
        } => any(doc, field, |v| {
            let s = as_text(v);
            if *case_insensitive {
                s.to_lowercase().starts_with(&value.to_lowercase())
            } else {
                s.starts_with(value.as_str())
            }
        }),
        Query::Wildcard {
            field,
            pattern,
            case_insensitive,
        } => any(doc, field, |v| {
            let s = as_text(v);
            if *case_insensitive {
                wildcard(&pattern.to_lowercase(), &s.to_lowercase())
            } else {
                wildcard(pattern, &s)
            }
        }),
        Query::Range { field, bounds } => any(doc, field, |v| {
            bounds
                .iter()
                .all(|(bound, limit)| in_range(v, *bound, limit, field.kind, now))
        }),
        Query::Exists { field } => !values(&doc.body, &field.path).is_empty(),
        Query::Ids(ids) => ids.contains(&doc.id),
    }
}

fn in_range(stored: &Value, bound: Bound, limit: &Value, kind: Kind, now: Millis) -> bool {
    let o = if kind == Kind::Date {
        let limit = match limit {
            Value::String(s) if s == "now" => Some(now as f64),
            other => number(other, kind),
        };
        match (number(stored, kind), limit) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => None,
        }
    } else {
        Some(compare_values(stored, limit, kind))
    };
    match (o, bound) {
        (None, _) => false,
        (Some(o), Bound::Gt) => o == Ordering::Greater,
        (Some(o), Bound::Gte) => o != Ordering::Less,
        (Some(o), Bound::Lt) => o == Ordering::Less,
        (Some(o), Bound::Lte) => o != Ordering::Greater,
    }
}

/// `*` (any run) and `?` (one character) matching.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Epoch milliseconds (digits) or an ISO-8601 date or date-time
/// (`2024-01-31`, `2024-01-31T10:00:00.5Z`, `…+02:00`; no zone means UTC).
pub fn parse_date(s: &str) -> Option<Millis> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let num = |t: &str| -> Option<i64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let (date, rest) = s.split_at(s.find('T').unwrap_or(s.len()));
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let mut millis = days_from_civil(y, m, day) * 86_400_000;
    let rest = rest.strip_prefix('T').unwrap_or(rest);
    if rest.is_empty() {
        return Some(millis);
    }
    let (time, offset) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut parts = hms.split(':');
    let h = num(parts.next()?)?;
    let mi = parts.next().map(num).unwrap_or(Some(0))?;
    let sec = parts.next().map(num).unwrap_or(Some(0))?;
    if parts.next().is_some() || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let frac_ms = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        num(&digits)?
    };
    millis += ((h * 60 + mi) * 60 + sec) * 1000 + frac_ms;
    let shift = match offset {
        "" | "Z" | "z" => 0,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let o = &o[1..];
            let (oh, om) = o.split_once(':').unwrap_or((o.get(..2)?, o.get(2..)?));
            sign * (num(oh)? * 60 + num(om)?) * 60_000
        }
    };
    Some(millis - shift)
}
