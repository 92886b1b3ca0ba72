//! The scheduled integrity check. While this replica leads the log, every
//! `integrity_check_interval` it opens the latest signed checkpoint with the log's own
//! key, checks that the stored tree nodes give its root and that it extends the
//! checkpoint it checked last time (a consistency proof), and spot-checks
//! `integrity_sample` random entries: their bytes hash to their stored leaves, which
//! the stored nodes prove included. A finding is logged at error level and counted in
//! `sealgate_integrity_failures_total`, for an alert. It also checks that the policy
//! in charge is one the ledger activated and that its stored bundle is the one its
//! version names. What only a full pass can see
//! (every entry, the seals' cross-references) stays with `sealgate verify`.

use std::sync::atomic::Ordering::Relaxed;

use rand::Rng as _;
use sealgate_ledger::{Checkpoint, Hash};
use sealgate_store::spot_check::{check_consistency, check_entry};
use sealgate_store::StoreError;
use tracing::{debug, error, warn};

use crate::state::AppState;

/// What one check found: nothing, or the first thing that does not hold.
pub type Finding = Option<String>;

/// Runs the check every `integrity_check_interval` while this replica leads the log.
/// Runs until the process ends; never started when the interval is zero.
pub async fn run_integrity_checks(state: AppState) {
    let mut tick = tokio::time::interval(state.settings.integrity_check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; the ledger has just been opened and checked at start.
    tick.tick().await;
    let mut last: Option<(u64, Hash)> = None;
    loop {
        tick.tick().await;
        if !state.is_leading() {
            // Another replica checks; start afresh if this one takes over.
            last = None;
            continue;
        }
        match check_once(&state, &mut last).await {
            Ok(None) => {
                state.metrics.integrity_checks.fetch_add(1, Relaxed);
                debug!(checked_size = last.map(|l| l.0), "integrity check passed");
            }
            Ok(Some(finding)) => {
                state.metrics.integrity_checks.fetch_add(1, Relaxed);
                state.metrics.integrity_failures.fetch_add(1, Relaxed);
                error!(finding = %finding, "integrity check failed: the stored ledger does not match its signed checkpoints");
            }
            // Only a store that cannot answer now is a check not made; a store that
            // answers with what sealgate never writes is a finding.
            Err(StoreError::Unavailable(e)) => {
                state.metrics.integrity_skipped.fetch_add(1, Relaxed);
                warn!(error = %crate::scrub::scrub(&e), "integrity check skipped: store unavailable")
            }
            Err(e) => {
                state.metrics.integrity_checks.fetch_add(1, Relaxed);
                state.metrics.integrity_failures.fetch_add(1, Relaxed);
                error!(error = %crate::scrub::scrub(&e.to_string()), "integrity check failed: the stored ledger cannot be read as sealgate writes it");
            }
        }
    }
}

/// One check against the latest checkpoint. `last` is the signed tree checked before,
/// moved on to this one when everything holds (a finding keeps it, so the next check
/// finds the problem again).
pub async fn check_once(
    state: &AppState,
    last: &mut Option<(u64, Hash)>,
) -> Result<Finding, StoreError> {
    let store = state.store.as_ref();
    let Some(stored) = store.latest_checkpoint().await? else {
        return Ok(None); // nothing signed yet
    };
    let verifier = state.log_signer.verifier();
    let checkpoint = match Checkpoint::open(
        &stored.note,
        &state.settings.origin,
        std::slice::from_ref(&verifier),
    ) {
        Ok((checkpoint, _)) => checkpoint,
        Err(e) => {
            return Ok(Some(format!(
                "the latest checkpoint does not verify with this log's key ({e})"
            )))
        }
    };
    let (size, root) = (checkpoint.size, checkpoint.root);
    if stored.tree_size != size {
        return Ok(Some(format!(
            "the latest checkpoint is stored as size {} but signs size {size}",
            stored.tree_size
        )));
    }
    if size == 0 {
        return Ok(None);
    }
    match sealgate_store::root(store, size).await {
        Ok(r) if r == root => {}
        Ok(_) => {
            return Ok(Some(format!(
                "the stored tree nodes of size {size} do not give the signed root"
            )))
        }
        Err(StoreError::Corrupt(what)) => {
            return Ok(Some(format!(
                "the tree of size {size} cannot be read: {what}"
            )))
        }
        Err(e) => return Err(e),
    }
    if let Some(before) = *last {
        if let Some(finding) = check_consistency(store, before, (size, root)).await? {
            return Ok(Some(finding));
        }
    }
    for _ in 0..state.settings.integrity_sample {
        let index = rand::thread_rng().gen_range(0..size);
        if let Some(finding) = check_entry(store, index, size, &root).await? {
            return Ok(Some(finding));
        }
    }
    // The policy in charge, which a table edit could swap without touching an entry.
    if let Some(finding) = crate::service::policies::check_in_charge(store).await? {
        return Ok(Some(finding));
    }
    *last = Some((size, root));
    Ok(None)
}
