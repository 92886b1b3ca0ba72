//! The shipped finance policy: the Relay report's live tests and the limits' edges.

use serde_json::json;

use sealgate_policy::{Backend, Outcome, Verdict};

use crate::support::{finance, input};

fn approved() -> Verdict {
    Verdict {
        outcome: Outcome::Approve,
        reasons: vec![],
    }
}

fn denied(reason: &str) -> Verdict {
    Verdict {
        outcome: Outcome::Deny,
        reasons: vec![reason.to_owned()],
    }
}

#[test]
fn finance_runs_on_the_rvm() {
    let policy = finance();
    assert_eq!(
        policy.backend(),
        Backend::Rvm,
        "{:?}",
        policy.rvm_unavailable()
    );
}

#[test]
fn relay_live_tests() {
    let policy = finance();
    // Test 1: a $10 payment is approved.
    assert_eq!(
        policy.evaluate(&input("payment", json!({"amount": 1000}))),
        approved()
    );
    // Test 2: a $100 payment is denied with exactly the Relay reason.
    assert_eq!(
        policy.evaluate(&input("payment", json!({"amount": 10000}))),
        denied("Payment amount exceeds $50.00 limit")
    );
    // A $50 refund is approved.
    assert_eq!(
        policy.evaluate(&input("refund", json!({"amount": 5000}))),
        approved()
    );
}

#[test]
fn limits_are_inclusive() {
    let policy = finance();
    let cases = [
        ("payment", 0, approved()),
        ("payment", 5000, approved()),
        (
            "payment",
            5001,
            denied("Payment amount exceeds $50.00 limit"),
        ),
        ("refund", 10000, approved()),
        (
            "refund",
            10001,
            denied("Refund amount exceeds $100.00 limit"),
        ),
    ];
    for (method, amount, expected) in cases {
        for backend in [Backend::Rvm, Backend::Interpreter] {
            let verdict = policy.evaluate_with(backend, &input(method, json!({"amount": amount})));
            assert_eq!(verdict, expected, "{method} {amount} on {backend:?}");
        }
    }
}

#[test]
fn unusable_amounts_are_denied_with_a_clear_reason() {
    let policy = finance();
    let cases = [
        (
            json!({}),
            "payment amount is missing: parameters.amount must be a number of cents",
        ),
        (
            json!({"amount": "1000"}),
            "payment amount must be a number of cents",
        ),
        (
            json!({"amount": null}),
            "payment amount must be a number of cents",
        ),
        (
            json!({"amount": false}),
            "payment amount must be a number of cents",
        ),
        (json!({"amount": -1}), "payment amount must not be negative"),
        (
            json!({"amount": 10.5}),
            "payment amount must be a whole number of cents",
        ),
        (
            json!("not an object"),
            "payment amount is missing: parameters.amount must be a number of cents",
        ),
    ];
    for (parameters, reason) in cases {
        let verdict = policy.evaluate(&input("payment", parameters.clone()));
        assert_eq!(verdict, denied(reason), "{parameters}");
    }
}

#[test]
fn unknown_methods_are_denied() {
    let verdict = finance().evaluate(&input("transfer", json!({"amount": 1})));
    assert_eq!(
        verdict,
        denied("method transfer is not allowed by policy finance")
    );
    let mut no_method = input("payment", json!({"amount": 1}));
    no_method["manifest"]["method"] = json!(7);
    assert_eq!(
        finance().evaluate(&no_method),
        denied("manifest method must be a string")
    );
}

#[test]
fn prompt_injection_needs_a_person() {
    let mut flagged = input("payment", json!({"amount": 1000}));
    flagged["screening"]["prompt_injection"] = json!({
        "flagged": true, "score": 0.97, "families": ["ignore_previous"],
        "fields": ["/reasoning", "/parameters/memo"]
    });
    assert_eq!(
        finance().evaluate(&flagged),
        Verdict {
            outcome: Outcome::RequireApproval,
            reasons: vec!["prompt injection suspected in /reasoning, /parameters/memo".into()],
        }
    );
    flagged["screening"]["prompt_injection"]["fields"] = json!([]);
    assert_eq!(
        finance().evaluate(&flagged).reasons,
        ["prompt injection suspected in the manifest"]
    );
}

#[test]
fn a_deny_outranks_a_request_for_approval() {
    let mut both = input("payment", json!({"amount": 9999}));
    both["screening"]["prompt_injection"]["flagged"] = json!(true);
    assert_eq!(
        finance().evaluate(&both),
        denied("Payment amount exceeds $50.00 limit")
    );
}

#[test]
fn secrets_in_parameters_are_denied() {
    let mut leaky = input("payment", json!({"amount": 1000, "memo": "sk_live_..."}));
    leaky["screening"]["secrets"] = json!([{"type": "stripe_key", "field": "/parameters/memo"}]);
    assert_eq!(
        finance().evaluate(&leaky),
        denied("credential or secret detected in /parameters/memo")
    );
    // A finding outside the parameters is not this rule's business.
    leaky["screening"]["secrets"] = json!([{"type": "stripe_key", "field": "/reasoning"}]);
    assert_eq!(finance().evaluate(&leaky), approved());
}

#[test]
fn low_confidence_in_production_needs_a_person() {
    let mut prod = input("refund", json!({"amount": 100}));
    prod["manifest"]["environment"] = json!("production");
    prod["manifest"]["confidence_score"] = json!(0.49);
    assert_eq!(
        finance().evaluate(&prod),
        Verdict {
            outcome: Outcome::RequireApproval,
            reasons: vec!["production action with confidence_score below 0.5".into()],
        }
    );
    prod["manifest"]["confidence_score"] = json!(0.5);
    assert_eq!(finance().evaluate(&prod), approved());
    prod["manifest"]["environment"] = json!("dev");
    prod["manifest"]["confidence_score"] = json!(0.1);
    assert_eq!(finance().evaluate(&prod), approved());
}
