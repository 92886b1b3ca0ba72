//! The storage seam. A `Store` keeps the ledger (entries, their leaf hashes, and the
//! tables derived from them: decisions, seals, redemptions, resolutions, policy activations) plus
//! the mutable side tables that are not evidence (API keys, uploaded policy bundles).
//!
//! The ledger half of the API is append-only by construction: there is `append` and
//! there are reads, nothing else. Indices are assigned by the backend inside the
//! transaction that commits the batch. The appender (`appender`) is the one writer
//! per process and batches concurrent entries into one transaction.

pub mod appender;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod spot_check;
mod types;

pub use appender::Appender;
pub use types::*;

use async_trait::async_trait;
pub use sealgate_ledger::NodeId;

/// Errors from a backend, named for what the caller does about them.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The thing asked for does not exist.
    #[error("not found")]
    NotFound,
    /// The write conflicts with what is already stored.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The store cannot be reached right now; retrying later may work. Fail closed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store holds what sealgate never writes (an entry's bytes stored as a number,
    /// a hash of the wrong length) or lacks what it always writes (a committed size's
    /// tree nodes): the data was changed behind the backend's back. `sealgate verify`
    /// reports it as tampering; the server answers 500 as for `Backend`. The SQLite
    /// backend tells a mistyped value apart; PostgreSQL's typed columns refuse one.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// Anything else: a bug, a constraint we did not expect.
    #[error("store error: {0}")]
    Backend(String),
}

/// The append-only store. Every backend passes `conformance`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Commits `batch` in one transaction, in order, and returns one outcome per entry.
    /// Entries whose claims fail (a seal already redeemed, an unknown seal) are
    /// rejected individually and take no index; the rest commit together or not at all.
    async fn append(&self, batch: Vec<NewEntry>) -> Result<Vec<AppendOutcome>, StoreError>;

    /// Number of committed entries (the next index).
    async fn tree_size(&self) -> Result<u64, StoreError>;

    /// One committed entry.
    async fn entry(&self, index: u64) -> Result<Option<StoredEntry>, StoreError>;

    /// Committed entries with `start <= index < end`, in index order.
    async fn range(&self, start: u64, end: u64) -> Result<Vec<StoredEntry>, StoreError>;

    /// A seal granted by a committed decision, with its redemption if any.
    async fn seal(&self, seal_id: &str) -> Result<Option<SealRecord>, StoreError>;

    /// Decisions matching `query`, newest first.
    async fn decisions(&self, query: &AuditQuery) -> Result<Vec<AuditRow>, StoreError>;

    /// The committed decision with this id, with its resolution and redemption.
    async fn decision(&self, decision_id: &str) -> Result<Option<AuditRow>, StoreError>;

    /// The answer to the decision at `decision_index`, if one is committed. Cheaper than
    /// [`Store::decision`]: it reads the resolution alone, for callers waiting on it.
    async fn resolution(&self, decision_index: u64) -> Result<Option<Resolution>, StoreError>;

    /// Decisions pending a person's approval that no `approval_resolved` entry has
    /// answered yet, newest first, below the index `before` when given, and recorded
    /// (`server_time`, as entries write it) strictly after `recorded_after` when given.
    async fn pending_approvals(
        &self,
        before: Option<u64>,
        recorded_after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError>;

    /// Stored perfect-subtree hashes of the Merkle tree (level 0 = leaf hashes), in the
    /// order asked; None for a node not (yet) complete. Written by `append` in the same
    /// transaction as the entries, so a proof is available as soon as an append returns.
    async fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Option<[u8; 32]>>, StoreError>;

    /// Appends a signed checkpoint (C2SP signed note) for `tree_size`.
    async fn put_checkpoint(&self, checkpoint: &NewCheckpoint) -> Result<(), StoreError>;

    /// The checkpoint with the largest tree size.
    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// Every stored checkpoint, in the order they were written.
    async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError>;

    /// The latest row of the activations table: the version named by the latest
    /// `policy_activated` entry, and that entry's index (which the server checks
    /// against the entry before it lets the version decide).
    async fn active_policy(&self) -> Result<Option<ActiveVersion>, StoreError>;

    /// Stores an uploaded bundle. Uploading the same version twice is not an error
    /// (returns false); bundles are immutable once stored.
    async fn put_policy(&self, policy: &NewPolicy) -> Result<bool, StoreError>;

    async fn policy(&self, version: &str) -> Result<Option<StoredPolicy>, StoreError>;

    /// All uploaded bundles, oldest first, without their content.
    async fn policies(&self) -> Result<Vec<PolicySummary>, StoreError>;

    async fn create_key(&self, key: &NewApiKey) -> Result<(), StoreError>;

    /// The live (not revoked) key whose token hashes to `token_hash`.
    async fn key_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<ApiKey>, StoreError>;

    /// Revokes a key, unless it is the last live admin key (atomically: two admins
    /// revoking each other at once leave one).
    async fn revoke_key(&self, id: &str, revoked_at: &str) -> Result<Revocation, StoreError>;

    /// Number of keys ever created (revoked ones included).
    async fn key_count(&self) -> Result<u64, StoreError>;

    /// Whether this process leads the log now: the one replica that signs checkpoints
    /// and runs other once-per-log work. Called on every tick of that work, so a
    /// backend shared by replicas must notice a lost leadership here and let another
    /// replica take over when the leader dies. A store used by one process always leads
    /// (the default).
    async fn try_lead(&self) -> Result<bool, StoreError> {
        Ok(true)
    }

    /// One round trip, without retries: whether the store answers right now. A
    /// circuit breaker probes with it, so a probe costs one connection attempt rather
    /// than a request's whole retry budget. An embedded store is always there.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Fetches the stored nodes a proof plan needs, in one store call, and assembles the
/// proof (or, for a root plan, the one root hash). A node missing for a committed size
/// means the tree is damaged: that is a `Backend` error, never an empty proof.
pub async fn assemble(
    store: &dyn Store,
    plan: &sealgate_ledger::ProofPlan,
) -> Result<Vec<[u8; 32]>, StoreError> {
    let ids = plan.nodes();
    let hashes = store.nodes(ids).await?;
    let found: std::collections::HashMap<NodeId, [u8; 32]> = ids
        .iter()
        .zip(hashes)
        .filter_map(|(id, h)| h.map(|h| (*id, h)))
        .collect();
    plan.assemble(|id| found.get(&id).copied())
        .map_err(|e| StoreError::Corrupt(format!("tree nodes missing for a committed size: {e}")))
}

/// Rebuilds the frontier of the tree of `size` leaves from the stored hashes of
/// [`Frontier::node_ids`]`(size)`, read in that order. A missing node means the
/// ledger is damaged: a `Corrupt` error, never a guess.
pub fn frontier_from_nodes(
    size: u64,
    hashes: Vec<Option<[u8; 32]>>,
) -> Result<sealgate_ledger::Frontier, StoreError> {
    let ids = sealgate_ledger::Frontier::node_ids(size);
    let hashes = hashes
        .into_iter()
        .zip(&ids)
        .map(|(h, id)| {
            h.ok_or_else(|| {
                StoreError::Corrupt(format!("tree node {id} missing: the ledger is damaged"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    sealgate_ledger::Frontier::from_nodes(size, hashes)
        .map_err(|e| StoreError::Backend(format!("tree frontier: {e}")))
}

/// Root of the tree of the first `size` entries, from stored nodes.
pub async fn root(store: &dyn Store, size: u64) -> Result<[u8; 32], StoreError> {
    let hashes = assemble(store, &sealgate_ledger::root_plan(size)).await?;
    hashes
        .first()
        .copied()
        .ok_or_else(|| StoreError::Backend("root plan assembled to nothing".into()))
}

/// SHA-256 of an API token: tokens are random 256-bit strings, so a fast hash is
/// enough (no password stretching needed) and lookups stay one indexed read.
pub fn token_hash(token: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes()).into()
}
