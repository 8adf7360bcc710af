//! A store's threads end with it: dropping the store waits for its
//! writer, syncer, checkpointer and lease threads. (Its own test binary,
//! so that no other test's store runs threads in this process.)

use tessera_store::Store;
use tessera_store_sqlite::SqliteStore;

/// The threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("Linux /proc")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

#[test]
fn dropping_a_store_joins_its_threads() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for serving in [false, true] {
        let path = dir.path().join(format!("db-{serving}.sqlite"));
        let store = if serving {
            SqliteStore::open_serving(&path)
        } else {
            SqliteStore::open(&path)
        }
        .unwrap();
        runtime.block_on(store.ping()).unwrap();
        // A thread names itself once it runs (Linux): on a loaded machine
        // that may come a moment after the store is open.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while threads_named("sqlite-") < 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            threads_named("sqlite-") >= 3,
            "writer, syncer, checkpointer"
        );
        drop(store);
        assert_eq!(threads_named("sqlite-"), 0, "serving: {serving}");
    }
}
