//! Spot checks of a stored ledger against a signed tree head: one entry's bytes and
//! inclusion (and the seal rows it implies), or one tree's consistency with a later
//! one, each from stored tree nodes in O(log n) reads. `sealgate verify --sample` and the server's scheduled integrity
//! check both use them.
//!
//! Each answers `Ok(None)` when the check holds, `Ok(Some(what))` naming what does not
//! (tampering or damage), and `Err` for a store that cannot be read right now, which is
//! a failure to check, not a finding.

use sealgate_ledger::{
    consistency_plan, inclusion_plan, leaf_hash, verify_consistency, verify_inclusion, Hash,
};

use sealgate_core::entry::Entry;

use crate::{assemble, Derived, Store, StoreError};

/// Entry `index`'s stored bytes hash to its stored leaf hash, the stored nodes prove
/// that leaf is entry `index` of the tree of `size` with `root`, and the seal rows the
/// server decides redemptions by agree with it ([`check_seal_rows`]).
pub async fn check_entry(
    store: &dyn Store,
    index: u64,
    size: u64,
    root: &Hash,
) -> Result<Option<String>, StoreError> {
    let entry = match store.entry(index).await {
        Ok(Some(entry)) => entry,
        Ok(None) => return Ok(Some(format!("entry {index} is missing"))),
        Err(StoreError::Corrupt(what)) => return Ok(Some(format!("entry {index}: {what}"))),
        Err(e) => return Err(e),
    };
    let leaf = leaf_hash(&entry.canonical);
    if leaf != entry.leaf_hash {
        return Ok(Some(format!(
            "entry {index}: its bytes do not hash to the stored leaf hash (the entry was changed)"
        )));
    }
    let plan = match inclusion_plan(index, size) {
        Ok(plan) => plan,
        Err(e) => return Ok(Some(format!("entry {index} in a tree of {size}: {e}"))),
    };
    let proof = match assemble(store, &plan).await {
        Ok(proof) => proof,
        Err(StoreError::Corrupt(what)) => {
            return Ok(Some(format!(
                "entry {index}: its inclusion proof cannot be read: {what}"
            )))
        }
        Err(e) => return Err(e),
    };
    if verify_inclusion(&leaf, index, size, &proof, root).is_err() {
        return Ok(Some(format!(
            "entry {index}: no valid inclusion proof in the checkpointed tree of {size}"
        )));
    }
    check_seal_rows(store, index, &entry.canonical).await
}

/// The seal table agrees with entry `index`: a seal it grants is recorded for its
/// decision, and a redemption it records is the seal's. The server refuses or allows a
/// redemption by that table, so a row deleted or added behind its back (the triggers
/// dropped) would let a seal be used twice or refuse a good one.
async fn check_seal_rows(
    store: &dyn Store,
    index: u64,
    canonical: &[u8],
) -> Result<Option<String>, StoreError> {
    let entry: Entry = match serde_json::from_slice(canonical) {
        Ok(entry) => entry,
        Err(e) => return Ok(Some(format!("entry {index}: not a sealgate entry ({e})"))),
    };
    // The rows the store wrote for this entry are the ones `Derived` says it implies.
    let derived = Derived::of(&entry);
    let (seal_id, decision, redeemed_by) = match (&derived.seal, &entry) {
        (Some(grant), _) => (grant.seal_id, grant.decision_index.unwrap_or(index), None),
        (None, Entry::SealRedeemed(r)) => (r.seal_id.as_str(), r.decision_index, Some(index)),
        (None, _) => return Ok(None),
    };
    let Some(row) = store.seal(seal_id).await? else {
        return Ok(Some(format!(
            "entry {index}: seal {seal_id} is not in the seal table (a row was deleted)"
        )));
    };
    if row.decision_index != decision {
        return Ok(Some(format!(
            "entry {index}: the seal table gives seal {seal_id} to decision {}, the ledger to {decision}",
            row.decision_index
        )));
    }
    let recorded = row.redemption.as_ref().map(|r| r.index);
    Ok(match (redeemed_by, recorded) {
        (Some(at), Some(r)) if r != at => Some(format!(
            "entry {index} redeems seal {seal_id}, but the seal table records its redemption at {r}"
        )),
        (Some(_), None) => Some(format!(
            "entry {index} redeems seal {seal_id}, but the seal table holds no redemption of it \
             (a row was deleted)"
        )),
        _ => None,
    })
}

/// The tree of `first.0` leaves with root `first.1` is a prefix of the tree of
/// `second.0` leaves with root `second.1`, by a consistency proof from stored nodes.
pub async fn check_consistency(
    store: &dyn Store,
    first: (u64, Hash),
    second: (u64, Hash),
) -> Result<Option<String>, StoreError> {
    let ((m, r1), (n, r2)) = (first, second);
    if m == 0 {
        return Ok(None); // the empty tree is a prefix of every tree
    }
    if m > n {
        return Ok(Some(format!(
            "the tree shrank from {m} to {n} entries: entries were removed"
        )));
    }
    if m == n {
        return Ok((r1 != r2).then(|| {
            format!(
                "two signed checkpoints of size {m} have different roots: the ledger was rewritten"
            )
        }));
    }
    let plan = match consistency_plan(m, n) {
        Ok(plan) => plan,
        Err(e) => return Ok(Some(format!("trees of {m} and {n}: {e}"))),
    };
    let proof = match assemble(store, &plan).await {
        Ok(proof) => proof,
        Err(StoreError::Corrupt(what)) => {
            return Ok(Some(format!(
                "the consistency proof from {m} to {n} cannot be read: {what}"
            )))
        }
        Err(e) => return Err(e),
    };
    Ok(verify_consistency(m, n, &proof, &r1, &r2)
        .is_err()
        .then(|| {
            format!(
                "the signed tree of {m} entries is not a prefix of the signed tree of {n}: \
             an entry below {m} was changed, reordered or removed since"
            )
        }))
}
