//! Ledger entries: every state change sealgate makes is one of these, appended once
//! and never changed. The canonical (RFC 8785) bytes of an entry are what the
//! ledger hashes, so fields are only ever added, never renamed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::{self, CanonicalError};
use crate::manifest::Manifest;

/// One ledger entry. `kind` tags the variant in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// Boxed: a decision (manifest, screening, reasons) is several times the size of
    /// the other kinds.
    Decision(Box<DecisionEntry>),
    SealRedeemed(RedemptionEntry),
    ApprovalResolved(ApprovalEntry),
    PolicyActivated(PolicyActivation),
    KeyRotated(KeyRotation),
}

impl Entry {
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::Decision(_) => "decision",
            Entry::SealRedeemed(_) => "seal_redeemed",
            Entry::ApprovalResolved(_) => "approval_resolved",
            Entry::PolicyActivated(_) => "policy_activated",
            Entry::KeyRotated(_) => "key_rotated",
        }
    }

    /// The bytes the ledger stores and hashes.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, CanonicalError> {
        canonical::to_vec(self)
    }

    pub fn from_canonical(bytes: &[u8]) -> Result<Entry, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// What the policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Approved,
    Denied,
    PendingApproval,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::PendingApproval => "pending_approval",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [Status::Approved, Status::Denied, Status::PendingApproval]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// The seal an approved decision grants. The signed token is made after commit, from
/// these fields and the entry's index, so the ledger holds everything needed to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealGrant {
    pub seal_id: String,
    pub expires_at: String,
}

/// Microseconds spent deciding. `total` runs from request arrival to the entry being
/// handed to the ledger; the commit wait that follows cannot be inside the entry it commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Latency {
    pub screen: u64,
    pub policy: u64,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionEntry {
    pub server_time: String,
    pub decision_id: String,
    pub manifest_id: String,
    pub manifest: Manifest,
    /// Hex SHA-256 of the manifest's canonical bytes: what the seal binds.
    pub manifest_hash: String,
    pub screening: Value,
    /// None when no policy was active: such a decision is always a denial.
    pub policy_version: Option<String>,
    pub status: Status,
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<SealGrant>,
    pub latency_us: Latency,
    /// Id of the API key that submitted the manifest.
    pub submitted_by: String,
    /// JSON pointers (into the manifest) whose values were redacted before recording.
    /// Their original values are bound only by `manifest_hash`, not recoverable here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redacted: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedemptionEntry {
    pub server_time: String,
    pub seal_id: String,
    /// Ledger index of the decision that granted the seal.
    pub decision_index: u64,
    pub redeemed_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalEntry {
    pub server_time: String,
    pub decision_index: u64,
    pub decision_id: String,
    pub approved: bool,
    pub approver: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<SealGrant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyActivation {
    pub server_time: String,
    pub version: String,
    pub previous_version: Option<String>,
    pub activated_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotation {
    pub server_time: String,
    /// "seal" or "checkpoint".
    pub purpose: String,
    pub key_id: String,
    /// base64url of the Ed25519 public key.
    pub public_key: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decision() -> Entry {
        let manifest = Manifest::from_value(
            &json!({"agent_id": "a", "org_id": "o", "provider": "stripe", "method": "payment",
                    "parameters": {"amount": 1000}}),
            "/manifest",
        )
        .expect("manifest");
        Entry::Decision(Box::new(DecisionEntry {
            server_time: "2026-11-23T11:00:00.000000Z".into(),
            decision_id: "d1".into(),
            manifest_id: "m1".into(),
            manifest_hash: hex::encode(manifest.canonical_hash().expect("hash")),
            manifest,
            screening: json!({"prompt_injection": {"flagged": false}}),
            policy_version: Some("ab".repeat(32)),
            status: Status::Approved,
            reasons: vec![],
            seal: Some(SealGrant {
                seal_id: "s1".into(),
                expires_at: "2026-11-23T11:05:00.000000Z".into(),
            }),
            latency_us: Latency {
                screen: 3,
                policy: 4,
                total: 20,
            },
            submitted_by: "key1".into(),
            redacted: vec![],
        }))
    }

    #[test]
    fn entries_roundtrip_through_canonical_bytes() {
        let e = decision();
        let bytes = e.canonical_bytes().expect("canonical");
        assert!(
            bytes.starts_with(br#"{"decision_id":"d1","kind":"decision","#),
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        assert_eq!(Entry::from_canonical(&bytes).expect("parse"), e);
        // Canonical bytes are a fixed point: re-encoding the parsed entry changes nothing.
        assert_eq!(
            Entry::from_canonical(&bytes)
                .expect("parse")
                .canonical_bytes()
                .expect("again"),
            bytes
        );
    }

    #[test]
    fn status_names_roundtrip() {
        for s in [Status::Approved, Status::Denied, Status::PendingApproval] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).expect("json"), json!(s.as_str()));
        }
        assert_eq!(Status::parse("maybe"), None);
    }
}
