//! The audit trail: decisions newest first, with `was_executed` derived from
//! redemption entries (never written back into the decision).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use sealgate_core::entry::{Entry, Status};
use sealgate_core::timefmt;
use sealgate_store::{AuditQuery, AuditRow};
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::extract::query_params;
use crate::state::AppState;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Serialize)]
pub struct AuditRecord {
    pub ledger_index: u64,
    pub decision_id: String,
    pub manifest_id: String,
    pub created_at: String,
    pub agent_id: String,
    pub org_id: String,
    pub user_id: Option<String>,
    pub provider: String,
    pub method: String,
    pub parameters: Value,
    pub reasoning: String,
    pub confidence_score: Option<f64>,
    pub environment: Option<String>,
    /// What the policy decided, as recorded; a person's answer is in `resolution`.
    pub status: Status,
    /// Whether the action may go ahead: approved by the policy or by a person.
    pub approved: bool,
    pub reasons: Vec<String>,
    pub denial_reason: Option<String>,
    pub policy_version: Option<String>,
    pub seal_id: Option<String>,
    pub expires_at: Option<String>,
    pub was_executed: bool,
    pub executed_at: Option<String>,
    pub screening: Value,
    /// A person's answer to a `pending_approval` decision, once given.
    pub resolution: Option<ResolutionRecord>,
}

#[derive(Debug, Serialize)]
pub struct ResolutionRecord {
    pub approved: bool,
    pub approver: String,
    pub resolved_at: String,
    /// Why, in the approver's words ("" when none was given).
    pub reason: String,
    /// Index of the `approval_resolved` entry.
    pub ledger_index: u64,
}

#[derive(Debug, Serialize)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    /// Pass as `cursor` to get the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

const PARAMS: &[&str] = &[
    "agent_id", "org_id", "method", "status", "since", "until", "limit", "cursor",
];

/// Parses the query string of `GET /v1/audit/query`.
pub fn parse_query(raw: Option<&str>) -> Result<AuditQuery, ApiError> {
    let mut q = AuditQuery {
        limit: DEFAULT_LIMIT,
        ..Default::default()
    };
    for (k, v) in query_params(raw, PARAMS)? {
        match k.as_str() {
            "agent_id" => q.agent_id = Some(v),
            "org_id" => q.org_id = Some(v),
            "method" => q.method = Some(v),
            "status" => {
                q.status = Some(Status::parse(&v).ok_or_else(|| {
                    ApiError::bad_request("status", "expected approved, denied or pending_approval")
                })?)
            }
            "since" | "until" => {
                let t = timefmt::parse(&v).map_err(|_| {
                    ApiError::bad_request(k.clone(), "expected an RFC 3339 timestamp")
                })?;
                let t = Some(timefmt::format(t));
                if k == "since" {
                    q.since = t
                } else {
                    q.until = t
                }
            }
            "limit" => q.limit = parse_limit(&v)?,
            "cursor" => q.before = Some(decode_cursor(&v)?),
            _ => {}
        }
    }
    Ok(q)
}

impl From<sealgate_store::Resolution> for ResolutionRecord {
    fn from(r: sealgate_store::Resolution) -> ResolutionRecord {
        ResolutionRecord {
            approved: r.approved,
            approver: r.approver,
            resolved_at: r.resolved_at,
            reason: r.reason,
            ledger_index: r.index,
        }
    }
}

/// A page size: 1 to [`MAX_LIMIT`].
pub(crate) fn parse_limit(v: &str) -> Result<u32, ApiError> {
    crate::extract::decimal(v)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            ApiError::bad_request(
                "limit",
                format!("expected an integer from 1 to {MAX_LIMIT}"),
            )
        })
}

pub(crate) fn encode_cursor(index: u64) -> String {
    B64URL.encode(format!("before:{index}"))
}

pub(crate) fn decode_cursor(c: &str) -> Result<u64, ApiError> {
    B64URL
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("before:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| ApiError::bad_request("cursor", "not a cursor this server issued"))
}

pub async fn query(state: &AppState, q: AuditQuery) -> Result<AuditPage, ApiError> {
    let rows = state.store.decisions(&q).await?;
    let full = rows.len() as u32 == q.limit;
    let records = rows
        .into_iter()
        .map(record)
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if full {
        records.last().map(|r| encode_cursor(r.ledger_index))
    } else {
        None
    };
    Ok(AuditPage {
        records,
        next_cursor,
    })
}

pub(crate) fn record(row: AuditRow) -> Result<AuditRecord, ApiError> {
    let entry = Entry::from_canonical(&row.entry.canonical).map_err(|e| {
        ApiError::Internal(format!("entry {} does not parse: {e}", row.entry.index))
    })?;
    let Entry::Decision(d) = entry else {
        return Err(ApiError::Internal(format!(
            "entry {} is indexed as a decision but is not one",
            row.entry.index
        )));
    };
    let m = d.manifest;
    let resolution = row.resolution;
    let approved_by_person = resolution.as_ref().is_some_and(|r| r.approved);
    let (seal_id, expires_at) = match (d.seal, resolution.as_ref().and_then(|r| r.seal.clone())) {
        (Some(s), _) => (Some(s.seal_id), Some(s.expires_at)),
        (None, Some((id, expires))) => (Some(id), Some(expires)),
        (None, None) => (None, None),
    };
    let denial_reason = match &resolution {
        Some(r) if !r.approved => Some(format!("refused by approver {}", r.approver)),
        _ => (d.status == Status::Denied).then(|| d.reasons.join("; ")),
    };
    Ok(AuditRecord {
        ledger_index: row.entry.index,
        decision_id: d.decision_id,
        manifest_id: d.manifest_id,
        created_at: d.server_time,
        agent_id: m.agent_id,
        org_id: m.org_id,
        user_id: m.user_id,
        provider: m.provider,
        method: m.method,
        parameters: Value::Object(m.parameters),
        reasoning: m.reasoning,
        confidence_score: m.confidence_score,
        environment: m.environment,
        status: d.status,
        approved: d.status == Status::Approved || approved_by_person,
        denial_reason,
        reasons: d.reasons,
        policy_version: d.policy_version,
        seal_id,
        expires_at,
        was_executed: row.redemption.is_some(),
        executed_at: row.redemption.map(|r| r.redeemed_at),
        screening: d.screening,
        resolution: resolution.map(ResolutionRecord::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_roundtrip_and_foreign_ones_are_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)).expect("cursor"), 42);
        assert!(decode_cursor("42").is_err());
        assert!(decode_cursor(&B64URL.encode("after:3")).is_err());
    }

    #[test]
    fn query_parameters_are_checked_by_name() {
        let q = parse_query(Some(
            "agent_id=a&status=denied&limit=10&since=2026-11-23T10:00:00Z",
        ))
        .expect("parse");
        assert_eq!(
            (q.agent_id.as_deref(), q.status, q.limit),
            (Some("a"), Some(Status::Denied), 10)
        );
        assert_eq!(q.since.as_deref(), Some("2026-11-23T10:00:00.000000Z"));
        for (bad, field) in [
            ("status=maybe", "status"),
            ("limit=0", "limit"),
            ("limit=5000", "limit"),
            ("since=yesterday", "since"),
            ("agnet_id=a", "agnet_id"),
            ("limit=1&limit=2", "limit"),
        ] {
            match parse_query(Some(bad)) {
                Err(ApiError::BadRequest { field: Some(f), .. }) => assert_eq!(f, field, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
