//! Evaluation of privileges against role descriptors: what
//! `_has_privileges` answers and `_privileges` lists.
//!
//! A role descriptor's `indices` and `applications` are kept verbatim (as
//! JSON) for `GET /_security/role`; here they are read into
//! [`IndicesPrivileges`] and [`ApplicationResourcePrivileges`], and the
//! union of a caller's roles becomes one [`Permissions`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::application::{is_privilege_name, ApplicationPrivilege};
use super::implied::{cluster_implies, index_implies, is_action};
use super::patterns::Pattern;
use super::RoleDescriptor;

/// One entry of a descriptor's `indices`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndicesPrivileges {
    pub names: Vec<String>,
    pub privileges: Vec<String>,
    pub allow_restricted_indices: bool,
}

impl IndicesPrivileges {
    /// Reads an entry as stored (`names` a string or a list); `None` for an
    /// entry that does not have Elasticsearch's shape.
    pub fn from_value(v: &Value) -> Option<Self> {
        let names = match v.get("names")? {
            Value::String(s) => vec![s.clone()],
            other => strings(other)?,
        };
        Some(Self {
            names,
            privileges: strings(v.get("privileges")?)?,
            allow_restricted_indices: v
                .get("allow_restricted_indices")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// One entry of a descriptor's `applications`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplicationResourcePrivileges {
    pub application: String,
    pub privileges: Vec<String>,
    pub resources: Vec<String>,
}

impl ApplicationResourcePrivileges {
    pub fn from_value(v: &Value) -> Option<Self> {
        Some(Self {
            application: v.get("application")?.as_str()?.to_owned(),
            privileges: strings(v.get("privileges")?)?,
            resources: strings(v.get("resources")?)?,
        })
    }
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_owned))
        .collect()
}

impl RoleDescriptor {
    /// The `indices` entries that have Elasticsearch's shape.
    pub fn index_entries(&self) -> Vec<IndicesPrivileges> {
        self.indices
            .iter()
            .filter_map(IndicesPrivileges::from_value)
            .collect()
    }

    /// What Elasticsearch refuses in a role's `applications`: names that
    /// are not application names or patterns, privileges and actions with
    /// whitespace; an entry without Elasticsearch's shape.
    pub fn application_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for entry in &self.applications {
            let Some(e) = ApplicationResourcePrivileges::from_value(entry) else {
                problems.push(format!(
                    "an application privilege entry must have [application], [privileges] and [resources]: {entry}"
                ));
                continue;
            };
            problems
                .extend(super::application::validate_application_name(&e.application, true).err());
            problems.extend(
                e.privileges
                    .iter()
                    .filter_map(|p| super::application::validate_privilege_or_action(p).err()),
            );
        }
        problems
    }

    /// The `applications` entries that have Elasticsearch's shape.
    pub fn application_entries(&self) -> Vec<ApplicationResourcePrivileges> {
        self.applications
            .iter()
            .filter_map(ApplicationResourcePrivileges::from_value)
            .collect()
    }
}

/// Restricted indices (the security store's and async search's): a
/// pattern reaches them only with `allow_restricted_indices`.
pub fn is_restricted_index(name: &str) -> bool {
    name.starts_with(".security") || name.starts_with(".async-search")
}

struct IndexGrant {
    names: Vec<Pattern>,
    privileges: Vec<String>,
    allow_restricted: bool,
}

struct ApplicationGrant {
    application: Pattern,
    privileges: Vec<String>,
    resources: Vec<Pattern>,
}

/// The union of what a set of role descriptors grants.
pub struct Permissions {
    cluster: Vec<String>,
    /// The applications whose privileges may be managed
    /// (`global.application.manage.applications`).
    managed_applications: Vec<Pattern>,
    indices: Vec<IndexGrant>,
    applications: Vec<ApplicationGrant>,
}

impl Permissions {
    pub fn of<'a>(descriptors: impl IntoIterator<Item = &'a RoleDescriptor>) -> Self {
        let mut p = Permissions {
            cluster: Vec::new(),
            managed_applications: Vec::new(),
            indices: Vec::new(),
            applications: Vec::new(),
        };
        for d in descriptors {
            p.cluster.extend(d.cluster.iter().cloned());
            let managed = d
                .global
                .as_ref()
                .and_then(|g| g.pointer("/application/manage/applications"))
                .and_then(strings)
                .unwrap_or_default();
            p.managed_applications
                .extend(managed.iter().map(|a| Pattern::wildcard(a)));
            p.indices
                .extend(d.index_entries().into_iter().map(|e| IndexGrant {
                    names: e.names.iter().map(|n| Pattern::index(n)).collect(),
                    privileges: e.privileges,
                    allow_restricted: e.allow_restricted_indices,
                }));
            p.applications.extend(
                d.application_entries()
                    .into_iter()
                    .map(|e| ApplicationGrant {
                        application: Pattern::wildcard(&e.application),
                        privileges: e.privileges,
                        resources: e.resources.iter().map(|r| Pattern::wildcard(r)).collect(),
                    }),
            );
        }
        p
    }

    /// Whether a cluster privilege (a name or an action) is held.
    pub fn cluster(&self, requested: &str) -> bool {
        self.cluster.iter().any(|h| cluster_implies(h, requested))
    }

    /// Whether the privileges of `application` may be managed through
    /// the global `application.manage` privilege.
    pub fn manages_application(&self, application: &str) -> bool {
        self.managed_applications
            .iter()
            .any(|p| p.covers(application))
    }

    /// Whether an index privilege is held on every index `index` names
    /// (a name or a wildcard). Restricted indices need
    /// `allow_restricted_indices`; a wildcard checked without it leaves
    /// them out.
    pub fn index(&self, index: &str, privilege: &str, allow_restricted: bool) -> bool {
        // A wildcard checked with `allow_restricted_indices` stands for the
        // restricted indices it can match too.
        let restricted = is_restricted_index(index)
            || (allow_restricted
                && super::patterns::has_wildcard(index)
                && index.starts_with(['.', '*', '?']));
        self.indices.iter().any(|g| {
            (g.allow_restricted || !restricted)
                && g.names.iter().any(|n| n.covers(index))
                && g.privileges.iter().any(|h| index_implies(h, privilege))
        })
    }

    /// Whether an application privilege (a name or an action) is held on
    /// `resource` of `application`. `defined` are the stored privileges of
    /// the application: a name stands for its actions. A name that is not
    /// defined is held only by an entry that names it or grants `*`.
    pub fn application(
        &self,
        application: &str,
        privilege: &str,
        resource: &str,
        defined: &[ApplicationPrivilege],
    ) -> bool {
        let actions_of = |name: &str| -> Option<&[String]> {
            defined
                .iter()
                .find(|d| d.application == application && d.name == name)
                .map(|d| d.actions.as_slice())
        };
        self.applications.iter().any(|g| {
            if !g.application.covers(application) || !g.resources.iter().any(|r| r.covers(resource))
            {
                return false;
            }
            if g.privileges.iter().any(|p| p == privilege) {
                return true;
            }
            // What the entry grants, as action patterns.
            let patterns: Vec<Pattern> = g
                .privileges
                .iter()
                .flat_map(|p| {
                    if is_privilege_name(p) {
                        actions_of(p).unwrap_or_default().to_vec()
                    } else {
                        vec![p.clone()]
                    }
                })
                .map(|a| Pattern::wildcard(&a))
                .collect();
            let covered = |action: &str| patterns.iter().any(|p| p.covers(action));
            if is_privilege_name(privilege) {
                match actions_of(privilege) {
                    Some(actions) if !actions.is_empty() => actions.iter().all(|a| covered(a)),
                    _ => covered("*"),
                }
            } else {
                covered(privilege)
            }
        })
    }
}

/// A `_has_privileges` request body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivilegesCheck {
    #[serde(default)]
    pub cluster: Vec<String>,
    #[serde(default)]
    pub index: Vec<IndexCheck>,
    #[serde(default)]
    pub application: Vec<ApplicationCheck>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexCheck {
    pub names: OneOrMany,
    pub privileges: Vec<String>,
    #[serde(default)]
    pub allow_restricted_indices: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationCheck {
    pub application: String,
    pub privileges: Vec<String>,
    pub resources: Vec<String>,
}

/// `"names": "a"` or `"names": ["a", "b"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn as_slice(&self) -> &[String] {
        match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
}

/// What `_has_privileges` answers (without the username).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub has_all_requested: bool,
    pub cluster: Map<String, Value>,
    pub index: Map<String, Value>,
    pub application: Map<String, Value>,
}

impl PrivilegesCheck {
    /// The request's validation failure, in Elasticsearch's words (a
    /// request validation failure, where [`Self::problem`]'s are illegal
    /// arguments).
    pub fn invalid(&self) -> Option<String> {
        (self.cluster.is_empty() && self.index.is_empty() && self.application.is_empty())
            .then(|| "must specify at least one privilege".to_owned())
    }

    /// The first illegal argument of the request, in Elasticsearch's words.
    pub fn problem(&self) -> Option<String> {
        if let Some(p) = self
            .cluster
            .iter()
            .find(|p| !is_action(p) && !super::KNOWN_CLUSTER_PRIVILEGES.contains(&p.as_str()))
        {
            return Some(format!(
                "unknown cluster privilege [{p}]. a privilege must be either one of the predefined cluster privilege names [{}] or a pattern over one of the available cluster actions",
                super::KNOWN_CLUSTER_PRIVILEGES.join(",")
            ));
        }
        for i in &self.index {
            if i.names.as_slice().is_empty() {
                return Some("indices must not be empty".into());
            }
            if i.privileges.is_empty() {
                return Some("privileges must not be empty".into());
            }
            if let Some(p) = i
                .privileges
                .iter()
                .find(|p| !is_action(p) && !super::INDEX_PRIVILEGES.contains(&p.as_str()))
            {
                return Some(format!(
                    "unknown index privilege [{p}]. a privilege must be either one of the predefined fixed indices privileges [{}] or a pattern over one of the available index actions",
                    super::INDEX_PRIVILEGES.join(",")
                ));
            }
        }
        for a in &self.application {
            if let Err(e) = super::application::validate_application_name(&a.application, false) {
                return Some(e);
            }
            if a.privileges.is_empty() {
                return Some("privileges must not be empty".into());
            }
            if a.resources.is_empty() {
                return Some("resources must not be empty".into());
            }
            if let Some(e) = a
                .privileges
                .iter()
                .find_map(|p| super::application::validate_privilege_or_action(p).err())
            {
                return Some(e);
            }
        }
        None
    }

    /// Evaluates the request. Each privilege must be held in every layer
    /// (an API key's own descriptors, then its owner's roles).
    pub fn evaluate(
        &self,
        layers: &[Permissions],
        defined: &[ApplicationPrivilege],
    ) -> CheckResult {
        let mut all = true;
        let mut held = |f: &dyn Fn(&Permissions) -> bool| {
            let yes = layers.iter().all(f);
            all &= yes;
            Value::Bool(yes)
        };
        let mut cluster = Map::new();
        for p in &self.cluster {
            cluster.insert(p.clone(), held(&|l| l.cluster(p)));
        }
        let mut index = Map::new();
        for check in &self.index {
            for name in check.names.as_slice() {
                let entry = index
                    .entry(name.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                for p in &check.privileges {
                    let yes = held(&|l| l.index(name, p, check.allow_restricted_indices));
                    if let Value::Object(m) = entry {
                        m.insert(p.clone(), yes);
                    }
                }
            }
        }
        let mut application = Map::new();
        for check in &self.application {
            let app = application
                .entry(check.application.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            for resource in &check.resources {
                let mut answers = Map::new();
                for p in &check.privileges {
                    let yes = held(&|l| l.application(&check.application, p, resource, defined));
                    answers.insert(p.clone(), yes);
                }
                if let Value::Object(m) = app {
                    match m.get_mut(resource) {
                        Some(Value::Object(existing)) => existing.extend(answers),
                        _ => {
                            m.insert(resource.clone(), Value::Object(answers));
                        }
                    }
                }
            }
        }
        CheckResult {
            has_all_requested: all,
            cluster,
            index,
            application,
        }
    }
}

/// What `GET /_security/user/_privileges` lists: the union of the
/// descriptors' privileges, each entry once.
pub fn user_privileges<'a>(descriptors: impl IntoIterator<Item = &'a RoleDescriptor>) -> Value {
    let (mut cluster, mut run_as) = (Vec::<String>::new(), Vec::<String>::new());
    let mut indices: Vec<IndicesPrivileges> = Vec::new();
    let mut applications: Vec<ApplicationResourcePrivileges> = Vec::new();
    for d in descriptors {
        cluster.extend(d.cluster.iter().cloned());
        run_as.extend(d.run_as.iter().cloned());
        for e in d.index_entries() {
            if !indices.contains(&e) {
                indices.push(e);
            }
        }
        for e in d.application_entries() {
            if !applications.contains(&e) {
                applications.push(e);
            }
        }
    }
    cluster.sort();
    cluster.dedup();
    run_as.sort();
    run_as.dedup();
    serde_json::json!({
        "cluster": cluster,
        "global": [],
        "indices": indices,
        "applications": applications,
        "run_as": run_as,
    })
}
