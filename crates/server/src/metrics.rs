//! Prometheus metrics, kept as plain atomics and rendered in the text exposition
//! format: a handful of counters and histograms don't need a registry crate.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Upper bounds, in microseconds, of the latency histogram buckets.
const LATENCY_BUCKETS_US: [u64; 12] = [
    250, 500, 1_000, 2_000, 3_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];
const BATCH_BUCKETS: [u64; 8] = [1, 2, 4, 16, 64, 256, 1024, 4096];

pub struct Histogram<const N: usize> {
    buckets: [AtomicU64; N],
    count: AtomicU64,
    sum: AtomicU64,
}

impl<const N: usize> Default for Histogram<N> {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }
}

impl<const N: usize> Histogram<N> {
    fn observe(&self, bounds: &[u64; N], value: u64) {
        if let Some(i) = bounds.iter().position(|b| value <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum.fetch_add(value, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, bounds: &[u64; N], scale: f64) {
        let mut cumulative = 0;
        for (bound, bucket) in bounds.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / scale
            );
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum.load(Relaxed) as f64 / scale);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// What the store says about the ledger when metrics are read; None where it could
/// not be read.
#[derive(Debug, Default)]
pub struct LedgerGauges {
    pub size: Option<u64>,
    /// Entries beyond the latest checkpoint.
    pub unanchored: Option<u64>,
    pub checkpoint_age_secs: Option<f64>,
}

#[derive(Default)]
pub struct Metrics {
    pub approved: AtomicU64,
    pub denied: AtomicU64,
    pub pending: AtomicU64,
    pub redemptions: AtomicU64,
    pub redemption_conflicts: AtomicU64,
    pub unavailable: AtomicU64,
    pub screen_flagged: AtomicU64,
    /// Pending decisions a person approved, and refused.
    pub resolved_approved: AtomicU64,
    pub resolved_denied: AtomicU64,
    /// Requests waiting on `GET /v1/decisions/{id}?wait=` now (a gauge).
    pub waiting_agents: AtomicU64,
    /// Scheduled integrity checks run, and those that found the ledger not matching
    /// its signed checkpoints.
    pub integrity_checks: AtomicU64,
    pub integrity_failures: AtomicU64,
    /// Checks not made because the store was unavailable.
    pub integrity_skipped: AtomicU64,
    decision_latency: Histogram<12>,
    batch_size: Histogram<8>,
}

impl Metrics {
    pub fn observe_decision_us(&self, us: u64) {
        self.decision_latency.observe(&LATENCY_BUCKETS_US, us);
    }

    pub fn observe_batch(&self, n: usize) {
        self.batch_size.observe(&BATCH_BUCKETS, n as u64);
    }

    pub fn render(&self, ledger: &LedgerGauges) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str("# TYPE sealgate_decisions_total counter\n");
        for (status, v) in [
            ("approved", &self.approved),
            ("denied", &self.denied),
            ("pending_approval", &self.pending),
        ] {
            let _ = writeln!(
                out,
                "sealgate_decisions_total{{status=\"{status}\"}} {}",
                v.load(Relaxed)
            );
        }
        out.push_str(
            "# HELP sealgate_approvals_resolved_total pending decisions answered by an approver\n\
             # TYPE sealgate_approvals_resolved_total counter\n",
        );
        for (outcome, v) in [
            ("approved", &self.resolved_approved),
            ("denied", &self.resolved_denied),
        ] {
            let _ = writeln!(
                out,
                "sealgate_approvals_resolved_total{{outcome=\"{outcome}\"}} {}",
                v.load(Relaxed)
            );
        }
        for (name, help, v) in [
            (
                "sealgate_redemptions_total",
                "seals redeemed",
                &self.redemptions,
            ),
            (
                "sealgate_redemption_conflicts_total",
                "redemptions refused as already redeemed",
                &self.redemption_conflicts,
            ),
            (
                "sealgate_store_unavailable_total",
                "requests failed closed because the store was unavailable",
                &self.unavailable,
            ),
            (
                "sealgate_screening_flagged_total",
                "manifests flagged by prompt-injection screening",
                &self.screen_flagged,
            ),
            (
                "sealgate_integrity_checks_total",
                "scheduled integrity checks run by this replica",
                &self.integrity_checks,
            ),
            (
                "sealgate_integrity_failures_total",
                "scheduled integrity checks that found the stored ledger not matching its signed checkpoints",
                &self.integrity_failures,
            ),
            (
                "sealgate_integrity_skipped_total",
                "scheduled integrity checks not made because the store was unavailable",
                &self.integrity_skipped,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP sealgate_waiting_agents requests waiting for a person's answer (GET /v1/decisions/{{id}}?wait=)\n\
             # TYPE sealgate_waiting_agents gauge\nsealgate_waiting_agents {}",
            self.waiting_agents.load(Relaxed)
        );
        out.push_str("# TYPE sealgate_decision_latency_seconds histogram\n");
        self.decision_latency.render(
            &mut out,
            "sealgate_decision_latency_seconds",
            &LATENCY_BUCKETS_US,
            1e6,
        );
        out.push_str("# TYPE sealgate_ledger_batch_size histogram\n");
        self.batch_size
            .render(&mut out, "sealgate_ledger_batch_size", &BATCH_BUCKETS, 1.0);
        if let Some(n) = ledger.size {
            let _ = writeln!(
                out,
                "# TYPE sealgate_ledger_size gauge\nsealgate_ledger_size {n}"
            );
        }
        if let Some(n) = ledger.unanchored {
            let _ = writeln!(
                out,
                "# HELP sealgate_ledger_unanchored_entries entries no signed checkpoint covers yet\n\
                 # TYPE sealgate_ledger_unanchored_entries gauge\nsealgate_ledger_unanchored_entries {n}"
            );
        }
        if let Some(age) = ledger.checkpoint_age_secs {
            let _ = writeln!(
                out,
                "# HELP sealgate_checkpoint_age_seconds seconds since the latest checkpoint was signed\n\
                 # TYPE sealgate_checkpoint_age_seconds gauge\nsealgate_checkpoint_age_seconds {age}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe_decision_us(100);
        m.observe_decision_us(4_000);
        m.observe_decision_us(2_000_000);
        let text = m.render(&LedgerGauges {
            size: Some(3),
            unanchored: Some(1),
            checkpoint_age_secs: Some(0.5),
        });
        assert!(
            text.contains("sealgate_decision_latency_seconds_bucket{le=\"0.00025\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sealgate_decision_latency_seconds_bucket{le=\"0.005\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("sealgate_decision_latency_seconds_bucket{le=\"+Inf\"} 3"),
            "{text}"
        );
        assert!(text.contains("sealgate_ledger_size 3"));
        assert!(text.contains("sealgate_ledger_unanchored_entries 1"));
        assert!(text.contains("sealgate_checkpoint_age_seconds 0.5"));
    }
}
