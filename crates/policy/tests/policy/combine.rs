//! The combination truth table, on decoded decisions and through both engines.

use serde_json::{json, Value};

use sealgate_policy::{Backend, Decision, Outcome, Verdict, NOT_ALLOWED};

use crate::support::echo;

/// Every combination of allow (missing / false / true), deny (none / one) and
/// require_approval (none / one), with the verdict it must give.
fn table() -> Vec<(Option<bool>, bool, bool, Verdict)> {
    let deny = || Verdict {
        outcome: Outcome::Deny,
        reasons: vec!["d".into()],
    };
    let ask = || Verdict {
        outcome: Outcome::RequireApproval,
        reasons: vec!["r".into()],
    };
    let not_allowed = || Verdict {
        outcome: Outcome::Deny,
        reasons: vec![NOT_ALLOWED.into()],
    };
    let approve = || Verdict {
        outcome: Outcome::Approve,
        reasons: vec![],
    };
    let mut rows = Vec::new();
    for allow in [None, Some(false), Some(true)] {
        for has_deny in [false, true] {
            for has_ask in [false, true] {
                let expected = if has_deny {
                    deny()
                } else if has_ask {
                    ask()
                } else if allow == Some(true) {
                    approve()
                } else {
                    not_allowed()
                };
                rows.push((allow, has_deny, has_ask, expected));
            }
        }
    }
    assert_eq!(rows.len(), 12);
    rows
}

fn strings(present: bool, s: &str) -> Vec<String> {
    if present {
        vec![s.to_owned()]
    } else {
        vec![]
    }
}

#[test]
fn truth_table_on_decisions() {
    for (allow, has_deny, has_ask, expected) in table() {
        let decision = Decision {
            allow,
            deny: strings(has_deny, "d"),
            require_approval: strings(has_ask, "r"),
        };
        assert_eq!(
            decision.combine(),
            expected,
            "allow={allow:?} deny={has_deny} ask={has_ask}"
        );
    }
}

#[test]
fn truth_table_through_both_engines() {
    let policy = echo();
    for (allow, has_deny, has_ask, expected) in table() {
        let mut decision = json!({
            "deny": strings(has_deny, "d"),
            "require_approval": strings(has_ask, "r"),
        });
        if let Some(allow) = allow {
            decision["allow"] = Value::Bool(allow);
        }
        for backend in [Backend::Rvm, Backend::Interpreter] {
            let verdict = policy.evaluate_with(backend, &json!({ "decision": decision }));
            assert_eq!(verdict, expected, "{decision} on {backend:?}");
        }
    }
}

#[test]
fn all_reasons_are_kept_in_order() {
    let verdict = echo().evaluate(&json!({"decision": {
        "allow": true, "deny": ["b", "a"], "require_approval": ["c"]
    }}));
    assert_eq!(verdict.outcome, Outcome::Deny);
    assert_eq!(verdict.reasons, ["b", "a"]);
}

#[test]
fn empty_decision_is_denied() {
    let verdict = echo().evaluate(&json!({"decision": {}}));
    assert_eq!(verdict.outcome, Outcome::Deny);
    assert_eq!(verdict.reasons, [NOT_ALLOWED]);
}
