//! The human-in-the-loop queue: decisions the policy sent to `pending_approval`, and a
//! person's answer to each.
//!
//! An answer is an `approval_resolved` ledger entry. The store refuses a second one for
//! the same decision inside the committing transaction, so when two approvers answer
//! at once exactly one wins. Approving grants a seal for the decision's manifest, made
//! as a decision's seal is (it names the decision's ledger index, and is signed only
//! after the answer committed); refusing grants nothing.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sealgate_core::entry::{ApprovalEntry, DecisionEntry, Entry, SealGrant, Status};
use sealgate_core::seal;
use sealgate_core::timefmt;
use sealgate_store::{ApiKey, AuditRow, NewEntry, Rejection};
use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::extract::{only_fields, query_params};
use crate::service::audit::{self, AuditRecord, DEFAULT_LIMIT};
use crate::service::decide::claims_without_index;
use crate::service::new_id;
use crate::state::AppState;

/// The longest reason an approver may record, in bytes.
pub const MAX_REASON_LEN: usize = 2048;

/// The longest decision id looked up (ids sealgate issues are 36 bytes).
const MAX_ID_LEN: usize = 256;

/// The longest an agent may wait on `GET /v1/decisions/{id}?wait=`, in seconds.
pub const MAX_WAIT_SECS: u64 = 30;

/// How many requests one process lets wait at once; past that, `wait` is ignored and
/// the current state is the answer, so waiting agents cannot crowd out the rest.
pub const MAX_WAITING: usize = 512;

/// How often a waiting agent's decision is read again at most, and at least: answers
/// committed by this process wake it at once, answers from other replicas are found
/// by reading, backing off from the first pause to the last.
const WAIT_POLL: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(1));

#[derive(Debug, Serialize)]
pub struct ApprovalQueue {
    /// Pending decisions, newest first.
    pub approvals: Vec<Waiting>,
    pub next_cursor: Option<String>,
}

/// A decision in the queue: its audit record and when it stops taking approvals.
#[derive(Debug, Serialize)]
pub struct Waiting {
    #[serde(flatten)]
    pub record: AuditRecord,
    pub approval_expires_at: String,
}

#[derive(Debug, Serialize)]
pub struct ResolutionResponse {
    pub decision_id: String,
    /// `approved` or `denied`: the outcome now in force.
    pub status: Status,
    pub approved: bool,
    pub approver: String,
    pub reason: String,
    /// Ledger index of the decision that was pending.
    pub decision_index: u64,
    /// Ledger index and leaf hash of the `approval_resolved` entry.
    pub ledger_index: u64,
    pub leaf_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seal_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// `GET /v1/approvals?limit=&cursor=`: decisions still waiting for a person, within
/// the approval window (`approval_ttl`); older ones can no longer be approved.
pub async fn queue(state: &AppState, raw: Option<&str>) -> Result<ApprovalQueue, ApiError> {
    let mut limit = DEFAULT_LIMIT;
    let mut before = None;
    for (k, v) in query_params(raw, &["limit", "cursor"])? {
        match k.as_str() {
            "limit" => limit = audit::parse_limit(&v)?,
            "cursor" => before = Some(audit::decode_cursor(&v)?),
            _ => {}
        }
    }
    let open_since = timefmt::format(state.now() - state.settings.approval_ttl);
    let entries = state
        .store
        .pending_approvals(before, Some(&open_since), limit)
        .await?;
    let full = entries.len() as u32 == limit;
    let approvals = entries
        .into_iter()
        .map(|entry| {
            let record = audit::record(AuditRow {
                entry,
                resolution: None,
                redemption: None,
            })?;
            let deadline = approval_deadline(state, &record.created_at)?;
            Ok(Waiting {
                record,
                approval_expires_at: timefmt::format(deadline),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let next_cursor = match approvals.last() {
        Some(last) if full => Some(audit::encode_cursor(last.record.ledger_index)),
        _ => None,
    };
    Ok(ApprovalQueue {
        approvals,
        next_cursor,
    })
}

/// `POST /v1/approvals/{decision_id}/approve` or `/deny`, body `{"reason"?}`.
pub async fn resolve(
    state: &AppState,
    caller: &ApiKey,
    decision_id: &str,
    approve: bool,
    body: Map<String, Value>,
) -> Result<ResolutionResponse, ApiError> {
    only_fields(&body, &["reason"])?;
    let reason = match body.get("reason") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.len() <= MAX_REASON_LEN => s.clone(),
        Some(Value::String(_)) => {
            return Err(ApiError::bad_request(
                "/reason",
                format!("longer than {MAX_REASON_LEN} bytes"),
            ))
        }
        Some(_) => return Err(ApiError::bad_request("/reason", "expected a string")),
    };

    if decision_id.is_empty() || decision_id.len() > MAX_ID_LEN {
        return Err(ApiError::NotFound(
            "no such decision: a decision id is 1 to 256 bytes".into(),
        ));
    }
    // The ledger keeps the reason forever, so a credential or personal data in it could
    // never be removed: refuse it, naming only the kinds found.
    let found = state.screener.find_secrets(&reason);
    if !found.is_empty() {
        let mut kinds: Vec<&str> = found.iter().map(|m| m.kind.as_str()).collect();
        kinds.dedup();
        return Err(ApiError::bad_request(
            "/reason",
            format!(
                "contains what looks like {}; the ledger keeps reasons forever, so leave it out",
                kinds.join(", ")
            ),
        ));
    }

    let row =
        state.store.decision(decision_id).await?.ok_or_else(|| {
            ApiError::NotFound(format!("no decision {decision_id} in the ledger"))
        })?;
    let decision_index = row.entry.index;
    let decision = match Entry::from_canonical(&row.entry.canonical) {
        Ok(Entry::Decision(d)) => d,
        Ok(_) | Err(_) => {
            return Err(ApiError::Internal(format!(
                "entry {decision_index} is indexed as a decision but does not read as one"
            )))
        }
    };
    if let Some(r) = &row.resolution {
        // The approver who approved may ask again (say its answer was lost) and gets the
        // same seal, rebuilt from the committed entry; anyone else, or a change of mind,
        // is refused.
        if approve && r.approved && r.approver == caller.id {
            return reissue(state, &decision, decision_index, r.index).await;
        }
        return Err(already_resolved(
            decision_id,
            Some((r.approved, &r.approver)),
        ));
    }
    if decision.status != Status::PendingApproval {
        return Err(ApiError::Conflict(format!(
            "decision {decision_id} is {}; only a pending_approval decision takes an answer",
            decision.status.as_str()
        )));
    }

    let now = state.now();
    let deadline = approval_deadline(state, &decision.server_time)?;
    if approve && now >= deadline {
        // A person may still refuse: that grants nothing and closes the request.
        return Err(ApiError::Gone(format!(
            "decision {decision_id} waited past its approval window (approval_ttl_secs = {}), \
             which closed at {}; it can be denied, not approved",
            state.settings.approval_ttl.as_secs(),
            timefmt::format(deadline)
        )));
    }
    let grant = approve.then(|| SealGrant {
        seal_id: new_id(),
        expires_at: timefmt::format(now + state.settings.seal_ttl),
    });
    let claims = grant
        .as_ref()
        .map(|g| claims_without_index(state, &decision, g, now));
    let entry = ApprovalEntry {
        server_time: timefmt::format(now),
        decision_index,
        decision_id: decision_id.to_owned(),
        approved: approve,
        approver: caller.id.clone(),
        reason: reason.clone(),
        seal: grant.clone(),
    };
    let new = NewEntry::new(Entry::ApprovalResolved(entry))
        .map_err(|e| ApiError::Internal(format!("canonical entry: {e}")))?;
    let appended = match state.appender.append(new).await? {
        Ok(appended) => appended,
        Err(Rejection::AlreadyResolved(_)) => {
            // Another answer committed first; report what it was, if it can be read.
            let winner = state.store.decision(decision_id).await?;
            let winner = winner.and_then(|w| w.resolution);
            return Err(already_resolved(
                decision_id,
                winner.as_ref().map(|r| (r.approved, r.approver.as_str())),
            ));
        }
        Err(other) => return Err(ApiError::Internal(format!("answer rejected: {other}"))),
    };

    let counter = if approve {
        &state.metrics.resolved_approved
    } else {
        &state.metrics.resolved_denied
    };
    counter.fetch_add(1, Ordering::Relaxed);
    state.resolved.notify_waiters();
    let seal = claims.map(|mut c| {
        c.ledger_index = decision_index;
        c.approval_index = Some(appended.index);
        seal::sign(&c, &state.seal_signer)
    });
    Ok(ResolutionResponse {
        decision_id: decision_id.to_owned(),
        status: if approve {
            Status::Approved
        } else {
            Status::Denied
        },
        approved: approve,
        approver: caller.id.clone(),
        reason,
        decision_index,
        ledger_index: appended.index,
        leaf_hash: B64.encode(appended.leaf_hash),
        seal,
        seal_id: grant.as_ref().map(|g| g.seal_id.clone()),
        expires_at: grant.map(|g| g.expires_at),
    })
}

/// When a pending decision recorded at `server_time` stops taking approvals.
fn approval_deadline(state: &AppState, server_time: &str) -> Result<OffsetDateTime, ApiError> {
    let recorded = timefmt::parse(server_time).map_err(|e| {
        ApiError::Internal(format!("a decision has a bad time {server_time:?}: {e}"))
    })?;
    Ok(recorded + state.settings.approval_ttl)
}

fn already_resolved(decision_id: &str, winner: Option<(bool, &str)>) -> ApiError {
    ApiError::Conflict(match winner {
        Some((approved, approver)) => format!(
            "decision {decision_id} was already {} by {approver}",
            if approved { "approved" } else { "denied" }
        ),
        None => format!("decision {decision_id} was already resolved"),
    })
}

/// The answer of an approval already committed at `index`, with its seal signed again
/// from what the entry records (Ed25519 signatures are deterministic, so it is the same
/// token the first answer carried). `row.resolution` was read from that same entry
/// (`Resolution::from_entry`), so who approved is the entry's word, not the table's.
async fn reissue(
    state: &AppState,
    decision: &DecisionEntry,
    decision_index: u64,
    index: u64,
) -> Result<ResolutionResponse, ApiError> {
    let stored = state
        .store
        .entry(index)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("resolution entry {index} is missing")))?;
    let Ok(Entry::ApprovalResolved(a)) = Entry::from_canonical(&stored.canonical) else {
        return Err(ApiError::Internal(format!(
            "entry {index} is indexed as a resolution but does not read as one"
        )));
    };
    let grant = a
        .seal
        .clone()
        .ok_or_else(|| ApiError::Internal(format!("approval {index} granted no seal")))?;
    let seal = rebuild_seal(
        state,
        decision,
        decision_index,
        &grant,
        &a.server_time,
        Some(index),
    )?;
    Ok(ResolutionResponse {
        decision_id: a.decision_id,
        status: Status::Approved,
        approved: true,
        approver: a.approver,
        reason: a.reason,
        decision_index,
        ledger_index: index,
        leaf_hash: B64.encode(stored.leaf_hash),
        seal: Some(seal),
        seal_id: Some(grant.seal_id),
        expires_at: Some(grant.expires_at),
    })
}

/// The seal `grant` made when it was granted at `granted_at` (the granting entry's
/// `server_time`), signed again: the claims are all in the ledger, and Ed25519
/// signatures are deterministic, so this is the token first handed out.
fn rebuild_seal(
    state: &AppState,
    decision: &DecisionEntry,
    decision_index: u64,
    grant: &SealGrant,
    granted_at: &str,
    approval_index: Option<u64>,
) -> Result<String, ApiError> {
    let time = |s: &str| {
        timefmt::parse(s)
            .map_err(|e| ApiError::Internal(format!("a seal's entry has a bad time {s:?}: {e}")))
    };
    let mut claims = claims_without_index(state, decision, grant, time(granted_at)?);
    claims.exp = time(&grant.expires_at)?.unix_timestamp();
    claims.ledger_index = decision_index;
    claims.approval_index = approval_index;
    Ok(seal::sign(&claims, &state.seal_signer))
}

/// What `GET /v1/decisions/{decision_id}` tells the agent that submitted it.
#[derive(Debug, Serialize)]
pub struct DecisionState {
    pub decision_id: String,
    pub manifest_id: String,
    /// What the policy decided.
    pub status: Status,
    /// Whether the action may go ahead now: approved by the policy or by a person.
    pub approved: bool,
    pub reasons: Vec<String>,
    pub ledger_index: u64,
    pub resolution: Option<audit::ResolutionRecord>,
    /// For a decision the policy sent to a person: until when it may be approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seal_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    pub was_executed: bool,
}

/// The `wait` query parameter of `GET /v1/decisions/{id}`: 0 to [`MAX_WAIT_SECS`]
/// seconds, 0 (answer at once) when absent.
pub fn parse_wait(raw: Option<&str>) -> Result<Duration, ApiError> {
    let mut wait = Duration::ZERO;
    for (k, v) in query_params(raw, &["wait"])? {
        if k == "wait" {
            let secs = crate::extract::decimal(&v)
                .filter(|s| *s <= MAX_WAIT_SECS)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "wait",
                        format!("expected whole seconds from 0 to {MAX_WAIT_SECS}"),
                    )
                })?;
            wait = Duration::from_secs(secs);
        }
    }
    Ok(wait)
}

/// `GET /v1/decisions/{decision_id}?wait=`: a decision as the agent that submitted it
/// sees it, with its seal when it has one, so an agent whose action waited for a person
/// collects the seal itself (and one that lost a response gets it again). Another key's
/// decision is a 404, as if it did not exist. With `wait`, a decision still waiting for
/// a person is answered when a person answers, its approval window closes, or `wait`
/// runs out, whichever comes first.
pub async fn for_agent(
    state: &AppState,
    caller: &ApiKey,
    decision_id: &str,
    wait: Duration,
) -> Result<DecisionState, ApiError> {
    let started = tokio::time::Instant::now();
    // Registered before the first read, so an answer committed between a read and the
    // sleep after it still wakes this request.
    let answered = state.resolved.notified();
    tokio::pin!(answered);
    answered.as_mut().enable();
    let (row, d) = own_decision(state, caller, decision_id).await?;
    let closes = approval_deadline(state, &d.server_time)?;
    let open = d.status == Status::PendingApproval && row.resolution.is_none();
    if !open || wait.is_zero() || state.now() >= closes {
        return decision_state(state, row, d);
    }
    // Past the cap, the answer is the current state, as without `wait`.
    let Ok(_seat) = state.waiting.try_acquire() else {
        return decision_state(state, row, d);
    };
    let _counted = Counted::new(&state.metrics.waiting_agents);
    // Until the wait runs out or the window closes, whichever is first.
    let window = (closes - state.now()).try_into().unwrap_or(Duration::ZERO);
    let until = started + wait.min(window);
    let mut pause = WAIT_POLL.0;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() || state.stopping.load(Ordering::SeqCst) {
            break;
        }
        tokio::select! {
            () = &mut answered => {}
            () = tokio::time::sleep(pause.min(left)) => {}
        }
        answered.set(state.resolved.notified());
        answered.as_mut().enable();
        // The decision row cannot change; only its answer can come.
        if state.store.resolution(row.entry.index).await?.is_some() {
            break;
        }
        pause = (pause * 2).min(WAIT_POLL.1);
    }
    // Read whole again: the answer, and a redemption that may have followed it.
    let (row, d) = own_decision(state, caller, decision_id).await?;
    decision_state(state, row, d)
}

/// Counts a waiting request in a gauge for as long as it waits.
struct Counted<'a>(&'a AtomicU64);

impl<'a> Counted<'a> {
    fn new(gauge: &'a AtomicU64) -> Counted<'a> {
        gauge.fetch_add(1, Ordering::Relaxed);
        Counted(gauge)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The committed decision `decision_id` if `caller` submitted it; 404 otherwise.
async fn own_decision(
    state: &AppState,
    caller: &ApiKey,
    decision_id: &str,
) -> Result<(AuditRow, DecisionEntry), ApiError> {
    let missing = || ApiError::NotFound("no such decision for this key".into());
    if decision_id.is_empty() || decision_id.len() > MAX_ID_LEN {
        return Err(missing());
    }
    let row = state
        .store
        .decision(decision_id)
        .await?
        .ok_or_else(missing)?;
    let index = row.entry.index;
    let Ok(Entry::Decision(d)) = Entry::from_canonical(&row.entry.canonical) else {
        return Err(ApiError::Internal(format!(
            "entry {index} is indexed as a decision but does not read as one"
        )));
    };
    if d.submitted_by != caller.id {
        return Err(missing());
    }
    Ok((row, *d))
}

fn decision_state(
    state: &AppState,
    row: AuditRow,
    d: DecisionEntry,
) -> Result<DecisionState, ApiError> {
    let index = row.entry.index;
    let (seal, grant) = match (&d.seal, &row.resolution) {
        (Some(grant), _) => (
            Some(rebuild_seal(state, &d, index, grant, &d.server_time, None)?),
            Some(grant.clone()),
        ),
        // The resolutions row holds what the approval entry granted, and when.
        (None, Some(r)) => match &r.seal {
            Some((seal_id, expires_at)) => {
                let grant = SealGrant {
                    seal_id: seal_id.clone(),
                    expires_at: expires_at.clone(),
                };
                let seal = rebuild_seal(state, &d, index, &grant, &r.resolved_at, Some(r.index))?;
                (Some(seal), Some(grant))
            }
            None => (None, None),
        },
        _ => (None, None),
    };
    let approval_expires_at = match d.status {
        Status::PendingApproval => Some(timefmt::format(approval_deadline(state, &d.server_time)?)),
        _ => None,
    };
    Ok(DecisionState {
        approval_expires_at,
        decision_id: d.decision_id.clone(),
        manifest_id: d.manifest_id.clone(),
        status: d.status,
        approved: d.status == Status::Approved
            || row.resolution.as_ref().is_some_and(|r| r.approved),
        reasons: d.reasons.clone(),
        ledger_index: index,
        resolution: row.resolution.map(audit::ResolutionRecord::from),
        seal,
        seal_id: grant.as_ref().map(|g| g.seal_id.clone()),
        expires_at: grant.map(|g| g.expires_at),
        was_executed: row.redemption.is_some(),
    })
}
