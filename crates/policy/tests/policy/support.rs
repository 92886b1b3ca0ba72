//! Shared helpers: the shipped finance bundle and input builders.

use serde_json::{json, Value};

use sealgate_policy::{Bundle, PreparedPolicy};

/// `policies/finance.rego` from the repository root.
pub(crate) fn finance_source() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies/finance.rego");
    std::fs::read_to_string(path).expect("policies/finance.rego is readable")
}

pub(crate) fn finance() -> PreparedPolicy {
    let bundle = Bundle::from_files([("finance.rego", finance_source())]).unwrap();
    PreparedPolicy::prepare(&bundle).unwrap()
}

/// A policy from one source file.
pub(crate) fn policy(source: &str) -> PreparedPolicy {
    let bundle = Bundle::from_files([("test.rego", source)]).unwrap();
    PreparedPolicy::prepare(&bundle).unwrap()
}

/// A policy whose decision is whatever `input.decision` says, to drive the decoder and
/// the combination through the real engines.
pub(crate) fn echo() -> PreparedPolicy {
    policy("package sealgate\nimport rego.v1\ndecision := input.decision\n")
}

/// A clean screening result.
pub(crate) fn clean() -> Value {
    json!({
        "prompt_injection": {"flagged": false, "score": 0.0, "families": [], "fields": []},
        "secrets": []
    })
}

/// An input for a development-environment manifest with the given method and parameters.
pub(crate) fn input(method: &str, parameters: Value) -> Value {
    json!({
        "manifest": {
            "agent_id": "agent-1",
            "org_id": "org-1",
            "user_id": "user-1",
            "provider": "stripe",
            "method": method,
            "parameters": parameters,
            "reasoning": "customer asked",
            "confidence_score": 0.9,
            "environment": "dev"
        },
        "screening": clean(),
        "context": {}
    })
}
