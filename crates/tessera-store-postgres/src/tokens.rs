//! Token pairs on PostgreSQL: their rows, and the engine's row operations
//! (issue, refresh, invalidation) on a connection or transaction.

use super::*;
use tessera_domain::token::Refreshed;
use tessera_store::engine::{self, Half, TokenTx};
use tessera_store::{OneTime, Requirement};
use tokio_postgres::types::ToSql;

pub(crate) static TOKEN_BY_ACCESS: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE access_hash = $1"));
pub(crate) static TOKEN_BY_REFRESH: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE refresh_hash = $1"));
pub(crate) static LOCK_TOKEN_BY_REFRESH: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE refresh_hash = $1 FOR UPDATE")
});
/// The columns of a new pair's row, in the order of [`NewRow::params`].
pub(crate) static INSERT_COLUMNS: LazyLock<String> =
    LazyLock::new(|| format!("{TOKEN_COLUMNS}, parent_family, api_key_id, client_username"));
/// How many values [`INSERT_COLUMNS`] takes.
const INSERT_ARITY: usize = 24;
pub(crate) static INSERT_TOKEN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO tokens ({}) VALUES ({})",
        *INSERT_COLUMNS,
        insert_placeholders(1)
    )
});
/// Marks pair `$1` refreshed at `$2`, by successor `$3` sealed as `$4`
/// ([`mark_params`]), unless it already was.
pub(crate) const MARK_REFRESHED: &str =
    "UPDATE tokens SET refreshed_at = $2, successor_id = $3, sealed_successor = $4
     WHERE id = $1 AND refreshed_at IS NULL";
pub(crate) const MARK_ISSUED: &str =
    "INSERT INTO meta (key, value) VALUES ('tokens_issued', '1') ON CONFLICT (key) DO NOTHING";

pub(crate) fn token_row(row: &Row) -> Result<TokenRow, tokio_postgres::Error> {
    token_row_at(row, 0)
}

/// The pair whose [`TOKEN_COLUMNS`] start at column `first` of `row`.
pub(crate) fn token_row_at(row: &Row, first: usize) -> Result<TokenRow, tokio_postgres::Error> {
    Ok(TokenRow {
        id: row.try_get(first)?,
        access_hash: row.try_get(first + 1)?,
        refresh_hash: row.try_get(first + 2)?,
        family_id: row.try_get(first + 3)?,
        generation: row.try_get(first + 4)?,
        username: row.try_get(first + 5)?,
        realm: row.try_get(first + 6)?,
        subject: row.try_get(first + 7)?,
        client: row.try_get(first + 8)?,
        created_at: row.try_get(first + 9)?,
        access_expires_at: row.try_get(first + 10)?,
        refresh_expires_at: row.try_get(first + 11)?,
        access_invalidated: row.try_get(first + 12)?,
        refresh_invalidated: row.try_get(first + 13)?,
        refreshed_at: row.try_get(first + 14)?,
        successor_id: row.try_get(first + 15)?,
        sealed_successor: row.try_get(first + 16)?,
        purge_after: row.try_get(first + 17)?,
        scope: row.try_get(first + 18)?,
        not_after: row.try_get(first + 19)?,
        token_metadata: row.try_get(first + 20)?,
    })
}

pub(crate) fn token_record(row: Option<Row>) -> Result<Option<TokenRecord>, Fail> {
    match row {
        None => Ok(None),
        Some(row) => Ok(Some(token_row(&row)?.into_record()?)),
    }
}

/// The placeholders of [`INSERT_COLUMNS`]' values, numbered from `first`.
pub(crate) fn insert_placeholders(first: usize) -> String {
    (first..first + INSERT_ARITY)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The values of a new pair's row, as [`INSERT_COLUMNS`] names them: the
/// record, the family it is a child of (if any), and where it came from
/// (`lineage::source_columns`).
pub(crate) struct NewRow {
    row: TokenRow,
    parent: Option<String>,
    api_key_id: Option<String>,
    client_username: Option<String>,
}

impl NewRow {
    pub(crate) fn of(record: &TokenRecord, parent: Option<&str>) -> Result<Self, Fail> {
        let (api_key_id, client_username) = lineage::source_columns(record);
        Ok(Self {
            row: TokenRow::from_record(record)?,
            parent: parent.map(str::to_owned),
            api_key_id,
            client_username,
        })
    }

    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); INSERT_ARITY] {
        let r = &self.row;
        [
            &r.id,
            &r.access_hash,
            &r.refresh_hash,
            &r.family_id,
            &r.generation,
            &r.username,
            &r.realm,
            &r.subject,
            &r.client,
            &r.created_at,
            &r.access_expires_at,
            &r.refresh_expires_at,
            &r.access_invalidated,
            &r.refresh_invalidated,
            &r.refreshed_at,
            &r.successor_id,
            &r.sealed_successor,
            &r.purge_after,
            &r.scope,
            &r.not_after,
            &r.token_metadata,
            &self.parent,
            &self.api_key_id,
            &self.client_username,
        ]
    }
}

/// The values of [`MARK_REFRESHED`] for pair `id`.
pub(crate) fn mark_params<'a>(
    id: &'a String,
    refreshed: &'a Refreshed,
) -> [&'a (dyn ToSql + Sync); 4] {
    [
        id,
        &refreshed.at,
        &refreshed.successor_id,
        &refreshed.sealed_successor,
    ]
}

/// Stores `record`, as a child of the family `parent` if given.
pub(crate) async fn insert_token_row(
    c: &impl GenericClient,
    record: &TokenRecord,
    parent: Option<&str>,
) -> Result<(), Fail> {
    let new = NewRow::of(record, parent)?;
    let stmt = c.prepare_cached(&INSERT_TOKEN).await?;
    c.execute(&stmt, &new.params()).await?;
    Ok(())
}

/// A pair as the engine's handle: its id and its family.
pub(crate) struct PgPair {
    id: String,
    family: String,
}

impl PgPair {
    pub(crate) fn of(record: &TokenRecord) -> Self {
        Self {
            id: record.id.clone(),
            family: record.family_id.clone(),
        }
    }
}

/// A connection (or an open transaction) as the engine's [`TokenTx`].
/// Refresh and invalidation run it `READ COMMITTED`, issuance with source
/// checks `SERIALIZABLE`; the row locks taken here make concurrent writers
/// of the same pair wait instead of abort.
pub(crate) struct PgTx<'c, C> {
    c: &'c C,
    /// Whether [`TokenTx::lock_by_refresh`] locks the pair at once,
    /// instead of reading it first and locking it only when unrefreshed.
    lock_at_once: bool,
}

impl<'c, C> PgTx<'c, C> {
    pub(crate) fn new(c: &'c C) -> Self {
        PgTx {
            c,
            lock_at_once: false,
        }
    }

    /// For a refresh whose unlocked read already saw the pair unrefreshed:
    /// the pair is locked at once instead of being read again first.
    pub(crate) fn locking_at_once(c: &'c C) -> Self {
        PgTx {
            c,
            lock_at_once: true,
        }
    }
}

impl<C: GenericClient + Sync> TokenTx for PgTx<'_, C> {
    type Pair = PgPair;
    type Error = Fail;

    /// A pair already refreshed is never rotated again (a repeat replays
    /// its successor or is refused), and only an invalidation can still
    /// change it, which locks the rows it changes: so it is returned
    /// unlocked, and the repeats of a storm read in parallel instead of
    /// queueing on the row. Any other pair is locked (`FOR UPDATE`), and
    /// read again once the lock is held.
    async fn lock_by_refresh(
        &mut self,
        hash: &TokenKey,
    ) -> Result<Option<(PgPair, TokenRecord)>, Fail> {
        let key = hash.0.as_slice();
        if !self.lock_at_once {
            let read = self.c.prepare_cached(&TOKEN_BY_REFRESH).await?;
            match token_record(self.c.query_opt(&read, &[&key]).await?)? {
                None => return Ok(None),
                Some(r) if r.refreshed.is_some() => return Ok(Some((PgPair::of(&r), r))),
                Some(_) => {}
            }
        }
        let stmt = self.c.prepare_cached(&LOCK_TOKEN_BY_REFRESH).await?;
        let found = token_record(self.c.query_opt(&stmt, &[&key]).await?)?;
        Ok(found.map(|r| (PgPair::of(&r), r)))
    }

    async fn by_access(&mut self, hash: &TokenKey) -> Result<Option<TokenRecord>, Fail> {
        let stmt = self.c.prepare_cached(&TOKEN_BY_ACCESS).await?;
        token_record(self.c.query_opt(&stmt, &[&hash.0.as_slice()]).await?)
    }

    async fn invalidation_state(
        &mut self,
        half: Half,
        hash: &TokenKey,
    ) -> Result<Option<(bool, PgPair)>, Fail> {
        let stmt = self
            .c
            .prepare_cached(match half {
                Half::Access => {
                    "SELECT access_invalidated, id, family_id FROM tokens
                     WHERE access_hash = $1 FOR UPDATE"
                }
                Half::Refresh => {
                    "SELECT refresh_invalidated, id, family_id FROM tokens
                     WHERE refresh_hash = $1 FOR UPDATE"
                }
            })
            .await?;
        let Some(row) = self.c.query_opt(&stmt, &[&hash.0.as_slice()]).await? else {
            return Ok(None);
        };
        let pair = PgPair {
            id: row.try_get(1)?,
            family: row.try_get(2)?,
        };
        Ok(Some((row.try_get(0)?, pair)))
    }

    async fn use_once(&mut self, proof: &OneTime) -> Result<bool, Fail> {
        // A racing use of the same proof waits on the key, then finds it
        // taken (or the serializable transaction is retried and does).
        let stmt = self
            .c
            .prepare_cached(
                "INSERT INTO one_time_proofs (realm, id, keep_until) VALUES ($1, $2, $3)
                 ON CONFLICT (realm, id) DO NOTHING",
            )
            .await?;
        let inserted = self
            .c
            .execute(&stmt, &[&proof.realm, &proof.id, &proof.keep_until])
            .await?;
        Ok(inserted == 1)
    }

    async fn holds(&mut self, requirement: &Requirement, at: Millis) -> Result<bool, Fail> {
        lineage::holds(self.c, requirement, at).await
    }

    async fn insert_first(
        &mut self,
        record: &TokenRecord,
        parent: Option<&PgPair>,
    ) -> Result<(), Fail> {
        insert_token_row(self.c, record, parent.map(|p| p.family.as_str())).await
    }

    async fn rotate(
        &mut self,
        pair: &PgPair,
        successor: &TokenRecord,
        refreshed: &Refreshed,
    ) -> Result<(), Fail> {
        insert_token_row(self.c, successor, None).await?;
        let stmt = self.c.prepare_cached(MARK_REFRESHED).await?;
        let updated = self
            .c
            .execute(&stmt, &mark_params(&pair.id, refreshed))
            .await?;
        if updated != 1 {
            // The row is locked by this transaction, so this cannot happen
            // unless something is badly wrong.
            return Err(
                StoreError::Internal("the locked token changed during its refresh".into()).into(),
            );
        }
        Ok(())
    }

    async fn revoke_family(&mut self, pair: &PgPair) -> Result<(), Fail> {
        lineage::revoke_tree(self.c, std::slice::from_ref(&pair.family)).await
    }

    async fn invalidate_half(&mut self, pair: &PgPair, half: Half) -> Result<(), Fail> {
        let stmt = self
            .c
            .prepare_cached(match half {
                Half::Access => "UPDATE tokens SET access_invalidated = TRUE WHERE id = $1",
                Half::Refresh => "UPDATE tokens SET refresh_invalidated = TRUE WHERE id = $1",
            })
            .await?;
        self.c.execute(&stmt, &[&pair.id]).await?;
        Ok(())
    }
}

/// One attempt at invalidating the pair holding a token and the rest of its
/// family, under `READ COMMITTED`: the named row is locked, then the
/// family's live rows, in `id` order, until none is left
/// ([`lineage::revoke_tree`]); a successor minted by a refresh racing this
/// call is therefore either seen and invalidated here, or the refresh
/// waited for this commit and finds its token dead.
pub(crate) async fn invalidate_one(
    client: &mut Client,
    half: Half,
    hash: &TokenKey,
    family: bool,
) -> Result<Bumped<InvalidateOne>, Fail> {
    let tx = begin(client, IsolationLevel::ReadCommitted).await?;
    let outcome = engine::invalidate(&mut PgTx::new(&tx), half, hash, family).await?;
    commit_bumped(tx, outcome).await
}

impl PostgresStore {
    /// Invalidates the token `hash` names: with its family (`family`), or
    /// alone (Elasticsearch's invalidation).
    pub(crate) async fn invalidate_named(
        &self,
        op: &'static str,
        half: Half,
        hash: &TokenKey,
        family: bool,
    ) -> StoreResult<InvalidateOne> {
        self.db
            .revoking(
                op,
                attempt!(|c| invalidate_one(c, half, hash, family).await),
            )
            .await
    }
}

pub(crate) use tessera_store::Whose;

/// One attempt at invalidating every active pair of a user and/or realm,
/// under `READ COMMITTED`: the matching live rows are locked in `id` order
/// and invalidated, then looked for again until none is left, so the
/// successor of a refresh that held one of them when the lock came is
/// found by the next look (as in [`lineage::revoke_tree`]).
pub(crate) async fn invalidate_matching_attempt(
    client: &mut Client,
    whose: Whose<'_>,
    now: Millis,
) -> Result<Bumped<(InvalidateCounts, u64)>, Fail> {
    let mut filters = Vec::new();
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&now];
    let (username, realm, nameid, session) = match &whose {
        Whose::User { username, realm } => (username, realm, None, &None),
        Whose::NameId {
            realm,
            nameid,
            session,
        } => (&None, &Some(*realm), Some(nameid), session),
    };
    if let Some(u) = username {
        params.push(u);
        filters.push(format!("username = ${}", params.len()));
    }
    if let Some(r) = realm {
        params.push(r);
        filters.push(format!("realm = ${}", params.len()));
    }
    if let Some(n) = nameid {
        params.push(n);
        // The expression and the predicate of `tokens_by_saml_nameid`.
        filters.push(format!(
            "subject::jsonb #>> '{{metadata,saml_nameid}}' = ${} AND subject LIKE '%\"saml_nameid\"%'",
            params.len()
        ));
    }
    if let Some(s) = session {
        params.push(s);
        filters.push(format!(
            "token_metadata::jsonb ->> 'saml_session' = ${}",
            params.len()
        ));
    }
    if filters.is_empty() {
        return Err(
            StoreError::Internal("invalidate_matching needs a username or a realm".into()).into(),
        );
    }
    let select = format!(
        "SELECT id, refresh_hash IS NOT NULL, refresh_invalidated, access_invalidated, family_id
           FROM tokens
         WHERE {} AND ((NOT access_invalidated AND access_expires_at > $1)
                    OR (refresh_hash IS NOT NULL AND NOT refresh_invalidated AND refresh_expires_at > $1))
         ORDER BY id FOR UPDATE",
        filters.join(" AND ")
    );
    let tx = begin(client, IsolationLevel::ReadCommitted).await?;
    let stmt = tx.prepare_cached(&select).await?;
    let mut counts = InvalidateCounts::default();
    let mut found = 0;
    let mut families = Vec::new();
    loop {
        let rows = tx.query(&stmt, &params).await?;
        if rows.is_empty() {
            break;
        }
        let mut ids = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get(0)?;
            codec::count_invalidation(
                &mut counts,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
            );
            ids.push(id);
            families.push(row.try_get::<_, String>(4)?);
        }
        found += rows.len() as u64;
        let update = tx
            .prepare_cached(
                "UPDATE tokens SET access_invalidated = TRUE, refresh_invalidated = (refresh_hash IS NOT NULL)
                 WHERE id = ANY($1)",
            )
            .await?;
        tx.execute(&update, &[&ids]).await?;
    }
    // Whatever those pairs minted dies with them.
    families.sort();
    families.dedup();
    lineage::revoke_children(&tx, &families).await?;
    commit_bumped(tx, (counts, found)).await
}
