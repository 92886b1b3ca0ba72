//! Measures `PreparedPolicy::evaluate` on the shipped finance policy: evaluations per
//! second on one thread and microseconds per evaluation, median of several runs, for
//! the RVM and the interpreter. Run with
//! `cargo run --release -p sealgate-policy --example bench_policy [rvm|interpreter]`;
//! `SEALGATE_BENCH_POLICY=FILE.rego` measures another single-file policy instead.

use std::time::Instant;

use serde_json::{json, Value};

use sealgate_policy::{Backend, Bundle, PreparedPolicy};

// The allocator the sealgate binary uses, so the figures match the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RUNS: usize = 7;
/// Evaluations per run; `SEALGATE_BENCH_EVALS` lowers it, e.g. to count instructions
/// under `valgrind --tool=callgrind`, which repeats exactly where timings on a shared
/// machine do not.
const EVALS_PER_RUN: usize = 20_000;

fn evals_per_run() -> usize {
    std::env::var("SEALGATE_BENCH_EVALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(EVALS_PER_RUN)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SEALGATE_BENCH_POLICY names another .rego file to measure instead.
    let path = std::env::var("SEALGATE_BENCH_POLICY").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies/finance.rego").to_owned()
    });
    let bundle = Bundle::from_files([("policy.rego", std::fs::read_to_string(&path)?)])?;

    let started = Instant::now();
    let policy = PreparedPolicy::prepare(&bundle)?;
    println!(
        "prepare: {:.1} ms (version {}, backend {:?})",
        started.elapsed().as_secs_f64() * 1e3,
        policy.version(),
        policy.backend()
    );

    let inputs = [
        input("payment", 1000, false),  // approved
        input("payment", 10000, false), // denied
        input("refund", 5000, true),    // pending_approval
    ];
    // An optional argument, `rvm` or `interpreter`, measures only that backend.
    let only = std::env::args().nth(1);
    for backend in [Backend::Rvm, Backend::Interpreter] {
        if only
            .as_deref()
            .is_some_and(|o| !format!("{backend:?}").eq_ignore_ascii_case(o))
        {
            continue;
        }
        let micros = median_micros(&policy, backend, &inputs);
        println!(
            "{backend:?}: {micros:.2} µs per evaluation, {:.0} evaluations/s on one thread \
             (median of {RUNS} runs x {})",
            1e6 / micros,
            evals_per_run()
        );
    }
    Ok(())
}

fn median_micros(policy: &PreparedPolicy, backend: Backend, inputs: &[Value]) -> f64 {
    // Warm up: builds this thread's evaluator.
    for input in inputs {
        std::hint::black_box(policy.evaluate_with(backend, input));
    }
    let evals = evals_per_run();
    let mut runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            for i in 0..evals {
                let input = &inputs[i % inputs.len()];
                std::hint::black_box(policy.evaluate_with(backend, std::hint::black_box(input)));
            }
            started.elapsed().as_secs_f64() * 1e6 / evals as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[RUNS / 2]
}

fn input(method: &str, amount: u64, flagged: bool) -> Value {
    json!({
        "manifest": {
            "agent_id": "agent-7", "org_id": "org-1", "user_id": "user-42",
            "provider": "stripe", "method": method,
            "parameters": {"amount": amount, "currency": "usd", "customer": "cus_123"},
            "reasoning": "customer requested it in ticket 1234",
            "confidence_score": 0.92, "environment": "production"
        },
        "screening": {
            "prompt_injection": {
                "flagged": flagged, "score": if flagged { 0.91 } else { 0.02 },
                "families": [], "fields": if flagged { json!(["/reasoning"]) } else { json!([]) }
            },
            "secrets": []
        },
        "context": {"request_id": "r-1"}
    })
}
