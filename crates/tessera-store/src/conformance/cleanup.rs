//! The purge keeps pace with expiry: one pass of
//! [`purge_backlog`](crate::cleanup::purge_backlog) removes a backlog of any
//! size, however small its batches, and nothing that can still be used.

use tessera_domain::TokenRecord;

use super::{issue, subject, DynStore, T0};
use crate::cleanup::purge_backlog;

/// Records per batch in this case.
const BATCH: u32 = 20;

pub async fn a_backlog_is_purged_in_one_pass(store: DynStore) {
    // More than the ten batches a pass once stopped at.
    let expired = 10 * BATCH as usize + 7;
    let mut tasks = Vec::new();
    for i in 0..expired {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // A client_credentials pair: no refresh token, purgeable when
            // its access token expires.
            let s = subject(&format!("svc{}", i % 3));
            let (record, _) = TokenRecord::issue(&s, s.client_ref(), false, T0, 1_000);
            store.insert_token(&record).await.expect("insert");
        }));
    }
    for task in tasks {
        task.await.expect("the insert task");
    }
    // Pairs with a refresh token live for a day: they stay.
    let (_, kept) = issue(&store, "u", T0).await;
    issue(&store, "v", T0).await;
    assert_eq!(store.count_tokens().await.unwrap(), expired as u64 + 2);

    // Nothing has expired yet.
    let none = purge_backlog(store.as_ref(), T0 + 999, BATCH, || false, |_| {})
        .await
        .unwrap();
    assert_eq!((none.purged, none.batches), (0, 1));

    let mut sizes = Vec::new();
    let pass = purge_backlog(
        store.as_ref(),
        T0 + 1_000,
        BATCH,
        || false,
        |n| sizes.push(n),
    )
    .await
    .unwrap();
    assert_eq!(
        pass.purged, expired as u64,
        "one pass takes the whole backlog"
    );
    assert_eq!(pass.batches, 11, "ten full batches, then a short one");
    assert_eq!(sizes.iter().sum::<u64>(), pass.purged);
    assert!(sizes.iter().all(|&n| n <= u64::from(BATCH)), "{sizes:?}");
    assert_eq!(store.count_tokens().await.unwrap(), 2);
    assert!(store
        .find_by_access(&kept.access.hash())
        .await
        .unwrap()
        .is_some());

    // A pass told to stop ends after the batch in hand.
    for _ in 0..(2 * BATCH) {
        let s = subject("svc");
        let (record, _) = TokenRecord::issue(&s, s.client_ref(), false, T0, 1_000);
        store.insert_token(&record).await.unwrap();
    }
    let stopped = purge_backlog(store.as_ref(), T0 + 1_000, BATCH, || true, |_| {})
        .await
        .unwrap();
    assert_eq!((stopped.purged, stopped.batches), (u64::from(BATCH), 1));
}
