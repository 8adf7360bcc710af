//! Application privileges: one row per application and name, the
//! privilege as JSON text. The read cache does not hold them (they are
//! read by the privilege API and privilege checks, not on every request),
//! so their writes move no cache counter.

use tessera_domain::privilege::ApplicationPrivilege;
use tessera_store::PrivilegeStore;

use super::*;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS application_privileges (
    application TEXT NOT NULL,
    name        TEXT NOT NULL,
    privilege   TEXT NOT NULL,
    PRIMARY KEY (application, name)
);
";

fn decode(rows: Vec<String>) -> StoreResult<Vec<ApplicationPrivilege>> {
    rows.iter().map(|body| codec::from_json(body)).collect()
}

#[async_trait]
impl PrivilegeStore for SqliteStore {
    async fn put_application_privileges(
        &self,
        privileges: &[ApplicationPrivilege],
    ) -> StoreResult<Vec<bool>> {
        let rows = privileges
            .iter()
            .map(|p| Ok((p.application.clone(), p.name.clone(), codec::to_json(p)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        self.write_uncached(move |c| {
            let mut created = Vec::with_capacity(rows.len());
            for (application, name, body) in &rows {
                let existed = c
                    .query_row(
                        "SELECT 1 FROM application_privileges WHERE application = ?1 AND name = ?2",
                        [application, name],
                        |_| Ok(()),
                    )
                    .optional()
                    .map_err(internal)?
                    .is_some();
                c.execute(
                    "INSERT INTO application_privileges (application, name, privilege)
                     VALUES (?1, ?2, ?3)
                     ON CONFLICT (application, name) DO UPDATE SET privilege = excluded.privilege",
                    [application, name, body],
                )
                .map_err(internal)?;
                created.push(!existed);
            }
            Ok(created)
        })
        .await
    }

    async fn list_application_privileges(&self) -> StoreResult<Vec<ApplicationPrivilege>> {
        let rows = self
            .read(|c| {
                c.prepare_cached(
                    "SELECT privilege FROM application_privileges ORDER BY application, name",
                )?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
            })
            .await?;
        decode(rows)
    }

    async fn get_application_privileges(
        &self,
        application: &str,
    ) -> StoreResult<Vec<ApplicationPrivilege>> {
        let application = application.to_owned();
        let rows = self
            .read(move |c| {
                c.prepare_cached(
                    "SELECT privilege FROM application_privileges WHERE application = ?1
                     ORDER BY name",
                )?
                .query_map([&application], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
            })
            .await?;
        decode(rows)
    }

    async fn delete_application_privileges(
        &self,
        application: &str,
        names: &[String],
    ) -> StoreResult<Vec<String>> {
        let application = application.to_owned();
        let mut names = names.to_vec();
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
        self.write_uncached(move |c| {
            let mut deleted = Vec::new();
            for name in &names {
                let n = c
                    .execute(
                        "DELETE FROM application_privileges WHERE application = ?1 AND name = ?2",
                        [&application, name],
                    )
                    .map_err(internal)?;
                if n > 0 {
                    deleted.push(name.clone());
                }
            }
            Ok(deleted)
        })
        .await
    }
}
