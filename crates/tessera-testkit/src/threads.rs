//! Plain threads racing each other against a server.

use std::thread::JoinHandle;

/// What every thread returned, in order; a thread that panicked fails the
/// test, naming `what` it was.
pub fn join_all<T>(handles: Vec<JoinHandle<T>>, what: &str) -> Vec<T> {
    handles
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|_| panic!("{what} panicked")))
        .collect()
}
