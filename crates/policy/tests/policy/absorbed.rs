//! What the RVM absorbs, it counts: sealgate's regorus copy (vendor/README.md) counts
//! the errors and conflicts the RVM turns into "this body does not hold", and
//! `Mode::Confirmed` trusts an RVM approval only when that count is zero. These tests
//! check the premise on policies written to error: whenever nothing was absorbed, the
//! RVM and the interpreter give the same verdict; whenever they differ, something was.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{json, Value};

use sealgate_policy::{Backend, Mode, Outcome, PreparedPolicy};

use crate::support::{finance, policy};

/// Policies whose rules error or conflict on some inputs, each in a way the RVM alone
/// would absorb. Every one decides `allow: true` unless a deny rule holds, so a deny
/// rule the RVM skips shows up as an approval.
const ERRING: &[&str] = &[
    // a builtin given the wrong type
    "deny contains \"too much\" if to_number(input.a) > 10",
    // comparison across types (strict mode makes it an error)
    "deny contains \"too much\" if input.a > 10",
    // arithmetic on a non-number, and division by zero
    "deny contains \"too much\" if input.a + 1 > 10",
    "deny contains \"ratio\" if 100 / input.b > 10",
    // a string builtin on a number
    "deny contains \"prefix\" if startswith(input.a, \"x\")",
    // negation of a helper whose body errors: the error must not flip `not`
    "ok if to_number(input.a) < 100\ndeny contains \"not ok\" if not ok",
    // complete rules with conflicting values
    "limit := 10 if input.b\nlimit := 20 if input.c\ndeny contains \"over\" if input.n > limit",
    // a function with conflicting outputs
    "f(x) := 1 if x\nf(x) := 2 if input.c\ndeny contains \"f\" if f(input.b) == 1",
    // a partial object rule giving one key two values
    "caps[k] := v if { some k, v in {\"p\": input.n} }\n\
     caps[k] := 7 if { k := \"p\"; input.b }\n\
     deny contains \"cap\" if input.n > caps.p",
    // an object comprehension giving one key two values
    "m := {k: v | some v in [input.n, 7]; k := \"p\"}\ndeny contains \"m\" if m.p > 5",
    // an error inside a loop and inside a comprehension
    "deny contains \"item\" if { some x in input.items; to_number(x) > 10 }",
    "big := [x | some x in input.items; to_number(x) > 10]\ndeny contains \"big\" if count(big) > 0",
    // `every` over values that error
    "deny contains \"all small\" if every x in input.items { to_number(x) < 10 }",
    // sprintf and concat given the wrong types
    "deny contains sprintf(\"%v\", input.a) if input.n > 1000",
    "deny contains concat(\",\", input.items) if input.b",
    // more builtins and operators given what they do not take
    "deny contains \"count\" if count(input.a) > 1",
    "deny contains \"sum\" if sum(input.items) > 10",
    "deny contains \"mod\" if input.n % input.b == 1",
    "deny contains \"neg\" if 0 - input.a < 0",
    "deny contains \"abs\" if abs(input.a) > 1",
    "deny contains \"upper\" if upper(input.a) == \"X\"",
    "deny contains \"regex\" if regex.match(\"x\", input.a)",
    "deny contains \"split\" if count(split(input.a, \"y\")) > 1",
    "deny contains \"keys\" if count(object.keys(input.a)) > 0",
    "deny contains \"json\" if json.unmarshal(input.a).k == 1",
    "deny contains \"b64\" if base64.decode(input.a) == \"\"",
    "deny contains \"ref\" if input.items[_] > 5",
    "default ok := false\nok if to_number(input.a) > 1\ndeny contains \"not ok\" if not ok",
    "s := {x | some x in input.items; x > 1}\ndeny contains \"s\" if count(s) > 0",
    "deny contains \"some\" if { some i; input.items[i] > 1 }",
];

/// Operations that look as if they could error but are undefined or false in both
/// engines: the property below covers them too.
const ALIKE: &[&str] = &[
    "deny contains \"member\" if input.a in input.items",
    "deny contains \"index\" if input.items[input.n] == 1",
    "deny contains \"equal\" if input.a == input.n",
    "deny contains \"field\" if input.a.k == 1",
];

fn source(rules: &str) -> String {
    format!(
        "package sealgate\nimport rego.v1\n\
         decision := {{\"allow\": true, \"deny\": deny}}\n{rules}\n"
    )
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..=30).prop_map(Value::from),
        Just(json!(0)),
        (-50.0f64..50.0).prop_map(Value::from),
        prop::sample::select(vec!["", "x", "xy", "5", "50", "abc", "1e3"]).prop_map(Value::from),
    ]
}

fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => scalar(),
        1 => prop::collection::vec(scalar(), 0..4).prop_map(Value::from),
        1 => Just(json!({"k": 1})),
    ]
}

fn input() -> impl Strategy<Value = Value> {
    (
        prop::option::of(any_value()),
        prop::option::of(any_value()),
        prop::option::of(any_value()),
        prop::option::of(any_value()),
        prop::option::of(any_value()),
    )
        .prop_map(|(a, b, c, n, items)| {
            let mut input = serde_json::Map::new();
            for (key, value) in [("a", a), ("b", b), ("c", c), ("n", n), ("items", items)] {
                if let Some(value) = value {
                    input.insert(key.to_owned(), value);
                }
            }
            Value::Object(input)
        })
}

fn prepared(rules: &[&str]) -> Vec<PreparedPolicy> {
    rules
        .iter()
        .map(|rules| {
            let p = policy(&source(rules));
            assert_eq!(
                p.backend(),
                Backend::Rvm,
                "{rules}: {:?}",
                p.rvm_unavailable()
            );
            p
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn nothing_absorbed_means_the_rvm_agrees(input in input()) {
        let all: Vec<&str> = ERRING.iter().chain(ALIKE).copied().collect();
        for (rules, p) in all.iter().zip(prepared(&all)) {
            let absorbed = p.rvm_absorbed_errors(&input).unwrap();
            let fast = p.evaluate_with(Backend::Rvm, &input);
            let reference = p.evaluate_with(Backend::Interpreter, &input);
            if absorbed == 0 {
                prop_assert_eq!(&fast, &reference, "{} on {}", rules, input);
            }
            if fast.outcome != reference.outcome {
                prop_assert!(absorbed > 0, "{} on {}: {:?} vs {:?}", rules, input, fast, reference);
            }
            // Whatever the RVM absorbed, the default mode ends on the interpreter's word
            // for anything but a denial.
            let confirmed = p.evaluate_in(Mode::Confirmed, &input);
            if fast.outcome != Outcome::Deny {
                prop_assert_eq!(confirmed.outcome, reference.outcome, "{} on {}", rules, input);
            }
        }
    }

    #[test]
    fn finance_absorbs_nothing(input in crate::backends::manifest_input()) {
        // The shipped policy guards its types, so it never pays for confirmation.
        prop_assert_eq!(finance().rvm_absorbed_errors(&input), Some(0), "input: {}", input);
    }
}

/// Each erring policy has an input on which the RVM alone decides otherwise than the
/// interpreter (for most of them: approves what it refuses), and that input is counted:
/// the property above does not hold vacuously.
#[test]
fn every_erring_policy_is_caught_erring() {
    let inputs = [
        json!({"a": "abc"}),
        json!({"a": "x"}),
        json!({"a": 5}),
        json!({"b": 0}),
        json!({"b": true, "c": true, "n": 15}),
        json!({"n": 3, "b": true}),
        json!({"n": 9}),
        json!({"items": ["abc"]}),
        json!({"items": [1, 2]}),
        json!({"a": "x", "n": 5000}),
        json!({"items": [1], "b": true}),
    ];
    for (rules, p) in ERRING.iter().zip(prepared(ERRING)) {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = input();
        let random: Vec<Value> = (0..3000)
            .map(|_| strategy.new_tree(&mut runner).unwrap().current())
            .collect();
        let caught = inputs.iter().chain(random.iter()).find(|input| {
            p.evaluate_with(Backend::Rvm, input) != p.evaluate_with(Backend::Interpreter, input)
        });
        let Some(input) = caught else {
            panic!("{rules}: no input makes the RVM differ from the interpreter");
        };
        assert!(
            p.rvm_absorbed_errors(input).unwrap() > 0,
            "{rules} on {input}"
        );
        let verdict = p.evaluate(input);
        assert_eq!(
            verdict.outcome,
            Outcome::Deny,
            "{rules} on {input}: {verdict:?}"
        );
    }
}
