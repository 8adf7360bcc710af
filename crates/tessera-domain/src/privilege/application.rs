//! Application privileges: named sets of actions an application defines
//! (`PUT /_security/privilege`), and Elasticsearch's rules for their names.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One application privilege, as stored and as `GET /_security/privilege`
/// answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplicationPrivilege {
    pub application: String,
    pub name: String,
    pub actions: Vec<String>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// Characters an application name's suffix may not hold (Elasticsearch's
/// invalid file name characters).
const INVALID_SUFFIX_CHARS: &[char] = &['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ','];

/// Elasticsearch's application name rules: a prefix of at least three
/// ASCII letters and digits starting with a lowercase letter, optionally
/// followed by `-` or `_` and a suffix of file-name characters; no
/// whitespace. With `allow_wildcard`, `*` and names with a trailing `*`
/// are accepted too (in role descriptors and checks).
pub fn validate_application_name(application: &str, allow_wildcard: bool) -> Result<(), String> {
    if application.is_empty() {
        return Err("Application names cannot be blank".into());
    }
    let asterisk = application.find('*');
    if let Some(at) = asterisk {
        if !allow_wildcard {
            return Err(format!(
                "Application names may not contain '*' (found '{application}')"
            ));
        }
        if application == "*" {
            return Ok(());
        }
        if at != application.len() - 1 {
            return Err(format!(
                "Application name patterns only support trailing wildcards (found '{application}')"
            ));
        }
    }
    if application.chars().any(char::is_whitespace) {
        return Err(format!(
            "Application names may not contain whitespace (found '{application}')"
        ));
    }
    let (prefix, suffix) = match application.find(['_', '-']) {
        Some(at) => (&application[..at], Some(&application[at + 1..])),
        None => (application, None),
    };
    let prefix = prefix.strip_suffix('*').unwrap_or(prefix);
    let valid_prefix = prefix
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase())
        && prefix.chars().all(|c| c.is_ascii_alphanumeric());
    if !valid_prefix {
        return Err(format!(
            "An application name prefix must match the pattern ^[a-z][A-Za-z0-9]*$ (found '{prefix}')"
        ));
    }
    if prefix.len() < 3 && asterisk.is_none() {
        return Err(format!(
            "An application name prefix must be at least 3 characters long (found '{prefix}')"
        ));
    }
    if let Some(suffix) = suffix {
        let suffix = if allow_wildcard {
            suffix.strip_suffix('*').unwrap_or(suffix)
        } else {
            suffix
        };
        if suffix.contains(INVALID_SUFFIX_CHARS) {
            return Err(format!(
                "An application name suffix may not contain any of the characters '{}' (found '{suffix}')",
                INVALID_SUFFIX_CHARS.iter().collect::<String>()
            ));
        }
    }
    Ok(())
}

/// Whether `name` is a privilege's name (`^[a-z][a-zA-Z0-9_.-]*$`) rather
/// than an action pattern.
pub fn is_privilege_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Elasticsearch's rule for the name of a privilege being defined.
pub fn validate_privilege_name(name: &str) -> Result<(), String> {
    if is_privilege_name(name) {
        Ok(())
    } else {
        Err(format!(
            "Application privilege names must match the pattern ^[a-z][a-zA-Z0-9_.-]*$ (found '{name}')"
        ))
    }
}

/// Elasticsearch's rule for a privilege name or action named in a role
/// descriptor or a check: printable, without whitespace.
pub fn validate_privilege_or_action(name: &str) -> Result<(), String> {
    if name.chars().all(|c| c.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(format!(
            "Application privilege names and actions must match the pattern ^\\p{{Graph}}*$ (found '{name}')"
        ))
    }
}

impl ApplicationPrivilege {
    /// Every problem of a privilege to be stored, in Elasticsearch's order
    /// and words (an empty list when it is valid).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        problems.extend(validate_application_name(&self.application, false).err());
        problems.extend(validate_privilege_name(&self.name).err());
        if self.actions.is_empty() {
            problems.push("Application privileges must have at least one action".into());
        }
        for action in &self.actions {
            if !action.contains(['/', '*', ':']) {
                problems.push(format!("action [{action}] must contain one of [/ , * , :]"));
            }
            problems.extend(validate_privilege_or_action(action).err());
        }
        if self.metadata.keys().any(|k| k.starts_with('_')) {
            problems.push(format!(
                "metadata keys may not start with [_] (in privilege {} {})",
                self.application, self.name
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_names_follow_elasticsearchs_rules() {
        for ok in ["myapp", "kibana-.kibana", "app_1", "abc", "appName9-x.y"] {
            assert_eq!(validate_application_name(ok, false), Ok(()), "{ok}");
        }
        for (bad, wording) in [
            ("", "cannot be blank"),
            ("_app", "prefix must match the pattern"),
            ("0app", "prefix must match the pattern"),
            ("Myapp", "prefix must match the pattern"),
            ("ab", "at least 3 characters"),
            ("my app", "may not contain whitespace"),
            ("app*", "may not contain '*'"),
            ("app-a/b", "suffix may not contain"),
        ] {
            let e = validate_application_name(bad, false).unwrap_err();
            assert!(e.contains(wording), "{bad}: {e}");
        }
        assert_eq!(validate_application_name("*", true), Ok(()));
        assert_eq!(validate_application_name("kibana-*", true), Ok(()));
        assert_eq!(validate_application_name("ki*", true), Ok(()));
        assert!(validate_application_name("a*b", true).is_err());
    }

    #[test]
    fn privileges_to_store_are_checked() {
        let good = ApplicationPrivilege {
            application: "myapp".into(),
            name: "read".into(),
            actions: vec!["data:read/*".into()],
            metadata: Map::new(),
        };
        assert!(good.problems().is_empty());
        let bad = ApplicationPrivilege {
            application: "_x".into(),
            name: "Read".into(),
            actions: vec!["read".into()],
            metadata: [("_k".to_owned(), Value::Null)].into_iter().collect(),
        };
        let problems = bad.problems();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[2].contains("must contain one of [/ , * , :]"));
    }
}
