//! Application privileges on PostgreSQL (migration 8): one row per
//! application and name, the privilege as JSON text.

use tessera_domain::privilege::ApplicationPrivilege;
use tessera_store::PrivilegeStore;

use super::*;

fn decode(rows: &[Row]) -> Result<Vec<ApplicationPrivilege>, Fail> {
    rows.iter()
        .map(|row| {
            let body: String = row.try_get(0)?;
            Ok(codec::from_json(&body)?)
        })
        .collect()
}

#[async_trait]
impl PrivilegeStore for PostgresStore {
    async fn put_application_privileges(
        &self,
        privileges: &[ApplicationPrivilege],
    ) -> StoreResult<Vec<bool>> {
        let rows = &privileges
            .iter()
            .map(|p| Ok((p.application.as_str(), p.name.as_str(), codec::to_json(p)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        self.db
            .revoking(
                "put_application_privileges",
                attempt!(|c| {
                    let tx = begin(c, IsolationLevel::ReadCommitted).await?;
                    let update = tx
                        .prepare_cached(
                            "UPDATE application_privileges SET privilege = $3
                             WHERE application = $1 AND name = $2",
                        )
                        .await?;
                    let insert = tx
                        .prepare_cached(
                            "INSERT INTO application_privileges (application, name, privilege)
                             VALUES ($1, $2, $3) ON CONFLICT (application, name) DO NOTHING",
                        )
                        .await?;
                    let mut created = Vec::with_capacity(rows.len());
                    for (application, name, body) in rows {
                        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                            [application, name, body];
                        // Update, or else create; a row created meanwhile by
                        // another transaction is then updated.
                        let mut made = None;
                        for _ in 0..3 {
                            if tx.execute(&update, &params).await? > 0 {
                                made = Some(false);
                                break;
                            }
                            if tx.execute(&insert, &params).await? > 0 {
                                made = Some(true);
                                break;
                            }
                        }
                        created.push(made.ok_or_else(|| {
                            StoreError::Internal(format!(
                                "application privilege {application} {name} kept changing during a put"
                            ))
                        })?);
                    }
                    commit_bumped(tx, created).await
                }),
            )
            .await
    }

    async fn list_application_privileges(&self) -> StoreResult<Vec<ApplicationPrivilege>> {
        let mut all = self
            .db
            .run(
                "list_application_privileges",
                Repeat::Safe,
                attempt!(|c| {
                    let stmt = c
                        .prepare_cached("SELECT privilege FROM application_privileges")
                        .await?;
                    decode(&c.query(&stmt, &[]).await?)
                }),
            )
            .await?;
        // Sorted here rather than by the database's collation, so both
        // backends order names alike.
        all.sort_by(|a, b| (&a.application, &a.name).cmp(&(&b.application, &b.name)));
        Ok(all)
    }

    async fn get_application_privileges(
        &self,
        application: &str,
    ) -> StoreResult<Vec<ApplicationPrivilege>> {
        let mut found = self
            .db
            .run(
                "get_application_privileges",
                Repeat::Safe,
                attempt!(|c| {
                    let stmt = c
                        .prepare_cached(
                            "SELECT privilege FROM application_privileges WHERE application = $1",
                        )
                        .await?;
                    decode(&c.query(&stmt, &[&application]).await?)
                }),
            )
            .await?;
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }

    async fn delete_application_privileges(
        &self,
        application: &str,
        names: &[String],
    ) -> StoreResult<Vec<String>> {
        let deleted: Vec<String> = self
            .db
            .revoking(
                "delete_application_privileges",
                attempt!(|c| {
                    let tx = begin(c, IsolationLevel::ReadCommitted).await?;
                    let stmt = tx
                        .prepare_cached(
                            "DELETE FROM application_privileges
                             WHERE application = $1 AND name = ANY($2) RETURNING name",
                        )
                        .await?;
                    let deleted = tx
                        .query(&stmt, &[&application, &names])
                        .await?
                        .iter()
                        .map(|r| r.try_get(0).map_err(Fail::from))
                        .collect::<Result<Vec<String>, Fail>>()?;
                    commit_bumped(tx, deleted).await
                }),
            )
            .await?;
        // In the order asked for, each once, like the other backends.
        let mut out: Vec<String> = Vec::new();
        for n in names {
            if deleted.contains(n) && !out.contains(n) {
                out.push(n.clone());
            }
        }
        Ok(out)
    }
}
