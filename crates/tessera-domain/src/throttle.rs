//! The rules that throttle password and client-secret guessing. Pure: the
//! current time is an argument, nothing here reads a clock or sleeps.
//!
//! - [`AccountLock`]: per account (realm + username, or OAuth client id),
//!   an escalating soft lock in the manner of Kanidm's. After
//!   [`LockPolicy::threshold`] consecutive failed verifications the
//!   account is locked for the first delay of the schedule; each further
//!   failure once that lock has ended locks it for the next delay (the last
//!   one repeats). A success, or a quiet period without failures, resets
//!   it. While locked, attempts are refused without a verification and
//!   neither count nor extend the lock. There is no permanent lock.
//! - [`SourceBudget`]: per source address, a token bucket of failed
//!   verifications (a burst, refilled at a steady rate). Failures are
//!   charged after the fact and may take the bucket into debt (down to
//!   minus the burst), so requests that were admitted concurrently still
//!   pay and the long-run rate never exceeds the refill rate.
//! - [`LogSampler`]: how many failure lines the security log writes per
//!   window before it only counts them.

use crate::Millis;

/// The soft lock's schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockPolicy {
    /// Consecutive failures before the first lock (at least 1).
    pub threshold: u32,
    /// The successive lock durations in ms; the last repeats. Not empty.
    pub schedule: Vec<Millis>,
    /// Without a failure for this long (ms), an account starts afresh.
    pub reset_after: Millis,
}

impl Default for LockPolicy {
    fn default() -> Self {
        Self {
            threshold: 5,
            schedule: vec![1_000, 3_000, 5_000, 10_000, 30_000, 60_000, 300_000],
            reset_after: 600_000,
        }
    }
}

impl LockPolicy {
    fn delay(&self, nth_lock: u32) -> Millis {
        let last = self.schedule.len().saturating_sub(1);
        self.schedule
            .get((nth_lock as usize).min(last))
            .copied()
            .unwrap_or(0)
    }
}

/// One account's recent failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountLock {
    /// Consecutive failures since the last reset.
    pub failures: u32,
    pub locked_until: Millis,
    pub last_failure: Millis,
}

/// Whether an attempt may go on to verify the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Refused unverified; answer exactly as a wrong password does.
    Locked {
        until: Millis,
    },
}

impl AccountLock {
    fn expired(&self, policy: &LockPolicy, now: Millis) -> bool {
        self.failures > 0
            && now >= self.locked_until
            && now.saturating_sub(self.last_failure) >= policy.reset_after
    }

    /// Whether an attempt at `now` is refused unverified.
    pub fn admit(&self, now: Millis) -> Admission {
        if now < self.locked_until {
            Admission::Locked {
                until: self.locked_until,
            }
        } else {
            Admission::Admitted
        }
    }

    /// Records a failed verification of an admitted attempt.
    pub fn fail(&mut self, policy: &LockPolicy, now: Millis) {
        if self.expired(policy, now) {
            *self = AccountLock::default();
        }
        if now < self.locked_until {
            // Admitted before a concurrent attempt locked it: counts, but
            // does not extend the lock.
            self.failures = self.failures.saturating_add(1);
            self.last_failure = now;
            return;
        }
        self.failures = self.failures.saturating_add(1);
        self.last_failure = now;
        if self.failures >= policy.threshold.max(1) {
            let nth = self.failures - policy.threshold.max(1);
            self.locked_until = now.saturating_add(policy.delay(nth));
        }
    }

    /// Whether nothing is left to remember: no lock in force and the
    /// quiet period has passed (or there never was a failure).
    pub fn is_idle(&self, policy: &LockPolicy, now: Millis) -> bool {
        self.failures == 0 || self.expired(policy, now)
    }
}

/// The per-source budget of failures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetPolicy {
    /// Failures a quiet source may make at once (at least 1).
    pub burst: f64,
    /// Failures per second the budget refills with (more than 0).
    pub per_second: f64,
}

impl Default for BudgetPolicy {
    fn default() -> Self {
        Self {
            burst: 100.0,
            per_second: 10.0,
        }
    }
}

/// One source's bucket. A new source starts full.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceBudget {
    tokens: f64,
    at: Millis,
    last_failure: Millis,
}

impl SourceBudget {
    pub fn full(policy: &BudgetPolicy, now: Millis) -> Self {
        Self {
            tokens: policy.burst,
            at: now,
            last_failure: Millis::MIN,
        }
    }

    fn refill(&mut self, policy: &BudgetPolicy, now: Millis) {
        if now > self.at {
            let gained = (now - self.at) as f64 / 1000.0 * policy.per_second;
            self.tokens = (self.tokens + gained).min(policy.burst);
            self.at = now;
        }
    }

    /// `Ok` if the source may attempt a verification now; otherwise the
    /// milliseconds until it may (at least 1).
    pub fn admit(&mut self, policy: &BudgetPolicy, now: Millis) -> Result<(), Millis> {
        self.refill(policy, now);
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            let missing = 1.0 - self.tokens;
            Err(((missing / policy.per_second * 1000.0).ceil() as Millis).max(1))
        }
    }

    /// Charges one failure (the bucket may go into debt, down to -burst).
    pub fn charge(&mut self, policy: &BudgetPolicy, now: Millis) {
        self.refill(policy, now);
        self.tokens = (self.tokens - 1.0).max(-policy.burst);
        self.last_failure = now;
    }

    /// Whether a failure was charged at or after `since`, however fast
    /// the budget refills.
    pub fn failed_since(&self, since: Millis) -> bool {
        self.last_failure >= since
    }

    /// When the bucket last changed.
    pub fn last_seen(&self) -> Millis {
        self.at
    }

    /// Full again: nothing to remember.
    pub fn is_idle(&self, policy: &BudgetPolicy, now: Millis) -> bool {
        let mut b = *self;
        b.refill(policy, now);
        b.tokens >= policy.burst
    }
}

/// Caps the security log's per-failure lines: at most `per_window` lines
/// per window of `window` ms; the rest are counted and reported in one
/// summary line when the next window begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSampler {
    pub window: Millis,
    pub per_window: u32,
    started: Millis,
    written: u32,
    suppressed: u64,
}

/// What to do with one failure's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogDecision {
    /// Write this event's own line.
    pub write: bool,
    /// Before it, write a summary: this many lines of the previous window
    /// were suppressed.
    pub suppressed_before: u64,
}

impl LogSampler {
    pub fn new(window: Millis, per_window: u32) -> Self {
        Self {
            window,
            per_window,
            started: Millis::MIN,
            written: 0,
            suppressed: 0,
        }
    }

    pub fn event(&mut self, now: Millis) -> LogDecision {
        let mut suppressed_before = 0;
        if now.saturating_sub(self.started) >= self.window {
            suppressed_before = std::mem::take(&mut self.suppressed);
            self.started = now;
            self.written = 0;
        }
        let write = self.written < self.per_window;
        if write {
            self.written += 1;
        } else {
            self.suppressed += 1;
        }
        LogDecision {
            write,
            suppressed_before,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail_n(lock: &mut AccountLock, p: &LockPolicy, n: u32, now: Millis) {
        for _ in 0..n {
            assert_eq!(lock.admit(now), Admission::Admitted);
            lock.fail(p, now);
        }
    }

    #[test]
    fn five_failures_lock_for_one_second_then_escalate() {
        let p = LockPolicy::default();
        let mut lock = AccountLock::default();
        fail_n(&mut lock, &p, 4, 0);
        assert_eq!(lock.admit(0), Admission::Admitted, "4 failures: no lock");
        lock.fail(&p, 0);
        assert_eq!(lock.admit(0), Admission::Locked { until: 1_000 });
        assert_eq!(lock.admit(999), Admission::Locked { until: 1_000 });
        // The lock ends by itself.
        assert_eq!(lock.admit(1_000), Admission::Admitted);
        // Each further failure locks for the next delay: 3 s, 5 s, 10 s …
        let mut now = 1_000;
        for expected in [3_000, 5_000, 10_000, 30_000, 60_000, 300_000, 300_000] {
            lock.fail(&p, now);
            assert_eq!(
                lock.admit(now),
                Admission::Locked {
                    until: now + expected
                }
            );
            now += expected;
            assert_eq!(lock.admit(now), Admission::Admitted);
        }
    }

    #[test]
    fn success_is_a_reset_and_so_is_a_quiet_period() {
        let p = LockPolicy::default();
        let mut lock = AccountLock::default();
        fail_n(&mut lock, &p, 5, 0);
        assert!(!lock.is_idle(&p, 1_000));
        // Quiet for reset_after: starts afresh, four failures allowed again.
        let later = p.reset_after;
        assert!(lock.is_idle(&p, later));
        fail_n(&mut lock, &p, 4, later);
        assert_eq!(lock.admit(later), Admission::Admitted);
        assert_eq!(lock.failures, 4);
    }

    #[test]
    fn failures_admitted_before_a_concurrent_lock_do_not_extend_it() {
        let p = LockPolicy::default();
        let mut lock = AccountLock::default();
        fail_n(&mut lock, &p, 5, 0);
        // Three more that had been admitted before the lock arrived.
        lock.fail(&p, 10);
        lock.fail(&p, 20);
        assert_eq!(lock.admit(500), Admission::Locked { until: 1_000 });
        assert_eq!(lock.admit(1_000), Admission::Admitted);
    }

    #[test]
    fn no_permanent_lock_even_after_very_many_failures() {
        let p = LockPolicy::default();
        let mut lock = AccountLock::default();
        let mut now = 0;
        for _ in 0..10_000 {
            match lock.admit(now) {
                Admission::Admitted => lock.fail(&p, now),
                Admission::Locked { until } => {
                    assert!(until - now <= 300_000, "never beyond the last delay");
                    now = until;
                }
            }
        }
        assert_eq!(lock.admit(now + 300_000), Admission::Admitted);
    }

    #[test]
    fn budget_bursts_then_refills_at_its_rate() {
        let p = BudgetPolicy {
            burst: 3.0,
            per_second: 2.0,
        };
        let mut b = SourceBudget::full(&p, 0);
        for _ in 0..3 {
            assert_eq!(b.admit(&p, 0), Ok(()));
            b.charge(&p, 0);
        }
        assert_eq!(b.admit(&p, 0), Err(500), "one failure back in 500 ms");
        assert!(matches!(b.admit(&p, 499), Err(1..=2)));
        assert_eq!(b.admit(&p, 500), Ok(()));
        b.charge(&p, 500);
        assert!(!b.is_idle(&p, 1_000));
        assert!(b.is_idle(&p, 2_000));
        assert!(b.failed_since(500) && !b.failed_since(501));
    }

    #[test]
    fn concurrent_admissions_still_pay_through_debt() {
        let p = BudgetPolicy {
            burst: 2.0,
            per_second: 1.0,
        };
        let mut b = SourceBudget::full(&p, 0);
        // Four admitted at once, all fail.
        for _ in 0..4 {
            b.charge(&p, 0);
        }
        // 2 - 4 = -2: the next admission waits 3 s.
        assert_eq!(b.admit(&p, 0), Err(3_000));
        // Debt is capped at -burst.
        for _ in 0..100 {
            b.charge(&p, 0);
        }
        assert_eq!(b.admit(&p, 0), Err(3_000));
    }

    #[test]
    fn log_sampler_writes_a_few_then_summarises() {
        let mut s = LogSampler::new(10_000, 2);
        let d: Vec<_> = (0..5).map(|i| s.event(i)).collect();
        assert_eq!(d.iter().filter(|d| d.write).count(), 2);
        let next = s.event(10_000);
        assert!(next.write);
        assert_eq!(next.suppressed_before, 3);
        assert_eq!(s.event(10_001).suppressed_before, 0);
    }
}
