//! API keys and OAuth clients on PostgreSQL.

use super::*;

pub(crate) fn api_key_record(row: &Row) -> Result<ApiKeyRecord, Fail> {
    Ok(ApiKeyRow {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        secret_hash: row.try_get(2)?,
        username: row.try_get(3)?,
        realm: row.try_get(4)?,
        owner: row.try_get(5)?,
        created_at: row.try_get(6)?,
        expires_at: row.try_get(7)?,
        invalidated_at: row.try_get(8)?,
        role_descriptors: row.try_get(9)?,
        metadata: row.try_get(10)?,
    }
    .into_record()?)
}

/// The keys `filter` matches, oldest first: narrowed by id or owner in
/// SQL, finished by [`ApiKeyFilter::matches`].
pub(crate) async fn select_api_keys(
    c: &impl GenericClient,
    filter: &ApiKeyFilter,
) -> Result<Vec<ApiKeyRecord>, Fail> {
    let rows = match &filter.ids {
        Some(ids) => {
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = ANY($1) ORDER BY created_at, id"
                ))
                .await?;
            c.query(&stmt, &[ids]).await?
        }
        None => {
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE ($1::TEXT IS NULL OR username = $1) ORDER BY created_at, id"
                ))
                .await?;
            c.query(&stmt, &[&filter.username]).await?
        }
    };
    let mut keys = Vec::with_capacity(rows.len());
    for row in &rows {
        let key = api_key_record(row)?;
        if filter.matches(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// Invalidates the matching keys. The flag only goes from unset to set, so
/// a conditional update tells which keys this call invalidated even when
/// invalidations race.
pub(crate) async fn invalidate_api_keys_attempt(
    c: &mut Client,
    filter: &ApiKeyFilter,
    now: Millis,
) -> Result<Bumped<ApiKeyInvalidation>, Fail> {
    // Serializable, so that a token minted from a key while it is being
    // invalidated is either revoked here or refused (see `lineage`).
    let tx = begin(c, IsolationLevel::Serializable).await?;
    let keys = select_api_keys(&tx, filter).await?;
    let ids: Vec<String> = keys.into_iter().map(|k| k.id).collect();
    if ids.is_empty() {
        return commit_bumped(tx, ApiKeyInvalidation::default()).await;
    }
    let stmt = tx
        .prepare_cached(
            "UPDATE api_keys SET invalidated_at = $2 WHERE id = ANY($1) AND invalidated_at IS NULL RETURNING id",
        )
        .await?;
    let changed: Vec<String> = tx
        .query(&stmt, &[&ids, &now])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    // Every token the keys minted or stand for dies with them (again, for
    // a key invalidated before: idempotent).
    lineage::revoke_api_keys(&tx, &ids).await?;
    let (invalidated, previously_invalidated) =
        ids.into_iter().partition(|id| changed.contains(id));
    let outcome = ApiKeyInvalidation {
        invalidated,
        previously_invalidated,
    };
    commit_bumped(tx, outcome).await
}

pub(crate) fn oauth_client_record(row: &Row) -> Result<OAuthClientRecord, Fail> {
    Ok(OAuthClientRow {
        client_id: row.try_get(0)?,
        secret_hash: row.try_get(1)?,
        client_name: row.try_get(2)?,
        grant_types: row.try_get(3)?,
        scope: row.try_get(4)?,
        token_endpoint_auth_method: row.try_get(5)?,
        created_at: row.try_get(6)?,
    }
    .into_record()?)
}

/// Updates an existing client's metadata (never its secret hash or
/// creation time) or, failing that, creates it; one statement each, as for
/// users, so the SQL stays portable. Returns whether it created the client.
pub(crate) async fn upsert_oauth_client(
    c: &impl GenericClient,
    r: &OAuthClientRow,
) -> Result<bool, Fail> {
    let update = c
        .prepare_cached(
            "UPDATE oauth_clients SET client_name = $2, grant_types = $3, scope = $4,
               token_endpoint_auth_method = $5
             WHERE client_id = $1",
        )
        .await?;
    let insert = c
        .prepare_cached(&format!(
            "INSERT INTO oauth_clients ({OAUTH_CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (client_id) DO NOTHING"
        ))
        .await?;
    for _ in 0..UPSERT_ROUNDS {
        let metadata: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
            &r.client_id,
            &r.client_name,
            &r.grant_types,
            &r.scope,
            &r.token_endpoint_auth_method,
        ];
        if c.execute(&update, &metadata).await? > 0 {
            return Ok(false);
        }
        let row: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
            &r.client_id,
            &r.secret_hash,
            &r.client_name,
            &r.grant_types,
            &r.scope,
            &r.token_endpoint_auth_method,
            &r.created_at,
        ];
        if c.execute(&insert, &row).await? > 0 {
            return Ok(true);
        }
        // Created by someone else between the two statements: update it.
    }
    Err(StoreError::Internal(format!(
        "client {} kept changing during an update",
        r.client_id
    ))
    .into())
}

/// One attempt at deleting a client and invalidating its pairs,
/// serializable like an invalidation by user, so that a refresh racing it
/// either is seen (its successor invalidated) or finds its token dead.
pub(crate) async fn delete_oauth_client_attempt(
    client: &mut Client,
    client_id: &str,
    client_column: &str,
) -> Result<Bumped<bool>, Fail> {
    let tx = begin(client, IsolationLevel::Serializable).await?;
    let stmt = tx
        .prepare_cached("DELETE FROM oauth_clients WHERE client_id = $1")
        .await?;
    if tx.execute(&stmt, &[&client_id]).await? == 0 {
        return commit_bumped(tx, false).await;
    }
    lineage::revoke_client(&tx, client_column).await?;
    commit_bumped(tx, true).await
}
