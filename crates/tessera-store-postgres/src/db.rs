//! The connection pool, the retry loop every operation runs in, and the
//! mapping of driver errors onto [`StoreError`].

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{
    Client, ClientWrapper, Hook, HookError, Manager, ManagerConfig, Object, Pool, PoolError,
    RecyclingMethod, Runtime, Transaction,
};
use tessera_store::{StoreError, StoreResult};
use tokio_postgres::config::Host;
use tokio_postgres::IsolationLevel;

use crate::cache::Grace;
use crate::epoch::Bumped;
use crate::shared::{GiveUp, Shared, SharedLease};

use crate::{tls, PostgresConfig};

/// How many times one operation is tried when the database reports a
/// serialization failure or a deadlock.
const MAX_ATTEMPTS: u32 = 10;
/// How many times an operation that is safe to repeat is tried again on a
/// fresh connection after the one it was given turned out to be dead.
const MAX_STALE_RETRIES: u32 = 2;
const BACKOFF_FIRST: Duration = Duration::from_millis(4);
const BACKOFF_MAX: Duration = Duration::from_millis(250);

/// Why one attempt of an operation stopped.
#[derive(Debug)]
pub(crate) enum Fail {
    /// The driver or the database reported an error; [`classify`] decides
    /// what it means.
    Db(tokio_postgres::Error),
    /// The connection was found dead before this attempt had sent anything
    /// that could have taken effect (a `BEGIN`, a read outside a
    /// transaction, a conditional write it saw match nothing), so the
    /// attempt may run again on another connection.
    Stale(tokio_postgres::Error),
    /// A final answer that is not a database problem.
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Db(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

/// Whether an operation may simply run again after its connection died
/// under it. Reads may run again; a write may not, because its statement
/// might have committed before the connection was lost. A write that may
/// take something back is neither: it goes through [`Db::revoking`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// A read.
    Safe,
    /// A write that only adds rows or removes what can no longer be used,
    /// or whose caller waits the grace itself when it took something back
    /// (`Store::refresh`).
    Adds,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Serialization failure or deadlock: the transaction was rolled back
    /// and can run again from the start.
    Conflict,
    /// The database is unreachable, shutting down, overloaded or too slow.
    Unavailable,
    /// Everything else.
    Internal,
}

fn classify(e: &tokio_postgres::Error) -> Class {
    if let Some(state) = e.code() {
        let code = state.code();
        return match code {
            // serialization_failure, deadlock_detected
            "40001" | "40P01" => Class::Conflict,
            // statement_completion_unknown (CockroachDB: an ambiguous
            // commit), query_canceled (our statement_timeout),
            // lock_not_available, read_only_sql_transaction (a standby
            // after a failover), admin/crash shutdown, cannot_connect_now,
            // idle_in_transaction_session_timeout
            "40003" | "57014" | "55P03" | "25006" | "57P01" | "57P02" | "57P03" | "25P03" => {
                Class::Unavailable
            }
            // connection_exception, insufficient_resources (too many
            // connections, disk full), system_error (I/O)
            _ if code.starts_with("08") || code.starts_with("53") || code.starts_with("58") => {
                Class::Unavailable
            }
            _ => Class::Internal,
        };
    }
    if e.is_closed() || is_io(e) {
        Class::Unavailable
    } else {
        Class::Internal
    }
}

fn is_io(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// A connection-level failure: the connection cannot be used again.
fn is_connection_lost(e: &tokio_postgres::Error) -> bool {
    e.code().is_none() && (e.is_closed() || is_io(e))
}

/// A description of an error for logs and [`StoreError`] details. For
/// database errors it keeps the SQLSTATE and the message and leaves out
/// DETAIL, which can quote row values. Other errors carry their causes
/// ("error connecting to server: Connection refused (os error 111)").
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        }
    }
}

fn pool_error(op: &str, e: PoolError) -> StoreError {
    match e {
        PoolError::Timeout(kind) => StoreError::Unavailable(format!(
            "{op}: no database connection became available in time ({kind:?})"
        )),
        PoolError::Backend(e) => StoreError::Unavailable(format!(
            "{op}: cannot connect to the database: {}",
            describe(&e)
        )),
        PoolError::Closed => {
            StoreError::Unavailable(format!("{op}: the connection pool is closed"))
        }
        PoolError::NoRuntimeSpecified => {
            StoreError::Internal(format!("{op}: the connection pool has no runtime"))
        }
        PoolError::PostCreateHook(e) => {
            StoreError::Unavailable(format!("{op}: a new connection was refused: {e}"))
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_FIRST
        .saturating_mul(1 << attempt.min(8))
        .min(BACKOFF_MAX);
    // A random point in the upper half keeps racing retries apart.
    let half = exp / 2;
    half + half.mul_f64(rand::random::<f64>())
}

pub(crate) struct Db {
    pool: Pool,
    /// The client-side limit on one attempt, so that a connection that
    /// stops answering (a network partition that the server's own
    /// statement_timeout cannot see) is given up on.
    attempt_timeout: Duration,
    /// The wait of every [`Db::revoking`] write after its commit.
    pub(crate) grace: Grace,
    /// `sslmode` and the rest, for messages about TLS failures.
    pub(crate) tls: tls::Settings,
    /// The servers' `host:port`s, for messages (never the password).
    pub(crate) target: String,
    /// The connections single statements share (`shared.rs`).
    shared: Shared,
}

impl Db {
    /// The pool's state, for the metrics.
    pub(crate) fn pool_status(&self) -> tessera_store::PoolStatus {
        let s = self.pool.status();
        tessera_store::PoolStatus {
            max_size: s.max_size,
            size: s.size,
            idle: s.available,
            shared: self.shared.open(),
            waiting: s.waiting,
            cache_hits: 0,
            cache_misses: 0,
            cache_extended_hits: 0,
            grace_waits: self.grace.waits(),
        }
    }

    pub(crate) fn new(config: &PostgresConfig) -> StoreResult<Self> {
        let (url, tls) = tls::split(&config.url, config.ca_file.as_deref())?;
        let mut pg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Internal(format!("the PostgreSQL URL is not valid: {e}")))?;
        pg.ssl_mode(tls.mode.driver());
        let connector = tls::connector(&tls)?;
        let target = target(&pg);
        let statement_ms = config.statement_timeout.as_millis().max(1);
        // A session stuck inside a transaction (its client vanished) would
        // hold row locks that refreshes wait on; the server ends it.
        let idle_ms = (statement_ms * 4).max(10_000);
        let ours = format!(
            "-c statement_timeout={statement_ms} -c idle_in_transaction_session_timeout={idle_ms}"
        );
        let options = match pg.get_options() {
            Some(given) if !given.trim().is_empty() => format!("{given} {ours}"),
            _ => ours,
        };
        pg.options(options);
        pg.connect_timeout(config.connect_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("tessera");
        }
        let manager = Manager::from_config(
            pg,
            connector,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.acquire_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .post_create({
                let limit = config.connect_timeout;
                Hook::async_fn(move |client, _| Box::pin(plan_for_point_lookups(client, limit)))
            })
            .build()
            .map_err(|e| StoreError::Internal(format!("building the connection pool: {e}")))?;
        Ok(Self {
            pool,
            attempt_timeout: config
                .statement_timeout
                .saturating_mul(2)
                .max(Duration::from_secs(1)),
            grace: Grace::new(config.cache_ttl),
            tls,
            target,
            shared: Shared::for_pool(config.pool_size.max(1)),
        })
    }

    /// Opens a first connection, at start. A TLS failure there is a
    /// mistake in the configuration (no TLS on a server where the mode
    /// demands it, a certificate that does not verify), reported at once
    /// as [`StoreError::Internal`], naming the servers and the cause,
    /// rather than waited out as an unreachable database would be.
    pub(crate) async fn first_connection(&self) -> StoreResult<()> {
        match self.pool.get().await {
            Ok(_) => Ok(()),
            Err(PoolError::Backend(e)) => match tls::failure(&e, &self.tls) {
                Some(why) => Err(StoreError::Internal(format!(
                    "TLS to PostgreSQL at {}: {why}",
                    self.target
                ))),
                None => Err(self.pool_error("connect", PoolError::Backend(e))),
            },
            Err(e) => Err(self.pool_error("connect", e)),
        }
    }

    /// [`pool_error`], saying when TLS is why no connection was opened.
    fn pool_error(&self, op: &str, e: PoolError) -> StoreError {
        match e {
            PoolError::Backend(e) => match tls::failure(&e, &self.tls) {
                Some(why) => StoreError::Unavailable(format!(
                    "{op}: TLS to PostgreSQL at {}: {why}",
                    self.target
                )),
                None => pool_error(op, PoolError::Backend(e)),
            },
            e => pool_error(op, e),
        }
    }

    /// Runs `f` on a pooled connection until it gives a final answer.
    ///
    /// `f` is one whole attempt: it is handed a connection, opens its own
    /// transaction (if any), commits it, and hands the lease back with its
    /// result. Built with `attempt!`, it gets a connection of its own (a
    /// [`Lease`]); built with `shared_attempt!`, for an operation whose
    /// every statement stands alone (autocommit, nothing left in the
    /// session), one that other callers use at the same time (a
    /// [`SharedLease`], `shared.rs`). An attempt that ends in a
    /// serialization failure or a deadlock was rolled back by the
    /// database, so it runs again from the start with backoff; because it
    /// re-reads everything it decides on, repeating it can never apply a
    /// change twice.
    pub(crate) async fn run<L: Lent, T, F, Fut>(
        &self,
        op: &'static str,
        repeat: Repeat,
        f: F,
    ) -> StoreResult<T>
    where
        F: FnMut(L) -> Fut,
        Fut: Future<Output = (L, Result<T, Fail>)>,
    {
        self.attempts(op, repeat == Repeat::Safe, f).await
    }

    /// Runs a write that may change or remove a row some node has cached,
    /// like [`Db::run`]. Each attempt must add to the revocation epoch in
    /// its transaction ([`crate::epoch::bump`], the only way to make its
    /// answer), and the write answers, whatever its outcome, only after
    /// the grace: this is the one place revoking writes wait, so a new one
    /// cannot forget to.
    pub(crate) async fn revoking<T, F, Fut>(&self, op: &'static str, f: F) -> StoreResult<T>
    where
        F: FnMut(Lease) -> Fut,
        Fut: Future<Output = (Lease, Result<Bumped<T>, Fail>)>,
    {
        let outcome = self.attempts(op, false, f).await;
        self.grace.after_commit().await;
        outcome.map(Bumped::into_inner)
    }

    /// A clone of the pool and the limit on one attempt (for the epoch
    /// poller).
    pub(crate) fn pool(&self) -> (Pool, Duration) {
        (self.pool.clone(), self.attempt_timeout)
    }

    async fn attempts<L: Lent, T, F, Fut>(
        &self,
        op: &'static str,
        safe_to_retry: bool,
        mut f: F,
    ) -> StoreResult<T>
    where
        F: FnMut(L) -> Fut,
        Fut: Future<Output = (L, Result<T, Fail>)>,
    {
        let mut conflicts = 0;
        let mut stale = 0;
        loop {
            let lent = L::lend(self).await.map_err(|e| self.pool_error(op, e))?;
            // If the attempt does not finish in time, its connection is
            // given up: it may be half-way through anything, or hung.
            let give_up = lent.on_timeout();
            let Ok((lease, outcome)) = tokio::time::timeout(self.attempt_timeout, f(lent)).await
            else {
                give_up.now();
                return Err(StoreError::Unavailable(format!(
                    "{op}: the database did not answer within {:?}",
                    self.attempt_timeout
                )));
            };
            let (e, safe_to_repeat) = match outcome {
                Ok(value) => {
                    lease.release();
                    return Ok(value);
                }
                Err(Fail::Store(e)) => {
                    lease.release();
                    return Err(e);
                }
                Err(Fail::Db(e)) => (e, safe_to_retry),
                Err(Fail::Stale(e)) => (e, true),
            };
            match classify(&e) {
                Class::Conflict => {
                    lease.release();
                    conflicts += 1;
                    if conflicts >= MAX_ATTEMPTS {
                        tracing::warn!(
                            op,
                            attempts = conflicts,
                            "giving up after repeated transaction conflicts"
                        );
                        return Err(StoreError::Unavailable(format!(
                            "{op}: still conflicting after {conflicts} attempts: {}",
                            describe(&e)
                        )));
                    }
                    tracing::debug!(op, attempt = conflicts, error = %describe(&e), "transaction conflict, retrying");
                    tokio::time::sleep(backoff(conflicts)).await;
                }
                Class::Unavailable if is_connection_lost(&e) => {
                    lease.give_up();
                    stale += 1;
                    if !safe_to_repeat || stale > MAX_STALE_RETRIES {
                        return Err(StoreError::Unavailable(format!("{op}: {}", describe(&e))));
                    }
                    tracing::debug!(op, "a pooled connection was dead, retrying on a new one");
                }
                Class::Unavailable => {
                    lease.release();
                    return Err(StoreError::Unavailable(format!("{op}: {}", describe(&e))));
                }
                Class::Internal => {
                    lease.release();
                    // The caller logs it, once, with the request it failed.
                    return Err(StoreError::Internal(format!("{op}: {}", describe(&e))));
                }
            }
        }
    }
}

/// What every new session is told before its first statement: the
/// store's statements are point lookups and small writes, so a plan that
/// starts parallel workers or compiles itself (JIT) only adds milliseconds
/// to a lookup of a few microseconds. PostgreSQL chooses both from its
/// estimates, and a large table without statistics yet (a new, restored
/// or bulk-loaded database) makes them: a refresh's read was planned
/// with a parallel worker on fresh sessions and took 4–12 ms instead of
/// 0.1 (docs/benchmarks.md).
const POINT_LOOKUPS: &str = "SET max_parallel_workers_per_gather = 0; SET jit = off";

/// Sends [`POINT_LOOKUPS`] on a new connection, within `limit` (the
/// connect timeout, which the pool applies to the connect alone). An
/// engine that knows neither setting (CockroachDB) refuses it, which
/// changes nothing there; only a lost or silent connection fails the new
/// connection.
async fn plan_for_point_lookups(
    client: &mut ClientWrapper,
    limit: Duration,
) -> Result<(), HookError> {
    let Ok(sent) = tokio::time::timeout(limit, client.batch_execute(POINT_LOOKUPS)).await else {
        return Err(HookError::Message(
            format!("the new connection did not answer within {limit:?}").into(),
        ));
    };
    match sent {
        Ok(()) => Ok(()),
        Err(e) if is_connection_lost(&e) => Err(HookError::Backend(e)),
        Err(e) => {
            tracing::debug!(error = %describe(&e), "the database keeps its own plan settings");
            Ok(())
        }
    }
}

/// The `host:port` of every server `pg` names, comma-separated.
fn target(pg: &tokio_postgres::Config) -> String {
    let ports = pg.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let hosts: Vec<String> = if pg.get_hosts().is_empty() {
        pg.get_hostaddrs()
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{a}:{}", port(i)))
            .collect()
    } else {
        pg.get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| match h {
                Host::Tcp(name) => format!("{name}:{}", port(i)),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect()
    };
    if hosts.is_empty() {
        "localhost:5432".to_owned()
    } else {
        hosts.join(", ")
    }
}

/// A connection lent to one attempt.
pub(crate) trait Lent: Sized {
    async fn lend(db: &Db) -> Result<Self, PoolError>;
    /// Lets it serve the next attempt or caller.
    fn release(self);
    /// It was found dead: it serves nobody again.
    fn give_up(self);
    /// What gives it up if the attempt holding it is dropped for taking
    /// too long.
    fn on_timeout(&self) -> GiveUp;
}

/// A pooled connection lent to one attempt alone. Dropping it discards the
/// connection (the attempt may have left it half-way through a
/// transaction); [`Lent::release`] returns it to the pool.
pub(crate) struct Lease(Option<Client>);

impl Lent for Lease {
    async fn lend(db: &Db) -> Result<Self, PoolError> {
        Ok(Lease(Some(db.pool.get().await?)))
    }

    fn release(mut self) {
        // Dropping the pool object puts it back into the pool.
        drop(self.0.take());
    }

    fn give_up(self) {
        // Dropped without `release`: discarded.
    }

    fn on_timeout(&self) -> GiveUp {
        // The attempt's future owns the lease; dropping it discards the
        // connection.
        GiveUp(None)
    }
}

impl Lent for SharedLease {
    async fn lend(db: &Db) -> Result<Self, PoolError> {
        db.shared.lend(&db.pool).await
    }

    fn release(self) {}

    fn give_up(self) {
        SharedLease::give_up(&self);
    }

    fn on_timeout(&self) -> GiveUp {
        SharedLease::on_timeout(self)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(Object::take(client));
        }
    }
}

impl std::ops::Deref for Lease {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.0
            .as_ref()
            .expect("a lease holds its connection until dropped")
    }
}

impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Client {
        self.0
            .as_mut()
            .expect("a lease holds its connection until dropped")
    }
}

/// Builds the closure that [`Db::run`] calls for each attempt from an
/// expression using `$c: &mut Client` (it may `.await` and use `?`).
macro_rules! attempt {
    (|$c:ident| $body:expr) => {
        move |mut lease: $crate::db::Lease| async move {
            let result = async {
                let $c: &mut ::deadpool_postgres::Client = &mut lease;
                $body
            }
            .await;
            (lease, result)
        }
    };
}

/// Builds the closure that [`Db::run`] calls for each attempt from
/// an expression using `$c: &Client`, a connection other callers use at
/// the same time: every statement must stand alone (`shared.rs`).
macro_rules! shared_attempt {
    (|$c:ident| $body:expr) => {
        move |lease: $crate::shared::SharedLease| async move {
            let result = async {
                let $c: &::deadpool_postgres::Client = &lease;
                $body
            }
            .await;
            (lease, result)
        }
    };
}

impl Db {
    /// The row, if any, that `sql` (`$1` the `key`) selects, turned into
    /// a record by `read`: a single read, safe to repeat.
    pub(crate) async fn read_one<T>(
        &self,
        op: &'static str,
        sql: &str,
        key: &str,
        read: fn(&tokio_postgres::Row) -> Result<T, Fail>,
    ) -> StoreResult<Option<T>> {
        self.run(
            op,
            Repeat::Safe,
            attempt!(|c| {
                let stmt = c.prepare_cached(sql).await?;
                c.query_opt(&stmt, &[&key])
                    .await?
                    .as_ref()
                    .map(read)
                    .transpose()
            }),
        )
        .await
    }
}

/// Starts a transaction. A dead connection found here is reported as
/// [`Fail::Stale`]: nothing has been sent that could have taken effect.
pub(crate) async fn begin(
    client: &mut Client,
    isolation: IsolationLevel,
) -> Result<Transaction<'_>, Fail> {
    client
        .build_transaction()
        .isolation_level(isolation)
        .start()
        .await
        .map_err(changed_nothing)
}

/// The failure of a statement that cannot have changed anything (`BEGIN`,
/// a read outside a transaction): a dead connection found there is
/// [`Fail::Stale`], so even an attempt that writes afterwards may run
/// again on another connection.
pub(crate) fn changed_nothing(e: tokio_postgres::Error) -> Fail {
    if is_connection_lost(&e) {
        Fail::Stale(e)
    } else {
        Fail::Db(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_names_every_host_and_port_but_no_password() {
        let target_of = |url: &str| target(&url.parse().unwrap());
        assert_eq!(
            target_of("postgres://u:pw@h1:5432,h2:5433/db?target_session_attrs=read-write"),
            "h1:5432, h2:5433"
        );
        assert_eq!(target_of("postgres://u:pw@db/t"), "db:5432");
    }

    #[test]
    fn backoff_is_bounded_and_grows() {
        for attempt in 1..=MAX_ATTEMPTS {
            let d = backoff(attempt);
            assert!(d <= BACKOFF_MAX, "{d:?}");
            assert!(
                d >= BACKOFF_FIRST
                    .saturating_mul(1 << attempt.min(8))
                    .min(BACKOFF_MAX)
                    / 2
            );
        }
    }
}
