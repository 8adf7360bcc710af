//! The query DSL subset of Elasticsearch's `_query` APIs (API keys, users),
//! evaluated in memory over JSON documents.
//!
//! [`parse`] turns a request body (`query`, `from`, `size`, `sort`,
//! `search_after`) into a [`Search`], refusing fields and query types the
//! collection does not allow with Elasticsearch's messages; [`Search::run`]
//! filters, sorts and pages documents. Pure: the current time (for `now` in
//! a date range) is an argument.

mod eval;
mod parse;
#[cfg(test)]
mod tests;

use serde_json::Value;

use crate::time::Millis;

pub use eval::wildcard;
pub use parse::parse;

/// The largest `from + size` (Elasticsearch's `index.max_result_window`).
pub const MAX_RESULT_WINDOW: usize = 10_000;
/// The page size when the request names none.
pub const DEFAULT_SIZE: usize = 10;

/// How a field's values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Exact strings (`keyword`).
    Keyword,
    /// Epoch milliseconds; ranges take millis or ISO-8601 strings.
    Date,
    Boolean,
}

/// One field a query may name: its name in queries, where it is in a
/// document, how it compares and whether it sorts.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub path: &'static str,
    pub kind: Kind,
    pub sortable: bool,
}

/// The fields of one collection. `flattened` names an object field whose
/// sub-fields (`metadata.x.y`) may all be queried as keywords.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub fields: &'static [Field],
    pub flattened: Option<&'static str>,
}

const fn field(name: &'static str, path: &'static str, kind: Kind, sortable: bool) -> Field {
    Field {
        name,
        path,
        kind,
        sortable,
    }
}

/// What `/_security/_query/api_key` may query, over the documents the API
/// key listing answers (`realm_name` is the document's `realm`).
pub const API_KEY_FIELDS: Fields = Fields {
    fields: &[
        field("username", "username", Kind::Keyword, true),
        field("realm_name", "realm", Kind::Keyword, true),
        field("name", "name", Kind::Keyword, true),
        field("type", "type", Kind::Keyword, true),
        field("creation", "creation", Kind::Date, true),
        field("expiration", "expiration", Kind::Date, true),
        field("invalidated", "invalidated", Kind::Boolean, true),
        field("invalidation", "invalidation", Kind::Date, true),
    ],
    flattened: Some("metadata"),
};

/// What `/_security/_query/user` may query.
pub const USER_FIELDS: Fields = Fields {
    fields: &[
        field("username", "username", Kind::Keyword, true),
        field("roles", "roles", Kind::Keyword, true),
        field("enabled", "enabled", Kind::Boolean, true),
        field("full_name", "full_name", Kind::Keyword, false),
        field("email", "email", Kind::Keyword, false),
    ],
    flattened: None,
};

/// A refused query, with Elasticsearch's type and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// `illegal_argument_exception`, `parsing_exception`, …
    pub kind: &'static str,
    pub reason: String,
}

impl QueryError {
    fn illegal(reason: impl Into<String>) -> Self {
        Self {
            kind: "illegal_argument_exception",
            reason: reason.into(),
        }
    }

    fn parsing(reason: impl Into<String>) -> Self {
        Self {
            kind: "parsing_exception",
            reason: reason.into(),
        }
    }

    /// A value given for a date field that is not one (Elasticsearch's
    /// `parse_exception`).
    fn not_a_date(value: &serde_json::Value) -> Self {
        let shown = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Self {
            kind: "parse_exception",
            reason: format!(
                "failed to parse date field [{shown}] with format \
                 [strict_date_optional_time||epoch_millis]"
            ),
        }
    }
}

/// A resolved field: where it is in a document and how it compares.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub path: Vec<String>,
    pub kind: Kind,
}

/// A query of the supported subset.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    MatchAll,
    Bool {
        must: Vec<Query>,
        filter: Vec<Query>,
        should: Vec<Query>,
        must_not: Vec<Query>,
        minimum_should_match: usize,
    },
    Term {
        field: Target,
        value: Value,
        case_insensitive: bool,
    },
    Terms {
        field: Target,
        values: Vec<Value>,
    },
    Prefix {
        field: Target,
        value: String,
        case_insensitive: bool,
    },
    Wildcard {
        field: Target,
        pattern: String,
        case_insensitive: bool,
    },
    Range {
        field: Target,
        bounds: Vec<(Bound, Value)>,
    },
    Exists {
        field: Target,
    },
    Ids(Vec<String>),
}

/// One side of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sort {
    pub field: Target,
    pub order: Order,
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub query: Query,
    pub from: usize,
    pub size: usize,
    pub sort: Vec<Sort>,
    pub search_after: Option<Vec<Value>>,
}

/// One document of a collection: its id (what `ids` matches) and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub id: String,
    pub body: Value,
}

/// A page of results: how many matched in all, and the page, each hit with
/// its sort values when the search is sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub total: usize,
    pub hits: Vec<(Value, Option<Vec<Value>>)>,
}

impl Search {
    /// Filters `docs` (given in their default order) by the query, sorts
    /// them, skips what `search_after` and `from` leave out and keeps `size`.
    /// `now` is what `now` means in a date range.
    pub fn run(&self, docs: Vec<Doc>, now: Millis) -> Page {
        eval::run(self, docs, now)
    }
}
