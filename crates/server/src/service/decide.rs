//! The decision loop: validate → screen → evaluate policy → record → seal.
//!
//! The entry is committed before the response is built, and a seal is signed only
//! for an entry that committed, naming its index. Anything doubtful (no active
//! policy, a policy error, a malformed verdict) becomes a recorded denial; a store
//! failure becomes a 503 with nothing approved.

use std::time::Instant;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sealgate_core::entry::{DecisionEntry, Entry, Latency, SealGrant, Status};
use sealgate_core::seal::{self, SealClaims};
use sealgate_core::timefmt;
use sealgate_core::Manifest;
use sealgate_policy::Outcome;
use sealgate_store::{ApiKey, NewEntry};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::extract::only_fields;
use crate::service::new_id;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct DecisionResponse {
    pub decision_id: String,
    pub manifest_id: String,
    pub status: Status,
    pub approved: bool,
    pub reasons: Vec<String>,
    pub policy_version: Option<String>,
    pub ledger_index: u64,
    /// Base64 RFC 6962 leaf hash of the recorded entry.
    pub leaf_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seal_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// Decides on the manifest in `body` (`{"manifest": {...}}`) for `caller`.
pub async fn decide(
    state: &AppState,
    caller: &ApiKey,
    body: Map<String, Value>,
    started: Instant,
) -> Result<DecisionResponse, ApiError> {
    only_fields(&body, &["manifest"])?;
    let raw = body
        .get("manifest")
        .ok_or_else(|| ApiError::bad_request("/manifest", "missing required field"))?;
    let manifest = Manifest::from_value(raw, "/manifest").map_err(|e| ApiError::BadRequest {
        detail: e.to_string(),
        field: Some(e.field),
    })?;

    let now = state.now();
    let server_time = timefmt::format(now);

    let t = Instant::now();
    let parameters = Value::Object(manifest.parameters.clone());
    let screening = state
        .screener
        .screen_manifest(&manifest.reasoning, &parameters);
    let screening = serde_json::to_value(&screening)
        .map_err(|e| ApiError::Internal(format!("screening report: {e}")))?;
    let screen_us = t.elapsed().as_micros() as u64;
    if screening["prompt_injection"]["flagged"] == json!(true) {
        state
            .metrics
            .screen_flagged
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    let t = Instant::now();
    let (status, reasons, policy_version) = match state.active_policy() {
        None => (
            Status::Denied,
            vec!["no policy is active; sealgate denies everything until one is".to_owned()],
            None,
        ),
        Some(active) => {
            let input = json!({
                "manifest": manifest.to_value(),
                "screening": screening,
                "context": {
                    "server_time": server_time,
                    "key_id": caller.id,
                    "key_name": caller.name,
                },
            });
            let verdict = active
                .prepared
                .evaluate_in(state.settings.policy_evaluation, &input);
            let status = match verdict.outcome {
                Outcome::Approve => Status::Approved,
                Outcome::Deny => Status::Denied,
                Outcome::RequireApproval => Status::PendingApproval,
            };
            (status, verdict.reasons, Some(active.version.clone()))
        }
    };
    let policy_us = t.elapsed().as_micros() as u64;

    let manifest_hash = manifest
        .canonical_hash()
        .map_err(|e| ApiError::Internal(format!("manifest hash: {e}")))?;
    let grant = (status == Status::Approved).then(|| SealGrant {
        seal_id: new_id(),
        expires_at: timefmt::format(now + state.settings.seal_ttl),
    });
    let decision_id = new_id();
    let manifest_id = manifest.manifest_id.clone().unwrap_or_else(new_id);
    // Redaction changes only what is recorded: the policy saw the original values and
    // the seal binds the original manifest's hash.
    let (manifest, redacted) = match &state.redactor {
        None => (manifest, Vec::new()),
        Some(redactor) => redact(redactor, manifest)?,
    };
    let entry = DecisionEntry {
        server_time,
        decision_id: decision_id.clone(),
        manifest_id: manifest_id.clone(),
        manifest,
        manifest_hash: hex::encode(manifest_hash),
        screening,
        policy_version: policy_version.clone(),
        status,
        reasons: reasons.clone(),
        seal: grant.clone(),
        latency_us: Latency {
            screen: screen_us,
            policy: policy_us,
            total: started.elapsed().as_micros() as u64,
        },
        submitted_by: caller.id.clone(),
        redacted,
    };
    let claims_base = grant
        .as_ref()
        .map(|g| (g.clone(), claims_without_index(state, &entry, g, now)));
    let new = NewEntry::new(Entry::Decision(Box::new(entry)))
        .map_err(|e| ApiError::Internal(format!("canonical entry: {e}")))?;
    // An entry the tiles cannot serve would break every mirror of the log: refuse it.
    if new.canonical.len() > sealgate_ledger::MAX_ENTRY_LEN {
        return Err(ApiError::BadRequest {
            detail: format!(
                "the decision's ledger entry would be {} bytes, over the limit of {} \
                 (an entry must fit a tlog-tiles entry bundle); shorten reasoning or parameters",
                new.canonical.len(),
                sealgate_ledger::MAX_ENTRY_LEN
            ),
            field: None,
        });
    }

    let appended = match state.appender.append(new).await {
        Ok(Ok(appended)) => appended,
        Ok(Err(rejection)) => {
            return Err(ApiError::Internal(format!(
                "decision entry rejected: {rejection}"
            )))
        }
        Err(e) => {
            state
                .metrics
                .unavailable
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(e.into());
        }
    };

    let (seal, seal_id, expires_at) = match claims_base {
        Some((grant, mut claims)) => {
            claims.ledger_index = appended.index;
            (
                Some(seal::sign(&claims, &state.seal_signer)),
                Some(grant.seal_id),
                Some(grant.expires_at),
            )
        }
        None => (None, None, None),
    };
    let counter = match status {
        Status::Approved => &state.metrics.approved,
        Status::Denied => &state.metrics.denied,
        Status::PendingApproval => &state.metrics.pending,
    };
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    state
        .metrics
        .observe_decision_us(started.elapsed().as_micros() as u64);

    Ok(DecisionResponse {
        decision_id,
        manifest_id,
        status,
        approved: status == Status::Approved,
        reasons,
        policy_version,
        ledger_index: appended.index,
        leaf_hash: B64.encode(appended.leaf_hash),
        seal,
        seal_id,
        expires_at,
    })
}

/// The claims of a seal for decision `e`, but for `ledger_index`, which the caller sets
/// to the decision's index once that is known.
pub(crate) fn claims_without_index(
    state: &AppState,
    e: &DecisionEntry,
    grant: &SealGrant,
    now: time::OffsetDateTime,
) -> SealClaims {
    SealClaims {
        iss: state.settings.origin.clone(),
        sub: e.manifest.agent_id.clone(),
        jti: grant.seal_id.clone(),
        iat: now.unix_timestamp(),
        exp: (now + state.settings.seal_ttl).unix_timestamp(),
        decision_id: e.decision_id.clone(),
        manifest_id: e.manifest_id.clone(),
        manifest_hash: e.manifest_hash.clone(),
        ledger_index: 0,
        approval_index: None,
        policy_version: e.policy_version.clone().unwrap_or_default(),
        org_id: e.manifest.org_id.clone(),
        provider: e.manifest.provider.clone(),
        method: e.manifest.method.clone(),
    }
}

fn redact(
    redactor: &sealgate_screen::Redactor,
    manifest: Manifest,
) -> Result<(Manifest, Vec<String>), ApiError> {
    let mut value = manifest.to_value();
    let done = redactor.redact(&mut value);
    if done.is_empty() {
        return Ok((manifest, Vec::new()));
    }
    let pointers = done.into_iter().map(|r| r.pointer).collect();
    let manifest = serde_json::from_value(value).map_err(|e| {
        ApiError::Internal(format!(
            "redaction produced an invalid manifest (check redaction.pointers): {e}"
        ))
    })?;
    Ok((manifest, pointers))
}
