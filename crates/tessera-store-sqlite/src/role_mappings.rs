//! Role mappings: one row per mapping, the document as JSON text. The read
//! cache does not hold them (they are read at logins of external users,
//! not on every request), so their writes move no cache counter.

use super::*;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS role_mappings (
    name    TEXT PRIMARY KEY,
    mapping TEXT NOT NULL
);
";

fn decode(rows: Vec<(String, String)>) -> StoreResult<Vec<(String, RoleMapping)>> {
    rows.into_iter()
        .map(|(name, body)| Ok((name, codec::from_json(&body)?)))
        .collect()
}

impl SqliteStore {
    pub(crate) async fn store_role_mapping(
        &self,
        name: &str,
        mapping: &RoleMapping,
    ) -> StoreResult<bool> {
        let name = name.to_owned();
        let body = codec::to_json(mapping)?;
        self.write_uncached(move |c| {
            let existed = c
                .query_row(
                    "SELECT 1 FROM role_mappings WHERE name = ?1",
                    [&name],
                    |_| Ok(()),
                )
                .optional()
                .map_err(internal)?
                .is_some();
            c.execute(
                "INSERT INTO role_mappings (name, mapping) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET mapping = excluded.mapping",
                [&name, &body],
            )
            .map_err(internal)?;
            Ok(!existed)
        })
        .await
    }

    pub(crate) async fn read_role_mappings(
        &self,
        names: &[String],
    ) -> StoreResult<Vec<(String, RoleMapping)>> {
        let mut names = names.to_vec();
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
        let sql = "SELECT name, mapping FROM role_mappings WHERE name = ?1";
        decode(self.read_named(sql, names).await?)
    }

    pub(crate) async fn all_role_mappings(&self) -> StoreResult<Vec<(String, RoleMapping)>> {
        let rows = self
            .read(|c| {
                c.prepare_cached("SELECT name, mapping FROM role_mappings ORDER BY name")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        decode(rows)
    }

    pub(crate) async fn remove_role_mapping(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_owned();
        self.write_uncached(move |c| {
            c.execute("DELETE FROM role_mappings WHERE name = ?1", [&name])
                .map(|n| n > 0)
                .map_err(internal)
        })
        .await
    }
}
