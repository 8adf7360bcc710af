//! Where the service's time comes from: the system clock, or, in tests, a
//! manual clock that only moves when told to (so no test sleeps to let
//! tokens expire).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tessera_domain::time::millis;
use tessera_domain::Millis;

/// A clock. Cloning shares it: advancing a manual clock moves every clone.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock that starts at the system's current time and then moves
    /// only through [`Clock::advance`].
    pub fn manual() -> Self {
        Self(Some(Arc::new(AtomicI64::new(system_now()))))
    }

    /// Moves a manual clock forward by `ms` milliseconds.
    ///
    /// # Panics
    /// On the system clock, which cannot be moved.
    pub fn advance(&self, ms: Millis) {
        self.0
            .as_ref()
            .expect("only a manual clock can be advanced")
            .fetch_add(ms, Ordering::SeqCst);
    }

    /// Milliseconds since the Unix epoch.
    pub fn now(&self) -> Millis {
        match &self.0 {
            None => system_now(),
            Some(manual) => manual.load(Ordering::SeqCst),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Clock::manual"
        } else {
            "Clock::system"
        })
    }
}

fn system_now() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(millis)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let clock = Clock::manual();
        let start = clock.now();
        let shared = clock.clone();
        assert_eq!(clock.now(), start);
        shared.advance(2_000);
        assert_eq!(clock.now(), start + 2_000);
        assert!(Clock::system().now() > 0);
    }
}
