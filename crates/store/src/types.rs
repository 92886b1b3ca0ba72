//! Values crossing the Store seam. Row structs live in the backends; these are the
//! backend-neutral shapes.

use sealgate_core::entry::{Entry, Status};
use sealgate_core::Role;

/// An entry ready to append: canonical bytes and leaf hash are computed by the caller,
/// off the appender's critical path.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub entry: Entry,
    pub canonical: Vec<u8>,
    pub leaf_hash: [u8; 32],
}

impl NewEntry {
    pub fn new(entry: Entry) -> Result<NewEntry, sealgate_core::canonical::CanonicalError> {
        let canonical = entry.canonical_bytes()?;
        let leaf_hash = leaf_hash(&canonical);
        Ok(NewEntry {
            entry,
            canonical,
            leaf_hash,
        })
    }
}

/// RFC 6962 leaf hash: SHA-256(0x00 ‖ bytes).
pub fn leaf_hash(bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(bytes);
    h.finalize().into()
}

/// Where a committed entry landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub index: u64,
    pub leaf_hash: [u8; 32],
}

/// Why one entry of a batch was refused while the rest committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    #[error("seal {0} was already redeemed")]
    AlreadyRedeemed(String),
    #[error("seal {0} was never issued")]
    UnknownSeal(String),
    /// A second resolution of the pending decision at this ledger index.
    #[error("the decision at ledger index {0} was already resolved")]
    AlreadyResolved(u64),
}

pub type AppendOutcome = Result<Appended, Rejection>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub index: u64,
    pub canonical: Vec<u8>,
    pub leaf_hash: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redemption {
    pub index: u64,
    pub redeemed_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealRecord {
    pub seal_id: String,
    pub decision_index: u64,
    pub expires_at: String,
    pub redemption: Option<Redemption>,
}

/// Filters of `GET /v1/audit/query`. `before` is the cursor: only indices below it.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub agent_id: Option<String>,
    pub org_id: Option<String>,
    pub method: Option<String>,
    pub status: Option<Status>,
    /// RFC 3339 bounds on the decision's server_time, as stored (UTC, fixed width).
    pub since: Option<String>,
    pub until: Option<String>,
    pub before: Option<u64>,
    pub limit: u32,
}

/// One decision; when a person resolved it, the resolution; when its seal (its own or
/// the resolution's) was redeemed, the redemption.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub entry: StoredEntry,
    pub resolution: Option<Resolution>,
    pub redemption: Option<Redemption>,
}

/// How a person resolved a pending decision: the `approval_resolved` entry's index and
/// what it says (its canonical bytes are the evidence; these are read off them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub index: u64,
    pub approved: bool,
    pub approver: String,
    pub resolved_at: String,
    /// The seal an approval granted: (seal_id, expires_at).
    pub seal: Option<(String, String)>,
    /// Why, in the approver's words (empty when none was given).
    pub reason: String,
}

impl Resolution {
    /// The answer the `approval_resolved` entry at `index` (whose canonical bytes are
    /// `canonical`) gives the decision at `decision_index`. The resolutions row says
    /// only that the decision was answered and where; its copies of the answer serve
    /// queries and `verify`, while what the server acts on and shows (who approved,
    /// the seal it reissues) is read from the entry, so a row edited behind its back
    /// changes nothing it does.
    pub fn from_entry(
        index: u64,
        decision_index: u64,
        canonical: &[u8],
    ) -> Result<Resolution, String> {
        match Entry::from_canonical(canonical) {
            Ok(Entry::ApprovalResolved(a)) if a.decision_index == decision_index => {
                // As `Derived::of` records it: only an approval grants its seal.
                let seal = a.seal.filter(|_| a.approved);
                Ok(Resolution {
                    index,
                    approved: a.approved,
                    approver: a.approver,
                    resolved_at: a.server_time,
                    seal: seal.map(|s| (s.seal_id, s.expires_at)),
                    reason: a.reason,
                })
            }
            Ok(Entry::ApprovalResolved(a)) => Err(format!(
                "the resolution of decision {decision_index} points at entry {index}, which answers decision {}",
                a.decision_index
            )),
            Ok(other) => Err(format!(
                "the resolution of decision {decision_index} points at entry {index}, a {} entry, not approval_resolved",
                other.kind()
            )),
            Err(e) => Err(format!("the resolution entry {index} does not parse: {e}")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewPolicy {
    pub version: String,
    /// Canonical JSON of the bundle.
    pub bundle: Vec<u8>,
    pub uploaded_at: String,
    pub uploaded_by: String,
}

#[derive(Debug, Clone)]
pub struct StoredPolicy {
    pub version: String,
    pub bundle: Vec<u8>,
    pub uploaded_at: String,
    pub uploaded_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySummary {
    pub version: String,
    pub uploaded_at: String,
    pub uploaded_by: String,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: String,
    pub role: Role,
    pub name: String,
    pub token_hash: [u8; 32],
    pub created_at: String,
}

/// What revoking a key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    Revoked,
    /// No live key has that id (never created, or revoked already).
    NotLive,
    /// Refused: it is the last live admin key, and without one no key could ever be
    /// created or revoked again.
    LastAdmin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub role: Role,
    pub name: String,
    pub created_at: String,
}

/// The derived rows a backend writes beside an entry, read off the entry itself so
/// every backend derives them the same way.
pub struct Derived<'a> {
    pub decision: Option<DecisionRow<'a>>,
    pub seal: Option<SealRow<'a>>,
    /// (seal_id, redeemed_at)
    pub redemption: Option<(&'a str, &'a str)>,
    pub resolution: Option<ResolutionRow<'a>>,
    pub activation: Option<&'a str>,
}

/// A person's answer to the pending decision at `decision_index`. A backend refuses a
/// second one for the same decision ([`Rejection::AlreadyResolved`]).
pub struct ResolutionRow<'a> {
    pub decision_index: u64,
    pub approved: bool,
    pub approver: &'a str,
    pub resolved_at: &'a str,
    /// (seal_id, expires_at) of the seal an approval grants.
    pub seal: Option<(&'a str, &'a str)>,
}

/// A seal granted by this entry. `decision_index` is None when the entry is the
/// decision itself (its index is assigned in the transaction).
pub struct SealRow<'a> {
    pub seal_id: &'a str,
    pub expires_at: &'a str,
    pub decision_index: Option<u64>,
}

pub struct DecisionRow<'a> {
    pub decision_id: &'a str,
    pub manifest_id: &'a str,
    pub agent_id: &'a str,
    pub org_id: &'a str,
    pub method: &'a str,
    pub status: Status,
    pub server_time: &'a str,
}

impl NewEntry {
    pub fn derived(&self) -> Derived<'_> {
        Derived::of(&self.entry)
    }
}

impl<'a> Derived<'a> {
    /// The rows `entry` implies (also for an entry read back from the ledger).
    pub fn of(entry: &'a Entry) -> Derived<'a> {
        let mut d = Derived {
            decision: None,
            seal: None,
            redemption: None,
            resolution: None,
            activation: None,
        };
        match entry {
            Entry::Decision(e) => {
                d.decision = Some(DecisionRow {
                    decision_id: &e.decision_id,
                    manifest_id: &e.manifest_id,
                    agent_id: &e.manifest.agent_id,
                    org_id: &e.manifest.org_id,
                    method: &e.manifest.method,
                    status: e.status,
                    server_time: &e.server_time,
                });
                d.seal = e.seal.as_ref().map(|s| SealRow {
                    seal_id: &s.seal_id,
                    expires_at: &s.expires_at,
                    decision_index: None,
                });
            }
            Entry::ApprovalResolved(e) => {
                // Only an approval grants; a refusal carrying a seal is malformed, and
                // `verify` names it, but the store must not make it redeemable.
                let granted = e.seal.as_ref().filter(|_| e.approved);
                d.resolution = Some(ResolutionRow {
                    decision_index: e.decision_index,
                    approved: e.approved,
                    approver: &e.approver,
                    resolved_at: &e.server_time,
                    seal: granted.map(|s| (&*s.seal_id, &*s.expires_at)),
                });
                d.seal = granted.map(|s| SealRow {
                    seal_id: &s.seal_id,
                    expires_at: &s.expires_at,
                    decision_index: Some(e.decision_index),
                });
            }
            Entry::SealRedeemed(e) => d.redemption = Some((&e.seal_id, &e.server_time)),
            Entry::PolicyActivated(e) => d.activation = Some(&e.version),
            Entry::KeyRotated(_) => {}
        }
        d
    }
}

/// A policy version as the activations table names it active, with the index of the
/// entry that activated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveVersion {
    pub index: u64,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCheckpoint {
    pub tree_size: u64,
    /// The signed note, exactly as served.
    pub note: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub tree_size: u64,
    pub note: String,
    pub created_at: String,
}
