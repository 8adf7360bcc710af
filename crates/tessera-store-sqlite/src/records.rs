//! Rows of users, API keys and OAuth clients, user changes, and the purge.

use super::*;
use tessera_domain::authn::NATIVE_REALM;

pub(crate) fn internal(e: rusqlite::Error) -> StoreError {
    StoreError::Internal(e.to_string())
}

pub(crate) fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

pub(crate) fn oauth_client_row(row: &Row<'_>) -> rusqlite::Result<OAuthClientRow> {
    Ok(OAuthClientRow {
        client_id: row.get(0)?,
        secret_hash: row.get(1)?,
        client_name: row.get(2)?,
        grant_types: row.get(3)?,
        scope: row.get(4)?,
        token_endpoint_auth_method: row.get(5)?,
        created_at: row.get(6)?,
    })
}

pub(crate) fn api_key_row(row: &Row<'_>) -> rusqlite::Result<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: row.get(0)?,
        name: row.get(1)?,
        secret_hash: row.get(2)?,
        username: row.get(3)?,
        realm: row.get(4)?,
        owner: row.get(5)?,
        created_at: row.get(6)?,
        expires_at: row.get(7)?,
        invalidated_at: row.get(8)?,
        role_descriptors: row.get(9)?,
        metadata: row.get(10)?,
    })
}

/// The keys `filter` matches, oldest first: narrowed by id or owner in
/// SQL, finished by [`ApiKeyFilter::matches`].
pub(crate) fn select_api_keys(
    conn: &Connection,
    filter: &ApiKeyFilter,
) -> StoreResult<Vec<ApiKeyRecord>> {
    let sql = format!(
        "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE (?1 IS NULL OR username = ?1) ORDER BY created_at, id"
    );
    let rows = match &filter.ids {
        Some(ids) => {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = ?1"
                ))
                .map_err(internal)?;
            let mut rows = Vec::new();
            for id in ids {
                if let Some(row) = stmt
                    .query_row([id], api_key_row)
                    .optional()
                    .map_err(internal)?
                {
                    rows.push(row);
                }
            }
            rows.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            rows.dedup_by(|a, b| a.id == b.id);
            rows
        }
        None => conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| {
                stmt.query_map([&filter.username], api_key_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(internal)?,
    };
    let mut keys = Vec::with_capacity(rows.len());
    for row in rows {
        let key = row.into_record()?;
        if filter.matches(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

pub(crate) fn user_row(row: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        username: row.get(0)?,
        password_hash: row.get(1)?,
        roles: row.get(2)?,
        full_name: row.get(3)?,
        email: row.get(4)?,
        metadata: row.get(5)?,
        enabled: row.get(6)?,
    })
}

/// What a user change may make stale: the users, and the tokens when it
/// revokes them.
pub(crate) fn user_change(revoke_tokens: bool) -> Affects {
    if revoke_tokens {
        Affects::USERS.union(Affects::TOKENS)
    } else {
        Affects::USERS
    }
}

/// What deleting a user may make stale: a user change's, and the API keys
/// when it revokes.
pub(crate) fn user_deletion(revoke_tokens: bool) -> Affects {
    if revoke_tokens {
        user_change(true).union(Affects::API_KEYS)
    } else {
        user_change(false)
    }
}

/// A deleted user's revocation: its tokens as for any user change, and
/// its API keys invalidated at `now`, so that a user created later under
/// the same name does not get them back.
pub(crate) fn revoke_deleted_user_if(
    conn: &Connection,
    revoke: bool,
    username: &str,
    now: Millis,
) -> StoreResult<()> {
    if revoke {
        lineage::revoke_user(conn, username)?;
        conn.prepare_cached(
            "UPDATE api_keys SET invalidated_at = ?3
              WHERE username = ?1 AND realm = ?2 AND invalidated_at IS NULL",
        )
        .and_then(|mut s| s.execute(params![username, NATIVE_REALM.name.as_ref(), now]))
        .map_err(internal)?;
    }
    Ok(())
}

pub(crate) fn revoke_user_if(conn: &Connection, revoke: bool, username: &str) -> StoreResult<()> {
    if revoke {
        lineage::revoke_user(conn, username)?;
    }
    Ok(())
}

pub(crate) fn upsert_user(c: &Connection, user: &UserUpsert) -> StoreResult<bool> {
    let roles = codec::to_json(&user.roles)?;
    let metadata = codec::to_json(&user.metadata)?;
    let existing: Option<String> = c
        .query_row(
            "SELECT password_hash FROM users WHERE username = ?1",
            [&user.username],
            |r| r.get(0),
        )
        .optional()
        .map_err(internal)?;
    let password_hash = match (&user.password_hash, &existing) {
        (Some(h), _) => h.clone(),
        (None, Some(h)) => h.clone(),
        (None, None) => return Err(StoreError::PasswordRequired),
    };
    c.execute(
        "INSERT INTO users (username, password_hash, roles, full_name, email, metadata, enabled)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, roles = excluded.roles,
           full_name = excluded.full_name, email = excluded.email, metadata = excluded.metadata, enabled = excluded.enabled",
        params![user.username, password_hash, roles, user.full_name, user.email, metadata, user.enabled],
    )
    .map_err(internal)?;
    Ok(existing.is_none())
}

/// API keys that stopped working before `?1`, at most `?2` of them, found
/// through `api_keys_by_retention`.
pub(crate) const PURGE_API_KEYS: &str = concat!(
    "DELETE FROM api_keys WHERE id IN (SELECT id FROM api_keys WHERE ",
    crate::schema::key_stopped!(),
    " <= ?1 LIMIT ?2)"
);

/// Deletes at most `?2` one-time proofs kept until before `?1`, found
/// through `one_time_proofs_by_age` and deleted by their key.
pub(crate) const PURGE_PROOFS: &str = "DELETE FROM one_time_proofs WHERE (realm, id) IN
    (SELECT realm, id FROM one_time_proofs WHERE keep_until < ?1 ORDER BY keep_until LIMIT ?2)";

/// One batch of the purge: expired pairs, API keys past their retention
/// and one-time proofs past their keep time, at most `limit` of each.
pub(crate) fn purge_expired(c: &Connection, now: Millis, limit: u32) -> StoreResult<u64> {
    let tokens = pairs::purge(c, now, limit)?;
    let keys = c
        .execute(
            PURGE_API_KEYS,
            params![
                now.saturating_sub(tessera_store::API_KEY_RETENTION_MS),
                limit
            ],
        )
        .map_err(internal)?;
    let proofs = c
        .execute(PURGE_PROOFS, params![now, limit])
        .map_err(internal)?;
    Ok((tokens + keys + proofs) as u64)
}
