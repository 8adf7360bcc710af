//! What external realms call to learn a user's roles: the stored role
//! mappings, evaluated by the domain's rules engine.

use tessera_domain::role_mapping::{self, UserData};

use crate::{Store, StoreResult};

/// The roles the stored role mappings give `user` (the union of the roles
/// of every enabled mapping whose rules match it; sorted, each once). A
/// realm calls this after it has authenticated the user and before it
/// mints a token, so a mapping changed since takes effect at the next
/// login, as in Elasticsearch.
pub async fn resolve_roles(store: &dyn Store, user: &UserData) -> StoreResult<Vec<String>> {
    let mappings = store.list_role_mappings().await?;
    Ok(role_mapping::mapped_roles(
        mappings.iter().map(|(_, m)| m),
        user,
    ))
}
