//! Seal verification and single-use redemption.
//!
//! Redemption is a ledger entry; the store refuses a second one for the same seal
//! inside the committing transaction, so under any race exactly one wins.

use sealgate_core::entry::{Entry, RedemptionEntry};
use sealgate_core::seal::{self, SealClaims, SealError};
use sealgate_store::{ApiKey, NewEntry, Rejection};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::extract::{only_fields, string_field};
use crate::service::now_str;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct VerifyResponse {
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<SealClaims>,
    pub expired: bool,
    pub redeemed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redeemed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redemption_index: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct RedeemResponse {
    pub seal_id: String,
    pub redeemed: bool,
    pub ledger_index: u64,
    pub leaf_hash: String,
    pub redeemed_at: String,
    pub decision_index: u64,
}

fn check_signature(state: &AppState, token: &str) -> Result<SealClaims, SealError> {
    seal::verify(token, |kid| state.seal_keys.get(kid))
}

/// Reports on a seal: signature, expiry, whether it was issued here and redeemed.
pub async fn verify(
    state: &AppState,
    body: Map<String, Value>,
) -> Result<VerifyResponse, ApiError> {
    only_fields(&body, &["seal"])?;
    let token = string_field(&body, "seal")?;
    let claims = match check_signature(state, token) {
        Ok(c) => c,
        Err(e) => {
            return Ok(VerifyResponse {
                valid: false,
                reason: Some(e.to_string()),
                claims: None,
                expired: false,
                redeemed: false,
                redeemed_at: None,
                redemption_index: None,
            })
        }
    };
    let expired = claims.expired_at(state.now().unix_timestamp());
    let record = state.store.seal(&claims.jti).await?;
    let (valid, reason) = match (&record, expired) {
        (None, _) => (
            false,
            Some("seal is signed by this gateway but not in its ledger".to_owned()),
        ),
        (Some(r), _) if r.decision_index != claims.ledger_index => (
            false,
            Some("seal names a ledger index other than the one that granted it".to_owned()),
        ),
        (Some(_), true) => (false, Some(SealError::Expired.to_string())),
        (Some(r), false) if r.redemption.is_some() => {
            (false, Some("seal was already redeemed".to_owned()))
        }
        (Some(_), false) => (true, None),
    };
    let redemption = record.and_then(|r| r.redemption);
    Ok(VerifyResponse {
        valid,
        reason,
        expired,
        redeemed: redemption.is_some(),
        redeemed_at: redemption.as_ref().map(|r| r.redeemed_at.clone()),
        redemption_index: redemption.map(|r| r.index),
        claims: Some(claims),
    })
}

/// Redeems `seal_id` once. The body carries the seal itself (`{"seal": "<jws>"}`):
/// possession of the token, not knowledge of its id, is what authorises execution.
pub async fn redeem(
    state: &AppState,
    caller: &ApiKey,
    seal_id: &str,
    body: Map<String, Value>,
) -> Result<RedeemResponse, ApiError> {
    only_fields(&body, &["seal"])?;
    let token = string_field(&body, "seal")?;
    let claims = check_signature(state, token)
        .map_err(|e| ApiError::Unprocessable(format!("seal refused: {e}")))?;
    if claims.jti != seal_id {
        return Err(ApiError::Unprocessable(
            "seal refused: it is for a different seal_id than the path names".into(),
        ));
    }
    let record = state
        .store
        .seal(seal_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("seal {seal_id} is not in the ledger")))?;
    if record.decision_index != claims.ledger_index {
        return Err(ApiError::Unprocessable(
            "seal refused: ledger index does not match the granting entry".into(),
        ));
    }
    if let Some(r) = &record.redemption {
        state
            .metrics
            .redemption_conflicts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Err(ApiError::Conflict(format!(
            "seal {seal_id} was already redeemed at {}",
            r.redeemed_at
        )));
    }
    if claims.expired_at(state.now().unix_timestamp()) {
        return Err(ApiError::Gone(format!("seal {seal_id} expired")));
    }
    let redeemed_at = now_str(state);
    let entry = Entry::SealRedeemed(RedemptionEntry {
        server_time: redeemed_at.clone(),
        seal_id: seal_id.to_owned(),
        decision_index: record.decision_index,
        redeemed_by: caller.id.clone(),
    });
    let new =
        NewEntry::new(entry).map_err(|e| ApiError::Internal(format!("canonical entry: {e}")))?;
    match state.appender.append(new).await? {
        Ok(appended) => {
            state
                .metrics
                .redemptions
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            use base64::Engine as _;
            Ok(RedeemResponse {
                seal_id: seal_id.to_owned(),
                redeemed: true,
                ledger_index: appended.index,
                leaf_hash: base64::engine::general_purpose::STANDARD.encode(appended.leaf_hash),
                redeemed_at,
                decision_index: record.decision_index,
            })
        }
        Err(Rejection::AlreadyRedeemed(_)) => {
            state
                .metrics
                .redemption_conflicts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(ApiError::Conflict(format!(
                "seal {seal_id} was already redeemed"
            )))
        }
        Err(other) => Err(ApiError::Internal(format!("redemption rejected: {other}"))),
    }
}
