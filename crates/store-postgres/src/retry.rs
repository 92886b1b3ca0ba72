//! Retrying transient failures: exponential backoff with full jitter (each sleep is
//! uniform in `[0, min(max_backoff, initial · 2^attempt)]`), bounded by a deadline.
//! Only `StoreError::Unavailable` is retried; conflicts and backend errors are
//! answers, not weather. Whether an operation is safe to repeat is the caller's
//! business (see `append` for the one write that needs care).

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use sealgate_store::StoreError;
use tokio::time::Instant;
use tracing::debug;

/// How long and how often to retry transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Upper bound of the first sleep.
    pub initial_backoff: Duration,
    /// Upper bound of any one sleep.
    pub max_backoff: Duration,
    /// Give up when the next sleep would end after this much time since the first try.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(500),
            deadline: Duration::from_secs(3),
        }
    }
}

impl RetryPolicy {
    /// No retries: the first error is final.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            deadline: Duration::ZERO,
            ..RetryPolicy::default()
        }
    }

    /// The longest sleep allowed before retry number `attempt` (0-based).
    fn cap(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// Runs `op` until it succeeds, fails with a non-transient error, or the deadline
    /// would pass; then returns its last result. `op` gets the attempt number (0-based).
    pub async fn run<T, F, Fut>(&self, what: &'static str, mut op: F) -> Result<T, StoreError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let give_up_at = Instant::now() + self.deadline;
        let mut attempt = 0u32;
        loop {
            let err = match op(attempt).await {
                Err(err @ StoreError::Unavailable(_)) => err,
                done => return done,
            };
            let cap = self.cap(attempt);
            let sleep = Duration::from_micros(
                rand::thread_rng().gen_range(0..=cap.as_micros().min(u64::MAX as u128) as u64),
            );
            if Instant::now() + sleep >= give_up_at {
                return Err(err);
            }
            debug!(what, attempt, error = %err, backoff_us = sleep.as_micros() as u64, "retrying transient store error");
            tokio::time::sleep(sleep).await;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let out = RetryPolicy::default()
            .run("test", |_| async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(StoreError::Unavailable("down".into())),
                    n => Ok(n),
                }
            })
            .await;
        assert_eq!(out.expect("third try works"), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn other_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = RetryPolicy::default()
            .run("test", |_| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(StoreError::Conflict("dup".into()))
            })
            .await;
        assert!(matches!(out, Err(StoreError::Conflict(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_the_deadline() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            deadline: Duration::from_secs(1),
        };
        let start = Instant::now();
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = policy
            .run("test", |_| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(StoreError::Unavailable("down".into()))
            })
            .await;
        assert!(matches!(out, Err(StoreError::Unavailable(_))));
        assert!(start.elapsed() <= Duration::from_secs(1));
        assert!(calls.load(Ordering::SeqCst) > 3);
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_policy_tries_once() {
        let calls = AtomicU32::new(0);
        let _: Result<(), _> = RetryPolicy::none()
            .run("test", |_| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(StoreError::Unavailable("down".into()))
            })
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn backoff_cap_doubles_up_to_the_maximum() {
        let p = RetryPolicy::default();
        assert_eq!(p.cap(0), Duration::from_millis(10));
        assert_eq!(p.cap(3), Duration::from_millis(80));
        assert_eq!(p.cap(10), Duration::from_millis(500));
        assert_eq!(p.cap(200), Duration::from_millis(500));
    }
}
