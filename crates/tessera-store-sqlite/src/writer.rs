//! The single writer thread and its group commit, with the fsync
//! pipelined on a second thread.
//!
//! The writer takes every job that is waiting, runs each in its own
//! savepoint inside one transaction and commits. The connection runs with
//! `synchronous = NORMAL`, so `COMMIT` appends the transaction to the WAL
//! without waiting for the disk; the *syncer* thread then fsyncs the WAL
//! (one fsync covers every transaction committed before it) and only then
//! answers the jobs. Meanwhile the writer is already running the next
//! batch, so the disk's flush latency no longer bounds how many batches a
//! second can commit.
//!
//! Nothing is answered before it is durable. A read on another connection
//! may see a transaction between its commit and its fsync; so every read
//! waits, before it answers, until what it could have seen is durable (see
//! [`Durability`]). A crash in between loses only transactions nobody was
//! told about and nobody read.

use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{mpsc, Arc};

use rusqlite::Connection;
use tessera_store::{StoreError, StoreResult};
use tokio::sync::oneshot;

use crate::cache::{Affects, Coherence};

/// At most this many jobs share one transaction.
const MAX_BATCH: usize = 256;

/// A job runs inside the shared transaction and returns a continuation that
/// is told whether the transaction committed; only then does it answer.
/// A job given `Err` could not start (no transaction) and only answers.
type Job =
    Box<dyn FnOnce(Result<&Connection, &str>) -> Box<dyn FnOnce(Result<(), String>) + Send> + Send>;

/// Whether a job may change or remove existing rows (see `cache`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// Only inserts new rows (or touches nothing the read cache holds).
    Insert,
    /// May change or remove rows of the cached tables it names.
    Revoking(Affects),
}

impl WriteKind {
    fn affects(self) -> Affects {
        match self {
            WriteKind::Insert => Affects::NOTHING,
            WriteKind::Revoking(affects) => affects,
        }
    }
}

pub struct Writer {
    jobs: mpsc::Sender<(WriteKind, Job)>,
}

/// How far the WAL is durable, for reads to wait on.
#[derive(Default)]
pub struct Durability {
    /// The last batch whose commit may be visible to readers (set just
    /// before its `COMMIT`).
    visible: AtomicU64,
    /// The last batch known to be on disk.
    durable: AtomicU64,
    synced: tokio::sync::Notify,
}

impl Durability {
    /// What a read that ends now may have seen.
    pub fn visible_now(&self) -> u64 {
        self.visible.load(SeqCst)
    }

    /// Waits until batch `seen` is durable.
    pub async fn wait_for(&self, seen: u64) {
        loop {
            if self.durable.load(SeqCst) >= seen {
                return;
            }
            let synced = self.synced.notified();
            if self.durable.load(SeqCst) >= seen {
                return;
            }
            synced.await;
        }
    }
}

type Continuation = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A committed (or failed) batch on its way to the syncer.
struct Committed {
    seq: u64,
    continuations: Vec<Continuation>,
    outcome: Result<(), String>,
}

impl Writer {
    /// `wal` is the path of the database's WAL file, which the syncer fsyncs.
    pub fn spawn(
        conn: Connection,
        wal: PathBuf,
        coherence: Coherence,
        durability: Arc<Durability>,
    ) -> Self {
        let (jobs, rx) = mpsc::channel::<(WriteKind, Job)>();
        let (to_syncer, committed) = mpsc::channel::<Committed>();
        let synced = Arc::clone(&durability);
        std::thread::Builder::new()
            .name("tessera-sqlite-sync".into())
            .spawn(move || sync(wal, committed, &synced))
            .expect("spawning the syncer thread");
        std::thread::Builder::new()
            .name("tessera-sqlite-writer".into())
            .spawn(move || run(conn, coherence, rx, to_syncer, &durability))
            .expect("spawning the writer thread");
        Self { jobs }
    }

    /// Runs `f` in the writer's transaction; resolves after the commit.
    pub async fn run<T, F>(&self, kind: WriteKind, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |conn: Result<&Connection, &str>| {
            let result = match conn {
                Ok(conn) => in_savepoint(conn, f),
                Err(e) => Err(StoreError::Unavailable(format!(
                    "cannot begin a transaction: {e}"
                ))),
            };
            Box::new(move |committed: Result<(), String>| {
                let answer = match committed {
                    Ok(()) => result,
                    // The job's own effects were rolled back with everything else.
                    Err(e) => Err(StoreError::Unavailable(format!("commit failed: {e}"))),
                };
                let _ = tx.send(answer);
            })
        });
        self.jobs
            .send((kind, job))
            .map_err(|_| StoreError::Internal("the writer thread has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Internal("the writer thread dropped a job".into()))?
    }
}

/// Runs one job in a savepoint, so a job that fails (or panics) leaves no
/// partial effect in the shared transaction.
fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    conn.execute_batch("SAVEPOINT job")
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    let result = match catch_unwind(AssertUnwindSafe(|| f(conn))) {
        Ok(r) => r,
        Err(_) => Err(StoreError::Internal("a store operation panicked".into())),
    };
    let end = if result.is_ok() {
        "RELEASE job"
    } else {
        "ROLLBACK TO job; RELEASE job"
    };
    conn.execute_batch(end)
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    result
}

fn run(
    conn: Connection,
    coherence: Coherence,
    rx: mpsc::Receiver<(WriteKind, Job)>,
    to_syncer: mpsc::Sender<Committed>,
    durability: &Durability,
) {
    let mut seq = 0u64;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let affects = batch
            .iter()
            .fold(Affects::NOTHING, |all, (kind, _)| all.and(kind.affects()));
        let announced = if affects != Affects::NOTHING {
            match coherence.begin(affects) {
                Ok(announced) => Some(announced),
                Err(e) => {
                    let reason = e.to_string();
                    tracing::error!(error = %reason, "could not announce a write to the serving process");
                    for (_, job) in batch {
                        job(Err(&reason))(Ok(()));
                    }
                    continue;
                }
            }
        } else {
            None
        };
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let reason = e.to_string();
            tracing::error!(error = %reason, "could not begin a write transaction");
            if let Some(announced) = announced {
                let _ = announced.end();
            }
            for (_, job) in batch {
                // Answer without running: nothing was written.
                job(Err(&reason))(Ok(()));
            }
            continue;
        }
        let continuations: Vec<_> = batch.into_iter().map(|(_, job)| job(Ok(&conn))).collect();
        seq += 1;
        // From here on a reader may see this batch: reads wait for its fsync.
        durability.visible.store(seq, SeqCst);
        let mut outcome = conn.execute_batch("COMMIT").map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            tracing::error!(error = %e, "a write transaction failed to commit");
            e.to_string()
        });
        // The serving process's cache must see the write end before anyone
        // hears of the write. If it cannot confirm, the jobs fail (their
        // effects may be committed; every write here can be retried).
        if let Some(announced) = announced {
            if let Err(e) = announced.end() {
                outcome = outcome.and(Err(e.to_string()));
            }
        }
        let committed = Committed {
            seq,
            continuations,
            outcome,
        };
        if let Err(mpsc::SendError(lost)) = to_syncer.send(committed) {
            for deliver in lost.continuations {
                deliver(Err("the syncer thread has stopped".into()));
            }
        }
    }
}

/// Fsyncs the WAL for every batch committed meanwhile, then answers them.
fn sync(wal: PathBuf, committed: mpsc::Receiver<Committed>, durability: &Durability) {
    let mut file: Option<File> = None;
    while let Ok(first) = committed.recv() {
        let mut batches = vec![first];
        batches.extend(committed.try_iter());
        let synced = file
            .take()
            .map_or_else(|| File::open(&wal), Ok)
            .and_then(|f| f.sync_data().map(|()| f));
        let synced = match synced {
            Ok(f) => {
                file = Some(f);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "could not fsync the write-ahead log");
                Err(format!("could not make the commit durable: {e}"))
            }
        };
        if synced.is_ok() {
            let last = batches.iter().map(|b| b.seq).max().unwrap_or(0);
            durability.durable.fetch_max(last, SeqCst);
            durability.synced.notify_waiters();
        }
        for batch in batches {
            let outcome = batch.outcome.and(synced.clone());
            for deliver in batch.continuations {
                deliver(outcome.clone());
            }
        }
    }
}
