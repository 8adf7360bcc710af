//! The in-place upgrades of the token layout, in the opening writer's
//! transaction: from the first release's single `tokens` table, and from
//! version 1's `refreshes` table into the successors' rows.

use rusqlite::{params, Connection};
use tessera_store::codec::TokenRow;
use tessera_store::{StoreError, StoreResult};

use crate::internal;
use crate::pairs::{compact_id, expand_id, grant_id, insert_row, New};

fn table_exists(conn: &Connection, name: &str) -> StoreResult<bool> {
    conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get(0),
    )
    .map_err(internal)
}

/// Keeps the record of an earlier refresh of the pair `seq` (from a file
/// of an earlier version) in its successor's row. If the successor is not
/// stored, the pair's refresh token, used already, is invalidated: it can
/// never rotate again. Whether the successor held it.
fn attach_refresh(
    conn: &Connection,
    seq: i64,
    successor_id: &str,
    sealed: &[u8],
) -> StoreResult<bool> {
    let attached = conn
        .prepare_cached(
            "UPDATE token_pairs SET sealed = ?3, purge_after = MAX(purge_after,
                IFNULL((SELECT refresh_expires_at FROM token_pairs WHERE seq = ?1), 0))
              WHERE id = ?2 AND seq = (SELECT x.seq FROM token_pairs p, token_pairs x
                 WHERE p.seq = ?1
                   AND IFNULL(x.family_seq, x.seq) = IFNULL(p.family_seq, p.seq)
                   AND x.seq > p.seq AND x.generation = p.generation + 1
                 ORDER BY x.seq LIMIT 1)",
        )
        .and_then(|mut stmt| stmt.execute(params![seq, compact_id(successor_id), sealed]))
        .map_err(internal)?
        == 1;
    if !attached {
        conn.prepare_cached(
            "UPDATE token_pairs SET refresh_invalidated = 1
              WHERE seq = ?1 AND refresh_hash IS NOT NULL",
        )
        .and_then(|mut stmt| stmt.execute([seq]))
        .map_err(internal)?;
    }
    Ok(attached)
}

/// Moves the refresh records of a file of schema version 1 (a `refreshes`
/// table keyed by the refreshed pair's `seq`) into the successors' rows,
/// in the caller's transaction. Returns how many it moved, and how many
/// found no successor (those pairs' used refresh tokens are invalidated).
pub fn move_refresh_records(conn: &Connection) -> StoreResult<(u64, u64)> {
    // The `sealed` column is added with the other later columns
    // (`lineage::upgrade`), before this runs.
    if !table_exists(conn, "refreshes")? {
        return Ok((0, 0));
    }
    // One record at a time: the table may hold millions. Updating
    // `token_pairs` while reading `refreshes` is safe in SQLite.
    let mut stmt = conn
        .prepare("SELECT seq, successor_id, sealed_successor FROM refreshes ORDER BY seq")
        .map_err(internal)?;
    let mut rows = stmt.query([]).map_err(internal)?;
    let (mut moved, mut orphaned) = (0, 0);
    while let Some(row) = rows.next().map_err(internal)? {
        let seq: i64 = row.get(0).map_err(internal)?;
        let successor_id = expand_id(row.get_ref(1).map_err(internal)?).map_err(internal)?;
        let sealed: Vec<u8> = row.get(2).map_err(internal)?;
        if attach_refresh(conn, seq, &successor_id, &sealed)? {
            moved += 1;
        } else {
            orphaned += 1;
        }
    }
    drop(rows);
    drop(stmt);
    conn.execute_batch("DROP TABLE refreshes")
        .map_err(internal)?;
    Ok((moved, orphaned))
}

/// Moves the pairs of a database from before this layout (one `tokens`
/// table with a row per pair, every column inline) into it, in the
/// caller's transaction, and drops the old table.
pub fn migrate_from_single_table(conn: &Connection) -> StoreResult<u64> {
    if !table_exists(conn, "tokens")? {
        return Ok(0);
    }
    let has_scope: bool = conn
        .query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('tokens') WHERE name = 'scope'",
            [],
            |r| r.get(0),
        )
        .map_err(internal)?;
    let scope = if has_scope { "scope" } else { "NULL" };
    let mut stmt = conn
        .prepare(&format!(
            "SELECT id, access_hash, refresh_hash, family_id, generation, username, realm,
                    subject, client, created_at, access_expires_at, refresh_expires_at,
                    access_invalidated, refresh_invalidated, refreshed_at, successor_id,
                    sealed_successor, purge_after, {scope}
               FROM tokens ORDER BY family_id, generation"
        ))
        .map_err(internal)?;
    let mut rows = stmt.query([]).map_err(internal)?;
    let mut moved = 0;
    let mut families: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    // Refresh records go to the successors' rows once every pair is in.
    let mut refreshes = Vec::new();
    while let Some(row) = rows.next().map_err(internal)? {
        let old = TokenRow {
            id: row.get(0).map_err(internal)?,
            access_hash: row.get(1).map_err(internal)?,
            refresh_hash: row.get(2).map_err(internal)?,
            family_id: row.get(3).map_err(internal)?,
            generation: row.get(4).map_err(internal)?,
            username: row.get(5).map_err(internal)?,
            realm: row.get(6).map_err(internal)?,
            subject: row.get(7).map_err(internal)?,
            client: row.get(8).map_err(internal)?,
            created_at: row.get(9).map_err(internal)?,
            access_expires_at: row.get(10).map_err(internal)?,
            refresh_expires_at: row.get(11).map_err(internal)?,
            access_invalidated: row.get(12).map_err(internal)?,
            refresh_invalidated: row.get(13).map_err(internal)?,
            refreshed_at: row.get(14).map_err(internal)?,
            successor_id: row.get(15).map_err(internal)?,
            sealed_successor: row.get(16).map_err(internal)?,
            purge_after: row.get(17).map_err(internal)?,
            scope: row.get(18).map_err(internal)?,
            not_after: None,
            token_metadata: None,
        };
        let family = families.get(&old.family_id).copied();
        let grant = grant_id(conn, &old)?;
        let new = New {
            family,
            ..New::first(None)
        };
        let seq = insert_row(conn, &old, new, grant)?;
        families.entry(old.family_id.clone()).or_insert(seq);
        match (old.refreshed_at, old.successor_id, old.sealed_successor) {
            (Some(_), Some(successor), Some(sealed)) => refreshes.push((seq, successor, sealed)),
            (None, None, None) => {}
            _ => {
                return Err(StoreError::Internal(format!(
                    "token {} has a partial refresh state",
                    old.id
                )))
            }
        }
        moved += 1;
    }
    drop(rows);
    drop(stmt);
    for (seq, successor, sealed) in refreshes {
        attach_refresh(conn, seq, &successor, &sealed)?;
    }
    conn.execute_batch("DROP TABLE tokens").map_err(internal)?;
    Ok(moved)
}
