//! Application privileges: the named sets of actions applications define
//! (`/_security/privilege`), stored by application and name.

use async_trait::async_trait;
use tessera_domain::privilege::ApplicationPrivilege;

use crate::StoreResult;

/// The storage of application privileges; every [`crate::Store`] is one.
#[async_trait]
pub trait PrivilegeStore: Send + Sync {
    /// Stores every privilege (replacing the one of the same application
    /// and name) in one transaction, and says for each, in order, whether
    /// it was created rather than replaced.
    async fn put_application_privileges(
        &self,
        privileges: &[ApplicationPrivilege],
    ) -> StoreResult<Vec<bool>>;

    /// Every stored privilege, by application, then name.
    async fn list_application_privileges(&self) -> StoreResult<Vec<ApplicationPrivilege>>;

    /// The privileges of one application, by name.
    async fn get_application_privileges(
        &self,
        application: &str,
    ) -> StoreResult<Vec<ApplicationPrivilege>>;

    /// Deletes the named privileges of `application`, and answers the
    /// names that existed, in the order given, each once.
    async fn delete_application_privileges(
        &self,
        application: &str,
        names: &[String],
    ) -> StoreResult<Vec<String>>;
}
