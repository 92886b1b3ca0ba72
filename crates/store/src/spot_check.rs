//! Spot checks of a stored ledger against a signed tree head: one entry's bytes and
//! inclusion, or one tree's consistency with a later one, each from stored tree nodes
//! in O(log n) reads. `sealgate verify --sample` and the server's scheduled integrity
//! check both use them.
//!
//! Each answers `Ok(None)` when the check holds, `Ok(Some(what))` naming what does not
//! (tampering or damage), and `Err` for a store that cannot be read right now, which is
//! a failure to check, not a finding.

use sealgate_ledger::{
    consistency_plan, inclusion_plan, leaf_hash, verify_consistency, verify_inclusion, Hash,
};

use crate::{assemble, Store, StoreError};

/// Entry `index`'s stored bytes hash to its stored leaf hash, and the stored nodes
/// prove that leaf is entry `index` of the tree of `size` with `root`.
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
    Ok(verify_inclusion(&leaf, index, size, &proof, root)
        .is_err()
        .then(|| {
            format!("entry {index}: no valid inclusion proof in the checkpointed tree of {size}")
        }))
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
