//! Verdicts, and how a policy's decision document becomes one.
//!
//! The policy answers `{"allow": bool, "deny": [reason], "require_approval": [reason]}`.
//! This module decodes that answer strictly and combines it, failing closed: any deny
//! reason denies; otherwise any require_approval reason asks a person; otherwise only
//! `allow == true` approves. An error, an undefined decision or a malformed one denies
//! with a reason that says so. It knows nothing about Rego engines; `prepared` hands it
//! the raw result.

use regorus::Value as RegoValue;
use serde::{Deserialize, Serialize};

/// Most reasons a verdict carries; further ones are summarized in the last reason.
pub const MAX_REASONS: usize = 16;
/// Longest reason, in bytes; longer ones are cut at a character boundary and end in `…`.
pub const MAX_REASON_BYTES: usize = 512;

/// The reason given when a policy neither denies nor asks for approval nor allows.
pub const NOT_ALLOWED: &str = "policy did not allow the action";

/// What sealgate does with an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// The action may go ahead; it is sealed.
    #[serde(rename = "approved")]
    Approve,
    /// The action must not happen.
    #[serde(rename = "denied")]
    Deny,
    /// A person must decide.
    #[serde(rename = "pending_approval")]
    RequireApproval,
}

impl Outcome {
    /// The status string used on the wire and in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Approve => "approved",
            Outcome::Deny => "denied",
            Outcome::RequireApproval => "pending_approval",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy's answer for one manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// What to do.
    pub outcome: Outcome,
    /// Why: the deny reasons, the approval reasons, or empty when approved.
    pub reasons: Vec<String>,
}

impl Verdict {
    /// A denial with one reason.
    pub fn deny(reason: impl Into<String>) -> Self {
        Verdict {
            outcome: Outcome::Deny,
            reasons: cap_reasons(vec![reason.into()]),
        }
    }

    /// The denial for an evaluation that failed.
    pub fn policy_error(message: impl std::fmt::Display) -> Self {
        Verdict::deny(format!("policy error: {message}"))
    }

    /// The denial for a decision that does not have the contract's shape.
    pub fn malformed(message: impl std::fmt::Display) -> Self {
        Verdict::deny(format!("policy returned a malformed result: {message}"))
    }

    /// Whether the action may go ahead.
    pub fn is_approved(&self) -> bool {
        self.outcome == Outcome::Approve
    }
}

/// A decision document after strict decoding, before combination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// `allow`, if the policy said anything about it.
    pub allow: Option<bool>,
    /// Deny reasons.
    pub deny: Vec<String>,
    /// Reasons a person must decide.
    pub require_approval: Vec<String>,
}

impl Decision {
    /// Combines the three parts, failing closed (see the module docs).
    pub fn combine(self) -> Verdict {
        if !self.deny.is_empty() {
            Verdict {
                outcome: Outcome::Deny,
                reasons: cap_reasons(self.deny),
            }
        } else if !self.require_approval.is_empty() {
            Verdict {
                outcome: Outcome::RequireApproval,
                reasons: cap_reasons(self.require_approval),
            }
        } else if self.allow == Some(true) {
            Verdict {
                outcome: Outcome::Approve,
                reasons: Vec::new(),
            }
        } else {
            Verdict::deny(NOT_ALLOWED)
        }
    }
}

/// Turns an engine's raw answer (or its error) into a verdict.
pub(crate) fn verdict_from(result: Result<RegoValue, String>) -> Verdict {
    match result {
        Err(message) => Verdict::policy_error(message),
        Ok(RegoValue::Undefined) => {
            Verdict::policy_error("data.sealgate.decision is undefined for this input")
        }
        Ok(value) => match decode(&value) {
            Ok(decision) => decision.combine(),
            Err(message) => Verdict::malformed(message),
        },
    }
}

/// Strictly decodes a decision document. Unknown keys are refused rather than ignored,
/// so a misspelled `"denny"` cannot silently approve.
pub(crate) fn decode(value: &RegoValue) -> Result<Decision, String> {
    let RegoValue::Object(object) = value else {
        return Err(format!(
            "the decision must be an object, got {}",
            type_name(value)
        ));
    };
    let mut decision = Decision::default();
    for (key, field) in object.iter() {
        let RegoValue::String(key) = key else {
            return Err("the decision's keys must be strings".to_owned());
        };
        match key.as_ref() {
            "allow" => match field {
                RegoValue::Bool(b) => decision.allow = Some(*b),
                other => return Err(format!("allow must be a boolean, got {}", type_name(other))),
            },
            "deny" => decision.deny = reasons(field, "deny")?,
            "require_approval" => {
                decision.require_approval = reasons(field, "require_approval")?;
            }
            other => {
                let shown: String = other.chars().take(40).collect();
                return Err(format!("unexpected key {shown:?} in the decision"));
            }
        }
    }
    Ok(decision)
}

/// An array or set of strings (a Rego partial set rule yields a set).
fn reasons(value: &RegoValue, key: &str) -> Result<Vec<String>, String> {
    let items: Vec<&RegoValue> = match value {
        RegoValue::Array(items) => items.iter().collect(),
        RegoValue::Set(items) => items.iter().collect(),
        _ => return Err(format!("{key} must be an array of strings")),
    };
    items
        .into_iter()
        .map(|item| match item {
            RegoValue::String(s) => Ok(s.to_string()),
            _ => Err(format!("{key} must be an array of strings")),
        })
        .collect()
}

fn type_name(value: &RegoValue) -> &'static str {
    match value {
        RegoValue::Null => "null",
        RegoValue::Bool(_) => "a boolean",
        RegoValue::Number(_) => "a number",
        RegoValue::String(_) => "a string",
        RegoValue::Array(_) => "an array",
        RegoValue::Set(_) => "a set",
        RegoValue::Object(_) => "an object",
        RegoValue::Undefined => "undefined",
    }
}

/// Bounds how much a policy can write into a verdict (and so into the ledger and logs):
/// at most [`MAX_REASONS`] reasons of at most [`MAX_REASON_BYTES`], control characters
/// replaced by spaces. A verdict that had reasons keeps at least one.
fn cap_reasons(mut reasons: Vec<String>) -> Vec<String> {
    if reasons.len() > MAX_REASONS {
        let omitted = reasons.len() - (MAX_REASONS - 1);
        reasons.truncate(MAX_REASONS - 1);
        reasons.push(format!("… and {omitted} more reasons"));
    }
    reasons.into_iter().map(|r| cap_reason(&r)).collect()
}

fn cap_reason(reason: &str) -> String {
    let reason = if reason.trim().is_empty() {
        "(the policy gave an empty reason)"
    } else {
        reason
    };
    let mut out = String::with_capacity(reason.len().min(MAX_REASON_BYTES));
    for c in reason.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_REASON_BYTES - '…'.len_utf8() {
            out.push('…');
            return out;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn decoded(json: &str) -> Result<Decision, String> {
        decode(&RegoValue::from_json_str(json).unwrap())
    }

    #[test]
    fn outcome_serializes_as_status_strings() {
        for (outcome, s) in [
            (Outcome::Approve, "approved"),
            (Outcome::Deny, "denied"),
            (Outcome::RequireApproval, "pending_approval"),
        ] {
            assert_eq!(serde_json::to_value(outcome).unwrap(), s);
            assert_eq!(outcome.as_str(), s);
        }
        let v = Verdict::deny("no");
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"outcome":"denied","reasons":["no"]}"#);
        assert_eq!(serde_json::from_str::<Verdict>(&json).unwrap(), v);
    }

    #[test]
    fn decode_accepts_the_contract_shape() {
        let d = decoded(r#"{"allow": true, "deny": ["a"], "require_approval": []}"#).unwrap();
        assert_eq!(d.allow, Some(true));
        assert_eq!(d.deny, ["a"]);
        assert!(d.require_approval.is_empty());
        assert_eq!(decoded("{}").unwrap(), Decision::default());
    }

    #[test]
    fn decode_refuses_anything_else() {
        for (json, says) in [
            (r#""yes""#, "must be an object"),
            ("true", "must be an object"),
            (r#"{"allow": "true"}"#, "allow must be a boolean"),
            (r#"{"allow": 1}"#, "allow must be a boolean"),
            (r#"{"allow": null}"#, "allow must be a boolean"),
            (r#"{"deny": "no"}"#, "deny must be an array of strings"),
            (r#"{"deny": [1]}"#, "deny must be an array of strings"),
            (r#"{"deny": {"a": 1}}"#, "deny must be an array of strings"),
            (
                r#"{"require_approval": [null]}"#,
                "require_approval must be an array of strings",
            ),
            (r#"{"allow": true, "denny": ["x"]}"#, "unexpected key"),
        ] {
            let err = decoded(json).unwrap_err();
            assert!(err.contains(says), "{json}: {err}");
        }
    }

    #[test]
    fn long_and_many_reasons_are_capped() {
        let long = "é".repeat(MAX_REASON_BYTES);
        let v = Verdict::deny(long);
        assert!(v.reasons[0].len() <= MAX_REASON_BYTES);
        assert!(v.reasons[0].ends_with('…'));

        let many: Vec<String> = (0..100).map(|i| format!("r{i}")).collect();
        let v = Decision {
            deny: many,
            ..Decision::default()
        }
        .combine();
        assert_eq!(v.reasons.len(), MAX_REASONS);
        assert_eq!(v.reasons[MAX_REASONS - 1], "… and 85 more reasons");
    }

    #[test]
    fn control_characters_and_blank_reasons_are_made_visible() {
        let v = Verdict::deny("a\nb\u{1b}[31m");
        assert_eq!(v.reasons, ["a b [31m"]);
        let v = Verdict::deny("  ");
        assert_eq!(v.reasons, ["(the policy gave an empty reason)"]);
    }
}
