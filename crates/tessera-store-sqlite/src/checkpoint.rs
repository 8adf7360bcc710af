//! WAL checkpoints and restarts, off the commit path.
//!
//! The writer's connection never checkpoints (`wal_autocheckpoint = 0`,
//! see `schema`): every checkpoint runs on the checkpointer thread's own
//! connection, in `PASSIVE` mode, which never blocks the writer or readers.
//!
//! Copying the WAL back is not enough to keep it small: SQLite starts the
//! WAL over from its beginning only when a write transaction *begins*
//! while every frame is copied (and then only if no reader still uses an
//! old snapshot). Under a continuous stream of writes the writer always
//! begins its next transaction right after a commit, before any checkpoint
//! can have caught up with it, so the WAL would only grow. The two threads
//! therefore meet through the [`WalGate`]:
//!
//! 1. Once the WAL holds [`WalBounds::restart_at`] frames (the writer reads
//!    the count after each commit and wakes the checkpointer), the
//!    checkpointer copies it back (`PASSIVE`, the writer going on), then
//!    asks the writer to *hold*.
//! 2. The writer holds after its next commit: it begins no transaction and
//!    keeps new jobs aside. It commits only when the syncer is idle anyway,
//!    so the hold runs while the fsync of that commit is in flight.
//! 3. The checkpointer copies the few frames written since step 1 (a second
//!    `PASSIVE`, with its fsyncs of the WAL and then of the database file)
//!    and releases the writer. The writer's next transaction then begins
//!    on a fully copied WAL, and its commit writes from the WAL's start.
//!
//! If the fsync ends (jobs are waiting and could be committed) before the
//! checkpointer releases, the writer gives the attempt up and goes on: no
//! commit waits for the checkpoint, and the checkpointer tries again after
//! the next commit. Only if the WAL reaches [`WalBounds::hard`] frames
//! (the checkpointer never won the race, or cannot keep up) does the
//! writer hold until released: it then waits for a copy of the frames
//! written since the checkpointer's last pass, never of the whole WAL, and
//! the WAL file stays bounded. (Waiting after a few misses instead was
//! tried: on a loaded disk one such copy took a second.)
//!
//! Durability does not depend on any of this: a commit is durable once the
//! syncer has fsynced its frames in the WAL, and SQLite's checkpoint
//! fsyncs the database file before it marks frames copied, so the WAL is
//! written over only once what it held is durable in the database file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::Connection;
use tessera_store::{StoreError, StoreResult};

/// How often the checkpointer copies the WAL back when nothing wakes it
/// earlier. A page changed many times in between is copied once: with one
/// second instead of 100 ms the refresh benchmark ran about 14% faster.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// WAL sizes, in frames (a page and a 24-byte header each).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WalBounds {
    /// The WAL is started over once it holds this many frames.
    pub restart_at: u32,
    /// From this many frames on, the writer holds until it may restart.
    pub hard: u32,
}

impl Default for WalBounds {
    /// 32 MiB and 128 MiB with 4 KiB pages. A restart delays the jobs of
    /// one commit by about one fsync (the checkpointer must fsync the
    /// database file after the WAL before the writer may begin), so
    /// restarts are kept rare: at 32 MiB, a few per second under the
    /// heaviest benchmark load.
    fn default() -> Self {
        Self {
            restart_at: 8192,
            hard: 32_768,
        }
    }
}

/// What the writer and the checkpointer agreed on about the next restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing asked.
    Idle,
    /// The checkpointer asks the writer to hold after its next commit;
    /// `patient`: hold until released, whatever waits.
    Wanted { patient: bool },
    /// The writer holds: it began no transaction since its last commit.
    /// `id` tells one hold from the next.
    Held { patient: bool, id: u64 },
    /// The checkpointer copied what it could: the writer may go on.
    Released,
}

/// Counters of the WAL's life, for tests and logs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WalStats {
    /// Checkpoints run (all of them on the checkpointer's connection).
    pub checkpoints: u64,
    /// Times the WAL started over from its beginning.
    pub restarts: u64,
    /// Holds released before any job waited on them.
    pub holds: u64,
    /// Holds the writer gave up because jobs were ready to commit.
    pub given_up: u64,
    /// Holds the writer waited out with jobs waiting (at the hard bound).
    pub waited: u64,
    /// The most frames the WAL held after a commit.
    pub max_frames: u32,
}

struct Gate {
    phase: Phase,
    /// The checkpointer should run now (the WAL passed `restart_at`).
    poked: bool,
    /// The writer has stopped, or the checkpointer is stopping.
    stopped: bool,
    /// Frames in the WAL after the writer's last commit.
    frames: u32,
    /// The last hold's `id`.
    holds: u64,
    stats: WalStats,
}

impl Gate {
    fn hold(&mut self, patient: bool) {
        self.holds += 1;
        self.phase = Phase::Held {
            patient,
            id: self.holds,
        };
    }

    fn held(&self) -> Option<u64> {
        match self.phase {
            Phase::Held { id, .. } => Some(id),
            _ => None,
        }
    }
}

/// Where the writer and the checkpointer meet (see the module's
/// documentation).
pub(crate) struct WalGate {
    state: Mutex<Gate>,
    /// The checkpointer waits on it.
    changed: Condvar,
    bounds: WalBounds,
    /// Wakes the writer thread (set once the writer runs).
    wake_writer: Mutex<Option<Box<dyn Fn() + Send>>>,
}

impl WalGate {
    pub(crate) fn new(bounds: WalBounds) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(Gate {
                phase: Phase::Idle,
                poked: false,
                stopped: false,
                frames: 0,
                holds: 0,
                stats: WalStats::default(),
            }),
            changed: Condvar::new(),
            bounds,
            wake_writer: Mutex::new(None),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Gate> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake_writer(&self) {
        if let Some(wake) = &*self
            .wake_writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            wake();
        }
    }

    pub(crate) fn stats(&self) -> WalStats {
        self.lock().stats
    }

    // The writer's side.

    /// How the checkpointer wakes the writer thread.
    pub(crate) fn set_writer_waker(&self, wake: Box<dyn Fn() + Send>) {
        *self
            .wake_writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(wake);
    }

    /// The writer committed and the WAL now holds `frames` frames (if
    /// known). Whether the writer must hold now.
    pub(crate) fn after_commit(&self, frames: Option<u32>) -> bool {
        let mut gate = self.lock();
        if let Some(frames) = frames {
            if frames < gate.frames {
                gate.stats.restarts += 1;
            }
            gate.frames = frames;
            gate.stats.max_frames = gate.stats.max_frames.max(frames);
        }
        let hold = match gate.phase {
            Phase::Wanted { patient } => Some(patient),
            // The checkpointer is behind: wait for it rather than let the
            // WAL grow without bound.
            Phase::Idle if gate.frames >= self.bounds.hard => Some(true),
            _ => None,
        };
        if let Some(patient) = hold {
            gate.hold(patient);
        } else if gate.phase == Phase::Idle && gate.frames >= self.bounds.restart_at {
            gate.poked = true;
        } else {
            return false;
        }
        drop(gate);
        self.changed.notify_all();
        hold.is_some()
    }

    /// The writer has no open transaction: whether it holds now (asked to).
    pub(crate) fn hold_if_wanted(&self) -> bool {
        let mut gate = self.lock();
        let Phase::Wanted { patient } = gate.phase else {
            return false;
        };
        gate.hold(patient);
        drop(gate);
        self.changed.notify_all();
        true
    }

    /// The writer holds; `waiting`: jobs are set aside and the syncer is
    /// idle, so they would be committed now. Whether the writer may go on.
    pub(crate) fn may_go(&self, waiting: bool) -> bool {
        let mut gate = self.lock();
        match gate.phase {
            Phase::Released => {
                gate.phase = Phase::Idle;
                if waiting {
                    gate.stats.waited += 1;
                } else {
                    gate.stats.holds += 1;
                }
                true
            }
            Phase::Held { patient: false, .. } if waiting => {
                gate.phase = Phase::Idle;
                gate.stats.given_up += 1;
                true
            }
            Phase::Held { .. } if gate.stopped => {
                gate.phase = Phase::Idle;
                true
            }
            // Counted as waited when released.
            _ => false,
        }
    }

    /// The writer thread ends: the checkpointer must not wait for it.
    pub(crate) fn writer_stopped(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }

    // The checkpointer's side.

    /// Waits for a reason to checkpoint: `None` once stopped.
    fn wait(&self, timeout: Duration) -> Option<()> {
        let gate = self.lock();
        let (mut gate, _) = self
            .changed
            .wait_timeout_while(gate, timeout, |g| {
                !g.poked && !g.stopped && !matches!(g.phase, Phase::Held { .. })
            })
            .unwrap_or_else(PoisonError::into_inner);
        gate.poked = false;
        (!gate.stopped).then_some(())
    }

    /// Asks the writer to hold after its next commit and waits until it
    /// does (or a hold is already on): the hold's id, `None` if stopped.
    fn hold(&self, patient: bool) -> Option<u64> {
        let mut gate = self.lock();
        if gate.phase == Phase::Idle {
            gate.phase = Phase::Wanted { patient };
        }
        drop(gate);
        self.wake_writer();
        let gate = self.lock();
        let gate = self
            .changed
            .wait_while(gate, |g| {
                !g.stopped && matches!(g.phase, Phase::Wanted { .. })
            })
            .unwrap_or_else(PoisonError::into_inner);
        gate.held()
    }

    /// Lets the writer go on from hold `id`. Whether it was still holding
    /// (had not given the attempt up, nor begun another hold).
    fn release(&self, id: u64) -> bool {
        let mut gate = self.lock();
        let held = gate.held() == Some(id);
        if held {
            gate.phase = Phase::Released;
        }
        drop(gate);
        self.wake_writer();
        held
    }

    fn holding(&self) -> Option<u64> {
        self.lock().held()
    }

    fn counted_checkpoint(&self) {
        self.lock().stats.checkpoints += 1;
    }
}

/// Reads how many frames the WAL holds from the WAL-index header in the
/// `-shm` file (`mxFrame`, 4 bytes at offset 16 in native byte order: part
/// of SQLite's documented file format, which every process sharing a
/// database relies on). A hint for when to checkpoint; `None` if unreadable.
pub(crate) struct FrameCount {
    shm: PathBuf,
    file: Option<File>,
}

impl FrameCount {
    pub(crate) fn new(db: &Path) -> Self {
        let mut shm = db.as_os_str().to_owned();
        shm.push("-shm");
        Self {
            shm: shm.into(),
            file: None,
        }
    }

    pub(crate) fn frames(&mut self) -> Option<u32> {
        if self.file.is_none() {
            self.file = File::open(&self.shm).ok();
        }
        let mut bytes = [0u8; 4];
        self.file.as_ref()?.read_exact_at(&mut bytes, 16).ok()?;
        Some(u32::from_ne_bytes(bytes))
    }
}

/// The checkpointer thread, on its own connection. Dropping the handle
/// stops the thread and waits for it.
pub(crate) struct Checkpointer {
    gate: Arc<WalGate>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn spawn(path: &Path, gate: Arc<WalGate>) -> StoreResult<Self> {
        // `synchronous` stays at its default (`FULL`): a checkpoint fsyncs
        // the WAL before it copies and the database file before it marks
        // every frame copied, so the WAL is written over only once the
        // database file holds all of it durably.
        let conn = Connection::open(path).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let ours = Arc::clone(&gate);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpt".into())
            .spawn(move || run(&conn, &ours))
            .map_err(|e| StoreError::Internal(format!("spawning the checkpointer: {e}")))?;
        Ok(Self {
            gate,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        {
            let mut gate = self.gate.lock();
            gate.stopped = true;
            if matches!(gate.phase, Phase::Held { .. } | Phase::Wanted { .. }) {
                gate.phase = Phase::Released;
            }
        }
        self.gate.changed.notify_all();
        self.gate.wake_writer();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the SQLite checkpointer panicked");
            }
        }
    }
}

/// `PRAGMA wal_checkpoint(PASSIVE)`: the frames in the WAL and how many of
/// them are now copied into the database file.
fn passive(conn: &Connection, gate: &WalGate) -> Option<(i64, i64)> {
    gate.counted_checkpoint();
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    }) {
        Ok(counts) => Some(counts),
        Err(e) => {
            tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
            None
        }
    }
}

fn run(conn: &Connection, gate: &WalGate) {
    while gate.wait(CHECKPOINT_INTERVAL).is_some() {
        let copied = passive(conn, gate);
        // The writer stopped by itself at the hard bound, maybe during
        // that copy. It commits nothing while it holds: copy what it
        // committed (nothing to do if that was all), then release it.
        if let Some(id) = gate.holding() {
            passive(conn, gate);
            gate.release(id);
            tracing::debug!(stats = ?gate.stats(), "the WAL reached its hard bound");
            continue;
        }
        let Some((frames, _)) = copied else { continue };
        if frames < i64::from(gate.bounds.restart_at) {
            continue;
        }
        let Some(id) = gate.hold(false) else {
            continue;
        };
        let started = std::time::Instant::now();
        let all = passive(conn, gate).is_some_and(|(frames, done)| frames == done);
        let released = gate.release(id);
        let catch_up_us = started.elapsed().as_micros();
        tracing::debug!(released, copied_all = all, catch_up_us, stats = ?gate.stats(), "WAL restart attempt");
    }
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
