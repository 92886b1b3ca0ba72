//! `sealgate bench` against a real server: it reports what it measured, and every
//! decision it counts is in the ledger.

use std::process::Command;

use crate::support::{Server, BIN};

#[tokio::test]
async fn bench_reports_decisions_and_proof_latency_it_really_measured() {
    let server = Server::start().await;
    let before = server.tree_size().await;
    let out = Command::new(BIN)
        .args([
            "bench",
            "--server",
            server.base.as_str(),
            "--connections",
            "4",
        ])
        .args([
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--proof-connections",
            "2",
        ])
        .arg("--token-file")
        .arg(server.data_dir.join("admin-token"))
        .env_remove("SEALGATE_TOKEN")
        .env_remove("SEALGATE_AGENT_TOKEN")
        .output()
        .expect("run sealgate bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("bench prints JSON");
    let decisions = report["decisions"].as_u64().expect("decisions");
    assert!(decisions > 0, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    let counted = ["approved", "denied", "pending_approval"]
        .iter()
        .map(|k| report[k].as_u64().expect("count"))
        .sum::<u64>();
    assert_eq!(counted, decisions, "{report}");
    // The mix is mostly within the limits, with some over them: both outcomes occur.
    assert!(report["approved"].as_u64() > Some(0), "{report}");
    assert!(report["denied"].as_u64() > Some(0), "{report}");
    // Warm-up requests are committed but not counted, so the ledger holds at least as
    // many decisions as were measured (plus the two key creations, which are not entries).
    assert!(server.tree_size().await >= before + decisions, "{report}");
    let p = &report["latency_ms"];
    assert!(
        p["p50"].as_f64() > Some(0.0) && p["p50"].as_f64() <= p["p99"].as_f64(),
        "{report}"
    );

    let proofs = &report["inclusion_proofs"];
    assert_eq!(proofs["connections"], 2, "{report}");
    assert!(proofs["proofs"].as_u64() > Some(0), "{report}");
    assert_eq!(proofs["errors"], 0, "{report}");
}

/// Durations and rates that are not finite, negative, or too long to add to a clock
/// are refused before any load (they used to panic in `Duration::from_secs_f64`).
#[test]
fn bench_refuses_durations_and_rates_it_cannot_run() {
    for bad in [
        &["--duration", "nan"][..],
        &["--duration", "inf"],
        &["--duration", "1e19"],
        &["--warmup=-1"],
        &["--warmup", "nan"],
        &["--rate", "nan"],
        &["--rate", "1e-300"],
        &["--rate=-5"],
    ] {
        let out = Command::new(BIN)
            .args([
                "bench",
                "--server",
                "http://127.0.0.1:1",
                "--agent-token",
                "t",
            ])
            .args(bad)
            .output()
            .expect("run sealgate bench");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(stderr.contains("must be"), "{bad:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{bad:?}: {stderr}");
    }
}
