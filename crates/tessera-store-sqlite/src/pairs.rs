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
//!   successor's id and the sealed successor) is kept in the successor's
//!   own row: the refresh time is its `created_at`, the id its `id`, and
//!   the sealed copy of itself its `sealed` column. A pair's successor is
//!   the next pair of its family (families are chains: each pair is
//!   refreshed at most once, and its successor is appended), found through
//!   the family index. So a refresh writes only at the ends of the table
//!   and its indexes: no random page for the refreshed pair (whose page is
//!   anywhere), and no row grows in the densely filled pages. The record
//!   must outlive the refreshed pair's refresh token, or a replay of that
//!   token would find no successor and rotate again: a successor's
//!   `purge_after` is never before its predecessor's refresh expiry.
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
use tessera_domain::token::{to_hex, Refreshed};
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
    not_after           INTEGER,
    sealed              BLOB
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
pub(crate) const SELECT_PAIR: &str =
    "SELECT p.seq, p.id, p.access_hash, p.refresh_hash, p.family_id,
    p.generation, g.username, g.realm, g.subject, g.client, p.created_at, p.access_expires_at,
    p.refresh_expires_at, p.access_invalidated, p.refresh_invalidated, s.created_at,
    s.id, s.sealed, p.purge_after, g.scope, IFNULL(p.family_seq, p.seq),
    p.grant_id, p.not_after, g.token_metadata
  FROM token_pairs p JOIN grants g ON g.id = p.grant_id
  LEFT JOIN token_pairs s ON s.seq = (SELECT x.seq FROM token_pairs x
      WHERE IFNULL(x.family_seq, x.seq) = IFNULL(p.family_seq, p.seq) AND x.seq > p.seq
      ORDER BY x.seq LIMIT 1)
    AND s.generation = p.generation + 1 AND s.sealed IS NOT NULL";

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
pub(crate) fn compact_id(id: &str) -> Value {
    let is_hex = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !is_hex {
        return Value::Text(id.to_owned());
    }
    let bytes = (0..16)
        .map(|i| u8::from_str_radix(&id[2 * i..2 * i + 2], 16).expect("checked hex"))
        .collect();
    Value::Blob(bytes)
}

pub(crate) fn expand_id(value: ValueRef<'_>) -> rusqlite::Result<String> {
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
pub(crate) fn grant_id(conn: &Connection, row: &TokenRow) -> StoreResult<i64> {
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
    if row.refreshed_at.is_some() {
        return Err(StoreError::Internal(format!(
            "token {} is new and already refreshed",
            row.id
        )));
    }
    let grant = grant_id(conn, &row)?;
    insert_row(conn, &row, New::first(parent), grant)
}

/// Stores `successor`, minted by refreshing the pair at `parent`, with the
/// record of that refresh: same family, same grant (a successor inherits
/// subject, client and scope).
pub fn insert_successor(
    conn: &Connection,
    successor: &TokenRecord,
    parent: Located,
    refreshed: &Refreshed,
) -> StoreResult<i64> {
    // The refresh time is read back as the successor's `created_at`, and
    // its id as the successor's `id`.
    if refreshed.at != successor.created_at || refreshed.successor_id != successor.id {
        return Err(StoreError::Internal(
            "a refresh record that does not describe its successor".into(),
        ));
    }
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
    let new = New {
        family: Some(parent.family),
        parent_family: None,
        sealed: Some(&refreshed.sealed_successor),
        outlives: Some(parent.seq),
    };
    insert_row(conn, &row, new, parent.grant)
}

/// Where a new row goes, and what it records.
pub(crate) struct New<'a> {
    /// The family's key (`None`: the row starts a family).
    pub(crate) family: Option<i64>,
    /// The family a new family derives from.
    pub(crate) parent_family: Option<i64>,
    /// For a successor, the sealed copy of itself kept for its
    /// predecessor's replays.
    pub(crate) sealed: Option<&'a [u8]>,
    /// For a successor, its predecessor's `seq`: the row is not purged
    /// before the predecessor's refresh token expires, and is not stored if
    /// the predecessor has a successor already.
    pub(crate) outlives: Option<i64>,
}

impl New<'_> {
    pub(crate) fn first(parent_family: Option<i64>) -> Self {
        Self {
            family: None,
            parent_family,
            sealed: None,
            outlives: None,
        }
    }
}

/// Inserts `r` (grant and refresh-record columns unused) under `grant`,
/// as `new` says.
pub(crate) fn insert_row(
    conn: &Connection,
    r: &TokenRow,
    new: New<'_>,
    grant: i64,
) -> StoreResult<i64> {
    let access = hash_array(&r.access_hash)?;
    let refresh = r.refresh_hash.as_deref().map(hash_array).transpose()?;
    // A successor is stored only while its predecessor has none: a family
    // is a chain, whatever the caller.
    let inserted = conn
        .prepare_cached(
            "INSERT INTO token_pairs (access_key, access_hash, refresh_key, refresh_hash, id,
           family_id, generation, grant_id, created_at, access_expires_at, refresh_expires_at,
           access_invalidated, refresh_invalidated, purge_after, family_seq, parent_family,
           not_after, sealed)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,
           MAX(?14, IFNULL((SELECT refresh_expires_at FROM token_pairs WHERE seq = ?19), 0)),
           ?15, ?16, ?17, ?18
          WHERE ?19 IS NULL OR NOT EXISTS (SELECT 1 FROM token_pairs x
            WHERE IFNULL(x.family_seq, x.seq) = ?15 AND x.seq > ?19)",
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
                new.family,
                new.parent_family,
                r.not_after,
                new.sealed,
                new.outlives,
            ])
        })
        .map_err(internal)?;
    if inserted != 1 {
        // The engine decides on the pair it read in this transaction, on
        // the only writer, so this is a guard, not a path.
        return Err(StoreError::Internal(
            "the pair already has a successor: a second one would fork its family".into(),
        ));
    }
    Ok(conn.last_insert_rowid())
}

fn hash_array(bytes: &[u8]) -> StoreResult<[u8; 32]> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| StoreError::Internal("a token hash is not 32 bytes".into()))
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
        conn.prepare_cached("DELETE FROM token_pairs WHERE seq = ?1")
            .and_then(|mut stmt| stmt.execute([seq]))
            .map_err(internal)?;
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
