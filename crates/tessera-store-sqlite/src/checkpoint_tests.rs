//! The WAL under a continuous stream of writes.

use super::*;
use crate::cache::{Affects, Coherence};
use crate::writer::{Durability, Writer};

fn internal(e: rusqlite::Error) -> StoreError {
    StoreError::Internal(e.to_string())
}

/// Eight writers in closed loops, each write answered before the next
/// (so a commit holds at most eight jobs: with the B-tree's page splits,
/// at most about 50 frames, under [`COMMIT_FRAMES`]): the
/// writer's connection has its autocheckpoint off, every checkpoint runs
/// on the checkpointer's connection, the WAL starts over again and again,
/// and its file never grows past the hard bound plus one commit.
const COMMIT_FRAMES: u32 = 128;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_never_checkpoints_and_the_wal_stays_bounded() {
    const RESTARTS: u64 = 30;
    const MAX_WRITES_PER_TASK: i64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let conn = Connection::open(&path).unwrap();
    // The store's own settings for its writing connection.
    crate::schema::prepare_writer(&conn, crate::cache::Opener::Server).unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.execute_batch("CREATE TABLE blobs (n INTEGER PRIMARY KEY, b BLOB NOT NULL)")
        .unwrap();
    let page_size: u64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    let bounds = WalBounds {
        restart_at: 64,
        hard: 256,
    };
    let gate = WalGate::new(bounds);
    let writer = Arc::new(Writer::spawn(
        conn,
        &path,
        Coherence::Owner(crate::cache::new_cache()),
        Arc::new(Durability::default()),
        Arc::clone(&gate),
    ));
    let checkpointer = Checkpointer::spawn(&path, Arc::clone(&gate)).unwrap();

    let autocheckpoint: i64 = writer
        .run(Affects::NOTHING, |c| {
            c.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
                .map_err(internal)
        })
        .await
        .unwrap();
    assert_eq!(
        autocheckpoint, 0,
        "the writer's connection never checkpoints"
    );

    let tasks: Vec<_> = (0..8i64)
        .map(|t| {
            let (writer, gate) = (Arc::clone(&writer), Arc::clone(&gate));
            tokio::spawn(async move {
                let mut n = 0;
                while gate.stats().restarts < RESTARTS && n < MAX_WRITES_PER_TASK {
                    let key = t * 1_000_000 + n;
                    writer
                        .run(Affects::NOTHING, move |c| {
                            c.execute(
                                "INSERT INTO blobs (n, b) VALUES (?1, zeroblob(3000))",
                                [key],
                            )
                            .map_err(internal)?;
                            // A small table: the frames are the WAL's, not the file's growth.
                            c.execute("DELETE FROM blobs WHERE n = ?1", [key - 16])
                                .map_err(internal)
                        })
                        .await
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut writes = 0;
    for task in tasks {
        writes += task.await.unwrap();
    }
    let stats = gate.stats();
    // SQLite never shortens the WAL file while it is open (short of the
    // 64 MiB `journal_size_limit`), so its size is the most it ever held.
    let wal_bytes = std::fs::metadata(dir.path().join("c.db-wal"))
        .unwrap()
        .len();
    eprintln!("{writes} writes, WAL file {wal_bytes} bytes, {stats:?}");
    assert!(
        stats.restarts >= RESTARTS,
        "the WAL started over only {} times in {writes} writes: {stats:?}",
        stats.restarts
    );
    let frame = page_size + 24;
    let bound = 32 + u64::from(bounds.hard + COMMIT_FRAMES) * frame;
    assert!(
        wal_bytes <= bound,
        "WAL file {wal_bytes} bytes, over {bound}: {stats:?}"
    );
    assert!(
        stats.max_frames < bounds.hard + COMMIT_FRAMES,
        "{stats:?} against {bounds:?}"
    );
    assert!(stats.checkpoints >= stats.restarts, "{stats:?}");
    drop(writer);
    drop(checkpointer);
}
