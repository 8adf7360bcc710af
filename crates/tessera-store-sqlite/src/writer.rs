//! The single writer thread and its group commit.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;

use rusqlite::Connection;
use tessera_store::{StoreError, StoreResult};
use tokio::sync::oneshot;

use crate::cache::Coherence;

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
    Revoking,
}

pub struct Writer {
    jobs: mpsc::Sender<(WriteKind, Job)>,
}

impl Writer {
    pub fn spawn(conn: Connection, coherence: Coherence) -> Self {
        let (jobs, rx) = mpsc::channel::<(WriteKind, Job)>();
        std::thread::Builder::new()
            .name("tessera-sqlite-writer".into())
            .spawn(move || run(conn, coherence, rx))
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

fn run(conn: Connection, coherence: Coherence, rx: mpsc::Receiver<(WriteKind, Job)>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let revoking = batch.iter().any(|(kind, _)| *kind == WriteKind::Revoking);
        let announced = if revoking {
            match coherence.begin() {
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
        let committed = if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let reason = e.to_string();
            tracing::error!(error = %reason, "could not begin a write transaction");
            for (_, job) in batch {
                // Answer without running: nothing was written.
                job(Err(&reason))(Ok(()));
            }
            None
        } else {
            let continuations: Vec<_> = batch.into_iter().map(|(_, job)| job(Ok(&conn))).collect();
            let outcome = conn.execute_batch("COMMIT").map_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                tracing::error!(error = %e, "a write transaction failed to commit");
                e.to_string()
            });
            Some((continuations, outcome))
        };
        // The serving process's cache must see the write end before anyone
        // hears of the write. If it cannot confirm, the jobs fail (their
        // effects may be committed; every write here can be retried).
        let ended = announced.map_or(Ok(()), |a| a.end().map_err(|e| e.to_string()));
        if let Some((continuations, outcome)) = committed {
            let outcome = outcome.and(ended);
            for deliver in continuations {
                deliver(outcome.clone());
            }
        }
    }
}
