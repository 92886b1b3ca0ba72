//! The RVM and the interpreter must give the same verdict for every input.

use proptest::prelude::*;
use serde_json::{json, Value};

use sealgate_policy::Backend;

use crate::support::{echo, finance};

fn amount() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        (-2i64..=12_000).prop_map(|n| Some(json!(n))),
        prop::sample::select(vec![0i64, 4999, 5000, 5001, 9999, 10000, 10001])
            .prop_map(|n| Some(json!(n))),
        (-100.0f64..20_000.0).prop_map(|f| Some(json!(f))),
        Just(Some(Value::Null)),
        Just(Some(json!(true))),
        "[0-9a-z]{0,6}".prop_map(|s| Some(json!(s))),
        Just(Some(json!([5000]))),
    ]
}

fn json_pointer() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/parameters".to_owned()),
        "/parameters/[a-z]{1,6}",
        Just("/reasoning".to_owned()),
        "/[a-z_]{1,8}",
    ]
}

/// Odd values where the screener normally puts well-formed findings: the policy must
/// not diverge between engines (or error) on them either.
fn junk() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(1)),
        Just(json!("x")),
        Just(json!([1, null, "/parameters/a"])),
        Just(json!({"field": 3})),
        Just(json!([{"type": "k"}, "s", {"field": null}])),
    ]
}

pub(crate) fn manifest_input() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just(json!("payment")),
            Just(json!("refund")),
            Just(json!("transfer")),
            Just(json!("")),
            Just(json!(3)),
            "[a-z]{1,8}".prop_map(|s| json!(s)),
        ],
        amount(),
        prop_oneof![Just("production"), Just("dev"), Just("staging")],
        prop_oneof![
            (0.0f64..=1.0).prop_map(|f| json!(f)),
            Just(json!(0.5)),
            Just(Value::Null),
            Just(json!("high")),
        ],
        any::<bool>(),
        prop::collection::vec(json_pointer(), 0..3),
        prop::collection::vec(json_pointer(), 0..3),
        prop::option::weighted(0.15, (0usize..3, junk())),
    )
        .prop_map(
            |(method, amount, environment, confidence, flagged, injected, secrets, junk)| {
                let mut parameters = json!({"currency": "usd"});
                if let Some(amount) = amount {
                    parameters["amount"] = amount;
                }
                let secrets: Vec<Value> = secrets
                    .into_iter()
                    .map(|field| json!({"type": "api_key", "field": field}))
                    .collect();
                let mut input = json!({
                    "manifest": {
                        "agent_id": "a", "org_id": "o", "user_id": "u",
                        "provider": "stripe", "method": method, "parameters": parameters,
                        "reasoning": "r", "confidence_score": confidence,
                        "environment": environment
                    },
                    "screening": {
                        "prompt_injection": {
                            "flagged": flagged, "score": 0.5,
                            "families": [], "fields": injected
                        },
                        "secrets": secrets
                    },
                    "context": {}
                });
                if let Some((at, junk)) = junk {
                    let slot = match at {
                        0 => &mut input["screening"]["secrets"],
                        1 => &mut input["screening"]["prompt_injection"]["fields"],
                        _ => &mut input["screening"]["prompt_injection"],
                    };
                    *slot = junk;
                }
                input
            },
        )
}

fn decision_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..5).prop_map(|n| json!(n)),
        "[a-z ]{0,8}".prop_map(Value::String),
    ];
    let reasons = prop_oneof![
        prop::collection::vec("[a-z ]{0,12}", 0..4).prop_map(|v| json!(v)),
        leaf.clone(),
        prop::collection::vec(leaf.clone(), 0..3).prop_map(Value::Array),
    ];
    prop_oneof![
        8 => (
            prop::option::of(prop_oneof![any::<bool>().prop_map(Value::Bool), leaf.clone()]),
            prop::option::of(reasons.clone()),
            prop::option::of(reasons),
            prop::option::of(leaf.clone()),
        )
            .prop_map(|(allow, deny, ask, extra)| {
                let mut d = json!({});
                if let Some(v) = allow { d["allow"] = v; }
                if let Some(v) = deny { d["deny"] = v; }
                if let Some(v) = ask { d["require_approval"] = v; }
                if let Some(v) = extra { d["other"] = v; }
                d
            }),
        1 => leaf,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn finance_verdicts_agree(input in manifest_input()) {
        let policy = finance();
        let fast = policy.evaluate_with(Backend::Rvm, &input);
        let reference = policy.evaluate_with(Backend::Interpreter, &input);
        // The shipped policy guards its types: it never errors, whatever the input.
        prop_assert!(
            !reference.reasons.iter().any(|r| r.starts_with("policy")),
            "{:?} for {}", reference, input
        );
        prop_assert_eq!(fast, reference, "input: {}", input);
    }

    #[test]
    fn decoded_verdicts_agree(decision in decision_value()) {
        let policy = echo();
        let input = json!({ "decision": decision });
        let fast = policy.evaluate_with(Backend::Rvm, &input);
        let reference = policy.evaluate_with(Backend::Interpreter, &input);
        prop_assert_eq!(fast, reference, "input: {}", input);
    }
}
