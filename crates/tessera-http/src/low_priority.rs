//! Suspect password verifications (from a source or for an account with
//! recent failures) run here: on a few threads of their own at the lowest
//! CPU priority (nice 19, on Linux per thread), so that while a guessing
//! flood keeps them busy, every other login still gets the cores first.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

type Job = Box<dyn FnOnce() + Send>;

pub struct LowPriority {
    jobs: Mutex<Option<Sender<Job>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl LowPriority {
    /// `threads` threads; dropping this lets them finish the jobs they
    /// hold and waits for them.
    pub fn new(threads: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("tessera-suspect-{i}"))
                .spawn(move || worker(&rx));
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start a low-priority verification thread")
                }
            }
        }
        Self {
            jobs: Mutex::new(Some(tx)),
            threads: handles,
        }
    }

    /// Runs `f` on a low-priority thread. `None` if it panicked.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if let Ok(out) = std::panic::catch_unwind(AssertUnwindSafe(f)) {
                let _ = tx.send(out);
            }
        });
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()?
            .send(job)
            .ok()?;
        rx.await.ok()
    }
}

impl Drop for LowPriority {
    fn drop(&mut self) {
        // Closing the channel ends each worker once the queue is empty.
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let me = std::thread::current().id();
        for thread in self.threads.drain(..) {
            // A worker cannot wait for itself (if the last owner of this
            // pool were dropped by one of its own jobs).
            if thread.thread().id() != me {
                let _ = thread.join();
            }
        }
    }
}

fn worker(jobs: &Mutex<Receiver<Job>>) {
    lower_this_threads_priority();
    loop {
        let job = match jobs.lock().unwrap_or_else(PoisonError::into_inner).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        job();
    }
}

#[cfg(target_os = "linux")]
fn lower_this_threads_priority() {
    // On Linux the nice value belongs to the thread (setpriority(2)).
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), 19) {
        tracing::warn!(error = %e, "cannot lower the priority of a low-priority verification thread");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_this_threads_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_survives_a_panic() {
        let pool = LowPriority::new(1);
        assert_eq!(pool.run(|| 6 * 7).await, Some(42));
        assert_eq!(pool.run(|| -> u8 { panic!("boom") }).await, None);
        assert_eq!(pool.run(|| "still here").await, Some("still here"));
    }
}
