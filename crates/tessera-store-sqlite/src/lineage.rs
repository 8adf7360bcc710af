//! Derived credentials: which families came from which source, the check
//! a new token's sources must pass when it is stored, and the revocation
//! of a family together with every family derived from it.
//!
//! A family minted by a token-authenticated caller records its parent's
//! family key in `parent_family` (on its first pair only; successors share
//! the family). Revoking a family walks that edge downwards, generation
//! by generation, so a chain of any depth dies in the revoking
//! transaction. API keys and users are found through the `grants` a family
//! refers to (the subject and client columns say which key or user a pair
//! came from), so they need no column of their own.

use rusqlite::{params, Connection, OptionalExtension};
use tessera_domain::authn::{API_KEY_REALM, NATIVE_REALM};
use tessera_domain::Millis;
use tessera_store::{Requirement, StoreResult};

use crate::{internal, pairs};

/// Columns added since the first release (derived credentials on
/// `token_pairs`, token metadata on `grants`, the refresh record's
/// `sealed` on `token_pairs`) and the parent index, for files created
/// before them (`ALTER TABLE` has no `IF NOT EXISTS`).
pub fn upgrade(conn: &Connection) -> StoreResult<()> {
    for (table, column, decl) in [
        ("token_pairs", "parent_family", "INTEGER"),
        ("token_pairs", "not_after", "INTEGER"),
        ("grants", "token_metadata", "TEXT"),
        ("token_pairs", "sealed", "BLOB"),
    ] {
        let has: bool = conn
            .query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
                [table, column],
                |r| r.get(0),
            )
            .map_err(internal)?;
        if !has {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))
                .map_err(internal)?;
        }
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS token_pairs_by_parent ON token_pairs (parent_family)
           WHERE parent_family IS NOT NULL",
    )
    .map_err(internal)
}

/// Whether `requirement` holds at `now` (the engine's source checks).
pub(crate) fn holds(
    conn: &Connection,
    requirement: &Requirement,
    now: Millis,
) -> StoreResult<bool> {
    match requirement {
        Requirement::User {
            username,
            password_hash,
        } => {
            let found: Option<(String, bool)> = conn
                .prepare_cached("SELECT password_hash, enabled FROM users WHERE username = ?1")
                .and_then(|mut stmt| {
                    stmt.query_row([username], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(internal)?;
            Ok(found.is_some_and(|(stored, enabled)| {
                enabled && password_hash.as_ref().is_none_or(|h| *h == stored)
            }))
        }
        Requirement::ApiKey { id } => conn
            .prepare_cached(
                "SELECT COUNT(*) > 0 FROM api_keys WHERE id = ?1 AND invalidated_at IS NULL
                   AND (expires_at IS NULL OR expires_at > ?2)",
            )
            .and_then(|mut stmt| stmt.query_row(params![id, now], |r| r.get(0)))
            .map_err(internal),
        Requirement::OAuthClient { client_id } => conn
            .prepare_cached("SELECT COUNT(*) > 0 FROM oauth_clients WHERE client_id = ?1")
            .and_then(|mut stmt| stmt.query_row([client_id], |r| r.get(0)))
            .map_err(internal),
    }
}

/// Invalidates both halves of every pair of the families with the given
/// keys and of every family derived from them, however deep: one update
/// per family (on the family index) and one probe of the parent index for
/// its children, generation by generation, so revoking a family that
/// minted nothing costs what it did before families had children.
pub fn revoke_tree(conn: &Connection, families: &[i64]) -> StoreResult<()> {
    let mut revoke = conn
        .prepare_cached(&format!(
            "UPDATE token_pairs SET {} WHERE IFNULL(family_seq, seq) = ?1",
            pairs::INVALIDATE_SET
        ))
        .map_err(internal)?;
    let mut children = conn
        .prepare_cached("SELECT IFNULL(family_seq, seq) FROM token_pairs WHERE parent_family = ?1")
        .map_err(internal)?;
    // Families already queued: a family is a child of one parent, so this
    // only guards against a corrupted file looping, and stays empty (no
    // allocation) when the revoked families minted nothing.
    let mut seen = std::collections::HashSet::new();
    let mut next: Vec<i64> = families.to_vec();
    while !next.is_empty() {
        for family in std::mem::take(&mut next) {
            revoke.execute([family]).map_err(internal)?;
            let found: Vec<i64> = children
                .query_map([family], |r| r.get(0))
                .and_then(Iterator::collect)
                .map_err(internal)?;
            next.extend(found.into_iter().filter(|child| seen.insert(*child)));
        }
    }
    Ok(())
}

/// The keys of the families whose grant matches `condition` (an SQL
/// expression over the `grants` row `g`, with parameter `?1`).
fn families_where(conn: &Connection, condition: &str, value: &str) -> StoreResult<Vec<i64>> {
    conn.prepare_cached(&format!(
        "SELECT DISTINCT IFNULL(p.family_seq, p.seq) FROM grants g
           JOIN token_pairs p ON p.grant_id = g.id WHERE {condition}"
    ))
    .and_then(|mut stmt| stmt.query_map([value], |r| r.get(0))?.collect())
    .map_err(internal)
}

/// Revokes every family minted by, or standing for, the API key `id`, and
/// everything derived from them.
pub fn revoke_api_key(conn: &Connection, id: &str) -> StoreResult<()> {
    let families = families_where(
        conn,
        "json_extract(g.subject, '$.api_key.id') = ?1
            OR json_extract(g.client, '$.api_key_id') = ?1",
        id,
    )?;
    revoke_tree(conn, &families)
}

/// Revokes every family the native user `username` stands for or minted
/// (with Basic credentials or through one of its API keys), and everything
/// derived from them.
pub fn revoke_user(conn: &Connection, username: &str) -> StoreResult<()> {
    let realms = format!("('{}', '{}')", NATIVE_REALM.name, API_KEY_REALM.name);
    let families = families_where(
        conn,
        &format!(
            "(g.username = ?1 AND g.realm IN {realms})
               OR (json_extract(g.client, '$.username') = ?1
                   AND json_extract(g.client, '$.realm') IN {realms})"
        ),
        username,
    )?;
    revoke_tree(conn, &families)
}

/// Revokes every family issued to the client stored as `client_column`,
/// and everything derived from them.
pub fn revoke_client(conn: &Connection, client_column: &str) -> StoreResult<()> {
    let families = families_where(conn, "g.client = ?1", client_column)?;
    revoke_tree(conn, &families)
}

/// Revokes everything derived from the families with the given keys (not
/// the families themselves).
pub fn revoke_children(conn: &Connection, families: &[i64]) -> StoreResult<()> {
    let mut stmt = conn
        .prepare_cached("SELECT IFNULL(family_seq, seq) FROM token_pairs WHERE parent_family = ?1")
        .map_err(internal)?;
    let mut children = Vec::new();
    for family in families {
        let found: Vec<i64> = stmt
            .query_map([family], |r| r.get(0))
            .and_then(Iterator::collect)
            .map_err(internal)?;
        children.extend(found);
    }
    revoke_tree(conn, &children)
}
