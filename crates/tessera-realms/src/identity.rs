//! Who a login proved, as the JWT and OpenID Connect realms read it from
//! their claims: what `_authenticate` shows and the role mappings see.

use serde_json::{Map, Value};
use tessera_domain::role_mapping::UserData;

/// A user named by validated claims, by the realm's `claims.*` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub principal: String,
    pub groups: Vec<String>,
    pub name: Option<String>,
    pub mail: Option<String>,
    pub dn: Option<String>,
    /// The claims the realm keeps as user metadata (`jwt_claim_<name>`,
    /// `oidc(<claim>)`, …).
    pub metadata: Map<String, Value>,
}

impl Identity {
    /// What the role mappings of realm `realm_name` see of this user.
    pub fn user_data(&self, realm_name: &str) -> UserData {
        UserData {
            username: self.principal.clone(),
            dn: self.dn.clone(),
            groups: self.groups.clone(),
            realm_name: realm_name.to_owned(),
            metadata: self.metadata.clone(),
        }
    }
}
