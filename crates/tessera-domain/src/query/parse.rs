//! From a request body to a [`Search`], with Elasticsearch's refusals.

use serde_json::{Map, Value};

use super::*;

/// Query types Elasticsearch knows but these APIs do not evaluate: naming
/// one is "not currently supported", naming anything else is unknown.
const KNOWN_ELSEWHERE: &[&str] = &[
    "match",
    "match_phrase",
    "match_phrase_prefix",
    "match_bool_prefix",
    "match_none",
    "multi_match",
    "query_string",
    "simple_query_string",
    "regexp",
    "fuzzy",
    "constant_score",
    "boosting",
    "dis_max",
    "function_score",
    "script",
    "script_score",
    "nested",
    "has_child",
    "has_parent",
    "more_like_this",
    "terms_set",
    "combined_fields",
    "distance_feature",
    "pinned",
    "wrapper",
];

/// Parses a `_query` request body (`null` for none) for the collection
/// `fields`. `request` names the request in messages
/// (`query_api_key_request`).
pub fn parse(body: &Value, fields: &Fields, request: &str) -> Result<Search, QueryError> {
    let empty = Map::new();
    let body = match body {
        Value::Null => &empty,
        Value::Object(m) => m,
        _ => {
            return Err(QueryError::parsing(format!(
                "[{request}] expected an object"
            )))
        }
    };
    if let Some(unknown) = body
        .keys()
        .find(|k| !["query", "from", "size", "sort", "search_after"].contains(&k.as_str()))
    {
        return Err(QueryError {
            kind: "x_content_parse_exception",
            reason: format!("[{request}] unknown field [{unknown}]"),
        });
    }
    let query = match body.get("query") {
        None | Some(Value::Null) => Query::MatchAll,
        Some(q) => query(q, fields)?,
    };
    let from = count(body.get("from"), "from")?.unwrap_or(0);
    let size = count(body.get("size"), "size")?.unwrap_or(DEFAULT_SIZE);
    if from.saturating_add(size) > MAX_RESULT_WINDOW {
        return Err(QueryError::illegal(format!(
            "Result window is too large, from + size must be less than or equal to: [{MAX_RESULT_WINDOW}] but was [{}]. See the scroll api for a more efficient way to request large data sets. This limit can be set by changing the [index.max_result_window] index level setting.",
            from.saturating_add(size)
        )));
    }
    let sort = match body.get("sort") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| sort(s, fields))
            .collect::<Result<_, _>>()?,
        Some(one) => vec![sort(one, fields)?],
    };
    let search_after = match body.get("search_after") {
        None | Some(Value::Null) => None,
        Some(Value::Array(values)) => {
            if values.len() != sort.len() {
                return Err(QueryError::illegal(format!(
                    "search_after has {} value(s) but sort has {}.",
                    values.len(),
                    sort.len()
                )));
            }
            for (value, by) in values.iter().zip(&sort) {
                date_if(by.field.kind, value)?;
            }
            Some(values.clone())
        }
        Some(_) => {
            return Err(QueryError::parsing(
                "[search_after] must be an array of sort values",
            ))
        }
    };
    Ok(Search {
        query,
        from,
        size,
        sort,
        search_after,
    })
}

/// Refuses `value` for a field of `kind` Date unless it is epoch
/// milliseconds, an ISO-8601 date or `now` (date math after `now` is let
/// through as before): a query with it would match nothing, silently.
fn date_if(kind: Kind, value: &Value) -> Result<(), QueryError> {
    let is_date = match value {
        Value::Number(n) => n.as_f64().is_some(),
        Value::String(s) => s.starts_with("now") || super::eval::parse_date(s).is_some(),
        _ => false,
    };
    if kind == Kind::Date && !is_date {
        return Err(QueryError::not_a_date(value));
    }
    Ok(())
}

fn count(value: Option<&Value>, name: &str) -> Result<Option<usize>, QueryError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let n = value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| QueryError::parsing(format!("[{name}] must be an integer")))?;
    if n < 0 {
        return Err(QueryError::illegal(format!(
            "[{name}] parameter cannot be negative, found [{n}]"
        )));
    }
    Ok(Some(usize::try_from(n).unwrap_or(usize::MAX)))
}

/// Resolves a field name of a query (`in_sort`: of a sort).
fn target(name: &str, fields: &Fields, in_sort: bool) -> Result<Target, QueryError> {
    if name.contains('*') || name.contains('?') {
        return Err(QueryError::illegal(format!(
            "Field name pattern [{name}] is not allowed for querying or aggregation"
        )));
    }
    if let Some(f) = fields.fields.iter().find(|f| f.name == name) {
        if in_sort && !f.sortable {
            return Err(QueryError::illegal(format!(
                "sorting is not supported for field [{name}]"
            )));
        }
        return Ok(Target {
            path: f.path.split('.').map(str::to_owned).collect(),
            kind: f.kind,
        });
    }
    if let Some(flat) = fields.flattened {
        if name == flat || name.starts_with(&format!("{flat}.")) {
            return Ok(Target {
                path: name.split('.').map(str::to_owned).collect(),
                kind: Kind::Keyword,
            });
        }
    }
    Err(QueryError::illegal(format!(
        "Field [{name}] is not allowed for querying or aggregation"
    )))
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, QueryError> {
    value
        .as_object()
        .ok_or_else(|| QueryError::parsing(format!("[{what}] query malformed, no start_object")))
}

/// The one `field: body` entry of a leaf query.
fn single<'a>(
    body: &'a Map<String, Value>,
    what: &str,
) -> Result<(&'a String, &'a Value), QueryError> {
    let mut entries = body
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "boost" | "_name"));
    match (entries.next(), entries.next()) {
        (Some(one), None) => Ok(one),
        (None, _) => Err(QueryError::illegal(format!(
            "[{what}] query does not support an empty field name"
        ))),
        (Some(_), Some(_)) => Err(QueryError::parsing(format!(
            "[{what}] query doesn't support multiple fields, found [{}] and [{}]",
            body.keys().next().map(String::as_str).unwrap_or_default(),
            body.keys().nth(1).map(String::as_str).unwrap_or_default()
        ))),
    }
}

/// A leaf's value, short (`"name": "x"`) or long (`"name": {"value": "x"}`),
/// and its `case_insensitive` flag.
fn leaf_value(body: &Value, what: &str) -> Result<(Value, bool), QueryError> {
    match body {
        Value::Object(m) => {
            if let Some(unknown) = m.keys().find(|k| {
                !matches!(
                    k.as_str(),
                    "value" | "case_insensitive" | "boost" | "_name" | "rewrite"
                )
            }) {
                return Err(QueryError::parsing(format!(
                    "[{what}] query does not support [{unknown}]"
                )));
            }
            let value = m
                .get("value")
                .cloned()
                .ok_or_else(|| QueryError::illegal("value cannot be null"))?;
            let ci = m
                .get("case_insensitive")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Ok((value, ci))
        }
        Value::Null => Err(QueryError::illegal("value cannot be null")),
        Value::Array(_) => Err(QueryError::parsing(format!(
            "[{what}] query does not support array of values"
        ))),
        other => Ok((other.clone(), false)),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn clauses(value: &Value, fields: &Fields) -> Result<Vec<Query>, QueryError> {
    match value {
        Value::Array(items) => items.iter().map(|q| query(q, fields)).collect(),
        one => Ok(vec![query(one, fields)?]),
    }
}

fn minimum_should_match(value: &Value, should: usize) -> Result<usize, QueryError> {
    let bad = || QueryError::illegal(format!("invalid minimum_should_match [{value}]"));
    let spec = text(value);
    let spec = spec.trim();
    let n: i64 = if let Some(pct) = spec.strip_suffix('%') {
        let pct: i64 = pct.trim().parse().map_err(|_| bad())?;
        let n = (should as i64) * pct.abs() / 100;
        if pct < 0 {
            should as i64 - n
        } else {
            n
        }
    } else {
        let n: i64 = spec.parse().map_err(|_| bad())?;
        if n < 0 {
            should as i64 + n
        } else {
            n
        }
    };
    Ok(usize::try_from(n.max(0)).unwrap_or(0))
}

/// Parses one query object.
pub(super) fn query(value: &Value, fields: &Fields) -> Result<Query, QueryError> {
    let outer = value
        .as_object()
        .ok_or_else(|| QueryError::parsing("query malformed, must start with start_object"))?;
    let mut entries = outer.iter();
    let (name, body) = match (entries.next(), entries.next()) {
        (Some(one), None) => one,
        (None, _) => return Ok(Query::MatchAll),
        (Some((first, _)), Some((second, _))) => {
            return Err(QueryError::parsing(format!(
            "[{first}] malformed query, expected [END_OBJECT] but found [FIELD_NAME] ([{second}])"
        )))
        }
    };
    match name.as_str() {
        "match_all" => {
            object(body, name)?;
            Ok(Query::MatchAll)
        }
        "bool" => {
            let b = object(body, name)?;
            let mut must = Vec::new();
            let mut filter = Vec::new();
            let mut should = Vec::new();
            let mut must_not = Vec::new();
            let mut msm = None;
            for (k, v) in b {
                match k.as_str() {
                    "must" => must = clauses(v, fields)?,
                    "filter" => filter = clauses(v, fields)?,
                    "should" => should = clauses(v, fields)?,
                    "must_not" => must_not = clauses(v, fields)?,
                    "minimum_should_match" => msm = Some(v.clone()),
                    "boost" | "_name" | "adjust_pure_negative" => {}
                    other => {
                        return Err(QueryError::parsing(format!(
                            "[bool] query does not support [{other}]"
                        )))
                    }
                }
            }
            let minimum_should_match = match msm {
                Some(v) => minimum_should_match(&v, should.len())?,
                None if !should.is_empty() && must.is_empty() && filter.is_empty() => 1,
                None => 0,
            };
            Ok(Query::Bool {
                must,
                filter,
                should,
                must_not,
                minimum_should_match,
            })
        }
        "term" | "prefix" | "wildcard" => {
            let (field, leaf) = single(object(body, name)?, name)?;
            let field = target(field, fields, false)?;
            let (value, case_insensitive) = leaf_value(leaf, name)?;
            Ok(match name.as_str() {
                "term" => Query::Term {
                    field,
                    value,
                    case_insensitive,
                },
                "prefix" => Query::Prefix {
                    field,
                    value: text(&value),
                    case_insensitive,
                },
                _ => Query::Wildcard {
                    field,
                    pattern: text(&value),
                    case_insensitive,
                },
            })
        }
        "terms" => {
            let (field, values) = single(object(body, name)?, name)?;
            let Value::Array(values) = values else {
                return Err(QueryError::illegal(
                    "terms query with terms lookup is not currently supported in this context",
                ));
            };
            Ok(Query::Terms {
                field: target(field, fields, false)?,
                values: values.clone(),
            })
        }
        "range" => {
            let (field, spec) = single(object(body, name)?, name)?;
            let field = target(field, fields, false)?;
            let spec = object(spec, name)?;
            let mut bounds = Vec::new();
            for (k, v) in spec {
                let bound =
                    match k.as_str() {
                        "gt" => Bound::Gt,
                        "gte" | "from" => Bound::Gte,
                        "lt" => Bound::Lt,
                        "lte" | "to" => Bound::Lte,
                        "relation" => return Err(QueryError::illegal(
                            "range query with relation is not currently supported in this context",
                        )),
                        "boost" | "_name" | "format" => continue,
                        other => {
                            return Err(QueryError::parsing(format!(
                                "[range] query does not support [{other}]"
                            )))
                        }
                    };
                if !v.is_null() {
                    date_if(field.kind, v)?;
                    bounds.push((bound, v.clone()));
                }
            }
            Ok(Query::Range { field, bounds })
        }
        "exists" => {
            let b = object(body, name)?;
            let field = b
                .get("field")
                .and_then(Value::as_str)
                .ok_or_else(|| QueryError::illegal("[exists] must be provided with a [field]"))?;
            Ok(Query::Exists {
                field: target(field, fields, false)?,
            })
        }
        "ids" => {
            let b = object(body, name)?;
            let values = match b.get("values") {
                None => Vec::new(),
                Some(Value::Array(v)) => v.iter().map(text).collect(),
                Some(_) => return Err(QueryError::parsing("[ids] query values must be an array")),
            };
            Ok(Query::Ids(values))
        }
        other if KNOWN_ELSEWHERE.contains(&other) => Err(QueryError::illegal(format!(
            "Query type [{other}] is not currently supported in this context"
        ))),
        other => Err(QueryError::parsing(format!("unknown query [{other}]"))),
    }
}

/// One sort entry: `"field"`, `{"field": "desc"}` or
/// `{"field": {"order": "desc"}}`.
fn sort(value: &Value, fields: &Fields) -> Result<Sort, QueryError> {
    let (name, order) = match value {
        Value::String(name) => (name.as_str(), None),
        Value::Object(m) if m.len() == 1 => {
            let (name, spec) = m.iter().next().expect("one entry");
            let order = match spec {
                Value::String(o) => Some(o.as_str()),
                Value::Object(o) => {
                    if let Some(unknown) = o.keys().find(|k| {
                        !matches!(k.as_str(), "order" | "missing" | "unmapped_type" | "format")
                    }) {
                        return Err(QueryError::parsing(format!(
                            "[field_sort] unknown field [{unknown}]"
                        )));
                    }
                    o.get("order").and_then(Value::as_str)
                }
                _ => return Err(QueryError::parsing(format!("malformed sort for [{name}]"))),
            };
            (name.as_str(), order)
        }
        _ => return Err(QueryError::parsing("malformed sort format")),
    };
    let order = match order.map(str::to_ascii_lowercase).as_deref() {
        None | Some("asc") => Order::Asc,
        Some("desc") => Order::Desc,
        Some(other) => return Err(QueryError::illegal(format!("Unknown SortOrder [{other}]"))),
    };
    Ok(Sort {
        field: target(name, fields, true)?,
        order,
    })
}
