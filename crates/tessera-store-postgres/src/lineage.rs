//! Derived credentials on PostgreSQL: the check a new token's sources must
//! pass when it is stored, and the revocation of families together with
//! every family derived from them.
//!
//! Three columns of `tokens` (migration 4) say where a pair came from:
//! `parent_family` (the family of the token whose caller minted it),
//! `api_key_id` (the API key that minted it or that it stands for) and
//! `client_username` (the client's username when it is not the subject's).
//! Source checks run inside a `SERIALIZABLE` transaction: a token stored
//! while its source is being revoked either is seen by the revoking
//! transaction (and revoked) or sees the revocation (and is not stored);
//! PostgreSQL aborts one of the two otherwise, and the store runs it
//! again. Revocations of families lock the pairs they revoke in a fixed
//! order and look again until nothing is left ([`revoke_tree`]), which
//! holds under `READ COMMITTED` too.

use std::collections::HashSet;

use deadpool_postgres::GenericClient;
use tessera_domain::authn::{API_KEY_REALM, NATIVE_REALM};
use tessera_domain::{Millis, TokenRecord};
use tessera_store::Requirement;

use crate::db::Fail;

/// Sets both halves of a pair invalid (the refresh half only if it exists).
const INVALIDATE_SET: &str =
    "access_invalidated = TRUE, refresh_invalidated = (refresh_hash IS NOT NULL)";

/// The derived-credential columns of a new pair: `(api_key_id,
/// client_username)`.
pub(crate) fn source_columns(record: &TokenRecord) -> (Option<String>, Option<String>) {
    let key = record
        .client
        .api_key_id
        .clone()
        .or_else(|| record.subject.api_key.as_ref().map(|k| k.id.clone()));
    let client_user =
        (record.client.username != record.subject.username).then(|| record.client.username.clone());
    (key, client_user)
}

/// Whether `requirement` holds at `now` (the engine's source checks),
/// keeping the rows it read from changing until the transaction ends.
pub(crate) async fn holds(
    c: &impl GenericClient,
    requirement: &Requirement,
    now: Millis,
) -> Result<bool, Fail> {
    Ok(match requirement {
        Requirement::User {
            username,
            password_hash,
        } => {
            let stmt = c
                .prepare_cached(
                    "SELECT password_hash, enabled FROM users WHERE username = $1 FOR SHARE",
                )
                .await?;
            match c.query_opt(&stmt, &[username]).await? {
                None => false,
                Some(row) => {
                    let (stored, enabled): (String, bool) = (row.try_get(0)?, row.try_get(1)?);
                    enabled && password_hash.as_ref().is_none_or(|h| *h == stored)
                }
            }
        }
        Requirement::ApiKey { id } => {
            let stmt = c
                .prepare_cached(
                    "SELECT 1 FROM api_keys WHERE id = $1 AND invalidated_at IS NULL
                       AND (expires_at IS NULL OR expires_at > $2) FOR SHARE",
                )
                .await?;
            c.query_opt(&stmt, &[id, &now]).await?.is_some()
        }
        Requirement::OAuthClient { client_id } => {
            let stmt = c
                .prepare_cached("SELECT 1 FROM oauth_clients WHERE client_id = $1 FOR SHARE")
                .await?;
            c.query_opt(&stmt, &[client_id]).await?.is_some()
        }
    })
}

/// The condition that selects the pairs issued to an OAuth client: the
/// predicate of the partial index `tokens_by_oauth_client` (migration 11),
/// which a statement must repeat word for word for PostgreSQL to use it.
/// The `client` column holds `codec::client_column` of the caller, whose
/// realm for an OAuth client is `_oauth2_client` (`\_`: a literal
/// underscore in `LIKE`).
macro_rules! oauth_client_pairs {
    () => {
        r#"client LIKE '%"realm":"\_oauth2\_client"%'"#
    };
}
pub(crate) use oauth_client_pairs;

/// The families issued to the OAuth client whose `client` column is `$1`.
pub const CLIENT_FAMILIES: &str = concat!(
    "SELECT DISTINCT family_id FROM tokens WHERE client = $1 AND ",
    oauth_client_pairs!()
);

/// The families minted from one of the families `$1` (their pairs'
/// `parent_family`).
pub const CHILD_FAMILIES: &str =
    "SELECT DISTINCT family_id FROM tokens WHERE parent_family = ANY($1)";

/// The live pairs of the families `$1`, locked in `id` order.
pub const LOCK_LIVE_PAIRS: &str = "SELECT id FROM tokens
  WHERE family_id = ANY($1)
    AND NOT (access_invalidated AND (refresh_hash IS NULL OR refresh_invalidated))
  ORDER BY id FOR UPDATE";

/// Invalidates every pair of the given families and of every family
/// derived from them, however deep.
///
/// Under `READ COMMITTED` (refresh and invalidation) the tree is looked
/// at, its live pairs are locked in `id` order, then invalidated, and the
/// tree is looked at again, until a look finds nothing live. A refresh
/// holds the row of the pair it refreshes until it commits, so the lock
/// waits for every refresh in flight in the tree; the next look, made of
/// new statements, sees the successors they committed. A family derived
/// meanwhile locked its parent pair the same way (`engine::issue`), so it
/// too is seen: either it committed before the lock on its parent was
/// granted (and the next look finds it), or it waits for this commit and
/// finds its parent dead. Under `SERIALIZABLE` (the other revocations) the
/// second look finds nothing; a refresh that committed after the
/// transaction's snapshot changed a row the lock then touches, and
/// PostgreSQL aborts the transaction for the store to run again.
///
/// The tree is walked generation by generation ([`CHILD_FAMILIES`]), each
/// step a lookup of `tokens_by_parent`, and its pairs are found through
/// `tokens_by_family` ([`LOCK_LIVE_PAIRS`]). One recursive statement did
/// both, but its plan depends on the table's statistics: on a table not
/// yet analysed (a new database under load, or one just restored or
/// upgraded) PostgreSQL planned it as sequential scans of every token,
/// JIT-compiled, per invalidation, and invalidations under load fell to a
/// few a second. Plain lookups by an indexed column are planned on the
/// index with or without statistics
/// (`revocation_statements_use_the_indexes_on_a_table_never_analysed`).
pub(crate) async fn revoke_tree(c: &impl GenericClient, families: &[String]) -> Result<(), Fail> {
    if families.is_empty() {
        return Ok(());
    }
    let lock = c.prepare_cached(LOCK_LIVE_PAIRS).await?;
    let invalidate = c
        .prepare_cached(&format!(
            "UPDATE tokens SET {INVALIDATE_SET} WHERE id = ANY($1)"
        ))
        .await?;
    loop {
        let tree = tree(c, families).await?;
        let ids: Vec<String> = c
            .query(&lock, &[&tree])
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            return Ok(());
        }
        c.execute(&invalidate, &[&ids]).await?;
    }
}

/// `roots` and every family derived from one of them, however deep, one
/// generation per statement.
async fn tree(c: &impl GenericClient, roots: &[String]) -> Result<Vec<String>, Fail> {
    let mut seen: HashSet<String> = roots.iter().cloned().collect();
    let mut tree: Vec<String> = seen.iter().cloned().collect();
    let mut generation = tree.clone();
    while !generation.is_empty() {
        let children = families(c, CHILD_FAMILIES, &generation).await?;
        generation = children
            .into_iter()
            .filter(|f| seen.insert(f.clone()))
            .collect();
        tree.extend(generation.iter().cloned());
    }
    Ok(tree)
}

async fn families(
    c: &impl GenericClient,
    sql: &str,
    value: &(dyn tokio_postgres::types::ToSql + Sync),
) -> Result<Vec<String>, Fail> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query(&stmt, &[value])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?)
}

/// Revokes every family minted by, or standing for, one of the API keys
/// `ids`, and everything derived from them.
pub(crate) async fn revoke_api_keys(c: &impl GenericClient, ids: &[String]) -> Result<(), Fail> {
    let found = families(
        c,
        "SELECT DISTINCT family_id FROM tokens WHERE api_key_id = ANY($1)",
        &ids,
    )
    .await?;
    revoke_tree(c, &found).await
}

/// Revokes every family the native user stands for or minted (with Basic
/// credentials or through one of its API keys), and everything derived
/// from them.
pub(crate) async fn revoke_user(c: &impl GenericClient, username: &str) -> Result<(), Fail> {
    let found = families(
        c,
        &format!(
            "SELECT DISTINCT family_id FROM tokens
              WHERE (username = $1 AND realm IN ('{native}', '{key}'))
                 OR (client_username = $1
                     AND (client::jsonb ->> 'realm') IN ('{native}', '{key}'))",
            native = NATIVE_REALM.name,
            key = API_KEY_REALM.name
        ),
        &username,
    )
    .await?;
    revoke_tree(c, &found).await
}

/// Revokes every family issued to the client stored as `client_column`,
/// and everything derived from them.
pub(crate) async fn revoke_client(c: &impl GenericClient, client_column: &str) -> Result<(), Fail> {
    let found = families(c, CLIENT_FAMILIES, &client_column).await?;
    revoke_tree(c, &found).await
}

/// Revokes everything derived from the given families (not the families
/// themselves).
pub(crate) async fn revoke_children(c: &impl GenericClient, of: &[String]) -> Result<(), Fail> {
    if of.is_empty() {
        return Ok(());
    }
    let found = families(c, CHILD_FAMILIES, &of).await?;
    revoke_tree(c, &found).await
}
