//! A circuit breaker around the store.
//!
//! The backend already retries transient failures within a deadline; when the store
//! keeps failing anyway (the database is down), every request would otherwise wait out
//! that deadline before failing. After `threshold` consecutive `Unavailable` answers the
//! breaker opens: every store call fails at once with `Unavailable` (a 503, so nothing
//! is approved) without touching the database. After `cooldown` it half-opens: the next
//! call first probes the store with one `Store::ping` (no retries, at most
//! `PROBE_TIMEOUT`) while other calls keep failing fast; an answer closes the breaker
//! and lets the call through, another `Unavailable` opens it again at once. Probing
//! with a user's call instead would hold the breaker half-open for that call's whole
//! retry budget, longer than the cooldown itself.
//! Any answer other than `Unavailable` (found, not found, conflict) counts as the
//! database being there.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use sealgate_store::{
    ActiveVersion, ApiKey, AppendOutcome, AuditQuery, AuditRow, NewApiKey, NewCheckpoint, NewEntry,
    NewPolicy, NodeId, PolicySummary, Revocation, SealRecord, Store, StoreError, StoredCheckpoint,
    StoredEntry, StoredPolicy,
};
use tokio::time::Instant;
use tracing::{info, warn};

/// Most time a half-open breaker's probe may take before it counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What /readyz shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast.
    Open,
    /// One probe call goes through; the others fail fast until it answers.
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
enum Phase {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// The breaker's state machine, shared by the store wrapper and /readyz.
#[derive(Debug)]
pub struct Circuit {
    threshold: u32,
    cooldown: Duration,
    phase: Mutex<Phase>,
}

/// How a call was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Normal,
    Probe,
}

/// Resets a half-open breaker's probe slot if the probe is dropped unanswered.
struct ProbeGuard<'a> {
    circuit: &'a Circuit,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut phase = self.circuit.lock();
            if matches!(*phase, Phase::HalfOpen { probing: true }) {
                *phase = Phase::HalfOpen { probing: false };
            }
        }
    }
}

impl Circuit {
    /// Opens after `threshold` consecutive failures; half-opens `cooldown` later.
    pub fn new(threshold: u32, cooldown: Duration) -> Circuit {
        Circuit {
            threshold: threshold.max(1),
            cooldown,
            phase: Mutex::new(Phase::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Phase> {
        // A panic while holding this lock cannot leave the phase half-written (every
        // update is one assignment), so a poisoned lock is still good.
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state now (an open breaker whose cooldown passed reports half-open).
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { until } if Instant::now() < until => BreakerState::Open,
            Phase::Open { .. } | Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn admit(&self) -> Result<Pass, StoreError> {
        let mut phase = self.lock();
        match *phase {
            Phase::Closed { .. } => Ok(Pass::Normal),
            Phase::Open { until } if Instant::now() < until => Err(open_error()),
            Phase::Open { .. } | Phase::HalfOpen { probing: false } => {
                *phase = Phase::HalfOpen { probing: true };
                Ok(Pass::Probe)
            }
            Phase::HalfOpen { probing: true } => Err(open_error()),
        }
    }

    fn record(&self, pass: Pass, failed: bool) {
        let mut phase = self.lock();
        match (&mut *phase, failed) {
            (Phase::Closed { failures }, false) => *failures = 0,
            (Phase::Closed { failures }, true) => {
                *failures += 1;
                if *failures >= self.threshold {
                    warn!(
                        failures = *failures,
                        cooldown_ms = self.cooldown.as_millis() as u64,
                        "store circuit breaker opened: failing fast"
                    );
                    *phase = Phase::Open {
                        until: Instant::now() + self.cooldown,
                    };
                }
            }
            (Phase::HalfOpen { .. }, false) if pass == Pass::Probe => {
                info!("store circuit breaker closed: the store answers again");
                *phase = Phase::Closed { failures: 0 };
            }
            (Phase::HalfOpen { .. }, true) if pass == Pass::Probe => {
                *phase = Phase::Open {
                    until: Instant::now() + self.cooldown,
                };
            }
            // A call admitted before the breaker opened, answering late: the probe decides.
            _ => {}
        }
    }

    /// Runs `call` if the breaker lets it through, and records how it went. A
    /// half-open breaker first runs `probe` (one cheap round trip, bounded by
    /// `PROBE_TIMEOUT`): the call runs only once the store answers it, so a probe
    /// of a store that is still down fails fast instead of spending a request's
    /// whole retry budget while every other caller waits on the half-open state.
    pub async fn call<T, P, PFut>(
        &self,
        probe: P,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError>
    where
        P: FnOnce() -> PFut,
        PFut: Future<Output = Result<(), StoreError>>,
    {
        if self.admit()? == Pass::Probe {
            let mut guard = ProbeGuard {
                circuit: self,
                armed: true,
            };
            let answered = match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
                Ok(Err(StoreError::Unavailable(_))) | Err(_) => false,
                Ok(_) => true,
            };
            guard.armed = false;
            self.record(Pass::Probe, !answered);
            if !answered {
                return Err(open_error());
            }
        }
        let result = call.await;
        self.record(
            Pass::Normal,
            matches!(result, Err(StoreError::Unavailable(_))),
        );
        result
    }
}

fn open_error() -> StoreError {
    StoreError::Unavailable("circuit breaker open: the store failed repeatedly".into())
}

/// A `Store` whose every call goes through a `Circuit`.
pub struct BreakerStore {
    inner: Arc<dyn Store>,
    circuit: Arc<Circuit>,
}

impl BreakerStore {
    pub fn new(inner: Arc<dyn Store>, circuit: Arc<Circuit>) -> BreakerStore {
        BreakerStore { inner, circuit }
    }

    async fn guard<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.circuit.call(|| self.inner.ping(), call).await
    }
}

#[async_trait]
impl Store for BreakerStore {
    async fn append(&self, batch: Vec<NewEntry>) -> Result<Vec<AppendOutcome>, StoreError> {
        self.guard(self.inner.append(batch)).await
    }
    async fn tree_size(&self) -> Result<u64, StoreError> {
        self.guard(self.inner.tree_size()).await
    }
    async fn entry(&self, index: u64) -> Result<Option<StoredEntry>, StoreError> {
        self.guard(self.inner.entry(index)).await
    }
    async fn range(&self, start: u64, end: u64) -> Result<Vec<StoredEntry>, StoreError> {
        self.guard(self.inner.range(start, end)).await
    }
    async fn seal(&self, seal_id: &str) -> Result<Option<SealRecord>, StoreError> {
        self.guard(self.inner.seal(seal_id)).await
    }
    async fn decisions(&self, query: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        self.guard(self.inner.decisions(query)).await
    }
    async fn decision(&self, decision_id: &str) -> Result<Option<AuditRow>, StoreError> {
        self.guard(self.inner.decision(decision_id)).await
    }
    async fn resolution(
        &self,
        decision_index: u64,
    ) -> Result<Option<sealgate_store::Resolution>, StoreError> {
        self.guard(self.inner.resolution(decision_index)).await
    }
    async fn pending_approvals(
        &self,
        before: Option<u64>,
        recorded_after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        self.guard(self.inner.pending_approvals(before, recorded_after, limit))
            .await
    }
    async fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Option<[u8; 32]>>, StoreError> {
        self.guard(self.inner.nodes(ids)).await
    }
    async fn put_checkpoint(&self, checkpoint: &NewCheckpoint) -> Result<(), StoreError> {
        self.guard(self.inner.put_checkpoint(checkpoint)).await
    }
    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.guard(self.inner.latest_checkpoint()).await
    }
    async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.guard(self.inner.checkpoints()).await
    }
    async fn active_policy(&self) -> Result<Option<ActiveVersion>, StoreError> {
        self.guard(self.inner.active_policy()).await
    }
    async fn put_policy(&self, policy: &NewPolicy) -> Result<bool, StoreError> {
        self.guard(self.inner.put_policy(policy)).await
    }
    async fn policy(&self, version: &str) -> Result<Option<StoredPolicy>, StoreError> {
        self.guard(self.inner.policy(version)).await
    }
    async fn policies(&self) -> Result<Vec<PolicySummary>, StoreError> {
        self.guard(self.inner.policies()).await
    }
    async fn create_key(&self, key: &NewApiKey) -> Result<(), StoreError> {
        self.guard(self.inner.create_key(key)).await
    }
    async fn key_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        self.guard(self.inner.key_by_hash(token_hash)).await
    }
    async fn revoke_key(&self, id: &str, revoked_at: &str) -> Result<Revocation, StoreError> {
        self.guard(self.inner.revoke_key(id, revoked_at)).await
    }
    async fn key_count(&self) -> Result<u64, StoreError> {
        self.guard(self.inner.key_count()).await
    }
    async fn try_lead(&self) -> Result<bool, StoreError> {
        self.guard(self.inner.try_lead()).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        // Not counted: the breaker's own probe, and /readyz asks through `tree_size`.
        self.inner.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> Result<(), StoreError> {
        Err(StoreError::Unavailable("down".into()))
    }

    /// A probe of a store that answers.
    async fn up() -> Result<(), StoreError> {
        Ok(())
    }

    /// A probe of a store that is still down.
    async fn still_down() -> Result<(), StoreError> {
        down()
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_consecutive_failures_and_fails_fast() {
        let c = Circuit::new(3, Duration::from_secs(1));
        for _ in 0..2 {
            assert!(c.call(up, async { down() }).await.is_err());
        }
        assert_eq!(c.state(), BreakerState::Closed);
        assert!(c.call(up, async { down() }).await.is_err());
        assert_eq!(c.state(), BreakerState::Open);
        // Open: the call is not even run.
        let ran = std::sync::atomic::AtomicBool::new(false);
        let out = c
            .call(up, async {
                ran.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert!(matches!(out, Err(StoreError::Unavailable(_))));
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count() {
        let c = Circuit::new(3, Duration::from_secs(1));
        for _ in 0..5 {
            let _ = c.call(up, async { down() }).await;
            let _ = c.call(up, async { down() }).await;
            c.call(up, async { Ok(()) }).await.expect("passes");
        }
        assert_eq!(c.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn answers_other_than_unavailable_do_not_count() {
        let c = Circuit::new(1, Duration::from_secs(1));
        let out: Result<(), _> = c
            .call(up, async { Err(StoreError::Conflict("dup".into())) })
            .await;
        assert!(matches!(out, Err(StoreError::Conflict(_))));
        assert_eq!(c.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_opens_after_cooldown_and_a_good_probe_closes_it() {
        let c = Circuit::new(1, Duration::from_secs(1));
        let _ = c.call(up, async { down() }).await;
        assert_eq!(c.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert_eq!(c.state(), BreakerState::HalfOpen);
        c.call(up, async { Ok(()) }).await.expect("probe passes");
        assert_eq!(c.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_it_again_without_running_the_call() {
        let c = Circuit::new(1, Duration::from_secs(1));
        let _ = c.call(up, async { down() }).await;
        tokio::time::advance(Duration::from_millis(1001)).await;
        let ran = std::sync::atomic::AtomicBool::new(false);
        let out = c
            .call(still_down, async {
                ran.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert!(matches!(out, Err(StoreError::Unavailable(_))));
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(c.state(), BreakerState::Open);
        assert!(c.call(up, async { Ok(()) }).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_hangs_counts_as_failed_after_its_timeout() {
        let c = Circuit::new(1, Duration::from_secs(1));
        let _ = c.call(up, async { down() }).await;
        tokio::time::advance(Duration::from_millis(1001)).await;
        let started = Instant::now();
        let out = c
            .call(std::future::pending::<Result<(), StoreError>>, async {
                Ok(())
            })
            .await;
        assert!(out.is_err());
        assert_eq!(started.elapsed(), PROBE_TIMEOUT);
        assert_eq!(c.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn only_one_probe_at_a_time_and_a_dropped_probe_frees_the_slot() {
        let c = Arc::new(Circuit::new(1, Duration::from_secs(1)));
        let _ = c.call(up, async { down() }).await;
        tokio::time::advance(Duration::from_millis(1001)).await;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let probe = {
            let c = c.clone();
            tokio::spawn(async move {
                c.call(
                    || async {
                        let _ = rx.await;
                        Ok(())
                    },
                    async { Ok(()) },
                )
                .await
            })
        };
        tokio::task::yield_now().await;
        // The probe is in flight: everyone else fails fast, and the state says so.
        assert_eq!(c.state(), BreakerState::HalfOpen);
        assert!(c.call(up, async { Ok(()) }).await.is_err());
        probe.abort();
        let _ = probe.await;
        drop(tx);
        // The aborted probe freed the slot: the next call probes and closes it.
        c.call(up, async { Ok(()) })
            .await
            .expect("new probe passes");
        assert_eq!(c.state(), BreakerState::Closed);
    }
}
