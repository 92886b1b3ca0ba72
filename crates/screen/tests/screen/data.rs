//! The measured reports on the shared public test data. These tests check
//! that the reports are well formed and print them; targets are measured
//! and documented in the README, not asserted here.

use std::io::BufReader;
use std::path::PathBuf;

use sealgate_screen::eval;

use crate::screener;

fn testdata() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipped: {} not present", dir.display());
        None
    }
}

#[test]
fn injection_report_on_dev_set_is_well_formed() {
    let Some(dir) = testdata() else { return };
    let path = dir.join("screening/prompt_injection_dev.jsonl");
    let Ok(file) = std::fs::File::open(&path) else {
        println!("skipped: {} not present", path.display());
        return;
    };
    let report = eval::injection_report(BufReader::new(file), &screener()).unwrap();
    let overall = &report["overall"];
    assert_eq!(overall["n"], 1516);
    assert_eq!(overall["attacks"], 692);
    for k in ["precision", "recall", "f1", "false_positive_rate"] {
        let v = overall[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{k} = {v}");
    }
    assert!(report["subsets"]["wildguard_benign"]["recall"].is_null());
    println!("{}", serde_json::to_string(&report["overall"]).unwrap());
}

#[test]
fn secrets_report_covers_the_three_sources() {
    let Some(dir) = testdata() else { return };
    let report = eval::secrets_report(&dir.join("secrets"), &screener());
    assert_eq!(
        report["errors"].as_array().map(Vec::len),
        Some(0),
        "{}",
        report["errors"]
    );
    for src in ["detect_secrets", "gitleaks", "presidio"] {
        assert!(report["sources"][src].is_object(), "{src}");
    }
    for kind in [
        "aws_access_key",
        "jwt",
        "email",
        "credit_card",
        "iban",
        "ip_address",
    ] {
        assert!(
            report["by_type"][kind]["tp"].as_u64().unwrap() > 0,
            "{kind}"
        );
    }
}

#[test]
fn secrets_report_on_missing_dir_reports_errors() {
    let report = eval::secrets_report(std::path::Path::new("/nonexistent-sealgate"), &screener());
    assert_eq!(report["errors"].as_array().map(Vec::len), Some(3));
}
