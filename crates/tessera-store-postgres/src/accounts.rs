//! Users and roles on PostgreSQL.

use super::*;

pub(crate) static USER_BY_NAME: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1"));
pub(crate) static ALL_USERS: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {USER_COLUMNS} FROM users"));

pub(crate) fn user_row(row: &Row) -> Result<UserRow, tokio_postgres::Error> {
    Ok(UserRow {
        username: row.try_get(0)?,
        password_hash: row.try_get(1)?,
        roles: row.try_get(2)?,
        full_name: row.try_get(3)?,
        email: row.try_get(4)?,
        metadata: row.try_get(5)?,
        enabled: row.try_get(6)?,
    })
}

pub(crate) fn user_record(row: &Row) -> Result<UserRecord, Fail> {
    Ok(user_row(row)?.into_record()?)
}

/// Updates an existing user or, failing that, creates it; one statement
/// each, so no transaction is needed. Returns whether it created the user.
pub(crate) async fn upsert_user(
    client: &impl GenericClient,
    user: &UserUpsert,
) -> Result<bool, Fail> {
    let roles = codec::to_json(&user.roles)?;
    let metadata = codec::to_json(&user.metadata)?;
    let update = client
        .prepare_cached(
            "UPDATE users SET password_hash = COALESCE($2, password_hash), roles = $3, full_name = $4,
               email = $5, metadata = $6, enabled = $7
             WHERE username = $1",
        )
        .await?;
    let insert = client
        .prepare_cached(
            "INSERT INTO users (username, password_hash, roles, full_name, email, metadata, enabled)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (username) DO NOTHING",
        )
        .await?;
    for _ in 0..UPSERT_ROUNDS {
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
            &user.username,
            &user.password_hash,
            &roles,
            &user.full_name,
            &user.email,
            &metadata,
            &user.enabled,
        ];
        if client.execute(&update, &params).await? > 0 {
            return Ok(false);
        }
        if user.password_hash.is_none() {
            return Err(StoreError::PasswordRequired.into());
        }
        if client.execute(&insert, &params).await? > 0 {
            return Ok(true);
        }
        // Created by someone else between the two statements: update it.
    }
    Err(StoreError::Internal(format!(
        "user {} kept changing during an update",
        user.username
    ))
    .into())
}

/// One attempt at creating the first user, serializable so that nodes
/// racing to bootstrap create exactly one.
pub(crate) async fn bootstrap_attempt(
    client: &mut Client,
    user: &UserUpsert,
) -> Result<bool, Fail> {
    let tx = begin(client, IsolationLevel::Serializable).await?;
    let any = tx.query_opt("SELECT 1 FROM users LIMIT 1", &[]).await?;
    if any.is_some() {
        tx.commit().await?;
        return Ok(false);
    }
    let Some(password_hash) = &user.password_hash else {
        return Err(StoreError::PasswordRequired.into());
    };
    let inserted = tx
        .execute(
            "INSERT INTO users (username, password_hash, roles, full_name, email, metadata, enabled)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (username) DO NOTHING",
            &[
                &user.username,
                password_hash,
                &codec::to_json(&user.roles)?,
                &user.full_name,
                &user.email,
                &codec::to_json(&user.metadata)?,
                &user.enabled,
            ],
        )
        .await?;
    tx.commit().await?;
    Ok(inserted > 0)
}

pub(crate) async fn upsert_role(
    client: &impl GenericClient,
    name: &str,
    body: &str,
) -> Result<bool, Fail> {
    let statements = [
        "UPDATE roles SET descriptor = $2 WHERE name = $1",
        "INSERT INTO roles (name, descriptor) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    ];
    upsert_document(client, statements, "role", name, body).await
}

/// Updates the document stored under `name` or, failing that, creates it,
/// with `[update, insert]` (`$1` the name, `$2` the document); one
/// statement each. Returns whether it created the document; `what` names
/// it should it keep changing in between.
pub(crate) async fn upsert_document(
    client: &impl GenericClient,
    [update, insert]: [&str; 2],
    what: &str,
    name: &str,
    body: &str,
) -> Result<bool, Fail> {
    let update = client.prepare_cached(update).await?;
    let insert = client.prepare_cached(insert).await?;
    for _ in 0..UPSERT_ROUNDS {
        if client.execute(&update, &[&name, &body]).await? > 0 {
            return Ok(false);
        }
        if client.execute(&insert, &[&name, &body]).await? > 0 {
            return Ok(true);
        }
    }
    Err(StoreError::Internal(format!("{what} {name} kept changing during an update")).into())
}

/// `(name, document)` rows, each document read by `decode`.
pub(crate) fn named_documents<T>(
    rows: &[Row],
    decode: fn(&str) -> StoreResult<T>,
) -> Result<Vec<(String, T)>, Fail> {
    rows.iter()
        .map(|row| {
            let name: String = row.try_get(0)?;
            let body: String = row.try_get(1)?;
            Ok((name, decode(&body)?))
        })
        .collect()
}

/// A user change that revokes the user's tokens is serializable, like
/// every source check (see `lineage`); one that does not needs only to
/// read what committed.
pub(crate) fn user_change_level(revoke: bool) -> IsolationLevel {
    if revoke {
        IsolationLevel::Serializable
    } else {
        IsolationLevel::ReadCommitted
    }
}

impl PostgresStore {
    /// Runs `sql` (`$1` the username, `$2` the new value if any) and, when
    /// `revoke` and the user existed, revokes the user's tokens in the same
    /// serializable transaction, and with `keys_invalidated_at` (a
    /// deletion) invalidates the user's API keys at that time. Returns
    /// whether the user existed.
    pub(crate) async fn change_user(
        &self,
        op: &'static str,
        sql: &'static str,
        username: &str,
        value: Option<&(dyn tokio_postgres::types::ToSql + Sync)>,
        revoke: bool,
        keys_invalidated_at: Option<Millis>,
    ) -> StoreResult<bool> {
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&username];
        params.extend(value);
        let params = &params;
        self.db
            .revoking(
                op,
                attempt!(|c| {
                    let tx = begin(c, user_change_level(revoke)).await?;
                    let stmt = tx.prepare_cached(sql).await?;
                    let existed = tx.execute(&stmt, params).await? > 0;
                    if existed && revoke {
                        lineage::revoke_user(&tx, username).await?;
                    }
                    if let Some(now) = keys_invalidated_at.filter(|_| existed && revoke) {
                        let stmt = tx
                            .prepare_cached(
                                "UPDATE api_keys SET invalidated_at = $3
                                  WHERE username = $1 AND realm = $2 AND invalidated_at IS NULL",
                            )
                            .await?;
                        let native: &str = &tessera_domain::authn::NATIVE_REALM.name;
                        tx.execute(&stmt, &[&username, &native, &now]).await?;
                    }
                    commit_bumped(tx, existed).await
                }),
            )
            .await
    }
}
