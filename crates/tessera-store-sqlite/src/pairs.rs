//! How token pairs are laid out in the file, and every statement that
//! touches them.
//!
//! The layout is chosen for size and for cheap writes, since every token
//! costs a row and a few index entries, and every index entry written at a
//! random place dirties a page the commit must write:
//!
//! - `token_pairs` is a rowid table filled in insertion order (`seq`), so
//!   its pages fill up completely.
//! - A token is found by the first 8 bytes of its stored form (`access_key`,
//!   `refresh_key`: small integer index entries), then the full 32 bytes are
//!   compared, so guessing a key gains nothing. For tokens minted now those
//!   8 bytes are the token's locator, which grows with the minting time
//!   (see `tessera_domain::token`): the entries of a batch of new tokens go
//!   at the end of the indexes, onto the same few pages, instead of
//!   dirtying a random page each. (Tokens from before locators have random
//!   keys, and still work.)
//! - Who a token stands for (the subject, frozen at issuance), the client it
//!   was issued to and its scope repeat for every token of a user, so they
//!   are stored once per distinct combination, in `grants`, and each pair
//!   refers to its grant. Invalidation by user or realm goes through the
//!   grants' indexes.
//! - What a refresh records about the pair it refreshed (when, the
//!   successor's id and the sealed successor) goes into `refreshes`, keyed
//!   by the pair's `seq`, so a refresh never grows a row in the densely
//!   filled `token_pairs` pages (which would split them).
//! - Pair, family and successor ids (random 128-bit hex strings) are stored
//!   as 16-byte blobs, and not indexed. A family is found by its *family
//!   key*: the `seq` of its first pair (`family_seq` is NULL there, and
//!   holds that key in every successor), so a new family's index entry goes
//!   at the end of the index.
//!
//! Records cross this module as [`TokenRecord`]s through the store crate's
//! own [`TokenRow`] codec.

use rusqlite::types::{Value, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, Row};
use sha2::{Digest, Sha256};
use tessera_domain::token::to_hex;
use tessera_domain::{TokenKey, TokenRecord};
use tessera_store::codec::TokenRow;
use tessera_store::{StoreError, StoreResult};

use crate::internal;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS grants (
    id       INTEGER PRIMARY KEY,
    digest   BLOB NOT NULL UNIQUE,
    username TEXT NOT NULL,
    realm    TEXT NOT NULL,
    client   TEXT NOT NULL,
    subject  TEXT NOT NULL,
    scope    TEXT,
    token_metadata TEXT
);
CREATE INDEX IF NOT EXISTS grants_by_username ON grants (username);
CREATE INDEX IF NOT EXISTS grants_by_realm ON grants (realm);
CREATE INDEX IF NOT EXISTS grants_by_client ON grants (client);
CREATE INDEX IF NOT EXISTS grants_by_saml_nameid
    ON grants (realm, json_extract(subject, '$.metadata.saml_nameid'));
CREATE TABLE IF NOT EXISTS token_pairs (
    seq                 INTEGER PRIMARY KEY,
    access_key          INTEGER NOT NULL,
    access_hash         BLOB NOT NULL,
    refresh_key         INTEGER,
    refresh_hash        BLOB,
    id                  BLOB NOT NULL,
    family_id           BLOB NOT NULL,
    family_seq          INTEGER,
    generation          INTEGER NOT NULL,
    grant_id            INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    access_expires_at   INTEGER NOT NULL,
    refresh_expires_at  INTEGER,
    access_invalidated  INTEGER NOT NULL,
    refresh_invalidated INTEGER NOT NULL,
    purge_after         INTEGER NOT NULL,
    parent_family       INTEGER,
    not_after           INTEGER
);
CREATE TABLE IF NOT EXISTS refreshes (
    seq              INTEGER PRIMARY KEY,
    refreshed_at     INTEGER NOT NULL,
    successor_id     BLOB NOT NULL,
    sealed_successor BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS token_pairs_by_access ON token_pairs (access_key);
CREATE INDEX IF NOT EXISTS token_pairs_by_refresh ON token_pairs (refresh_key)
    WHERE refresh_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS token_pairs_by_family ON token_pairs (IFNULL(family_seq, seq));
CREATE INDEX IF NOT EXISTS token_pairs_by_grant ON token_pairs (grant_id);
CREATE INDEX IF NOT EXISTS token_pairs_by_purge ON token_pairs (purge_after);
";

/// Sets both halves of a pair invalid (the refresh half only if it exists).
pub const INVALIDATE_SET: &str =
    "access_invalidated = 1, refresh_invalidated = (refresh_hash IS NOT NULL)";

/// The columns [`pair_row`] reads, in its order.
const SELECT_PAIR: &str = "SELECT p.seq, p.id, p.access_hash, p.refresh_hash, p.family_id,
    p.generation, g.username, g.realm, g.subject, g.client, p.created_at, p.access_expires_at,
    p.refresh_expires_at, p.access_invalidated, p.refresh_invalidated, r.refreshed_at,
    r.successor_id, r.sealed_successor, p.purge_after, g.scope, IFNULL(p.family_seq, p.seq),
    p.grant_id, p.not_after, g.token_metadata
  FROM token_pairs p JOIN grants g ON g.id = p.grant_id LEFT JOIN refreshes r ON r.seq = p.seq";

pub use tessera_store::engine::Half;

/// The condition that finds the pair whose `half` has the hash bound to
/// `?2` (and its index key to `?1`).
fn key_and_hash(half: Half) -> &'static str {
    match half {
        Half::Access => "p.access_key = ?1 AND p.access_hash = ?2",
        Half::Refresh => "p.refresh_key = ?1 AND p.refresh_hash = ?2",
    }
}

fn invalidated(half: Half) -> &'static str {
    match half {
        Half::Access => "p.access_invalidated",
        Half::Refresh => "p.refresh_invalidated",
    }
}

/// The index key of a token hash: its first 8 bytes.
fn key_of(hash: &[u8; 32]) -> i64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    i64::from_be_bytes(first)
}

/// A random 128-bit hex id as 16 bytes; any other id as it is.
fn compact_id(id: &str) -> Value {
    let is_hex = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !is_hex {
        return Value::Text(id.to_owned());
    }
    let bytes = (0..16)
        .map(|i| u8::from_str_radix(&id[2 * i..2 * i + 2], 16).expect("checked hex"))
        .collect();
    Value::Blob(bytes)
}

fn expand_id(value: ValueRef<'_>) -> rusqlite::Result<String> {
    match value {
        ValueRef::Blob(bytes) => Ok(to_hex(bytes)),
        ValueRef::Text(text) => Ok(String::from_utf8_lossy(text).into_owned()),
        other => Err(rusqlite::Error::InvalidColumnType(
            0,
            "id".into(),
            other.data_type(),
        )),
    }
}

fn optional_id(value: ValueRef<'_>) -> rusqlite::Result<Option<String>> {
    match value {
        ValueRef::Null => Ok(None),
        v => expand_id(v).map(Some),
    }
}

/// Where a stored pair is: its `seq`, its family key and its grant.
#[derive(Clone, Copy, Debug)]
pub struct Located {
    pub seq: i64,
    pub family: i64,
    pub grant: i64,
}

/// A stored pair: where it is, and its row.
fn pair_row(row: &Row<'_>) -> rusqlite::Result<(Located, TokenRow)> {
    Ok((
        Located {
            seq: row.get(0)?,
            family: row.get(20)?,
            grant: row.get(21)?,
        },
        TokenRow {
            id: expand_id(row.get_ref(1)?)?,
            access_hash: row.get(2)?,
            refresh_hash: row.get(3)?,
            family_id: expand_id(row.get_ref(4)?)?,
            generation: row.get(5)?,
            username: row.get(6)?,
            realm: row.get(7)?,
            subject: row.get(8)?,
            client: row.get(9)?,
            created_at: row.get(10)?,
            access_expires_at: row.get(11)?,
            refresh_expires_at: row.get(12)?,
            access_invalidated: row.get(13)?,
            refresh_invalidated: row.get(14)?,
            refreshed_at: row.get(15)?,
            successor_id: optional_id(row.get_ref(16)?)?,
            sealed_successor: row.get(17)?,
            purge_after: row.get(18)?,
            scope: row.get(19)?,
            not_after: row.get(22)?,
            token_metadata: row.get(23)?,
        },
    ))
}

/// The pair whose `half` has hash `hash`, and where it is.
pub fn find(
    conn: &Connection,
    half: Half,
    hash: &TokenKey,
) -> StoreResult<Option<(Located, TokenRecord)>> {
    let sql = format!("{SELECT_PAIR} WHERE {}", key_and_hash(half));
    let found = conn
        .prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.query_row(params![key_of(&hash.0), hash.0.as_slice()], pair_row)
                .optional()
        })
        .map_err(internal)?;
    found
        .map(|(at, row)| row.into_record().map(|r| (at, r)))
        .transpose()
}

/// The id of the grant for this subject, client and scope, created if new.
fn grant_id(conn: &Connection, row: &TokenRow) -> StoreResult<i64> {
    let mut digest = Sha256::new();
    for part in [
        row.client.as_str(),
        row.subject.as_str(),
        row.scope.as_deref().unwrap_or("\u{0}unrestricted"),
    ] {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    // Token metadata is per login; grants without it keep the digests
    // they always had.
    if let Some(metadata) = &row.token_metadata {
        digest.update(b"\x00token_metadata");
        digest.update((metadata.len() as u64).to_be_bytes());
        digest.update(metadata.as_bytes());
    }
    let digest = digest.finalize().to_vec();
    let existing: Option<i64> = conn
        .prepare_cached("SELECT id FROM grants WHERE digest = ?1")
        .and_then(|mut stmt| stmt.query_row([&digest], |r| r.get(0)).optional())
        .map_err(internal)?;
    if let Some(id) = existing {
        return Ok(id);
    }
    conn.prepare_cached(
        "INSERT INTO grants (digest, username, realm, client, subject, scope, token_metadata)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            digest,
            row.username,
            row.realm,
            row.client,
            row.subject,
            row.scope,
            row.token_metadata
        ])
    })
    .map_err(internal)?;
    Ok(conn.last_insert_rowid())
}

/// Stores a new pair, the first of a new family, derived from the family
/// with key `parent` if given. Returns its `seq`.
pub fn insert(conn: &Connection, record: &TokenRecord, parent: Option<i64>) -> StoreResult<i64> {
    let row = TokenRow::from_record(record)?;
    let grant = grant_id(conn, &row)?;
    insert_row(conn, &row, None, grant, parent)
}

/// Stores `successor`, minted by refreshing the pair at `parent`: same
/// family, same grant (a successor inherits subject, client and scope).
pub fn insert_successor(
    conn: &Connection,
    successor: &TokenRecord,
    parent: Located,
) -> StoreResult<i64> {
    // The grant is known, so the row's subject, client and scope are not
    // encoded again.
    let row = TokenRow {
        id: successor.id.clone(),
        access_hash: successor.access_hash.0.to_vec(),
        refresh_hash: successor.refresh_hash.map(|h| h.0.to_vec()),
        family_id: successor.family_id.clone(),
        generation: i64::from(successor.generation),
        username: String::new(),
        realm: String::new(),
        subject: String::new(),
        client: String::new(),
        created_at: successor.created_at,
        access_expires_at: successor.access_expires_at,
        refresh_expires_at: successor.refresh_expires_at,
        access_invalidated: successor.access_invalidated,
        refresh_invalidated: successor.refresh_invalidated,
        refreshed_at: None,
        successor_id: None,
        sealed_successor: None,
        purge_after: successor.purgeable_after(),
        scope: None,
        not_after: successor.not_after,
        token_metadata: None,
    };
    insert_row(conn, &row, Some(parent.family), parent.grant, None)
}

/// Inserts `r` (grant columns unused) under `grant`, in the family with key
/// `family` (`None`: a new family, derived from the family `parent` if
/// given), with its refresh record if it has one.
fn insert_row(
    conn: &Connection,
    r: &TokenRow,
    family: Option<i64>,
    grant: i64,
    parent: Option<i64>,
) -> StoreResult<i64> {
    let access = hash_array(&r.access_hash)?;
    let refresh = r.refresh_hash.as_deref().map(hash_array).transpose()?;
    conn.prepare_cached(
        "INSERT INTO token_pairs (access_key, access_hash, refresh_key, refresh_hash, id,
           family_id, generation, grant_id, created_at, access_expires_at, refresh_expires_at,
           access_invalidated, refresh_invalidated, purge_after, family_seq, parent_family,
           not_after)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            key_of(&access),
            r.access_hash,
            refresh.as_ref().map(key_of),
            r.refresh_hash,
            compact_id(&r.id),
            compact_id(&r.family_id),
            r.generation,
            grant,
            r.created_at,
            r.access_expires_at,
            r.refresh_expires_at,
            r.access_invalidated,
            r.refresh_invalidated,
            r.purge_after,
            family,
            parent,
            r.not_after,
        ])
    })
    .map_err(internal)?;
    let seq = conn.last_insert_rowid();
    match (r.refreshed_at, &r.successor_id, &r.sealed_successor) {
        (Some(at), Some(successor_id), Some(sealed)) => {
            record_refresh(conn, seq, at, successor_id, sealed)?;
        }
        (None, None, None) => {}
        _ => {
            return Err(StoreError::Internal(format!(
                "token {} has a partial refresh state",
                r.id
            )))
        }
    }
    Ok(seq)
}

fn hash_array(bytes: &[u8]) -> StoreResult<[u8; 32]> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| StoreError::Internal("a token hash is not 32 bytes".into()))
}

/// Records the refresh of the pair `seq` (which must not have been
/// refreshed yet).
pub fn mark_refreshed(
    conn: &Connection,
    seq: i64,
    refreshed: &tessera_domain::token::Refreshed,
) -> StoreResult<()> {
    record_refresh(
        conn,
        seq,
        refreshed.at,
        &refreshed.successor_id,
        &refreshed.sealed_successor,
    )
}

fn record_refresh(
    conn: &Connection,
    seq: i64,
    at: i64,
    successor_id: &str,
    sealed: &[u8],
) -> StoreResult<()> {
    // A second refresh record for one pair violates the primary key.
    conn.prepare_cached(
        "INSERT INTO refreshes (seq, refreshed_at, successor_id, sealed_successor)
         VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut stmt| stmt.execute(params![seq, at, compact_id(successor_id), sealed]))
    .map(|_| ())
    .map_err(|e| StoreError::Internal(format!("recording a refresh: {e}")))
}

/// Invalidates both halves of every pair in the family with key `family`,
/// and of every family derived from it.
pub fn revoke_family(conn: &Connection, family: i64) -> StoreResult<()> {
    crate::lineage::revoke_tree(conn, &[family])
}

/// Whether the named half was already invalidated, and where the pair is,
/// for the pair whose `half` has hash `hash`.
pub fn invalidation_state(
    conn: &Connection,
    half: Half,
    hash: &TokenKey,
) -> StoreResult<Option<(bool, Located)>> {
    let sql = format!(
        "SELECT {}, p.seq, IFNULL(p.family_seq, p.seq), p.grant_id FROM token_pairs p WHERE {}",
        invalidated(half),
        key_and_hash(half)
    );
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.query_row(params![key_of(&hash.0), hash.0.as_slice()], |r| {
                Ok((
                    r.get(0)?,
                    Located {
                        seq: r.get(1)?,
                        family: r.get(2)?,
                        grant: r.get(3)?,
                    },
                ))
            })
            .optional()
        })
        .map_err(internal)
}

/// A live pair found by [`live_pairs`].
pub struct LivePair {
    pub seq: i64,
    pub family: i64,
    pub has_refresh: bool,
    pub refresh_invalidated: bool,
    pub access_invalidated: bool,
}

pub use tessera_store::Whose;

/// Every live pair of the user, realm or NameID.
pub fn live_pairs(conn: &Connection, whose: Whose<'_>, now: i64) -> StoreResult<Vec<LivePair>> {
    let (sql, [a, b, c]) = live_pairs_query(whose);
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.query_map(params![now, a, b, c], |r| {
                Ok(LivePair {
                    seq: r.get(0)?,
                    family: r.get(1)?,
                    has_refresh: r.get(2)?,
                    refresh_invalidated: r.get(3)?,
                    access_invalidated: r.get(4)?,
                })
            })?
            .collect()
        })
        .map_err(internal)
}

/// The statement of [`live_pairs`] and its parameters after `now`.
pub(crate) fn live_pairs_query(whose: Whose<'_>) -> (String, [Option<&'_ str>; 3]) {
    const LIVE: &str = "SELECT p.seq, IFNULL(p.family_seq, p.seq), p.refresh_hash IS NOT NULL,
                p.refresh_invalidated, p.access_invalidated
           FROM grants g JOIN token_pairs p ON p.grant_id = g.id
          WHERE ((p.access_invalidated = 0 AND p.access_expires_at > ?1)
              OR (p.refresh_hash IS NOT NULL AND p.refresh_invalidated = 0
                  AND p.refresh_expires_at > ?1))";
    match whose {
        Whose::User { username, realm } => (
            format!(
                "{LIVE} AND (?2 IS NULL OR g.username = ?2) AND (?3 IS NULL OR g.realm = ?3)
                   AND ?4 IS NULL"
            ),
            [username, realm, None],
        ),
        Whose::NameId {
            realm,
            nameid,
            session,
        } => (
            format!(
                "{LIVE} AND g.realm = ?2 AND json_extract(g.subject, '$.metadata.saml_nameid') = ?3
                   AND (?4 IS NULL OR json_extract(g.token_metadata, '$.saml_session') = ?4)"
            ),
            [Some(realm), Some(nameid), session],
        ),
    }
}

pub fn invalidate_pair(conn: &Connection, seq: i64) -> StoreResult<()> {
    conn.prepare_cached(&format!(
        "UPDATE token_pairs SET {INVALIDATE_SET} WHERE seq = ?1"
    ))
    .and_then(|mut stmt| stmt.execute([seq]))
    .map(|_| ())
    .map_err(internal)
}

/// Deletes up to `limit` pairs purgeable at `now`, then grants no pair
/// refers to any more. Returns how many pairs it deleted.
pub fn purge(conn: &Connection, now: i64, limit: u32) -> StoreResult<usize> {
    let doomed: Vec<(i64, i64)> = conn
        .prepare_cached("SELECT seq, grant_id FROM token_pairs WHERE purge_after <= ?1 LIMIT ?2")
        .and_then(|mut stmt| {
            stmt.query_map(params![now, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(internal)?;
    for (seq, _) in &doomed {
        for sql in [
            "DELETE FROM refreshes WHERE seq = ?1",
            "DELETE FROM token_pairs WHERE seq = ?1",
        ] {
            conn.prepare_cached(sql)
                .and_then(|mut stmt| stmt.execute([seq]))
                .map_err(internal)?;
        }
    }
    // Only the grants these pairs used can have become unused: each is
    // looked up through `token_pairs_by_grant`, never by a scan of all.
    let mut grants: Vec<i64> = doomed.iter().map(|&(_, grant)| grant).collect();
    grants.sort_unstable();
    grants.dedup();
    for grant in grants {
        conn.prepare_cached(
            "DELETE FROM grants WHERE id = ?1
               AND NOT EXISTS (SELECT 1 FROM token_pairs WHERE grant_id = ?1)",
        )
        .and_then(|mut stmt| stmt.execute([grant]))
        .map_err(internal)?;
    }
    Ok(doomed.len())
}

pub fn count(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COUNT(*) FROM token_pairs", [], |r| r.get(0))
}

/// Moves the pairs of a database from before this layout (one `tokens`
/// table with a row per pair, every column inline) into it, in the
/// caller's transaction, and drops the old table.
pub fn migrate_from_single_table(conn: &Connection) -> StoreResult<u64> {
    let exists: bool = conn
        .query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'tokens'",
            [],
            |r| r.get(0),
        )
        .map_err(internal)?;
    if !exists {
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
        let seq = insert_row(conn, &old, family, grant, None)?;
        families.entry(old.family_id.clone()).or_insert(seq);
        moved += 1;
    }
    drop(rows);
    drop(stmt);
    conn.execute_batch("DROP TABLE tokens").map_err(internal)?;
    Ok(moved)
}

/// Inserts `records` into the database at `path` in transactions of
/// `per_transaction` pairs, on a connection of its own with a large page
/// cache: the fast way to load many pairs into a store no server is using
/// (the benchmark's seeding). The schema must exist (open the store once
/// first).
pub fn bulk_insert(
    path: &std::path::Path,
    records: impl Iterator<Item = TokenRecord>,
    per_transaction: usize,
) -> StoreResult<u64> {
    let mut conn = Connection::open(path).map_err(internal)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(internal)?;
    conn.pragma_update(None, "cache_size", -1_048_576i64)
        .map_err(internal)?;
    let mut records = records.peekable();
    let mut total = 0;
    while records.peek().is_some() {
        let tx = conn.transaction().map_err(internal)?;
        for record in records.by_ref().take(per_transaction.max(1)) {
            insert(&tx, &record, None)?;
            total += 1;
        }
        tx.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('tokens_issued', '1')",
            [],
        )
        .map_err(internal)?;
        tx.commit().map_err(internal)?;
    }
    Ok(total)
}
