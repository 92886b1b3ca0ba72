//! Anything doubtful denies: runtime errors, undefined and malformed decisions; and bad
//! bundles are refused at preparation with a clear error.

use serde_json::json;

use sealgate_policy::{
    Backend, Bundle, BundleError, Mode, Outcome, PolicyError, PreparedPolicy, Verdict,
};

use crate::support::{echo, policy};

fn denied_on_both(policy: &PreparedPolicy, input: serde_json::Value) -> Vec<Verdict> {
    [Backend::Rvm, Backend::Interpreter]
        .into_iter()
        .map(|backend| {
            let verdict = policy.evaluate_with(backend, &input);
            assert_eq!(verdict.outcome, Outcome::Deny, "{backend:?}: {verdict:?}");
            assert_eq!(verdict.reasons.len(), 1, "{verdict:?}");
            verdict
        })
        .collect()
}

fn reason_starts(verdicts: &[Verdict], prefix: &str) {
    for v in verdicts {
        assert!(v.reasons[0].starts_with(prefix), "{:?}", v.reasons);
    }
}

#[test]
fn division_by_zero_denies() {
    let p =
        policy("package sealgate\nimport rego.v1\ndecision := {\"allow\": 10 / input.zero > 1}\n");
    let verdicts = denied_on_both(&p, json!({"zero": 0}));
    reason_starts(&verdicts, "policy error: ");
}

#[test]
fn conflicting_outputs_deny() {
    let p = policy(
        "package sealgate\nimport rego.v1\n\
         decision := {\"allow\": true} if input.a\n\
         decision := {\"allow\": false} if input.a\n",
    );
    let verdicts = denied_on_both(&p, json!({"a": true}));
    reason_starts(&verdicts, "policy error: ");
}

#[test]
fn a_failing_builtin_in_a_deny_rule_denies_on_the_interpreter() {
    // Builtin errors are strict: without that, to_number("abc") would make the deny
    // rule undefined and the action would be approved.
    let p = policy(
        "package sealgate\nimport rego.v1\n\
         decision := {\"allow\": true, \"deny\": deny}\n\
         deny contains \"too much\" if to_number(input.amount) > 10\n",
    );
    let verdict = p.evaluate_with(Backend::Interpreter, &json!({"amount": "abc"}));
    assert_eq!(verdict.outcome, Outcome::Deny);
    assert!(
        verdict.reasons[0].starts_with("policy error: could not parse string as number"),
        "{verdict:?}"
    );
    assert!(p.evaluate(&json!({"amount": "5"})).is_approved());
}

/// Pins a regorus 0.14 RVM limitation (see policies/README.md): an error inside a rule
/// body makes that body fail instead of failing the evaluation, even with strict
/// builtin errors. So a deny rule that can error is skipped on the RVM alone, which is
/// why `Mode::Confirmed` (the default) evaluates an RVM approval that absorbed an error
/// again on the interpreter. If regorus changes this, this test fails and the note can
/// go.
#[test]
fn rvm_alone_skips_a_rule_body_that_errors() {
    let p = policy(
        "package sealgate\nimport rego.v1\n\
         decision := {\"allow\": true, \"deny\": deny}\n\
         deny contains \"too much\" if to_number(input.amount) > 10\n",
    );
    assert_eq!(p.backend(), Backend::Rvm);
    let input = json!({"amount": "abc"});
    assert_eq!(
        p.evaluate_with(Backend::Rvm, &input).outcome,
        Outcome::Approve
    );
    assert_eq!(p.evaluate_in(Mode::Rvm, &input).outcome, Outcome::Approve);
}

#[test]
fn an_rvm_approval_the_interpreter_refuses_is_denied() {
    // The failing builtin in a deny rule, and a helper rule with conflicting values:
    // both approve on the RVM alone and must deny by default.
    for (source, input, says) in [
        (
            "package sealgate\nimport rego.v1\n\
             decision := {\"allow\": true, \"deny\": deny}\n\
             deny contains \"too much\" if to_number(input.amount) > 10\n",
            json!({"amount": "abc"}),
            "policy error: could not parse string as number",
        ),
        (
            "package sealgate\nimport rego.v1\n\
             limit := 10 if input.a\n\
             limit := 20 if input.b\n\
             decision := {\"allow\": true, \"deny\": deny}\n\
             deny contains \"too much\" if input.amount > limit\n",
            json!({"a": true, "b": true, "amount": 15}),
            "policy error: ",
        ),
    ] {
        let p = policy(source);
        assert_eq!(p.backend(), Backend::Rvm);
        assert_eq!(
            p.evaluate_with(Backend::Rvm, &input).outcome,
            Outcome::Approve,
            "{source}"
        );
        for verdict in [p.evaluate(&input), p.evaluate_in(Mode::Confirmed, &input)] {
            assert_eq!(verdict.outcome, Outcome::Deny, "{source}: {verdict:?}");
            assert!(verdict.reasons[0].starts_with(says), "{verdict:?}");
        }
    }
}

#[test]
fn confirmed_mode_keeps_agreeing_verdicts() {
    let p = policy(
        "package sealgate\nimport rego.v1\n\
         decision := {\"allow\": allow, \"deny\": deny}\n\
         default allow := false\n\
         allow if input.amount <= 10\n\
         deny contains \"too much\" if input.amount > 10\n",
    );
    assert!(p.evaluate(&json!({"amount": 5})).is_approved());
    let denied = p.evaluate(&json!({"amount": 50}));
    assert_eq!(denied.outcome, Outcome::Deny);
    assert_eq!(denied.reasons, ["too much"]);
    for mode in [Mode::Rvm, Mode::Interpreter] {
        assert!(p.evaluate_in(mode, &json!({"amount": 5})).is_approved());
        assert_eq!(p.evaluate_in(mode, &json!({"amount": 50})), denied);
    }
}

#[test]
fn undefined_decision_denies() {
    let p = policy("package sealgate\nimport rego.v1\ndecision := {\"allow\": true} if input.ok\n");
    let verdicts = denied_on_both(&p, json!({}));
    reason_starts(
        &verdicts,
        "policy error: data.sealgate.decision is undefined",
    );
    assert!(p.evaluate(&json!({"ok": true})).is_approved());
}

#[test]
fn malformed_decisions_deny() {
    let p = echo();
    for (decision, says) in [
        (
            json!("approved"),
            "the decision must be an object, got a string",
        ),
        (json!(true), "the decision must be an object, got a boolean"),
        (json!({"allow": "true"}), "allow must be a boolean"),
        (
            json!({"allow": true, "deny": "x"}),
            "deny must be an array of strings",
        ),
        (
            json!({"allow": true, "deny": [1]}),
            "deny must be an array of strings",
        ),
        (
            json!({"allow": true, "require_approval": [{}]}),
            "require_approval must be an array of strings",
        ),
        (
            json!({"allow": true, "deny": [], "extra": 1}),
            "unexpected key \"extra\"",
        ),
    ] {
        let verdicts = denied_on_both(&p, json!({ "decision": decision }));
        for v in verdicts {
            let expected = format!("policy returned a malformed result: {says}");
            assert!(v.reasons[0].starts_with(&expected), "{decision}: {v:?}");
        }
    }
}

#[test]
fn decision_as_a_string_rule_denies() {
    let p = policy("package sealgate\ndecision := \"yes\"\n");
    let verdicts = denied_on_both(&p, json!({}));
    reason_starts(&verdicts, "policy returned a malformed result");
}

#[test]
fn a_bundle_without_the_decision_rule_is_refused() {
    for source in [
        "package sealgate\nimport rego.v1\nallow := true\n",
        "package other\nimport rego.v1\ndecision := {\"allow\": true}\n",
        // A package named like the rule is not the rule: entry points must be rules.
        "package sealgate.decision\nimport rego.v1\nallow := true\n",
    ] {
        let bundle = Bundle::from_files([("p.rego", source)]).unwrap();
        assert_eq!(
            PreparedPolicy::prepare(&bundle).unwrap_err(),
            PolicyError::MissingDecision,
            "{source}"
        );
    }
}

#[test]
fn a_syntax_error_names_file_and_line() {
    let bundle = Bundle::from_files([
        (
            "ok.rego",
            "package sealgate\nimport rego.v1\ndecision := {}\n",
        ),
        (
            "broken.rego",
            "package sealgate\nimport rego.v1\n\nx := {\n",
        ),
    ])
    .unwrap();
    let err = PreparedPolicy::prepare(&bundle).unwrap_err();
    let PolicyError::Parse { file, message } = &err else {
        panic!("expected a parse error, got {err:?}");
    };
    assert_eq!(file, "broken.rego");
    assert!(message.contains("broken.rego:"), "{message}");
    assert!(err.to_string().starts_with("broken.rego: "), "{err}");
}

#[test]
fn an_empty_bundle_is_refused() {
    assert_eq!(
        Bundle::from_files(Vec::<(String, String)>::new()).unwrap_err(),
        BundleError::Empty
    );
    let err = serde_json::from_str::<Bundle>(r#"{"files": {}}"#).unwrap_err();
    assert!(err.to_string().contains("at least one .rego file"), "{err}");
}

#[test]
fn data_that_collides_with_a_rule_is_refused() {
    let bundle = Bundle::new(
        [(
            "p.rego".to_owned(),
            "package sealgate\nimport rego.v1\ndecision := {\"allow\": true}\n".to_owned(),
        )]
        .into(),
        Some(json!({"sealgate": {"decision": 1}})),
    )
    .unwrap();
    assert!(matches!(
        PreparedPolicy::prepare(&bundle),
        Err(PolicyError::Data(_))
    ));
}

#[test]
fn bundle_data_is_visible_to_the_policy() {
    let bundle = Bundle::from_files([(
        "p.rego",
        "package sealgate\nimport rego.v1\ndecision := {\"allow\": input.n <= data.limits.max}\n",
    )])
    .unwrap()
    .with_data(json!({"limits": {"max": 3}}))
    .unwrap();
    let p = PreparedPolicy::prepare(&bundle).unwrap();
    assert_eq!(p.backend(), Backend::Rvm);
    for backend in [Backend::Rvm, Backend::Interpreter] {
        assert!(p.evaluate_with(backend, &json!({"n": 3})).is_approved());
        assert!(!p.evaluate_with(backend, &json!({"n": 4})).is_approved());
    }
}

#[test]
fn an_approval_request_hiding_an_erroring_deny_rule_is_denied() {
    // A person must not be asked to approve what the policy would deny.
    let p = policy(
        "package sealgate\nimport rego.v1\n\
         decision := {\"allow\": false, \"deny\": deny, \"require_approval\": [\"look\"]}\n\
         deny contains \"too much\" if to_number(input.amount) > 10\n",
    );
    let input = json!({"amount": "abc"});
    assert_eq!(
        p.evaluate_in(Mode::Rvm, &input).outcome,
        Outcome::RequireApproval
    );
    let verdict = p.evaluate(&input);
    assert_eq!(verdict.outcome, Outcome::Deny, "{verdict:?}");
    assert!(
        verdict.reasons[0].starts_with("policy error: could not parse string as number"),
        "{verdict:?}"
    );
    // Where both agree, the request for approval stands.
    assert_eq!(
        p.evaluate(&json!({"amount": "5"})).outcome,
        Outcome::RequireApproval
    );
}
