//! The rules DSL of a role mapping and its evaluation against a user.
//!
//! A rule is one of `{"any": [rules]}`, `{"all": [rules]}`,
//! `{"field": {"<name>": value | [values]}}` and `{"except": rule}` (only as
//! a member of an `all`). Parsing follows Elasticsearch's expression parser
//! and answers with its messages; evaluation follows its expression model:
//!
//! - A string value containing `*` is a wildcard (`*` any run of
//!   characters, `?` one character, `\` escapes the next one); a `?`
//!   without a `*` is an ordinary character, as in Elasticsearch. A string
//!   `/…/` is a regular expression that must match the whole value (Rust
//!   `regex` syntax, `.` matching newlines too). Anything else is compared
//!   exactly.
//! - `null` matches a field the user does not have (no `dn`, a missing
//!   metadata key) or whose value is null; never an empty `groups`.
//! - Numbers equal numbers (as integers, or as floating point when either
//!   has a fraction), booleans equal booleans; types never cross (`"1"`
//!   is not `1`).
//! - A multi-valued user field (`groups`, a metadata array) matches when
//!   any of its values does; a rule with several values matches when any
//!   of them does.
//! - `dn` and `groups` compare exactly without regard to case and as DNs
//!   (see `dn`); a pattern is tried on the value as given, on its normalized
//!   DN, and on its lower- and upper-cased forms, and `*,<dn>` also matches
//!   any DN below `<dn>` however it is spelled.

use regex::{Regex, RegexBuilder};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::dn::Dn;
use super::{MappingError, UserData};

/// Longest pattern (wildcard or regular expression) a rule may hold.
pub const MAX_PATTERN_CHARS: usize = 4096;
/// Compiled size limit of one pattern, in bytes.
const PATTERN_SIZE_LIMIT: usize = 256 * 1024;
/// Memory for the lazy DFA of one pattern, in bytes.
const PATTERN_DFA_LIMIT: usize = 256 * 1024;
/// Most patterns one mapping may hold, which bounds what compiling a
/// mapping costs (every login of an external user compiles them all).
pub const MAX_PATTERNS: usize = 64;
/// Deepest nesting of groups and repetitions in a regular expression.
const PATTERN_NEST_LIMIT: u32 = 64;

/// The user fields a rule may name, besides `metadata.<key>`.
pub const FIELDS: &[&str] = &["username", "dn", "groups", "realm.name"];

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    Any(Vec<Rule>),
    All(Vec<Rule>),
    Field(FieldRule),
    /// Only as a member of [`Rule::All`].
    Except(Box<Rule>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldRule {
    pub field: String,
    pub values: Vec<FieldValue>,
}

/// One value of a `field` rule: a string, number, boolean or null, with
/// its compiled pattern when it is a wildcard or `/regex/`.
#[derive(Debug, Clone)]
pub struct FieldValue {
    value: Value,
    pattern: Option<Regex>,
}

impl PartialEq for FieldValue {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl FieldValue {
    pub fn new(value: Value) -> Result<Self, MappingError> {
        let pattern = match &value {
            Value::String(s) => compile(s)?,
            Value::Null | Value::Bool(_) | Value::Number(_) => None,
            other => {
                return Err(MappingError::Rules(format!(
                "failed to parse rules expression. expected a field value but found [{}] instead",
                token(other)
            )))
            }
        };
        Ok(Self { value, pattern })
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Whether `text` matches: the pattern, or the exact string.
    fn matches_text(&self, text: &str) -> bool {
        match &self.pattern {
            Some(p) => p.is_match(text),
            None => self.value.as_str() == Some(text),
        }
    }

    /// Elasticsearch's comparison of a value that may be a DN.
    fn matches_dn(&self, text: &str) -> bool {
        let dn = Dn::parse(text);
        if let Some(pattern) = &self.pattern {
            if pattern.is_match(text)
                || dn
                    .as_ref()
                    .is_some_and(|d| pattern.is_match(&d.normalized()))
                || pattern.is_match(&text.to_lowercase())
                || pattern.is_match(&text.to_uppercase())
            {
                return true;
            }
            let Some(dn) = dn else { return false };
            // `*,dc=example,dc=com`: the subtree, however it is spelled.
            return self
                .value
                .as_str()
                .and_then(|p| p.strip_prefix("*,"))
                .filter(|suffix| !suffix.contains('*'))
                .and_then(Dn::parse)
                .is_some_and(|base| dn.is_descendant_of(&base));
        }
        let Some(wanted) = self.value.as_str() else {
            return false;
        };
        if wanted.to_lowercase() == text.to_lowercase() {
            return true;
        }
        let Some(dn) = dn else { return false };
        match Dn::parse(wanted) {
            Some(wanted) => wanted == dn,
            None => wanted.to_lowercase() == dn.normalized().to_lowercase(),
        }
    }

    /// A metadata value: typed comparison, any member of an array.
    fn matches_json(&self, actual: &Value) -> bool {
        match actual {
            Value::Null => self.value.is_null(),
            Value::Bool(b) => self.value.as_bool() == Some(*b),
            Value::Number(n) => matches!(&self.value, Value::Number(m) if numbers_equal(n, m)),
            Value::String(s) => self.matches_text(s),
            Value::Array(items) => items.iter().any(|item| self.matches_json(item)),
            // Elasticsearch cannot compare objects; nothing matches one.
            Value::Object(_) => false,
        }
    }
}

fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
        (Some(x), Some(y), _, _) => x == y,
        (_, _, Some(x), Some(y)) => x == y,
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

/// Elasticsearch's test for a regular expression value.
fn is_regex(s: &str) -> bool {
    s.len() > 1 && s.starts_with('/') && s.ends_with('/')
}

fn compile(s: &str) -> Result<Option<Regex>, MappingError> {
    let source = if is_regex(s) {
        let inner = &s[1..s.len() - 1];
        check_length(s)?;
        // Checked alone first, so that it cannot close the group that
        // anchors it below.
        build(inner).map_err(|e| bad_regex(s, &e))?;
        format!("^(?s:{inner})$")
    } else if s.contains('*') {
        if s.starts_with('/') {
            return Err(MappingError::Illegal(format!(
                "invalid pattern [{s}]. patterns starting with '/' indicate regular expression pattern and therefore must also end with '/'. other patterns (those that do not start with '/') will be treated as simple wildcard patterns"
            )));
        }
        check_length(s)?;
        wildcard_regex(s)
    } else {
        return Ok(None);
    };
    build(&source).map(Some).map_err(|e| bad_regex(s, &e))
}

fn check_length(s: &str) -> Result<(), MappingError> {
    if s.chars().count() > MAX_PATTERN_CHARS {
        return Err(MappingError::Illegal(format!(
            "pattern is longer than the limit of [{MAX_PATTERN_CHARS}] characters"
        )));
    }
    Ok(())
}

pub(crate) fn build(source: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(source)
        .dot_matches_new_line(true)
        .size_limit(PATTERN_SIZE_LIMIT)
        .dfa_size_limit(PATTERN_DFA_LIMIT)
        .nest_limit(PATTERN_NEST_LIMIT)
        .build()
}

fn bad_regex(pattern: &str, e: &regex::Error) -> MappingError {
    let detail = match e {
        regex::Error::CompiledTooBig(_) => "the compiled pattern is too large".to_owned(),
        other => other
            .to_string()
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .trim_start_matches("error: ")
            .to_owned(),
    };
    MappingError::Illegal(format!("invalid pattern [{pattern}]: {detail}"))
}

/// Lucene's wildcard syntax as an anchored regular expression.
fn wildcard_regex(pattern: &str) -> String {
    let mut out = String::from("^");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '\\' => match chars.next() {
                Some(next) => out.push_str(&regex::escape(next.encode_utf8(&mut [0; 4]))),
                None => out.push_str("\\\\"),
            },
            c => out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    out.push('$');
    out
}

/// Elasticsearch's name for the JSON token a value starts with.
pub(crate) fn token(v: &Value) -> &'static str {
    match v {
        Value::Null => "VALUE_NULL",
        Value::Bool(_) => "VALUE_BOOLEAN",
        Value::Number(_) => "VALUE_NUMBER",
        Value::String(_) => "VALUE_STRING",
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
    }
}

fn parse_error(message: String) -> MappingError {
    MappingError::Rules(format!("failed to parse rules expression. {message}"))
}

/// The first field of a rules object, refusing an empty one.
fn single_field<'a>(
    object_name: &str,
    object: &'a Map<String, Value>,
) -> Result<(&'a String, &'a Value), MappingError> {
    object.iter().next().ok_or_else(|| {
        parse_error(format!(
            "object [{object_name}] does not contain any fields"
        ))
    })
}

fn expect_object(v: &Value) -> Result<&Map<String, Value>, MappingError> {
    v.as_object().ok_or_else(|| {
        parse_error(format!(
            "expected an object but found [{}] instead",
            token(v)
        ))
    })
}

impl Rule {
    /// Parses the rules object named `object_name` (the mapping's name at
    /// the top, as in Elasticsearch's messages).
    pub fn parse(object_name: &str, v: &Value) -> Result<Rule, MappingError> {
        Self::parse_object(object_name, v, false)
    }

    /// [`Rule::parse`], refusing rules with more than [`MAX_PATTERNS`]
    /// patterns.
    pub fn parse_bounded(object_name: &str, v: &Value) -> Result<Rule, MappingError> {
        let rule = Self::parse(object_name, v)?;
        if rule.patterns() > MAX_PATTERNS {
            return Err(MappingError::Illegal(format!(
                "a role mapping may hold at most [{MAX_PATTERNS}] patterns (wildcards and regular expressions)"
            )));
        }
        Ok(rule)
    }

    fn parse_object(
        object_name: &str,
        v: &Value,
        allow_except: bool,
    ) -> Result<Rule, MappingError> {
        let Some(object) = v.as_object() else {
            return Err(parse_error(format!(
                "expected [{object_name}] to be an object but found [{}] instead",
                token(v)
            )));
        };
        let (kind, body) = single_field(object_name, object)?;
        let rule = match kind.as_str() {
            "any" => Rule::Any(Self::parse_array("any", body, false)?),
            "all" => Rule::All(Self::parse_array("all", body, true)?),
            "field" => Rule::Field(FieldRule::parse(body)?),
            "except" if allow_except => {
                expect_object(body)?;
                Rule::Except(Box::new(Self::parse_object("except", body, false)?))
            }
            "except" => {
                return Err(parse_error(format!(
                    "field [except] is not allowed within [{object_name}]"
                )))
            }
            other => {
                return Err(parse_error(format!(
                    "field [{other}] is not recognised in object [{object_name}]"
                )))
            }
        };
        if object.len() > 1 {
            return Err(parse_error(format!(
                "object [{object_name}] contains multiple fields"
            )));
        }
        Ok(rule)
    }

    fn parse_array(name: &str, v: &Value, allow_except: bool) -> Result<Vec<Rule>, MappingError> {
        let Some(items) = v.as_array() else {
            return Err(parse_error(format!("field [{name}] requires an array")));
        };
        items
            .iter()
            .map(|item| Self::parse_object(name, item, allow_except))
            .collect()
    }

    /// How many compiled patterns (wildcards, regular expressions) the
    /// rule holds.
    pub fn patterns(&self) -> usize {
        match self {
            Rule::Any(rules) | Rule::All(rules) => rules.iter().map(Rule::patterns).sum(),
            Rule::Except(rule) => rule.patterns(),
            Rule::Field(f) => f.values.iter().filter(|v| v.pattern.is_some()).count(),
        }
    }

    /// Whether the rule matches the user.
    pub fn matches(&self, user: &UserData) -> bool {
        match self {
            Rule::Any(rules) => rules.iter().any(|r| r.matches(user)),
            Rule::All(rules) => rules.iter().all(|r| r.matches(user)),
            Rule::Except(rule) => !rule.matches(user),
            Rule::Field(field) => field.matches(user),
        }
    }
}

impl FieldRule {
    fn parse(v: &Value) -> Result<FieldRule, MappingError> {
        let object = expect_object(v)?;
        let (field, given) = single_field("field", object)?;
        let values = match given {
            Value::Array(items) => items
                .iter()
                .map(|item| FieldValue::new(item.clone()))
                .collect::<Result<Vec<_>, _>>()?,
            one => vec![FieldValue::new(one.clone())?],
        };
        if object.len() > 1 {
            return Err(parse_error(
                "object [field] contains multiple fields".into(),
            ));
        }
        if field.is_empty() {
            return Err(MappingError::Illegal("null or empty field name ()".into()));
        }
        if values.is_empty() {
            return Err(MappingError::Illegal("null or empty values ([])".into()));
        }
        let known = FIELDS.contains(&field.as_str())
            || field
                .strip_prefix("metadata.")
                .is_some_and(|k| !k.is_empty());
        if !known {
            return Err(MappingError::Illegal(format!(
                "failed to parse rules expression. field [{field}] is not a user field; use one of [{}, metadata.<key>]",
                FIELDS.join(", ")
            )));
        }
        Ok(FieldRule {
            field: field.clone(),
            values,
        })
    }

    fn matches(&self, user: &UserData) -> bool {
        let any = |test: &dyn Fn(&FieldValue) -> bool| self.values.iter().any(test);
        match self.field.as_str() {
            "username" => any(&|v| v.matches_text(&user.username)),
            "realm.name" => any(&|v| v.matches_text(&user.realm_name)),
            "dn" => match &user.dn {
                Some(dn) => any(&|v| v.matches_dn(dn)),
                None => any(&|v| v.value.is_null()),
            },
            "groups" => any(&|v| user.groups.iter().any(|g| v.matches_dn(g))),
            field => match field
                .strip_prefix("metadata.")
                .and_then(|k| metadata(user, k))
            {
                Some(actual) => any(&|v| v.matches_json(actual)),
                None => any(&|v| v.value.is_null()),
            },
        }
    }
}

/// The metadata value a `metadata.<key>` field names: the key as written
/// (what Elasticsearch looks up), or else with its backslash escapes
/// removed (what Elasticsearch's documentation asks for: `saml\(uid\)`).
fn metadata<'a>(user: &'a UserData, key: &str) -> Option<&'a Value> {
    user.metadata.get(key).or_else(|| {
        if !key.contains('\\') {
            return None;
        }
        let mut plain = String::with_capacity(key.len());
        let mut chars = key.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => plain.extend(chars.next()),
                c => plain.push(c),
            }
        }
        user.metadata.get(&plain)
    })
}

impl Serialize for Rule {
    /// Elasticsearch's form: a field rule with one value holds it bare.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = Map::new();
        match self {
            Rule::Any(rules) => map.insert("any".into(), to_value(rules)),
            Rule::All(rules) => map.insert("all".into(), to_value(rules)),
            Rule::Except(rule) => map.insert("except".into(), to_value(rule)),
            Rule::Field(f) => {
                let values = match f.values.as_slice() {
                    [one] => one.value.clone(),
                    many => Value::Array(many.iter().map(|v| v.value.clone()).collect()),
                };
                let mut field = Map::new();
                field.insert(f.field.clone(), values);
                map.insert("field".into(), Value::Object(field))
            }
        };
        map.serialize(s)
    }
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}
