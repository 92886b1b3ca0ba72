//! A prepared policy is shared across threads, each with its own evaluator.

use std::sync::Arc;
use std::thread;

use serde_json::json;

use sealgate_policy::{Backend, Bundle, Outcome, PreparedPolicy};

use crate::support::{finance, input};

#[test]
fn prepared_policy_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PreparedPolicy>();
    assert_send_sync::<Bundle>();
}

#[test]
fn many_threads_evaluate_one_policy() {
    let policy = Arc::new(finance());
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let policy = Arc::clone(&policy);
            thread::spawn(move || {
                for i in 0..300u64 {
                    let amount = (t * 997 + i * 31) % 12_000;
                    for backend in [Backend::Rvm, Backend::Interpreter] {
                        let verdict = policy
                            .evaluate_with(backend, &input("payment", json!({"amount": amount})));
                        let expected = if amount <= 5000 {
                            Outcome::Approve
                        } else {
                            Outcome::Deny
                        };
                        assert_eq!(verdict.outcome, expected, "{amount} on {backend:?}");
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}

#[test]
fn one_thread_switches_between_versions() {
    // More versions than a thread caches, interleaved, must never mix evaluators up.
    let policies: Vec<PreparedPolicy> = (0..6)
        .map(|limit| {
            let source = format!(
                "package sealgate\nimport rego.v1\ndecision := {{\"allow\": input.n <= {limit}}}\n"
            );
            let bundle = Bundle::from_files([("p.rego", source)]).unwrap();
            PreparedPolicy::prepare(&bundle).unwrap()
        })
        .collect();
    for round in 0..3 {
        for (limit, policy) in policies.iter().enumerate() {
            let at = policy.evaluate(&json!({ "n": limit }));
            let over = policy.evaluate(&json!({ "n": limit + 1 }));
            assert!(at.is_approved(), "round {round}, limit {limit}");
            assert!(!over.is_approved(), "round {round}, limit {limit}");
        }
    }
}
