//! Role mappings on PostgreSQL (migration 6): one row per mapping, the
//! document as JSON text.

use super::*;

/// Updates the mapping or, failing that, creates it; one statement each.
/// Returns whether it created the mapping.
async fn upsert(client: &impl GenericClient, name: &str, body: &str) -> Result<bool, Fail> {
    let statements = [
        "UPDATE role_mappings SET mapping = $2 WHERE name = $1",
        "INSERT INTO role_mappings (name, mapping) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    ];
    upsert_document(client, statements, "role mapping", name, body).await
}

impl PostgresStore {
    pub(crate) async fn store_role_mapping(
        &self,
        name: &str,
        mapping: &RoleMapping,
    ) -> StoreResult<bool> {
        let body = &codec::to_json(mapping)?;
        self.db
            .revoking(
                "put_role_mapping",
                attempt!(|c| {
                    let tx = begin(c, IsolationLevel::ReadCommitted).await?;
                    let created = upsert(&tx, name, body).await?;
                    commit_bumped(tx, created).await
                }),
            )
            .await
    }

    pub(crate) async fn read_role_mappings(
        &self,
        names: &[String],
    ) -> StoreResult<Vec<(String, RoleMapping)>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let found = self
            .db
            .run(
                "get_role_mappings",
                Repeat::Safe,
                attempt!(|c| {
                    let stmt = c
                        .prepare_cached(
                            "SELECT name, mapping FROM role_mappings WHERE name = ANY($1)",
                        )
                        .await?;
                    named_documents(&c.query(&stmt, &[&names]).await?, codec::from_json)
                }),
            )
            .await?;
        // In the order asked for, each once, like the other backends.
        let mut out: Vec<(String, RoleMapping)> = Vec::new();
        for n in names {
            if out.iter().any(|(name, _)| name == n) {
                continue;
            }
            if let Some(hit) = found.iter().find(|(name, _)| name == n) {
                out.push(hit.clone());
            }
        }
        Ok(out)
    }

    pub(crate) async fn all_role_mappings(&self) -> StoreResult<Vec<(String, RoleMapping)>> {
        let mut all = self
            .db
            .run(
                "list_role_mappings",
                Repeat::Safe,
                attempt!(|c| {
                    let stmt = c
                        .prepare_cached("SELECT name, mapping FROM role_mappings")
                        .await?;
                    named_documents(&c.query(&stmt, &[]).await?, codec::from_json)
                }),
            )
            .await?;
        // Sorted here rather than by the database's collation, so both
        // backends order names alike.
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    pub(crate) async fn remove_role_mapping(&self, name: &str) -> StoreResult<bool> {
        let sql = "DELETE FROM role_mappings WHERE name = $1";
        Ok(self
            .revoking_execute("delete_role_mapping", sql, &[&name])
            .await?
            > 0)
    }
}
